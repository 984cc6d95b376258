"""Where the hours of `mdnworld pipeline` go on this machine (issue 20, goal 3: <= 6 h on 2 cores).

    python benchmarks/pipeline_hours.py RUN_DIR [--models 5] [--jobs 2] [--patience 10]
                                        [--recent 20] [--vae F] [--memory F] [--out F]

Each stage's hours come from a measurement, named in the table's last column:
- generate: RUN_DIR's ``stages.jsonl`` (``stage_log.stage_totals``: its runs on this machine);
- train-vae: ``--vae`` (default ``benchmarks/results/vae.json``: the trainer's samples/s x 10
  epochs of the paper-scale training frames; a real run is resumed too often to time it whole);
- encode, dream, analyze: ``--memory`` (default ``benchmarks/results/stage_memory.json``: paper
  scale; both files must come from this machine, as the run);
- train-rnn: RUN_DIR's Ms: the median wall seconds between two epoch ends of the same process
  over each M's last ``--recent`` epochs (from its TensorBoard events; today's code; a restart
  does not count), beside whatever else the machine ran then, times the
  epochs each M trains: all of them for a finished M; for one still training (or not started,
  or not two epochs in: at the others' mean pace) at least ``best epoch + patience`` (marked
  ">="), or the finished Ms' mean where that is more (marked "~"; while none has finished, the
  mean of the started Ms' lower bounds). The Ms train ``--jobs`` at a time: the sum is
  divided by it.
Prints a table, writes --out (default benchmarks/results/pipeline_hours.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout
from mdnworld.stage_log import machine, stage_totals

sys.path.insert(0, str(Path(__file__).parent))
from early_stopping import val_curve  # noqa: E402  (benchmarks/ is not a package)

RESULTS = Path(__file__).parent / "results"
TARGET_HOURS = 6.0


def epoch_end_times(tb_dir: Path) -> list[list[float]]:
    """Per event file (one per process, in order of start): wall times of its epoch ends."""
    return [
        [event.wall_time for event in EventFileLoader(str(path)).Load()
         if any(v.tag == "val/nll_per_dim" for v in event.summary.value)]
        for path in sorted(tb_dir.glob("events.out.tfevents.*"))
    ]  # fmt: skip


def m_row(run: RunLayout, i: int, patience: int, recent: int) -> dict:
    """One M: epochs trained (or at least to come), best epoch, median seconds per epoch."""
    files = epoch_end_times(run.rnn_model_dir(i) / "tb")
    seconds = [b - a for ends in files for a, b in zip(ends, ends[1:], strict=False)][-recent:]
    curve = val_curve(run, i)
    best_epoch = 1 + min(range(len(curve)), key=curve.__getitem__)
    finished = run.rnn_meta(i).exists()
    epochs = len(curve) if finished else max(len(curve), best_epoch + patience)
    return {"model": i, "finished": finished, "epochs_logged": len(curve),
            "best_epoch": best_epoch, "epochs": epochs,
            "seconds_per_epoch": statistics.median(seconds) if seconds else None}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path, metavar="RUN_DIR", help="a paper-scale run on this machine")
    ap.add_argument("--models", type=int, default=5, help="Ms the pipeline trains (rnn.models)")
    ap.add_argument("--jobs", type=int, default=2, help="Ms trained at once (rnn.jobs)")
    ap.add_argument("--patience", type=int, default=10, help="rnn.patience of the run")
    ap.add_argument("--recent", type=int, default=20, help="epochs timed, the last of each M")
    ap.add_argument("--vae", type=Path, default=RESULTS / "vae.json", help="benchmarks/vae.py's")
    ap.add_argument("--memory", type=Path, default=RESULTS / "stage_memory.json",
                    help="benchmarks/stage_memory.py's (encode, dream, analyze)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS / "pipeline_hours.json")
    args = ap.parse_args()
    run = RunLayout(args.run)
    generate = stage_totals(run.root)["generate"]["by_machine"][machine()]
    vae = json.loads(args.vae.read_text())
    memory = json.loads(args.memory.read_text())["stages"]
    ms = [m_row(run, i, args.patience, args.recent) for i in run.rnn_logged()]
    pace = statistics.mean(m["seconds_per_epoch"] for m in ms if m["seconds_per_epoch"])
    for m in ms:  # just started: no two epoch ends yet
        m["seconds_per_epoch"] = m["seconds_per_epoch"] or pace
    ms += [{"model": i, "finished": False, "epochs_logged": 0, "best_epoch": None, "epochs": 0,
            "seconds_per_epoch": pace} for i in range(len(ms), args.models)]  # fmt: skip
    # An M still to finish: its lower bound, or the mean of the finished Ms (of the started
    # ones' lower bounds while none has finished) where that is more.
    finished = [m["epochs"] for m in ms if m["finished"]]
    started = [m["epochs"] for m in ms if m["epochs_logged"]]
    typical = statistics.mean(finished or started)
    for m in ms:
        m["estimated"] = not m["finished"] and typical > m["epochs"]
        m["epochs"] = typical if m["estimated"] else m["epochs"]
    rnn_hours = sum(m["epochs"] * m["seconds_per_epoch"] for m in ms) / args.jobs / 3600
    lower = any(not m["finished"] and not m["estimated"] for m in ms)
    estimated = any(m["estimated"] for m in ms)
    kind = " (at least)" if lower else " (estimated)" if estimated else ""
    stages = {
        "generate": (generate["seconds"] / 3600, f"{run.stage_log.name} of {args.run}"),
        "train-vae": (vae["paper_projection"]["hours"], f"{args.vae.name}: samples/s, 10 epochs"),
        "encode": (memory["encode"]["seconds"] / 3600, args.memory.name),
        "train-rnn": (rnn_hours, f"{len(ms)} Ms' TensorBoard events, {args.jobs} at a time{kind}"),
        "dream": (memory["dream"]["seconds"] / 3600, args.memory.name),
        "analyze": (memory["analyze"]["seconds"] / 3600, args.memory.name),
    }  # fmt: skip
    total = sum(h for h, _ in stages.values())
    print(f"{'M':>3s} {'epochs':>7s} {'best':>5s} {'s/epoch':>8s}")
    for m in ms:
        mark = "" if m["finished"] else "~" if m["estimated"] else ">="
        best = "-" if m["best_epoch"] is None else str(m["best_epoch"])
        print(f"{m['model']:3d} {mark + str(round(m['epochs'])):>7s} {best:>5s} "
              f"{m['seconds_per_epoch']:8.0f}")  # fmt: skip
    print(f"\n{'stage':10s} {'hours':>6s}  measured by")
    for name, (hours, source) in stages.items():
        print(f"{name:10s} {hours:6.2f}  {source}")
    print(f"{'total':10s} {total:6.2f}{kind}  target {TARGET_HOURS}")
    atomic_write_json(
        args.out,
        {
            "run": str(args.run),
            "jobs": args.jobs,
            "patience": args.patience,
            "recent_epochs_timed": args.recent,
            "models": ms,
            "stages": {k: {"hours": h, "measured_by": s} for k, (h, s) in stages.items()},
            "total_hours": total,
            "total_is_lower_bound": lower,
            "total_is_estimated": estimated,
            "target_hours": TARGET_HOURS,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
