"""The component colours shared by dream videos, analysis figures and the report (a leaf)."""

from __future__ import annotations

import numpy as np

COLOURS = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
     [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    dtype=np.uint8,
)  # fmt: skip
"""Matplotlib's tab10, one colour per component (shared with the analysis figures)."""


def component_colour(k: int) -> np.ndarray:
    return COLOURS[k % len(COLOURS)]
