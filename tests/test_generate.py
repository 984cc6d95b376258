"""`generate` on the real game: worker-count independence, resume, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mdnworld.config import GenerateConfig
from mdnworld.data.episodes import episode_files, load_episode
from mdnworld.data.generate import GenerateError, generate
from mdnworld.io import read_json

pytestmark = pytest.mark.slow  # every test here plays the real game

QUIET = {"log": lambda s: None}


def _bytes(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in episode_files(run)}


def test_one_and_two_workers_byte_identical(small_run: Path, tmp_path: Path) -> None:
    generate(tmp_path, GenerateConfig(episodes=4, workers=1), **QUIET)
    assert _bytes(tmp_path) == _bytes(small_run)
    assert len(_bytes(small_run)) == 4


def test_episode_contents(small_run: Path) -> None:
    man = read_json(small_run / "episodes" / "manifest.json")
    assert [e["index"] for e in man["episodes"]] == [0, 1, 2, 3]
    for entry, path in zip(man["episodes"], episode_files(small_run), strict=True):
        ep = load_episode(path)
        assert len(ep) == entry["length"] and ep.seed == entry["seed"]
        assert ep.dones[-1] != entry["truncated"]


def test_resume_skips_finished_and_extends(small_run: Path, tmp_path: Path) -> None:
    generate(tmp_path, GenerateConfig(episodes=2, workers=1), **QUIET)
    before = {p: p.stat().st_mtime_ns for p in episode_files(tmp_path)}
    summary = generate(tmp_path, GenerateConfig(episodes=4, workers=2), **QUIET)
    assert summary.skipped == 2 and summary.generated == 2
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # not rewritten
    assert _bytes(tmp_path) == _bytes(small_run)


def test_resume_refuses_other_content_settings(small_run: Path, tmp_path: Path) -> None:
    generate(tmp_path, GenerateConfig(episodes=1, workers=1), **QUIET)
    with pytest.raises(GenerateError, match="base_seed"):
        generate(tmp_path, GenerateConfig(episodes=1, workers=1, base_seed=7), **QUIET)


def test_resume_without_manifest_reads_seeds_from_the_files(
    small_run: Path, tmp_path: Path
) -> None:
    """A kill can leave finished files and no manifest: the manifest is rebuilt from the files,
    and a base_seed they do not hold is refused, naming the file."""
    man = read_json(small_run / "episodes" / "manifest.json")
    (tmp_path / "episodes").mkdir()
    for p in episode_files(small_run):
        (tmp_path / "episodes" / p.name).write_bytes(p.read_bytes())
    with pytest.raises(GenerateError, match="holds seed 0, but episode 0 of base_seed 100") as e:
        generate(tmp_path, GenerateConfig(episodes=4, base_seed=100), **QUIET)
    assert "ep_000000.npz" in str(e.value)
    summary = generate(tmp_path, GenerateConfig(episodes=4), **QUIET)
    assert summary.skipped == 4 and summary.generated == 0
    assert read_json(tmp_path / "episodes" / "manifest.json")["episodes"] == man["episodes"]


def test_truth_run_same_frames_and_refuses_mixing(small_run: Path, tmp_path: Path) -> None:
    """``truth=True`` stores the truth arrays beside byte-identical episode arrays; a run is
    never resumed with the other setting (files with and without truth would mix)."""
    generate(tmp_path, GenerateConfig(episodes=2, workers=1, truth=True), **QUIET)
    for plain, labelled in zip(episode_files(small_run), episode_files(tmp_path), strict=False):
        a, b = load_episode(plain), load_episode(labelled)
        assert a.truth is None and b.truth is not None and len(b.truth["truth_hit"]) == len(b)
        for key in ("frames", "actions", "rewards", "dones"):
            assert getattr(a, key).tobytes() == getattr(b, key).tobytes()
    with pytest.raises(GenerateError, match="truth=True, not False"):
        generate(tmp_path, GenerateConfig(episodes=2, workers=1), **QUIET)
    (tmp_path / "episodes" / "manifest.json").unlink()  # now only the files can tell
    with pytest.raises(GenerateError, match="ep_000000.npz: generated with truth"):
        generate(tmp_path, GenerateConfig(episodes=2, workers=1), **QUIET)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mdnworld.cli", *args]


def _wait_for_files(run: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.time()
    while len(episode_files(run)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "generate made no progress"
        time.sleep(0.05)


def _worker_pids(parent: int) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmd:
            pids.append(int(d.name))
    return pids


def test_resume_after_kill(small_run: Path, tmp_path: Path) -> None:
    """Kill the whole process group mid-run (like a machine stop), then run again."""
    long = GenerateConfig(episodes=4, workers=1)
    proc = subprocess.Popen(
        _cli("generate", str(tmp_path), "--episodes", "30", "--workers", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_for_files(tmp_path, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # the workers lead process groups of their own and notice the dead parent within 0.5 s
    # (they poll); until then one may still finish an episode, so let them go first
    time.sleep(1.5)
    n_before = len(episode_files(tmp_path))
    assert 2 <= n_before < 30
    summary = generate(tmp_path, long, **QUIET)
    assert summary.skipped == min(n_before, 4)
    assert _bytes(tmp_path) == {
        **_bytes(small_run),
        **{k: v for k, v in _bytes(tmp_path).items() if k not in _bytes(small_run)},
    }
    for name, data in _bytes(small_run).items():
        assert (tmp_path / "episodes" / name).read_bytes() == data
    assert not list((tmp_path / "episodes").glob(".*.tmp"))


@pytest.mark.parametrize("retries", [0, 1])
def test_killed_worker_fails_loudly_or_retries(tmp_path: Path, retries: int) -> None:
    proc = subprocess.Popen(
        _cli(
            "generate",
            str(tmp_path),
            "--episodes",
            "12",
            "--workers",
            "1",
            "--retries",
            str(retries),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_files(tmp_path, 1, proc)
    workers = _worker_pids(proc.pid)
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    if retries == 0:
        assert proc.returncode == 2, (out, err)
        assert "episode" in err and "worker process died" in err
        assert len(episode_files(tmp_path)) < 12
    else:
        assert proc.returncode == 0, (out, err)
        assert "retrying" in out + err
        assert len(episode_files(tmp_path)) == 12
        assert all(np.isfinite(load_episode(p).actions).all() for p in episode_files(tmp_path))


def test_worker_saves_behind_the_game_and_names_a_failed_save(tmp_path: Path) -> None:
    """A worker returns an episode's entry while its thread still writes the file; the next
    episode (or the worker's exit) waits for that save, and a failed save names its episode."""
    from concurrent.futures import ThreadPoolExecutor

    from mdnworld.data import generate as g
    from mdnworld.data.generate import play_episode
    from mdnworld.env.take_cover import TakeCoverEnv

    env = TakeCoverEnv(preprocess=False)
    g._ENV, g._THREADS = env, ThreadPoolExecutor(1)
    try:
        entry = g._run_episode(0, 5, str(tmp_path))
        g._wait_for_save()
        saved = load_episode(tmp_path / "episodes" / "ep_000000.npz")
        plain = TakeCoverEnv()  # preprocesses every screen itself
        inline, truncated = play_episode(plain, 5)
        plain.close()
        assert entry == {"index": 0, "seed": 5, "length": len(inline), "truncated": truncated}
        assert np.array_equal(saved.frames, inline.frames)
        assert np.array_equal(saved.actions, inline.actions)
        (tmp_path / "blocked").write_text("a file where the episodes folder should be")
        g._run_episode(1, 6, str(tmp_path / "blocked"))
        with pytest.raises(RuntimeError, match="saving episode 1 failed"):
            g._wait_for_save()
    finally:
        g._THREADS.shutdown()
        g._ENV, g._THREADS, g._SAVING = None, None, None
        env.close()
