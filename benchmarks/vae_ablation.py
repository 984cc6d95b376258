"""What it takes for V to draw the fireballs: an ablation of V's recipe against the game's truth.

    python benchmarks/vae_ablation.py --data RUN --eval RUN [--cpu-minutes 10] [--rows a,b,...]

Every row trains a V (latent 64) with ``train_vae`` on the same frames (the episodes of
``--data``), the same seed and the same budget of CPU time (``--cpu-minutes``, all threads of
this process: other work on the machine does not shorten a row; training ends at the first epoch
end past it), then reconstructs the same held-out frames: every 4th frame of the ``--eval``
run's episodes ``--eval-episodes`` (made with ``generate --truth``, none of them in ``--data``).
Per row, with the validated detectors (analysis/detectors.VALIDATED; the SPEC's in the JSON):

- fireball: of the frames where the game's truth *and* the detector on the real frame see a
  fireball (SPEC §7B's world label), the share where the detector sees one on V's
  reconstruction decode(mu(frame)) -- issue 19's goal is >= 0.90;
- explosion / left wall / right wall: the share of all frames where the detector says the same
  on the reconstruction as on the real frame (goal >= 0.95);
- SSE per frame (squared error summed over 12,288 values; comparable across losses), PSNR,
  KL per frame (nats, before the free-bits floor), steps, epochs, wall and CPU minutes.

Rows are trained one after the other in ``--work`` (default ~/abl/rows/<row>); a row whose V
exists is measured again, not retrained. Writes the table to stdout,
benchmarks/results/vae_ablation.json and a reconstruction grid (held-out fireball frames:
real on top, one row per V) to benchmarks/results/vae_ablation.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from mdnworld.analysis.detectors import DETECTOR_SETS, detect, world_labels
from mdnworld.analysis.truth import truth_features
from mdnworld.checkpoints import load_vae
from mdnworld.config import VAEConfig
from mdnworld.data.episodes import load_episode
from mdnworld.layout import RunLayout
from mdnworld.media import upscale, write_png
from mdnworld.models.vae import encode_frames, tensor_to_frames
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
}
WORLD = ("Explosion", "Fireball", "LeftWall", "RightWall")  # world_labels' first 4 columns


def eval_frames(run: Path, episodes: range, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``every``-th frame of ``episodes`` of ``run`` (N, 64, 64, 3) uint8 and the truth's
    world labels (N, 4) bool."""
    frames, truth = [], []
    for i in episodes:
        ep = load_episode(RunLayout(run).episode(i))
        if ep.truth is None:
            raise SystemExit(f"{RunLayout(run).episode(i)}: no truth; use a `generate --truth` run")
        frames.append(ep.frames[::every])
        truth.append(world_labels(truth_features(ep.truth))[::every, :4])
    return np.concatenate(frames), np.concatenate(truth)


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
    cfg = VAEConfig(epochs=1000, val_frames=500, **overrides)
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    spent = time.process_time() + 60 * cpu_minutes
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


@torch.no_grad()
def measure(run: Path, frames: np.ndarray, truth: np.ndarray) -> tuple[dict, np.ndarray]:
    """The row's fidelity figures (module doc) and its reconstructions (N, 64, 64, 3) uint8."""
    vae, meta = load_vae(run, torch.device("cpu"))
    mu, logvar = encode_frames(vae, frames, 500, torch.device("cpu"))
    recon = np.concatenate(
        [
            tensor_to_frames(vae.decode(torch.from_numpy(mu[i : i + 500])))
            for i in range(0, len(mu), 500)
        ]
    )
    err = (recon.astype(np.float32) - frames.astype(np.float32)) / 255
    sse = (err**2).reshape(len(err), -1).sum(1)
    kl = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(1)
    row = {
        "config": {k: meta["config"][k] for k in ("recon_loss", "free_bits", "beta",
                   "bright_weight", "decoder_width", "batch_size", "amp")},
        "steps": meta["steps"],
        "sse_per_frame": float(sse.mean()),
        "psnr_db": float((10 * np.log10(12288 / np.maximum(sse, 1e-12))).mean()),
        "kl_per_frame": float(kl.mean()),
    }  # fmt: skip
    for set_name, th in DETECTOR_SETS.items():
        real = world_labels(detect(frames, th))[:, :4]
        rec = world_labels(detect(recon, th))[:, :4]
        seen = truth[:, 1] & real[:, 1]  # the truth and the real-frame detector see a fireball
        row[set_name] = {
            "fireball_frames": int(seen.sum()),
            "fireball": float(rec[seen, 1].mean()),
            "fireball_rate_real": float(real[:, 1].mean()),
            "fireball_rate_recon": float(rec[:, 1].mean()),
            **{f"agree_{c}": float((rec[:, j] == real[:, j]).mean()) for j, c in enumerate(WORLD)
               if c != "Fireball"},
        }  # fmt: skip
    return row, recon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="run whose episodes V trains on")
    ap.add_argument("--eval", type=Path, required=True, help="a `generate --truth` run")
    ap.add_argument("--eval-episodes", default="900:1000", help="first:end (default 900:1000)")
    ap.add_argument("--every", type=int, default=4, help="every k-th frame (default 4)")
    ap.add_argument("--cpu-minutes", type=float, default=10.0, help="CPU minutes per row")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    ap.add_argument("--work", type=Path, default=Path.home() / "abl" / "rows")
    ap.add_argument("--out", type=Path, default=RESULTS / "vae_ablation.json")
    args = ap.parse_args()
    first, end = map(int, args.eval_episodes.split(":"))
    frames, truth = eval_frames(args.eval, range(first, end), args.every)
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
        row, recon = measure(args.work / name, frames, truth)
        result["rows"][name] = {**row, **timing}
        grid.append(np.concatenate(list(recon[pick]), 1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after every row
    print_table(result)
    write_png(args.out.with_suffix(".png"), upscale(np.concatenate(grid, 0), 2))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} (rows: real, then {names})")


def print_table(result: dict) -> None:
    print(f"{result['frames']} held-out frames of {result['eval']} ({result['eval_episodes']}); "
          f"{result['cpu_minutes']} CPU min per row; validated detectors")  # fmt: skip
    head = f"{'row':14s} {'fireball':>8s} {'expl':>6s} {'left':>6s} {'right':>6s} {'SSE':>7s} "
    print(head + f"{'KL':>6s} {'steps':>6s} {'wall':>5s} {'cpu':>5s}")
    for name, r in result["rows"].items():
        v = r["validated"]
        print(f"{name:14s} {v['fireball']:8.3f} {v['agree_Explosion']:6.3f} "
              f"{v['agree_LeftWall']:6.3f} {v['agree_RightWall']:6.3f} {r['sse_per_frame']:7.1f} "
              f"{r['kl_per_frame']:6.1f} {r['steps']:6d} {r['wall_minutes']:5.1f} "
              f"{r['cpu_minutes']:5.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
