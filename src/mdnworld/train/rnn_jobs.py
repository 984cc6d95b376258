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

Idle cores: five Ms in two jobs leave the last one training alone on one of two cores for its
whole run. With ``rnn.threads = 0`` each job calls ``use_idle_cores()`` at every epoch's start
and takes cores // (jobs still unfinished, at most ``jobs``) threads, so the last M trains on
both cores once the others are done (its weights are then those of a run that changed its
thread count at that epoch; an explicit ``rnn.threads`` keeps it fixed).
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

import torch

from mdnworld.config import RNNConfig
from mdnworld.procs import kill_workers, prepare_worker_process

TrainRNN = Callable[[Path, RNNConfig], list[dict[str, Any]]]


_share: tuple[Any, int] | None = None
"""In a job process whose threads ``rnn.jobs`` chose: (the shared count of models not yet
finished, ``jobs``); None elsewhere."""


def _init_job(slots: Any, unfinished: Any, jobs: int, share: bool) -> None:
    """A job's process: dies with the parent; takes the next free line for its tqdm bar."""
    global _share
    prepare_worker_process()
    with slots.get_lock():
        os.environ["TQDM_POSITION"] = str(slots.value)  # tqdm reads TQDM_* defaults
        slots.value += 1
    _share = (unfinished, jobs) if share else None


def _job(train: TrainRNN, run_dir: Path, cfg: RNNConfig) -> list[dict[str, Any]]:
    """``train(run_dir, cfg)`` in a job process, then one model fewer left unfinished."""
    try:
        return train(run_dir, cfg)
    finally:
        if _share is not None:
            with _share[0].get_lock():
                _share[0].value -= 1


def _cores_each(processes: int) -> int:
    """Threads for each of ``processes`` sharing this machine's cores (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def use_idle_cores(log: Callable[[str], None], name: str) -> None:
    """In a job process sharing the cores (``rnn.threads = 0``): set torch's threads to cores
    // (models still unfinished, at most ``jobs``), and log a change. Elsewhere nothing. Call
    it where a thread change is harmless (an epoch's start): OpenMP takes it for the calling
    thread only."""
    if _share is None:
        return
    unfinished, jobs = _share
    threads = _cores_each(min(jobs, unfinished.value))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        log(f"{name}: {threads} threads from now on (the other jobs are done)")


def train_in_jobs(run_dir: Path, cfg: RNNConfig, train: TrainRNN) -> list[dict[str, Any]]:
    """Run ``train(run_dir, cfg for model i)`` for every model of ``cfg`` in ``cfg.jobs``
    processes; the models' metas in index order. ``train`` is ``train_rnn`` (passed in, as
    this module sits below it)."""
    indices = range(cfg.model_index, cfg.model_index + cfg.models)
    threads = cfg.threads or _cores_each(cfg.jobs)
    one = {"models": 1, "jobs": 1, "threads": threads}
    ctx = mp.get_context("spawn")  # a fresh interpreter: no forked torch threads
    slots, unfinished = ctx.Value("i", 0), ctx.Value("i", cfg.models)
    jobs = min(cfg.jobs, cfg.models)
    init = (slots, unfinished, jobs, cfg.threads == 0)
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_job, initargs=init)
    try:
        futures = [
            pool.submit(_job, train, Path(run_dir), dataclasses.replace(cfg, model_index=i, **one))
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
