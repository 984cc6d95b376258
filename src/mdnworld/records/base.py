"""What every reader shares: key access that names the file and the key, the error mapping
(a missing file: ``MissingError``; anything else wrong: ``DataError``), and JSONL log rows."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mdnworld.errors import DataError, MissingError

T = TypeVar("T")


class Doc:
    """One JSON object of a file; ``doc[key]`` names the file and the key when it is absent."""

    def __init__(self, data: Any, path: Path | str, where: str = "") -> None:
        if not isinstance(data, dict):
            what = f"key {where!r}" if where else "the file"
            raise DataError(f"{path}: {what} is not a JSON object")
        self.data, self.path, self.where = data, path, where

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def __getitem__(self, key: str) -> Any:
        if key not in self.data:
            raise DataError(f"{self.path}: no key {self.key(key)!r}")
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def obj(self, key: str) -> Doc:
        return Doc(self[key], self.path, self.key(key))

    def objs(self, key: str) -> list[Doc]:
        items = self[key]
        if not isinstance(items, list):
            raise DataError(f"{self.path}: key {self.key(key)!r} is not a JSON list")
        return [Doc(x, self.path, f"{self.key(key)}[{n}]") for n, x in enumerate(items)]


def parse(fields: Callable[[Doc], T], data: Any, source: Path | str) -> T:
    """``fields(Doc(data))``; any KeyError, TypeError, ... inside becomes a DataError naming
    ``source``."""
    try:
        return fields(Doc(data, source))
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise DataError(f"{source}: {type(e).__name__}: {e}") from None


def read(path: Path | str, fields: Callable[[Doc], T]) -> T:
    """``fields`` over the JSON file ``path``: ``MissingError`` if it is not there,
    ``DataError`` (naming the file, and the key where one is to blame) if it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingError(f"{path}: file not found") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    return parse(fields, data, path)


def read_log_rows(path: Path | str) -> list[dict[str, Any]]:
    """The rows (JSON objects) of a ``log.jsonl``; a line that does not parse (one being
    appended, or cut by a stop) is skipped."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise MissingError(f"{path}: file not found") from None
    rows = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            row = json.loads(line)
            if isinstance(row, dict):
                rows.append(row)
    return rows


def dedupe(rows: Iterable[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    """The last row for each value of ``key`` (a resumed run logs some steps twice), sorted."""
    last: dict[Any, dict] = {}
    for r in rows:
        if key in r:
            last[r[key]] = dict(r)
    return [last[k] for k in sorted(last)]
