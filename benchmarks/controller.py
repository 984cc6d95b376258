"""Benchmark the controller's training and evaluation.

    python benchmarks/controller.py [--steps 300] [--episodes 8]

1. Seconds per CMA-ES generation: 64 candidates x 16 dream rollouts = 1024 dreams of the
   paper's M (LSTM 256, K 5 shared, latent 64, done head) with a linear controller, through
   ``control.train.dream_fitness`` (DreamEnv, per-dream random streams, the population's
   actions, sampled deaths, bookkeeping). The M's done head is set to never fire, so every
   dream runs the full ``--steps`` (the worst case; projected to 2100 steps).
2. The bare-torch floor in the same run: an LSTMCell + MDN head + sampling loop at batch 1024
   with no bookkeeping (one torch generator, no controller, no done head).
3. With ``--trained-run DIR`` (a run whose M has a trained done head, e.g. the paper run): one
   realistic generation (64 x 16 dreams, cap 2100, candidates around zero) with and without
   dropping ended dreams from the batch (``dream_fitness(compact=...)``); same fitnesses.
4. Real-game evaluation episodes/s with 1 and 2 worker processes (a fixed random-ish linear
   controller on a small run trained in place: needs RUN_DIR with V and an M with a done head,
   default runs/demo; skipped if missing).
Prints a table, writes benchmarks/results/controller.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mdnworld.control.executors import LocalExecutor
from mdnworld.control.realgame import PlayJob, load_models, play_job, seed_jobs
from mdnworld.control.train import dream_fitness, dream_inputs
from mdnworld.device import prepare_cpu
from mdnworld.layout import RunLayout
from mdnworld.models.controller import ControllerArch
from mdnworld.models.mdnrnn import MDNRNN, MDNRNNArch

RESULTS = Path(__file__).parent / "results" / "controller.json"
POP, ROLLOUTS, Z, H, K, CAP = 64, 16, 64, 256, 5, 2100


def floor(steps: int, B: int = POP * ROLLOUTS) -> float:
    """Seconds for `steps` steps of LSTMCell + MDN head + sampling at batch B."""
    g = torch.Generator().manual_seed(0)
    cell, head = nn.LSTMCell(Z + 1, H), nn.Linear(H, K + 2 * K * Z)
    z, h, c, a = torch.zeros(B, Z), torch.zeros(B, H), torch.zeros(B, H), torch.zeros(B, 1)
    rows = torch.arange(B)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            h, c = cell(torch.cat([z, a], 1), (h, c))
            y = head(h)
            logits, mu, log_sigma = y[:, :K], y[:, K : K + K * Z], y[:, K + K * Z :]
            k = torch.multinomial(torch.softmax(logits, 1), 1, generator=g).squeeze(1)
            mu, log_sigma = mu.view(B, K, Z)[rows, k], log_sigma.view(B, K, Z)[rows, k]
            z = mu + log_sigma.exp() * torch.randn(B, Z, generator=g)
    return time.perf_counter() - t0


def generation(steps: int) -> float:
    torch.manual_seed(0)
    m = MDNRNN(MDNRNNArch(hidden=H, done_head=True)).eval()
    with torch.no_grad():
        m.done.weight.zero_()
        m.done.bias.fill_(-50.0)  # never dies: every dream runs to the cap
    params = np.random.default_rng(0).normal(0, 0.1, (POP, ControllerArch(Z, H).n_params))
    t0 = time.perf_counter()
    fit = dream_fitness(m, torch.randn(100, Z), params, ROLLOUTS, 1.15, steps, 0.5, seed=0)
    seconds = time.perf_counter() - t0
    assert (fit == steps).all()
    return seconds


def real_game(run_dir: Path, episodes: int) -> dict:
    rows = {}
    for workers in (1, 2):
        mdnrnn = load_models(run_dir, 0)[1]
        n = ControllerArch(mdnrnn.arch.latent_dim, mdnrnn.arch.hidden).n_params
        params = np.random.default_rng(1).normal(0, 0.1, n)
        base = PlayJob(str(run_dir), model_index=0, params=params, max_steps=2100)
        ex = LocalExecutor(workers)
        seeds = list(range(10_000, 10_000 + episodes))
        ex.map(play_job, seed_jobs(base, seeds[:workers], workers))  # warm
        t0 = time.perf_counter()
        out = ex.map(play_job, seed_jobs(base, seeds, 4 * workers))
        seconds = time.perf_counter() - t0
        ex.close()
        steps = sum(r["score"] for part in out for r in part)
        rate = {"episodes_per_s": episodes / seconds, "steps_per_s": steps / seconds}
        rows[f"{workers} worker(s)"] = {**rate, "episodes": episodes}
    return rows


def trained_generation(run_dir: Path) -> dict:
    """Seconds of one generation on a trained M, with and without compaction."""
    model, starts = dream_inputs(run_dir, 0, "cpu")
    arch = ControllerArch(model.arch.latent_dim, model.arch.hidden, model.arch.action_dim)
    params = np.random.default_rng(0).normal(0, 0.1, (POP, arch.n_params))
    out, fits = {}, []
    for compact in (0.0, 0.25):
        t0 = time.perf_counter()
        fits.append(dream_fitness(model, starts, params, ROLLOUTS, 1.15, CAP, 0.5, seed=0,
                                  compact=compact))  # fmt: skip
        out[f"seconds_compact_{compact}"] = time.perf_counter() - t0
    assert np.array_equal(*fits)
    out["mean_survival"] = float(fits[0].mean())
    out["speedup"] = out["seconds_compact_0.0"] / out["seconds_compact_0.25"]
    return {"run": str(run_dir), **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--trained-run", type=Path, default=None)
    args = ap.parse_args()
    threads = prepare_cpu(args.threads)
    floor(20), generation(20)  # warm-up
    g_s, f_s = [], []
    for _ in range(2):  # interleaved repeats: this VM's speed drifts
        g_s.append(generation(args.steps))
        f_s.append(floor(args.steps))
    gen, flo = float(np.median(g_s)), float(np.median(f_s))
    result = {
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "steps_measured": args.steps,
        "generation_seconds_at_2100": gen * CAP / args.steps,
        "floor_seconds_at_2100": flo * CAP / args.steps,
        "ratio_to_floor": gen / flo,
        "target_ratio": 1.3,
    }
    print(f"{'what':58s} {'s at 2100 steps':>16s}")
    names = {
        "generation": "one generation, 64 x 16 dreams (dream_fitness)",
        "floor": "bare floor: LSTMCell + MDN head + sampling, batch 1024",
    }
    for key, name in names.items():
        print(f"{name:58s} {result[key + '_seconds_at_2100']:16.1f}")
    print(f"ratio {result['ratio_to_floor']:.2f} (target <= 1.3)")
    if args.trained_run:
        t = result["trained_run"] = trained_generation(args.trained_run)
        print(
            f"trained M ({args.trained_run}, mean survival {t['mean_survival']:.0f}): one "
            f"generation {t['seconds_compact_0.0']:.1f} s with every dream to the end, "
            f"{t['seconds_compact_0.25']:.1f} s dropping ended dreams ({t['speedup']:.2f}x)"
        )
    run = RunLayout(args.run_dir)
    has_run = run.vae_meta.exists() and run.rnn_dir.exists()
    if has_run:
        result["real_game"] = real_game(args.run_dir, args.episodes)
        for name, r in result["real_game"].items():
            eps, steps = r["episodes_per_s"], r["steps_per_s"]
            print(f"real game, {name}: {eps:.2f} episodes/s, {steps:.0f} steps/s")
    else:
        print(f"real game: skipped ({args.run_dir} has no trained V and M)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
