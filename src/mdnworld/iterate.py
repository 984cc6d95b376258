"""``mdnworld iterate``: World Models' iterative training (Ha & Schmidhuber 2018, §5).

The controller trained in the dream plays the real game; its episodes (with their deaths) join
M's data; M is fine-tuned on all of it; the controller is retrained in the new dream, starting
from where it was; repeat. V stays as it is. Round r (1, 2, ...) is a run directory of its own,
``RUN_DIR/iterate/round_<r>/``, so every stage and the report read it like any run::

    vae/         a link to RUN_DIR/vae
    episodes/    links to the last round's episode files + ``episodes`` new real episodes
    latents/     links to the last round's latents + the new episodes encoded by V
    rnn/model_i  M fine-tuned from the last round's M (``rnn.init``) for ``rnn_epochs`` epochs
    controller/  C trained for ``generations`` from the last round's C (``controller.init``)

``RUN_DIR/iterate/round_<r>.json`` is round r's row: its data, M's validation NLL, C's dream
fitness and its real-game score on the choice seeds (round 0: the run's own controller).
Every step skips what is done, so a stopped ``iterate`` resumes where it stopped. The held-out
score of the last round is then ``mdnworld evaluate RUN_DIR/iterate/round_<r>``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.config import RunConfig
from mdnworld.control.evaluate import read_controller
from mdnworld.control.executors import Executor, make_executor
from mdnworld.control.realgame import PlayJob, play_job
from mdnworld.control.train import real_scores, train_controller
from mdnworld.data.episodes import Episode, episode_info, read_manifest, save_episode
from mdnworld.errors import ConflictError
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout, episode_index
from mdnworld.records import read_log_rows, read_rnn_meta
from mdnworld.train.encode import encode_run
from mdnworld.train.rnn import train_rnn

Log = Callable[[str], None]
ROUND_SEEDS = 10_000
"""Round r's episodes use seeds iterate.seed + ROUND_SEEDS * r + i."""


def iterate(run_dir: Path, cfg: RunConfig, log: Log = print) -> list[dict[str, Any]]:
    """Run (or resume) ``cfg.iterate.rounds`` rounds after the run's own controller; returns
    every round's row, round 0 (the run's controller) first."""
    run = RunLayout(run_dir)
    ctl = cfg.controller
    executor = make_executor(ctl.executor, ctl.address, ctl.workers)
    try:  # round 0 reads the run's controller (read_controller: a MissingError if none)
        rows = [_score_round(run, 0, cfg, executor, log)]
        for r in range(1, cfg.iterate.rounds + 1):
            rows.append(_round(run, r, cfg, executor, log))
    finally:
        executor.close()
    return rows


def iterate_done(run_dir: Path, cfg: RunConfig) -> bool:
    run = RunLayout(run_dir)
    return all(run.iterate_summary(r).exists() for r in range(cfg.iterate.rounds + 1))


def _round(run: RunLayout, r: int, cfg: RunConfig, executor: Executor, log: Log) -> dict:
    """Round ``r``: collect, link, encode, fine-tune M, retrain C, score C."""
    if run.iterate_summary(r).exists():
        return _score_round(run, r, cfg, executor, log)  # checks the settings
    t0 = time.perf_counter()
    prev = _previous(run, r)
    here = RunLayout(run.iterate_round(r))
    added = _collect(run, prev, here, r, cfg, executor, log)
    _link(run, prev, here)
    encode_run(here.root, cfg.encode, log)
    mi = cfg.controller.model_index
    rnn = dataclasses.replace(cfg.rnn, model_index=mi, models=1, epochs=cfg.iterate.rnn_epochs,
                              init=str(prev.rnn_model(mi).resolve()))  # fmt: skip
    train_rnn(here.root, rnn, log)
    ctl = dataclasses.replace(
        cfg.controller,
        generations=cfg.iterate.generations,
        init=str(prev.controller_weights(cfg.iterate.which).resolve()),
    )
    train_controller(here.root, ctl, log)
    extra = {"episodes_added": added, "episodes": len(here.episode_files()),
             "seconds": time.perf_counter() - t0}  # fmt: skip
    return _score_round(run, r, cfg, executor, log, extra)


def _previous(run: RunLayout, r: int) -> RunLayout:
    return run if r == 1 else RunLayout(run.iterate_round(r - 1))


def _collect(
    run: RunLayout, prev: RunLayout, here: RunLayout, r: int, cfg: RunConfig,
    executor: Executor, log: Log,
) -> int:  # fmt: skip
    """The last round's controller plays ``iterate.episodes`` real episodes, written as new
    episode files after the last round's indices (a stopped collection goes on); how many."""
    it, ctl = cfg.iterate, cfg.controller
    first = max(episode_index(p) for p in prev.episode_files()) + 1
    seeds = [it.seed + ROUND_SEEDS * r + i for i in range(it.episodes)]
    todo = [(first + i, s) for i, s in enumerate(seeds) if not here.episode(first + i).exists()]
    params, _ = read_controller(prev.controller_weights(it.which))
    here.episodes_dir.mkdir(parents=True, exist_ok=True)
    chunk = 8 * (ctl.workers or os.cpu_count() or 1)  # episodes in memory (<= 26 MB of frames each)
    base = PlayJob(str(prev.root), ctl.model_index, params, ctl.max_steps, record=True,
                   decode=False)  # fmt: skip
    for k in range(0, len(todo), chunk):
        part = todo[k : k + chunk]
        jobs = [dataclasses.replace(base, seeds=(s,)) for _, s in part]
        for (index, _), (row,) in zip(part, executor.map(play_job, jobs), strict=True):
            save_episode(here.episode(index), _episode(row, ctl.max_steps))
        log(f"iterate round {r}: {k + len(part)} / {len(todo)} real episodes collected")
    return len(seeds)


def _episode(row: dict, max_steps: int) -> Episode:
    """A played episode (``realgame.Episode`` with ``record``) as an episode file's arrays."""
    n = len(row["frames"])
    dones = np.zeros(n, bool)
    dones[-1] = row["score"] < max_steps  # died, rather than reached the cap
    return Episode(
        frames=row["frames"],
        actions=row["actions"].reshape(n, -1).astype(np.float32),
        rewards=np.ones(n, np.float32),
        dones=dones,
        seed=int(row["seed"]),
    )


def _link(run: RunLayout, prev: RunLayout, here: RunLayout) -> None:
    """Make ``here`` a run: V and the last round's episodes and latents as links to the real
    files, the episode manifest listing old and new, the latents' manifest copied."""
    _symlink(here.root / "vae", run.vae_dir.resolve())
    here.latents_dir.mkdir(parents=True, exist_ok=True)
    for p in prev.episode_files():
        _symlink(here.episode(episode_index(p)), p.resolve())
    for p in prev.latent_files():
        _symlink(here.latents_dir / p.name, p.resolve())
    atomic_write_json(here.latent_manifest, read_json(prev.latent_manifest))
    config, entries = read_manifest(prev.root)
    for p in here.episode_files():
        if episode_index(p) not in entries:
            entries[episode_index(p)] = episode_info(p).entry()
    man = read_json(prev.episode_manifest)
    man["episodes"] = [entries[i] for i in sorted(entries)]
    man["config"] = {**config, "iterate": "episodes past the first run's were played by C"}
    atomic_write_json(here.episode_manifest, man)


def _symlink(link: Path, target: Path) -> None:
    """``link`` -> ``target`` as a relative link, so a run directory moved or copied whole
    (``cp -a``) keeps its rounds working."""
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


def _score_round(
    run: RunLayout, r: int, cfg: RunConfig, executor: Executor, log: Log,
    extra: dict | None = None,
) -> dict:  # fmt: skip
    """Round ``r``'s row: its controller on the choice seeds, M's and C's numbers; saved."""
    it, ctl = cfg.iterate, cfg.controller
    seeds = [it.eval_seed + i for i in range(it.eval_episodes)]
    path = run.iterate_summary(r)
    if path.exists():
        row = read_json(path)
        if (row.get("which"), row.get("seeds")) != (it.which, seeds):
            raise ConflictError(
                f"{path}: scored the {row.get('which')!r} controller on other seeds than "
                f"iterate.which = {it.which!r}, {len(seeds)} from {it.eval_seed}; keep the "
                f"settings or move {path.parent} away to start the rounds again"
            )
        return row
    here = run if r == 0 else RunLayout(run.iterate_round(r))
    params, meta = read_controller(here.controller_weights(it.which))
    scores = real_scores(here.root, ctl.model_index, params, seeds, ctl.max_steps, executor,
                         ctl.workers or 2)  # fmt: skip
    m = read_rnn_meta(here.rnn_meta(ctl.model_index))
    log_rows = read_log_rows(here.controller_log) if here.controller_log.exists() else []
    fitness = [row for row in log_rows if "fitness/mean" in row]
    row = {
        "round": r,
        "episodes": len(here.episode_files()),
        "rnn_val_nll_per_dim": m.metrics.val_nll_per_dim,
        "dream_fitness_mean": fitness[-1]["fitness/mean"] if fitness else None,
        "generation": meta["generation"],
        "which": it.which,
        "seeds": seeds,
        "scores": scores,
        "mean": float(np.mean(scores)) if scores else None,
        "std": float(np.std(scores)) if scores else None,
        **(extra or {}),
    }
    atomic_write_json(run.iterate_summary(r), row)
    if scores:
        log(f"iterate round {r}: real game on the choice seeds {row['mean']:.0f} ± "
            f"{row['std']:.0f} ({len(scores)} episodes)")  # fmt: skip
    return row
