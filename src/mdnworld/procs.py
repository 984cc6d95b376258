"""Worker processes that run the real game: set-up and teardown shared by ``generate``'s pool
and the controller's local executor (a leaf module: it imports nothing of mdnworld)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import threading
import time


def prepare_worker_process() -> None:
    """Make a pool worker that will run ViZDoom safe to kill.

    ViZDoom runs the game in a process of its own, which inherits our open descriptors. Two
    consequences if this worker dies abruptly: the orphaned game would hold the pipe by which
    the pool notices dead workers (so the pool would wait forever), and it lives on. So: no
    descriptor of ours is inherited, we lead a process group of our own so the parent can kill
    worker and game together (``kill_workers``), and we die with the parent.
    """
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        with contextlib.suppress(OSError):
            if int(fd) > 2:
                os.set_inheritable(int(fd), False)
    os.setpgrp()
    threading.Thread(target=_die_with_parent, args=(os.getppid(),), daemon=True).start()


def keep_freed_heap(limit: int = 1 << 30) -> bool:
    """Ask glibc to keep freed heap memory (up to ``limit`` bytes) instead of giving it back.

    A worker keeps an episode's raw screens (~57 KB each, ~17 MB an episode) until they are
    saved; by default glibc returns that memory to the OS after every episode, so the next
    one touches fresh pages: ~11 page faults per game step, measured ~10 % of the game loop
    (``benchmarks/generate.py``). With the trim and mmap thresholds raised, freed screens are
    reused and a worker holds its largest episode's worth of heap. Returns False (and does
    nothing) where the C library has no ``mallopt`` (not glibc).
    """
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(m_trim_threshold, limit)) and bool(mallopt(m_mmap_threshold, limit))


def _die_with_parent(parent: int) -> None:
    """If the parent is killed, take this worker's process group (worker + game) down too."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def kill_workers(pids: set[int]) -> None:
    """SIGKILL each worker's process group: the worker and the game process it started."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def resolve_workers(workers: int) -> int:
    """``workers``, or (0) one per CPU core."""
    return workers if workers > 0 else (os.cpu_count() or 1)
