"""Shared fixtures. Everything here uses the real game: episodes are short and few, not fake.

Two tiers (the ``slow`` marker is registered in pyproject.toml):

- ``pytest -m "not slow"`` (``make test-fast``): pure maths and small files, under a minute, and
  no game for the pure-math tests. This file therefore imports nothing that plays the game or
  trains at import time: the fixtures import what they need when they run.
- ``pytest`` (``make test``, what CI runs): everything.

A test is slow when it plays the real game, trains a model for more than a few seconds, drives a
browser, or uses a fixture that does. Those using ``small_run`` or ``encoded`` (directly or
through another fixture) are marked here; the others carry ``@pytest.mark.slow``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# fixtures below that play the game (and train): any test that needs one is slow
SLOW_FIXTURES = frozenset({"small_run", "encoded", "full_run"})

# One OpenMP thread for the tests' own small tensors, set before anything imports torch: with two,
# a busy 2-core machine spin-waits (a 150-step Adam test: 2 s alone, 20 s beside another job).
# Training code sets its own count (device.prepare_cpu); a value in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# torch.compile off (rnn.compile "auto" would compile each tiny M for seconds more than it trains);
# tests/test_compile.py switches it back on to check the compiled path against the plain one.
os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with 4 real random-policy episodes (seeds 0..3), generated once."""
    from mdnworld.config import GenerateConfig
    from mdnworld.data.generate import generate

    run = tmp_path_factory.mktemp("small_run")
    generate(run, GenerateConfig(episodes=4, workers=2), log=lambda s: None)
    return run


@pytest.fixture(scope="session")
def encoded(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 4 real episodes of ``small_run`` encoded by a VAE trained for one short epoch (on
    two of them, to keep the test quick): real latents, not made up."""
    from mdnworld.config import EncodeConfig, VAEConfig
    from mdnworld.data.episodes import episode_files
    from mdnworld.train.encode import encode_run
    from mdnworld.train.vae import train_vae

    root = tmp_path_factory.mktemp("encoded_run")
    files = episode_files(small_run)
    (root / "vae_run" / "episodes").mkdir(parents=True)
    for p in (files[1], files[3]):
        shutil.copy(p, root / "vae_run" / "episodes" / p.name)
    vae_cfg = VAEConfig(
        epochs=1, batch_size=64, val_frames=64, grid_frames=2, device="cpu", threads=1
    )
    quiet = {"log": lambda s: None}
    train_vae(root / "vae_run", vae_cfg, **quiet)
    run = root / "run"
    shutil.copytree(small_run / "episodes", run / "episodes")
    shutil.copytree(root / "vae_run" / "vae", run / "vae")
    encode_run(run, EncodeConfig(device="cpu", threads=1), **quiet)
    return run


TINY = """run_dir = "{run}"
[generate]
episodes = 3
workers = 1
[vae]
epochs = 1
batch_size = 64
val_frames = 64
[rnn]
epochs = 2
hidden = 32
models = 2
threads = 1
done_head = true
[dream]
dreams = 2
steps = 12
warmup = 3
[analyze]
a_warmup = 5
a_steps = 10
b_dreams = 2
b_steps = 40
n_shifts = 50
c_tests = 2
c_steps = 20
c_start = 5
[controller]
popsize = 4
rollouts = 2
generations = 2
select_top = 2
select_rollouts = 4
eval_every = 1
eval_episodes = 1
workers = 1
max_steps = 100
[evaluate]
episodes = 2
workers = 1
max_steps = 100
"""


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole (tiny) real pipeline run: episodes to the controller's real-game scores (shared by
    the report and the play page tests)."""
    from mdnworld.config import load_config
    from mdnworld.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("report_full")
    cfg_file = root / "tiny.toml"
    cfg_file.write_text(TINY.format(run=root / "run"))
    cfg = load_config(cfg_file)
    run_pipeline(Path(cfg.run_dir), cfg, log=lambda s: None)
    return Path(cfg.run_dir)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark slow every test that needs a game-playing fixture, however indirectly
    (``fixturenames`` is the closure over the fixtures' own fixtures)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
