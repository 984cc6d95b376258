"""``mdnworld evaluate``: the trained controller in the real game.

``episodes`` real episodes (game seeds ``seed + i``) spread over the executor's workers; the
score of an episode is the number of steps survived. Writes ``RUN_DIR/evaluate/``:
``scores.json`` (per-episode seeds and scores, mean ± std, and the published reference
numbers) and, with ``videos``, ``best.mp4`` / ``worst.mp4``: the best and the worst episode
replayed (same seed, same score: the agent is deterministic) with the real frame beside V's
reconstruction of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.checkpoints import load_weights
from mdnworld.config import EvaluateConfig
from mdnworld.control.executors import make_executor
from mdnworld.control.realgame import play_job, seed_jobs
from mdnworld.control.train import CTRL_DIR
from mdnworld.io import atomic_write_json
from mdnworld.media import upscale, write_video

EVAL_DIR = "evaluate"
REFERENCE = {
    "world_models_tau_1.15": [1092, 556],
    "random_policy": [210, 108],
    "solved": 750,
}
"""SPEC §1, §8: World Models' dream-trained controller, a random policy, the "solved" line."""


def load_controller(run_dir: Path, which: str = "mean") -> tuple[np.ndarray, dict[str, Any]]:
    """Flat parameters (n,) and meta of ``controller`` ("mean") or ``best``."""
    names = {"mean": "controller", "best": "best"}
    if which not in names:
        raise ValueError(f"which must be 'mean' or 'best', got {which!r}")
    path = Path(run_dir) / CTRL_DIR / f"{names[which]}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no controller; run `mdnworld train-controller` first")
    tensors, meta = load_weights(path)
    params = np.concatenate([tensors["fc.weight"].flatten().numpy(), tensors["fc.bias"].numpy()])
    return params.astype(np.float32), meta


def evaluate(run_dir: Path, cfg: EvaluateConfig, log: Callable[[str], None] = print) -> dict:
    run_dir = Path(run_dir)
    params, meta = load_controller(run_dir, cfg.which)
    seeds = [cfg.seed + i for i in range(cfg.episodes)]
    executor = make_executor(cfg.executor, cfg.address, cfg.workers)
    base = {"run_dir": str(run_dir), "model_index": meta["model_index"],
            "params": params.tolist(), "max_steps": cfg.max_steps}  # fmt: skip
    log(f"evaluate: {cfg.episodes} real episodes of the {cfg.which} controller "
        f"(generation {meta['generation']}), executor {cfg.executor}")  # fmt: skip
    t0 = time.perf_counter()
    try:
        n_jobs = 4 * (cfg.workers or 2)  # several small jobs per worker balance the load
        rows = [r for part in executor.map(play_job, seed_jobs(base, seeds, n_jobs)) for r in part]
        seconds = time.perf_counter() - t0
        scores = np.array([r["score"] for r in rows])
        out = run_dir / EVAL_DIR
        result = {
            "controller": cfg.which,
            "generation": meta["generation"],
            "model_index": meta["model_index"],
            "episodes": len(rows),
            "mean": float(scores.mean()),
            "std": float(scores.std()),
            "min": int(scores.min()),
            "max": int(scores.max()),
            "solved": bool(scores.mean() >= REFERENCE["solved"]),
            "seconds": seconds,
            "episodes_per_s": len(rows) / seconds,
            "per_episode": [{"seed": r["seed"], "score": r["score"]} for r in rows],
            "reference": REFERENCE,
        }
        if cfg.videos:
            for name, row in (("best", rows[int(scores.argmax())]),
                              ("worst", rows[int(scores.argmin())])):  # fmt: skip
                (rec,) = executor.map(play_job, [{**base, "seeds": [row["seed"]], "record": True}])
                (rec,) = rec
                if rec["score"] != row["score"]:
                    raise RuntimeError(
                        f"replay of seed {row['seed']} scored {rec['score']}, "
                        f"not {row['score']}: the agent is not deterministic"
                    )
                side = np.concatenate([rec["frames"], rec["recons"]], axis=2)  # (T, 64, 128, 3)
                write_video(out / f"{name}.mp4", upscale(side, 4), 35)
                result[f"{name}_video"] = {"file": f"{name}.mp4", "seed": row["seed"],
                                           "score": row["score"]}  # fmt: skip
    finally:
        executor.close()
    atomic_write_json(out / "scores.json", result)
    log(
        f"evaluate: score {result['mean']:.0f} ± {result['std']:.0f} over {len(rows)} episodes "
        f"(World Models 1092 ± 556, random 210 ± 108, solved at 750); {out / 'scores.json'}"
    )
    return result
