"""What it takes for V to draw the fireballs: an ablation of V's recipe against the game's truth.

    python benchmarks/vae_ablation.py --data RUN --eval RUN [--cpu-minutes 10] [--rows a,b,...]

Every row trains a V (latent 64) with ``train_vae`` on the same frames (the episodes of
``--data``), the same seed and the same budget of CPU time (``--cpu-minutes``, all threads of
this process: other work on the machine does not shorten a row; training ends at the first epoch
end past it), then reconstructs the same held-out frames: every 4th frame of the ``--eval``
run's episodes ``--eval-episodes`` (made with ``generate --truth``, none of them in ``--data``).
Per row, benchmarks/vae_fidelity.py's figures (printed with the validated detectors, both sets
in the JSON): fireball (the share of the frames where the game's truth and the detector on the
real frame see a fireball that keep one in V's reconstruction: issue 19's goal >= 0.90),
agreement on explosion and walls (goal >= 0.95), SSE and KL per frame; and steps, wall and CPU
minutes.

A row's ``budget`` multiplies its CPU time. Rows are trained one after the other in ``--work``
(default ~/abl/rows/<row>); a row whose V exists is measured again, not retrained. Writes the
table to stdout, benchmarks/results/vae_ablation.json and a reconstruction grid (held-out
fireball frames: real on top, one row per V) to benchmarks/results/vae_ablation.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
from vae_fidelity import TABLE_HEAD, fidelity, held_out_frames, print_row

from mdnworld.config import VAEConfig
from mdnworld.layout import RunLayout
from mdnworld.media import upscale, write_png
from mdnworld.train.vae import train_vae

RESULTS = Path(__file__).parent / "results"
WM = {"recon_loss": "mse", "free_bits": 32.0, "batch_size": 32}  # World Models' V (the demo's)
ROWS: dict[str, dict] = {
    "paper": {"recon_loss": "bce", "batch_size": 100},  # the paper's recipe (SPEC §3)
    "paper_b32": {"recon_loss": "bce", "batch_size": 32},  # more updates
    "wm": WM,
    "wm_fb64": {**WM, "free_bits": 64.0},
    "wm_fb128": {**WM, "free_bits": 128.0},
    "wm_beta0.25": {**WM, "beta": 0.25},
    "wm_wide": {**WM, "decoder_width": 2},
    "wm_bright10": {**WM, "bright_weight": 10.0},
    "bce_bright10": {"recon_loss": "bce", "batch_size": 32, "bright_weight": 10.0},
    "wm_bright30": {**WM, "bright_weight": 30.0},
    "wm_fb64_bright10": {**WM, "free_bits": 64.0, "bright_weight": 10.0},
    "wm_fb64_bright30": {**WM, "free_bits": 64.0, "bright_weight": 30.0},
    # more updates: the same recipe for three times the CPU time
    "wm_fb64_bright10_x3": {**WM, "free_bits": 64.0, "bright_weight": 10.0, "budget": 3.0},
}


def train_row(data: Path, work: Path, name: str, overrides: dict, cpu_minutes: float) -> dict:
    """Train (unless done) the row's V in ``work/name``; its timing."""
    run = RunLayout(work / name)
    timing_file = run.root / "timing.json"
    if run.vae_model.exists() and timing_file.exists():
        return json.loads(timing_file.read_text())
    run.episodes_dir.mkdir(parents=True, exist_ok=True)
    for f in RunLayout(data).episodes_dir.iterdir():  # the same frames: hard links
        if not (run.episodes_dir / f.name).exists():
            os.link(f, run.episodes_dir / f.name)
    settings = {k: v for k, v in overrides.items() if k != "budget"}
    cfg = VAEConfig(epochs=1000, val_frames=500, **settings)
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    spent = time.process_time() + 60 * cpu_minutes * overrides.get("budget", 1.0)
    train_vae(
        run.root,
        cfg,
        log=lambda s: print(f"  [{name}] {s}", flush=True),
        out_of_budget=lambda: time.process_time() > spent,
    )
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    timing = {
        "wall_minutes": (time.perf_counter() - t0) / 60,
        "cpu_minutes": (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / 60,
    }
    timing_file.write_text(json.dumps(timing))
    return timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="run whose episodes V trains on")
    ap.add_argument("--eval", type=Path, required=True, help="a `generate --truth` run")
    ap.add_argument("--eval-episodes", default="900:1000", help="first:end (default 900:1000)")
    ap.add_argument("--every", type=int, default=4, help="every k-th frame (default 4)")
    ap.add_argument("--cpu-minutes", type=float, default=10.0, help="CPU minutes per row")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    ap.add_argument("--work", type=Path, default=Path.home() / "abl" / "rows")
    ap.add_argument(
        "--also",
        type=Path,
        nargs="*",
        default=[],
        help="runs whose V is measured too, untrained here (e.g. the shipped one)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "vae_ablation.json")
    args = ap.parse_args()
    first, end = map(int, args.eval_episodes.split(":"))
    frames, truth, _ = held_out_frames(args.eval, range(first, end), args.every)
    if truth is None:
        raise SystemExit(f"{args.eval}: episodes without truth; use a `generate --truth` run")
    names = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {sorted(ROWS)}")
    result = {"data": str(args.data), "eval": str(args.eval), "eval_episodes": args.eval_episodes,
              "frames": len(frames), "cpu_minutes": args.cpu_minutes,
              "primary_detectors": "validated", "rows": {}}  # fmt: skip
    pick = np.flatnonzero(truth[:, 1])[:: max(1, int(truth[:, 1].sum()) // 8)][:8]
    grid = [np.concatenate(list(frames[pick]), 1)]
    for name in names:
        timing = train_row(args.data, args.work, name, ROWS[name], args.cpu_minutes)
        row, recon = fidelity(args.work / name, frames, truth)
        result["rows"][name] = {**row, **timing}
        grid.append(np.concatenate(list(recon[pick]), 1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after every row
    for run in args.also:
        row, recon = fidelity(run, frames, truth)
        result["rows"][f"{run.name} (as trained)"] = {**row, "wall_minutes": 0, "cpu_minutes": 0}
        grid.append(np.concatenate(list(recon[pick]), 1))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    write_png(args.out.with_suffix(".png"), upscale(np.concatenate(grid, 0), 2))
    shown = [*names, *(r.name for r in args.also)]
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} (rows: real, then {shown})")


def print_table(result: dict) -> None:
    print(f"{result['frames']} held-out frames of {result['eval']} ({result['eval_episodes']}); "
          f"{result['cpu_minutes']} CPU min per row; validated detectors")  # fmt: skip
    print(TABLE_HEAD + f" {'wall':>5s} {'cpu':>5s}")
    for name, row in result["rows"].items():
        print_row(name, row)
        print(f" {row['wall_minutes']:5.1f} {row['cpu_minutes']:5.1f}")


if __name__ == "__main__":
    main()
