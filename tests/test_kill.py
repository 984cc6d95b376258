"""kill -9 of the real trainers (issue 17): ``mdnworld train-vae``, ``train-rnn`` and
``train-controller`` killed with SIGKILL at a random instant and while a checkpoint is being
written (the moment its temp or pending file appears) resume to the uninterrupted result: the
same final weights, bit-exact (same device, one thread), and no temp file left behind.

After every kill the checkpoint on disk must load (a kill between the two files of a weights
pair used to block every rerun). Tiny runs on copies of conftest's real episodes and latents;
the trainers run as ``python -m mdnworld`` subprocesses, as a user runs them."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mdnworld.checkpoints import load_weights
from mdnworld.layout import RunLayout

pytestmark = pytest.mark.slow

SEED = random.randrange(2**32)
"""Draws the random kill instants of this session (printed with what each kill hit)."""

TEMP = re.compile(r"^\..*(\.tmp|\.tmp\..*|\.pending)$")
"""What a killed writer can leave (io.atomic_open's temp files, io.write_pair's pending)."""


def _flags(**options: object) -> list[str]:
    """Command-line flags; every run here is on the CPU with one thread (bit-exact resume)."""
    out = []
    for key, value in {**options, "device": "cpu", "threads": 1}.items():
        out += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return out


def _cli(stage: str, run: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "mdnworld", stage, str(run), *flags]


def _finish(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stderr[-3000:]}"


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def kill_at_random(cmd: list[str], seconds: float, rng: random.Random) -> str:
    """Start ``cmd`` and SIGKILL it at a random instant within its first ``seconds`` (the
    wall time of the same run uninterrupted)."""
    proc = _start(cmd)
    at = rng.uniform(0.1, 0.7) * seconds
    try:
        proc.wait(timeout=at)
        return f"finished before {at:.2f} s"
    except subprocess.TimeoutExpired:
        _kill(proc)
        return f"killed at {at:.2f} s"


SLOW_RENAMES = f"""
import os, re, sys, time
from mdnworld.cli import main
_replace, temp = os.replace, re.compile({TEMP.pattern!r})
def replace(src, dst, *args, **kwargs):
    if temp.match(os.path.basename(str(src))):
        time.sleep(0.05)  # the temp or pending file lives long enough to be seen and killed
    return _replace(src, dst, *args, **kwargs)
os.replace = replace
sys.exit(main(sys.argv[1:]))
"""
"""A ``python -c`` preamble that delays every rename of a temp or pending file by 50 ms, so
that a poller on a loaded machine cannot miss the instant between a pair's writes (what is
written, and in which order, does not change)."""


def kill_in_write(cmd: list[str], folder: Path, names: str) -> str:
    """Start ``cmd`` and SIGKILL it as soon as a temp or pending file whose name matches
    ``names`` (a regex) appears in ``folder``: in the middle of writing that file's pair."""
    pattern = re.compile(names)
    assert cmd[1:3] == ["-m", "mdnworld"], cmd
    proc = _start([cmd[0], "-c", SLOW_RENAMES, *cmd[3:]])
    try:
        while proc.poll() is None:
            try:
                seen = [n for n in os.listdir(folder) if TEMP.match(n) and pattern.search(n)]
            except FileNotFoundError:
                seen = []
            if seen:
                _kill(proc)
                return f"killed while {seen[0]} existed"
            time.sleep(0.0005)
    finally:
        if proc.poll() is None:
            _kill(proc)
    pytest.fail(f"{cmd} ended (exit {proc.returncode}) before a file {names} appeared in {folder}")


def kills_in_write(
    cmd: list[str], folder: Path, patterns: list[str], pairs: list[Path]
) -> list[str]:
    """``cmd`` killed once per pattern (``kill_in_write``), each time rerun; after each kill
    the weights ``pairs`` load."""
    events = []
    for names in patterns:
        events.append(kill_in_write(cmd, folder, names))
        assert_loadable(*pairs)
    return events


def assert_loadable(*paths: Path) -> None:
    """What a kill left loads: a pair whose JSON exists (the stages' "saved" marker) reads as
    one whole save."""
    for path in paths:
        if path.with_suffix(".json").exists():
            load_weights(path)


def assert_same_weights(a: Path, b: Path) -> None:
    (wa, ma), (wb, mb) = load_weights(a), load_weights(b)
    assert wa.keys() == wb.keys(), b
    assert all(torch.equal(wa[k], wb[k]) for k in wa), f"{b}: not bit-exact"
    assert ma == mb, b


def assert_no_temps(*folders: Path) -> None:
    for folder in folders:
        assert not [p.name for p in folder.iterdir() if TEMP.match(p.name)], folder


def _copy(src: Path, dest: Path, *subs: str) -> Path:
    for sub in subs:
        shutil.copytree(src / sub, dest / sub)
    return dest


def _in_background(cmd: list[str]) -> Callable[[], float]:
    """Start ``cmd`` (the uninterrupted run, beside the killed one); the function returned
    waits for it to succeed and gives its wall time in seconds."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait() -> float:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{err[-3000:]}"
        return time.monotonic() - t0

    return wait


def killed_and_resumed(
    cmd: Callable[[Path], list[str]],
    runs: tuple[Path, Path, Path],
    pick: Callable[[RunLayout], tuple[Path, list[str], list[Path]]],
    seed: int,
) -> None:
    """Run ``cmd`` on three copies: ``a`` uninterrupted; ``b`` killed in the writes that
    ``pick`` names (its folder, temp-name patterns, weights pairs), then finished; ``c`` killed
    at a random instant, then finished. The caller compares b and c with a."""
    a, b, c = runs
    uninterrupted = _in_background(cmd(a))
    folder, patterns, pairs = pick(RunLayout(b))
    events = kills_in_write(cmd(b), folder, patterns, pairs)
    finish_b = _in_background(cmd(b))
    events.append(kill_at_random(cmd(c), uninterrupted(), random.Random(seed)))
    assert_loadable(*pick(RunLayout(c))[2])
    print(f"seed {seed}: {events}")
    _finish(cmd(c))
    finish_b()


# --- V ---

VAE_FLAGS = _flags(
    epochs=1,
    batch_size=64,
    val_fraction=0.5,
    val_frames=64,
    grid_frames=2,
    checkpoint_every=3,
    log_every=2,
)


def _vae(run: Path) -> list[str]:
    return _cli("train-vae", run, *VAE_FLAGS)


def test_train_vae_killed_anywhere_resumes_exactly(small_run: Path, tmp_path: Path) -> None:
    a, b, c = (_copy(small_run, tmp_path / name, "episodes") for name in "abc")

    def pick(run: RunLayout) -> tuple[Path, list[str], list[Path]]:
        # killed writing the new tensors (before the commit), then between the commit and
        # the rename (a first save has no pending file: the second run meets one)
        patterns = [r"checkpoint\.safetensors.*\.tmp$", r"^\.checkpoint\..*\.pending$"]
        return run.vae_dir, patterns, [run.vae_checkpoint.with_suffix(".safetensors")]

    killed_and_resumed(_vae, (a, b, c), pick, SEED)
    for run in (b, c):
        assert_same_weights(RunLayout(a).vae_model, RunLayout(run).vae_model)
        assert_no_temps(RunLayout(run).vae_dir)


# --- M ---

RNN_FLAGS = _flags(
    hidden=16,
    n_components=2,
    epochs=3,
    patience=0,
    batch_size=32,
    done_head=True,
    checkpoint_every=1,
    log_every=2,
)


def _rnn(run: Path) -> list[str]:
    return _cli("train-rnn", run, *RNN_FLAGS)


def test_train_rnn_killed_anywhere_resumes_exactly(encoded: Path, tmp_path: Path) -> None:
    a, b, c = (_copy(encoded, tmp_path / name, "latents") for name in "abc")

    def pick(run: RunLayout) -> tuple[Path, list[str], list[Path]]:
        # best.* first (the first epoch's end always writes it, later ones only on a new
        # best), then a checkpoint's JSON, then any pending file
        patterns = [r"^\.best\.", r"^\.checkpoint\.json\..*\.tmp$", r"\.pending$"]
        pairs = [run.rnn_checkpoint(0).with_suffix(".safetensors"), run.rnn_best(0)]
        return run.rnn_model_dir(0), patterns, pairs

    killed_and_resumed(_rnn, (a, b, c), pick, SEED + 1)
    for other in (b, c):
        for which in (RunLayout.rnn_model, RunLayout.rnn_best):
            assert_same_weights(which(RunLayout(a), 0), which(RunLayout(other), 0))
        assert_no_temps(RunLayout(other).rnn_model_dir(0))


# --- C ---


@pytest.fixture(scope="module")
def m_run(encoded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small M with a done head on a copy of the real latents (read-only: tests copy it)."""
    from mdnworld.config import RNNConfig
    from mdnworld.train.rnn import train_rnn

    run = _copy(encoded, tmp_path_factory.mktemp("m_run"), "vae", "latents")
    cfg = RNNConfig(hidden=16, n_components=2, epochs=1, patience=0, batch_size=32,
                    done_head=True, device="cpu", threads=1)  # fmt: skip
    train_rnn(run, cfg, log=lambda s: None)
    return run


def _controller(run: Path, generations: int) -> list[str]:
    flags = _flags(
        popsize=6, rollouts=2, generations=generations, eval_every=0, workers=1, max_steps=100
    )
    return _cli("train-controller", run, *flags)


def test_train_controller_killed_anywhere_resumes_exactly(m_run: Path, tmp_path: Path) -> None:
    """Killed while saving the controller; in the last generation while saving its best
    candidate, then its CMA-ES state (the last file a generation writes); at random: the
    same CMA-ES state and weights."""
    a, b, c = (_copy(m_run, tmp_path / name, "vae", "latents", "rnn") for name in "abc")
    uninterrupted = _in_background(_controller(a, 3))
    run = RunLayout(b)
    pairs = [run.controller_weights("mean"), run.controller_weights("best")]
    events = kills_in_write(_controller(b, 2), run.controller_dir, [r"^\.controller\."], pairs)
    _finish(_controller(b, 2))
    # generation 3 is the last: each of these runs runs it alone
    events += kills_in_write(
        _controller(b, 3), run.controller_dir, [r"^\.best\.", r"^\.cmaes_state\."], pairs
    )
    finish_b = _in_background(_controller(b, 3))
    events.append(kill_at_random(_controller(c, 3), uninterrupted(), random.Random(SEED + 2)))
    print(f"seed {SEED + 2}: {events}")
    _finish(_controller(c, 3))
    finish_b()
    for other in (RunLayout(b), RunLayout(c)):
        for which in ("mean", "best"):
            assert_same_weights(
                RunLayout(a).controller_weights(which), other.controller_weights(which)
            )
        with np.load(RunLayout(a).controller_state) as sa, np.load(other.controller_state) as sb:
            assert sa.files == sb.files
            assert all(np.array_equal(sa[k], sb[k]) for k in sa.files)
        assert_no_temps(other.controller_dir)
