"""Issue 17's hostile-user probes outside episodes, latents and checkpoints (items 2 and 5): a bad
setting, a V's meta that is not one, a corrupt CMA-ES state, a shipped MANIFEST that is not one.
Each goes through ``mdnworld.cli.main`` and must end as one ``error: ...`` line naming the file
or key, exit status 2, and leave every file of the run as it was. No game, no training: the run
is made from the repository's shipped models (``from-shipped``)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mdnworld.cli import main
from mdnworld.io import write_npz
from mdnworld.layout import RunLayout
from mdnworld.shipped import DEFAULT_DIR, init_from_shipped

Setup = Callable[[Path], list[str]]
"""Makes the probe's files under a copy of the shipped run (or beside it); the CLI's argv."""


@pytest.fixture(scope="module")
def shipped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with the repository's V and five Ms (done heads) and their start latents."""
    run = tmp_path_factory.mktemp("probes") / "run"
    init_from_shipped(run, DEFAULT_DIR, log=lambda s: None)
    return run


def _files(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots``."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        if root.exists()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- the probes: (what, argv) given a fresh copy of the shipped run ---------------------------


def _flag(*argv: str) -> Setup:
    return lambda run: [argv[0], str(run), *argv[1:]]


def _toml(stage: str, key: str, value: str) -> Setup:
    def setup(run: Path) -> list[str]:
        cfg = run.parent / "bad.toml"
        cfg.write_text(f"[{stage}]\n{key} = {value}\n")
        return ["train-vae" if stage == "vae" else stage, str(run), "--config", str(cfg)]

    return setup


def _vae_meta(edit: Callable[[dict], object]) -> Setup:
    def setup(run: Path) -> list[str]:
        meta = RunLayout(run).vae_meta
        meta.write_text(json.dumps(edit(json.loads(meta.read_text()))))
        return ["encode", str(run), "--set", "encode.device=cpu"]

    return setup


def _state(arrays: Callable[[], dict[str, np.ndarray]] | bytes, cut: int = 0) -> Setup:
    def setup(run: Path) -> list[str]:
        path = RunLayout(run).controller_state
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(arrays, bytes):
            path.write_bytes(arrays)
        else:
            write_npz(path, arrays())
            if cut:
                path.write_bytes(path.read_bytes()[:cut])
        return ["train-controller", str(run), "--set", "controller.device=cpu",
                "--set", "controller.threads=1"]  # fmt: skip

    return setup


def _meta(meta: object) -> Callable[[], dict[str, np.ndarray]]:
    return lambda: {
        "fitness": np.zeros((1, 64)),
        "mean": np.zeros(321),
        "best_params": np.zeros(321, np.float32),
        "meta": np.array(json.dumps(meta)),
    }


def _manifest(edit: Callable[[dict], object]) -> Setup:
    def setup(run: Path) -> list[str]:
        models = run.parent / "shipped"
        shutil.copytree(DEFAULT_DIR, models)
        man = models / "MANIFEST.json"
        man.write_text(json.dumps(edit(json.loads(man.read_text()))))
        return ["from-shipped", str(run.parent / "new"), "--models", str(models)]

    return setup


PROBES: dict[str, tuple[Setup, str]] = {
    # item 2: NaN and ranges (the error names the key and the override or file)
    "free_bits=nan": (_flag("train-vae", "--set", "vae.free_bits=nan"), "vae.free_bits"),
    "free_bits=inf flag": (_flag("train-vae", "--free-bits", "inf"), "vae.free_bits"),
    "free_bits=nan in TOML": (_toml("vae", "free_bits", "nan"), "bad.toml: vae.free_bits"),
    "lr=inf": (_flag("train-vae", "--set", "vae.lr=inf"), "vae.lr"),
    "done_pos_weight=nan": (_flag("train-rnn", "--set", "rnn.done_pos_weight=nan"),
                            "rnn.done_pos_weight"),
    "wall_red_over_blue=-inf": (
        lambda run: ["analyze", "all", str(run), "--set", "analyze.wall_red_over_blue=-inf"],
        "analyze.wall_red_over_blue"),
    "detectors=nope": (
        lambda run: ["analyze", "all", str(run), "--set", "analyze.detectors=nope"],
        "analyze.detectors"),
    "epochs=0": (_flag("train-vae", "--set", "vae.epochs=0"), "vae.epochs"),
    "epochs=-2": (_flag("train-vae", "--epochs", "-2"), "vae.epochs"),
    "episodes=-3": (_flag("generate", "--episodes", "-3"), "generate.episodes"),
    "episodes=0": (_flag("generate", "--episodes", "0"), "generate.episodes"),
    "batch_size=0": (_flag("train-vae", "--set", "vae.batch_size=0"), "vae.batch_size"),
    "resolution=RES_FOO": (_flag("generate", "--set", "generate.resolution=RES_FOO"),
                           "generate.resolution"),
    # item 5: files that are not what they claim
    "vae/model.json = []": (_vae_meta(lambda m: []), "vae/model.json"),
    "vae/model.json without arch": (
        _vae_meta(lambda m: {k: v for k, v in m.items() if k != "arch"}), "vae/model.json"),
    "vae/model.json arch = 3": (_vae_meta(lambda m: {**m, "arch": 3}), "vae/model.json"),
    "cmaes_state not a zip": (_state(b"garbage" * 9), "cmaes_state.npz"),
    "cmaes_state truncated": (_state(_meta({"format": "mdnworld.cmaes/2"}), cut=300),
                              "cmaes_state.npz"),
    "cmaes_state zeroed": (_state(bytes(4096)), "cmaes_state.npz"),
    "cmaes_state meta = []": (_state(_meta([])), "cmaes_state.npz"),
    "cmaes_state meta without settings": (_state(_meta({"format": "mdnworld.cmaes/2"})),
                                          "cmaes_state.npz"),
    "MANIFEST.json = []": (_manifest(lambda m: []), "MANIFEST.json"),
    "MANIFEST.json without files": (
        _manifest(lambda m: {k: v for k, v in m.items() if k != "files"}), "MANIFEST.json"),
    "MANIFEST.json files = []": (_manifest(lambda m: {**m, "files": []}), "MANIFEST.json"),
    "MANIFEST.json models outside": (_manifest(lambda m: {**m, "models": ["../../x"]}),
                                     "MANIFEST.json"),
}  # fmt: skip


@pytest.mark.parametrize("probe", list(PROBES))
def test_a_probe_is_one_named_error_and_destroys_nothing(
    probe: str, shipped_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    setup, needle = PROBES[probe]
    run = tmp_path / "run"
    shutil.copytree(shipped_run, run)
    argv = setup(run)
    before = _files(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    after = _files(tmp_path)
    assert {p: after.get(p) for p in before} == before  # every file kept, unchanged


def test_a_bad_resolution_flag_is_refused_before_any_worker_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``--resolution RES_FOO``: argparse's usage error (exit 2) naming the flag and its
    choices, before anything is written (never "a worker process died")."""
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["generate", str(run), "--resolution", "RES_FOO", "--workers", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "--resolution" in err and "invalid choice: 'RES_FOO'" in err
    assert not run.exists()


# --- item 6: paths read from the run's own JSON stay inside the run ---------------------------

SECRET = b"not the run's to show\n"


def _components(run: RunLayout, figure: str) -> Path:
    path = run.analysis_results("components-over-time")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = {"figure": figure, "dominant_share": [3, 7], "switches": 1, "start_episode": 0}
    path.write_text(json.dumps({"steps": 10, "warmup": 5, "models": {"0": model}}))
    return path


def _scores(run: RunLayout, file: str) -> Path:
    from mdnworld.reference import EVALUATE_REFERENCE

    run.evaluate_dir.mkdir(parents=True, exist_ok=True)
    video = {"file": file, "seed": 3, "score": 200}
    run.evaluate_scores.write_text(json.dumps({
        "controller": "mean", "generation": 1, "episodes": 1, "mean": 200.0, "std": 0.0,
        "min": 200, "max": 200, "solved": False, "per_episode": [],
        "reference": EVALUATE_REFERENCE, "best_video": video, "worst_video": None,
    }))  # fmt: skip
    return run.evaluate_scores


def _outside(tmp_path: Path, kind: str, folder: Path) -> str:
    """A path to ``tmp_path/secret.png`` (outside the run) as a results file in ``folder``
    could hold it: with ``..``, absolute, or through a symlink inside the run."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(SECRET)
    if kind == "dotdot":
        return "../" * len(folder.relative_to(tmp_path).parts) + "secret.png"
    if kind == "absolute":
        return str(secret)
    link = folder / "sub" / "link.png"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    return "sub/link.png"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
@pytest.mark.parametrize("which", ["components figure", "scores video"])
def test_report_refuses_a_path_from_the_run_s_json_that_leaves_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, kind: str, which: str
) -> None:
    """Issue 17 item 6: a results.json whose ``figure`` was ``../../../../etc/hostname`` made
    ``report`` copy that file into the report. Now: one error line naming the file and the
    key, exit 2, nothing of the outside file in the run."""
    run = RunLayout(tmp_path / "run")
    if which == "components figure":
        path = _components(run, _outside(tmp_path, kind, run.analysis_dir))
        key = "models.0.figure"
    else:
        path, key = _scores(run, _outside(tmp_path, kind, run.evaluate_dir)), "best_video.file"
    assert main(["report", str(run.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: key '{key}'"), err
    assert "leads out of" in err[0] or "not a relative path" in err[0]
    copies = [p for p in run.root.rglob("*") if p.is_file() and not p.is_symlink()
              and p.read_bytes() == SECRET]  # fmt: skip
    assert copies == []


def test_report_shows_a_figure_inside_the_run(tmp_path: Path) -> None:
    """The check lets the run's own files through, ``..`` that stays inside included."""
    run = RunLayout(tmp_path / "run")
    png = run.analysis_model_file("components-over-time", 0, ".png")
    _components(run, "components_over_time/../components_over_time/model_0.png")
    png.write_bytes(SECRET)
    assert main(["report", str(run.root)]) == 0
    copy = run.report_dir / "media" / "analysis" / "components_over_time" / "model_0.png"
    assert copy.read_bytes() == SECRET
