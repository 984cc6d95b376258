"""Do M's dreams show the world as often as the game does? World-class rates, dream vs real.

    python benchmarks/dream_fidelity.py RUN_DIR [RUN_DIR ...] --real TRUTH_RUN [--out F]

Dreams: analysis B's recorded labels of each run (``analysis/worlds_events/model_<i>.npz``:
every dream frame of every M, decoded by V and labelled by the detector set B used). Real: the
same detector set on every 4th frame of the held-out episodes 900-999 of ``--real`` (a
``generate --truth`` run: the game's own rate is printed too). Per class (Explosion, Fireball,
LeftWall, RightWall): the share of frames in dreams and in real play, and their ratio; issue
19's goal for fireballs is a ratio within 0.5-2.

Time-matched: B's dreams start at an episode's first frame and run 1000 steps, while real
episodes mostly end by step ~300, and in the game fireballs and walls grow more common as an
episode goes on (the truth of 400 episodes: walls on ~0.5 % of the frames of steps 0-99 and
~10 % after step 200). So the real rate is also given at the dreams' times: the real frames'
rate per bin of steps (TIME_BINS, the last open-ended), weighted by the share of dream frames
in each bin. ``--real-episodes`` picks the real episodes (more give the late bins more frames).
Prints a table, writes --out (default benchmarks/results/dream_fidelity.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from vae_fidelity import WORLD, held_out_frames

from mdnworld.analysis.detectors import DETECTOR_SETS, detect, world_labels
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout

RESULTS = Path(__file__).parent / "results" / "dream_fidelity.json"
B = "worlds-events"
TIME_BINS = np.array([0, 100, 200, 300, 400, 500, 600])  # the last bin: step 600 and on


def dream_labels(run: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Analysis B's dream frames of ``run``: world labels (N, 4) over WORLD, each frame's step
    in its dream (N,), and the detector set B used."""
    layout = RunLayout(run)
    files = [layout.analysis_model_file(B, i, ".npz") for i in layout.analysis_models(B, ".npz")]
    if not files:
        raise SystemExit(f"{layout.analysis(B)}: no analysis B; run `mdnworld analyze {B} {run}`")
    worlds = [np.load(f, allow_pickle=False)["worlds"][..., :4] for f in files]  # (D, T, 4)
    steps = [np.broadcast_to(np.arange(w.shape[1]), w.shape[:2]).ravel() for w in worlds]
    detectors = read_json(files[0].with_suffix(".json")).get("detectors", "spec")
    return np.concatenate([w.reshape(-1, 4) for w in worlds]), np.concatenate(steps), detectors


def time_matched(labels: np.ndarray, steps: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Rates (4,) of ``labels`` (N, 4) at steps ``steps`` (N,), per TIME_BINS bin, weighted by
    the share of the steps ``at`` in each bin."""
    real_bin, at_bin = (np.searchsorted(TIME_BINS, x, side="right") - 1 for x in (steps, at))
    weights = np.bincount(at_bin, minlength=len(TIME_BINS)) / len(at)
    if missing := [int(TIME_BINS[b]) for b in np.flatnonzero(weights) if not (real_bin == b).any()]:
        raise SystemExit(f"no real frame in the bins of steps from {missing}: add real episodes")
    rates = [labels[real_bin == b].mean(0) if w else np.zeros(4) for b, w in enumerate(weights)]
    return weights @ np.array(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--real", type=Path, required=True, help="a `generate --truth` run")
    ap.add_argument("--real-episodes", default="900-999", help="FIRST-LAST episodes of --real")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    first, last = (int(x) for x in args.real_episodes.split("-"))
    episodes = range(first, last + 1)
    frames, truth, steps = held_out_frames(args.real, episodes)
    labels = {name: world_labels(detect(frames, th))[:, :4] for name, th in DETECTOR_SETS.items()}
    real = {name: x.mean(0) for name, x in labels.items()}
    result = {"real": str(args.real), "real_episodes": [first, last], "real_frames": len(frames),
              "classes": list(WORLD), "time_bins": TIME_BINS.tolist(),
              "truth_rates": None if truth is None else truth.mean(0).tolist(),
              "real_rates": {k: v.tolist() for k, v in real.items()}, "runs": {}}  # fmt: skip
    print(
        f"real: {len(frames)} frames of episodes {first}-{last} of {args.real}; game truth "
        "rates " + ("-" if truth is None else " ".join(f"{r:.3f}" for r in truth.mean(0)))
    )
    print(f"{'run':24s} {'detectors':9s} {'real':12s} " + " ".join(f"{c:>18s}" for c in WORLD))
    for run in args.runs:
        dream, at, detectors = dream_labels(run)
        rates = dream.mean(0)
        matched = time_matched(labels[detectors], steps, at)
        row = {"detectors": detectors, "dream_frames": len(dream), "dream_rates": rates.tolist(),
               "ratio": (rates / np.maximum(real[detectors], 1e-9)).tolist(),
               "time_matched": {"real_rates": matched.tolist(),
                                "ratio": (rates / np.maximum(matched, 1e-9)).tolist()}}  # fmt: skip
        if truth is not None:
            row["time_matched"]["truth_rates"] = time_matched(truth, steps, at).tolist()
        result["runs"][str(run)] = row
        tm = row["time_matched"]
        for name, base, ratio in (("all frames", real[detectors], row["ratio"]),
                                  ("time-matched", matched, tm["ratio"])):  # fmt: skip
            cells = (
                f"{d:.3f}/{r:.3f} x{q:.2f}" for d, r, q in zip(rates, base, ratio, strict=True)
            )
            print(
                f"{run.name:24s} {detectors:9s} {name:12s} " + " ".join(f"{c:>18s}" for c in cells)
            )
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
