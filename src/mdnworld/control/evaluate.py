"""``mdnworld evaluate``: the trained controller in the real game.

``episodes`` real episodes (game seeds ``seed + i``) spread over the executor's workers; the
score of an episode is the number of steps survived. Writes ``RUN_DIR/evaluate/``:
``scores.json`` (per-episode seeds and scores, mean ± std, and the published reference
numbers, ``reference.EVALUATE_REFERENCE``) and, with ``videos``, ``best.mp4`` / ``worst.mp4``:
the best and the worst episode replayed (same seed, same score: the agent is deterministic)
with the real frame beside V's reconstruction of it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import numpy as np

from mdnworld import reference
from mdnworld.checkpoints import load_state_strict, load_weights
from mdnworld.config import EvaluateConfig, Which
from mdnworld.control.executors import Executor, make_executor
from mdnworld.control.realgame import Episode, PlayJob, play_job, seed_jobs
from mdnworld.errors import CheckpointError, ConfigError, MissingError
from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout
from mdnworld.media import upscale, write_video
from mdnworld.models.controller import Controller, ControllerArch


def load_controller(run_dir: Path | str, which: str = "mean") -> tuple[np.ndarray, dict[str, Any]]:
    """Flat parameters (n,) float32 and meta of the trained controller: ``which`` "mean" (the
    CMA-ES mean, ``controller.safetensors``) or "best" (the best dream candidate)."""
    if which not in get_args(Which):
        raise ConfigError(f"which must be one of {list(get_args(Which))}, got {which!r}")
    return read_controller(RunLayout(run_dir).controller_weights(which))


def read_controller(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Flat parameters (n,) float32 and meta of the controller file ``path`` (a
    ``controller*.safetensors``); the error names the file."""
    if not path.exists():
        raise MissingError(f"{path}: no controller; run `mdnworld train-controller` first")
    tensors, meta = load_weights(path)
    missing = [k for k in ("arch", "generation", "model_index") if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: its .json has no {missing}; not a trained controller")
    try:
        arch = ControllerArch(**meta["arch"])
    except TypeError as e:
        raise CheckpointError(f"{path}: 'arch' does not describe a controller ({e})") from None
    controller = Controller(arch)
    load_state_strict(controller, tensors, path)
    return controller.flat().numpy().astype(np.float32), meta


def evaluate(run_dir: Path, cfg: EvaluateConfig, log: Callable[[str], None] = print) -> dict:
    """Play ``cfg.episodes`` real episodes with the trained controller; write and return the
    scores (``evaluate/scores.json``)."""
    run = RunLayout(run_dir)
    params, meta = load_controller(run.root, cfg.which)
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    executor = make_executor(cfg.executor, cfg.address, cfg.workers)
    base = PlayJob(str(run.root), meta["model_index"], params, cfg.max_steps)
    log(f"evaluate: {cfg.episodes} real episodes of the {cfg.which} controller "
        f"(generation {meta['generation']}), executor {cfg.executor}")  # fmt: skip
    t0 = time.perf_counter()
    try:
        n_jobs = 4 * (cfg.workers or 2)  # several small jobs per worker balance the load
        rows = [r for part in executor.map(play_job, seed_jobs(base, seeds, n_jobs)) for r in part]
        seconds = time.perf_counter() - t0
        result = _summary(rows, cfg, meta, seconds)
        if cfg.videos:
            result.update(_videos(run, base, rows, executor))
    finally:
        executor.close()
    atomic_write_json(run.evaluate_scores, result)
    (wm_mean, wm_std), (rnd_mean, rnd_std) = reference.WORLD_MODELS, reference.RANDOM_POLICY
    log(
        f"evaluate: score {result['mean']:.0f} ± {result['std']:.0f} over {len(rows)} episodes "
        f"(World Models {wm_mean} ± {wm_std}, random {rnd_mean} ± {rnd_std}, solved at "
        f"{reference.SOLVED}); {run.evaluate_scores}"
    )
    return result


def _summary(rows: list[Episode], cfg: EvaluateConfig, meta: dict, seconds: float) -> dict:
    """``scores.json`` without the videos (its format: keep the keys and their order)."""
    scores = np.array([r["score"] for r in rows])
    return {
        "controller": cfg.which,
        "generation": meta["generation"],
        "model_index": meta["model_index"],
        "episodes": len(rows),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "min": int(scores.min()),
        "max": int(scores.max()),
        "solved": bool(scores.mean() >= reference.SOLVED),
        "seconds": seconds,
        "episodes_per_s": len(rows) / seconds,
        "per_episode": [{"seed": r["seed"], "score": r["score"]} for r in rows],
        "reference": reference.EVALUATE_REFERENCE,
    }


def _videos(
    run: RunLayout, base: PlayJob, rows: list[Episode], executor: Executor
) -> dict[str, dict]:
    """Replay the best and the worst episode recorded, write ``best.mp4`` / ``worst.mp4`` (real
    frame | V's reconstruction) and return their ``scores.json`` entries."""
    scores = np.array([r["score"] for r in rows])
    entries = {}
    for name, row in (("best", rows[int(scores.argmax())]), ("worst", rows[int(scores.argmin())])):
        job = dataclasses.replace(base, seeds=(row["seed"],), record=True)
        ((rec,),) = executor.map(play_job, [job])
        if rec["score"] != row["score"]:
            raise RuntimeError(
                f"replay of seed {row['seed']} scored {rec['score']}, "
                f"not {row['score']}: the agent is not deterministic"
            )
        side = np.concatenate([rec["frames"], rec["recons"]], axis=2)  # (T, 64, 128, 3)
        path = run.evaluate_video(name)
        write_video(path, upscale(side, 4), 35)
        entries[f"{name}_video"] = {"file": path.name, "seed": row["seed"], "score": row["score"]}
    return entries
