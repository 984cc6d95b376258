"""Process set-up: worker processes that run the real game (``generate``'s pool, the
controller's local executor, ``train-rnn --jobs``), and glibc's handling of freed memory for
every process that computes (a leaf module: it imports nothing of mdnworld)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import threading
import time
from collections.abc import Callable


def prepare_worker_process() -> None:
    """Make a pool worker that will run ViZDoom safe to kill.

    ViZDoom runs the game in a process of its own, which inherits our open descriptors. Two
    consequences if this worker dies abruptly: the orphaned game would hold the pipe by which
    the pool notices dead workers (so the pool would wait forever), and it lives on. So: no
    descriptor of ours is inherited, we lead a process group of our own so the parent can kill
    worker and game together (``kill_workers``), and we die with the parent. It also keeps
    freed heap (``keep_freed_heap``), as every computing process here does.
    """
    keep_freed_heap()
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        with contextlib.suppress(OSError):
            if int(fd) > 2:
                os.set_inheritable(int(fd), False)
    os.setpgrp()
    threading.Thread(target=_die_with_parent, args=(os.getppid(),), daemon=True).start()


def keep_freed_heap(limit: int = 1 << 30) -> bool:
    """Ask glibc to keep freed heap memory (up to ``limit`` bytes) instead of giving it back.

    By default glibc serves large blocks (over 128 KB, a threshold it raises up to 32 MB as it
    goes) with fresh ``mmap``s and hands freed memory back to the OS at once, so a loop that
    allocates the same large buffers each time faults fresh pages in each time: torch's
    temporaries in a training step (~70k page faults per M step; M 1.3-1.4x faster with this,
    ``device.prepare_cpu``), a ``generate`` worker's raw screens (~57 KB each, kept until the
    episode is saved: ~11 faults per game step, ~10 % of the game loop). With the trim and mmap
    thresholds raised, freed memory is reused and a process holds its peak heap.
    Returns False (and does nothing) where the C library has no ``mallopt`` (not glibc).
    """
    return _heap_thresholds(limit)


def give_back_freed_heap() -> bool:
    """Undo ``keep_freed_heap``: glibc's default thresholds (128 KB), so large blocks are
    mapped afresh and freed memory goes back to the OS (a stage after a training stage in
    the same process, e.g. ``pipeline``'s dream, does not hold the trainer's peak heap)."""
    return _heap_thresholds(128 * 1024)


def _heap_thresholds(limit: int) -> bool:
    """Set glibc's trim and mmap thresholds to ``limit`` bytes; False where there is no
    ``mallopt`` (not glibc)."""
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    mallopt = _libc("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(m_trim_threshold, limit)) and bool(mallopt(m_mmap_threshold, limit))


def release_freed_heap() -> None:
    """Give the heap memory that is free now back to the OS (glibc's ``malloc_trim``): a stage
    starts from what the process really holds, not what an earlier one kept."""
    if (trim := _libc("malloc_trim")) is not None:
        trim(0)


def _libc(name: str) -> Callable[..., int] | None:
    """A function of the C library, or None (not glibc, or no such function)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):
        return None


def _die_with_parent(parent: int) -> None:
    """If the parent is killed, take this worker's process group (worker + game) down too."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def kill_workers(pids: set[int]) -> None:
    """SIGKILL each worker's process group: the worker and the game process it started. A
    worker still starting up (importing, before ``prepare_worker_process`` made its group)
    is killed alone: it has started nothing yet."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # no group of its own (yet), or gone
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        except PermissionError:
            pass


def resolve_workers(workers: int) -> int:
    """``workers``, or (0) one per CPU core."""
    return workers if workers > 0 else (os.cpu_count() or 1)
