"""scripts/rnn_legs.py: an M's training carried over a machine that keeps no files, in legs
(save the latest weights and the record of the legs; restore the finished Ms; --init the rest)."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from mdnworld.checkpoints import load_mdnrnn
from mdnworld.config import RNNConfig
from mdnworld.io import read_json
from mdnworld.layout import RunLayout
from mdnworld.train.rnn import train_rnn

QUIET = {"log": lambda s: None}
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rnn_legs.py"


@pytest.fixture(scope="module")
def legs():
    spec = importlib.util.spec_from_file_location("rnn_legs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(encoded: Path, root: Path) -> Path:
    for sub in ("episodes", "vae", "latents"):
        shutil.copytree(encoded / sub, root / sub)
    return root


def test_legs_carry_a_training_over_a_wiped_machine(legs, encoded: Path, tmp_path: Path) -> None:
    cfg = RNNConfig(hidden=32, epochs=3, patience=5, batch_size=32, models=2, device="cpu",
                    threads=1)  # fmt: skip
    first = _run(encoded, tmp_path / "first")
    # model_0 runs its 3 epochs; model_1 is cut during its second epoch (best weights of epoch 1)
    steps = train_rnn(first, dataclasses.replace(cfg, models=1), **QUIET)[0]["steps"]
    train_rnn(first, cfg, stop_after_steps=steps // 3 + 2, **QUIET)
    out = tmp_path / "legs"
    legs.save(first, out, "one", None)
    record = read_json(out / "LEGS.json")["models"]
    (leg0,), (leg1,) = record["0"]["legs"], record["1"]["legs"]
    assert [leg0[k] for k in ("leg", "epochs", "stop")] == ["one", 3, "epochs"]
    assert [leg1[k] for k in ("epochs", "best_epoch", "stop")] == [1, 1, "cut"]
    assert record["0"]["done"] and not record["1"]["done"]
    # the machine comes back empty: a rebuilt run gets model_0 as finished, model_1 goes on
    second = _run(encoded, tmp_path / "second")
    legs.restore(out, second)
    assert RunLayout(second).rnn_indices() == [0]
    (a, _), (b, _) = load_mdnrnn(first, 0), load_mdnrnn(second, 0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=2e-3, rtol=1e-3)  # float16 in the legs folder
    metas = train_rnn(second, dataclasses.replace(cfg, init=str(out)), **QUIET)
    assert [m["epochs_run"] for m in metas] == [3, 3]  # model_0 skipped, model_1 a new leg
    legs.save(second, out, "two", None)
    record = read_json(out / "LEGS.json")["models"]
    assert [g["leg"] for g in record["1"]["legs"]] == ["one", "two"] and record["1"]["done"]
    assert [g["leg"] for g in record["0"]["legs"]] == ["one"]  # restored, not trained again
