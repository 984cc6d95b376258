"""A small API for notebooks: open a run, dream, decode, plot pi, run analysis B on a few dreams.

The original analyses lived in notebooks; this is the same work in a few calls::

    from mdnworld import explore
    run = explore.open_shipped("runs/explore")      # the shipped paper-scale models
    d = run.dream(model=0, n=4, steps=200, tau=1.0)  # 4 free dreams of M 0
    explore.plot_pi(d, j=0)                          # pi over time, dominant strip below
    explore.show_frames(d, j=0, every=20)            # V's drawings of dream 0
    k3 = run.dream(model=0, n=2, steps=200, commit=3)  # committed to component 3
    run.worlds_events([d, k3])                        # analysis B's table on these dreams
    session = run.play(model=0)                       # step a dream yourself (mdnworld play)

Everything runs on the CPU; nothing is written to the run except by ``open_shipped``.
Shapes: frames (n, T, 64, 64, 3) uint8, pi (n, T, K), dominant and component (n, T).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdnworld.analysis.common import dream_seeds
from mdnworld.analysis.detectors import (
    DETECTOR_SETS,
    EVENT_CLASSES,
    WORLD_CLASSES,
    detect,
    event_labels,
    world_labels,
)
from mdnworld.analysis.stats import analyse_dreams
from mdnworld.checkpoints import StartBank, cached_mdnrnn, cached_vae
from mdnworld.dreams.engine import DreamRecord, decode, dream
from mdnworld.layout import RunLayout
from mdnworld.palette import COLOURS
from mdnworld.play.session import PlayModels, PlaySession
from mdnworld.shipped import DEFAULT_DIR, init_from_shipped


@dataclass
class Dreams:
    """n dreams of one M: the record (z, pi, component, action, done_prob) and V's frames."""

    record: DreamRecord
    frames: np.ndarray  # (n, T, 64, 64, 3) uint8
    model: int
    tau: float
    commit: int | None

    @property
    def dominant(self) -> np.ndarray:
        """(n, T) argmax of pi: the paper's "main" component at each step."""
        return self.record.dominant

    def __repr__(self) -> str:
        n, T = self.frames.shape[:2]
        what = f"committed to k={self.commit}" if self.commit is not None else "free"
        return f"Dreams(model={self.model}, n={n}, steps={T}, tau={self.tau:g}, {what})"


class Run:
    """A run directory with V and Ms (``mdnworld train-rnn`` or ``from-shipped``)."""

    def __init__(self, path: Path | str) -> None:
        self.layout = RunLayout(path)
        self.path = self.layout.root
        self.vae = cached_vae(self.path, "cpu")
        self.starts = StartBank.from_run(self.path)

    @property
    def models(self) -> list[int]:
        """Indices of the run's Ms."""
        return self.layout.rnn_indices()

    def model(self, index: int = 0) -> torch.nn.Module:
        return cached_mdnrnn(self.path, index, "cpu")

    def dream(
        self,
        model: int = 0,
        n: int = 1,
        steps: int = 100,
        tau: float = 1.0,
        commit: int | None = None,
        seed: int = 0,
    ) -> Dreams:
        """n dreams of M ``model`` from random real start frames (SPEC §5: tau on pi,
        sigma's temperature as in the analyses, random actions), decoded by V."""
        rng = np.random.default_rng([seed, model])
        z0 = self.starts.sample(n, 0, rng).z
        seeds = dream_seeds(seed, model, n)
        rec = dream(self.model(model), z0, steps, seeds, tau_pi=tau, commit=commit)
        return Dreams(rec, self.decode(rec.z), model, tau, commit)

    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Latents (..., Z) -> V's frames (..., 64, 64, 3) uint8."""
        return decode(self.vae, z, dtype=np.uint8)

    def worlds_events(
        self, dreams: Dreams | Sequence[Dreams], n_shifts: int = 200, detectors: str = "spec"
    ) -> list[dict[str, Any]]:
        """Analysis B (SPEC §7B) on these dreams: per world and event class, the median share
        of the class's main component where the class is (Current) vs anywhere (Any), the
        Mann-Whitney p, and the circular-shift null's p. One dict per class."""
        batches = [dreams] if isinstance(dreams, Dreams) else list(dreams)
        th = DETECTOR_SETS[detectors]
        dominants, worlds, events = [], [], []
        for d in batches:
            for j in range(len(d.frames)):
                f = detect(d.frames[j], th)
                dominants.append(d.dominant[j])
                worlds.append(world_labels(f))
                events.append(event_labels(f))
        K = self.model(batches[0].model).arch.n_components
        rows = []
        for kind, names, labels in (("worlds", WORLD_CLASSES, worlds),
                                    ("events", EVENT_CLASSES, events)):  # fmt: skip
            for s in analyse_dreams(dominants, labels, names, K, n_shifts):
                rows.append({"kind": kind, **s.as_dict()})
        return rows

    def play(self, model: int = 0, seed: int = 0, real: bool = False) -> PlaySession:
        """One dream to step by hand: ``s.step("left" | "right" | "none")`` -> what the play
        page shows (frame, pi, dominant, p_death, score, done)."""
        return PlaySession(PlayModels.from_run(self.path, model), seed=seed, real=real)


def open_run(path: Path | str) -> Run:
    return Run(path)


def open_shipped(path: Path | str, models_dir: Path | str = DEFAULT_DIR) -> Run:
    """A run made from the shipped paper-scale models at ``path`` (made on first use)."""
    run = RunLayout(path)
    if not run.vae_meta.exists():
        init_from_shipped(Path(path), Path(models_dir), log=lambda m: None)
    return Run(path)


def plot_pi(dreams: Dreams, j: int = 0, ax: Any = None) -> Any:
    """Dream j's pi over time as stacked areas in the components' colours, with the
    committed/sampled component as a strip below; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 2.6))
    pi = dreams.record.pi[j]
    T, K = pi.shape
    colours = [tuple(COLOURS[k % len(COLOURS)] / 255) for k in range(K)]
    ax.stackplot(np.arange(T), pi.T, colors=colours, labels=[f"k={k}" for k in range(K)])
    ax.imshow(
        COLOURS[dreams.record.component[j] % len(COLOURS)][None],
        extent=(0, T, -0.12, -0.02),
        aspect="auto",
    )
    ax.set(xlim=(0, T), ylim=(-0.13, 1), xlabel="dream step", ylabel="π")
    ax.set_title(f"{dreams!r}, dream {j}: π (strip: the component sampled)", fontsize=9)
    ax.legend(loc="upper right", ncol=K, fontsize=7)
    return ax


def show_frames(dreams: Dreams, j: int = 0, every: int = 10, ax: Any = None) -> Any:
    """Every ``every``-th frame of dream j in a row, each with its dominant component's
    colour underneath; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    idx = np.arange(0, dreams.frames.shape[1], every)
    tiles = []
    for t in idx:
        tile = np.concatenate([dreams.frames[j, t], np.zeros((6, 64, 3), np.uint8)])
        tile[64:] = COLOURS[dreams.dominant[j, t] % len(COLOURS)]
        tiles.append(np.pad(tile, ((0, 0), (0, 2), (0, 0)), constant_values=255))
    if ax is None:
        _, ax = plt.subplots(figsize=(min(1.1 * len(idx), 16), 1.6))
    ax.imshow(np.concatenate(tiles, 1), interpolation="nearest")
    ax.set_xticks(np.arange(len(idx)) * 66 + 32, [str(t) for t in idx], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("dream step (colour: the dominant component)")
    return ax
