"""Analysis C, committed dreaming (SPEC §7C): force every step of a dream onto one component
and count what the dreamed frames show.

``c_tests`` dreams per component of M ``c_model``, each ``c_steps`` steps from the latent at
step ``c_start`` of a random training episode (the same starts for every component, so the
components are compared on equal footing). This is an intervention: the component is set, not
observed, so unlike analysis B it needs no null for selection bias.

Files under ``RUN_DIR/analysis/committed/``: ``counts.csv`` (one row per component and test:
frames per world class, and fireball/monster appear/disappear events), ``table.csv`` (medians
per component and class), ``results.json`` and ``committed.png`` (a box plot per class, one box
per component).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.analysis.common import (
    Inputs,
    detector_settings,
    labelled_dreams,
    pyplot,
    save_figure,
    write_csv,
)
from mdnworld.analysis.detectors import EVENT_CLASSES, WORLD_CLASSES, event_labels, world_labels
from mdnworld.config import AnalyzeConfig
from mdnworld.errors import ConfigError
from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout
from mdnworld.palette import COLOURS
from mdnworld.reference import PAPER_COMMITTED

NAME = "committed"
"""The CLI name; ``RunLayout.analysis(NAME)`` is the folder."""
EVENTS = EVENT_CLASSES[:4]  # appear/disappear counts (Otherwise left out)


def committed(run_dir: Path, inputs: Inputs, cfg: AnalyzeConfig) -> dict[str, Any]:
    """Run C; writes counts, medians, JSON and the figure; returns the JSON."""
    if cfg.c_model not in inputs.models:
        raise ConfigError(f"analyze.c_model={cfg.c_model} is not among the loaded Ms")
    run = RunLayout(run_dir)
    K = inputs.n_components
    counts = np.zeros((K, cfg.c_tests, len(WORLD_CLASSES) + len(EVENTS)), np.int64)
    for k in range(K):
        d = labelled_dreams(
            inputs, cfg.c_model, cfg, n=cfg.c_tests, steps=cfg.c_steps,
            start_t=cfg.c_start, commit=k, seed_offset=2,
        )  # fmt: skip
        if not (d.record.component == k).all():
            raise RuntimeError(f"committed dream left component {k}")  # sample_next's contract
        for j, f in enumerate(d.features):
            counts[k, j] = np.concatenate([world_labels(f).sum(0), event_labels(f)[:, :4].sum(0)])
    names = list(WORLD_CLASSES) + list(EVENTS)
    write_csv(
        run.committed_counts,
        [
            {"component": k, "test": j, **{c: int(counts[k, j, n]) for n, c in enumerate(names)}}
            for k in range(K)
            for j in range(cfg.c_tests)
        ],
    )
    medians = np.median(counts, axis=1)  # (K, classes)
    table = [
        {"component": k, **{c: float(medians[k, n]) for n, c in enumerate(names)}} for k in range(K)
    ]
    write_csv(run.analysis_table(NAME), table)
    result = {
        "model": cfg.c_model,
        "tests": cfg.c_tests,
        "steps": cfg.c_steps,
        "start_t": cfg.c_start,
        "classes": names,
        "median_frames": table,
        # the component with the most explosion frames, if any component made one
        "explosion_component": int(medians[:, 0].argmax()) if medians[:, 0].max() > 0 else None,
        "paper": PAPER_COMMITTED,
        **detector_settings(cfg),
        "note": "An intervention (the component is forced), so no selection-bias null is "
        "needed, unlike worlds-events.",
    }
    atomic_write_json(run.analysis_results(NAME), result)
    figure(counts, names, cfg, run.analysis_figure(NAME))
    return result


def figure(counts: np.ndarray, names: list[str], cfg: AnalyzeConfig, path: Path) -> None:
    """counts (K, tests, classes): one panel per class, one box per committed component."""
    plt = pyplot()
    K = counts.shape[0]
    cols = 5
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.8 * rows), squeeze=False)
    for n, ax in enumerate(axes.flat):
        if n >= len(names):
            ax.axis("off")
            continue
        box = ax.boxplot([counts[k, :, n] for k in range(K)], patch_artist=True, widths=0.6)
        for k, patch in enumerate(box["boxes"]):
            patch.set_facecolor(COLOURS[k % len(COLOURS)] / 255)
        ax.set_xticks(range(1, K + 1), [f"k={k}" for k in range(K)], fontsize=8)
        ax.set_ylim(-0.03 * cfg.c_steps, 1.03 * cfg.c_steps)
        ax.set_title(names[n], fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0, 0].set_ylabel(f"frames (of {cfg.c_steps})")
    fig.suptitle(
        f"Committed dreams: M model_{cfg.c_model}, {cfg.c_tests} dreams per forced component, "
        f"{cfg.c_steps} steps from step {cfg.c_start} of real episodes",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path)
