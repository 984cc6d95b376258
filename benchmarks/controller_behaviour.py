"""What does a trained controller do in the real game? Its button presses over a few episodes.

    python benchmarks/controller_behaviour.py RUN_DIR [RUN_DIR ...] [--episodes 10]
        [--max-steps 2100] [--out F]

Each run's trained controller (``controller/controller.safetensors``, the CMA-ES mean) plays
``--episodes`` real games on the first seeds ``mdnworld evaluate`` uses. Per run: the share of
steps it presses left / nothing / right (the game's thresholds ±1/3), how many steps it keeps
one button on average, and the scores. A controller that learned to dodge changes what it does
when a fireball comes; one that found a hole in its dream holds one button (e.g. always right).
Prints a table, writes --out (default benchmarks/results/controller_behaviour.json).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from mdnworld.config import EvaluateConfig
from mdnworld.control.evaluate import load_controller
from mdnworld.control.executors import LocalExecutor
from mdnworld.control.realgame import PlayJob, play_job, seed_jobs
from mdnworld.env.take_cover import LEFT_THRESHOLD, RIGHT_THRESHOLD
from mdnworld.io import atomic_write_json

RESULTS = Path(__file__).parent / "results" / "controller_behaviour.json"


def behaviour(actions: list[np.ndarray]) -> dict[str, float]:
    """Per-step actions (T,) of several episodes -> shares of left/nothing/right and the mean
    number of steps one button is held."""
    buttons = [np.digitize(a, [LEFT_THRESHOLD, RIGHT_THRESHOLD]) for a in actions]  # 0, 1, 2
    every = np.concatenate(buttons)
    changes = sum(int(np.count_nonzero(np.diff(b))) for b in buttons)
    return {
        "left": float(np.mean(every == 0)),
        "nothing": float(np.mean(every == 1)),
        "right": float(np.mean(every == 2)),
        "steps_per_button": len(every) / (changes + len(buttons)),  # runs: changes + 1 each
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--max-steps", type=int, default=EvaluateConfig.max_steps)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    cfg = EvaluateConfig(max_steps=args.max_steps)
    seeds = [cfg.seed + i for i in range(args.episodes)]
    rows = []
    executor = LocalExecutor(args.workers)
    try:
        for run in args.runs:
            params, meta = load_controller(run)
            base = PlayJob(str(run), meta["model_index"], params, cfg.max_steps, record=True)
            jobs = seed_jobs(base, seeds, args.workers)
            played = [r for part in executor.map(play_job, jobs) for r in part]
            row = {"run": str(run), "generation": meta["generation"], "episodes": len(played),
                   "scores": [r["score"] for r in played],
                   **behaviour([r["actions"] for r in played])}  # fmt: skip
            rows.append(row)
            print(f"{run}: generation {row['generation']}, {len(played)} episodes, score "
                  f"{np.mean(row['scores']):.0f}; left {row['left']:.0%} nothing "
                  f"{row['nothing']:.0%} right {row['right']:.0%}; one button held "
                  f"{row['steps_per_button']:.1f} steps on average")  # fmt: skip
    finally:
        executor.close()
    atomic_write_json(args.out, {"seeds": [seeds[0], seeds[-1]], "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
