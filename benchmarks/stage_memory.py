"""Peak memory of stages at paper scale: `encode`, `dream` and `analyze all`.

    python benchmarks/stage_memory.py SRC_RUN --config CONFIG [--stages encode,dream,analyze]
                                      [--models 5] [--threads 0] [--out F]

SRC_RUN is a paper-scale run that holds trained models (episodes, latents, vae/, rnn/); the
stages run in a fresh run directory that links to its inputs (SRC_RUN itself is only read;
encode writes new latents there), as the real CLI commands in child processes, and each
stage's ``peak_rss_mb`` is read from that run's ``stages.jsonl`` (``stage_log``: the largest
resident memory of the stage's process tree). Issue 20's goal: every stage <= 4 GB (a paper
run on 16 cores had dream 4.1 GB and analyze 4.0 GB; encode had 3.1 GB here). Prints a table,
writes --out (default benchmarks/results/stage_memory.json; stages not run now keep their
earlier rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mdnworld.io import atomic_write_json

RESULTS = Path(__file__).parent / "results" / "stage_memory.json"
LINKED = ("config.json", "episodes", "latents", "vae", "rnn")
TARGET_MB = 4096
COMMANDS = {"encode": ["encode"], "dream": ["dream"], "analyze": ["analyze", "all"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("src", type=Path, help="a paper-scale run with trained V and Ms")
    ap.add_argument("--config", type=Path, required=True, help="the run's TOML config")
    ap.add_argument("--stages", default="dream,analyze", help="comma-separated, in this order")
    ap.add_argument("--models", type=int, default=5, help="Ms to analyse (analyze.models)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    wanted = args.stages.split(",")
    if unknown := set(wanted) - set(COMMANDS):
        ap.error(f"--stages: unknown {sorted(unknown)}; choose from {list(COMMANDS)}")
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        for name in LINKED:
            if not (name == "latents" and "encode" in wanted):
                os.symlink(args.src.resolve() / name, run / name)
        base = [sys.executable, "-m", "mdnworld"]
        for stage in wanted:
            cmd = [*base, *COMMANDS[stage], str(run), "--config", str(args.config)]
            cmd += ["--set", f"analyze.models={args.models}"] if stage == "analyze" else []
            subprocess.run([*cmd, "--threads", str(args.threads)], check=True)
        rows = [json.loads(line) for line in (run / "stages.jsonl").read_text().splitlines()]
    keep = ("seconds", "peak_rss_mb", "machine")
    here = {"src": str(args.src), "config": str(args.config)}
    measured = {r["stage"]: {**{k: r[k] for k in keep}, **here} for r in rows}
    earlier = json.loads(args.out.read_text())["stages"] if args.out.exists() else {}
    stages = {**earlier, **measured}
    print(f"{'stage':10s} {'seconds':>8s} {'peak RSS MB':>12s}  (target <= {TARGET_MB})")
    for name, r in stages.items():
        when = "now" if name in measured else "earlier"
        print(f"{name:10s} {r['seconds']:8.0f} {r['peak_rss_mb']:12.0f}  {when}")
    atomic_write_json(
        args.out,
        {
            "src": str(args.src),
            "config": str(args.config),
            "models": args.models,
            "stages": stages,
            "target_mb": TARGET_MB,
            "all_within_target": all(r["peak_rss_mb"] <= TARGET_MB for r in stages.values()),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
