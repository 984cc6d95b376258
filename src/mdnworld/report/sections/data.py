"""The data section: the random policy's real episodes (``episodes/``, ``preview/``)."""

from __future__ import annotations

from mdnworld.records import EpisodeManifest, read_episode_manifest
from mdnworld.report import figures
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, code, facts, grid, how, image, missing
from mdnworld.text import is_number

SPEC = Spec(
    "data",
    "Data: real episodes",
    how(
        "The random policy's episodes in the real game: V and M learn from them.",
        "The histogram shows how long the random policy survives (its length, in steps); "
        "the video and the contact sheet show one stored episode at 64×64, as V sees it.",
    ),
    ("generate",),
)


def _facts(ctx: Context, m: EpisodeManifest) -> str:
    man = ctx.run.episode_manifest
    lengths = m.lengths
    s = sorted(lengths)
    median = (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2
    n_trunc = sum(e.truncated for e in m.episodes)
    items = [("episodes", ctx.num(len(m.episodes), man, "len(episodes)"))]
    if is_number(m.requested) and m.requested != len(m.episodes):
        items.append(("requested", ctx.num(m.requested, man, "config.episodes")))
    items += [
        ("frames", ctx.num(sum(lengths), man, "sum of episodes[].length")),
        ("mean length", ctx.num(sum(lengths) / len(lengths), man, "mean length", ".1f")),
        ("median length", ctx.num(median, man, "median length", ".1f")),
        ("shortest", ctx.num(s[0], man, "min length")),
        ("longest", ctx.num(s[-1], man, "max length")),
        ("cut at max_steps", ctx.num(n_trunc, man, "episodes with truncated = true")),
    ]
    return facts(items)


def _preview(ctx: Context, m: EpisodeManifest) -> str:
    """The first episode's preview video and contact sheet."""
    previews = ctx.run.preview_episodes()
    if not previews:
        return missing(
            f"the sample episode video ({ctx.rel(ctx.run.preview_dir)}/)", ctx.cmd("show")
        )
    man, idx = ctx.run.episode_manifest, previews[0]
    entry = next((e for e in m.episodes if e.index == idx), None)
    cap = f"Episode {idx} of the random policy (frames ×4)"
    if entry:
        cap += (
            f": seed {ctx.num(entry.seed, man, f'episodes[{idx}].seed', 'id')}, "
            f"length {ctx.num(entry.length, man, f'episodes[{idx}].length')} steps"
        )
    items = [ctx.video(ctx.run.preview(idx, ".mp4"), cap + ".")]
    alt, caption = (
        f"contact sheet of episode {idx}",
        f"Contact sheet of episode {idx}: frames in order.",
    )
    items.append(ctx.picture(ctx.run.preview(idx, "_contact.png"), alt, caption, pixel=True))
    return grid(items)


def section(ctx: Context) -> Section:
    man = ctx.run.episode_manifest
    rel = ctx.rel(man)
    if not man.is_file():
        n = len(ctx.run.episode_files())
        what = (
            f"{code(rel)} (there are {n} episode files but no manifest: generation unfinished?)"
            if n
            else f"the episodes ({code(rel)} not found)"
        )
        return SPEC.missing(ctx, what)
    m = read_episode_manifest(man)
    if not m.episodes:
        return SPEC.missing(ctx, f"episodes ({code(rel)} lists none)")
    path, href = ctx.figure("episode_lengths.png")
    figures.episode_lengths(m.lengths, path)
    plot = image(
        href,
        "histogram of episode lengths",
        f"Episode lengths, drawn from {ctx.source(man)}.",
        plot=True,
    )
    return SPEC.section(_facts(ctx, m) + plot + _preview(ctx, m))
