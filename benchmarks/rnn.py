"""Benchmark step 4: MDN-RNN training throughput, memory, and the paper-scale epoch time.

    python benchmarks/rnn.py [--seconds 8] [--threads 0]

The peer's bare fp32 loop (World Models' MDRNN, GMM loss and Adam: benchmarks/peers.py), the
reference of issue 20's target (train-rnn >= 1.6x it), then training windows/s of the real
training step (batch gather from a ``SequenceData``, forward, ``mdn_loss``, backward, Adam)
at batch 256, 60 steps, hidden 256, K 5, latent 64, for both mixture kinds, in float32 and
under bf16 autocast: once with PyTorch's plain CPU autocast and once the way ``train-rnn --amp
bf16`` runs it (oneDNN off inside autocast where the CPU lacks native bf16), each without and
with ``rnn.compile``. Plus evaluation (no-grad) windows/s, 1 thread against all, and
``train-rnn --jobs 2`` (two Ms at once in two processes, summed), the time and memory to hold
paper-scale latents (2000 episodes x 300 frames) as windows and to draw a sampled-z epoch, the
peak RSS, and the projected time per epoch at paper scale. Throughput does not depend on the
values, so the latents are a synthetic random walk. Prints a table, writes --out (default
benchmarks/results/rnn.json; the machine's record names its CPU: figures differ by CPU).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdnworld.data.sequences import SequenceData, n_windows
from mdnworld.device import (
    autocast,
    compiled,
    cpu_flags,
    cpu_has_native_bf16,
    cpu_model,
    prepare_cpu,
    resolve_amp,
    resolve_compile,
)
from mdnworld.io import atomic_write_json
from mdnworld.models.mdnrnn import MDNRNNArch, StandardisedMDNRNN, mdn_loss
from mdnworld.train.rnn import head_losses

sys.path.insert(0, str(Path(__file__).parent))
import peers  # noqa: E402  (benchmarks/ is not a package)

RESULTS = Path(__file__).parent / "results" / "rnn.json"
BATCH, SEQ, HIDDEN, K, Z = 256, 60, 256, 5, 64
PAPER_EPISODES, PAPER_LENGTH, SKIP, VAL_FRACTION = 2000, 300, 3, 0.15


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synthetic_episodes(n: int, length: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n):
        mu = np.cumsum(rng.standard_normal((length, Z), dtype=np.float32) * 0.1, axis=0)
        eps.append(
            {
                "mu": mu,
                "logvar": np.full((length, Z), -2.0, np.float32),
                "actions": rng.uniform(-1, 1, (length, 1)).astype(np.float32),
                "rewards": np.ones(length, np.float32),
                "dones": np.zeros(length, bool),
            }
        )
    return eps


def plain_bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


MODES = ("fp32", "bf16 (oneDNN)", "bf16 (oneDNN off)", "fp32 + compile", "bf16 + compile")
"""Autocast as PyTorch's plain CPU autocast (oneDNN's LSTM) or as ``train-rnn --amp bf16``
(oneDNN off inside); "+ compile": the heads and loss under torch.compile (``rnn.compile``)."""


def measure(
    data: SequenceData, mixture: str, mode: str, seconds: float, train: bool = True
) -> dict:
    """Windows/s of the training step (or of evaluation) for ``mode`` (one of MODES)."""
    one_step = make_step(data, mixture, mode, train)
    # warm-up (kernel selection, allocator, compiling) in fp32 and when compiling only: bf16
    # alone is too slow for it on some CPUs
    warmup = not mode.startswith("bf16") or "compile" in mode
    return timed_row(one_step, seconds, warmup, mixture, mode, train)


def make_step(
    data: SequenceData, mixture: str, mode: str, train: bool = True
) -> Callable[[], float]:
    """One training (or evaluation) step of a fresh M on a random batch; returns its loss."""
    torch.manual_seed(0)
    arch = MDNRNNArch(latent_dim=Z, hidden=HIDDEN, n_components=K, mixture=mixture)
    model = StandardisedMDNRNN(arch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cpu = torch.device("cpu")
    amp = "bf16" if mode.startswith("bf16") else "none"
    ctx = plain_bf16_autocast if mode == "bf16 (oneDNN)" else lambda: autocast(cpu, amp)
    losses = compiled(head_losses, mode.endswith("compile"), "M's loss")
    rng = np.random.default_rng(0)

    def one_step() -> float:
        ids = rng.integers(0, len(data), BATCH)
        z, a, zn, done, reward = (torch.from_numpy(x) for x in data.batch(ids))
        if not train:
            with torch.no_grad(), ctx():
                out, _ = model(z, a)
            return mdn_loss(out, zn, arch)["nll"].item()
        with ctx():
            h, _ = model.hidden(z, a)
        loss = losses(model, h, zn, done, reward, amp, 1.0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return one_step


def _job(mode: str, seconds: float, threads: int, barrier: Any) -> float:
    """One of ``measure_jobs``' processes, set up as train-rnn's are (``prepare_cpu``: its
    threads, and the freed heap kept): warm up, wait for the others, then windows/s."""
    prepare_cpu(threads)
    data = SequenceData(synthetic_episodes(50, PAPER_LENGTH), SEQ, SKIP)
    step = make_step(data, "shared", mode, True)
    step(), step()
    barrier.wait()
    n, t0 = 0, time.perf_counter()
    while n < 1 or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * BATCH / (time.perf_counter() - t0)


def measure_jobs(jobs: int, mode: str, seconds: float) -> float:
    """Windows/s summed over ``jobs`` processes of cores // jobs threads, each training its own
    M at the same time: what ``train-rnn --jobs`` gets (train/rnn_jobs.py); with ``jobs=1``,
    train-rnn's own process."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # compile in the job itself: inductor's pool of compile processes would start up (importing
    # torch) during the few timed seconds; in a real run that is once in hours
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(jobs)
    with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        rates = list(pool.map(_job, [mode] * jobs, [seconds] * jobs, [threads] * jobs,
                              [barrier] * jobs))  # fmt: skip
    return sum(rates)


def measure_in_rounds(
    data: SequenceData, cases: list[tuple[str, str]], seconds: float, rounds: int, jobs_mode: str
) -> list[dict]:
    """The peer's loop, each (mixture, mode) case (in this process, glibc's default heap, as
    the peer's code runs), and (unless ``jobs_mode`` is empty) ``jobs_mode`` in a process set
    up as train-rnn's (one job, all threads; then two jobs), timed in turn for seconds / rounds
    each, ``rounds`` times: this shared
    host's speed drifts by up to 1.6x within minutes, so each setting meets the same drift.
    Each round starts from fresh models (a float32 model trained on these random latents for
    minutes slows down by up to 2x, denormal numbers likely). A row holds the median
    windows/s and every round's."""
    makers: dict[tuple, Callable[[], Callable[[], float]]] = {
        ("shared", "peer fp32"): lambda: peer_step(data),
        **{c: functools.partial(make_step, data, *c) for c in cases},
    }
    rates: dict[tuple, list[float]] = {case: [] for case in makers}
    errors = {}
    jobs_cases = {jobs: ("shared", jobs_mode, jobs) for jobs in (1, 2)} if jobs_mode else {}
    for r in range(rounds):
        for case, make in makers.items():
            if case in errors:
                continue
            try:
                step = make()
                step()  # warm-up: kernel selection, allocator, compiling (cached after round 1)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                errors[case] = str(e).splitlines()[0]
                continue
            n, t0 = 0, time.perf_counter()
            while n < 1 or time.perf_counter() - t0 < seconds / rounds:
                step()
                n += 1
            rates[case].append(n * BATCH / (time.perf_counter() - t0))
        for jobs, case in jobs_cases.items():
            rates.setdefault(case, []).append(measure_jobs(jobs, jobs_mode, seconds / rounds))
        print(
            f"round {r + 1}/{rounds}: "
            + ", ".join(f"{c[1]} {v[-1]:.0f}" for c, v in rates.items() if v),
            flush=True,
        )
    rows = []
    for case, values in rates.items():
        row = {"mixture": case[0], "mode": case[1], "train": True}
        if len(case) == 3:  # in processes set up as train-rnn's
            row.update(jobs=case[2], threads=max(1, (os.cpu_count() or 1) // case[2]))
        if case in errors:
            rows.append({**row, "error": errors[case]})
            continue
        rate = float(np.median(values))
        rows.append({**row, "windows_per_s": rate, "s_per_step": BATCH / rate, "rounds": values})
    return rows


def timed_row(
    step: Callable[[], float], seconds: float, warmup: bool, mixture: str, mode: str, train: bool
) -> dict:
    """Run ``step`` (one batch, returns its loss) for ``seconds`` (at least once) -> the row of
    the table: steps, s/step, windows/s, whether the loss stayed finite (or the error)."""
    try:
        if warmup:
            loss = step()
        steps, t0 = 0, time.perf_counter()
        while steps < 1 or time.perf_counter() - t0 < seconds:
            loss = step()
            steps += 1
        dt = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        return {"mixture": mixture, "mode": mode, "train": train, "error": str(e).splitlines()[0]}
    return {
        "mixture": mixture,
        "mode": mode,
        "train": train,
        "steps": steps,
        "s_per_step": dt / steps,
        "windows_per_s": steps * BATCH / dt,
        "finite_loss": bool(np.isfinite(loss)),
    }


def peer_step(data: SequenceData) -> Callable[[], float]:
    """A step of the peer's bare fp32 loop (benchmarks/peers.py) over ``data``'s windows, held
    in memory as ready-made tensors the way the peer holds them."""
    z, a, zn, done, _ = data.batch(np.arange(len(data)))
    z_all = torch.from_numpy(np.concatenate([z, zn[:, -1:]], axis=1))
    return peers.mdrnn_loop(z_all, torch.from_numpy(a), torch.from_numpy(done).float(), BATCH)


def paper_scale_data() -> dict:
    """Hold 2000 x 300-frame episodes as windows: build time, memory, a sampled-z epoch."""
    rss0 = peak_rss_mb()
    eps = synthetic_episodes(PAPER_EPISODES, PAPER_LENGTH, seed=1)
    t0 = time.perf_counter()
    data = SequenceData(eps, SEQ, SKIP)
    build_s = time.perf_counter() - t0
    del eps
    t0 = time.perf_counter()
    data.epoch_latents("sample", seed=0, epoch=0)
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(20):
        data.batch(np.random.default_rng(0).integers(0, len(data), BATCH))
    gather_ms = (time.perf_counter() - t0) / 20 * 1000
    return {
        "episodes": PAPER_EPISODES,
        "frames": int(len(data.mu)),
        "windows": len(data),
        "latents_mb": (data.mu.nbytes + data.logvar.nbytes) / 2**20,
        "build_s": build_s,
        "sample_epoch_s": sample_s,
        "batch_gather_ms": gather_ms,
        "peak_rss_mb_before": rss0,
        "peak_rss_mb_after": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per setting")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = one per core")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"JSON to write (default: {RESULTS})")
    args = ap.parse_args()
    # This process keeps glibc's default heap, as the peer's code runs; train-rnn's own setting
    # (prepare_cpu: the freed heap kept) is timed in processes of its own (measure_jobs)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    load0 = os.getloadavg()  # other processes on the machine skew the numbers: recorded
    data = SequenceData(synthetic_episodes(50, PAPER_LENGTH), SEQ, SKIP)
    amp = resolve_amp(torch.device("cpu"), "auto")
    compiling = resolve_compile(torch.device("cpu"), "auto")
    plain = "bf16 (oneDNN off)" if amp == "bf16" else "fp32"
    trainer_mode = f"{plain[:4]} + compile" if compiling else plain  # train-rnn's defaults
    cases = [(mixture, mode) for mixture in ("shared", "per_dim") for mode in MODES]
    # train-rnn --jobs 2 (two Ms at once, half the threads each) where there are 2+ threads
    jobs_mode = trainer_mode
    rows = measure_in_rounds(data, cases, args.seconds, args.rounds, jobs_mode)
    rows.append(measure(data, "shared", "fp32", args.seconds / 2, train=False))
    print(json.dumps(rows[-1]), flush=True)
    eval_row = rows[-1]
    if threads > 1:  # thread scaling of the float32 step
        torch.set_num_threads(1)
        rows.append(measure(data, "shared", "fp32", args.seconds))
        rows[-1]["threads"] = 1
        print(json.dumps(rows[-1]), flush=True)
        torch.set_num_threads(threads)
    peer = rows[0]["windows_per_s"]
    shared = [r for r in rows if r["mixture"] == "shared" and r["train"] and "threads" not in r]
    ours = {r["mode"]: r.get("windows_per_s", np.nan) for r in shared}  # all cores, 1 process
    in_process = ours[trainer_mode]  # train-rnn's step, but glibc's default heap
    by_jobs = {r["jobs"]: r.get("windows_per_s") for r in rows if "jobs" in r}
    trainer, jobs2 = by_jobs[1], by_jobs.get(2) if threads > 1 else None
    rss_training = peak_rss_mb()
    paper = paper_scale_data()

    train_eps = PAPER_EPISODES - round(VAL_FRACTION * PAPER_EPISODES)
    per_ep = n_windows(PAPER_LENGTH, SEQ, SKIP)
    train_windows, val_windows = train_eps * per_ep, (PAPER_EPISODES - train_eps) * per_ep
    eval_rate = eval_row.get("windows_per_s")
    for r in rows:
        r.setdefault("threads", threads)
        if "windows_per_s" in r and r["train"] and eval_rate:
            r["paper_epoch_min"] = (
                train_windows / r["windows_per_s"] + (val_windows + 2048) / eval_rate
            ) / 60

    print()
    print(
        f"MDN-RNN training, batch {BATCH} x {SEQ} steps, hidden {HIDDEN}, K {K}, latent {Z}; "
        f"{threads} thread(s), CPU {platform.processor() or platform.machine()}"
    )
    print(f"{'mixture':8} {'mode':32} {'windows/s':>10} {'s/step':>7} {'paper epoch':>12}")
    for r in rows:
        what = r["mode"] + ("" if r["train"] else " eval") + f", {r['threads']} thr"
        what += f" x {r['jobs']} jobs" if "jobs" in r else ""
        if "error" in r:
            print(f"{r['mixture']:8} {what:32} failed: {r['error'][:60]}")
            continue
        ep = f"{r['paper_epoch_min']:.1f} min" if "paper_epoch_min" in r else "-"
        print(
            f"{r['mixture']:8} {what:32} {r['windows_per_s']:10.0f} {r['s_per_step']:7.3f} {ep:>12}"
        )
    print(
        f"\npaper scale: {PAPER_EPISODES} episodes x {PAPER_LENGTH} frames -> {train_windows} "
        f"training windows ({-(-train_windows // BATCH)} steps/epoch), {val_windows} "
        f"validation windows; latents {paper['latents_mb']:.0f} MB (mu + logvar), windows "
        f"built in {paper['build_s']:.2f} s, a sampled-z epoch drawn in "
        f"{paper['sample_epoch_s']:.2f} s, batch gather {paper['batch_gather_ms']:.1f} ms"
    )
    print(
        f"peer's bare fp32 loop {peer:.0f} windows/s (median of {args.rounds} rounds); "
        f"train-rnn's step (amp auto = {amp}, compile auto = {compiling}) {trainer:.0f} "
        f"windows/s = {trainer / peer:.2f}x the peer (target 1.6x); the same step with glibc's "
        f"default heap {in_process:.0f} windows/s (keeping the freed heap: "
        f"{trainer / in_process:.2f}x)"
    )
    if jobs2:
        print(f"train-rnn --jobs 2 (two Ms at once): {jobs2:.0f} windows/s in all = "
              f"{jobs2 / trainer:.2f}x one process with {threads} threads")  # fmt: skip
    print(
        f"peak RSS: {rss_training:.0f} MB after the training measurements, "
        f"{paper['peak_rss_mb_after']:.0f} MB with paper-scale latents built"
    )
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "threads": threads,
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_model": cpu_model(),
            "native_bf16": cpu_has_native_bf16(),
            "amx": "amx_bf16" in cpu_flags(),
            "loadavg_at_start": load0,
            "loadavg_at_end": os.getloadavg(),
        },
        "setting": {"batch": BATCH, "seq_len": SEQ, "hidden": HIDDEN, "K": K, "latent": Z},
        "rows": rows,
        "peer_windows_per_s": peer,
        "amp_auto": amp,
        "compile_auto": compiling,
        "jobs2_windows_per_s": jobs2,
        "jobs2_vs_one_process": jobs2 / trainer if jobs2 else None,
        "trainer_windows_per_s": trainer,
        "trainer_vs_peer": trainer / peer,
        "trainer_default_heap_windows_per_s": in_process,
        "kept_heap_vs_default": trainer / in_process,
        "target_trainer_vs_peer": 1.6,
        "paper_scale": {
            **paper,
            "train_windows": train_windows,
            "val_windows": val_windows,
            "steps_per_epoch": -(-train_windows // BATCH),
        },
        "peak_rss_mb_training": rss_training,
        "peak_rss_mb": peak_rss_mb(),
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
