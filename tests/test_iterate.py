"""``mdnworld iterate`` on a tiny real run: the controller's real episodes join the data (checked
against the game: same seeds, same lengths), M and C start from the last round's, every round
is scored on the choice seeds, and a second call changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mdnworld.checkpoints import load_weights
from mdnworld.config import load_config
from mdnworld.control.evaluate import load_controller
from mdnworld.control.executors import LocalExecutor
from mdnworld.control.train import real_scores
from mdnworld.data.episodes import load_episode, validate_run
from mdnworld.errors import ConflictError
from mdnworld.io import read_json
from mdnworld.iterate import ROUND_SEEDS, iterate
from mdnworld.layout import RunLayout
from mdnworld.pipeline import STAGES
from mdnworld.report import write_report

SETTINGS = ["iterate.rounds=1", "iterate.episodes=2", "iterate.rnn_epochs=1",
            "iterate.generations=1", "iterate.eval_episodes=2"]  # fmt: skip


@pytest.fixture(scope="module")
def iterated(full_run: Path, tmp_path_factory: pytest.TempPathFactory):
    run = tmp_path_factory.mktemp("iterate") / "run"
    shutil.copytree(full_run, run, symlinks=True)
    cfg = load_config(full_run.parent / "tiny.toml", SETTINGS)
    lines: list[str] = []
    rows = iterate(run, cfg, log=lines.append)
    return run, cfg, rows, lines


def test_a_round_adds_the_controller_s_real_episodes(iterated) -> None:
    run, cfg, rows, _ = iterated
    base, here = RunLayout(run), RunLayout(RunLayout(run).iterate_round(1))
    old = base.episode_files()
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["episodes_added"] == 2
    assert len(here.episode_files()) == len(old) + 2 == rows[1]["episodes"]
    # the old data are links to the run's own files; V is the run's
    assert all(here.episode(int(p.stem[3:])).resolve() == p.resolve() for p in old)
    assert (here.root / "vae").resolve() == base.vae_dir.resolve()
    new = [p for p in here.episode_files() if not p.is_symlink()]
    assert len(new) == 2 and all((here.latents_dir / p.name).exists() for p in new)
    # the game is the judge: each new episode is the run's controller playing that seed
    seeds = [cfg.iterate.seed + ROUND_SEEDS + i for i in range(2)]
    params, _ = load_controller(run)
    scores = real_scores(run, 0, params, seeds, cfg.controller.max_steps, LocalExecutor(1), 1)
    for p, seed, score in zip(sorted(new), seeds, scores, strict=True):
        ep = load_episode(p)
        assert ep.seed == seed and len(ep) == score
        assert bool(ep.dones[-1]) == (score < cfg.controller.max_steps) and ep.dones.sum() <= 1
    good, bad = validate_run(here.root)
    assert not bad and len(good) == len(old) + 2
    # the links are relative: a copy of the whole run directory is a working run elsewhere
    moved = run.parent / "moved"
    shutil.copytree(run, moved, symlinks=True)
    copy = RunLayout(RunLayout(moved).iterate_round(1))
    assert all(p.resolve().is_relative_to(moved) for p in copy.episode_files())
    assert (copy.root / "vae").resolve() == (moved / "vae").resolve()
    assert len(validate_run(copy.root)[0]) == len(old) + 2
    shutil.rmtree(moved)


def test_m_and_c_start_from_the_last_round(iterated) -> None:
    run, _, rows, _ = iterated
    base, here = RunLayout(run), RunLayout(RunLayout(run).iterate_round(1))
    _, m = load_weights(here.rnn_model(0))
    assert m["config"]["init"] == str(base.rnn_model(0).resolve()) and m["epochs_run"] == 1
    _, c = load_controller(here.root)
    assert c["config"]["init"] == str(base.controller_weights("mean").resolve())
    assert c["generation"] == 1 == rows[1]["generation"]
    assert rows[1]["rnn_val_nll_per_dim"] == m["metrics"]["val_nll_per_dim"]


def test_every_round_is_scored_on_the_same_choice_seeds(iterated) -> None:
    run, cfg, rows, lines = iterated
    seeds = [cfg.iterate.eval_seed + i for i in range(2)]
    for r, row in enumerate(rows):
        here = run if r == 0 else RunLayout(run).iterate_round(r)
        params, _ = load_controller(here)
        again = real_scores(here, 0, params, seeds, cfg.controller.max_steps, LocalExecutor(1), 1)
        assert row["seeds"] == seeds and row["scores"] == again
        assert row["mean"] == pytest.approx(np.mean(again))
    assert sum("choice seeds" in line for line in lines) == 2


def test_a_second_call_changes_nothing_and_the_stage_is_done(iterated, full_run: Path) -> None:
    run, cfg, rows, _ = iterated
    files = sorted(p for p in (run / "iterate").rglob("*") if p.is_file() and "tb" not in p.parts)
    before = {p: p.stat().st_mtime_ns for p in files}
    assert iterate(run, cfg, log=lambda s: None) == rows
    assert {p: p.stat().st_mtime_ns for p in files} == before
    stage = next(s for s in STAGES if s.name == "iterate")
    assert stage.is_done(run, cfg) and stage.skip_reason(cfg) is None
    assert read_json(RunLayout(run).iterate_summary(1)) == rows[1]
    other = load_config(full_run.parent / "tiny.toml", [*SETTINGS, "iterate.which=best"])
    with pytest.raises(ConflictError, match="round_0.json: scored the 'mean' controller"):
        iterate(run, other, log=lambda s: None)
    tiny = full_run_config(run)
    assert stage.skip_reason(tiny) == "iterate.rounds = 0"  # the pipeline's default: off


def full_run_config(run: Path):
    """The tiny pipeline's own config (conftest's TINY), iterate off."""
    return load_config(Path(read_json(run / "config.json")["run_dir"]).parent / "tiny.toml")


def test_the_report_shows_the_rounds(iterated) -> None:
    run, _, rows, _ = iterated
    page = write_report(run, log=lambda s: None).read_text()
    assert "<h3>Iterative training</h3>" in page
    part = page.split("<h3>Iterative training</h3>")[1].split("</section>")[0]
    table = part.split("</table>")[0]
    assert table.count("<tr>") == 3  # the header, round 0 (the run), round 1
    for row in rows:
        assert f"{row['mean']:.0f}</a> ± " in table and f">{row['episodes']}</a>" in table
    assert f"mdnworld evaluate {RunLayout(run).iterate_round(1)}" in part
