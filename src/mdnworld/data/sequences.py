"""Training windows for M (SPEC §4): numpy only, every latent in memory, windows by index.

An encoded episode (``latents/ep_NNNNNN.npz``) of T frames gives windows of ``seq_len`` = L
steps starting every ``skip_ahead`` frames: the window starting at frame s covers frames
s .. s+L, i.e. L+1 frames, because the target is the input shifted by one::

    inputs   z[s : s+L],      a[s : s+L]           z_t, a_t        t = s .. s+L-1
    targets  z[s+1 : s+L+1]                        z_{t+1}
             dones[s+1 : s+L+1], rewards[s+1 : s+L+1]   done_{t+1}, reward_{t+1}

Starts are s = 0, skip_ahead, 2*skip_ahead, ... while s + L + 1 <= T (the last frames of an
episode that do not fill a whole window are not targets of any window). Episodes with
T < L + 1 frames give no window: they are skipped and counted (``skipped``).

The done/reward targets are the flags stored with frame t+1, aligned with z_{t+1} as in World
Models (``dones`` is True only on the last stored frame, the one after which the player died).
The regular windows reach an episode's last frame only when (T - L - 1) is a multiple of
skip_ahead; ``end_windows=True`` adds one window ending there, so every death is a target of
the done head.

Memory: the kept episodes are concatenated once into (N, Z) arrays (2000 episodes x ~300
frames x 64 float32 ~ 150 MB for mu, the same for logvar); a window is just its start row, and
``batch`` gathers only the rows of one batch.

``z_source``: "mu" trains on the posterior means (the paper); "sample" on z ~ N(mu, exp(logvar))
drawn afresh for every frame once per epoch (World Models), from a generator seeded by
(seed, epoch), so the same epoch always sees the same sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

Z_SOURCES = ("mu", "sample")
LOG_2PI = math.log(2.0 * math.pi)
MIN_SIGMA = 1e-8
"""Floor on the random-walk baseline's sigma (a latent dim that never changes would give 0)."""


class Batch(NamedTuple):
    """One batch of B windows of L steps, all numpy."""

    z: np.ndarray  # (B, L, Z) float32, z_t
    a: np.ndarray  # (B, L, A) float32, a_t
    z_next: np.ndarray  # (B, L, Z) float32, z_{t+1}
    done: np.ndarray  # (B, L) bool, done_{t+1}
    reward: np.ndarray  # (B, L) float32, reward_{t+1}


def n_windows(length: int, seq_len: int, skip_ahead: int) -> int:
    """Windows of one episode of ``length`` frames (0 if it is shorter than seq_len + 1)."""
    if length < seq_len + 1:
        return 0
    return (length - seq_len - 1) // skip_ahead + 1


def sample_latents(mu: np.ndarray, logvar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """z ~ N(mu, exp(logvar)) elementwise, float32."""
    eps = rng.standard_normal(mu.shape, dtype=np.float32)
    eps *= np.exp(0.5 * logvar, dtype=np.float32)
    eps += mu
    return eps


class SequenceData:
    """All windows of a list of encoded episodes.

    ``episodes``: mappings with "mu", "logvar" (T, Z) float32, "actions" (T, A), "rewards" (T,)
    and "dones" (T,), as ``load_latents`` returns them. ``names`` (optional) label them in
    ``skipped_names``.
    """

    def __init__(
        self,
        episodes: Sequence[Mapping[str, np.ndarray]],
        seq_len: int = 60,
        skip_ahead: int = 3,
        names: Sequence[str] | None = None,
        end_windows: bool = False,
    ) -> None:
        if seq_len < 1 or skip_ahead < 1:
            raise ValueError(f"seq_len and skip_ahead must be >= 1, got {seq_len}, {skip_ahead}")
        names = list(names) if names is not None else [str(i) for i in range(len(episodes))]
        self.seq_len, self.skip_ahead = seq_len, skip_ahead
        kept = [i for i, e in enumerate(episodes) if len(e["mu"]) >= seq_len + 1]
        self.skipped_names = [names[i] for i in range(len(episodes)) if i not in set(kept)]
        self.skipped = len(self.skipped_names)
        self.names = [names[i] for i in kept]
        lengths = np.array([len(episodes[i]["mu"]) for i in kept], dtype=np.int64)
        self.episode_lengths = lengths
        self.episode_starts = np.cumsum(lengths) - lengths

        def cat(key: str, dtype: type, tail: tuple[int, ...]) -> np.ndarray:
            if not kept:
                return np.zeros((0, *tail), dtype)
            return np.concatenate([np.asarray(episodes[i][key], dtype) for i in kept])

        zdim = episodes[kept[0]]["mu"].shape[1] if kept else 0
        adim = episodes[kept[0]]["actions"].shape[1] if kept else 1
        self.mu = cat("mu", np.float32, (zdim,))
        self.logvar = cat("logvar", np.float32, (zdim,))
        self.actions = cat("actions", np.float32, (adim,))
        self.rewards = cat("rewards", np.float32, ())
        self.dones = cat("dones", np.bool_, ())
        per_episode = []
        for s, n in zip(self.episode_starts, lengths, strict=True):
            local = skip_ahead * np.arange(n_windows(int(n), seq_len, skip_ahead), dtype=np.int64)
            if end_windows and local[-1] != n - seq_len - 1:  # add the window ending at the end
                local = np.append(local, n - seq_len - 1)
            per_episode.append(s + local)
        self.starts = np.concatenate(per_episode or [np.zeros(0, np.int64)])
        self._offsets = np.arange(seq_len + 1, dtype=np.int64)

    def __len__(self) -> int:
        """Number of windows."""
        return len(self.starts)

    @property
    def latent_dim(self) -> int:
        return self.mu.shape[1]

    @property
    def n_episodes(self) -> int:
        """Episodes that gave at least one window."""
        return len(self.episode_lengths)

    def latents(self, source: str, rng: np.random.Generator | None = None) -> np.ndarray:
        """The (N, Z) latents windows are cut from: ``mu``, or a fresh sample from ``rng``."""
        if source == "mu":
            return self.mu
        if source == "sample":
            if rng is None:
                raise ValueError("z_source='sample' needs a random generator")
            return sample_latents(self.mu, self.logvar, rng)
        raise ValueError(f"z_source must be one of {Z_SOURCES}, got {source!r}")

    def epoch_latents(self, source: str, seed: int, epoch: int) -> np.ndarray:
        """The latents of training epoch ``epoch``: the same for the same (seed, epoch)."""
        rng = np.random.default_rng([seed, epoch, 1]) if source == "sample" else None
        return self.latents(source, rng)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """(B, L+1) frame rows of windows ``ids``."""
        return self.starts[np.asarray(ids, dtype=np.int64)][:, None] + self._offsets

    def batch(self, ids: np.ndarray, z: np.ndarray | None = None) -> Batch:
        """Windows ``ids`` (in that order); ``z`` (N, Z) defaults to ``mu``."""
        z = self.mu if z is None else z
        r = self.rows(ids)
        zz = z[r]  # (B, L+1, Z): the only copy, one batch's worth
        nxt = r[:, 1:]
        return Batch(
            zz[:, :-1], self.actions[r[:, :-1]], zz[:, 1:], self.dones[nxt], self.rewards[nxt]
        )

    def coverage(self, ids: np.ndarray | None = None) -> np.ndarray:
        """(N,) how many of windows ``ids`` (default: all) have the pair (row r -> r+1) as an
        (input, target) step; 0 for the last row of each episode."""
        starts = self.starts if ids is None else self.starts[np.asarray(ids, dtype=np.int64)]
        cov = np.zeros(len(self.mu) + 1, np.int64)
        np.add.at(cov, starts, 1)
        np.add.at(cov, starts + self.seq_len, -1)
        return np.cumsum(cov[:-1])


def random_walk_sigma(data: SequenceData, source: str = "mu") -> np.ndarray:
    """(Z,) per-dim sigma of the baseline z_{t+1} ~ N(z_t, sigma^2): the maximum-likelihood
    value, sqrt of the mean squared step over every (input, target) step of ``data``'s windows.
    For ``source="sample"`` it is the expectation over the sampling noise:
    E[(z_{t+1} - z_t)^2] = (mu_{t+1} - mu_t)^2 + var_t + var_{t+1}."""
    cov = data.coverage()
    rows = np.flatnonzero(cov)
    if len(rows) == 0:
        raise ValueError("no windows to fit the baseline on")
    d2 = (data.mu[rows + 1].astype(np.float64) - data.mu[rows]) ** 2
    if source == "sample":
        d2 += np.exp(data.logvar[rows].astype(np.float64))
        d2 += np.exp(data.logvar[rows + 1].astype(np.float64))
    elif source != "mu":
        raise ValueError(f"z_source must be one of {Z_SOURCES}, got {source!r}")
    w = cov[rows].astype(np.float64)
    var = (w[:, None] * d2).sum(0) / w.sum()
    return np.maximum(np.sqrt(var), MIN_SIGMA)


def random_walk_nll(
    data: SequenceData, z: np.ndarray, sigma: np.ndarray, ids: np.ndarray | None = None
) -> float:
    """Mean NLL per step and latent dim (nats/dim) of the baseline z_{t+1} ~ N(z_t, sigma^2)
    on windows ``ids`` (default: all) of ``z`` (N, Z): the same average as the model's NLL."""
    cov = data.coverage(ids)
    rows = np.flatnonzero(cov)
    if len(rows) == 0:
        raise ValueError("no windows to evaluate the baseline on")
    sigma = np.asarray(sigma, np.float64)
    d = (z[rows + 1].astype(np.float64) - z[rows]) / sigma
    per_step = (0.5 * d**2).mean(1) + np.log(sigma).mean() + 0.5 * LOG_2PI
    w = cov[rows].astype(np.float64)
    return float((w * per_step).sum() / w.sum())


def done_balance(data: SequenceData) -> tuple[float, float]:
    """(pos_weight, initial bias) that make the done head a per-step death probability.

    Windows overlap (60 steps every 3), so an ordinary frame is a target in ~20 windows while
    the death at an episode's end is a target in one or two: trained as is, the head learns
    deaths ~20x too rarely. Weighting death targets by that coverage ratio undoes it; the head
    starts at the per-step death rate (from a bias of 0 Adam would need thousands of steps to
    get down to it)."""
    cov = data.coverage()  # cov[r]: windows in which row r+1 is a target
    target_cov = np.concatenate([[0], cov[:-1]])  # per row: windows in which it is a target
    targets = target_cov > 0
    death = data.dones & targets
    if not death.any():
        return 1.0, 0.0
    weight = float(target_cov[targets & ~data.dones].mean() / target_cov[death].mean())
    p = death.sum() / targets.sum()
    return weight, float(math.log(p / (1.0 - p)))
