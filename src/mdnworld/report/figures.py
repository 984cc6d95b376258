"""The report's own figures, drawn with matplotlib's object API (no pyplot, so no global
backend state) and written atomically as PNG."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.io import atomic_open

DPI = 130
MODEL_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
"""Colorbrewer Dark2 for models, so they are not confused with the components (tab10)."""


def _figure(width: float = 7.0, height: float = 3.0, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    return fig, axes


def _integer_x(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Any, path: Path) -> Path:
    with atomic_open(path, "wb", fsync=False) as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def model_colour(i: int) -> str:
    return MODEL_COLOURS[i % len(MODEL_COLOURS)]


def episode_lengths(lengths: Sequence[int], path: Path) -> Path:
    fig, (ax,) = _figure(7, 2.8)
    x = np.asarray(lengths, dtype=float)
    bins = max(5, min(40, int(math.sqrt(len(x))) * 2))
    ax.hist(x, bins=bins, color="#8c959f", edgecolor="white")
    ax.axvline(x.mean(), color="#cf222e", lw=1.5, label=f"mean {x.mean():.0f}")
    ax.axvline(np.median(x), color="#0550ae", lw=1.5, ls="--", label=f"median {np.median(x):.0f}")
    ax.set_xlabel("episode length (steps survived)", fontsize=9)
    ax.set_ylabel("episodes", fontsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{len(x)} random-policy episodes", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def vae_curves(train: Sequence[Mapping], val: Sequence[Mapping], path: Path) -> Path:
    """Reconstruction loss and KL against the training step: train rows as a thin line,
    validation (epoch ends) as dots."""
    fig, axes = _figure(8, 2.9, ncols=2)
    for ax, key, name in zip(axes, ("recon", "kl"), ("reconstruction loss", "KL"), strict=True):
        tr = [(r["step"], r[f"train/{key}"]) for r in train if f"train/{key}" in r]
        va = [(r["step"], r[f"val/{key}"]) for r in val if f"val/{key}" in r]
        if tr:
            s, v = zip(*tr, strict=True)
            ax.plot(s, v, lw=0.6, color="#8c959f", alpha=0.5, label="train (batches)")
            n = max(1, len(v) // 50)  # a running mean over ~2 % of the run
            if n > 1:
                c = np.cumsum(np.insert(np.asarray(v, dtype=float), 0, 0.0))
                ax.plot(s[n - 1 :], (c[n:] - c[:-n]) / n, lw=1.2, color="#24292f",
                        label=f"train (mean of {n})")  # fmt: skip
        if va:
            s, v = zip(*va, strict=True)
            ax.plot(s, v, "o-", ms=4, color="#cf222e", label="validation (epoch end)")
        ax.set_title(f"{name} (nats per frame)", fontsize=10)
        ax.set_xlabel("training step", fontsize=9)
        ax.legend(fontsize=7)
    if train and val:
        recon = [r["val/recon"] for r in val if "val/recon" in r]
        if recon:  # zoom onto the validation curve: the first batches are far above it
            lo, hi = min(recon), max(recon)
            pad = max(hi - lo, abs(hi) * 0.002)
            axes[0].set_ylim(lo - pad, hi + 2 * pad)
    return _save(fig, path)


def rnn_nll(models: Mapping[int, Sequence[Mapping]], path: Path) -> Path:
    """Validation NLL per dim against the epoch, per model, next to its Gaussian baseline."""
    fig, (ax,) = _figure(7, 3.2)
    curves = (  # logged key, line format and style, label
        ("val/nll_per_dim", "o-", {"ms": 3}, "validation"),
        ("train/eval_nll_per_dim", "--", {"lw": 1}, "train"),
        ("val/baseline_nll_per_dim", ":", {"lw": 1.5}, "baseline"),
    )
    for i, rows in models.items():
        ep = [r["epoch"] for r in rows]
        for key, fmt, style, what in curves:
            if any(key in r for r in rows):
                values = [r.get(key) for r in rows]
                ax.plot(ep, values, fmt, color=model_colour(i), label=f"model_{i} {what}", **style)
    ax.set_xlabel("epoch", fontsize=9)
    _integer_x(ax)
    ax.set_ylabel("NLL per latent dim (nats)", fontsize=9)
    ax.set_title("M: negative log-likelihood of the next latent (lower is better)", fontsize=10)
    ax.legend(fontsize=7, ncols=max(1, min(3, len(models))))
    return _save(fig, path)


def rnn_entropy(models: Mapping[int, Sequence[Mapping]], n_components: int, path: Path) -> Path:
    fig, (ax,) = _figure(7, 2.8)
    for i, rows in models.items():
        ax.plot(
            [r["epoch"] for r in rows],
            [r.get("val/pi_entropy") for r in rows],
            "o-",
            ms=3,
            color=model_colour(i),
            label=f"model_{i}",
        )
    if n_components > 0:
        ax.axhline(
            math.log(n_components),
            color="black",
            ls=":",
            lw=1,
            label=f"uniform π (ln {n_components})",
        )
    ax.set_ylim(bottom=0)
    ax.set_xlabel("epoch", fontsize=9)
    _integer_x(ax)
    ax.set_ylabel("π entropy (nats)", fontsize=9)
    ax.set_title("M: entropy of the mixture weights π on validation windows", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def rnn_usage(usage: Mapping[int, Sequence[float]], path: Path) -> Path:
    """One horizontal bar per model, split into the share of each component (tab10 colours,
    as in the dream videos)."""
    fig, (ax,) = _figure(7, 0.9 + 0.45 * len(usage))
    names = [f"model_{i}" for i in usage]
    for row, shares in enumerate(usage.values()):
        left = 0.0
        for k, u in enumerate(shares):
            ax.barh(
                row,
                u,
                left=left,
                color=f"C{k % 10}",
                edgecolor="white",
                label=f"k={k}" if row == 0 else None,
            )
            if u >= 0.06:
                ax.text(
                    left + u / 2,
                    row,
                    f"{u:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                )
            left += u
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of validation steps where component k has the largest π", fontsize=9)
    ax.grid(False)
    ax.legend(fontsize=7, ncols=10, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _save(fig, path)


def controller_fitness(
    rows: Sequence[Mapping],
    path: Path,
    references: Mapping[str, float] | None = None,
    final: Mapping[str, Any] | None = None,
) -> Path:
    """Dream fitness (mean, best-worst band) per generation and, on the same axis (both are
    steps survived), the real-game score of the generation's best candidate where it was
    played: the gap between the two is the dream-to-reality gap. ``references``: name ->
    real-game score, drawn as dashed lines (e.g. untrained policies). ``final``: the trained
    controller's evaluation (``generation``, ``mean``, ``std``, ``episodes``)."""
    fig, (ax,) = _figure(7, 3.2)
    g = [r["step"] for r in rows]
    mean = [r.get("fitness/mean") for r in rows]
    best = [r.get("fitness/best", np.nan) for r in rows]
    worst = [r.get("fitness/worst", np.nan) for r in rows]
    ax.fill_between(g, worst, best, color="#8c959f", alpha=0.3, label="dream: worst–best")
    ax.plot(g, mean, "o-", ms=3, color="#57606a", label="dream: population mean")
    real = [r for r in rows if "real/mean" in r]
    if real:
        ax.errorbar(
            [r["step"] for r in real],
            [r["real/mean"] for r in real],
            yerr=[r.get("real/std", 0.0) for r in real],
            fmt="s",
            ms=5,
            capsize=3,
            color="#cf222e",
            label="real game: best candidate, mean ± std",
        )
    if final is not None:
        label = f"real game: trained controller, {final['episodes']} episodes"
        ax.errorbar([final["generation"]], [final["mean"]], yerr=[final["std"]], fmt="D", ms=6,
                    capsize=3, color="#1a7f37", zorder=5, label=label)  # fmt: skip
    colours = ("#0969da", "#8250df", "#bf8700", "#6e7781")
    for i, (name, score) in enumerate((references or {}).items()):
        ax.axhline(score, ls="--", lw=1, color=colours[i % 4], label=f"real game: {name}")
    ax.set_xlabel("generation", fontsize=9)
    _integer_x(ax)
    ax.set_ylabel("steps survived", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6.5, loc="upper left", ncol=2)
    ax.set_title("C: CMA-ES inside M's dream, checked in the real game", fontsize=10)
    return _save(fig, path)


def real_scores(scores: Sequence[float], reference: Mapping[str, Any], path: Path) -> Path:
    fig, (ax,) = _figure(7, 2.8)
    x = np.asarray(scores, dtype=float)
    # bins at least 25 steps wide: the axis also spans the reference scores (up to ~1100)
    width = max(25.0, (x.max() - x.min()) / 30)
    lo = math.floor(x.min() / width) * width
    n = math.floor((x.max() - lo) / width) + 1
    edges = lo + width * np.arange(n + 1)
    ax.hist(x, bins=edges, color="#8c959f", edgecolor="white")
    ax.axvline(x.mean(), color="#cf222e", lw=1.5, label=f"this controller: mean {x.mean():.0f}")
    styles = {
        "random_policy": ("#57606a", "random policy"),
        "world_models_tau_1.15": ("#1a7f37", "World Models (τ=1.15)"),
    }
    for key, (colour, name) in styles.items():
        ref = reference.get(key)
        if isinstance(ref, Sequence) and ref:
            ax.axvline(ref[0], color=colour, ls="--", lw=1, label=f"{name}: {ref[0]}")
    if isinstance(reference.get("solved"), int | float):
        ax.axvline(
            reference["solved"], color="black", ls=":", lw=1, label=f"solved: {reference['solved']}"
        )
    ax.set_xlabel("real-game score (steps survived)", fontsize=9)
    ax.set_ylabel("episodes", fontsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{len(x)} real-game episodes", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def video_frame(path: Path, at: int = 35) -> np.ndarray:
    """Frame ``at`` (or the last one, if the video is shorter) of a video, (H, W, 3) uint8."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    frame = None
    try:
        w, h = next(gen)["size"]
        for i, buf in enumerate(gen):
            frame = buf
            if i >= at:
                break
    finally:
        gen.close()
    if frame is None:
        raise ValueError(f"{path}: no video frames")
    return np.frombuffer(frame, np.uint8).reshape(h, w, 3)
