"""``rnn.jobs``: several Ms trained at once, each in a process of its own.

Why: on a CPU, M's step is bound by the LSTM's small matrix products, which use a second
thread poorly. On 2 cores, two 1-thread processes trained 1.21x the windows of one 2-thread
process (1915 against 1581 windows/s, median of 3 rounds of ``benchmarks/rnn.py``; 1.3x in
the sharp run's real training before the LSTM's padding), and the paper trains five Ms.

Each job is ``train_rnn`` for one model (``model_index = i``, ``models = 1``) with ``threads``
= cores // jobs unless ``rnn.threads`` says otherwise, so a model's weights are those of a
one-model run with that thread count: checkpoints, resume and files are unchanged, and a
stopped run resumes with any ``jobs``. Jobs die with the parent (``procs``), a failed job stops
the others, and each job draws its progress bar on a line of its own.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from mdnworld.config import RNNConfig
from mdnworld.procs import kill_workers, prepare_worker_process

TrainRNN = Callable[[Path, RNNConfig], list[dict[str, Any]]]


def _init_job(slots: Any) -> None:
    """A job's process: dies with the parent; takes the next free line for its tqdm bar."""
    prepare_worker_process()
    with slots.get_lock():
        os.environ["TQDM_POSITION"] = str(slots.value)  # tqdm reads TQDM_* defaults
        slots.value += 1


def train_in_jobs(run_dir: Path, cfg: RNNConfig, train: TrainRNN) -> list[dict[str, Any]]:
    """Run ``train(run_dir, cfg for model i)`` for every model of ``cfg`` in ``cfg.jobs``
    processes; the models' metas in index order. ``train`` is ``train_rnn`` (passed in, as
    this module sits below it)."""
    indices = range(cfg.model_index, cfg.model_index + cfg.models)
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.jobs)
    one = {"models": 1, "jobs": 1, "threads": threads}
    ctx = mp.get_context("spawn")  # a fresh interpreter: no forked torch threads
    slots = ctx.Value("i", 0)
    jobs = min(cfg.jobs, cfg.models)
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_job, initargs=(slots,))
    try:
        futures = [
            pool.submit(train, Path(run_dir), dataclasses.replace(cfg, model_index=i, **one))
            for i in indices
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)  # all, or up to the first error
        for f in done:
            if f.exception() is not None:
                raise f.exception()
        metas = [f.result()[0] for f in futures]
    except BaseException:  # a job failed, or Ctrl-C: stop the others now, not at their end
        _stop(pool)
        raise
    pool.shutdown()
    return metas


def _stop(pool: ProcessPoolExecutor, seconds: float = 120.0) -> None:
    """Kill every job process of ``pool`` and wait until each has died (a killed process can
    take seconds to go on a loaded machine: a CI run beside two trainings once saw one still
    alive after 10 s), then shut the pool down without waiting for its queue."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = {pid: p for pid, p in (getattr(pool, "_processes", None) or {}).items()
                 if p.is_alive()}  # fmt: skip
        if not alive:
            break
        kill_workers(set(alive))
        for proc in alive.values():
            proc.join(timeout=max(0.0, min(5.0, deadline - time.monotonic())))
    pool.shutdown(wait=False, cancel_futures=True)
