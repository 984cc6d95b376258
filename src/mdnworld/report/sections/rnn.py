"""The M section: each M's validation NLL against its baseline, π entropy and component
usage, from its ``model.json`` or, while it trains, its ``log.jsonl`` (``rnn/model_<i>/``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdnworld.records import dedupe, read_log_rows, read_rnn_meta
from mdnworld.report import figures
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, how, image, table
from mdnworld.text import is_number

SPEC = Spec(
    "rnn",
    "M: the MDN-RNN",
    how(
        "M predicts the next latent as a mixture of K Gaussians weighted by π; its NLL is "
        "per latent dimension, next to a random-walk baseline z<sub>t+1</sub> ~ "
        "N(z<sub>t</sub>, σ²) (dotted).",
        "M has learned dynamics when its validation NLL is clearly below the baseline; "
        "π entropy near ln K means the components share the work, near 0 that one "
        "dominates, and the bars show how often each component leads.",
    ),
    ("train-rnn",),
)
HEADER = [
    "M",
    "val NLL/dim",
    "baseline",
    "below baseline by",
    "train NLL/dim",
    "π entropy / max",
    "best / run epochs",
    "done head (val BCE)",
    "status",
]


@dataclass
class _Models:
    """What the table and the figures need, gathered over the Ms."""

    rows: list[list[str]] = field(default_factory=list)
    curves: dict[int, list[dict]] = field(default_factory=dict)
    usage: dict[int, Any] = field(default_factory=dict)
    K: int = 0


def _gain(base: Any, val: Any) -> Any:
    return base - val if is_number(base) and is_number(val) else None


def _trained_row(ctx: Context, i: int, out: _Models) -> list[str]:
    path = ctx.run.rnn_meta(i)
    m = read_rnn_meta(path)
    x = m.metrics
    out.K = max(out.K, m.n_components)
    if x.component_usage:
        out.usage[i] = x.component_usage
    base, val = x.val_baseline_nll_per_dim, x.val_nll_per_dim
    done = ctx.num(x.val_done_bce, path, "metrics.val_done_bce") if m.done_head else "no"
    return [
        f"model_{i}",
        ctx.num(val, path, "metrics.val_nll_per_dim"),
        ctx.num(base, path, "metrics.val_baseline_nll_per_dim"),
        ctx.num(_gain(base, val), path, "val_baseline_nll_per_dim − val_nll_per_dim"),
        ctx.num(x.train_nll_per_dim, path, "metrics.train_nll_per_dim"),
        ctx.num(x.pi_entropy, path, "metrics.pi_entropy", ".3f")
        + " / "
        + ctx.num(x.pi_entropy_max, path, "metrics.pi_entropy_max", ".3f"),
        f"{ctx.num(m.best_epoch, path, 'best_epoch')} / "
        f"{ctx.num(m.epochs_run, path, 'epochs_run')}",
        done,
        "trained",
    ]


def _training_row(ctx: Context, i: int, last: Mapping[str, Any], out: _Models) -> list[str]:
    """An M still training: the last epoch of its log."""
    path = ctx.run.rnn_log(i)
    out.K = max(out.K, sum(1 for k in last if k.startswith("val/usage_")))
    u = [last[f"val/usage_{k}"] for k in range(out.K) if f"val/usage_{k}" in last]
    if u:
        out.usage[i] = u
    base, val = last.get("val/baseline_nll_per_dim"), last.get("val/nll_per_dim")
    return [
        f"model_{i}",
        ctx.num(val, path, "val/nll_per_dim (last epoch)"),
        ctx.num(base, path, "val/baseline_nll_per_dim"),
        ctx.num(_gain(base, val), path, "val/baseline_nll_per_dim − val/nll_per_dim"),
        ctx.num(last.get("train/eval_nll_per_dim"), path, "train/eval_nll_per_dim"),
        ctx.num(last.get("val/pi_entropy"), path, "val/pi_entropy", ".3f"),
        f"– / {ctx.num(last.get('epoch'), path, 'epoch', 'd')}",
        "—",
        "training (last epoch of log.jsonl)",
    ]


def _gather(ctx: Context, models: list[int]) -> _Models:
    out = _Models()
    for i in models:
        log = ctx.run.rnn_log(i)
        epochs = (
            dedupe((r for r in read_log_rows(log) if "val/nll_per_dim" in r), "epoch")
            if log.is_file()
            else []
        )
        if epochs:
            out.curves[i] = epochs
        if ctx.run.rnn_meta(i).is_file():
            out.rows.append(_trained_row(ctx, i, out))
        elif epochs:
            out.rows.append(_training_row(ctx, i, epochs[-1], out))
    return out


def _figures(ctx: Context, got: _Models) -> str:
    parts = []
    if got.curves:
        sources = ", ".join(ctx.source(ctx.run.rnn_log(i)) for i in got.curves)
        path, href = ctx.figure("rnn_nll.png")
        figures.rnn_nll(got.curves, path)
        caption = (
            "Solid: validation; dashed: training windows; dotted: the random-walk baseline. "
            f"Drawn from {sources}."
        )
        parts.append(image(href, "M's NLL per epoch", caption, plot=True))
        if any("val/pi_entropy" in r for rows in got.curves.values() for r in rows):
            path, href = ctx.figure("rnn_pi_entropy.png")
            figures.rnn_entropy(got.curves, got.K, path)
            caption = f"π entropy per epoch, drawn from {sources}."
            parts.append(image(href, "π entropy per epoch", caption, plot=True))
    if got.usage:
        path, href = ctx.figure("rnn_usage.png")
        figures.rnn_usage(got.usage, path)
        srcs = ", ".join(
            ctx.source(ctx.run.rnn_meta(i) if ctx.run.rnn_meta(i).is_file() else ctx.run.rnn_log(i))
            for i in got.usage
        )
        caption = f"Component usage (colours as in the dream videos), from {srcs}."
        parts.append(image(href, "component usage per model", caption, plot=True))
    return "".join(parts)


def section(ctx: Context) -> Section:
    models = sorted(set(ctx.run.rnn_indices()) | set(ctx.run.rnn_logged()))
    if not models:
        return SPEC.missing(ctx, f"M (no {ctx.rel(ctx.run.rnn_dir)}/model_*/ files)")
    got = _gather(ctx, models)
    caption = (
        "NLL in nats per latent dimension on the validation episodes (lower is better); "
        "each number links to the model.json (or log.jsonl) it comes from."
    )
    return SPEC.section(table(HEADER, got.rows, caption) + _figures(ctx, got))
