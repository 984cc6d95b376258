"""Benchmark the dream engine: dream steps/s by batch size, with and without decoding.

    python benchmarks/dream.py [--steps 200] [--threads 0]

M is the paper's (LSTM 256, K 5 shared, latent 64) and V World Models' layout, with their
initial weights: the speed does not depend on the values. Measures ``dreams.dream`` (the
analyses' path: sampling, random actions, recording z/pi/component/action every step) at batch
1, 64 and 1024, the bare ``Dreamer.step`` loop at 1024 (the controller's path: no recording),
decoding at batch 64, and a loop of single dreams in the same run for comparison. Projects one
controller "generation" (1024 dreams x 2100 steps, no decoding; target <= 60 s on 2 cores).
Prints a table, writes benchmarks/results/dream.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from mdnworld.device import prepare_cpu
from mdnworld.dreams import Dreamer, RandomActions, decode, dream
from mdnworld.models.mdnrnn import MDNRNN, MDNRNNArch
from mdnworld.models.vae import VAE, VAEArch

RESULTS = Path(__file__).parent / "results" / "dream.json"
GENERATION = (1024, 2100)  # dreams, steps


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="recorded steps per measurement")
    ap.add_argument("--singles", type=int, default=8, help="single dreams in the loop")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    threads = prepare_cpu(args.threads)
    torch.manual_seed(0)
    m = MDNRNN(MDNRNNArch()).eval()
    vae = VAE(VAEArch()).eval()
    S = args.steps
    rows: dict[str, dict] = {}

    def record(name: str, dreams: int, steps: int, seconds: float) -> None:
        rows[name] = {"dreams": dreams, "steps": steps, "seconds": seconds,
                      "dream_steps_per_s": dreams * steps / seconds}  # fmt: skip

    dream(m, torch.zeros(64, 64), 5, list(range(64)))  # warm-up (allocations, oneDNN)
    for B in (1, 64, 1024):
        z0 = torch.randn(B, 64)
        record(
            f"dream(), batch {B}", B, S, timed(lambda z0=z0, B=B: dream(m, z0, S, list(range(B))))
        )

    def bare(B: int = 1024) -> None:
        d = Dreamer(m, list(range(B)))
        d.reset(torch.randn(B, 64))
        policy = RandomActions(list(range(B)))
        for _ in range(S):
            d.step(policy())

    record("Dreamer.step loop, batch 1024 (no recording)", 1024, S, timed(bare))

    def with_decoding(B: int = 64) -> None:
        rec = dream(m, torch.randn(B, 64), S, list(range(B)))
        decode(vae, rec.z)

    record("dream() + decode, batch 64", 64, S, timed(with_decoding))

    def singles() -> None:
        for i in range(args.singles):
            dream(m, torch.randn(1, 64), S, [i])

    record(f"loop of {args.singles} single dreams", args.singles, S, timed(singles))

    batched = rows["dream(), batch 1024"]["dream_steps_per_s"]
    single = rows[f"loop of {args.singles} single dreams"]["dream_steps_per_s"]
    generation = {
        name: GENERATION[0] * GENERATION[1] / rows[name]["dream_steps_per_s"]
        for name in ("dream(), batch 1024", "Dreamer.step loop, batch 1024 (no recording)")
    }
    print(f"{'what':48s} {'dream steps/s':>14s}")
    for name, r in rows.items():
        print(f"{name:48s} {r['dream_steps_per_s']:14.0f}")
    print(f"batch 1024 vs a loop of single dreams: {batched / single:.0f}x")
    for name, sec in generation.items():
        print(f"one generation (1024 x 2100 steps) with {name}: {sec:.0f} s (target <= 60 s)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpu_count": os.cpu_count(), "threads": threads, "torch": torch.__version__,
                    "processor": platform.processor()},
        "model": "MDNRNN hidden 256, K 5 shared, latent 64; VAE World Models layout",
        "rows": rows,
        "batch1024_vs_single_loop": batched / single,
        "generation_seconds": generation,
        "target_generation_seconds": 60,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
