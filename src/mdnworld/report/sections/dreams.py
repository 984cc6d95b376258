"""The dreams section: free and committed dream videos of each M (``dreams/model_<i>/``)."""

from __future__ import annotations

from mdnworld.records import read_dream_settings, read_rnn_meta
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, code, grid, how, missing
from mdnworld.text import is_number

SPEC = Spec(
    "dreams",
    "Dreams",
    how(
        "A dream is M imagining the game from its own samples, decoded to frames by V; "
        "the bars beside each frame are π at that step, and the bar with a black frame "
        "is the component the frame was drawn from.",
        "Free dreams sample the component from π at every step; a committed dream forces "
        "one component k for the whole dream, so it shows what that component alone "
        "predicts.",
    ),
    ("dream",),
)
MAX_DREAM_VIDEOS = 8
"""Free dreams shown per model (the rest are listed, not embedded)."""


def _settings(ctx: Context, i: int) -> tuple[str, int | None]:
    """The line on how model ``i``'s free dreams were made, and their K (None if unknown)."""
    path = ctx.run.dream_settings(i)
    if not path.is_file():
        return "", None
    s = read_dream_settings(path)

    def n(value: object, key: str) -> str:
        return ctx.num(value, path, key)

    line = (
        "<p>"
        f"{n(s.dreams, 'dreams')} dream(s) of {n(s.steps, 'steps')} steps; "
        f"τ<sub>π</sub> = {n(s.tau_pi, 'tau_pi')}, "
        f"τ<sub>σ</sub> = {n(s.tau_sigma, 'tau_sigma')}, "
        f"warm-up {n(s.warmup, 'warmup')} steps, "
        f"{n(s.teacher_steps, 'teacher_steps')} real steps "
        f"fed first; the random action changes with probability "
        f"{n(s.p_change, 'p_change')} per step "
        f"({ctx.source(path, path.name)}).</p>"
    )
    return line, s.n_components


def _free(ctx: Context, i: int) -> str:
    vids = ctx.run.dream_videos(i)
    if not vids:
        return ""
    out = grid(
        ctx.video(ctx.run.dream_video(i, -1, j), f"Free dream {j}.")
        for j in vids[:MAX_DREAM_VIDEOS]
    )
    if len(vids) > MAX_DREAM_VIDEOS:
        out += (
            f'<p class="meta">{len(vids) - MAX_DREAM_VIDEOS} more in '
            f"{code(ctx.rel(ctx.run.dream_dir(i)) + '/')} (not copied).</p>"
        )
    return out


def _committed(ctx: Context, i: int, K: int | None) -> str:
    committed = [k for k in ctx.run.dream_commits(i) if ctx.run.dream_video(i, k, 0).is_file()]
    if not K and ctx.run.rnn_meta(i).is_file():
        K = read_rnn_meta(ctx.run.rnn_meta(i)).n_components
    parts = []
    if committed:
        parts.append(f"<h3>model_{i}: one committed dream per component</h3>")
        parts.append(
            grid(
                ctx.video(ctx.run.dream_video(i, k, 0), f"Committed to component k={k}.")
                for k in committed
            )
        )
    if is_number(K):
        absent = [k for k in range(int(K)) if k not in committed]
        if absent:
            ks = ", ".join(str(k) for k in absent)
            parts.append(
                missing(
                    f"committed dreams of model_{i} for k = {ks}",
                    ctx.cmd("dream", f"--model-index {i}", f"--commit {absent[0]}")
                    + (" (and so on for each k)" if len(absent) > 1 else ""),
                )
            )
    return "".join(parts)


def section(ctx: Context) -> Section:
    run = ctx.run
    models = [i for i in run.dream_models() if run.dream_videos(i) or run.dream_commits(i)]
    if not models:
        return SPEC.missing(ctx, f"dreams (no {ctx.rel(run.dreams_dir)}/model_*/ videos)")
    parts = [
        "<p><b>Play inside the dream:</b> "
        + code(ctx.cmd("play", f"--model {models[0]}"))
        + " opens a page where you steer M's dream with ← / → and watch π change as a "
        "fireball comes, commit to one component, change τ, let the controller play, and "
        "see the real game beside it (the README's section on play).</p>"
    ]
    for i in models:
        line, K = _settings(ctx, i)
        parts += [f"<h3>model_{i}</h3>", line, _free(ctx, i), _committed(ctx, i, K)]
    return SPEC.section("".join(parts))
