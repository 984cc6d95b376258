"""The detectors against the game's truth: precision, recall and F1 per class, on real frames
and on V's reconstructions (``analysis/detectors/``)."""

from __future__ import annotations

from mdnworld.records.detectors import read_detectors
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, code, esc, how, table

SPEC = Spec(
    "detectors",
    "The detectors against the game's truth",
    how(
        "Every finding of analyses B and C rests on the SPEC §6 detectors. Here they are "
        "scored frame by frame against what the game drew (episodes made with "
        "<code>generate --truth</code>): precision = share of detections that are true, "
        "recall = share of true frames detected.",
        "The reconstruction rows run the detectors on V's decoding of the same frames, the "
        "chain the analyses use; — where a ratio is undefined (no detection, or no true frame).",
    ),
    ("detectors",),
)
HEADER = ["source", "class", "kind", "tp", "fp", "fn", "support", "precision", "recall", "F1"]


def section(ctx: Context) -> Section:
    run = ctx.run
    path = run.detectors_results
    if not path.is_file():
        return SPEC.missing(ctx, f"the detectors' scores ({code(ctx.rel(path))} not found)")
    res = read_detectors(path)
    rows = []
    for r in res.scores:
        key = f"scores.{r.source}.{r.cls}"
        rows.append(
            [esc(r.source), esc(r.cls), esc(r.kind)]
            + [ctx.num(getattr(r, k), path, f"{key}.{k}", "d") for k in ("tp", "fp", "fn")]
            + [ctx.num(r.support, path, f"{key}.support", "d")]
            + [ctx.num(getattr(r, k), path, f"{key}.{k}", ".2f") for k in ("precision", "recall")]
            + [ctx.num(r.f1, path, f"{key}.f1", ".2f")]
        )
    csv = run.detectors_table
    recon = code(esc(res.reconstruction)) if res.reconstruction else "no V: real frames only"
    parts = [
        f"<p>{ctx.num(res.episodes, path, 'episodes', 'd')} episodes "
        f"({esc(res.episodes_from)}), {ctx.num(res.frames, path, 'frames', 'd')} frames; "
        f"reconstructions: {recon} ({ctx.source(path, path.name)}"
        + (f", {ctx.source(csv, csv.name)}" if csv.is_file() else "")
        + ").</p>",
        table(HEADER, rows, "Per frame; events follow SPEC §7B on both sides."),
        ctx.picture(
            run.detectors_figure,
            "example frames per class: hits, misses, false alarms",
            "Example frames: hits, misses and false alarms (captions: detector/truth counts).",
            pixel=True,
        ),
    ]
    return SPEC.section("".join(parts))
