"""What the fuzz tests share (``test_fuzz.py``, ``test_fuzz_state.py``): hypothesis settings,
byte corruptions of a file, JSON mutations of a document, and the property every loader must
keep: what loads equals what was written, or a ``UserError`` names the file."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from mdnworld.errors import UserError

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=25)

_n = itertools.count()


def fresh(tmp_path: Path) -> Path:
    """A new folder per hypothesis example (the fixture's tmp_path is shared by all)."""
    d = tmp_path / f"x{next(_n)}"
    d.mkdir()
    return d


# --- corruptions ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Corruption:
    """Byte edits, printed short when hypothesis reports a failing example."""

    kind: str  # "flip": (position, xor) pairs; "zero": (start, length); "truncate": (length,)
    edits: tuple

    def __call__(self, data: bytes) -> bytes:
        out = bytearray(data)
        if self.kind == "truncate":
            return bytes(out[: self.edits[0]])
        if self.kind == "zero":
            a, k = self.edits
            out[a : a + k] = bytes(len(out[a : a + k]))
            return bytes(out)
        for at, xor in self.edits:
            out[at] ^= xor
        return bytes(out)


@st.composite
def corruption(draw: st.DrawFn, n: int, hot: tuple[int, ...] = ()) -> Corruption:
    """1-3 bytes flipped, a range zeroed, or a cut, in a file of ``n`` bytes. Positions favour
    ``hot`` (where a zip member's header starts) and the end (the zip's central directory)."""

    def pos() -> int:
        where = draw(st.sampled_from(["any", "hot", "end"] if hot else ["any", "end"]))
        if where == "hot":
            return min(n - 1, draw(st.sampled_from(hot)) + draw(st.integers(0, 160)))
        if where == "end":
            return n - draw(st.integers(1, min(n, 400)))
        return draw(st.integers(0, n - 1))

    kind = draw(st.sampled_from(["flip", "zero", "truncate"]))
    if kind == "truncate":
        return Corruption(kind, (pos(),))
    if kind == "zero":
        return Corruption(kind, (pos(), draw(st.integers(1, 64))))
    flips = tuple((pos(), draw(st.integers(1, 255))) for _ in range(draw(st.integers(1, 3))))
    return Corruption(kind, flips)


class Blob:
    """A valid file's bytes and where its zip members start (short repr for reports)."""

    def __init__(self, data: bytes, hot: tuple[int, ...] = (), extra: Any = None) -> None:
        self.data, self.hot, self.extra = data, hot, extra

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes>"

    def corrupted(self, draw: st.DataObject) -> bytes:
        return draw.draw(corruption(len(self.data), self.hot))(self.data)


def zip_hot(path: Path) -> tuple[int, ...]:
    """Where each member's local header starts, and the central directory."""
    with zipfile.ZipFile(path) as zf:
        return (*(i.header_offset for i in zf.infolist()), zf.start_dir)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=5,
)  # fmt: skip
"""Any JSON value (NaN and infinities included: Python's json writes and reads them)."""


def json_places(doc: Any, at: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON document: () for the whole, then keys and indices."""
    yield at
    if isinstance(doc, dict | list):
        items = doc.items() if isinstance(doc, dict) else enumerate(doc)
        for k, v in items:
            yield from json_places(v, (*at, k))


@st.composite
def mutation(draw: st.DrawFn, doc: Any, keep: tuple[str, ...] = ()) -> Any:
    """``doc`` with one value replaced by any JSON value, or one key or item deleted (never a
    top-level key in ``keep``)."""
    places = [p for p in json_places(doc) if not (p and p[0] in keep)]
    place = draw(st.sampled_from(places))
    new = copy.deepcopy(doc)
    if not place:
        return draw(JSON)
    parent = new
    for k in place[:-1]:
        parent = parent[k]
    if draw(st.booleans()):
        del parent[place[-1]]
    else:
        parent[place[-1]] = draw(JSON)
    return new


def named(e: UserError, *paths: Path) -> bool:
    return any(p.name in str(e) for p in paths)


def same(a: Any, b: Any) -> bool:
    """Equal, arrays by dtype, shape and bytes (NaN equal to NaN)."""
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and same(a.numpy(), b.numpy())
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and (
            a.tobytes() == b.tobytes())  # fmt: skip
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and same(dataclasses.asdict(a), dataclasses.asdict(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and isinstance(b, float) and
                      math.isnan(b))  # fmt: skip


def loads_the_same_or_names(
    load: Callable[[Path], Any], path: Path, original: Any, names: tuple[Path, ...] = ()
) -> None:
    """The property: ``load(path)`` equals ``original``, or raises a UserError naming it (or
    one of ``names``: the file beside it that is to blame)."""
    try:
        got = load(path)
    except UserError as e:
        assert named(e, path, *names), f"{type(e).__name__} does not name {path.name}: {e}"
        return
    assert same(got, original), f"{path.name} loaded, but not as written"


def corrupt_file(tmp_path: Path, name: str, bad: bytes) -> Path:
    path = fresh(tmp_path) / name
    path.write_bytes(bad)
    return path
