"""What early stopping buys M: each trained M's validation curve replayed under smaller patience.

    python benchmarks/early_stopping.py RUN_DIR [RUN_DIR ...] [--patience 1 2 3 5 10] [--out F]

Reads every ``rnn/model_<i>/log.jsonl`` (one validation NLL per epoch; an epoch is every window
of 60 steps taken every 3 steps, so each frame is seen ~20 times per epoch) and replays
``train.loop.EarlyStopping`` on it with each patience: the epoch it would have stopped at, its
best epoch and validation NLL, and what that costs against the full curve's best (nats per
latent dimension, and per 64-d step). An M still training (no ``model.json``) is marked so:
its "full" best is only the best so far. Prints a table, writes --out (default
benchmarks/results/early_stopping.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout
from mdnworld.records import read_log_rows
from mdnworld.train.loop import EarlyStopping

RESULTS = Path(__file__).parent / "results" / "early_stopping.json"


def val_curve(run: RunLayout, model: int) -> list[float]:
    """Validation NLL per dim of epochs 1, 2, ... of M ``model``."""
    rows = [r for r in read_log_rows(run.rnn_log(model)) if "val/nll_per_dim" in r]
    by_epoch = {int(r["epoch"]): float(r["val/nll_per_dim"]) for r in rows}  # a resume re-logs
    return [by_epoch[e] for e in sorted(by_epoch)]


def replay(curve: list[float], patience: int) -> dict:
    """Where EarlyStopping(patience) stops on ``curve``, and its best epoch and value."""
    stop = EarlyStopping(patience)
    for epoch, val in enumerate(curve, start=1):
        stop.update(val, epoch)
        if stop.early:
            return {"stop_epoch": epoch, "best_epoch": stop.best_epoch, "best": stop.best_val}
    return {"stop_epoch": None, "best_epoch": stop.best_epoch, "best": stop.best_val}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    ap.add_argument("--patience", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    ap.add_argument("--latent", type=int, default=64, help="latent size, for nats per step")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = ap.parse_args()
    rows = []
    print(f"{'run / model':24s} {'patience':>8s} {'stops at':>8s} {'best ep':>7s} "
          f"{'val NLL/dim':>11s} {'gap/dim':>8s} {'gap/step':>8s} {'epochs':>7s}")  # fmt: skip
    for run_dir in args.runs:
        run = RunLayout(run_dir)
        for i in run.rnn_logged():
            curve = val_curve(run, i)
            if not curve:
                continue
            done = run.rnn_meta(i).exists()
            full = min(curve)
            name = f"{run.root.name}/model_{i}" + ("" if done else " (training)")
            for p in args.patience:
                r = replay(curve, p)
                epochs = r["stop_epoch"] or len(curve)
                gap = r["best"] - full
                rows.append({"run": str(run_dir), "model": i, "finished": done,
                             "epochs_logged": len(curve), "patience": p, **r,
                             "epochs_trained": epochs, "gap_per_dim": gap,
                             "gap_per_step": gap * args.latent})  # fmt: skip
                stops = "-" if r["stop_epoch"] is None else str(r["stop_epoch"])
                print(f"{name:24s} {p:8d} {stops:>8s} {r['best_epoch']:7d} {r['best']:11.4f} "
                      f"{gap:8.4f} {gap * args.latent:8.2f} {epochs:4d}/{len(curve)}")  # fmt: skip
    atomic_write_json(args.out, {"latent": args.latent, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
