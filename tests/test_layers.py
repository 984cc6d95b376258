"""The package's shape, read from its source: pure modules load without the game, only the
trainers' callers import train/, and no module grows past 500 lines (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mdnworld"
MAX_LINES = 500

# pure maths, files, settings and inference: none may load the game (vizdoom) or a trainer
PURE_MODULES = (
    "mdnworld.errors",
    "mdnworld.config",
    "mdnworld.io",
    "mdnworld.layout",
    "mdnworld.analysis.detectors",
    "mdnworld.analysis.stats",
    "mdnworld.models.vae",
    "mdnworld.models.mdnrnn",
    "mdnworld.models.controller",
    "mdnworld.checkpoints",
    "mdnworld.dreams",
)

# the only modules that may import mdnworld.train: the trainers themselves, the stages that
# run them, and the command line
MAY_IMPORT_TRAIN = ("train/", "pipeline.py", "stages.py", "stages/", "cli.py")


def _modules() -> list[tuple[str, Path]]:
    """(path relative to src/mdnworld, as posix; file) for every module of the package."""
    return [(p.relative_to(PACKAGE).as_posix(), p) for p in sorted(PACKAGE.rglob("*.py"))]


def _imported(rel: str, tree: ast.AST) -> set[str]:
    """Every module a file imports, anywhere in it (also inside functions), relative imports
    resolved; ``from a import b`` counts as both ``a`` and ``a.b``."""
    package = ["mdnworld", *rel.split("/")[:-1]]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def test_pure_modules_import_neither_the_game_nor_a_trainer() -> None:
    """In a fresh interpreter (conftest's fixtures cannot hide it): import each pure module in
    turn and name the first that brings vizdoom or mdnworld.train in with it."""
    script = (
        "import importlib, sys\n"
        f"for name in {PURE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "    bad = sorted(m for m in sys.modules\n"
        "                 if m.split('.')[0] == 'vizdoom' or m.startswith('mdnworld.train'))\n"
        "    if bad:\n"
        "        sys.exit(f'importing {name} also imported {bad[:5]}')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1:]


def test_only_trainers_stages_and_the_cli_import_train() -> None:
    offenders = []
    for rel, path in _modules():
        if rel.startswith(MAY_IMPORT_TRAIN):
            continue
        names = _imported(rel, ast.parse(path.read_text(), filename=str(path)))
        bad = sorted(n for n in names if n == "mdnworld.train" or n.startswith("mdnworld.train."))
        if bad:
            offenders.append(f"{rel}: {', '.join(bad)}")
    assert not offenders, (
        "only train/, pipeline/stages and cli.py may import mdnworld.train; these do:\n"
        + "\n".join(offenders)
    )


def test_no_module_is_longer_than_500_lines() -> None:
    long = [
        f"{rel}: {n} lines"
        for rel, path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(long)
