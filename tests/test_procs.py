"""Process set-up (procs.py): glibc keeps freed heap where asked, and kill_workers takes down a
worker whatever stage of its start it is in."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import time

import pytest

from mdnworld.procs import kill_workers

FAULTS_SCRIPT = """
import resource, sys
import numpy as np
from mdnworld.procs import give_back_freed_heap, keep_freed_heap
if sys.argv[1] in ("keep", "keep, then give back"):
    assert keep_freed_heap()
if sys.argv[1] == "keep, then give back":
    assert give_back_freed_heap()
def episode():  # a worker's episode: ~300 raw screens kept, then freed after the save
    screens = [np.full((120, 160, 3), 7, np.uint8) for _ in range(300)]
    return len(screens)
episode()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
episode()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_heap_reuses_an_episodes_pages() -> None:
    """The worker's second episode of screens faults in (almost) no new pages with
    keep_freed_heap(); without it glibc hands the memory back after each episode, and
    give_back_freed_heap() (what dream sets) makes it do so again after a keep."""

    def count(mode: str) -> int:
        run = [sys.executable, "-c", FAULTS_SCRIPT, mode]
        return int(subprocess.run(run, check=True, capture_output=True, text=True).stdout)

    faults = {mode: count(mode) for mode in ("plain", "keep", "keep, then give back")}
    assert faults["plain"] > 300 * 10  # 57.6 KB = 14 pages a screen
    assert faults["keep"] < 300
    assert faults["keep, then give back"] > 300 * 10


def _starting_up() -> None:
    """A worker that has not reached prepare_worker_process (no process group of its own)."""
    time.sleep(60)


def test_kill_workers_kills_a_worker_still_starting_up() -> None:
    """A job that fails while another job's process is still importing: the other has no
    process group yet, so killing its group would miss it; it is killed alone."""
    proc = mp.get_context("spawn").Process(target=_starting_up)
    proc.start()
    kill_workers({proc.pid})
    proc.join(timeout=10)
    assert not proc.is_alive()
