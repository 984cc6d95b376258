"""Does the wall detector see walls? The spec's test (mean red of the edge column > 0.39) against
the same test plus a colour check (red - blue > 0.05), on real held-out frames and on a run's
committed dreams.

    python benchmarks/wall_detector.py RUN_DIR [--episodes 60] [--figure PATH]

Prints, per frame set: how often each test fires on the left, the right and both edges, and
the share of "wall" edges that are grey (|red - blue| < 1/255: a bright ceiling, not brick).
Writes benchmarks/results/wall_detector.json; --figure draws real frames the spec calls "both
walls", real frames it calls "left wall" only, and frames of committed dream k=4.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mdnworld.analysis.detectors import Thresholds, detect
from mdnworld.data.episodes import load_episode
from mdnworld.io import read_json
from mdnworld.layout import RunLayout

RESULTS = Path(__file__).parent / "results" / "wall_detector.json"
COLOUR = Thresholds(wall_red_over_blue=0.05)


def rates(frames: np.ndarray) -> dict:
    """Firing rates of both tests on uint8 frames (N, 64, 64, 3)."""
    out = {"frames": len(frames)}
    for name, th in (("spec", Thresholds()), ("colour", COLOUR)):
        f = detect(frames, th)
        out[name] = {
            "left": float(f.wall_left.mean()),
            "right": float(f.wall_right.mean()),
            "both": float((f.wall_left & f.wall_right).mean()),
        }
    edges = frames[:, :10][:, :, [0, -1]].astype(np.float32).mean(axis=1)  # (N, 2, 3)
    fired = edges[..., 0] > 255 * Thresholds().wall_red
    grey = np.abs(edges[..., 0] - edges[..., 2]) < 1.0
    out["grey_share_of_spec_walls"] = float((fired & grey).sum() / max(fired.sum(), 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--episodes", type=int, default=60, help="held-out episodes to read")
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args()
    val = read_json(RunLayout(args.run).vae_split)["val"][: args.episodes]
    run = RunLayout(args.run)
    real = np.concatenate([load_episode(run.episode(i)).frames for i in val])
    sets = {"real held-out frames": real}
    committed = sorted(args.run.glob("dreams/model_*/committed_*/dreams.npz"))
    for path in committed:
        with np.load(path, allow_pickle=False) as d:
            sets[f"committed {path.parent.name} ({path.parent.parent.name})"] = d["frames"].reshape(
                -1, 64, 64, 3
            )
    result = {name: rates(frames) for name, frames in sets.items()}
    print(f"{'frames':<34} {'spec: left right both':>24} {'colour: left right both':>26} grey")
    for name, r in result.items():
        s, c = r["spec"], r["colour"]
        print(
            f"{name:<34} {s['left']:8.3f} {s['right']:6.3f} {s['both']:6.3f} "
            f"{c['left']:12.3f} {c['right']:6.3f} {c['both']:6.3f} "
            f"{r['grey_share_of_spec_walls']:6.2f}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"run": str(args.run), "sets": result}, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    if args.figure:
        from PIL import Image

        f = detect(real)
        both = np.flatnonzero(f.wall_left & f.wall_right)
        left = np.flatnonzero(f.wall_left & ~f.wall_right)
        rows = [
            real[both[:: max(len(both) // 6, 1)][:6]],
            real[left[:: max(len(left) // 6, 1)][:6]],
        ]
        k4 = [p for p in committed if p.parent.name == "committed_4"]
        if k4:
            with np.load(k4[0], allow_pickle=False) as d:
                rows.append(d["frames"][0][::170][:6])
        img = np.concatenate([np.concatenate(list(r), axis=1) for r in rows if len(r) == 6])
        Image.fromarray(img).resize((img.shape[1] * 3, img.shape[0] * 3), Image.NEAREST).save(
            args.figure
        )
        print(
            f"wrote {args.figure}: rows = spec 'both walls', spec 'left wall' only, committed k=4"
        )


if __name__ == "__main__":
    main()
