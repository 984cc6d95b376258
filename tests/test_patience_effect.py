"""benchmarks/patience_effect.py: an M's best weights kept when patience would have run out,
and written back as a model that analysis B reads like the final one."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from patience_effect import compare, keep_snapshot, spread  # noqa: E402

from mdnworld.layout import RunLayout  # noqa: E402


def _training(src: RunLayout, dst: RunLayout, curve: list[float]) -> None:
    """``dst``: ``src``'s model_0 best weights, with a validation log of ``curve`` (epochs
    1, 2, ...) as train-rnn writes it."""
    dst.rnn_model_dir(0).mkdir(parents=True, exist_ok=True)
    for path in (src.rnn_best(0), src.rnn_best(0).with_suffix(".json")):
        shutil.copy2(path, dst.rnn_model_dir(0) / path.name)
    rows = [
        {"step": 10 * e, "epoch": float(e), "val/nll_per_dim": v} for e, v in enumerate(curve, 1)
    ]
    dst.rnn_log(0).write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_kept_at_patience_then_analysed_like_the_final_model(
    full_run: Path, tmp_path: Path
) -> None:
    src, training = RunLayout(full_run), RunLayout(tmp_path / "training")
    snap = tmp_path / "snap"
    best = json.loads(src.rnn_best(0).with_suffix(".json").read_text())["metrics"]["epoch"]
    curve = [-1.0] * (best - 1) + [-2.0] + [-1.5] * 4  # the best, then 4 epochs without gain
    _training(src, training, curve)
    assert keep_snapshot(training, snap, 0, patience=5) == "waiting"
    assert not (snap / "model_0").exists()
    _training(src, training, [*curve, -1.9, -2.5])  # the 5th without gain; a later best
    assert keep_snapshot(training, snap, 0, patience=5) == "kept"
    kept = snap / "model_0" / "best.safetensors"
    assert kept.read_bytes() == src.rnn_best(0).read_bytes()
    assert not list(snap.glob(".model_*"))  # no temp left behind
    # the weights on disk are of an earlier best than the one patience 2 would have kept
    missed = tmp_path / "snap_missed"
    _training(src, training, [-1.0] * best + [-2.0] + [-1.5] * 3)
    assert keep_snapshot(training, missed, 0, patience=2) == "missed"
    assert not (missed / "model_0").exists() and not list(missed.glob(".model_*"))
    # the snapshot is the finished model's own best epoch here: B must come out the same
    rows = compare(src, snap, full_run.parent / "tiny.toml", patience=5, yardstick=[1])
    final, early, other = rows
    assert (final["weights"], early["weights"]) == ("final", "patience 5")
    assert (other["model"], other["weights"]) == (1, "final")  # the yardstick: final only
    assert early["epochs_run"] == early["best_epoch"] + 5
    assert early["val_nll_per_dim"] == final["val_nll_per_dim"]
    assert early["classes"] == final["classes"]
    assert {"Explosion", "Fireball", "FireballAppears"} <= set(final["classes"])
    assert 0.0 <= final["classes"]["Fireball"]["dream_share"] <= 1.0
    gaps = spread(rows)
    assert gaps and all(set(g["early_minus_final"].values()) <= {0.0} for g in gaps.values())
    assert all(g["finals_min"] <= g["finals_max"] for g in gaps.values())
