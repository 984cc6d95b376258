"""Do M's dreams show the world as often as the game does? World-class rates, dream vs real.

    python benchmarks/dream_fidelity.py RUN_DIR [RUN_DIR ...] --real TRUTH_RUN [--out F]

Dreams: analysis B's recorded labels of each run (``analysis/worlds_events/model_<i>.npz``:
every dream frame of every M, decoded by V and labelled by the detector set B used). Real: the
same detector set on every 4th frame of the held-out episodes 900-999 of ``--real`` (a
``generate --truth`` run: the game's own rate is printed too). Per class (Explosion, Fireball,
LeftWall, RightWall): the share of frames in dreams and in real play, and their ratio; issue
19's goal for fireballs is a ratio within 0.5-2. Prints a table, writes --out (default
benchmarks/results/dream_fidelity.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from vae_fidelity import WORLD, held_out_frames

from mdnworld.analysis.detectors import DETECTOR_SETS, detect, world_labels
from mdnworld.io import read_json
from mdnworld.layout import RunLayout

RESULTS = Path(__file__).parent / "results" / "dream_fidelity.json"
B = "worlds-events"


def dream_rates(run: Path) -> tuple[np.ndarray, str, int]:
    """Rates (4,) over WORLD in analysis B's dreams of ``run``, its detector set, frames."""
    layout = RunLayout(run)
    files = [layout.analysis_model_file(B, i, ".npz") for i in layout.analysis_models(B, ".npz")]
    if not files:
        raise SystemExit(f"{layout.analysis(B)}: no analysis B; run `mdnworld analyze {B} {run}`")
    worlds = np.concatenate(
        [np.load(f, allow_pickle=False)["worlds"].reshape(-1, 5)[:, :4] for f in files]
    )
    detectors = read_json(files[0].with_suffix(".json")).get("detectors", "spec")
    return worlds.mean(0), detectors, len(worlds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--real", type=Path, required=True, help="a `generate --truth` run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    frames, truth = held_out_frames(args.real, range(900, 1000))
    real = {name: world_labels(detect(frames, th))[:, :4].mean(0)
            for name, th in DETECTOR_SETS.items()}  # fmt: skip
    result = {"real": str(args.real), "real_frames": len(frames), "classes": list(WORLD),
              "truth_rates": None if truth is None else truth.mean(0).tolist(),
              "real_rates": {k: v.tolist() for k, v in real.items()}, "runs": {}}  # fmt: skip
    print(f"real: {len(frames)} held-out frames of {args.real}; game truth rates "
          + ("-" if truth is None else " ".join(f"{r:.3f}" for r in truth.mean(0))))  # fmt: skip
    print(f"{'run':24s} {'detectors':9s} " + " ".join(f"{c + ' d/r':>18s}" for c in WORLD))
    for run in args.runs:
        rates, detectors, n = dream_rates(run)
        ratio = rates / np.maximum(real[detectors], 1e-9)
        result["runs"][str(run)] = {
            "detectors": detectors,
            "dream_frames": n,
            "dream_rates": rates.tolist(),
            "ratio": ratio.tolist(),
        }
        rows = zip(rates, real[detectors], ratio, strict=True)
        cells = [f"{d:.3f}/{r:.3f} x{q:.2f}" for d, r, q in rows]
        print(f"{run.name:24s} {detectors:9s} " + " ".join(f"{c:>18s}" for c in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
