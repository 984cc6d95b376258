"""How faithful is V? Compare the VAEs of one or more runs on the same held-out real frames.

    python benchmarks/vae_fidelity.py RUN_DIR [RUN_DIR ...] [--frames 500] [--episodes-from RUN]

Per V: squared error summed over the 12,288 values per frame, PSNR, and what the event detectors
(analysis/detectors.py) see in the real frames and in V's reconstructions of them (mu decoded):
how often each world class occurs in each, and how often the two agree. Small fireballs are what
a blurry V loses first, and the analyses count fireballs, so this says how far the detector
classes of decoded dreams can be trusted. Frames: every 4th frame of the first run's held-out
(validation) episodes, up to --frames. Prints a table, writes --out
(default benchmarks/results/vae_fidelity.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mdnworld.analysis.detectors import WORLD_CLASSES, detect, world_labels
from mdnworld.checkpoints import load_vae
from mdnworld.data.episodes import load_episode
from mdnworld.io import read_json
from mdnworld.layout import RunLayout
from mdnworld.models.vae import frames_to_tensor

RESULTS = Path(__file__).parent / "results" / "vae_fidelity.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--episodes-from", type=Path, default=None, help="default: the first run")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = ap.parse_args()
    source = args.episodes_from or args.runs[0]
    val = read_json(RunLayout(source).vae_split)["val"]
    frames = np.concatenate([load_episode(RunLayout(source).episode(i)).frames for i in val])
    frames = frames[::4][: args.frames]
    x = frames_to_tensor(frames)
    real = world_labels(detect(frames))
    result = {"frames": len(frames), "source": str(source), "classes": list(WORLD_CLASSES),
              "real_rates": real.mean(0).tolist(), "vaes": {}}  # fmt: skip
    print(
        f"{len(frames)} held-out frames of {source}; real class rates: "
        + ", ".join(f"{c} {r:.2f}" for c, r in zip(WORLD_CLASSES, real.mean(0), strict=True))
    )
    for run in args.runs:
        vae, meta = load_vae(run)
        with torch.no_grad():
            recon = torch.cat(
                [vae.decode(vae.encode(x[i : i + 250])[0]) for i in range(0, len(x), 250)]
            )
        err = (recon - x).pow(2).flatten(1)
        rec = world_labels(detect(recon.permute(0, 2, 3, 1).numpy()))
        c = meta["config"]
        row = {
            "recon_loss": c["recon_loss"], "free_bits": c["free_bits"],
            "batch_size": c["batch_size"], "epochs": c["epochs"],
            "sse_per_frame": float(err.sum(1).mean()),
            "psnr_db": float((10 * torch.log10(1 / err.mean(1))).mean()),
            "recon_rates": rec.mean(0).tolist(),
            "agreement": (rec == real).mean(0).tolist(),
        }  # fmt: skip
        result["vaes"][str(run)] = row
        print(f"{run}: {c['recon_loss']} batch {c['batch_size']} {c['epochs']} epochs: SSE/frame "
              f"{row['sse_per_frame']:.1f}, PSNR {row['psnr_db']:.2f} dB")  # fmt: skip
        for j, name in enumerate(WORLD_CLASSES):
            print(f"    {name:10s} real {real[:, j].mean():.3f}  recon {rec[:, j].mean():.3f}  "
                  f"agree {row['agreement'][j]:.3f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
