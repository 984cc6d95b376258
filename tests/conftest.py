"""Shared fixtures. Everything here uses the real game: episodes are short and few, not fake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mdnworld.config import GenerateConfig
from mdnworld.data.generate import generate


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with 4 real random-policy episodes (seeds 0..3), generated once."""
    run = tmp_path_factory.mktemp("small_run")
    generate(run, GenerateConfig(episodes=4, workers=2), log=lambda s: None)
    return run


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
