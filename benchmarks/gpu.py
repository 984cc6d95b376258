"""Benchmark issue 20's GPU goals: V's trainer beside a bare loop of the same model on the
same device, and the wall time of each stage of a run trained there.

    python benchmarks/gpu.py [--device auto] [--episodes 60] [--steps 200] [--run RUN_DIR]

- the bare loop (benchmarks/vae.py's: frames already on the device, random batches of 100,
  Adam, the same loss) in float32 and under bf16 autocast, samples/s;
- ``train_vae`` at batch 100 on the same device and episodes, with its defaults (frames
  resident on a GPU, logged every 10 steps: each logged rate covers the 10 steps), the
  median of its logged rates; target: >= 1.0x the bare loop;
- with ``--run``, the seconds and peak memory of each stage in that run's stages.jsonl
  (e.g. scripts/train_on_gpu.sh's run of configs/paper.toml; target steps 1-4 <= 5 min).
The five Ms side by side or batched: benchmarks/batched_rnn.py --device cuda.
Prints a table, writes --out (default benchmarks/results/gpu_<device type>.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mdnworld.data.episodes import episode_files, load_episode
from mdnworld.device import resolve_device
from mdnworld.io import atomic_write_json
from mdnworld.models.vae import frames_to_tensor
from mdnworld.stage_log import machine, stage_totals

sys.path.insert(0, str(Path(__file__).parent))
import vae as vae_bench  # noqa: E402  (benchmarks/ is not a package)

RESULTS = Path(__file__).parent / "results"
STEP_1_TO_4 = ("generate", "train-vae", "encode", "train-rnn")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--steps", type=int, default=200, help="timed steps of each loop")
    ap.add_argument("--run", type=Path, help="a run whose stages.jsonl to summarise")
    ap.add_argument("--out", type=Path, help="JSON to write (default: results/gpu_<device>.json)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    run = vae_bench.data(args.episodes)
    files = episode_files(run)
    frames = np.concatenate([load_episode(p).frames for p in files])
    x_all = frames_to_tensor(frames).to(device)
    bare = {amp: vae_bench.rate(vae_bench.bare_loop(x_all, amp), args.steps, 10)
            for amp in ("none", "bf16")}  # fmt: skip
    trainer = vae_bench.trainer_rate(run, args.steps, str(device), log_every=10)
    rows = [
        ("V bare loop, fp32, batch 100", f"{bare['none']:.0f} samples/s"),
        ("V bare loop, bf16 autocast", f"{bare['bf16']:.0f} samples/s"),
        ("train_vae, its defaults", f"{trainer:.0f} samples/s "
         f"({trainer / bare['none']:.2f}x the fp32 bare loop; target 1.0x)"),
    ]  # fmt: skip
    stages = stage_totals(args.run) if args.run else {}
    for name, s in stages.items():
        peak = f"peak {s['peak_rss_mb']:.0f} MB"
        rows.append((f"stage {name}", f"{s['seconds'] / 60:.1f} min, {peak}"))
    if stages:
        total = sum(stages[s]["seconds"] for s in STEP_1_TO_4 if s in stages)
        missing = [s for s in STEP_1_TO_4 if s not in stages]
        without = f", without {', '.join(missing)}" if missing else ""
        rows.append(("steps 1-4", f"{total / 60:.1f} min (target 5{without})"))
    for name, val in rows:
        print(f"{name:32s} {val}")
    out = args.out or RESULTS / f"gpu_{device.type}.json"
    atomic_write_json(out, {
        "machine": machine(),
        "device": str(device),
        "episodes": len(files),
        "frames": len(frames),
        "bare_samples_per_s": bare["none"],
        "bare_bf16_samples_per_s": bare["bf16"],
        "trainer_samples_per_s": trainer,
        "trainer_vs_bare": trainer / bare["none"],
        "target_trainer_vs_bare": 1.0,
        "stages": stages,
        "run": str(args.run) if args.run else None,
    })  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
