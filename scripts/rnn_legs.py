"""Carry a long M training across machines that keep no files: one M's training in legs.

The paper recipe's five Ms need more CPU hours to early stopping than one working session has,
and the machine they train on may come back empty. After each leg, ``save`` puts every M's
latest weights (its best epoch so far, float16, ~1 MB each) and the record of its legs into a
small folder that is committed; on a rebuilt run (``generate``, ``encode`` with the same V,
the same ``rnn/split.json``), ``restore`` puts the Ms that stopped early back as finished, and
``mdnworld train-rnn RUN --config ... --init LEGS_DIR`` fine-tunes the others from where their
last leg left them (fresh Adam, early stopping counted anew within the leg).

  python scripts/rnn_legs.py save RUN_DIR LEGS_DIR --leg NAME [--init results/paper/models/rnn]
  python scripts/rnn_legs.py restore LEGS_DIR RUN_DIR

An M is done when a leg ends by early stopping (``patience`` epochs without a better
validation NLL) or after ``epochs``. ``LEGS_DIR/LEGS.json`` holds each M's legs: epochs, best
epoch, best val NLL/dim and how the leg ended: "early", "epochs", "time" (``--max-minutes``) or
"cut" (stopped by hand: its best weights so far).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from mdnworld.checkpoints import read_meta
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout, model_index
from mdnworld.shipped import convert_weights


def _leg_of(path: Path, name: str) -> tuple[Path, dict[str, Any], dict]:
    """A finished M's weights at ``path`` (train-rnn's ``model.safetensors`` or an export of
    it), what its meta lacks (nothing) and the record of the leg that made them."""
    meta = read_meta(path.with_suffix(".json"), "an M's meta")  # the weights: convert_weights
    stop = "early" if meta["stopped_early"] else "time" if meta["stopped_by_time"] else "epochs"
    return path, {}, {"leg": name, "epochs": meta["epochs_run"],
                        "best_epoch": meta["best_epoch"],
                        "val": meta["metrics"]["val_nll_per_dim"], "stop": stop}  # fmt: skip


def _leg(run: RunLayout, index: int, name: str) -> tuple[Path, dict[str, Any], dict] | None:
    """Model ``index``'s latest weights in ``run``, what their meta lacks and this leg's
    record (a cut M's best weights carry no architecture: its checkpoint has it)."""
    model_dir = run.rnn_model_dir(index)
    if run.rnn_meta(index).exists():  # finished: by early stopping or by --max-minutes
        return _leg_of(run.rnn_model(index), name)
    best, ckpt = model_dir / "best.safetensors", model_dir / "checkpoint.json"
    if not (best.exists() and ckpt.exists()):
        return None  # not started in this leg
    state = read_json(ckpt)["meta"]
    extra = {"arch": state["arch"], "model_index": index}
    epochs = state["step"] // state["steps_per_epoch"]
    return best, extra, {"leg": name, "epochs": epochs, "best_epoch": state["best_epoch"],
                        "val": state["best_val"], "stop": "cut"}  # fmt: skip


def _same_numbers(a: dict, b: dict) -> bool:
    """Two legs' records that differ at most in their names."""
    keys = ("epochs", "best_epoch", "stop")
    return all(a[k] == b[k] for k in keys) and abs(a["val"] - b["val"]) < 1e-9


def save(run_dir: Path, legs_dir: Path, name: str, init: Path | None) -> None:
    run = RunLayout(run_dir)
    record_path = legs_dir / "LEGS.json"
    record = read_json(record_path) if record_path.exists() else {"models": {}}
    shipped = [model_index(p.stem) for p in init.glob("model_*.safetensors")] if init else []
    indices = {*map(int, record["models"]), *run.rnn_logged(), *run.rnn_indices(), *shipped}
    for i in sorted(indices):
        entry = record["models"].setdefault(str(i), {"legs": []})
        if not entry["legs"] and init is not None:  # the leg before this folder existed
            entry["legs"].append(_leg_of(init / f"model_{i}.safetensors", "init")[2])
        found = _leg(run, i, name)
        if found is None and not (legs_dir / f"model_{i}.safetensors").exists() and init:
            found = _leg_of(init / f"model_{i}.safetensors", "init")
        if found is None:
            continue
        path, extra, leg = found
        last = entry["legs"][-1] if entry["legs"] else None
        if last and last["leg"] != leg["leg"] and _same_numbers(last, leg):
            continue  # a finished M that ``restore`` put back: no new leg
        convert_weights(path, legs_dir / f"model_{i}.safetensors", torch.float16, extra)
        entry["legs"] = [g for g in entry["legs"] if g["leg"] != leg["leg"]] + [leg]
        entry["done"] = entry["legs"][-1]["stop"] in ("early", "epochs")
        print(f"model_{i}: leg {leg['leg']}: {leg['epochs']} epochs, best {leg['best_epoch']}, "
              f"val {leg['val']:.4f}, ended {leg['stop']}")  # fmt: skip
    atomic_write_json(record_path, record)


def restore(legs_dir: Path, run_dir: Path) -> None:
    run = RunLayout(run_dir)
    for key, entry in read_json(legs_dir / "LEGS.json")["models"].items():
        if not entry.get("done"):
            print(f"model_{key}: not done: train-rnn --init {legs_dir} goes on with it")
            continue
        convert_weights(legs_dir / f"model_{key}.safetensors", run.rnn_model(int(key)),
                        torch.float32, {})  # fmt: skip
        print(f"model_{key}: done, restored as finished into {run.rnn_model(int(key))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("save")
    p.add_argument("run_dir", type=Path)
    p.add_argument("legs_dir", type=Path)
    p.add_argument("--leg", required=True, help="this leg's name, e.g. the machine and date")
    p.add_argument("--init", type=Path, help="folder of the Ms' weights before any leg")
    p = sub.add_parser("restore")
    p.add_argument("legs_dir", type=Path)
    p.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    if args.cmd == "save":
        save(args.run_dir, args.legs_dir, args.leg, args.init)
    else:
        restore(args.legs_dir, args.run_dir)


if __name__ == "__main__":
    main()
