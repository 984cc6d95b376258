"""Issue 22's choice seeds: score controllers in the real game on seeds that no evaluation uses,
so that choosing among variants leaves evaluate's two held-out sets untouched.

    python benchmarks/choice_scores.py RUN_DIR[:which] [RUN_DIR[:which] ...] [--episodes 100]
        [--seed 5000000] [--out F]

Each RUN_DIR's controller (``which``: mean, the default; best; selected) plays ``--episodes``
real games with seeds ``--seed`` + i (the same seeds as ``mdnworld iterate``'s rounds), spread
over the cores. Prints mean ± std with a 95 % bootstrap interval per controller and, for the
first against each other, the paired Wilcoxon p (same seeds); adds the rows to --out
(default benchmarks/results/choice_scores.json, keyed by RUN_DIR:which).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy import stats

from mdnworld.control.evaluate import load_controller
from mdnworld.control.executors import LocalExecutor
from mdnworld.control.train import real_scores
from mdnworld.io import atomic_write_json, read_json

RESULTS = Path(__file__).parent / "results" / "choice_scores.json"


def bootstrap_ci(scores: list[int], n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean."""
    x = np.asarray(scores, float)
    means = x[np.random.default_rng(seed).integers(0, len(x), (n, len(x)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR[:which]")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=5_000_000)
    ap.add_argument("--max-steps", type=int, default=2100)
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = ap.parse_args()
    seeds = [args.seed + i for i in range(args.episodes)]
    workers = os.cpu_count() or 1
    executor = LocalExecutor(workers)
    table = read_json(args.out) if args.out.exists() else {}
    rows = []
    try:
        for spec in args.runs:
            run, _, which = spec.partition(":")
            which = which or "mean"
            params, meta = load_controller(run, which)
            scores = real_scores(Path(run), meta["model_index"], params, seeds, args.max_steps,
                                 executor, workers)  # fmt: skip
            lo, hi = bootstrap_ci(scores)
            row = {"run": str(Path(run).resolve()), "which": which,
                   "generation": meta["generation"], "seeds": seeds, "scores": scores,
                   "mean": float(np.mean(scores)), "std": float(np.std(scores)),
                   "ci95": [lo, hi]}  # fmt: skip
            rows.append(row)
            table[f"{row['run']}:{which}"] = row
            print(f"{spec:60s} gen {meta['generation']:>4}  {row['mean']:7.1f} ± "
                  f"{row['std']:6.1f}  95% CI [{lo:.0f}, {hi:.0f}]", flush=True)  # fmt: skip
    finally:
        executor.close()
    for row in rows[1:]:
        p = stats.wilcoxon(rows[0]["scores"], row["scores"]).pvalue
        print(f"paired Wilcoxon, first vs {row['run']}:{row['which']}: p = {p:.3g}")
    atomic_write_json(args.out, table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
