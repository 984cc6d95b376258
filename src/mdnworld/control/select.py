"""Honest selection: re-score the best candidates on many fresh dreams before choosing one.

A generation's best fitness is the maximum of ``popsize`` noisy means of ``rollouts`` dreams:
it flatters the winner (World Models re-checked its best on 1024 rollouts). Training keeps each
generation's best candidate in ``controller/candidates.npz``; with ``select_top`` > 0 the
``select_top`` candidates of highest training fitness and the CMA-ES mean are each re-scored on
``select_rollouts`` dreams with seeds no training generation used, and the highest re-scored
mean becomes ``controller/selected.safetensors`` (``evaluate --which selected``), with the
table in ``controller/selection.json``.

``candidates.npz``: ``generation`` (G,) int64, ``fitness`` (G,) float64 (the training dream
fitness), ``params`` (G, n) float32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.config import ControllerConfig
from mdnworld.control.executors import Executor
from mdnworld.errors import CheckpointError
from mdnworld.io import atomic_write_json, write_npz
from mdnworld.layout import RunLayout

SELECT_GENERATION = 10**6
"""The generation number whose dream seeds the re-scoring uses (training never gets there)."""


def read_candidates(path: Path, n: int) -> dict[str, np.ndarray]:
    """The kept candidates (empty arrays if there is no file), checked: n parameters each."""
    if not path.exists():
        return {"generation": np.zeros(0, np.int64), "fitness": np.zeros(0),
                "params": np.zeros((0, n), np.float32)}  # fmt: skip
    with np.load(path, allow_pickle=False) as f:
        c = {k: f[k] for k in ("generation", "fitness", "params") if k in f.files}
    G = len(c.get("generation", ()))
    if len(c) != 3 or c["params"].shape != (G, n) or c["fitness"].shape != (G,):
        raise CheckpointError(f"{path}: not {n}-parameter candidates (generation, fitness, params)")
    return c


def keep_candidate(path: Path, generation: int, fitness: float, params: np.ndarray) -> None:
    """Add generation ``generation``'s best candidate, replacing any row of that generation or
    later (what a run killed before its state was saved left behind)."""
    c = read_candidates(path, len(params))
    older = c["generation"] < generation
    write_npz(path, {
        "generation": np.append(c["generation"][older], generation).astype(np.int64),
        "fitness": np.append(c["fitness"][older], fitness).astype(np.float64),
        "params": np.vstack([c["params"][older], params[None]]).astype(np.float32),
    })  # fmt: skip


def select_controller(
    run: RunLayout,
    cfg: ControllerConfig,
    mean: np.ndarray,
    score: Callable[[ControllerConfig, np.ndarray, int, Executor], np.ndarray],
    executor: Executor,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Re-score the top ``cfg.select_top`` candidates and ``mean`` on ``cfg.select_rollouts``
    fresh dreams each (``score`` = ``train.population_fitness``); returns the winner's row and
    writes its weights' params via the returned dict's "params" (the caller saves them)."""
    c = read_candidates(run.controller_candidates, len(mean))
    top = np.argsort(-c["fitness"], kind="stable")[: cfg.select_top]
    X = np.vstack([c["params"][top], mean[None]]).astype(np.float32)
    names = [f"generation {int(c['generation'][i])} best" for i in top] + ["CMA-ES mean"]
    wide = dataclasses.replace(cfg, rollouts=cfg.select_rollouts)
    rescored = score(wide, X, SELECT_GENERATION, executor)
    rows = [{"candidate": name, "training_fitness": float(c["fitness"][i]) if i is not None
             else None, "rescored": float(f)}
            for name, i, f in zip(names, [*top.tolist(), None], rescored, strict=True)]  # fmt: skip
    win = int(np.argmax(rescored))
    atomic_write_json(run.controller_selection, {
        "rollouts": cfg.select_rollouts, "top": cfg.select_top, "winner": names[win], "rows": rows,
    })  # fmt: skip
    log(f"train-controller: selection on {cfg.select_rollouts} fresh dreams each: "
        + ", ".join(f"{r['candidate']} {r['rescored']:.0f}" for r in rows)
        + f"; chose {names[win]}")  # fmt: skip
    return {**rows[win], "params": X[win]}
