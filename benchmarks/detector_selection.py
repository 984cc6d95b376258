"""Choose the "validated" detector set: a small grid over the rules of ``Thresholds`` scored
against the game's truth on *choice* episodes (M's split "train", never the report set "val").

    python benchmarks/detector_selection.py RUN_DIR [--episodes 100] [--cache DIR] [--device cpu]

RUN_DIR: a run whose episodes were generated with ``--truth`` (and, for reconstructions, a
trained V). Three groups of parameters are chosen in turn, each by the mean F1 of its classes
over both sources (real frames and V's reconstructions ``decode(mu(frame))``, the frames the
analyses see are V's): (1) bright blobs -> Explosion, Fireball, Fireball events; (2) walls ->
LeftWall, RightWall; (3) monsters -> Monster events (groups 2-3 use group 1's explosions).
Prints a table per group and writes benchmarks/results/detector_selection.json; the chosen
values are then copied by hand into ``VALIDATED`` in src/mdnworld/analysis/detectors.py, and
the report set (split "val") is scored once with both sets: ``mdnworld detectors RUN
--detectors spec|validated``, its ``compare.csv`` kept as results/detector_selection_report.csv.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np

from mdnworld.analysis.detectors import (
    FrameFeatures,
    Thresholds,
    bright_counts,
    hold_counts,
    monster_counts,
    walls,
)
from mdnworld.analysis.truth import CLASSES, class_labels, score, truth_features
from mdnworld.data.episodes import load_episode
from mdnworld.io import read_json
from mdnworld.layout import RunLayout

RESULTS = Path(__file__).parent / "results" / "detector_selection.json"
GROUPS: dict[str, tuple[tuple[str, ...], dict[str, list]]] = {
    "bright": (
        ("Explosion", "Fireball", "FireballAppears", "FireballDisappears"),
        {
            "bright": [0.5, 0.65],
            "bright_red_over_blue": [0.0, 0.1, 0.2],
            "min_explosion": [1, 40, 120],
            "min_fireball": [1, 3],
            "fireball_hold": [1, 2, 3, 5],
        },
    ),
    "walls": (
        ("LeftWall", "RightWall"),
        {"wall_red": [0.2, 0.25, 0.3, 0.39], "wall_red_over_blue": [0.0, 0.05, 0.1, 0.15]},
    ),
    "monsters": (
        ("MonsterAppears", "MonsterDisappears"),
        {
            "monster_green": [0.15, 0.2, 0.25],
            "min_monster": [1, 2, 4],
            "monster_hold": [1, 3, 5, 8],
        },
    ),
}
# applied to the counts afterwards, no need to re-detect
HOLD_ONLY = ("fireball_hold", "monster_hold")


def choice_episodes(run: RunLayout, n: int, below: int) -> list[int]:
    train = read_json(run.rnn_split)["train"]
    have = {int(p.stem.split("_")[1]) for p in run.episode_files()}
    return [i for i in sorted(train) if i < below and i in have][:n]


def load(run: RunLayout, ids: list[int], cache: Path | None, device: str) -> dict:
    """{source: [frames per episode]}, the truth labels per episode."""
    data: dict = {"real": [], "reconstruction": [], "truth": []}
    vae = None
    for i in ids:
        ep = load_episode(run.episode(i))
        data["real"].append(ep.frames)
        data["truth"].append(class_labels(truth_features(ep.truth)))
        path = cache / f"rec_{i:06d}.npy" if cache else None
        if path is not None and path.exists():
            rec = np.load(path)
        else:
            if vae is None:
                from mdnworld.analysis.truth import _reconstruct
                from mdnworld.checkpoints import load_vae
                from mdnworld.device import resolve_device

                torch_device = resolve_device(device)
                vae, _ = load_vae(run.root, torch_device)
            rec = (_reconstruct(vae, ep.frames, torch_device) * 255).round().astype(np.uint8)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, rec)
        data["reconstruction"].append(rec)
    return data


def features(frames: np.ndarray, th: Thresholds) -> FrameFeatures:
    """detect() without the debounce (applied per hold value by the caller)."""
    n_bright, n_top, n_low = bright_counts(frames, th)
    left, right = walls(frames, th)
    return FrameFeatures(n_bright, n_top > 0, n_low, monster_counts(frames, th), left, right)


def held(f: FrameFeatures, th: Thresholds) -> FrameFeatures:
    calm = ~f.explosion
    return dataclasses.replace(
        f,
        n_fireballs=hold_counts(f.n_fireballs, calm, th.fireball_hold),
        n_monsters=hold_counts(f.n_monsters, calm, th.monster_hold),
    )


def run_group(data: dict, base: Thresholds, classes: tuple[str, ...], grid: dict) -> list[dict]:
    """Every grid point's F1 per class and source (the rest of the settings from ``base``)."""
    cols = [CLASSES.index(c) for c in classes]
    det_keys = [k for k in grid if k not in HOLD_ONLY]
    hold_key = next((k for k in grid if k in HOLD_ONLY), "fireball_hold")
    holds = grid.get(hold_key, [getattr(base, hold_key)])
    rows = []
    for values in itertools.product(*(grid[k] for k in det_keys)):
        th = dataclasses.replace(base, **dict(zip(det_keys, values, strict=True)))
        feats = {s: [features(x, th) for x in data[s]] for s in ("real", "reconstruction")}
        for k in holds:
            row = {**dict(zip(det_keys, values, strict=True)), hold_key: k, "f1": {}}
            th_k = dataclasses.replace(th, **{hold_key: k})
            true = np.concatenate(data["truth"])[:, cols]
            for source, fs in feats.items():
                pred = np.concatenate([class_labels(held(f, th_k)) for f in fs])[:, cols]
                row["f1"][source] = {
                    c: score(pred[:, j], true[:, j])["f1"] or 0.0 for j, c in enumerate(classes)
                }
            row["mean"] = float(np.mean([v for s in row["f1"].values() for v in s.values()]))
            rows.append(row)
    return rows


def scores(data: dict, th: Thresholds) -> dict:
    true = np.concatenate(data["truth"])
    out = {}
    for source in ("real", "reconstruction"):
        feats = [held(features(x, th), th) for x in data[source]]
        pred = np.concatenate([class_labels(f) for f in feats])
        out[source] = {c: score(pred[:, j], true[:, j])["f1"] for j, c in enumerate(CLASSES)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--below", type=int, default=300, help="only episode ids below this")
    p.add_argument("--cache", type=Path, default=None, help="folder for reconstructions")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    run = RunLayout(args.run_dir)
    ids = choice_episodes(run, args.episodes, args.below)
    data = load(run, ids, args.cache, args.device)
    print(f"{len(ids)} choice episodes, {sum(map(len, data['truth']))} frames")
    chosen, groups = Thresholds(), {}
    for name, (classes, grid) in GROUPS.items():
        rows = run_group(data, chosen, classes, grid)
        best = max(rows, key=lambda r: r["mean"])
        chosen = dataclasses.replace(chosen, **{k: best[k] for k in grid})
        groups[name] = {"classes": classes, "grid": grid, "best": best, "rows": rows}
        print(f"\n{name}: best {dict((k, best[k]) for k in grid)} mean F1 {best['mean']:.3f}")
        for source, f1 in best["f1"].items():
            print(f"  {source:15s}" + "".join(f" {c} {v:.2f}" for c, v in f1.items()))
    result = {
        "run": str(args.run_dir),
        "episodes": ids,
        "chosen": dataclasses.asdict(chosen),
        "choice_f1": {"spec": scores(data, Thresholds()), "chosen": scores(data, chosen)},
        "groups": groups,
    }
    print("\nchoice-set F1 (spec -> chosen):")
    for source in ("real", "reconstruction"):
        a, b = result["choice_f1"]["spec"][source], result["choice_f1"]["chosen"][source]
        print(f"  {source:15s}", *(f"{c} {a[c] or 0:.2f}->{b[c] or 0:.2f}" for c in CLASSES))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
