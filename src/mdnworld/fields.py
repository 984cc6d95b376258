"""What the command line shows about a config field (config.py's dataclasses): the string
literal after it (its documentation) and the allowed values of a ``Literal`` type."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
import types
import typing
from typing import Any, Literal


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's documentation: the string literal right after it in the class body (read
    from the source once; empty where the source is not available)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def literal_choices(typ: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal[...]`` field type (also inside ``X | None``), or None."""
    if typing.get_origin(typ) is Literal:
        return typing.get_args(typ)
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        for arg in typing.get_args(typ):
            if (choices := literal_choices(arg)) is not None:
                return choices
    return None
