"""The controller section: CMA-ES in the dream and the real-game scores (``controller/``,
``evaluate/``)."""

from __future__ import annotations

from collections.abc import Sequence

from mdnworld import reference
from mdnworld.records import (
    ControllerMeta,
    Scores,
    dedupe,
    read_best_fitness,
    read_controller_meta,
    read_iterate_round,
    read_log_rows,
    read_scores,
    read_selection,
)
from mdnworld.report import figures
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import (
    Section,
    code,
    esc,
    facts,
    grid,
    how,
    image,
    link,
    missing,
    table,
)
from mdnworld.text import fmt, is_number

SPEC = Spec(
    "controller",
    "Controller: training and the real game",
    how(
        "C is a linear controller trained by CMA-ES entirely inside M's dream (grey: "
        "dream survival); red squares: the generation's best candidate in the real game.",
        "Dream fitness can rise while the real score does not (C exploits M's mistakes); "
        "the real-game scores are what count, next to the random policy, World Models, "
        f"and {reference.SOLVED}, the score at which the task counts as solved.",
    ),
    ("train-controller",),
)
REFERENCES = (("random_policy", "random policy"), ("world_models_tau_1.15", "World Models"))
"""Keys of ``scores.json``'s "reference" shown beside the scores, and their names."""


def _training(ctx: Context, ctl: ControllerMeta | None) -> str:
    path = ctx.run.controller_meta
    if ctl is None:
        return missing(
            f"the trained controller ({code(ctx.rel(path))}): training unfinished or running",
            ctx.cmd("train-controller"),
        )
    items = [
        (
            "generations",
            f"{ctx.num(ctl.generation, path, 'generation')} / "
            f"{ctx.num(ctl.generations, path, 'config.generations')}",
        ),
        ("dreaming M", f"model_{ctx.num(ctl.model_index, path, 'model_index', 'id')}"),
        ("population", ctx.num(ctl.popsize, path, "config.popsize")),
        ("dreams per candidate", ctx.num(ctl.rollouts, path, "config.rollouts")),
        ("dream temperature τ", ctx.num(ctl.tau, path, "config.tau")),
    ]
    best = ctx.run.controller_meta_of("best")
    if best.is_file():
        fitness = read_best_fitness(best)
        items.append(("best dream fitness", ctx.num(fitness, best, "fitness", ".3g")))
    return facts(items)


def _fitness(ctx: Context) -> str:
    path = ctx.run.controller_log
    rows = dedupe(read_log_rows(path), "step") if path.is_file() else []
    if not rows:
        return ""
    fig, href = ctx.figure("controller_fitness.png")
    figures.controller_fitness(rows, fig)
    caption = f"Drawn from {ctx.source(path)}."
    return image(href, "controller fitness per generation", caption, plot=True)


def _selection(ctx: Context) -> str:
    """The re-scoring of the best candidates on fresh dreams (``controller.select_top``)."""
    path = ctx.run.controller_selection
    if not path.is_file():
        return ""
    sel = read_selection(path)
    rows = [
        [link(esc(r.candidate), ctx.data(path), f"rows.{i}.candidate in {ctx.rel(path)}", "num"),
         ctx.num(r.training_fitness, path, f"rows.{i}.training_fitness", ".0f")
         if r.training_fitness is not None else "–",
         ctx.num(r.rescored, path, f"rows.{i}.rescored", ".0f")]
        for i, r in enumerate(sel.rows)
    ]  # fmt: skip
    win = [i for i, r in enumerate(sel.rows) if r.candidate == sel.winner]
    caption = (f"Each re-scored on {sel.rollouts} fresh dreams; the highest ({esc(sel.winner)}) "
               f"is {code('evaluate --which selected')}. From {ctx.source(path)}.")  # fmt: skip
    return "<h3>Choosing the controller</h3>" + table(
        ["candidate", "dream fitness in training", "re-scored"], rows, caption, win
    )


def _iterations(ctx: Context) -> str:
    """World Models' iterative training (``mdnworld iterate``): one row per round."""
    paths = []
    while (path := ctx.run.iterate_summary(len(paths))).is_file():
        paths.append(path)
    if not paths:
        return ""
    rows = []
    for p in paths:
        r = read_iterate_round(p)
        score = "–" if r.mean is None else (
            f"{ctx.num(r.mean, p, 'mean', '.0f')} ± {ctx.num(r.std, p, 'std', '.0f')} "
            f"({ctx.num(r.n_scores, p, 'scores')} episodes)")  # fmt: skip
        rows.append([
            "the run" if r.round == 0 else ctx.num(r.round, p, "round", "id"),
            ctx.num(r.episodes, p, "episodes"),
            ctx.num(r.rnn_val_nll_per_dim, p, "rnn_val_nll_per_dim"),
            ctx.num(r.generation, p, "generation"),
            ctx.num(r.dream_fitness_mean, p, "dream_fitness_mean", ".0f"),
            score,
        ])  # fmt: skip
    last = ctx.run.iterate_round(len(paths) - 1) if len(paths) > 1 else ctx.run.root
    caption = (
        "Each round the last controller played real episodes, M was fine-tuned on all the "
        "data, C retrained from the last C in the new dream; every round scored on the same "
        f"choice seeds. Held-out score of the last round: {code('mdnworld evaluate ' + str(last))}."
    )
    head = ["round", "episodes of data", "M val NLL/dim", "C generations", "dream survival",
            "real game, choice seeds"]  # fmt: skip
    return "<h3>Iterative training</h3>" + table(head, rows, caption)


def _score_facts(ctx: Context, sc: Scores) -> str:
    path = ctx.run.evaluate_scores
    items = [
        ("mean score", ctx.num(sc.mean, path, "mean", ".1f")),
        ("std", ctx.num(sc.std, path, "std", ".1f")),
        ("episodes", ctx.num(sc.episodes, path, "episodes")),
        ("min / max", f"{ctx.num(sc.min, path, 'min')} / {ctx.num(sc.max, path, 'max')}"),
        (f"solved (mean ≥ {reference.SOLVED})", esc(fmt(sc.solved))),
    ]
    for key, name in REFERENCES:
        r = sc.reference.get(key)
        if isinstance(r, Sequence) and len(r) == 2:
            items.append(
                (
                    f"{name} (paper)",
                    f"{ctx.num(r[0], path, f'reference.{key}[0]')} ± "
                    f"{ctx.num(r[1], path, f'reference.{key}[1]')}",
                )
            )
    return facts(items)


def _videos(ctx: Context, sc: Scores) -> str:
    path = ctx.run.evaluate_scores
    vids = []
    for key, name, v in (
        ("best_video", "Best", sc.best_video),
        ("worst_video", "Worst", sc.worst_video),
    ):
        if v is None or not v.file:
            continue
        file = ctx.run.inside(v.file, f"{path}: key '{key}.file'", base=ctx.run.evaluate_dir)
        if file.is_file():
            vids.append(
                ctx.video(
                    file,
                    f"{name} episode: score "
                    + ctx.num(v.score, path, f"{key}.score")
                    + ", seed "
                    + ctx.num(v.seed, path, f"{key}.seed", "id")
                    + "; the real frame beside V's reconstruction.",
                )
            )
    if vids:
        return grid(vids)
    if sc.best_video or sc.worst_video:
        return missing(
            f"the best/worst episode videos in {ctx.rel(ctx.run.evaluate_dir)}/",
            ctx.cmd("evaluate"),
        )
    return ""


def _real_game(ctx: Context, ctl: ControllerMeta | None) -> str:
    path = ctx.run.evaluate_scores
    if not path.is_file():
        return missing(f"real-game scores ({code(ctx.rel(path))})", ctx.cmd("evaluate"))
    sc = read_scores(path)
    note = (
        f"<p>The {esc(sc.controller)} controller of generation "
        f"{ctx.num(sc.generation, path, 'generation')} "
        f"({ctx.source(path, path.name)})."
    )
    if ctl is not None and sc.generation != ctl.generation:
        note += (
            f" These scores are of an older controller than the one trained now "
            f"(generation {ctx.num(ctl.generation, ctx.run.controller_meta, 'generation')}): "
            f"run {code(ctx.cmd('evaluate'))} again."
        )
    parts = [_score_facts(ctx, sc), note + "</p>"]
    per = [e.score for e in sc.per_episode if is_number(e.score)]
    if per:
        fig, href = ctx.figure("real_scores.png")
        figures.real_scores(per, sc.reference, fig)
        caption = f"Real-game scores per episode, drawn from {ctx.source(path)}."
        parts.append(image(href, "histogram of real-game scores", caption, plot=True))
    parts.append(_videos(ctx, sc))
    return "".join(parts)


def section(ctx: Context) -> Section:
    run = ctx.run
    if not any(p.is_file() for p in (run.controller_log, run.controller_meta, run.evaluate_scores)):
        return SPEC.missing(
            ctx,
            f"the controller (no {ctx.rel(run.controller_dir)}/ or {ctx.rel(run.evaluate_dir)}/ "
            "files; it needs an M with a done head)",
        )
    ctl = read_controller_meta(run.controller_meta) if run.controller_meta.is_file() else None
    parts = [_training(ctx, ctl), _fitness(ctx), _selection(ctx), "<h3>In the real game</h3>",
             _real_game(ctx, ctl), _iterations(ctx)]  # fmt: skip
    return SPEC.section("".join(parts))
