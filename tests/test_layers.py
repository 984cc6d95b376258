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
    "mdnworld.records",
    "mdnworld.text",
    "mdnworld.data.episodes",
    "mdnworld.report",
    "mdnworld.analysis.run",
    "mdnworld.control.train",
)

# the only modules that may import mdnworld.train: the trainers themselves, the stages that
# run them, and the command line
MAY_IMPORT_TRAIN = ("train/", "iterate.py", "pipeline.py", "stages.py", "stages/", "cli.py")


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


# docs/architecture.md's layers: a top-level module or package of src/mdnworld -> its rank. A
# module may import its own package and anything of a lower rank, never above or sideways.
LAYERS = {
    "errors": 0, "text": 0, "reference": 0, "palette": 0, "procs": 0,
    "io": 1, "config": 1, "fields": 1, "device": 1, "records": 1,
    "layout": 2, "logs": 2, "media": 2,
    "stage_log": 3,
    "env": 4, "models": 4,
    "checkpoints": 5,
    "data": 6, "dreams": 6, "report": 6, "shipped": 6,
    "analysis": 7, "control": 7,
    "results": 8, "play": 8,
    "train": 9, "explore": 9,
    "iterate": 10,
    "pipeline": 11,
    "cli": 12, "__main__": 13, "__init__": 0,
}  # fmt: skip


def _top(module: str) -> str | None:
    """``mdnworld.report.sections.vae`` -> "report"; None outside the package."""
    parts = module.split(".")
    if parts[0] != "mdnworld":
        return None
    if len(parts) == 1 or parts[1] == "__version__":  # the package's own __init__
        return "__init__"
    return parts[1]


def test_layers_only_point_down() -> None:
    unknown, upward = set(), []
    for rel, path in _modules():
        own = rel.split("/")[0].removesuffix(".py")
        unknown |= {own} - set(LAYERS)
        for name in _imported(rel, ast.parse(path.read_text(), filename=str(path))):
            top = _top(name)
            if top is None or top == own or top == "__init__":
                continue  # `from mdnworld import __version__` is a leaf
            unknown |= {top} - set(LAYERS)
            if top in LAYERS and own in LAYERS and LAYERS[top] >= LAYERS[own]:
                upward.append(f"{rel} (layer {LAYERS[own]}) imports {name} (layer {LAYERS[top]})")
    assert not unknown, f"modules missing from LAYERS (and docs/architecture.md): {unknown}"
    assert not upward, "imports that point up or sideways:\n" + "\n".join(sorted(set(upward)))


def test_no_module_is_longer_than_500_lines() -> None:
    long = [
        f"{rel}: {n} lines"
        for rel, path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(long)
