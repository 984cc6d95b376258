"""The V section: V's final metrics, loss curves and reconstructions (``vae/``)."""

from __future__ import annotations

from mdnworld.records import dedupe, read_log_rows, read_vae_meta
from mdnworld.report import figures
from mdnworld.report.context import Context, Spec
from mdnworld.report.html import Section, code, facts, how, image, missing

SPEC = Spec(
    "vae",
    "V: the VAE",
    how(
        "V compresses each 64×64 frame into a latent z; the curves are its losses while "
        "training, and the grid shows real validation frames (top) above V's "
        "reconstructions of them (bottom).",
        "The validation reconstruction loss should fall and level off; KL should stay "
        "clearly above 0 (near 0, z carries no information about the frame).",
    ),
    ("train-vae",),
)


def _meta(ctx: Context) -> str:
    path = ctx.run.vae_meta
    if not path.is_file():
        return missing(
            f"V's final weights ({code(ctx.rel(path))}): training unfinished or running",
            ctx.cmd("train-vae"),
        )
    m = read_vae_meta(path)
    episodes = (
        f"{ctx.num(m.train_episodes, path, 'train_episodes')} / "
        f"{ctx.num(m.val_episodes, path, 'val_episodes')}"
    )
    return facts(
        [
            ("val reconstruction (nats/frame)", ctx.num(m.val_recon, path, "val.recon", ",.1f")),
            ("val KL (nats/frame)", ctx.num(m.val_kl, path, "val.kl", ".2f")),
            ("latent dims", ctx.num(m.latent_dim, path, "arch.latent_dim")),
            ("epochs", ctx.num(m.epochs, path, "config.epochs")),
            ("steps", ctx.num(m.steps, path, "steps")),
            ("train / val episodes", episodes),
        ]
    )


def _curves(ctx: Context) -> str:
    path = ctx.run.vae_log
    if not path.is_file():
        return ""
    rows = read_log_rows(path)
    train = dedupe((r for r in rows if "train/recon" in r), "step")
    val = dedupe((r for r in rows if "val/recon" in r), "epoch")
    if not (train or val):
        return ""
    fig, href = ctx.figure("vae_losses.png")
    figures.vae_curves(train, val, fig)
    return image(href, "V's loss curves", f"V's losses, drawn from {ctx.source(path)}.", plot=True)


def section(ctx: Context) -> Section:
    run = ctx.run
    grid = run.vae_reconstructions
    if not any(p.is_file() for p in (run.vae_meta, run.vae_log, grid)):
        return SPEC.missing(ctx, f"V (no {ctx.rel(run.vae_dir)}/ files)")
    caption = (
        "Top: validation frames; bottom: V's reconstructions from the posterior mean (latest "
        "epoch)."
    )
    recon = ctx.picture(grid, "V's reconstructions", caption, pixel=True) or missing(
        f"the reconstruction grid ({code(ctx.rel(grid))})", ctx.cmd("train-vae")
    )
    return SPEC.section(_meta(ctx) + _curves(ctx) + recon)
