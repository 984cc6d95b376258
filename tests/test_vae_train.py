"""train-vae and encode on real episodes: learning, exact resume, clear errors, determinism."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mdnworld.checkpoints import load_checkpoint, load_latents, load_vae, load_weights
from mdnworld.config import EncodeConfig, VAEConfig
from mdnworld.data.episodes import episode_files, load_episode
from mdnworld.data.frames import FrameStore, split_episodes
from mdnworld.errors import CheckpointError
from mdnworld.io import read_json
from mdnworld.models.vae import VAE, VAEArch, frames_to_tensor
from mdnworld.train.encode import encode_run, latent_files
from mdnworld.train.vae import evaluate, train_vae

QUIET = {"log": lambda s: None}


def _cfg(**kw) -> VAEConfig:
    base = dict(
        epochs=2,
        batch_size=64,
        val_frames=128,
        checkpoint_every=4,
        log_every=2,
        device="cpu",
        lr=1e-3,
    )
    return VAEConfig(**{**base, **kw})


def _run_copy(small_run: Path, dest: Path) -> Path:
    shutil.copytree(small_run / "episodes", dest / "episodes")
    return dest


@pytest.fixture(scope="module")
def trained(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with a VAE trained for 2 short epochs on the 4 real episodes, then encoded."""
    run = _run_copy(small_run, tmp_path_factory.mktemp("vae_run"))
    train_vae(run, _cfg(), **QUIET)
    encode_run(run, EncodeConfig(device="cpu"), **QUIET)
    return run


def test_frame_store_reads_the_stored_frames(small_run: Path) -> None:
    files = episode_files(small_run)
    store = FrameStore(files)
    assert len(store) == sum(len(load_episode(p)) for p in files)
    rows = np.random.default_rng(0).choice(len(store), 50, replace=False)
    got = store.read(rows)
    for r, frame in zip(rows, got, strict=True):
        f, t = store.index[r]
        assert np.array_equal(frame, load_episode(files[f]).frames[t])


def test_split_is_deterministic_and_disjoint() -> None:
    train, val = split_episodes(list(range(20)), 0.15, seed=3)
    assert (train, val) == split_episodes(list(range(20)), 0.15, seed=3)
    assert len(val) == 3 and not set(train) & set(val) and len(train) + len(val) == 20
    assert split_episodes([0, 1], 0.15, 0)[1] != []  # at least one held out


def test_training_lowers_validation_loss(trained: Path) -> None:
    model, _ = load_vae(trained)
    files = episode_files(trained)
    val_ids = read_json(trained / "vae" / "split.json")["val"]
    frames = np.concatenate([load_episode(files[i]).frames[:100] for i in val_ids])
    cfg = _cfg()
    before = evaluate(VAE(VAEArch()).eval(), frames, cfg, torch.device("cpu"))
    after = evaluate(model, frames, cfg, torch.device("cpu"))
    total = lambda m: m["recon"] + m["kl"]  # noqa: E731
    assert total(after) < 0.99 * total(before), (before, after)
    assert (trained / "vae" / "reconstructions.png").stat().st_size > 0
    assert (trained / "vae" / "recon" / "epoch_002.png").exists()
    rows = (trained / "vae" / "log.jsonl").read_text().splitlines()
    assert any('"val/recon"' in r for r in rows) and any('"train/kl"' in r for r in rows)


def test_weights_round_trip(trained: Path) -> None:
    model, _ = load_vae(trained)
    again, _ = load_vae(trained)
    x = frames_to_tensor(load_episode(episode_files(trained)[0]).frames[:8])
    with torch.no_grad():
        assert torch.equal(model.encode(x)[0], again.encode(x)[0])
        assert torch.equal(model.decode(model.encode(x)[0]), again.decode(again.encode(x)[0]))


def test_killed_and_resumed_equals_uninterrupted(small_run: Path, tmp_path: Path) -> None:
    a = _run_copy(small_run, tmp_path / "a")
    b = _run_copy(small_run, tmp_path / "b")
    train_vae(a, _cfg(), **QUIET)
    # "kill" b after 7 steps (last checkpoint at step 4), then twice more mid-epoch-2
    train_vae(b, _cfg(), stop_after_steps=7, **QUIET)
    assert not (b / "vae" / "model.safetensors").exists()
    train_vae(b, _cfg(), stop_after_steps=9, **QUIET)
    train_vae(b, _cfg(), **QUIET)
    wa, _ = load_weights(a / "vae" / "model.safetensors")
    wb, _ = load_weights(b / "vae" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    steps = [r for r in (b / "vae" / "log.jsonl").read_text().splitlines() if '"train/loss"' in r]
    assert len(steps) == len({r.split(",")[0] for r in steps})  # no duplicated steps in the log


def test_corrupt_checkpoint_is_a_clear_error(trained: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint"
    for suffix in (".safetensors", ".json"):
        shutil.copy(trained / "vae" / f"checkpoint{suffix}", ckpt.with_suffix(suffix))
    data = ckpt.with_suffix(".safetensors").read_bytes()
    ckpt.with_suffix(".safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checksum") as e:
        load_checkpoint(ckpt, VAE(VAEArch()))
    assert "checkpoint.safetensors" in str(e.value)


def test_mismatched_checkpoint_is_a_clear_error(trained: Path) -> None:
    with pytest.raises(CheckpointError, match="does not match the model") as e:
        load_checkpoint(trained / "vae" / "checkpoint", VAE(VAEArch(latent_dim=32)))
    assert "shape of" in str(e.value)


def test_encode_is_deterministic_one_latent_per_frame(trained: Path, tmp_path: Path) -> None:
    files = latent_files(trained)
    assert [p.name for p in files] == [p.name for p in episode_files(trained)]
    for lat, ep in zip(files, episode_files(trained), strict=True):
        d = load_latents(lat, latent_dim=64)
        e = load_episode(ep)
        assert d["mu"].shape == (len(e), 64) and d["logvar"].dtype == np.float32
        assert np.array_equal(d["actions"], e.actions) and np.array_equal(d["dones"], e.dones)
    other = tmp_path / "again"
    shutil.copytree(trained / "episodes", other / "episodes")
    shutil.copytree(trained / "vae", other / "vae")
    encode_run(other, EncodeConfig(device="cpu"), **QUIET)  # same settings, fresh process state
    for p in files:
        assert (other / "latents" / p.name).read_bytes() == p.read_bytes()
    assert encode_run(other, EncodeConfig(device="cpu"), **QUIET) == 0  # resumable: all done


def test_encode_refuses_latents_of_another_vae(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "mixed"
    for d in ("episodes", "vae", "latents"):
        shutil.copytree(trained / d, other / d)
    (other / "latents" / episode_files(other)[0].name).unlink()
    train_vae(other, _cfg(epochs=3), **QUIET)  # continues training: different weights
    with pytest.raises(ValueError, match="another VAE"):
        encode_run(other, EncodeConfig(device="cpu"), **QUIET)
