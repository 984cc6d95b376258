"""What every reader shares: key access that names the file and the key, the error mapping
(a missing file: ``MissingError``; anything else wrong: ``DataError``), the check of every
record's values against its dataclass's types, and JSONL log rows."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import types
import typing
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

    def typed(self, key: str, typ: Any) -> Any:
        """``self[key]``, a DataError naming the file and key unless it is a ``typ``."""
        if mistyped(value := self[key], typ):
            raise DataError(f"{self.path}: key {self.key(key)!r} is {value!r}, expected "
                            f"{_name(typ)}")  # fmt: skip
        return value

    def obj(self, key: str) -> Doc:
        return Doc(self[key], self.path, self.key(key))

    def objs(self, key: str) -> list[Doc]:
        items = self[key]
        if not isinstance(items, list):
            raise DataError(f"{self.path}: key {self.key(key)!r} is not a JSON list")
        return [Doc(x, self.path, f"{self.key(key)}[{n}]") for n, x in enumerate(items)]


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where and key != "" else str(where or key)


def mistyped(value: Any, typ: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """The first value inside ``value`` that is not of type ``typ`` (int, float, str, bool,
    None, ``X | Y``, ``tuple[X, ...]``, ``list[X]``, ``dict[K, V]``, ``Any`` or a record
    dataclass, whose fields are checked in turn): (its dotted key, it, the type it should
    have); None if all fit. A float field takes an int (JSON writes 1.0 as 1), an int field
    never a bool. A
    record's ``KEYS`` (a class attribute) maps a field to its key in the file where the two
    differ ("" for a field whose entries sit at the record's own level)."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if typ is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if value is None and len(rest) < len(args):
            return None
        if len(rest) == 1:  # X | None: the key inside X that is wrong
            bad = mistyped(value, rest[0], where)
            return (where, value, typ) if bad and bad[0] == where else bad
        return None if any(mistyped(value, a) is None for a in rest) else (where, value, typ)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, typ):
            return (where, value, typ)
        keys, hints = getattr(typ, "KEYS", {}), typing.get_type_hints(typ)
        for f in dataclasses.fields(typ):
            bad = mistyped(getattr(value, f.name), hints[f.name],
                           _join(where, keys.get(f.name, f.name)))  # fmt: skip
            if bad:
                return bad
        return None
    if origin in (tuple, list, dict):
        if not isinstance(value, origin):
            return (where, value, typ)
        items = value.items() if origin is dict else enumerate(value)
        for k, v in items:
            bad = mistyped(v, args[-1] if origin is dict else args[0],
                           _join(where, k) if origin is dict else f"{where}[{k}]")  # fmt: skip
            if bad:
                return bad
        return None
    leaf = {int: (int,), float: (int, float), str: (str,), bool: (bool,), type(None): (type(None),)}
    ok = isinstance(value, leaf[typ]) and (typ is bool or not isinstance(value, bool))
    return None if ok else (where, value, typ)


def parse(fields: Callable[[Doc], T], data: Any, source: Path | str) -> T:
    """``fields(Doc(data))``, a record checked against its types (``mistyped``); any
    KeyError, TypeError, ... inside, or a value of the wrong type, becomes a DataError naming
    ``source`` (and the key)."""
    try:
        out = fields(Doc(data, source))
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        raise DataError(f"{source}: {type(e).__name__}: {e}") from None
    bad = mistyped(out, type(out)) if dataclasses.is_dataclass(out) else None
    if bad:
        key, value, typ = bad
        raise DataError(f"{source}: key {key!r} is {value!r}, expected {_name(typ)}")
    return out


def _name(typ: Any) -> str:
    """How a type reads in an error: int, float, "list of float", ..."""
    if typ is type(None):
        return "null"
    if dataclasses.is_dataclass(typ):
        return "a JSON object"
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in args)
    if origin is tuple:
        return f"a list of {_name(args[0])}"
    if origin is dict:
        return f"an object of {_name(args[-1])}"
    return getattr(typ, "__name__", str(typ))


def read(path: Path | str, fields: Callable[[Doc], T]) -> T:
    """``fields`` over the JSON file ``path``: ``MissingError`` if it is not there,
    ``DataError`` (naming the file, and the key where one is to blame) if it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid JSON (not UTF-8 text: {e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    return parse(fields, data, path)


def read_log_rows(path: Path | str) -> list[dict[str, Any]]:
    """The rows (JSON objects) of a ``log.jsonl``; a line that does not parse (one being
    appended, or cut by a stop; bytes that are not UTF-8 read as U+FFFD) is skipped."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
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
