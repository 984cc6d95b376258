"""Shipping trained models (export-models) and runs started from them (from-shipped): float16
changes little, dream/analyze run without data, tampering is caught, nothing is overwritten."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mdnworld.checkpoints import StartBank, load_mdnrnn, load_vae
from mdnworld.cli import main
from mdnworld.config import RNNConfig
from mdnworld.dreams import decode
from mdnworld.errors import CheckpointError
from mdnworld.train.rnn import train_rnn

QUIET = {"log": lambda s: None}


@pytest.fixture(scope="module")
def trained_run(encoded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ship_run")
    for sub in ("episodes", "vae", "latents"):
        shutil.copytree(encoded / sub, run / sub)
    cfg = RNNConfig(hidden=32, epochs=1, patience=0, batch_size=32, models=2, device="cpu",
                    threads=1)  # fmt: skip
    train_rnn(run, cfg, **QUIET)
    return run


def test_shipped_models_reproduce_the_run_and_analyses_run(trained_run: Path, tmp_path: Path):
    shipped, fresh = tmp_path / "shipped", tmp_path / "fresh"
    assert main(["export-models", str(trained_run), str(shipped)]) == 0
    assert main(["from-shipped", str(fresh), "--models", str(shipped)]) == 0
    # float16 weights: decoded frames within 1 % of the range, M's mixture means close
    z = torch.randn(16, 64)
    (vae_a, _), (vae_b, _) = load_vae(trained_run), load_vae(fresh)
    assert np.abs(decode(vae_a, z) - decode(vae_b, z)).max() < 0.01
    (m_a, _), (m_b, _) = load_mdnrnn(trained_run, 1), load_mdnrnn(fresh, 1)
    out_a, _ = m_a.step(z, torch.zeros(16, 1))
    out_b, _ = m_b.step(z, torch.zeros(16, 1))
    torch.testing.assert_close(out_a.logits, out_b.logits, atol=0.05, rtol=0.01)
    # the start latents of the training episodes came along (steps 0 and 150)
    ids_a, mu_a = StartBank.from_run(trained_run).at(0)
    ids_b, mu_b = StartBank.from_run(fresh).at(0)
    assert ids_a.tolist() == ids_b.tolist() and np.allclose(mu_a, mu_b, atol=0.01)
    # no episodes, no latents: an analysis and a dream run on the shipped models alone
    assert not (fresh / "episodes").exists()
    assert main(["analyze", "components-over-time", str(fresh), "--a-warmup", "5",
                 "--a-steps", "10"]) == 0  # fmt: skip
    assert (fresh / "analysis" / "components_over_time" / "model_1.png").exists()
    assert main(["dream", str(fresh), "--dreams", "1", "--steps", "5", "--no-gif",
                 "--committed", "0"]) == 0  # fmt: skip
    # what the shipped starts do not hold is a clear error
    with pytest.raises(ValueError, match="shipped start latents hold steps"):
        StartBank.from_run(fresh).sample(2, t=7)


def test_tampering_and_overwriting_are_refused(trained_run: Path, tmp_path: Path, capsys):
    shipped = tmp_path / "shipped"
    assert main(["export-models", str(trained_run), str(shipped), "--fp32"]) == 0
    assert main(["from-shipped", str(trained_run), "--models", str(shipped)]) == 2
    assert "already has trained models" in capsys.readouterr().err
    target = shipped / "rnn" / "model_0.safetensors"
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)
    assert main(["from-shipped", str(tmp_path / "new"), "--models", str(shipped)]) == 2
    assert "model_0.safetensors: missing or its checksum differs" in capsys.readouterr().err
    with pytest.raises(CheckpointError):
        from mdnworld.shipped import init_from_shipped

        init_from_shipped(tmp_path / "new2", shipped, **QUIET)


@pytest.mark.parametrize(("name", "recon_loss"), [("paper", "bce"), ("sharp", "mse")])
def test_the_repositorys_shipped_models_load_and_dream(
    name: str, recon_loss: str, tmp_path: Path
) -> None:
    """results/paper/models and results/sharp/models (committed, configs/paper.toml's and
    sharp.toml's): checksums hold, each M is the paper's (K = 5, one shared categorical, LSTM
    256, done head) under its own V, and an analysis runs on them with no data."""
    from mdnworld.io import read_json
    from mdnworld.shipped import DEFAULT_DIR

    shipped, fresh = DEFAULT_DIR.parents[1] / name / "models", tmp_path / "fresh"
    models = read_json(shipped / "MANIFEST.json")["models"]
    assert main(["from-shipped", str(fresh), "--models", str(shipped)]) == 0
    assert len(list((shipped / "rnn").glob("model_*.safetensors"))) == len(models) >= 1
    assert load_vae(fresh)[1]["config"]["recon_loss"] == recon_loss
    for i in (int(m.removeprefix("model_")) for m in models):
        arch = load_mdnrnn(fresh, i)[1]["arch"]
        assert (arch["n_components"], arch["mixture"], arch["hidden"]) == (5, "shared", 256)
        assert arch["done_head"]
    assert main(["analyze", "components-over-time", str(fresh), "--models", "1",
                 "--a-warmup", "5", "--a-steps", "10"]) == 0  # fmt: skip
    assert (fresh / "analysis" / "components_over_time" / "model_0.png").exists()


def test_a_shipped_controller_plays_the_real_game_from_the_new_run(
    full_run: Path, tmp_path: Path
) -> None:
    """A run with a controller ships it too (float32): from-shipped makes a run where
    ``evaluate`` plays the real game with it and, with float32 V and M, scores what the original
    run scored on the same seeds."""
    from mdnworld.control.evaluate import load_controller
    from mdnworld.io import atomic_write_json, read_json
    from mdnworld.shipped import read_manifest

    shipped, fresh = tmp_path / "shipped", tmp_path / "fresh"
    assert main(["export-models", str(full_run), str(shipped), "--fp32"]) == 0
    assert "controller.json" in read_json(shipped / "MANIFEST.json")["files"]
    assert main(["from-shipped", str(fresh), "--models", str(shipped)]) == 0
    (a, meta_a), (b, meta_b) = load_controller(full_run), load_controller(fresh)
    assert np.array_equal(a, b) and meta_a["arch"] == meta_b["arch"]
    assert not (fresh / "episodes").exists()
    original = read_json(full_run / "evaluate" / "scores.json")  # tiny config: 2 episodes
    assert main(["evaluate", str(fresh), "--episodes", "2", "--workers", "1",
                 "--max-steps", "100", "--no-videos"]) == 0  # fmt: skip
    ours = read_json(fresh / "evaluate" / "scores.json")
    assert ours["per_episode"] == original["per_episode"]
    # a manifest that lists the controller without its meta is refused, naming what is missing
    manifest = read_json(shipped / "MANIFEST.json")
    del manifest["files"]["controller.json"]
    atomic_write_json(shipped / "MANIFEST.json", manifest)
    with pytest.raises(CheckpointError, match="does not list \\['controller.json'\\]"):
        read_manifest(shipped)


def test_the_repositorys_controller_models_play_the_real_game(tmp_path: Path) -> None:
    """results/controller/models (committed, issue 22's final controller): checksums hold,
    it is World Models' M (LSTM 512, a mixture per latent dim, done head) under a 64-d V with
    the controller that reads [z, h], and ``evaluate`` plays the real game with it. Every
    shipped folder together stays under 50 MB."""
    from mdnworld.control.evaluate import load_controller
    from mdnworld.io import read_json
    from mdnworld.shipped import DEFAULT_DIR

    shipped = DEFAULT_DIR.parents[1] / "controller" / "models"
    fresh = tmp_path / "fresh"
    assert main(["from-shipped", str(fresh), "--models", str(shipped)]) == 0
    arch = load_mdnrnn(fresh, 0)[1]["arch"]
    assert (arch["hidden"], arch["mixture"], arch["done_head"]) == (512, "per_dim", True)
    _, meta = load_controller(fresh)
    assert meta["arch"] == {"latent_dim": 64, "hidden": 512, "action_dim": 1}
    assert main(["evaluate", str(fresh), "--episodes", "1", "--workers", "1",
                 "--max-steps", "200", "--no-videos"]) == 0  # fmt: skip
    assert read_json(fresh / "evaluate" / "scores.json")["per_episode"][0]["score"] > 0
    folders = [p.parent for p in DEFAULT_DIR.parents[1].glob("*/models/MANIFEST.json")]
    assert len(folders) >= 2
    size = sum(f.stat().st_size for d in folders for f in d.rglob("*") if f.is_file())
    assert size < 50 * 2**20, f"shipped models {size / 2**20:.1f} MB"
