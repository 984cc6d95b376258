"""Analysis A, components over time (SPEC §7A): pi_k against time for ``a_steps`` dreamed
steps after ``a_warmup`` discarded ones, above the strip of decoded frames, per M.

Outputs ``RUN_DIR/analysis/components_over_time/model_<i>.{png,csv}``; the CSV has one row per
step: pi_0..pi_{K-1}, the dominant (argmax) and the sampled component, the action, and what the
detectors see in the frame (world classes, fireball and monster counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.analysis.common import (
    Inputs,
    labelled_dreams,
    pyplot,
    save_figure,
    write_csv,
)
from mdnworld.analysis.detectors import WORLD_CLASSES, world_labels
from mdnworld.config import AnalyzeConfig
from mdnworld.layout import RunLayout
from mdnworld.palette import COLOURS

NAME = "components-over-time"
"""The CLI name; ``RunLayout.analysis(NAME)`` is the folder."""
STRIP_FRAMES = 20
"""Frames shown under the curves (evenly spaced over the recorded steps)."""


def components_over_time(run_dir: Path, inputs: Inputs, cfg: AnalyzeConfig) -> dict[str, Any]:
    """One dream per M; writes the figure and CSV of each, returns a JSON-able summary."""
    run = RunLayout(run_dir)
    out = run.analysis(NAME)
    summary: dict[str, Any] = {"warmup": cfg.a_warmup, "steps": cfg.a_steps, "models": {}}
    for i in inputs.models:
        d = labelled_dreams(inputs, i, cfg, n=1, steps=cfg.a_steps, warmup=cfg.a_warmup)
        pi, comp = d.record.pi[0], d.record.component[0]  # (T, K), (T,)
        feats = d.features[0]
        worlds = world_labels(feats)  # (T, 5)
        rows = [
            {
                "t": t,
                **{f"pi_{k}": round(float(p), 6) for k, p in enumerate(pi[t])},
                "dominant": int(pi[t].argmax()),
                "component": int(comp[t]),
                "action": round(float(d.record.action[0, t, 0]), 4),
                **{c: int(worlds[t, j]) for j, c in enumerate(WORLD_CLASSES)},
                "n_fireballs": int(feats.n_fireballs[t]),
                "n_monsters": int(feats.n_monsters[t]),
            }
            for t in range(len(pi))
        ]
        write_csv(run.analysis_model_file(NAME, i, ".csv"), rows)
        figure(pi, d.frames[0], worlds, f"M model_{i}: π over {len(pi)} dreamed steps after "
               f"{cfg.a_warmup} warm-up steps (τπ={cfg.tau_pi:g}, τσ={cfg.tau_sigma:g})",
               run.analysis_model_file(NAME, i, ".png"))  # fmt: skip
        dominant = pi.argmax(1)
        summary["models"][str(i)] = {
            "figure": f"{out.name}/model_{i}.png",  # relative to analysis/
            "dominant_share": np.bincount(dominant, minlength=pi.shape[1]).tolist(),
            "switches": int((dominant[1:] != dominant[:-1]).sum()),
            "start_episode": d.starts.episodes[0],
        }
    return summary


def figure(pi: np.ndarray, frames: np.ndarray, worlds: np.ndarray, title: str, path: Path) -> None:
    """pi (T, K) curves above a strip of frames (T, 64, 64, 3) and a row of world-class ticks."""
    plt = pyplot()
    T, K = pi.shape
    fig, (ax, ax_cls, ax_img) = plt.subplots(
        3, 1, figsize=(12, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.1, 1.2]}
    )
    t = np.arange(T)
    for k in range(K):
        ax.plot(t, pi[:, k], color=COLOURS[k % len(COLOURS)] / 255, lw=1.6, label=f"k={k}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("π_k")
    ax.legend(ncol=K, loc="upper right", fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    for j in range(4):  # Explosion, Fireball, LeftWall, RightWall (Otherwise: none of them)
        hits = t[worlds[:, j]]
        ax_cls.scatter(hits, np.full(len(hits), j), marker="|", s=60, color="k")
    ax_cls.set_yticks(range(4), WORLD_CLASSES[:4], fontsize=8)
    ax_cls.set_ylim(-0.7, 3.7)
    ax_cls.invert_yaxis()
    centres = np.linspace(0, T - 1, min(STRIP_FRAMES, T))
    half = 0.47 * T / len(centres)
    for c in centres:  # the frame of step round(c), centred under c
        ax_img.imshow(frames[round(c)], extent=(c - half, c + half, 0, 1), aspect="auto")
    ax_img.set_xlim(-0.5, T - 0.5)
    ax_img.set_yticks([])
    ax_img.set_xlabel("dream step t (each frame is centred under its step)")
    save_figure(fig, path)
