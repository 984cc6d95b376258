"""The pipeline: every stage as one function ``(run_dir, cfg, log) -> None``, in order.

Each stage reads and writes files in one run directory and is resumable by itself;
``is_done`` lets ``mdnworld pipeline`` skip a finished stage without even starting it; each
asks ``layout.RunLayout``, the one owner of the run directory's files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mdnworld.config import RunConfig, to_dict
from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout
from mdnworld.stage_log import measure_stage

Log = Callable[[str], None]


def run_generate(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.data.generate import generate
    from mdnworld.procs import resolve_workers

    g = cfg.generate
    workers = resolve_workers(g.workers)
    log(f"generate: {g.episodes} episodes with {workers} worker(s) into {run_dir}")
    frames = 0
    with tqdm(total=g.episodes, unit="ep", desc="generate", dynamic_ncols=True) as bar:

        def progress(entry: dict) -> None:
            nonlocal frames
            frames += entry["length"]
            bar.update(1)
            elapsed = bar.format_dict["elapsed"] or 1e-9
            bar.set_postfix(frames_per_s=f"{frames / elapsed:.0f}", refresh=False)

        summary = generate(run_dir, g, progress=progress, log=bar.write)
        bar.n = summary.episodes
        bar.refresh()
    log(f"generate: {summary}")


def generate_done(run_dir: Path, cfg: RunConfig) -> bool:
    return RunLayout(run_dir).generate_done(cfg.generate.episodes)


def run_show(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.data.preview import show_episode

    for p in show_episode(run_dir, cfg.show):
        log(f"show: wrote {p}")


def show_done(run_dir: Path, cfg: RunConfig) -> bool:
    return RunLayout(run_dir).show_done(cfg.show.episode)


def run_train_vae(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.train.vae import train_vae

    train_vae(run_dir, cfg.vae, log)


def train_vae_done(run_dir: Path, cfg: RunConfig) -> bool:
    return RunLayout(run_dir).vae_done(cfg.vae.epochs)


def run_encode(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.train.encode import encode_run

    encode_run(run_dir, cfg.encode, log)


def encode_done(run_dir: Path, cfg: RunConfig) -> bool:
    return RunLayout(run_dir).encode_done()


def run_train_rnn(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.train.rnn import train_rnn

    train_rnn(run_dir, cfg.rnn, log)


def train_rnn_done(run_dir: Path, cfg: RunConfig) -> bool:
    r = cfg.rnn
    return RunLayout(run_dir).rnn_done(list(range(r.model_index, r.model_index + r.models)))


def run_dream(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.dreams.videos import run_dreams

    run_dreams(run_dir, cfg.dream, log)


def dream_done(run_dir: Path, cfg: RunConfig) -> bool:
    d = cfg.dream
    return RunLayout(run_dir).dreams_done(d.model_index, d.commit, d.committed)


def run_analyze(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.analysis.run import run_analyses

    run_analyses(run_dir, cfg.analyze, log=log)


def analyze_done(run_dir: Path, cfg: RunConfig) -> bool:
    return RunLayout(run_dir).analyses_done()


def run_train_controller(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.control.train import train_controller

    train_controller(run_dir, cfg.controller, log)


def train_controller_done(run_dir: Path, cfg: RunConfig) -> bool:
    return RunLayout(run_dir).controller_done(cfg.controller.generations)


def needs_done_head(cfg: RunConfig) -> str | None:
    if cfg.rnn.done_head:
        return None
    return "M has no done head to end the controller's dreams (set rnn.done_head = true)"


def needs_shared_mixture(cfg: RunConfig) -> str | None:
    if cfg.rnn.mixture == "shared":
        return None
    return "dreams with pi bars and the analyses need the paper's shared mixture (one pi)"


def run_evaluate(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.control.evaluate import evaluate

    evaluate(run_dir, cfg.evaluate, log)


def evaluate_done(run_dir: Path, cfg: RunConfig) -> bool:
    return RunLayout(run_dir).evaluate_done(cfg.controller.generations, cfg.evaluate.episodes)


def run_iterate(run_dir: Path, cfg: RunConfig, log: Log = print) -> None:
    from mdnworld.iterate import iterate

    for row in iterate(run_dir, cfg, log):
        if row["mean"] is not None:
            log(f"iterate: round {row['round']}: {row['mean']:.0f} ± {row['std']:.0f} on the "
                f"choice seeds, {row['episodes']} episodes of data")  # fmt: skip


def iterate_done(run_dir: Path, cfg: RunConfig) -> bool:
    from mdnworld.iterate import iterate_done as done

    return done(run_dir, cfg)


def needs_rounds(cfg: RunConfig) -> str | None:
    return needs_done_head(cfg) or (None if cfg.iterate.rounds else "iterate.rounds = 0")


@dataclass(frozen=True)
class Stage:
    name: str
    """The CLI subcommand."""
    section: str
    """The config table holding its settings."""
    help: str
    run: Callable[[Path, RunConfig, Log], None]
    is_done: Callable[[Path, RunConfig], bool]
    skip_reason: Callable[[RunConfig], str | None] = lambda cfg: None
    """Why ``pipeline`` leaves this stage out for a config (None: it runs)."""


STAGES: list[Stage] = [
    Stage(
        "generate",
        "generate",
        "step 1: random-policy episodes from the real game",
        run_generate,
        generate_done,
    ),
    Stage("show", "show", "MP4/GIF/PNG previews of one stored episode", run_show, show_done),
    Stage(
        "train-vae",
        "vae",
        "step 2: train the VAE (V) on the stored frames",
        run_train_vae,
        train_vae_done,
    ),
    Stage(
        "encode", "encode", "step 3: every frame -> (mu, logvar) under V", run_encode, encode_done
    ),
    Stage(
        "train-rnn",
        "rnn",
        "step 4: train the MDN-RNN(s) (M) on windows of the encoded episodes",
        run_train_rnn,
        train_rnn_done,
    ),
    Stage(
        "dream",
        "dream",
        "dreams of one M decoded by V: MP4/GIF with live pi bars + raw arrays",
        run_dream,
        dream_done,
        needs_shared_mixture,
    ),
    Stage(
        "analyze",
        "analyze",
        "the paper's three analyses: components-over-time, worlds-events, committed",
        run_analyze,
        analyze_done,
        needs_shared_mixture,
    ),
    Stage(
        "train-controller",
        "controller",
        "C: CMA-ES on a linear controller inside M's dream (needs M with a done head)",
        run_train_controller,
        train_controller_done,
        needs_done_head,
    ),
    Stage(
        "evaluate",
        "evaluate",
        "the trained controller in the real game: mean ± std score, best/worst videos",
        run_evaluate,
        evaluate_done,
        needs_done_head,
    ),
    Stage(
        "iterate",
        "iterate",
        "World Models' iterative training: C plays the real game, M is fine-tuned on those "
        "episodes too, C retrained in the new dream; iterate.rounds times",
        run_iterate,
        iterate_done,
        needs_rounds,
    ),
]


def save_run_config(run_dir: Path, cfg: RunConfig) -> None:
    """Record the resolved config of the latest command in ``RUN_DIR/config.json``."""
    atomic_write_json(RunLayout(run_dir).config_json, to_dict(cfg))


def run_pipeline(run_dir: Path, cfg: RunConfig, log: Log = print, until: str | None = None) -> None:
    """Every stage in order (finished ones skipped), up to and including ``until`` (a stage
    name; None: all), then the report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_run_config(run_dir, cfg)
    names = [stage.name for stage in STAGES]
    for stage in STAGES[: names.index(until) + 1 if until else len(STAGES)]:
        reason = stage.skip_reason(cfg)
        if reason:
            log(f"[{stage.name}] left out: {reason}")
            continue
        if stage.is_done(run_dir, cfg):
            log(f"[{stage.name}] already finished, skipped")
            continue
        log(f"[{stage.name}] running")
        with measure_stage(run_dir, stage.name):
            stage.run(run_dir, cfg, log)
    from mdnworld.report import write_report

    index = write_report(run_dir, log)
    log(f"pipeline finished: {run_dir}; report: {index}")
