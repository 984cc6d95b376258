"""Analysis B, worlds and events vs. the main component (SPEC §7B), with the shift null.

Per M, ``b_dreams`` dreams of ``b_steps`` steps (warm-up 0) from the first frame of random
training episodes; each decoded frame gets its world classes and event classes (detectors.py),
each step its dominant component (argmax pi). Per class and dream: main, Current and Any; over
dreams: the paper's Mann-Whitney U of Current vs Any, and our null that circularly shifts each
dream's dominant sequence (``n_shifts`` times) to show how much of Current the selection of
"main" alone produces (stats.py explains why that is needed).

Files under ``RUN_DIR/analysis/worlds_events/``: ``model_<i>.npz`` (per-dream dominant
components and labels: the raw material, kept so that a stop costs at most one model),
``table.csv`` and ``results.json`` (one row per class, the paper's numbers beside ours),
``worlds_events.png`` (box plots of Current vs Any per class with the paper's stars and the
null's mean).
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
from mdnworld.analysis.stats import analyse_dreams, class_shares
from mdnworld.config import AnalyzeConfig, to_dict
from mdnworld.io import atomic_write_json, read_json, write_npz
from mdnworld.layout import RunLayout
from mdnworld.reference import PAPER_WORLDS_EVENTS

NAME = "worlds-events"
"""The CLI name; ``RunLayout.analysis(NAME)`` is the folder."""
SETTINGS = ("b_dreams", "b_steps", "tau_pi", "tau_sigma", "p_change", "seed")
SETTINGS += ("detectors", "wall_red_over_blue")  # the labels depend on them too


def dream_labels(run_dir: Path, inputs: Inputs, cfg: AnalyzeConfig, log: Callable) -> dict:
    """Per model: dominant (D, T), worlds (D, T, 5), events (D, T, 5), dreamed now or read
    back from ``model_<i>.npz`` when it was made with the same settings."""
    run = RunLayout(run_dir)
    settings = {k: to_dict(cfg)[k] for k in SETTINGS}
    per_model = {}
    for i in inputs.models:
        path = run.analysis_model_file(NAME, i, ".npz")
        meta = run.analysis_model_file(NAME, i, ".json")
        if path.exists() and meta.exists() and read_json(meta) == settings:
            with np.load(path, allow_pickle=False) as f:
                per_model[i] = {k: f[k] for k in ("dominant", "worlds", "events")}
            log(f"analyze worlds-events: model_{i} dreams read back from {path}")
            continue
        log(f"analyze worlds-events: model_{i}, {cfg.b_dreams} dreams x {cfg.b_steps} steps")
        d = labelled_dreams(inputs, i, cfg, n=cfg.b_dreams, steps=cfg.b_steps, seed_offset=1)
        arrays = {
            "dominant": d.record.dominant,
            "worlds": np.stack([world_labels(f) for f in d.features]),
            "events": np.stack([event_labels(f) for f in d.features]),
        }
        write_npz(path, arrays)
        atomic_write_json(meta, settings)
        per_model[i] = arrays
    return per_model


def worlds_events(
    run_dir: Path, inputs: Inputs, cfg: AnalyzeConfig, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run B over every M of ``inputs``; writes table, JSON and figure; returns the JSON."""
    run = RunLayout(run_dir)
    per_model = dream_labels(run_dir, inputs, cfg, log)
    K = inputs.n_components
    dominants = [d for m in per_model.values() for d in m["dominant"]]
    rows, per_dream = [], {}
    for kind, names in (("worlds", WORLD_CLASSES), ("events", EVENT_CLASSES)):
        labels = [lab for m in per_model.values() for lab in m[kind]]
        summary = analyse_dreams(dominants, labels, names, K, cfg.n_shifts, cfg.seed)
        shares = [class_shares(dom, lab, K) for dom, lab in zip(dominants, labels, strict=True)]
        for c, s in enumerate(summary):
            # class names are unique across the two kinds but for Otherwise
            key = "NoEvent" if (kind, s.class_name) == ("events", "Otherwise") else s.class_name
            paper = PAPER_WORLDS_EVENTS.get(key, (None, None, None))
            rows.append(
                {
                    "kind": kind,
                    "class": key,
                    **{k: v for k, v in s.as_dict().items() if k != "class_name"},
                    "paper_current": paper[0],
                    "paper_any": paper[1],
                    "paper_stars": paper[2],
                }
            )
            per_dream[key] = {
                "current": [sh[c].current for sh in shares if sh[c] is not None],
                "any": [sh[c].any for sh in shares if sh[c] is not None],
            }
    write_csv(run.analysis_table(NAME), rows)
    result = {
        "models": [int(i) for i in per_model],
        "dreams": len(dominants),
        "steps": cfg.b_steps,
        "n_components": K,
        "rows": rows,
        "per_dream": per_dream,
        **detector_settings(cfg),
        "note": "p = the paper's two-sided Mann-Whitney U of Current vs Any over dreams; "
        "null_p = share of circular shifts of the dominant components whose median Current "
        "is at least the observed one (shifts keep persistence, break the tie to frames).",
    }
    atomic_write_json(run.analysis_results(NAME), result)
    figure(rows, per_dream, len(dominants), run.analysis_figure(NAME))
    return result


def figure(rows: list[dict], per_dream: dict, n_dreams: int, path: Path) -> None:
    """Box plots of Current and Any per class, the paper's stars, and the null's mean."""
    plt = pyplot()
    shown = [r for r in rows if r["n_dreams"]]
    fig, ax = plt.subplots(figsize=(max(8, 1.25 * len(shown)), 4.8))
    for x, r in enumerate(shown):
        data = per_dream[r["class"]]
        for dx, key, colour in ((-0.18, "current", "#d62728"), (0.18, "any", "#1f77b4")):
            ax.boxplot(
                data[key],
                positions=[x + dx],
                widths=0.3,
                patch_artist=True,
                showfliers=False,
                boxprops={"facecolor": colour, "alpha": 0.45},
                medianprops={"color": "k"},
            )
        ax.plot(x - 0.18, r["null_mean"], "D", color="k", ms=5)
        ax.text(x, 1.04, r["stars"], ha="center", fontsize=10)
        ax.text(x, 1.10, f"null p={r['null_p']:.3f}", ha="center", fontsize=7)
        if r["paper_current"] is not None:
            ax.plot(x - 0.18, r["paper_current"], "*", color="#d62728", ms=9, mec="k", mew=0.5)
            ax.plot(x + 0.18, r["paper_any"], "*", color="#1f77b4", ms=9, mec="k", mew=0.5)
    labels = [
        re.sub(r"(?<=[a-z])(?=[A-Z])", "\n", r["class"]) + f"\n(n={r['n_dreams']})" for r in shown
    ]  # CamelCase on two lines
    ax.set_xticks(range(len(shown)), labels)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylim(0, 1.16)
    ax.set_ylabel("share of frames dominated by the class's main component")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color="#d62728", alpha=0.45, label="Current (class frames)"),
        plt.Rectangle((0, 0), 1, 1, color="#1f77b4", alpha=0.45, label="Any (all frames)"),
        plt.Line2D([], [], ls="", marker="D", color="k", label="null: mean Current, shifted"),
        plt.Line2D([], [], ls="", marker="*", color="grey", mec="k", label="paper's medians"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower right", ncol=2)
    absent = [r["class"] for r in rows if not r["n_dreams"]]
    ax.set_title(
        f"Worlds and events vs. main component, {n_dreams} dreams "
        "(stars: Mann-Whitney Current vs Any, as the paper)"
        + (f"\nin no dream: {', '.join(absent)}" if absent else ""),
        fontsize=9,
    )
    save_figure(fig, path)
