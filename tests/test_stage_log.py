"""Stage wall time and peak memory (stage_log.py): children count, failures are recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mdnworld.procs import keep_freed_heap
from mdnworld.stage_log import (
    STAGE_LOG,
    machine,
    machine_cpus,
    machine_has_gpu,
    machine_info,
    measure_stage,
    stage_totals,
)


def test_peak_memory_includes_child_processes(tmp_path: Path) -> None:
    hold = (  # 300 MB, every page touched, held for 1.5 s
        "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
        "time.sleep(1.5)"
    )
    with measure_stage(tmp_path, "work"):
        subprocess.run([sys.executable, "-c", hold], check=True)
    with pytest.raises(RuntimeError), measure_stage(tmp_path, "work"):
        raise RuntimeError("boom")
    lines = (tmp_path / STAGE_LOG).read_text().splitlines()
    assert len(lines) == 2
    totals = stage_totals(tmp_path)["work"]
    assert totals["runs"] == 2 and totals["finished"] is False  # the last run failed
    assert totals["peak_rss_mb"] > 300  # the child's 300 MB were seen
    assert totals["seconds"] >= 1.5


def test_a_child_that_lives_less_than_a_sample_still_counts(tmp_path: Path) -> None:
    """A worker that ends before the first sample after the stage's start (generate's tiny
    runs on a fast CPU take 0.3 s) counts through the peak the kernel keeps for it. In a fresh
    process: the kernel's figure is the largest over a process's life, and this one's earlier
    tests started bigger children."""
    stage = f"""
import subprocess, sys, time
from pathlib import Path
from mdnworld.stage_log import measure_stage
spike = "b = bytearray(250 * 2**20); b[::4096] = b'x' * len(b[::4096])"  # no sleep
with measure_stage(Path({str(tmp_path)!r}), "quick"):
    time.sleep(0.05)  # the sampler's first look comes before the child exists
    subprocess.run([sys.executable, "-c", spike], check=True)
"""
    subprocess.run([sys.executable, "-c", stage], check=True)
    assert stage_totals(tmp_path)["quick"]["peak_rss_mb"] > 250


def test_a_short_peak_of_the_stage_itself_is_not_missed(tmp_path: Path) -> None:
    """A 200 MB peak that lasts far less than the 0.5 s between samples still counts (the
    process's own peak, reset at the stage's start), and a later stage does not inherit it,
    even from a process that keeps its freed heap (as every computing stage does)."""
    keep_freed_heap()
    with measure_stage(tmp_path, "spike"):
        b = bytearray(200 * 2**20)
        b[::4096] = b"x" * len(b[::4096])  # touch every page
        del b
    with measure_stage(tmp_path, "calm"):
        pass
    totals = stage_totals(tmp_path)
    assert totals["spike"]["peak_rss_mb"] > 200
    assert totals["calm"]["peak_rss_mb"] < totals["spike"]["peak_rss_mb"] - 150


def test_runs_side_by_side_count_once_and_name_their_machine(tmp_path: Path) -> None:
    """Five models trained at once for 200 s are 200 s of wall time, not 1000; a later run
    adds its own time."""
    rows = [
        {"stage": "train-rnn", "started": "2026-01-01T00:00:00+00:00", "seconds": 200.0,
         "peak_rss_mb": 10.0 + i, "finished": True, "machine": "16 CPUs, GPU X"}
        for i in range(5)
    ] + [{"stage": "train-rnn", "started": "2026-01-01T01:00:00+00:00", "seconds": 50.0,
          "peak_rss_mb": 1.0, "finished": True, "machine": "2 CPUs"}]  # fmt: skip
    (tmp_path / STAGE_LOG).write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = stage_totals(tmp_path)["train-rnn"]
    assert t["seconds"] == 250.0 and t["runs"] == 6 and t["peak_rss_mb"] == 14.0
    gpu, cpu = t["by_machine"]["16 CPUs, GPU X"], t["by_machine"]["2 CPUs"]
    assert (gpu["seconds"], gpu["runs"], cpu["seconds"], cpu["runs"]) == (200.0, 5, 50.0, 1)
    assert (gpu["cpus"], cpu["cpus"]) == (16, 2)  # records older than the cpus field
    with measure_stage(tmp_path, "work"):
        pass
    work = stage_totals(tmp_path)["work"]["by_machine"]
    assert list(work) == [f"{os.cpu_count()} CPUs"]
    assert work[f"{os.cpu_count()} CPUs"]["cpus"] == os.cpu_count()


def test_machine_facts_are_fields_and_old_records_still_read(tmp_path: Path) -> None:
    """A record stores ``cpus`` and ``gpu`` as fields (and ``machine`` as text for people);
    records older than the fields are read from their ``machine`` string, so the same machine
    groups together whichever way it was written."""
    with measure_stage(tmp_path, "work"):
        pass
    (record,) = [json.loads(x) for x in (tmp_path / STAGE_LOG).read_text().splitlines()]
    assert (record["cpus"], record["gpu"]) == (os.cpu_count(), None)  # torch: no CUDA here
    assert record["machine"] == machine() == f"{os.cpu_count()} CPUs"
    assert machine_info() == {"cpus": os.cpu_count(), "gpu": None}
    start = {"stage": "rnn", "started": "2026-01-01T00:00:00+00:00", "seconds": 10.0}
    rows = [
        {**start, "machine": "16 CPUs, NVIDIA H200"},  # before the cpus field
        {**start, "machine": "16 CPUs, NVIDIA H200", "cpus": 16},  # before the gpu field
        {**start, "cpus": 16, "gpu": "NVIDIA H200"},  # the fields alone
        {**start, "machine": "2 CPUs", "cpus": 2, "gpu": None},
        {**start},  # before any machine field
    ]
    (tmp_path / STAGE_LOG).write_text("".join(json.dumps(r) + "\n" for r in rows))
    by = stage_totals(tmp_path)["rnn"]["by_machine"]
    assert {k: (v["runs"], v["cpus"], v["gpu"]) for k, v in by.items()} == {
        "16 CPUs, NVIDIA H200": (3, 16, "NVIDIA H200"),
        "2 CPUs": (1, 2, None),
        "?": (1, None, None),
    }
    # the controller's log tags each row with the text: read back the same way
    gpu, cpu = "16 CPUs, NVIDIA H200", "2 CPUs"
    assert (machine_cpus(gpu), machine_has_gpu(gpu)) == (16, True)
    assert (machine_cpus(cpu), machine_has_gpu(cpu), machine_cpus("?")) == (2, False, None)
