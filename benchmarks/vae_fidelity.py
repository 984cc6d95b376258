"""How faithful is V? Compare the VAEs of one or more runs on the same held-out real frames.

    python benchmarks/vae_fidelity.py RUN_DIR [RUN_DIR ...] [--frames 500] [--episodes-from RUN]

Frames: every 4th frame of the held-out (validation) episodes of --episodes-from (default: the
first run), up to --frames. Per V, with each detector set (analysis/detectors.DETECTOR_SETS):

- fireball: of the frames where the detector on the real frame sees a fireball (SPEC §7B's
  world label) -- and, when the episodes carry the game's truth (``generate --truth``), where
  the truth sees one too -- the share where the detector sees one on V's reconstruction
  decode(mu(frame)). Issue 19's goal: >= 0.90 with the validated detectors;
- agree_<class>: the share of all frames where the detector says the same on the reconstruction
  as on the real frame, for Explosion, LeftWall, RightWall (goal >= 0.95);
- the class rates on real frames and on reconstructions;

and SSE per frame (squared error summed over the 12,288 values), PSNR and the KL of q(z|x) per
frame (nats, before any free-bits floor). Small fireballs are what a blurry V loses first, and
the analyses count fireballs. Prints a table, writes --out
(default benchmarks/results/vae_fidelity.json).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mdnworld.analysis.detectors import DETECTOR_SETS, detect, world_labels
from mdnworld.analysis.truth import truth_features
from mdnworld.checkpoints import load_vae
from mdnworld.data.episodes import load_episode
from mdnworld.dreams import decode
from mdnworld.io import read_json
from mdnworld.layout import RunLayout
from mdnworld.models.vae import encode_frames

RESULTS = Path(__file__).parent / "results" / "vae_fidelity.json"
WORLD = ("Explosion", "Fireball", "LeftWall", "RightWall")  # world_labels' first 4 columns
CONFIG_KEYS = ("recon_loss", "free_bits", "beta", "bright_weight", "batch_size", "epochs", "amp")


def held_out_frames(
    run: Path, episodes: Sequence[int], every: int = 4
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Every ``every``-th frame of ``episodes`` of ``run``: (N, 64, 64, 3) uint8, the truth's
    world labels (N, 4) bool over WORLD (None unless every episode has truth), and each
    frame's step in its episode (N,)."""
    frames, truth, steps = [], [], []
    for i in episodes:
        ep = load_episode(RunLayout(run).episode(i))
        frames.append(ep.frames[::every])
        steps.append(np.arange(0, len(ep.frames), every))
        if ep.truth is not None:
            truth.append(world_labels(truth_features(ep.truth))[::every, :4])
    all_truth = np.concatenate(truth) if len(truth) == len(frames) else None
    return np.concatenate(frames), all_truth, np.concatenate(steps)


@torch.no_grad()
def fidelity(run: Path, frames: np.ndarray, truth: np.ndarray | None) -> tuple[dict, np.ndarray]:
    """The figures of the module doc for the V of ``run``, and its reconstructions of
    ``frames`` (N, 64, 64, 3) uint8."""
    cpu = torch.device("cpu")
    vae, meta = load_vae(run, cpu)
    mu, logvar = encode_frames(vae, frames, 500, cpu)
    recon = decode(vae, mu, 500, np.uint8)
    sse = (((recon.astype(np.float32) - frames.astype(np.float32)) / 255) ** 2).sum((1, 2, 3))
    row = {
        "config": {k: meta["config"].get(k) for k in CONFIG_KEYS},
        "decoder_width": meta["arch"].get("decoder_width", 1),
        "steps": meta.get("steps"),
        "sse_per_frame": float(sse.mean()),
        "psnr_db": float((10 * np.log10(12288 / np.maximum(sse, 1e-12))).mean()),
        "kl_per_frame": float((-0.5 * (1 + logvar - mu**2 - np.exp(logvar))).sum(1).mean()),
    }
    for name, thresholds in DETECTOR_SETS.items():
        real = world_labels(detect(frames, thresholds))[:, :4]
        rec = world_labels(detect(recon, thresholds))[:, :4]
        seen = real[:, 1] & truth[:, 1] if truth is not None else real[:, 1]
        row[name] = {
            "fireball_frames": int(seen.sum()),
            "fireball": float(rec[seen, 1].mean()) if seen.any() else None,
            "rates_real": dict(zip(WORLD, real.mean(0).tolist(), strict=True)),
            "rates_recon": dict(zip(WORLD, rec.mean(0).tolist(), strict=True)),
            **{f"agree_{c}": float((rec[:, j] == real[:, j]).mean())
               for j, c in enumerate(WORLD) if c != "Fireball"},
        }  # fmt: skip
    return row, recon


def print_row(name: str, row: dict, detectors: str = "validated") -> None:
    """One line of the fidelity table."""
    v = row[detectors]
    fireball = "-" if v["fireball"] is None else f"{v['fireball']:.3f}"
    print(f"{name:16s} {fireball:>8s} {v['agree_Explosion']:6.3f} {v['agree_LeftWall']:6.3f} "
          f"{v['agree_RightWall']:6.3f} {row['sse_per_frame']:7.1f} {row['kl_per_frame']:6.1f} "
          f"{row['steps'] or 0:7d}", end="")  # fmt: skip


TABLE_HEAD = f"{'V':16s} {'fireball':>8s} {'expl':>6s} {'left':>6s} {'right':>6s} {'SSE':>7s} "
TABLE_HEAD += f"{'KL':>6s} {'steps':>7s}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--episodes-from", type=Path, default=None, help="default: the first run")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = ap.parse_args()
    source = args.episodes_from or args.runs[0]
    val = read_json(RunLayout(source).vae_split)["val"]
    frames, truth, _ = held_out_frames(source, val)
    frames, truth = frames[: args.frames], None if truth is None else truth[: args.frames]
    result = {"frames": len(frames), "source": str(source), "truth": truth is not None,
              "vaes": {}}  # fmt: skip
    print(f"{len(frames)} held-out frames of {source} (truth: {truth is not None}); "
          "validated detectors")  # fmt: skip
    print(TABLE_HEAD)
    for run in args.runs:
        row, _ = fidelity(run, frames, truth)
        result["vaes"][str(run)] = row
        print_row(run.name, row)
        print()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
