"""CLI and config: --help everywhere, TOML + overrides, the demo pipeline on a tiny config."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from mdnworld import cli
from mdnworld.cli import build_parser, main
from mdnworld.config import ConfigError, Resolution, VAEConfig, load_config
from mdnworld.errors import DataError, MissingError, UserError
from mdnworld.fields import field_docs
from mdnworld.pipeline import STAGES
from mdnworld.stage_log import stage_totals

BAD_RECON = "vae.recon_loss: expected one of 'bce', 'mse', got 'bec'"


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_expected_subcommands() -> None:
    assert {"generate", "validate", "show", "pipeline"} <= set(_subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_help(command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mdnworld.cli", command, "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"mdnworld {command}" in out.stdout


def test_config_file_and_overrides(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('run_dir = "x"\n[generate]\nepisodes = 7\nworkers = 2\n')
    cfg = load_config(cfg_file, ["generate.workers=1", "show.episode=3"])
    assert (cfg.run_dir, cfg.generate.episodes, cfg.generate.workers) == ("x", 7, 1)
    assert cfg.show.episode == 3


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("[generate]\nepisodez = 7\n", [], "unknown key 'episodez' in [generate]"),
        ("[generate]\nepisodes = 'many'\n", [], "generate.episodes: expected int"),
        ("[nope]\n", [], "unknown key 'nope'"),
        ("[generate\n", [], "not valid TOML"),
        ("", ["generate.episodes"], "expected section.key=value"),
        ("", ["generate.workers=1.5"], "generate.workers: expected int"),
        ("[rnn]\ndone_head = 1\n", [], "rnn.done_head: expected true/false, got 1"),
        ("", ["rnn.done_head=maybe"], "rnn.done_head: expected true/false, got 'maybe'"),
        # a string option's typo fails when it is read, naming the allowed values
        ("[vae]\nrecon_loss = 'bec'\n", [], BAD_RECON),
        ("", ["vae.recon_loss=bec"], BAD_RECON),
        ("[rnn]\nmixture = 'perdim'\n", [], "rnn.mixture: expected one of 'shared', 'per_dim'"),
        # and so does a number out of its range
        ("[vae]\nepochs = 0\n", [], "vae.epochs: must be >= 1, got 0"),
        ("", ["rnn.val_fraction=1"], "rnn.val_fraction: must be in [0, 1), got 1.0"),
        ("", ["controller.popsize=1"], "controller.popsize: must be >= 2"),
    ],
)
def test_config_errors_name_the_source(
    tmp_path: Path, text: str, overrides: list[str], message: str
) -> None:
    cfg_file = tmp_path / "bad.toml"
    cfg_file.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_config(cfg_file, overrides)
    source = f"override {overrides[0]!r}" if overrides else f"{cfg_file}: "
    assert str(e.value).startswith(source)
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)


def test_resolutions_are_vizdoom_s() -> None:
    vzd = pytest.importorskip("vizdoom")
    names = {n for n in dir(vzd.ScreenResolution) if n.startswith("RES_")}
    assert set(typing.get_args(Resolution)) == names


def test_help_shows_field_docs_defaults_and_choices(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag: no wrapping to match across
    with pytest.raises(SystemExit) as e:
        main(["train-vae", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    doc = field_docs(VAEConfig)["free_bits"]
    assert doc.startswith("Floor on the per-frame KL") and doc in out
    assert "--recon-loss {bce,mse}" in out and "(default: 'bce')" in out
    assert "--epochs INT" in out and "Must be >= 1. (default: 10)" in out
    with pytest.raises(SystemExit) as e:  # a Literal flag takes only its values
        main(["train-vae", "--recon-loss", "bec"])
    assert e.value.code == 2 and "invalid choice: 'bec'" in capsys.readouterr().err


def test_a_bad_flag_value_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert main(["train-vae", str(run), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "error: override 'vae.epochs=0': vae.epochs: must be >= 1, got 0\n"
    assert not run.exists()


def _stage_raising(monkeypatch: pytest.MonkeyPatch, name: str, error: BaseException) -> None:
    """Make stage ``name`` raise ``error`` when it runs (Stage is frozen: swap the entry)."""

    def run(run_dir: Path, cfg: object, log: object) -> None:
        raise error

    stages = [dataclasses.replace(s, run=run) if s.name == name else s for s in STAGES]
    monkeypatch.setattr(cli, "STAGES", stages)


@pytest.mark.parametrize(
    "error",
    [DataError("ep_000001.npz: frames have shape (3, 3)\nnot (N, 64, 64, 3)"),
     MissingError("vae/model.json: no V; run `mdnworld train-vae` first"),
     FileNotFoundError("episodes/manifest.json")],
)  # fmt: skip
def test_a_user_error_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
    error: Exception,
) -> None:  # fmt: skip
    _stage_raising(monkeypatch, "show", error)
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(error).splitlines()[0] in err
    assert stage_totals(tmp_path)["show"]["finished"] is False  # the stage's run is recorded


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), ValueError("boom"), KeyError("boom"), OSError("boom")]
)
def test_a_bug_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """Anything but a UserError (or a missing file) is not turned into "error: ..." and exit
    2: it propagates, so the traceback shows where it came from."""
    _stage_raising(monkeypatch, "show", error)
    with pytest.raises(type(error), match="boom"):
        main(["show", str(tmp_path)])


def test_ctrl_c_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _stage_raising(monkeypatch, "show", KeyboardInterrupt())
    assert main(["show", str(tmp_path)]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_missing_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["generate", str(tmp_path), "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: config file not found" in capsys.readouterr().err


def test_shipped_configs_load() -> None:
    root = Path(__file__).parent.parent / "configs"
    assert load_config(root / "paper.toml").generate.episodes == 2000
    assert load_config(root / "demo.toml").run_dir == "runs/demo"
    # World Models' setup: its per-dim M has no single pi, so pipeline leaves dream and analyze
    # out and runs the controller stages
    wm = load_config(root / "worldmodels.toml")
    left_out = {s.name for s in STAGES if s.skip_reason(wm)}
    assert left_out == {"dream", "analyze", "iterate"}  # iterate: only when rounds are asked
    paper = load_config(root / "paper.toml")
    assert {s.name for s in STAGES if s.skip_reason(paper)} == {"iterate"}


@dataclasses.dataclass(frozen=True)
class _Pipeline:
    """A tiny real pipeline run, made twice by the CLI (the second run finds every stage done)."""

    root: Path  # the module's own folder: the config, and what the tests below write
    cfg_file: Path
    run: Path
    second: subprocess.CompletedProcess
    until: subprocess.CompletedProcess  # a third run, `--until encode`


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> _Pipeline:
    """`mdnworld pipeline` on a tiny config, once for the module; then again, over the finished
    run. Each test below checks one part of it; the tests that write do so outside ``run``
    (``analyze`` works on its own copy), so they pass or fail alone and in any order."""
    tmp_path = tmp_path_factory.mktemp("pipeline")
    cfg_file = tmp_path / "tiny.toml"
    cfg_file.write_text(
        f'run_dir = "{tmp_path / "run"}"\n[generate]\nepisodes = 3\nworkers = 1\n'
        "[vae]\nepochs = 1\nbatch_size = 64\nval_frames = 64\n"
        "[rnn]\nepochs = 2\nhidden = 32\nmodels = 2\nthreads = 1\ndone_head = true\n"
        "[dream]\ndreams = 2\nsteps = 12\nwarmup = 3\n"
        "[analyze]\na_warmup = 5\na_steps = 10\nb_dreams = 2\nb_steps = 40\nn_shifts = 50\n"
        "c_tests = 2\nc_steps = 20\nc_start = 5\n"
        "[controller]\npopsize = 4\nrollouts = 2\ngenerations = 2\neval_every = 1\n"
        "eval_episodes = 1\nworkers = 1\nmax_steps = 100\n"
        "[evaluate]\nepisodes = 2\nworkers = 1\nmax_steps = 100\n"
    )
    cmd = [sys.executable, "-m", "mdnworld.cli", "pipeline", "--config", str(cfg_file)]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True)
    until = subprocess.run([*cmd, "--until", "encode"], capture_output=True, text=True)
    return _Pipeline(tmp_path, cfg_file, tmp_path / "run", second, until)


@pytest.mark.slow
def test_pipeline_writes_episodes_previews_and_its_config(pipeline: _Pipeline) -> None:
    run = pipeline.run
    assert (run / "episodes" / "manifest.json").exists()
    assert (run / "preview" / "episode_000000.mp4").stat().st_size > 0
    assert (run / "preview" / "episode_000000_contact.png").stat().st_size > 0
    assert (run / "config.json").exists()


@pytest.mark.slow
def test_pipeline_runs_and_skips_finished_stages(pipeline: _Pipeline) -> None:
    second = pipeline.second
    assert second.returncode == 0, second.stderr
    assert "[generate] already finished" in second.stdout
    for stage in ("show", "train-vae", "encode", "train-rnn", "dream", "analyze",
                  "train-controller", "evaluate"):  # fmt: skip
        assert f"[{stage}] already finished" in second.stdout


@pytest.mark.slow
def test_pipeline_until_stops_after_that_stage(pipeline: _Pipeline) -> None:
    until = pipeline.until
    assert until.returncode == 0, until.stderr
    assert "[encode] already finished" in until.stdout and "[train-rnn]" not in until.stdout
    bad = subprocess.run([*until.args[:-1], "encoder"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'encoder'" in bad.stderr


@pytest.mark.slow
def test_pipeline_trains_v_and_encodes(pipeline: _Pipeline) -> None:
    run = pipeline.run
    assert (run / "vae" / "model.safetensors").exists()
    assert list((run / "latents").glob("ep_*.npz"))


@pytest.mark.slow
def test_pipeline_dreams_videos_and_arrays(pipeline: _Pipeline) -> None:
    dreams = pipeline.run / "dreams" / "model_0"
    assert (dreams / "dream_1.mp4").stat().st_size > 0 and (dreams / "dream_1.gif").exists()
    with np.load(dreams / "dreams.npz", allow_pickle=False) as d:
        assert d["frames"].shape == (2, 12, 64, 64, 3) and d["pi"].shape == (2, 12, 5)
    for k in range(5):  # one committed dream per component, which never leaves it
        with np.load(dreams / f"committed_{k}" / "dreams.npz", allow_pickle=False) as d:
            assert (d["component"] == k).all() and d["frames"].shape[0] == 1


@pytest.mark.slow
def test_pipeline_analyses_both_models(pipeline: _Pipeline) -> None:
    """Figures, tables and the summary, over both models."""
    analysis = pipeline.run / "analysis"
    for name in (
        "components_over_time/model_1.png",
        "worlds_events/worlds_events.png",
        "committed/committed.png",
        "worlds_events/table.csv",
        "committed/counts.csv",
    ):
        assert (analysis / name).stat().st_size > 0, name
    b = json.loads((analysis / "worlds_events" / "results.json").read_text())
    assert b["dreams"] == 4 and b["models"] == [0, 1]
    summary = (analysis / "summary.md").read_text()
    assert "## A." in summary and "## B." in summary and "## C." in summary


@pytest.mark.slow
def test_pipeline_records_each_stage_s_time_and_memory(pipeline: _Pipeline) -> None:
    """Every stage's wall time and peak memory (generate's includes its workers and games)."""
    totals = stage_totals(pipeline.run)
    assert set(totals) >= {"generate", "train-vae", "train-rnn", "analyze", "evaluate"}
    assert all(t["finished"] and t["seconds"] > 0 for t in totals.values())
    assert totals["generate"]["peak_rss_mb"] > 120  # the command alone: ~65 MB, a game ~100 more


@pytest.mark.slow
def test_pipeline_trains_and_scores_the_controller(pipeline: _Pipeline) -> None:
    """The controller and its real-game scores."""
    scores = json.loads((pipeline.run / "evaluate" / "scores.json").read_text())
    assert scores["episodes"] == 2 and scores["generation"] == 2
    assert (pipeline.run / "controller" / "controller.safetensors").exists()


@pytest.mark.slow
def test_collect_results_writes_the_run_s_record(pipeline: _Pipeline, tmp_path: Path) -> None:
    """The committed record of a run: RESULTS.md against the paper, costs, checksums."""
    out = tmp_path / "results"
    paper = Path(__file__).parents[1] / "results" / "paper"
    assert main(["collect-results", str(pipeline.run), str(out), "--beside", f"h200={paper}"]) == 0
    results = (out / "RESULTS.md").read_text()
    assert "## B. Worlds and events" in results and "| generate |" in results
    assert json.loads((out / "checksums.json").read_text())["episodes"] == 3
    assert (out / "figures" / "rnn_nll.png").stat().st_size > 0
    # this run beside the committed paper-scale one: its M rows, and B and C of both
    # detector sets the committed folder holds
    rows = json.loads((out / "tables" / "rnn_models.json").read_text())
    assert [r["model"] for r in rows] == ["model_0", "model_1"]
    side = results[results.index("## Side by side: `run`, `h200`") :]
    assert f"| run | 2 | {_range([r['epochs'] for r in rows])} (" in side
    for cols in ("| class | paper | run (spec) | h200 (spec) | h200 (validated) |",
                 "| class | run (spec) | h200 (spec) | h200 (validated) |"):  # fmt: skip
        assert cols in side
    assert "| Explosion | 0.82 / 0.39 *** |" in side  # B, with the paper's row


def _range(values: list[int]) -> str:
    return str(values[0]) if min(values) == max(values) else f"{min(values)} … {max(values)}"


def test_collect_results_beside_needs_a_collected_folder(tmp_path: Path, capsys) -> None:
    assert main(["collect-results", str(tmp_path), str(tmp_path / "out"),
                 "--beside", f"x={tmp_path / 'nothing'}"]) == 2  # fmt: skip
    assert "nothing/tables not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.slow
def test_controller_behaviour_replays_evaluate_s_scores(
    pipeline: _Pipeline, tmp_path: Path
) -> None:
    """What the controller does, on evaluate's first seeds: the same scores, shares that add up."""
    run = pipeline.run
    played = subprocess.run(
        [sys.executable, str(BENCHMARKS / "controller_behaviour.py"), str(run), "--episodes", "2",
         "--workers", "1", "--max-steps", "100", "--out", str(tmp_path / "behaviour.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert played.returncode == 0, played.stderr
    scores = json.loads((run / "evaluate" / "scores.json").read_text())
    behaviour = json.loads((tmp_path / "behaviour.json").read_text())
    (acts,), (first, last) = behaviour["rows"], behaviour["seeds"]
    by_seed = {e["seed"]: e["score"] for e in scores["per_episode"]}
    assert acts["scores"] == [by_seed[s] for s in range(first, last + 1)]
    assert acts["left"] + acts["nothing"] + acts["right"] == pytest.approx(1.0)
    assert 1.0 <= acts["steps_per_button"] <= max(acts["scores"])


@pytest.mark.slow
def test_controller_results_beside_baselines_on_the_same_seeds(
    pipeline: _Pipeline, tmp_path: Path
) -> None:
    """The controller's record: its real-game scores beside the published ones, its weights
    beside untrained policies played on the same real-game seeds (other seeds: refused)."""
    run, ctl = pipeline.run, tmp_path / "controller_results"
    for n in (2, 3):
        played = subprocess.run(
            [sys.executable, str(BENCHMARKS / "real_baselines.py"), "--episodes", str(n),
             "--workers", "1", "--out", str(tmp_path / f"baselines{n}.json")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert played.returncode == 0, played.stderr
    assert main(["controller-results", str(run), str(ctl), "--baselines",
                 str(tmp_path / "baselines3.json")]) == 2  # fmt: skip
    assert not ctl.exists()  # the seeds differ from the evaluation's: nothing written
    assert main(["controller-results", str(run), str(ctl), "--baselines",
                 str(tmp_path / "baselines2.json")]) == 0  # fmt: skip
    record = json.loads((ctl / "runs.json").read_text())
    summary = record["runs"][0]
    assert summary["generations"] == 2 and summary["real"]["episodes"] == 2
    assert summary["train_cpu_hours"] == pytest.approx(summary["train_hours"] * os.cpu_count())
    assert [c["machine"] for c in summary["cost"]] == [f"{os.cpu_count()} CPUs"]  # per row
    assert [b["policy"] for b in record["baselines"]][0].startswith("uniform random")
    assert all(0 <= b["p"] <= 1 and b["episodes"] == 2 for b in record["baselines"])
    assert "1092 ± 556" in (ctl / "RESULTS.md").read_text()
    assert "stand still: our game, same seeds" in (ctl / "RESULTS.md").read_text()
    assert (ctl / "controller" / "controller.safetensors").exists()


@pytest.mark.slow
def test_one_analysis_alone_through_its_subcommand(pipeline: _Pipeline, tmp_path: Path) -> None:
    from shutil import copytree

    run = copytree(pipeline.run, tmp_path / "run")  # it rewrites analysis/committed
    one = subprocess.run(
        [sys.executable, "-m", "mdnworld.cli", "analyze", "committed", str(run), "--c-steps", "15",
         "--config", str(pipeline.cfg_file)], capture_output=True, text=True,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    results = run / "analysis" / "committed" / "results.json"
    assert json.loads(results.read_text())["steps"] == 15


@pytest.mark.slow
def test_paper_analyses_script_records_both_detector_sets(
    pipeline: _Pipeline, tmp_path: Path
) -> None:
    """scripts/paper_analyses.sh: B and C with the validated detectors, then with the SPEC
    ones (even where the config picks the validated set, as sharp.toml does), the dream gap,
    and collect-results beside the committed paper-scale run."""
    from shutil import copytree

    run = copytree(pipeline.run, tmp_path / "run")  # it rewrites analysis/
    text = pipeline.cfg_file.read_text()
    assert "\n[analyze]\n" in text and "detectors" not in text
    config = tmp_path / "validated.toml"
    config.write_text(text.replace("\n[analyze]\n", '\n[analyze]\ndetectors = "validated"\n'))
    out, root = tmp_path / "out", Path(__file__).parents[1]
    env = {**os.environ, "MDNWORLD": f"{sys.executable} -m mdnworld.cli",
           "PYTHON": sys.executable, "DREAM_GAP_ARGS": "--episodes 1 --rollouts 2"}  # fmt: skip
    done = subprocess.run(
        ["bash", str(root / "scripts" / "paper_analyses.sh"), str(config), str(run),
         str(out), "--", "--beside", f"h200={root / 'results' / 'paper'}"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    val = json.loads((out / "detectors" / "validated_analyses" / "worlds_events.json").read_text())
    spec = json.loads((out / "tables" / "worlds_events.json").read_text())
    assert (val["detectors"], spec["detectors"]) == ("validated", "spec")
    assert json.loads((out / "tables" / "dream_gap.json").read_text())
    side = (out / "RESULTS.md").read_text().split("## Side by side")[1]
    assert (
        "| class | paper | run (spec) | run (validated) | h200 (spec) | h200 (validated) |" in side
    )
