"""Numbers as text, shared by every renderer: the HTML report, RESULTS.md, the analyses'
summary.md and the terminal tables (a leaf module: the standard library only)."""

from __future__ import annotations

import math
from typing import Any


def is_number(x: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x: Any, spec: str = ".4g") -> str:
    """A number as text: None and NaN are shown as —; a float as ``format(x, spec)``; spec "d"
    rounds to an int, "id" too without thousands separators (seeds, indices); other ints get
    thousands separators; a bool is yes or no; anything else is ``str(x)``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if spec == "d" and is_number(x):
        return f"{round(x):,}"
    if spec == "id" and is_number(x):  # seeds, indices: no thousands separators
        return str(round(x))
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)
