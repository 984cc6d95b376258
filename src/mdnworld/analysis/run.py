"""``mdnworld analyze``: run the three analyses and write ``RUN_DIR/analysis/summary.md``.

Each analysis writes its own folder (see its module); ``summary.md`` is rebuilt from the
``results.json`` files present, so it always states the numbers of the latest runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mdnworld.analysis import committed, components, worlds_events
from mdnworld.analysis.common import load_inputs
from mdnworld.config import AnalyzeConfig
from mdnworld.errors import ConfigError
from mdnworld.io import atomic_open, atomic_write_json
from mdnworld.layout import ANALYSES, RunLayout
from mdnworld.records import (
    Committed,
    ComponentsOverTime,
    WorldsEvents,
    read_committed,
    read_components,
    read_worlds_events,
)
from mdnworld.text import fmt


def results_path(run_dir: Path, analysis: str) -> Path:
    return RunLayout(run_dir).analysis_results(analysis)


def run_analyses(
    run_dir: Path,
    cfg: AnalyzeConfig,
    which: tuple[str, ...] = tuple(ANALYSES),
    log: Callable[[str], None] = print,
) -> Path:
    """Run the chosen analyses; returns the path of summary.md."""
    unknown = set(which) - set(ANALYSES)
    if unknown:
        raise ConfigError(f"unknown analysis {sorted(unknown)}, expected some of {list(ANALYSES)}")
    run_dir = Path(run_dir)
    inputs = load_inputs(run_dir, cfg)
    log(f"analyze: models {sorted(inputs.models)}, K = {inputs.n_components}")
    for name in which:
        log(f"analyze {name}: running")
        if name == "components-over-time":
            result = components.components_over_time(run_dir, inputs, cfg)
            atomic_write_json(results_path(run_dir, name), result)
        elif name == "worlds-events":
            worlds_events.worlds_events(run_dir, inputs, cfg, log)
        else:
            committed.committed(run_dir, inputs, cfg)
        log(f"analyze {name}: wrote {results_path(run_dir, name).parent}")
    path = write_summary(run_dir)
    log(f"analyze: summary in {path}")
    return path


def committed_table(result: Committed) -> list[str]:
    """Markdown rows of C's median frames per class (one row per component)."""
    names = result.classes
    return [
        "| component | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        *(
            f"| k={row.component} | " + " | ".join(f"{row.frames[n]:g}" for n in names) + " |"
            for row in result.median_frames
        ),
    ]


def _components_lines(r: ComponentsOverTime) -> list[str]:
    lines = [
        "## A. Components over time",
        "",
        f"One dream per M, {r.steps} steps after {r.warmup} warm-up steps: which "
        "component dominates (argmax π) how often, and how often the lead changes.",
        "",
        "| M | steps dominated by k = 0, 1, ... | lead changes | figure |",
        "|---|---|---|---|",
    ]
    for i, m in r.models.items():
        share = ", ".join(str(c) for c in m.dominant_share)
        lines.append(f"| model_{i} | {share} | {m.switches} | {m.figure} |")
    return [*lines, ""]


def _worlds_events_lines(r: WorldsEvents) -> list[str]:
    lines = [
        "## B. Worlds and events vs. the main component",
        "",
        f"{r.dreams} dreams ({len(r.models)} M × {r.dreams // len(r.models)}) "
        f"of {r.steps} steps. Current/Any: medians over dreams; p: the paper's "
        "Mann–Whitney U; null: median Current when each dream's dominant components are "
        "circularly shifted (selection bias alone), with its empirical p. A class is only "
        "tied to a component if Current beats the null, not just Any.",
        "",
        "| class | dreams | Current | Any | p | sig. | null Current | null p | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r.rows:
        paper = (
            f"{fmt(row.paper_current, '.2f')} / {fmt(row.paper_any, '.2f')} {row.paper_stars}"
            if row.paper_stars
            else ""
        )
        lines.append(
            f"| {row.cls} | {row.n_dreams} | {fmt(row.median_current, '.2f')} | "
            f"{fmt(row.median_any, '.2f')} | {fmt(row.p, '.2g')} | {row.stars or '—'} | "
            f"{fmt(row.null_mean, '.2f')} | {fmt(row.null_p, '.3f')} | {paper} |"
        )
    return [*lines, ""]


def _committed_lines(r: Committed) -> list[str]:
    return [
        "## C. Committed dreaming",
        "",
        f"M model_{r.model}: {r.tests} dreams per forced component, {r.steps} "
        f"steps each from step {r.start_t} of real episodes; median frames per class. "
        f"{r.note} Paper: {r.paper}.",
        "",
        *committed_table(r),
        "",
    ]


def write_summary(run_dir: Path) -> Path:
    """``analysis/summary.md`` from the results.json files that exist."""
    run = RunLayout(run_dir)
    lines = ["# Analyses", ""]
    a = run.analysis_results("components-over-time")
    if a.exists():
        lines += _components_lines(read_components(a))
    b = run.analysis_results("worlds-events")
    if b.exists():
        lines += _worlds_events_lines(read_worlds_events(b))
    c = run.analysis_results("committed")
    if c.exists():
        lines += _committed_lines(read_committed(c))
    path = run.analysis_summary
    with atomic_open(path, "w") as f:
        f.write("\n".join(lines))
    return path
