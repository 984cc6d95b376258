"""What stopping M sooner does to the analyses: an M's weights where a smaller patience would
have stopped it, against its final weights, through analysis B and the dreams' world rates.

    python benchmarks/patience_effect.py watch RUN_DIR SNAP_DIR [--patience 5] [--models 3 4]
    python benchmarks/patience_effect.py compare RUN_DIR SNAP_DIR --config CFG [--yardstick 0 1]

watch, beside a running ``train-rnn`` (or after it): once an M's validation log shows
``--patience`` epochs without a new best, its best weights then (what a run with that patience
would have finished with) are kept in ``SNAP_DIR/model_<i>/best.*``; if a later best has
replaced them by the time it looks, that M is "missed". Polls every 30 s (an epoch takes 1-2
minutes at paper scale on a CPU); ends when every listed M is kept, missed or finished. On a
finished M it keeps the final best whenever that is also where the smaller patience stops.

compare, once they have finished: for every M with a snapshot, two run directories under
``SNAP_DIR/compare`` (V, episodes and latents linked from RUN_DIR) with that M as their only
model, one with its final weights, one with the snapshot; analysis B (``mdnworld analyze
worlds-events --config CFG``) on each. Per M and weights: epochs, validation NLL per dim, and per
class of B (worlds and events) the medians (current, any), stars and null p, and for the world
classes the share of dream frames that show them. ``--yardstick 0 1 2``: B on those Ms' final
weights too, to weigh the early-final differences against how much two Ms trained alike differ.
Prints a table, writes --out (default benchmarks/results/patience_effect.json).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dream_fidelity import B, dream_labels
from early_stopping import replay, val_curve
from vae_fidelity import WORLD

from mdnworld.checkpoints import load_weights, save_weights
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout

RESULTS = Path(__file__).parent / "results" / "patience_effect.json"
LINKED = ("vae", "episodes", "latents")


def keep_snapshot(run: RunLayout, snap: Path, model: int, patience: int) -> str:
    """Copy M ``model``'s best weights to ``snap/model_<i>`` once its validation log shows
    ``patience`` epochs without a new best (``train.loop.EarlyStopping`` replayed on it).
    "kept" (now or before), "waiting" (patience has not run out yet) or "missed" (it ran out,
    but a later best has replaced those weights since)."""
    out = snap / f"model_{model}"
    if (out / "best.json").exists():
        return "kept"
    try:
        stop = replay(val_curve(run, model), patience)
    except FileNotFoundError:  # not started yet
        return "waiting"
    if stop["stop_epoch"] is None:
        return "waiting"
    tmp = snap / f".model_{model}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    best = run.rnn_best(model)
    for src in (best, best.with_suffix(".json")):
        shutil.copy2(src, tmp / src.name)
    if read_json(tmp / "best.json")["metrics"]["epoch"] != stop["best_epoch"]:
        shutil.rmtree(tmp)
        return "missed"
    tmp.rename(out)
    return "kept"


def watch(run: RunLayout, snap: Path, models: list[int], patience: int, poll: float) -> None:
    """``keep_snapshot`` for each of ``models`` every ``poll`` seconds until each is kept,
    missed or has finished training."""
    todo = set(models)
    while todo:
        for i in sorted(todo):
            status = keep_snapshot(run, snap, i, patience)
            if status == "kept":
                epoch = read_json(snap / f"model_{i}" / "best.json")["metrics"]["epoch"]
                print(f"model_{i}: kept its best epoch {epoch} at patience {patience}", flush=True)
            elif status == "missed":
                print(f"model_{i}: missed (a new best came before the look)", flush=True)
            elif run.rnn_meta(i).exists():
                print(f"model_{i}: finished before {patience} epochs without gain", flush=True)
            else:
                continue
            todo.discard(i)
        if todo:
            time.sleep(poll)


def early_model(run: RunLayout, snap: Path, model: int, patience: int, out: RunLayout) -> None:
    """Write the snapshot of M ``model`` as ``out``'s model_0, with the final model's meta and
    the snapshot's metrics (as train-rnn would have finished it at that patience)."""
    tensors, best = load_weights(snap / f"model_{model}" / "best.safetensors")
    epoch = best["metrics"]["epoch"]
    meta = read_json(run.rnn_meta(model)) | {
        "metrics": best["metrics"], "best_epoch": epoch, "epochs_run": epoch + patience,
        "stopped_early": True, "kept_from": f"{run.root}/rnn/model_{model}, patience {patience}",
    }  # fmt: skip
    out.rnn_model_dir(0).mkdir(parents=True, exist_ok=True)
    save_weights(out.rnn_model(0), tensors, meta)


def linked_run(run: RunLayout, root: Path) -> RunLayout:
    """A run directory at ``root`` that shares ``run``'s V, episodes, latents and split."""
    (root / "rnn").mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if not (root / name).exists():
            os.symlink(run.root.resolve() / name, root / name)
    if run.rnn_split.exists() and not (root / "rnn" / run.rnn_split.name).exists():
        os.symlink(run.rnn_split.resolve(), root / "rnn" / run.rnn_split.name)
    return RunLayout(root)


def analyse(run: RunLayout, config: Path) -> dict:
    """Analysis B on ``run``'s model_0 (once: kept results are read again): per class, its row
    and (world classes) the share of dream frames that show it."""
    if not run.analysis_results(B).exists():
        cmd = [sys.executable, "-m", "mdnworld", "analyze", B, str(run.root), "--config",
               str(config), "--set", "analyze.models=1"]  # fmt: skip
        subprocess.run(cmd, check=True)
    rows = read_json(run.analysis_results(B))["rows"]
    labels, _, _ = dream_labels(run.root)
    share = dict(zip(WORLD, labels.mean(0).tolist(), strict=True))
    keep = ("median_current", "median_any", "stars", "null_p")
    return {
        r["class"]: {**{k: r[k] for k in keep}, "dream_share": share.get(r["class"])} for r in rows
    }


def _row(model: int, weights: str, run: RunLayout, config: Path) -> dict:
    meta = read_json(run.rnn_meta(0))
    return {"model": model, "weights": weights, "best_epoch": meta["best_epoch"],
            "epochs_run": meta["epochs_run"],
            "val_nll_per_dim": meta["metrics"]["val_nll_per_dim"],
            "classes": analyse(run, config)}  # fmt: skip


def compare(
    run: RunLayout, snap: Path, config: Path, patience: int, yardstick: list[int] = ()
) -> list[dict]:
    """The table's rows: per finished M with a snapshot, its final and its early weights; then
    the final weights of the ``yardstick`` Ms (how much B's numbers differ between two Ms
    trained alike, to weigh the early-final differences against)."""
    rows = []
    kept = sorted(int(p.parent.name.split("_")[1]) for p in snap.glob("model_*/best.json"))
    for i in sorted(set(kept) | set(yardstick)):
        if not run.rnn_meta(i).exists():
            print(f"model_{i}: still training, skipped")
            continue
        final = linked_run(run, snap / "compare" / f"model_{i}_final")
        if not final.rnn_model_dir(0).exists():
            os.symlink(run.rnn_model_dir(i).resolve(), final.rnn_model_dir(0))
        rows.append(_row(i, "final", final, config))
        if i in kept:
            early = linked_run(run, snap / "compare" / f"model_{i}_patience{patience}")
            if not early.rnn_meta(0).exists():
                early_model(run, snap, i, patience, early)
            rows.append(_row(i, f"patience {patience}", early, config))
    return rows


def spread(rows: list[dict]) -> dict[str, dict]:
    """Per class: the range of B's median current over the final Ms, and each early M's
    median current minus its final one's (classes with no median, e.g. never seen, left out)."""
    out = {}
    for c in rows[0]["classes"]:
        current = {(r["model"], r["weights"]): r["classes"][c]["median_current"] for r in rows}
        finals = {m: v for (m, w), v in current.items() if w == "final" and v is not None}
        early = {m: v - finals[m] for (m, w), v in current.items()
                 if w != "final" and v is not None and m in finals}  # fmt: skip
        if finals:
            out[c] = {"finals_min": min(finals.values()), "finals_max": max(finals.values()),
                      "early_minus_final": early}  # fmt: skip
    return out


def _num(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(rows: list[dict]) -> None:
    print(f"{'M':>3s} {'weights':12s} {'epochs':>6s} {'val NLL':>8s}  {'class':18s} "
          f"{'current':>7s} {'any':>6s} {'stars':>5s} {'null p':>7s} {'dream %':>7s}")  # fmt: skip
    for r in rows:
        head = (
            f"{r['model']:3d} {r['weights']:12s} {r['epochs_run']:6d} {r['val_nll_per_dim']:8.4f}"
        )
        for c, v in r["classes"].items():
            cur, any_, null = (
                _num(v[k], "7.3f") for k in ("median_current", "median_any", "null_p")
            )
            share = _num(None if v["dream_share"] is None else 100 * v["dream_share"], "7.2f")
            stars = v["stars"] or "-"
            print(f"{head}  {c:18s} {cur:>7s} {any_:>6s} {stars:>5s} {null:>7s} {share:>7s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("command", choices=["watch", "compare"])
    ap.add_argument("run", type=Path, metavar="RUN_DIR")
    ap.add_argument("snap", type=Path, metavar="SNAP_DIR")
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--models", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="watch these")
    ap.add_argument(
        "--yardstick",
        type=int,
        nargs="*",
        default=[],
        help="compare: also the final weights of these Ms (B's spread between Ms)",
    )
    ap.add_argument("--poll", type=float, default=30.0, help="watch: seconds between looks")
    ap.add_argument("--config", type=Path, help="compare: the run's TOML config (analysis B)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = ap.parse_args()
    run = RunLayout(args.run)
    if args.command == "watch":
        watch(run, args.snap, args.models, args.patience, args.poll)
        return
    if args.config is None:
        ap.error("compare needs --config (the run's TOML config)")
    rows = compare(run, args.snap, args.config, args.patience, args.yardstick)
    print_table(rows)
    spreads = spread(rows)
    print(f"\n{'class':18s} {'finals: current min-max':>24s}  early - final")
    for c, v in spreads.items():
        diffs = " ".join(f"M{m} {d:+.3f}" for m, d in v["early_minus_final"].items())
        print(f"{c:18s} {v['finals_min']:11.3f} - {v['finals_max']:.3f}  {diffs}")
    atomic_write_json(args.out, {"run": str(args.run), "patience": args.patience,
                                 "rows": rows, "spread": spreads})  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
