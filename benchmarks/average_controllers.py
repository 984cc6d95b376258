"""Issue 22's "average several controllers": one controller whose parameters are the mean of
several controllers trained in the same world model, as a run directory that
``benchmarks/choice_scores.py`` (or ``mdnworld evaluate``) plays like any other.

    python benchmarks/average_controllers.py OUT_RUN RUN_DIR[:which] RUN_DIR[:which] ...

Every RUN_DIR must dream with the same V and M (checked by their files' sha256): OUT_RUN links
the first run's V, M, episodes and latents and holds ``controller/controller.safetensors``, the
averaged linear controller (a = tanh(W [z, h] + b) with W, b the means).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from mdnworld.control.evaluate import load_controller
from mdnworld.control.train import save_controller
from mdnworld.io import sha256_file
from mdnworld.layout import RunLayout
from mdnworld.models.controller import ControllerArch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR[:which]")
    args = ap.parse_args()
    if len(args.runs) < 2:
        ap.error("give at least two controllers to average")
    params, metas, models = [], [], set()
    for spec in args.runs:
        run, _, which = spec.partition(":")
        p, meta = load_controller(run, which or "mean")
        layout = RunLayout(run)
        models.add(
            (sha256_file(layout.vae_model), sha256_file(layout.rnn_model(meta["model_index"])))
        )
        params.append(p)
        metas.append(meta)
    if len(models) > 1:
        raise SystemExit(f"{args.runs}: the runs dream with different V or M; averaging needs one")
    first = Path(args.runs[0].partition(":")[0]).resolve()
    out = RunLayout(args.out)
    out.controller_dir.mkdir(parents=True, exist_ok=True)
    for name in ("vae", "rnn", "episodes", "latents"):
        if (first / name).exists() and not (args.out / name).exists():
            os.symlink((first / name).resolve(), args.out / name)
    meta = {"generation": metas[0]["generation"], "model_index": metas[0]["model_index"],
            "what": f"mean of the parameters of {args.runs}"}  # fmt: skip
    arch = ControllerArch(**metas[0]["arch"])
    save_controller(out.controller_weights("mean"), np.mean(params, axis=0), arch, meta)
    print(f"{out.controller_weights('mean')}: the mean of {len(params)} controllers")


if __name__ == "__main__":
    main()
