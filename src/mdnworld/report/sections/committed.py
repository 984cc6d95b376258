"""Analysis C's section: what each component dreams when forced (``analysis/committed/``)."""

from __future__ import annotations

from mdnworld.records import Committed, read_committed
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, code, esc, how, table
from mdnworld.text import is_number

SPEC = Spec(
    "committed",
    "Analysis C: committed dreaming",
    how(
        "Every step of these dreams is forced onto one component k, and the detectors count "
        "the frames of each class: a row is what component k alone dreams.",
        "A component specialises when its row differs from the others (in the paper one "
        "component made most of the explosions); forcing is an intervention, so no null "
        "is needed here.",
    ),
    ("analyze committed",),
)


def _table(ctx: Context, res: Committed) -> str:
    path = ctx.run.analysis_results("committed")
    # results.json may name an explosion component even when no dream exploded (the argmax
    # of all zeros): highlight it only when its median is above 0
    expl = res.explosion_component
    expl_row = next((r for r in res.median_frames if r.component == expl), None)
    explosion = expl_row.frames.get("Explosion") if expl_row else None
    explodes = is_number(explosion) and explosion > 0
    rows, hl = [], []
    for n, r in enumerate(res.median_frames):
        if explodes and r is expl_row:
            hl.append(n)
        rows.append(
            [
                f"k={esc(r.component)}",
                *(ctx.num(r.frames[c], path, f"median_frames[{n}].{c}", "d") for c in res.classes),
            ]
        )
    caption = (
        "Median frames per class over the dreams of each component"
        + (
            f"; highlighted: the component with the most explosion frames (k={esc(expl)})"
            if explodes
            else "; no component's median dream showed an explosion"
            if "Explosion" in res.classes
            else ""
        )
        + (f". Paper: {esc(res.paper)}." if res.paper else ".")
    )
    return table(["component", *(esc(c) for c in res.classes)], rows, caption, highlight=hl)


def section(ctx: Context) -> Section:
    run = ctx.run
    path = run.analysis_results("committed")
    if not path.is_file():
        return SPEC.missing(ctx, f"analysis C ({code(ctx.rel(path))} not found)")
    res = read_committed(path)
    csvs = [
        ctx.source(p, p.name)
        for p in (run.analysis_table("committed"), run.committed_counts)
        if p.is_file()
    ]
    parts = [
        f"<p>model_{esc(res.model)}: {ctx.num(res.tests, path, 'tests')} "
        f"dreams per forced component, {ctx.num(res.steps, path, 'steps')} steps "
        f"each from step {ctx.num(res.start_t, path, 'start_t')} of real episodes "
        f"({', '.join([ctx.source(path, path.name), *csvs])}).{ctx.summary_link()}"
        "</p>",
        _table(ctx, res),
    ]
    alt, caption = "committed dreams box plots", "Frames per class, one box per forced component."
    parts.append(ctx.picture(run.analysis_figure("committed"), alt, caption))
    return SPEC.section("".join(parts))
