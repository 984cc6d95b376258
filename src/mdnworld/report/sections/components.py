"""Analysis A's section: which component leads over one free dream of each M
(``analysis/components_over_time/``)."""

from __future__ import annotations

from mdnworld.records import read_components
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, code, how, table

SPEC = Spec(
    "components",
    "Analysis A: components over time",
    how(
        "Each figure follows one free dream of one M after a warm-up: π<sub>k</sub> of "
        "every component against time (top), the world classes the detectors see in the "
        "dreamed frames (middle) and the frames themselves (bottom).",
        "In the paper the leading component changes with what happens in the dream; a model "
        "whose lead never changes uses one component for everything.",
    ),
    ("analyze components-over-time",),
)


def section(ctx: Context) -> Section:
    path = ctx.run.analysis_results("components-over-time")
    if not path.is_file():
        return SPEC.missing(ctx, f"analysis A ({code(ctx.rel(path))} not found)")
    res = read_components(path)
    models = sorted(res.models)
    K = max((len(res.models[i].dominant_share) for i in models), default=0)
    rows = []
    for i in models:
        m = res.models[i]
        share, key = m.dominant_share, f"models.{i}.dominant_share"
        rows.append(
            [
                f"model_{i}",
                *(
                    ctx.num(share[k] if k < len(share) else None, path, f"{key}[{k}]")
                    for k in range(K)
                ),
                ctx.num(m.switches, path, f"models.{i}.switches"),
                ctx.num(m.start_episode, path, f"models.{i}.start_episode", "id"),
            ]
        )
    parts = [
        f"<p>{ctx.num(res.steps, path, 'steps')} recorded steps after "
        f"{ctx.num(res.warmup, path, 'warmup')} warm-up steps, per M "
        f"({ctx.source(path, path.name)}).{ctx.summary_link()}</p>",
        table(
            ["M", *(f"steps led by k={k}" for k in range(K)), "lead changes", "start episode"],
            rows,
            "Steps at which each component has the largest π (the dominant component), "
            "and how often the lead changes.",
        ),
    ]
    for i in models:
        where = f"{path}: key 'models.{i}.figure'"
        png = ctx.run.inside(res.models[i].figure, where, base=ctx.run.analysis_dir)
        csv = png.with_suffix(".csv")
        cap = f"model_{i}."
        if png.is_file() and csv.is_file():
            cap += f" Per-step values: {ctx.source(csv, csv.name)}."
        parts.append(ctx.picture(png, f"components over time, model_{i}", cap))
    return SPEC.section("".join(parts))
