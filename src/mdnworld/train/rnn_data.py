"""M's data: every latent file in memory, whole episodes split, windows cut, the baseline fitted.

What evaluation needs is fixed here once: the validation windows, a fixed subset of training
windows (``eval_windows``), their latents (mu, or one fixed sample for ``z_source="sample"``)
and the random-walk baseline z_{t+1} ~ N(z_t, sigma^2) on the same windows.

Standardisation (``standardise``, on by default): the model is a ``StandardisedMDNRNN``, which
standardises its input latents per dim with the training mean and std and maps its mixture
back, so inputs and outputs are in the VAE's units and the NLL is the NLL of the real latents.
Why: the mixture head floors sigma at exp(-5) ~ 6.7e-3 in absolute units, but most latent
dims of a VAE are barely used and their mu moves by less than that per step; the baseline fits
those steps and M could not, whatever it learned. Standardised, the floor is 6.7e-3 stds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mdnworld.checkpoints import load_latents, read_latent_manifest
from mdnworld.config import RNNConfig
from mdnworld.data.frames import split_episodes
from mdnworld.data.sequences import (
    Z_SOURCES,
    SequenceData,
    random_walk_nll,
    random_walk_sigma,
)
from mdnworld.errors import ConfigError, DataError, MissingError
from mdnworld.layout import RunLayout, episode_index

MIN_SCALE = 1e-6
"""Floor on the standardisation scale (a latent dim that never moves)."""


@dataclasses.dataclass
class RNNData:
    """Windows of the training and validation episodes, with what evaluation needs."""

    train: SequenceData
    val: SequenceData
    train_ids: list[int]
    val_ids: list[int]
    latent_dim: int
    vae_sha256: str
    eval_ids: np.ndarray  # fixed subset of training windows evaluated every epoch
    train_eval_z: np.ndarray  # (N_train, Z) latents for evaluation (mu or a fixed sample)
    val_z: np.ndarray
    sigma: np.ndarray  # (Z,) the baseline's per-dim sigma
    baseline_train: float  # nats/dim on eval_ids
    baseline_val: float
    shift: np.ndarray  # (Z,) standardisation
    scale: np.ndarray


def load_rnn_data(run_dir: Path, cfg: RNNConfig) -> RNNData:
    """Read every latent file (all in memory), split, window, fit the baseline."""
    if cfg.z_source not in Z_SOURCES:
        raise ConfigError(f"rnn.z_source must be one of {Z_SOURCES}, got {cfg.z_source!r}")
    run = RunLayout(run_dir)
    man = read_latent_manifest(run_dir, cfg.latent_dim)
    zdim = man["latent_dim"]
    files = run.latent_files()
    if not files:
        raise MissingError(f"{run.latents_dir}: no latent files; run `mdnworld encode`")
    by_id = {episode_index(p): p for p in files}
    train_ids, val_ids = split_episodes(list(by_id), cfg.val_fraction, cfg.seed)
    if not val_ids:
        raise ConfigError(
            f"{run.latents_dir}: rnn.val_fraction = {cfg.val_fraction} holds out no episode "
            f"of {len(train_ids)}; early stopping needs validation episodes"
        )

    def windows(ids: list[int]) -> SequenceData:
        return SequenceData(
            [load_latents(by_id[i], latent_dim=zdim, vae_sha256=man["vae_sha256"]) for i in ids],
            cfg.seq_len,
            cfg.skip_ahead,
            names=[by_id[i].name for i in ids],
            end_windows=cfg.done_head,
        )

    train, val = windows(train_ids), windows(val_ids)
    for name, data, ids in (("training", train, train_ids), ("validation", val, val_ids)):
        if len(data) == 0:
            raise DataError(
                f"{run.latents_dir}: no {name} windows: all {len(ids)} {name} episode(s) "
                f"are shorter than seq_len + 1 = {cfg.seq_len + 1} frames (lower rnn.seq_len, "
                "or generate more episodes)"
            )
    if cfg.z_source == "mu":
        train_eval_z, val_z = train.mu, val.mu
    else:  # one fixed sample: the training objective, the same at every epoch
        train_eval_z = train.latents("sample", np.random.default_rng([cfg.seed, 2**32 - 1, 1]))
        val_z = val.latents("sample", np.random.default_rng([cfg.seed, 2**32 - 1, 2]))
    rng = np.random.default_rng([cfg.seed, 2**32 - 1, 3])
    eval_ids = np.sort(rng.permutation(len(train))[: cfg.eval_windows])
    sigma = random_walk_sigma(train, cfg.z_source)
    shift, scale = _standardisation(train, cfg.z_source, zdim, cfg.standardise)
    return RNNData(
        train=train,
        val=val,
        train_ids=train_ids,
        val_ids=val_ids,
        latent_dim=zdim,
        vae_sha256=man.get("vae_sha256", ""),
        eval_ids=eval_ids,
        train_eval_z=train_eval_z,
        val_z=val_z,
        sigma=sigma,
        baseline_train=random_walk_nll(train, train_eval_z, sigma, eval_ids),
        baseline_val=random_walk_nll(val, val_z, sigma),
        shift=shift,
        scale=scale,
    )


def _standardisation(
    train: SequenceData, z_source: str, zdim: int, on: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) float32 (Z,): the training mean and std of the latents M is fed (a
    sample adds the posterior variance), or (0, 1) when standardisation is off."""
    if not on:
        return np.zeros(zdim, np.float32), np.ones(zdim, np.float32)
    mu64 = train.mu.astype(np.float64)
    var = mu64.var(0)
    if z_source == "sample":
        var = var + np.exp(train.logvar.astype(np.float64)).mean(0)
    scale = np.maximum(np.sqrt(var), MIN_SCALE)
    return mu64.mean(0).astype(np.float32), scale.astype(np.float32)
