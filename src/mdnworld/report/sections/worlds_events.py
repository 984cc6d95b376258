"""Analysis B's section: each class's main component, Current vs Any and the shift null
(``analysis/worlds_events/``)."""

from __future__ import annotations

from pathlib import Path

from mdnworld.records import WorldsEventsRow, read_worlds_events
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, code, esc, how, table

SPEC = Spec(
    "worlds-events",
    "Analysis B: worlds and events",
    how(
        "Per class, <i>main</i> is the component that most often dominates the class's "
        "frames; Current is the share of those frames it dominates, Any its share of all "
        "frames, and the stars test Current &gt; Any (Mann–Whitney U, as in the paper).",
        "Choosing main on the class's frames inflates Current by itself, so the null column "
        "recomputes Current with each dream's components circularly shifted: a class is "
        "only tied to a component when Current also beats the null (small null p).",
    ),
    ("analyze worlds-events",),
)
HEADER = [
    "class",
    "kind",
    "dreams",
    "Current",
    "Any",
    "U",
    "p",
    "sig.",
    "null Current",
    "null p",
    "paper Current / Any",
]


def _row(ctx: Context, path: Path, n: int, r: WorldsEventsRow) -> list[str]:
    def v(value: object, key: str, spec: str = ".2f") -> str:
        return ctx.num(value, path, f"rows[{n}].{key}", spec)

    return [
        esc(r.cls),
        esc(r.kind),
        v(r.n_dreams, "n_dreams", "d"),
        v(r.median_current, "median_current"),
        v(r.median_any, "median_any"),
        v(r.u, "u", ".4g"),
        v(r.p, "p", ".3g"),
        esc(r.stars or "—"),
        v(r.null_mean, "null_mean"),
        v(r.null_p, "null_p", ".3f"),
        f"{v(r.paper_current, 'paper_current')} / {v(r.paper_any, 'paper_any')} "
        f"{esc(r.paper_stars or '')}",
    ]


def section(ctx: Context) -> Section:
    run = ctx.run
    path = run.analysis_results("worlds-events")
    if not path.is_file():
        return SPEC.missing(ctx, f"analysis B ({code(ctx.rel(path))} not found)")
    res = read_worlds_events(path)
    rows = [_row(ctx, path, n, r) for n, r in enumerate(res.rows)]
    models = ", ".join(f"model_{m}" for m in res.models)
    csv = run.analysis_table("worlds-events")
    parts = [
        f"<p>{ctx.num(res.dreams, path, 'dreams')} dreams of "
        f"{ctx.num(res.steps, path, 'steps')} steps over {esc(models) or '—'}; the "
        f"null shifts each dream many times ({ctx.source(path, path.name)}"
        + (f", {ctx.source(csv, csv.name)}" if csv.is_file() else "")
        + f").{ctx.summary_link()}</p>",
        table(
            HEADER,
            rows,
            "Medians over dreams. sig.: *** p &lt; 0.001, ** p &lt; 0.01, * p &lt; 0.05, "
            "n.s. otherwise; — where no dream showed the class.",
        ),
    ]
    caption = (
        "Current (red) vs Any (blue) per class, with the null's mean (diamond) and the paper's "
        "medians (stars)."
    )
    parts.append(
        ctx.picture(run.analysis_figure("worlds-events"), "worlds and events box plots", caption)
    )
    return SPEC.section("".join(parts))
