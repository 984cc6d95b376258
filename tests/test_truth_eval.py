"""``mdnworld detectors`` (analysis/truth.py): precision/recall/F1 with known answers, the
SPEC §7B event rule applied to the game's counts, and the command on a small run of real
episode files whose frames are drawn so that the detectors' answer is known."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mdnworld.analysis.truth import (
    CLASSES,
    NO_TRUTH,
    class_labels,
    evaluate_detectors,
    held_out,
    score,
    truth_features,
)
from mdnworld.cli import main
from mdnworld.data.episodes import Episode, save_episode
from mdnworld.errors import MissingError
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout

T = 8


def truth_arrays(
    fireballs: list[int],
    imps: list[int] | None = None,
    explosion: list[int] | None = None,
    left: list[int] | None = None,
) -> dict[str, np.ndarray]:
    n = len(fireballs)
    zeros = [0] * n
    box = np.full((n, 4), -1, np.int16)
    box[np.array(fireballs) > 0] = (20, 40, 24, 44)  # x0, y0, x1, y1: the drawn blob
    return {
        "truth_fireballs": np.array(fireballs, np.uint8),
        "truth_fireball_box": box,
        "truth_imps": np.array(imps or zeros, np.uint8),
        "truth_explosion": np.array(explosion or zeros, bool),
        "truth_hit": np.zeros(n, bool),
        "truth_left_wall": np.array(left or zeros, bool),
        "truth_right_wall": np.zeros(n, bool),
    }


# --- the metrics ---------------------------------------------------------------------------------


def test_score_known_answer() -> None:
    pred = np.array([1, 1, 0, 0, 1, 0], bool)
    true = np.array([1, 0, 1, 1, 1, 0], bool)
    s = score(pred, true)
    assert (s["tp"], s["fp"], s["fn"], s["support"]) == (2, 1, 2, 4)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))


def test_score_empty_classes_are_none_not_nan() -> None:
    nothing = np.zeros(5, bool)
    both_empty = score(nothing, nothing)
    assert (both_empty["precision"], both_empty["recall"], both_empty["f1"]) == (None, None, None)
    never_fires = score(nothing, np.array([1, 0, 0, 0, 0], bool))
    assert never_fires["precision"] is None
    assert never_fires["recall"] == 0.0 and never_fires["f1"] == 0.0
    never_true = score(np.array([1, 0, 0, 0, 0], bool), nothing)
    assert never_true["recall"] is None and never_true["support"] == 0
    assert never_true["precision"] == 0.0 and never_true["f1"] == 0.0
    empty = score(np.zeros(0, bool), np.zeros(0, bool))
    assert empty["f1"] is None
    with pytest.raises(ValueError):
        score(nothing, np.zeros(4, bool))


def test_truth_events_follow_the_spec_rule() -> None:
    """First frame and explosion frames skipped; counts compared with the last calm frame."""
    fire = [1, 2, 0, 1, 1, 0]  # frame 2 is an explosion: 2 -> (skip) -> 1 is a disappearance
    imps = [0, 0, 3, 1, 1, 2]
    labels = class_labels(truth_features(truth_arrays(fire, imps, [0, 0, 1, 0, 0, 0])))
    col = {name: labels[:, CLASSES.index(name)].tolist() for name in CLASSES}
    assert col["Explosion"] == [False, False, True, False, False, False]
    assert col["Fireball"] == [True, True, False, True, True, False]  # not in the explosion
    assert col["FireballAppears"] == [False, True, False, False, False, False]
    assert col["FireballDisappears"] == [False, False, False, True, False, True]
    assert col["MonsterAppears"] == [False, False, False, True, False, True]
    assert col["MonsterDisappears"] == [False] * 6


# --- the command on a small run ------------------------------------------------------------------

GREY = 90  # red, green, grey 0.35: no detector fires on it


def drawn_episode(seed: int) -> Episode:
    """T frames, drawn so that the detectors see: t1, t2 a fireball; t5 an explosion; t6 the
    left wall and a monster (each a test of SPEC §6)."""
    frames = np.full((T, 64, 64, 3), GREY, np.uint8)
    frames[[1, 2], 40:44, 20:24] = 255  # a bright blob low on the screen: one fireball
    frames[5, 0:6] = 255  # bright across the top rows: an explosion
    frames[6, 0:10, 0] = (200, 60, 60)  # reddish left edge: a left wall
    frames[6, 28:32, 30:33] = 10  # dark in the monster rows: one monster
    dones = np.zeros(T, bool)
    dones[-1] = True
    return Episode(frames, np.zeros((T, 1), np.float32), np.ones(T, np.float32), dones, seed)


# truth disagreeing with the drawing on purpose: a fireball the detector misses at t3, no left
# wall at t6, an imp that stays at t7
TRUTH = truth_arrays(
    fireballs=[0, 1, 1, 1, 0, 0, 0, 0],
    imps=[0, 0, 0, 0, 0, 0, 1, 1],
    explosion=[0, 0, 0, 0, 0, 1, 0, 0],
)


def write_run(root: Path, n: int = 3, truth: bool = True) -> RunLayout:
    run = RunLayout(root)
    run.episodes_dir.mkdir(parents=True)
    for i in range(n):
        ep = drawn_episode(i)
        ep.truth = TRUTH if truth else None
        save_episode(run.episode(i), ep)
    return run


EXPECTED = {  # per episode: (tp, fp, fn)
    "Explosion": (1, 0, 0),
    "Fireball": (2, 0, 1),
    "LeftWall": (0, 1, 0),
    "RightWall": (0, 0, 0),
    "FireballAppears": (1, 0, 0),
    "FireballDisappears": (0, 1, 1),  # detector at t3, truth at t4
    "MonsterAppears": (1, 0, 0),
    "MonsterDisappears": (0, 1, 0),  # the drawn monster vanishes at t7, the imp stays
}


def test_detectors_without_v_scores_real_frames(tmp_path: Path) -> None:
    run = write_run(tmp_path, n=3)
    atomic_write_json(run.rnn_split, {"train": [0], "val": [1, 2], "seed": 0})
    result = evaluate_detectors(tmp_path, log=lambda s: None)
    assert result["episodes"] == [1, 2] and result["episodes_from"] == "rnn/split.json val"
    assert result["reconstruction"] is None and list(result["scores"]) == ["real"]
    assert result["frames"] == 2 * T
    for name, (tp, fp, fn) in EXPECTED.items():
        s = result["scores"]["real"][name]
        assert (s["tp"], s["fp"], s["fn"]) == (2 * tp, 2 * fp, 2 * fn), name
    real = result["scores"]["real"]
    assert real["Fireball"]["f1"] == pytest.approx(0.8)
    assert real["RightWall"]["f1"] is None and real["LeftWall"]["recall"] is None
    with open(run.detectors_table) as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == list(CLASSES)
    assert rows[CLASSES.index("RightWall")]["precision"] == ""
    assert run.detectors_results.exists() and run.detectors_figure.stat().st_size > 0


def test_detectors_cli_episodes_and_no_split(tmp_path: Path) -> None:
    run = write_run(tmp_path, n=3)
    assert held_out(run) == ([0, 1, 2], "all episodes (no split)")
    assert main(["detectors", str(tmp_path), "--episodes", "1", "--device", "cpu"]) == 0
    assert read_json(run.detectors_results)["episodes"] == [0]


def test_detectors_validated_set_goes_beside_the_spec_one(tmp_path: Path) -> None:
    run = write_run(tmp_path, n=2)
    assert main(["detectors", str(tmp_path), "--device", "cpu"]) == 0
    assert main(["detectors", str(tmp_path), "--device", "cpu", "--detectors", "validated"]) == 0
    val = run.detectors_set_dir("validated")
    assert read_json(val / "results.json")["detectors"] == "validated"
    assert read_json(run.detectors_results)["detectors"] == "spec"  # untouched
    assert (val / "table.csv").exists() and (val / "detectors.png").stat().st_size > 0
    with open(run.detectors_compare) as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == list(CLASSES)
    assert set(rows[0]) == {"source", "class", "f1_spec", "f1_validated"}
    with pytest.raises(SystemExit):
        main(["detectors", str(tmp_path), "--detectors", "nope"])


def test_detectors_without_truth_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path, n=2, truth=False)
    with pytest.raises(MissingError, match="generate --truth"):
        evaluate_detectors(tmp_path, log=lambda s: None)
    assert main(["detectors", str(tmp_path)]) == 2
    assert NO_TRUTH in capsys.readouterr().err


@pytest.mark.slow  # trains a V (about 4 s)
def test_detectors_with_a_tiny_v_scores_reconstructions(tmp_path: Path) -> None:
    """A real V trained for one short epoch on the drawn frames: both sources scored (the
    reconstruction's numbers depend on how well it learnt; only their bookkeeping is checked)."""
    from mdnworld.config import VAEConfig
    from mdnworld.train.vae import train_vae

    run = write_run(tmp_path, n=4)
    cfg = VAEConfig(epochs=1, batch_size=8, val_frames=8, grid_frames=2, device="cpu", threads=1)
    train_vae(tmp_path, cfg, log=lambda s: None)
    result = evaluate_detectors(tmp_path, device="cpu", log=lambda s: None)
    assert result["episodes_from"] == "vae/split.json val"
    assert result["reconstruction"] == "vae/model.safetensors"
    assert list(result["scores"]) == ["real", "reconstruction"]
    for name in CLASSES:
        s = result["scores"]["reconstruction"][name]
        assert s["tp"] + s["fn"] == result["scores"]["real"][name]["support"]
    with open(run.detectors_table) as f:
        assert len(list(csv.DictReader(f))) == 2 * len(CLASSES)


# --- the report section --------------------------------------------------------------------------


def _report_section(root: Path) -> str:
    from mdnworld.report import write_report

    index = write_report(root, log=lambda s: None)
    return index.read_text().split('<section id="detectors">')[1].split("</section>")[0]


def test_report_section_shows_the_table_or_the_command(tmp_path: Path) -> None:
    run = write_run(tmp_path, n=2)
    html = _report_section(tmp_path)
    assert "Missing:" in html and f"mdnworld detectors {tmp_path}" in html
    evaluate_detectors(tmp_path, log=lambda s: None)
    html = _report_section(tmp_path)
    assert "Missing:" not in html and "no V: real frames only" in html
    assert 'title="scores.real.Fireball.f1 in analysis/detectors/results.json"' in html
    assert (run.report_dir / "data" / "analysis" / "detectors" / "results.json").is_file()


def test_report_section_names_a_malformed_file(tmp_path: Path) -> None:
    from mdnworld.errors import DataError
    from mdnworld.records.detectors import read_detectors

    run = write_run(tmp_path, n=1)
    evaluate_detectors(tmp_path, log=lambda s: None)
    data = read_json(run.detectors_results)
    del data["scores"]["real"]["Fireball"]["tp"]
    atomic_write_json(run.detectors_results, data)
    with pytest.raises(DataError, match="scores.real.Fireball"):
        read_detectors(run.detectors_results)
