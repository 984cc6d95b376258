"""Wall time and peak memory of every stage run, appended to ``RUN_DIR/stages.jsonl``.

One JSON line per run of a stage (a resumed stage gets one line per run): ``stage``,
``started`` (UTC ISO time), ``seconds``, ``peak_rss_mb``, ``finished`` (False if the stage raised
or was interrupted with Ctrl-C; a SIGKILL leaves no line), and where it ran: ``cpus`` (the CPU
count), ``gpu`` (the GPU's name when the stage used CUDA, else null) and ``machine``, the same
as one string for people ("16 CPUs, NVIDIA H200", "2 CPUs"). Records older than the ``cpus``
and ``gpu`` fields have only ``machine`` (or nothing); ``_from_old_record`` reads it.

``peak_rss_mb`` is the largest resident memory of this process plus all its descendants (e.g.
generate's workers and their games), the largest of: the tree sampled every 0.5 s; this
process's own peak during the stage (Linux's VmHWM, reset at its start, so a short peak between
two samples still counts); and, where a descendant that ended during the stage peaked higher
than any before it (the kernel keeps that peak: ``getrusage(RUSAGE_CHILDREN)``), that peak plus
this process's own, so a worker that lived less than 0.5 s counts too. That sum assumes the two
peaks coincided, as they do when a stage waits on its workers; it is an upper estimate else.
``stage_totals`` sums them per stage, for RESULTS tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mdnworld.layout import RunLayout
from mdnworld.procs import release_freed_heap

STAGE_LOG = RunLayout(Path()).stage_log.name
"""The log's file name in the run directory (``RunLayout.stage_log``)."""
SAMPLE_SECONDS = 0.5


def _tree_rss_bytes(root: int) -> int:
    """Resident bytes of process ``root`` and its descendants (Linux /proc; 0 elsewhere)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * page  # field 24 of stat: resident pages
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def _reset_own_peak() -> bool:
    """Reset this process's peak RSS (VmHWM; Linux >= 4.0). False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _own_peak_bytes() -> int:
    """This process's peak RSS since the last reset (VmHWM), 0 if unknown."""
    try:
        with open("/proc/self/status") as f:
            line = next((x for x in f if x.startswith("VmHWM:")), "")
    except OSError:
        return 0
    fields = line.split()  # "VmHWM:", "123456", "kB"
    return int(fields[1]) * 1024 if len(fields) == 3 and fields[1].isdigit() else 0


def _children_peak_bytes() -> int:
    """The largest peak RSS of any descendant that has ended and been waited for, over this
    process's life (the kernel's ``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def machine_info() -> dict[str, Any]:
    """Where a stage runs: ``{"cpus": 16, "gpu": "NVIDIA H200"}`` (``gpu`` None unless torch,
    already imported by the stage, has initialised CUDA)."""
    torch = sys.modules.get("torch")
    gpu = None
    if torch is not None and torch.cuda.is_initialized():
        gpu = torch.cuda.get_device_name()
    return {"cpus": os.cpu_count(), "gpu": gpu}


def machine_text(info: dict[str, Any]) -> str:
    """``machine_info()`` for people: "16 CPUs, NVIDIA H200" or "2 CPUs"."""
    text = f"{info['cpus']} CPUs"
    return f"{text}, {info['gpu']}" if info.get("gpu") else text


def machine() -> str:
    """This machine as ``machine_text`` writes it (the controller's log tags each row so)."""
    return machine_text(machine_info())


@contextlib.contextmanager
def measure_stage(run_dir: Path, stage: str) -> Iterator[dict[str, Any]]:
    """Time a stage and sample its process tree's memory; append the record on exit."""
    record: dict[str, Any] = {
        "stage": stage,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "finished": False,
    }
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], _tree_rss_bytes(os.getpid()))
            if stop.wait(SAMPLE_SECONDS):
                return

    release_freed_heap()  # what an earlier stage of this process freed but kept is not ours
    own_peak, children_before = _reset_own_peak(), _children_peak_bytes()
    sampler = threading.Thread(target=sample, daemon=True, name="stage-rss")
    sampler.start()
    t0 = time.monotonic()
    try:
        yield record
        record["finished"] = True
    finally:
        stop.set()
        sampler.join()
        record["seconds"] = round(time.monotonic() - t0, 1)
        own = _own_peak_bytes() if own_peak else 0
        children = _children_peak_bytes()
        ended = children if children > children_before else 0  # a child of this stage's, ended
        peak[0] = max(peak[0], own + ended)
        record["peak_rss_mb"] = round(peak[0] / 2**20, 1)
        info = machine_info()
        record.update(machine=machine_text(info), **info)
        path = RunLayout(Path(run_dir)).stage_log
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:  # append-only log: one line per run
            f.write(json.dumps(record) + "\n")


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    spans = sorted(
        (t := datetime.fromisoformat(r["started"]).timestamp(), t + r.get("seconds", 0.0))
        for r in runs
    )
    seconds, end = 0.0, float("-inf")
    for a, b in spans:  # the length of the union of [start, end] intervals
        seconds += max(0.0, b - max(a, end))
        end = max(end, b)
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": max(r.get("peak_rss_mb", 0.0) for r in runs),
        "runs": len(runs),
        "finished": bool(runs[-1].get("finished")),
    }


def _from_old_record(record: dict[str, Any]) -> dict[str, Any]:
    """``cpus`` and ``gpu`` from a ``machine`` string ("16 CPUs, NVIDIA H200" -> 16 and
    "NVIDIA H200"; None where it says nothing): the only reader of that string, for records
    older than the fields and the controller's log tags."""
    name = str(record.get("machine", "?"))
    head, _, gpu = name.partition(", ")
    count = (head.split() or ["?"])[0]
    return {"cpus": int(count) if count.isdigit() else None, "gpu": gpu or None}


def machine_facts(record: dict[str, Any]) -> dict[str, Any]:
    """A record's ``cpus`` and ``gpu``: its fields where it has them, else its ``machine``
    string's."""
    old = _from_old_record(record)
    return {key: record[key] if key in record else old[key] for key in ("cpus", "gpu")}


def machine_cpus(name: str) -> int | None:
    """The CPU count in a ``machine`` string ("16 CPUs, NVIDIA H200" -> 16), None if none; for
    the controller's log tags and records older than the ``cpus`` field."""
    return _from_old_record({"machine": name})["cpus"]


def machine_has_gpu(name: str) -> bool:
    """Whether a ``machine`` string names a GPU; for the controller's log tags and records
    older than the ``gpu`` field."""
    return _from_old_record({"machine": name})["gpu"] is not None


def _machine_key(record: dict[str, Any]) -> str:
    """The ``by_machine`` key of a record: its machine as ``machine_text`` writes it ("?" when
    the record says nothing of it)."""
    facts = machine_facts(record)
    if facts["cpus"] is None:
        return str(record.get("machine", "?"))
    return machine_text(facts)


def stage_totals(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per stage: wall seconds over all its runs (runs that overlapped, such as models trained
    side by side, count once), the largest peak RSS, runs, finished (its last run), and the
    same per machine under ``by_machine`` (keyed by ``machine_text``; "?" for records older
    than any machine field), each with its ``cpus`` and ``gpu`` (None if unknown)."""
    path = RunLayout(Path(run_dir)).stage_log
    records: dict[str, list[dict[str, Any]]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            records.setdefault(r["stage"], []).append(r)
    totals: dict[str, dict[str, Any]] = {}
    for stage, runs in records.items():
        machines: dict[str, list[dict[str, Any]]] = {}
        for r in runs:
            machines.setdefault(_machine_key(r), []).append(r)
        totals[stage] = {
            **_summarise(runs),
            "by_machine": {
                m: {**_summarise(rs), **machine_facts(rs[-1])} for m, rs in machines.items()
            },
        }
    return totals
