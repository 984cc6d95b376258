"""Analysis C (committed dreaming) for every M of one or more runs, not only ``c_model``.

    python benchmarks/committed_by_model.py TAG=RUN_DIR [TAG=RUN_DIR ...] --config CFG
        [--work DIR] [--out benchmarks/results/committed_by_model.json]

The paper, and ``mdnworld analyze``, force the components of one M (``analyze.c_model``, 0):
components are not comparable across Ms, so C says what *that* M's components do. Whether a
finding is a property of the recipe or of one M's training needs the others. For each run and
each of its Ms this runs ``mdnworld analyze committed RUN --c-model k`` with the SPEC and the
validated detectors (each result kept in ``--work``; a result already there is read back, so a
stopped run goes on) and sums up, per M and detector set: the component that dreams the most
explosions (and the most any other one dreams), the same for fireballs, and how many
components dream fireballs on at least a quarter of the frames. Prints a table, writes --out.
Each run of it rewrites RUN/analysis/committed (C of the last M it ran): point it at a copy,
e.g. one made with ``mdnworld from-shipped``, not at a run whose record you keep.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout
from mdnworld.records import Committed, read_committed

RESULTS = Path(__file__).parent / "results" / "committed_by_model.json"
DETECTORS = ("spec", "validated")


def committed(run: Path, model: int, detectors: str, config: str, work: Path) -> Committed:
    """C's result for M ``model`` of ``run`` (``analysis/committed/results.json``), made once."""
    kept = work / f"model_{model}_{detectors}.json"
    if not kept.exists():
        cmd = [sys.executable, "-m", "mdnworld", "analyze", "committed", str(run),
               "--config", config, "--c-model", str(model),
               "--set", f"analyze.detectors={detectors}"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy(run / "analysis" / "committed" / "results.json", kept)
    return read_committed(kept)


def summary(result: Committed) -> dict:
    """Per class of interest: the leading component, its frames and the most of the rest."""
    out: dict = {}
    for key, cls in (("explosion", "Explosion"), ("fireball", "Fireball")):
        k, frames, rest = result.lead(cls)
        out[key] = {"component": k, "frames": frames, "others_max": rest}
    quarter = [row for row in result.median_frames if row.frames["Fireball"] >= result.steps / 4]
    out["fireball_components_quarter"] = len(quarter)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="TAG=RUN_DIR")
    parser.add_argument("--config", required=True)
    parser.add_argument("--work", type=Path, default=Path("committed_by_model"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = {}
    for spec in args.runs:
        tag, _, run = spec.partition("=")
        if not run:
            parser.error(f"{spec!r}: give TAG=RUN_DIR")
        runs[tag] = Path(run)
    table: dict = {}
    print(
        "run   M  detectors  explosion: k, frames (others <=)  fireball: same  k >= 1/4 fireballs"
    )
    for tag, run in runs.items():
        for model in RunLayout(run).rnn_indices():
            for det in DETECTORS:
                res = summary(committed(run, model, det, args.config, args.work / tag))
                table.setdefault(tag, {}).setdefault(f"model_{model}", {})[det] = res
                e, f = res["explosion"], res["fireball"]
                print(f"{tag:<5} {model}  {det:<9}  k={e['component']}: {e['frames']:6.1f} "
                      f"({e['others_max']:6.1f})             k={f['component']}: "
                      f"{f['frames']:6.1f} ({f['others_max']:6.1f})  "
                      f"{res['fireball_components_quarter']}")  # fmt: skip
    atomic_write_json(args.out, {"config": args.config,
                                 "runs": {tag: str(run) for tag, run in runs.items()},
                                 "models": table})  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
