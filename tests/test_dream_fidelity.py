"""benchmarks/dream_fidelity.py's time-matched real rate: the real frames' rate per bin of
steps, weighted as the dream's frames fall into the bins."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from dream_fidelity import TIME_BINS, time_matched  # noqa: E402


def test_time_matched_weights_each_bin_as_the_dream_fills_it() -> None:
    # real play: a wall on no frame before step 100, on every frame from step 600 on
    steps = np.array([0, 50, 99, 150, 250, 350, 450, 550, 650, 900, 2000])
    labels = np.zeros((11, 4), bool)
    labels[8:, 2] = True
    assert labels.mean(0)[2] == pytest.approx(3 / 11)  # the plain rate
    at = np.arange(1000)  # a dream of 1000 steps: 10 % in each of the first six bins, 40 % late
    assert time_matched(labels, steps, at)[2] == pytest.approx(0.4)
    assert time_matched(labels, steps, np.arange(100))[2] == 0.0  # only the first 100 steps
    assert TIME_BINS[0] == 0 and TIME_BINS[-1] == 600


def test_a_dream_bin_without_real_frames_is_an_error() -> None:
    with pytest.raises(SystemExit, match="no real frame in the bins of steps from \\[100\\]"):
        time_matched(np.zeros((2, 4), bool), np.array([0, 700]), np.arange(150))
