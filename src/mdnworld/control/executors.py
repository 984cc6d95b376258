"""Where jobs run: a small seam with two engines.

``LocalExecutor`` runs jobs in worker processes on this machine (or in this process with one
worker); ``RayExecutor`` hands them to a Ray cluster (``pip install mdnworld[ray]``;
``--executor ray --address HOST:PORT``, or no address to start a local Ray). Both give
``map(fn, jobs) -> results`` in job order, where ``fn`` is a module-level function of one
picklable job: a frozen dataclass of plain values defined at module level beside its function
(``ControllerJob``'s ``realgame.PlayJob`` for ``realgame.play_job``, ``train.DreamJob`` for
``train.dream_job``). Jobs name the run directory, so Ray workers on other machines must see
it at the same path (shared storage).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, get_args

import numpy as np

from mdnworld.config import ExecutorKind
from mdnworld.errors import ConfigError

Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass(frozen=True, eq=False)
class ControllerJob:
    """What every controller job names: a run, its M and controller parameters.

    Frozen and made of plain values (a str, ints, floats, one numpy array), so it pickles to a
    local worker process or a Ray worker; ``eq=False``: jobs compare by identity (``params`` is
    an array). Subclasses add their fields and say ``params``' shape in ``PARAMS_SHAPE``.
    """

    run_dir: str
    """The run directory (a Path is converted); its V and M ``model_index`` are used."""
    model_index: int
    """Which M (``rnn/model_<i>/``)."""
    params: np.ndarray
    """Controller parameters, float32, each row laid out ``[W.flatten(), b]``
    (models/controller.py); a list is converted."""
    PARAMS_SHAPE: ClassVar[tuple[str, ...]] = ("n",)

    def __post_init__(self) -> None:
        params = np.asarray(self.params, np.float32)
        if params.ndim != len(self.PARAMS_SHAPE):
            want = str(self.PARAMS_SHAPE).replace("'", "")  # "(n,)", "(P, n)"
            raise ValueError(
                f"{type(self).__name__}.params must have shape {want}, got {params.shape}"
            )
        object.__setattr__(self, "run_dir", str(self.run_dir))
        object.__setattr__(self, "params", params)


def _init_local_worker() -> None:
    from mdnworld.procs import prepare_worker_process

    prepare_worker_process()


class LocalExecutor:
    """``workers`` processes (0 = one per core; 1 = run in this process)."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> list[Result]:
        if self.workers == 1 or len(jobs) <= 1:
            return [fn(job) for job in jobs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context("spawn"), initializer=_init_local_worker
            )
        return list(self._pool.map(fn, jobs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Jobs as Ray tasks, one CPU each, on the cluster at ``address`` (empty: a local Ray
    started here with ``workers`` CPUs, 0 = all)."""

    def __init__(self, address: str = "", workers: int = 0) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "executor 'ray' needs Ray: pip install 'mdnworld[ray]' (or use executor 'local')"
            ) from None
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = {"address": address} if address else {}
            if not address and workers > 0:
                kwargs["num_cpus"] = workers
            ray.init(**kwargs, include_dashboard=False, log_to_driver=False)

    def map(self, fn: Callable[[Job], Result], jobs: Sequence[Job]) -> list[Result]:
        remote = self.ray.remote(num_cpus=1)(fn)
        return self.ray.get([remote.remote(job) for job in jobs])

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


Executor = LocalExecutor | RayExecutor


def make_executor(kind: ExecutorKind | str, address: str = "", workers: int = 0) -> Executor:
    """The executor a config's ``executor`` names ("local" or "ray")."""
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, workers)
    raise ConfigError(f"executor must be one of {list(get_args(ExecutorKind))}, got {kind!r}")
