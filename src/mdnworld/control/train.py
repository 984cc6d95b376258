"""``mdnworld train-controller``: C trained by CMA-ES entirely inside M's dream (SPEC §8).

Read top to bottom: each generation CMA-ES (pycma) proposes ``popsize`` parameter vectors;
every candidate drives ``rollouts`` dreams, all popsize x rollouts dreams run as ONE batch of
``DreamEnv`` (dreams/env.py) until every dream has died (M's done head) or reached ``max_steps``;
a candidate's fitness is its mean survival in steps. CMA-ES is told the fitnesses (it
minimises, so it gets their negatives). Every ``eval_every`` generations the generation's best
candidate plays ``eval_episodes`` real games: its dream fitness next to its real score is the
dream-to-reality gap, in the log and in TensorBoard.

The CMA-ES state and its checkpoint (``cmaes_state.npz``) are in ``control/cmaes.py``.

Other files: ``controller.safetensors`` (+ ``.json``) = the CMA-ES mean (the trained
controller), ``best.safetensors`` = the candidate with the best dream fitness, ``log.jsonl``,
``tb/``; ``candidates.npz`` = each generation's best, and with ``select_top`` the re-scored
winner ``selected.safetensors`` and ``selection.json`` (control/select.py).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, get_args

import numpy as np
import torch

from mdnworld.checkpoints import MODELS, StartBank, cached_mdnrnn, save_weights
from mdnworld.config import ControllerConfig, DoneRule, ExecutorKind, to_dict
from mdnworld.control.cmaes import CMAES, load_state, save_state
from mdnworld.control.evaluate import read_controller
from mdnworld.control.executors import ControllerJob, Executor, make_executor
from mdnworld.control.realgame import PlayJob, play_job, seed_jobs
from mdnworld.control.select import keep_candidate, select_controller
from mdnworld.device import prepare_cpu, resolve_device
from mdnworld.dreams import DreamEnv
from mdnworld.errors import CheckpointError, ConfigError
from mdnworld.io import exclusive_lock, remove_stale_temps
from mdnworld.layout import RunLayout
from mdnworld.logs import Logger
from mdnworld.models.controller import ControllerArch, PopulationController
from mdnworld.models.mdnrnn import MDNRNN, StandardisedMDNRNN
from mdnworld.stage_log import machine

EVAL_SEED = 2_000_000
"""Real-game seeds used during training: EVAL_SEED + i (apart from data and evaluate seeds)."""


# --- fitness in the dream ------------------------------------------------------------------------


def dream_inputs(
    run_dir: Path | str, model_index: int, device: str
) -> tuple[StandardisedMDNRNN, torch.Tensor]:
    """M ``model_index`` (with a done head) on ``device`` and the dream starts: mu of the first
    frame of every training episode (M, Z). Both from the process's model cache
    (``checkpoints.MODELS``), so a worker loads them once per version of their files."""
    run = RunLayout(run_dir)
    model = cached_mdnrnn(run.root, model_index, device)
    if model.done is None:
        raise ConfigError(
            f"{run.rnn_model(model_index)}: the controller dreams need an M with a done head; "
            f"train one with `mdnworld train-rnn --done-head --model-index N` and set "
            f"controller.model_index to N"
        )
    files = (run.rnn_split, run.latent_manifest, run.starts)
    start_mu = MODELS.get(files, lambda: StartBank.from_run(run.root).at(0)[1], "start_mu")
    return model, torch.from_numpy(start_mu)


@torch.no_grad()
def dream_fitness(
    model: MDNRNN,
    start_z: torch.Tensor,
    params: np.ndarray,
    rollouts: int,
    tau: float,
    max_steps: int,
    done_threshold: float,
    seed: int,
    done: str = "sample",
    compact: float = 0.25,
    dropout: float = 0.0,
) -> np.ndarray:
    """Mean dream survival (steps) of each candidate: params (P, n) -> (P,) float64.

    All P x rollouts dreams run as one DreamEnv batch until each has ended once. Once a
    ``compact`` share of the batch has ended, the ended dreams are dropped (DreamEnv.keep),
    so a generation costs about the steps its dreams survive, not the longest dream's steps
    times the batch."""
    P = len(params)
    env = DreamEnv(model, start_z, P * rollouts, tau, max_steps, done_threshold, seed, False, done,
                   dropout)  # fmt: skip
    arch = ControllerArch(model.arch.latent_dim, model.arch.hidden, model.arch.action_dim)
    owner = torch.arange(P, device=env.device).repeat_interleave(rollouts)
    policy = PopulationController(torch.as_tensor(params, device=env.device), owner, arch)
    z, h = env.reset()
    survived = torch.zeros(P * rollouts, device=env.device)
    rows = torch.arange(P * rollouts, device=env.device)  # row -> dream
    while not env.finished.all():
        (z, h), reward, _, _ = env.step(policy(z, h))
        survived[rows] += reward
        if compact > 0 and env.finished.sum() >= compact * env.n:
            alive = (~env.finished).nonzero().flatten()
            env.keep(alive)
            policy.keep(alive)
            rows = rows[alive]
            z, h = env.obs
    return survived.view(P, rollouts).mean(1).double().cpu().numpy()


@dataclasses.dataclass(frozen=True, eq=False)
class DreamJob(ControllerJob):
    """One executor job: the dream fitness of P candidates, ``params`` (P, n) (``dream_job``).
    Fields: ``run_dir``, ``model_index`` (the M that dreams, from the run's training episodes'
    starts), ``params`` (``ControllerJob``), then these."""

    device: str
    """Where the dreams run ("cpu", "cuda", ...; resolved, not "auto")."""
    rollouts: int
    """Dreams per candidate; a fitness is their mean survival."""
    tau: float
    max_steps: int
    done_threshold: float
    seed: int
    """Seeds the dreams' random streams: the same job gives the same fitnesses."""
    done: str = "sample"
    """How the done head ends a dream: "sample" or "threshold" (``config.DoneRule``)."""
    threads: int = 0
    """Torch threads in the worker; 0 = leave as they are."""
    dropout: float = 0.0
    """Dropout on M's LSTM output, one mask per dream (``ControllerConfig.dream_dropout``)."""
    PARAMS_SHAPE: ClassVar[tuple[str, ...]] = ("P", "n")


def dream_job(job: DreamJob) -> list[float]:
    """Run a ``DreamJob``: P fitnesses (mean dream survival in steps), in candidate order."""
    if job.threads:
        torch.set_num_threads(job.threads)
    model, starts = dream_inputs(job.run_dir, job.model_index, job.device)
    fit = dream_fitness(model, starts, job.params, job.rollouts, job.tau, job.max_steps,
                        job.done_threshold, job.seed, job.done, dropout=job.dropout)  # fmt: skip
    return fit.tolist()


def population_fitness(
    run_dir: Path, cfg: ControllerConfig, X: np.ndarray, generation: int, executor: Executor
) -> np.ndarray:
    """(P, n) -> (P,): the generation's dreams, split into ``dream_chunks`` executor jobs."""
    device = str(resolve_device(cfg.device))
    chunks = np.array_split(np.arange(len(X)), max(1, min(cfg.dream_chunks, len(X))))
    jobs = [
        DreamJob(
            run_dir=str(run_dir),
            model_index=cfg.model_index,
            params=X[idx],
            device=device,
            rollouts=cfg.rollouts,
            tau=cfg.tau,
            max_steps=cfg.max_steps,
            done_threshold=cfg.done_threshold,
            seed=cfg.seed * 1_000_003 + generation * 101 + c,
            done=cfg.done,
            threads=cfg.threads,
            dropout=cfg.dream_dropout,
        )
        for c, idx in enumerate(chunks)
    ]
    return np.concatenate([np.asarray(f) for f in executor.map(dream_job, jobs)])


def real_scores(
    run_dir: Path, model_index: int, params: np.ndarray, seeds: list[int], max_steps: int,
    executor: Executor, workers: int,
) -> list[int]:  # fmt: skip
    """Real-game scores of one controller on ``seeds`` (spread over the executor)."""
    base = PlayJob(str(run_dir), model_index, params, max_steps)
    rows = [r for part in executor.map(play_job, seed_jobs(base, seeds, workers)) for r in part]
    return [r["score"] for r in rows]


# --- the loop ------------------------------------------------------------------------------------


def save_controller(path: Path, params: np.ndarray, arch: ControllerArch, meta: dict) -> None:
    """Flat parameters (n,) as a controller file (``read_controller`` reads it back)."""
    n = arch.inputs * arch.action_dim
    tensors = {
        "fc.weight": torch.as_tensor(params[:n], dtype=torch.float32).reshape(arch.action_dim, -1),
        "fc.bias": torch.as_tensor(params[n:], dtype=torch.float32),
    }
    save_weights(path, tensors, {"arch": dataclasses.asdict(arch), **meta})


def train_controller(
    run_dir: Path,
    cfg: ControllerConfig,
    log: Callable[[str], None] = print,
    stop_after_generations: int | None = None,
) -> dict[str, Any]:
    """Run CMA-ES up to ``cfg.generations`` (resuming a saved run); returns a summary.
    ``stop_after_generations`` stops after that many generations of this call, like a kill.
    One process at a time per run (``controller/.lock``): a second one would fork the state."""
    for name, kind in (("done", DoneRule), ("executor", ExecutorKind)):
        if getattr(cfg, name) not in get_args(kind):
            raise ConfigError(f"controller.{name} must be one of {list(get_args(kind))}, got "
                              f"{getattr(cfg, name)!r}")  # fmt: skip
    run = RunLayout(run_dir)
    with exclusive_lock(run.controller_lock, "train-controller"):
        return _train_controller(run, cfg, log, stop_after_generations)


def _train_controller(
    run: RunLayout,
    cfg: ControllerConfig,
    log: Callable[[str], None],
    stop_after_generations: int | None,
) -> dict[str, Any]:
    remove_stale_temps(run.controller_dir)  # what a killed run left
    prepare_cpu(cfg.threads)
    device = str(resolve_device(cfg.device))
    model, starts = dream_inputs(run.root, cfg.model_index, device)
    arch = ControllerArch(model.arch.latent_dim, model.arch.hidden, model.arch.action_dim)
    if run.controller_state.exists():
        es, best = load_state(run.controller_state, cfg, arch.n_params, log)
        log(f"train-controller: resumed after generation {es.generation} from "
            f"{run.controller_state}")  # fmt: skip
    else:
        x0 = _initial_params(cfg, arch)
        es = CMAES(arch.n_params, cfg.sigma0, cfg.popsize, cfg.seed, x0=x0)
        best = {"fitness": -1.0, "generation": 0, "params": x0}
    log(
        f"train-controller: {arch.n_params} parameters, population {cfg.popsize} x "
        f"{cfg.rollouts} dreams (tau {cfg.tau}, {len(starts)} start frames), M model_"
        f"{cfg.model_index}, device {device}, executor {cfg.executor}"
    )
    executor = make_executor(cfg.executor, cfg.address, cfg.workers)
    logger = Logger(run.controller_dir, resume_step=es.generation)
    ran = 0
    try:
        while es.generation < cfg.generations:
            if stop_after_generations is not None and ran >= stop_after_generations:
                return {"generation": es.generation, "stopped": True}
            best = _generation(run, cfg, es, best, executor, logger, log)
            _save_generation(run, cfg, es, best, arch)
            ran += 1
        if cfg.select_top > 0 and (ran or not run.controller_weights("selected").exists()):
            rescore = functools.partial(population_fitness, run.root)
            sel = select_controller(run, cfg, es.mean, rescore, executor, log)
            meta = {"generation": es.generation, "model_index": cfg.model_index,
                    "config": to_dict(cfg), "what": f"selected: {sel['candidate']}",
                    "fitness": sel["rescored"]}  # fmt: skip
            save_controller(run.controller_weights("selected"), sel["params"], arch, meta)
    finally:
        logger.close()
        executor.close()
    log(f"train-controller: done after {es.generation} generations; "
        f"{run.controller_weights('mean')}")  # fmt: skip
    return {"generation": es.generation, "stopped": False, "best_fitness": best["fitness"]}


def _initial_params(cfg: ControllerConfig, arch: ControllerArch) -> np.ndarray:
    """Where the search starts: zeros, or ``controller.init``'s parameters (n,) float32."""
    if not cfg.init:
        return np.zeros(arch.n_params, np.float32)
    params, meta = read_controller(Path(cfg.init))
    if meta["arch"] != dataclasses.asdict(arch):
        want = dataclasses.asdict(arch)
        raise CheckpointError(
            f"{cfg.init}: controller.init is a controller for {meta['arch']}, this M needs {want}"
        )
    return params


def _generation(
    run: RunLayout, cfg: ControllerConfig, es: CMAES, best: dict[str, Any], executor: Executor,
    logger: Logger, log: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """One generation: ask, dream, tell; every ``eval_every`` generations its best candidate
    in the real game; its log row. Returns the best candidate so far."""
    t0 = time.perf_counter()
    X = es.ask()
    fit = population_fitness(run.root, cfg, X, es.generation, executor)
    es.tell(X, fit)
    g = es.generation
    keep_candidate(run.controller_candidates, g, float(fit.max()), X[int(fit.argmax())])
    if fit.max() > best["fitness"]:
        best = {"fitness": float(fit.max()), "generation": g,
                "params": X[int(fit.argmax())].astype(np.float32)}  # fmt: skip
    row = {
        "fitness/mean": float(fit.mean()),
        "fitness/best": float(fit.max()),
        "fitness/worst": float(fit.min()),
        "cmaes/sigma": float(es.es.sigma),
        "seconds": time.perf_counter() - t0,
    }
    msg = (f"gen {g}: dream survival mean {fit.mean():.0f} best {fit.max():.0f} "
           f"worst {fit.min():.0f} ({row['seconds']:.1f} s)")  # fmt: skip
    if cfg.eval_every and g % cfg.eval_every == 0:  # the generation's best, for real
        t_real = time.perf_counter()
        eval_seeds = [EVAL_SEED + i for i in range(cfg.eval_episodes)]
        scores = real_scores(run.root, cfg.model_index, X[int(fit.argmax())], eval_seeds,
                             cfg.max_steps, executor, cfg.workers or 2)  # fmt: skip
        row.update({"real/mean": float(np.mean(scores)), "real/std": float(np.std(scores)),
                    "real/seconds": time.perf_counter() - t_real})  # fmt: skip
        msg += (f"; its best candidate: dream {fit.max():.0f}, real game "
                f"{np.mean(scores):.0f} ± {np.std(scores):.0f}")  # fmt: skip
    logger.log(g, tags={"machine": machine()}, **row)
    log(f"train-controller: {msg}")
    return best


def _save_generation(
    run: RunLayout, cfg: ControllerConfig, es: CMAES, best: dict[str, Any], arch: ControllerArch
) -> None:
    """After every generation: the controller (the mean) and the best dream candidate, then
    the CMA-ES state, last: it is where a run resumes, so a kill before it redoes this
    generation (and rewrites both weights) instead of leaving them a generation behind."""
    meta = {"generation": es.generation, "model_index": cfg.model_index, "config": to_dict(cfg)}
    save_controller(run.controller_weights("mean"), es.mean, arch,
                     {**meta, "what": "CMA-ES mean"})  # fmt: skip
    save_controller(run.controller_weights("best"), best["params"], arch,
                     {**meta, "what": "best dream candidate", **{
                         k: best[k] for k in ("fitness", "generation")}})  # fmt: skip
    save_state(run.controller_state, es, best, cfg)
