"""benchmarks/committed_by_model.py: analysis C on every M of a run, kept and read back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[1] / "benchmarks" / "committed_by_model.py"


@pytest.mark.slow
def test_every_model_gets_c_with_both_detector_sets(full_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"  # a copy: C rewrites analysis/committed, which other tests read
    shutil.copytree(full_run, run, ignore=shutil.ignore_patterns("report", "evaluate"))
    work, out = tmp_path / "work", tmp_path / "c.json"
    cmd = [sys.executable, str(BENCHMARK), f"tiny={run}", "--config",
           str(full_run.parent / "tiny.toml"), "--work", str(work), "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    models = json.loads(out.read_text())["models"]["tiny"]
    assert sorted(models) == ["model_0", "model_1"]
    for model, by_detectors in models.items():
        assert sorted(by_detectors) == ["spec", "validated"]
        kept = json.loads((work / "tiny" / f"{model}_validated.json").read_text())
        assert kept["model"] == int(model[-1]) and kept["detectors"] == "validated"
        for cls in ("explosion", "fireball"):
            lead = by_detectors["validated"][cls]
            assert lead["frames"] >= lead["others_max"]
            frames = kept["median_frames"][lead["component"]][cls.capitalize()]
            assert frames == lead["frames"]
    stamps = {p: p.stat().st_mtime_ns for p in work.rglob("*.json")}
    again = subprocess.run(cmd, capture_output=True, text=True)  # read back, not run again
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in work.rglob("*.json")} == stamps
    assert json.loads(out.read_text())["models"]["tiny"] == models
    bad = subprocess.run([*cmd[:2], str(run), *cmd[3:]], capture_output=True, text=True)
    assert bad.returncode == 2 and "give TAG=RUN_DIR" in bad.stderr
