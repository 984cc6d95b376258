"""Policies that need no training, in the real game, on the seeds ``mdnworld evaluate`` uses.

The published anchor "random 210 ± 108" (SPEC §1) is World Models' game; the SPEC §2 data
policy repeats each random action 1-10 steps, which survives longer. A dream-trained
controller has to beat these on the same game and the same seeds to show it learned anything:

    python benchmarks/real_baselines.py [--episodes 100] [--workers 2]

Prints a table and writes benchmarks/results/real_baselines.json (``mdnworld
controller-results --baselines`` puts its rows beside the controller's score).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdnworld.config import EvaluateConfig
from mdnworld.control.executors import LocalExecutor
from mdnworld.control.realgame import cached_env, seed_jobs
from mdnworld.env.take_cover import RandomRepeatPolicy
from mdnworld.io import atomic_write_json

RESULTS = Path(__file__).parent / "results" / "real_baselines.json"
POLICIES = {  # name -> repeat of RandomRepeatPolicy (None: drawn per episode, SPEC §2)
    "uniform random (new action every step)": 1,
    "SPEC §2 data policy (random, repeat 1-10)": None,
    "stand still": 0,
}


@dataclass(frozen=True)
class BaselineJob:
    """One executor job: an untrained policy plays one real episode per seed. ``repeat`` 0
    stands still, None draws it per episode (SPEC §2)."""

    repeat: int | None
    max_steps: int
    seeds: tuple[int, ...] = ()


def play(job: BaselineJob) -> list[int]:
    """-> steps survived per seed."""
    env = cached_env(job.max_steps)
    scores = []
    for seed in job.seeds:
        policy = RandomRepeatPolicy(seed, job.repeat) if job.repeat != 0 else None
        obs, _ = env.reset(seed=seed)
        score, done = 0, False
        while not done:
            a = policy(obs) if policy else np.zeros(1, np.float32)
            obs, reward, terminated, truncated, _ = env.step(a)
            score, done = score + int(reward), terminated or truncated
        scores.append(score)
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    cfg = EvaluateConfig()
    seeds = [cfg.seed + i for i in range(args.episodes)]
    rows, executor = [], LocalExecutor(args.workers)  # the executor `mdnworld evaluate` uses
    for name, repeat in POLICIES.items():
        t0 = time.perf_counter()
        jobs = seed_jobs(BaselineJob(repeat, cfg.max_steps), seeds, 4 * args.workers)
        scores = [s for part in executor.map(play, jobs) for s in part]
        rows.append({"policy": name, "mean": float(np.mean(scores)),
                     "std": float(np.std(scores)), "episodes": len(scores),
                     "seconds": time.perf_counter() - t0, "scores": scores})  # fmt: skip
        print(f"{name:45s} {rows[-1]['mean']:6.0f} ± {rows[-1]['std']:4.0f} "
              f"({len(scores)} episodes, seeds {seeds[0]}..{seeds[-1]})")  # fmt: skip
    executor.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"seeds": [seeds[0], seeds[-1]], "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
