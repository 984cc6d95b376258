"""train-rnn on latents of real episodes under a real (briefly trained) VAE: it learns dynamics
beyond z_{t+1} = z_t, resumes exactly, reports its mixture, and refuses mismatched latents."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mdnworld.checkpoints import load_latents, load_mdnrnn, load_weights
from mdnworld.cli import main
from mdnworld.config import RNNConfig, RunConfig
from mdnworld.data.sequences import n_windows
from mdnworld.errors import CheckpointError, EpisodeFileError
from mdnworld.io import atomic_write_json, read_json, write_npz
from mdnworld.logs import read_log
from mdnworld.models.mdnrnn import MDNRNNArch, StandardisedMDNRNN, mdn_nll
from mdnworld.pipeline import STAGES
from mdnworld.train.encode import latent_files
from mdnworld.train.rnn import evaluate, load_rnn_data, model_dir, train_rnn

QUIET = {"log": lambda s: None}


def _cfg(**kw) -> RNNConfig:
    base = dict(
        hidden=64,
        n_components=5,
        epochs=12,
        patience=0,
        batch_size=32,
        log_every=2,
        checkpoint_every=1000,
        device="cpu",
        threads=1,  # tiny models; and 2 OpenMP threads crawl when another process holds a core
    )
    return RNNConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(encoded: Path) -> tuple[Path, dict, list[str]]:
    lines: list[str] = []
    (meta,) = train_rnn(encoded, _cfg(), log=lines.append)
    return encoded, meta, lines


def test_learns_dynamics_beyond_the_random_walk_baseline(trained) -> None:
    run, meta, lines = trained
    m = meta["metrics"]
    # the assertion that matters: below z_{t+1} = z_t with a fitted per-dim sigma, on the
    # held-out episode's windows, by a clear margin (nats per step and latent dim)
    assert m["val_nll_per_dim"] < m["val_baseline_nll_per_dim"] - 0.25, m
    assert m["train_nll_per_dim"] < m["train_baseline_nll_per_dim"] - 0.25, m
    # validation NLL fell during training, and the kept weights are the best epoch's
    rows = [r for r in read_log(model_dir(run, 0) / "log.jsonl") if "val/nll_per_dim" in r]
    assert len(rows) == 12 and rows[-1]["epoch"] == 12
    assert rows[0]["val/nll_per_dim"] > m["val_nll_per_dim"]
    assert m["val_nll_per_dim"] == min(r["val/nll_per_dim"] for r in rows)
    assert meta["best_epoch"] == m["epoch"] and meta["epochs_run"] == 12
    # the mixture diagnostics are there and sane
    assert 0 <= m["pi_entropy"] <= m["pi_entropy_max"] + 1e-9
    assert m["pi_entropy_max"] == pytest.approx(np.log(5))
    assert len(m["component_usage"]) == 5 and sum(m["component_usage"]) == pytest.approx(1)
    assert all(f"val/usage_{k}" in rows[-1] for k in range(5))
    assert any("train/nll_per_dim" in r for r in read_log(model_dir(run, 0) / "log.jsonl"))
    # ... and printed at the end
    assert any("baseline" in line for line in lines)
    assert any(f"{m['val_nll_per_dim']:8.4f}" in line for line in lines)
    assert "0 episode(s) shorter than 61 frames skipped" in lines[0]
    # the split (seed 0, as V's default) is recorded
    split = read_json(run / "rnn" / "split.json")
    assert split["train"] == [0, 1, 3] and split["val"] == [2]
    stage = next(s for s in STAGES if s.name == "train-rnn")
    assert stage.section == "rnn" and stage.is_done(run, RunConfig(rnn=_cfg()))
    assert not stage.is_done(run, RunConfig(rnn=_cfg(models=2)))


def test_loaded_model_reproduces_the_reported_nll(trained) -> None:
    run, meta, _ = trained
    model, meta2 = load_mdnrnn(run, 0)
    assert isinstance(model, StandardisedMDNRNN) and not model.training
    assert meta2["metrics"] == meta["metrics"]
    data = load_rnn_data(run, _cfg())
    v = evaluate(model, data.val, data.val.mu, np.arange(len(data.val)), 64, torch.device("cpu"))
    assert v["nll_per_dim"] == pytest.approx(meta["metrics"]["val_nll_per_dim"], abs=1e-5)
    # outputs are in the VAE's units: stepping through real latents gives the same NLL
    b = data.val.batch(np.arange(4))
    z, a, zn = (torch.from_numpy(np.ascontiguousarray(x)) for x in b[:3])
    with torch.no_grad():
        out, _ = model(z, a)
        state, nll_steps = None, []
        for t in range(z.shape[1]):
            o, state = model.step(z[:, t], a[:, t], state)
            nll_steps.append(mdn_nll(o, zn[:, t], "shared"))
    torch.testing.assert_close(torch.stack(nll_steps, 1), mdn_nll(out, zn, "shared"))


def test_killed_and_resumed_equals_uninterrupted(encoded: Path, tmp_path: Path) -> None:
    """Per-dim mixture, sampled z, both heads, two models; killed mid-epoch (after a step
    checkpoint), at an epoch end in the second model, then finished."""
    cfg = _cfg(
        hidden=32,
        n_components=3,
        mixture="per_dim",
        z_source="sample",
        done_head=True,
        reward_head=True,
        epochs=3,
        patience=2,
        batch_size=64,
        checkpoint_every=3,
        models=2,
    )
    runs = {}
    for name in ("a", "b"):
        runs[name] = tmp_path / name
        shutil.copytree(encoded / "latents", runs[name] / "latents")
    train_rnn(runs["a"], cfg, **QUIET)
    b = runs["b"]
    assert train_rnn(b, cfg, stop_after_steps=7, **QUIET) == []  # 4 steps/epoch; ckpt at 6
    assert not (model_dir(b, 0) / "model.safetensors").exists()
    assert len(train_rnn(b, cfg, stop_after_steps=10, **QUIET)) == 1  # ends model_1 epoch 1
    assert (model_dir(b, 1) / "checkpoint.json").exists()
    assert len(train_rnn(b, cfg, **QUIET)) == 2
    for i in (0, 1):
        for f in ("model.safetensors", "best.safetensors"):
            wa, ma = load_weights(model_dir(runs["a"], i) / f)
            wb, mb = load_weights(model_dir(b, i) / f)
            assert wa.keys() == wb.keys()
            assert all(torch.equal(wa[k], wb[k]) for k in wa), (i, f)
            assert ma == mb
        rows = [r["step"] for r in read_log(model_dir(b, i) / "log.jsonl") if "train/loss" in r]
        assert rows == sorted(set(rows))  # no step logged twice
    w0, _ = load_weights(model_dir(b, 0) / "model.safetensors")
    w1, _ = load_weights(model_dir(b, 1) / "model.safetensors")
    assert not torch.equal(w0["mdn.weight"], w1["mdn.weight"])  # seed + index differ
    assert "done_bce" in str(read_json(model_dir(b, 1) / "model.json")["metrics"])


def _copy_latents(src: Path, dest: Path, zdim: int | None = None) -> Path:
    shutil.copytree(src / "latents", dest / "latents")
    if zdim is not None:
        for p in latent_files(dest):
            d = load_latents(p)
            write_npz(p, {**d, "mu": d["mu"][:, :zdim], "logvar": d["logvar"][:, :zdim]})
        man = read_json(dest / "latents" / "manifest.json")
        atomic_write_json(dest / "latents" / "manifest.json", {**man, "latent_dim": zdim})
    return dest


def test_latent_size_mismatch_is_a_clear_error(trained, tmp_path: Path) -> None:
    run, _, _ = trained
    # one latent file whose Z differs from the manifest
    one = _copy_latents(run, tmp_path / "one")
    bad = latent_files(one)[2]
    d = load_latents(bad)
    write_npz(bad, {**d, "mu": d["mu"][:, :32], "logvar": d["logvar"][:, :32]})
    with pytest.raises(EpisodeFileError, match="latent size 32, expected 64") as e:
        train_rnn(one, _cfg(), **QUIET)
    assert str(bad) in str(e.value)
    # a config that asks for another size
    with pytest.raises(ValueError, match="rnn.latent_dim = 32") as e:
        train_rnn(run, _cfg(latent_dim=32), **QUIET)
    assert "manifest.json" in str(e.value)
    # a checkpoint (and a final model) trained on 64-d latents, in a run with 32-d latents
    small = _copy_latents(run, tmp_path / "small", zdim=32)
    (small / "rnn").mkdir()
    shutil.copytree(run / "rnn" / "model_0", small / "rnn" / "model_0")
    (small / "rnn" / "model_0" / "model.json").rename(small / "rnn" / "model_0" / "m.json")
    with pytest.raises(CheckpointError, match="latents of size 64") as e:
        train_rnn(small, _cfg(), **QUIET)
    assert "model_0/checkpoint.json" in str(e.value)
    (small / "rnn" / "model_0" / "m.json").rename(small / "rnn" / "model_0" / "model.json")
    with pytest.raises(CheckpointError, match="size 64") as e:
        load_mdnrnn(small, 0)
    assert "model_0/model.safetensors" in str(e.value)


def test_stale_latents_and_short_episodes(trained, tmp_path: Path) -> None:
    run, _, _ = trained
    other = _copy_latents(run, tmp_path / "stale")
    shutil.copytree(run / "vae", other / "vae")
    meta = read_json(other / "vae" / "model.json")
    atomic_write_json(other / "vae" / "model.json", {**meta, "sha256": "0" * 64})
    with pytest.raises(ValueError, match="another VAE"):
        load_rnn_data(other, _cfg())
    # episode 1 has 146 frames: with 150-step windows it is skipped and counted
    data = load_rnn_data(run, _cfg(seq_len=150))
    assert data.train.skipped == 1 and data.train.skipped_names == ["ep_000001.npz"]
    lengths = [len(load_latents(p)["mu"]) for p in latent_files(run)]
    assert len(data.train) == sum(n_windows(lengths[i], 150, 3) for i in (0, 1, 3)) > 0
    with pytest.raises(ValueError, match="no training windows: all 3 training episode"):
        load_rnn_data(run, _cfg(seq_len=400))


def test_cli_reports_missing_latents(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train-rnn", str(tmp_path), "--epochs", "1"]) == 2
    assert "run `mdnworld encode` first" in capsys.readouterr().err


def test_standardised_model_is_a_plain_mdnrnn_at_identity() -> None:
    torch.manual_seed(0)
    arch = MDNRNNArch(latent_dim=4, hidden=8, n_components=2)
    model = StandardisedMDNRNN(arch)
    z, a = torch.randn(2, 3, 4), torch.rand(2, 3, 1)
    out, _ = model(z, a)
    model.set_standardisation(np.full(4, 5.0), np.full(4, 0.01))
    out2, _ = model(z * 0.01 + 5.0, a)  # the same standardised inputs
    torch.testing.assert_close(out2.mu, out.mu * 0.01 + 5.0)
    torch.testing.assert_close(out2.log_sigma, out.log_sigma + np.log(0.01))
    torch.testing.assert_close(out2.logits, out.logits)
    assert set(model.state_dict()) >= {"z_shift", "z_scale"}


def test_max_minutes_stops_at_an_epoch_end_and_keeps_the_best(
    encoded: Path, tmp_path: Path
) -> None:
    """A time limit ends training after the first epoch, like early stopping: the final
    weights are written and the meta says why it stopped."""
    run = tmp_path / "run"
    shutil.copytree(encoded / "latents", run / "latents")
    (meta,) = train_rnn(run, _cfg(hidden=16, epochs=5, max_minutes=1e-6), **QUIET)
    assert meta["epochs_run"] == 1 and meta["stopped_by_time"] and not meta["stopped_early"]
    assert (model_dir(run, 0) / "model.safetensors").exists()
