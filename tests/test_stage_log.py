"""Stage wall time and peak memory (stage_log.py): children count, failures are recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mdnworld.stage_log import STAGE_LOG, measure_stage, stage_totals


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
