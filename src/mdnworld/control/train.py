"""``mdnworld train-controller``: C trained by CMA-ES entirely inside M's dream (SPEC §8).

Read top to bottom: each generation CMA-ES (pycma) proposes ``popsize`` parameter vectors;
every candidate drives ``rollouts`` dreams, all popsize x rollouts dreams run as ONE batch of
``DreamEnv`` (dreams.py) until every dream has died (M's done head) or reached ``max_steps``;
a candidate's fitness is its mean survival in steps. CMA-ES is told the fitnesses (it
minimises, so it gets their negatives). Every ``eval_every`` generations the generation's best
candidate plays ``eval_episodes`` real games: its dream fitness next to its real score is the
dream-to-reality gap, in the log and in TensorBoard.

Checkpoint (after every generation), ``RUN_DIR/controller/cmaes_state.npz``, format
``mdnworld.cmaes/2``, no pickle: ``fitness`` (G, popsize) float64, every generation's fitness
in ask order; ``mean`` (n,) float64, the CMA-ES mean after generation G; ``best_params`` (n,)
float32; ``meta``, a JSON string (format, settings, pycma and numpy versions, σ, the best so
far, a checksum of the CMA-ES mean after every generation, and the restart point, if any).
pycma's state is not stored: it is rebuilt by replaying ask/tell with the recorded fitnesses
from the same seed, which reproduces it exactly on the same machine (its random numbers come
from numpy's global generator, which we keep private to it); the checksums prove the replay.
So a run killed anywhere resumes to the same next generation.

On another machine (other numpy, BLAS or CPU) the replay can differ in the last bit, and pycma
amplifies that (an eigenvector's sign flips the samples): a checksum mismatch. The run then
*restarts* CMA-ES at the saved mean and σ with a fresh covariance, says so, and records that
restart point (``restart_mean`` (n,) float64, its generation and σ in ``meta``), so later
resumes there replay exactly from it. With hundreds of parameters (577 in World Models' setup)
the covariance learns slowly (pycma's rank-μ rate there is ~1e-4 per generation), so little is
lost. ``mdnworld.cmaes/1`` files (no mean)
still resume where they replay.

Other files: ``controller.safetensors`` (+ ``.json``) = the CMA-ES mean (the trained
controller), ``best.safetensors`` = the candidate with the best dream fitness, ``log.jsonl``,
``tb/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, get_args

import cma
import numpy as np
import torch

from mdnworld.checkpoints import MODELS, StartBank, cached_mdnrnn, save_weights
from mdnworld.config import ControllerConfig, DoneRule, ExecutorKind, to_dict
from mdnworld.control.executors import ControllerJob, Executor, make_executor
from mdnworld.control.realgame import PlayJob, play_job, seed_jobs
from mdnworld.device import resolve_device, set_threads
from mdnworld.dreams import DreamEnv
from mdnworld.errors import CheckpointError, ConfigError
from mdnworld.io import exclusive_lock, remove_stale_temps, write_npz
from mdnworld.layout import RunLayout
from mdnworld.logs import Logger
from mdnworld.models.controller import ControllerArch, PopulationController
from mdnworld.models.mdnrnn import MDNRNN, StandardisedMDNRNN
from mdnworld.stage_log import machine

CMAES_FORMAT = "mdnworld.cmaes/2"
READABLE_FORMATS = ("mdnworld.cmaes/1", CMAES_FORMAT)
EVAL_SEED = 2_000_000
"""Real-game seeds used during training: EVAL_SEED + i (apart from data and evaluate seeds)."""


# --- CMA-ES with a private random stream and a replayable state ---------------------------------


class CMAES:
    """pycma's CMAEvolutionStrategy from zeros; ``fitness`` is maximised.

    pycma draws from numpy's global generator; we swap a private state in around every call,
    so nothing else can shift its stream, and the state is just (seed, fitness history).
    """

    def __init__(
        self, n: int, sigma0: float, popsize: int, seed: int, restart: Restart | None = None
    ) -> None:
        """A fresh run from zeros, or with ``restart`` one that goes on from a saved mean and σ
        (keeping the generations before it as history, not replayed)."""
        self._state: dict | None = None
        x0, g0 = (np.zeros(n), 0) if restart is None else (restart.mean, restart.generation)
        sigma = sigma0 if restart is None else restart.sigma
        opts = {"popsize": popsize, "seed": seed + 1 + g0, "verbose": -9}  # pycma: 0 = time
        with self._random():
            self.es = cma.CMAEvolutionStrategy(x0, sigma, opts)
        self.restart = restart
        self.fitness: list[np.ndarray] = [] if restart is None else list(restart.fitness)
        self.checks: list[float] = [] if restart is None else list(restart.checks)

    @contextlib.contextmanager
    def _random(self) -> Iterator[None]:
        outer = np.random.get_state()
        if self._state is not None:
            np.random.set_state(self._state)
        try:
            yield
        finally:
            self._state = np.random.get_state()
            np.random.set_state(outer)

    def ask(self) -> np.ndarray:
        """(popsize, n) candidates of the next generation."""
        with self._random():
            return np.asarray(self.es.ask())

    def tell(self, X: np.ndarray, fitness: np.ndarray) -> None:
        with self._random():
            self.es.tell(list(X), (-np.asarray(fitness, np.float64)).tolist())
        self.fitness.append(np.asarray(fitness, np.float64))
        self.checks.append(float(np.sum(self.es.mean)))

    @property
    def generation(self) -> int:
        return len(self.fitness)

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.es.mean)

    def replay(self, fitness: np.ndarray, checks: list[float]) -> bool:
        """Rebuild the state of a saved run: ask/tell with its recorded fitnesses from the
        restart point (or the start). False if a checksum differs (another machine)."""
        for f, check in zip(fitness[self.generation :], checks[self.generation :], strict=True):
            self.tell(self.ask(), f)
            if self.checks[-1] != check:
                return False
        return True


@dataclasses.dataclass(frozen=True)
class Restart:
    """Where a run restarted CMA-ES: after ``generation`` (the history before it), at ``mean``
    (n,) float64 with step size ``sigma``."""

    generation: int
    mean: np.ndarray
    sigma: float
    fitness: np.ndarray  # (generation, popsize)
    checks: list[float]


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
) -> np.ndarray:
    """Mean dream survival (steps) of each candidate: params (P, n) -> (P,) float64.

    All P x rollouts dreams run as one DreamEnv batch until each has ended once. Once a
    ``compact`` share of the batch has ended, the ended dreams are dropped (DreamEnv.keep),
    so a generation costs about the steps its dreams survive, not the longest dream's steps
    times the batch."""
    P = len(params)
    env = DreamEnv(model, start_z, P * rollouts, tau, max_steps, done_threshold, seed, False, done)
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
    PARAMS_SHAPE: ClassVar[tuple[str, ...]] = ("P", "n")


def dream_job(job: DreamJob) -> list[float]:
    """Run a ``DreamJob``: P fitnesses (mean dream survival in steps), in candidate order."""
    if job.threads:
        torch.set_num_threads(job.threads)
    model, starts = dream_inputs(job.run_dir, job.model_index, job.device)
    fit = dream_fitness(model, starts, job.params, job.rollouts, job.tau, job.max_steps,
                        job.done_threshold, job.seed, job.done)  # fmt: skip
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

SETTINGS = ("model_index", "popsize", "rollouts", "sigma0", "tau", "max_steps", "done",
            "done_threshold", "seed")  # fmt: skip
"""Settings a resumed run must share with its checkpoint (the rest may change)."""


def _save_state(path: Path, es: CMAES, best: dict[str, Any], cfg: ControllerConfig) -> None:
    meta = {
        "format": CMAES_FORMAT,
        "settings": {k: to_dict(cfg)[k] for k in SETTINGS},
        "pycma": cma.__version__,
        "numpy": np.__version__,
        "generation": es.generation,
        "sigma": float(es.es.sigma),
        "mean_checks": es.checks,
        "best_fitness": best["fitness"],
        "best_generation": best["generation"],
    }
    arrays = {
        "fitness": np.stack(es.fitness),
        "mean": es.mean.astype(np.float64),
        "best_params": best["params"].astype(np.float32),
    }
    if es.restart is not None:
        meta["restart"] = {"generation": es.restart.generation, "sigma": es.restart.sigma}
        arrays["restart_mean"] = es.restart.mean
    write_npz(path, {**arrays, "meta": np.array(json.dumps(meta))})


def _number(x: Any, positive: bool = False) -> bool:
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    return ok and (x > 0 or not positive)


def _read_state(path: Path, cfg: ControllerConfig, n: int) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and meta of a saved CMA-ES state, checked against its format and this run
    (settings, popsize, ``n`` parameters); a CheckpointError naming the file and the key."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays["meta"]))
    except Exception as e:  # numpy, zipfile and json raise a dozen kinds on a damaged file
        raise CheckpointError(f"{path}: not a readable CMA-ES state ({e!r})") from None
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: 'meta' has format {got!r}, expected {CMAES_FORMAT}")
    saved, now = meta.get("settings"), {k: to_dict(cfg)[k] for k in SETTINGS}
    saved = saved if isinstance(saved, dict) else {}
    if saved != now:
        diff = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
        raise CheckpointError(f"{path}: saved with other settings {diff} (saved, now)")
    want = {"fitness": (2, cfg.popsize), "best_params": (1, n), "mean": (1, n),
            "restart_mean": (1, n)}  # fmt: skip
    for key, (ndim, last) in want.items():
        a = arrays.get(key, None if key in ("mean", "restart_mean") else np.array(None))
        if a is not None and (a.dtype.kind not in "fiu" or a.ndim != ndim
                              or a.shape[-1] != last or not np.isfinite(a).all()):  # fmt: skip
            raise CheckpointError(f"{path}: array {key!r} is not {ndim}-D finite numbers of size "
                                  f"{last} (popsize {cfg.popsize}, {n} parameters)")  # fmt: skip
    G, checks, r, g_best = (len(arrays["fitness"]), meta.get("mean_checks"), meta.get("restart"),
                            meta.get("best_generation"))  # fmt: skip
    if not (isinstance(checks, list) and len(checks) == G and all(map(_number, checks))):
        raise CheckpointError(f"{path}: 'meta.mean_checks' is not a list of {G} numbers")
    if not (_number(meta.get("best_fitness")) and isinstance(g_best, int) and 0 <= g_best <= G
            and ("mean" not in arrays or _number(meta.get("sigma"), positive=True))):  # fmt: skip
        raise CheckpointError(f"{path}: 'meta.best_fitness', 'best_generation' or 'sigma' invalid")
    if r is not None and not (
        isinstance(r, dict) and "restart_mean" in arrays and _number(r.get("sigma"), True)
        and isinstance(r.get("generation"), int) and 0 <= r["generation"] <= G):  # fmt: skip
        raise CheckpointError(f"{path}: 'meta.restart' is not a valid restart point")
    return arrays, meta


def _load_state(
    path: Path, cfg: ControllerConfig, n: int, log: Callable[[str], None] = print
) -> tuple[CMAES, dict[str, Any]]:
    arrays, meta = _read_state(path, cfg, n)
    fitness, best_params = arrays["fitness"].astype(np.float64), arrays["best_params"]
    checks = meta["mean_checks"]

    def restart_at(g: int, mean: np.ndarray, sigma: float) -> CMAES:
        return CMAES(n, cfg.sigma0, cfg.popsize, cfg.seed,
                     Restart(g, mean, sigma, fitness[:g], checks[:g]))  # fmt: skip

    r = meta.get("restart")
    es = (CMAES(n, cfg.sigma0, cfg.popsize, cfg.seed) if r is None
          else restart_at(r["generation"], arrays["restart_mean"], r["sigma"]))  # fmt: skip
    if not es.replay(fitness, checks):
        g = len(fitness)
        if "mean" not in arrays:
            raise CheckpointError(
                f"{path}: replaying CMA-ES diverged (saved with numpy {meta.get('numpy', '?')}, "
                f"pycma {meta.get('pycma', '?')}; here numpy {np.__version__}, "
                f"pycma {cma.__version__}) and this older format has no saved mean to restart "
                "from; move the folder away to start afresh"
            )
        log(f"train-controller: CMA-ES's replay differs on this machine (saved with numpy "
            f"{meta.get('numpy', '?')}, here {np.__version__}): restarting it at generation "
            f"{g}'s mean and σ {meta['sigma']:.4g} with a fresh covariance")  # fmt: skip
        es = restart_at(g, arrays["mean"], meta["sigma"])
    best = {"fitness": meta["best_fitness"], "generation": meta["best_generation"],
            "params": best_params}  # fmt: skip
    return es, best


def _save_controller(path: Path, params: np.ndarray, arch: ControllerArch, meta: dict) -> None:
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
    set_threads(cfg.threads)
    device = str(resolve_device(cfg.device))
    model, starts = dream_inputs(run.root, cfg.model_index, device)
    arch = ControllerArch(model.arch.latent_dim, model.arch.hidden, model.arch.action_dim)
    if run.controller_state.exists():
        es, best = _load_state(run.controller_state, cfg, arch.n_params, log)
        log(f"train-controller: resumed after generation {es.generation} from "
            f"{run.controller_state}")  # fmt: skip
    else:
        es = CMAES(arch.n_params, cfg.sigma0, cfg.popsize, cfg.seed)
        best = {"fitness": -1.0, "generation": 0, "params": np.zeros(arch.n_params, np.float32)}
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
    finally:
        logger.close()
        executor.close()
    log(f"train-controller: done after {es.generation} generations; "
        f"{run.controller_weights('mean')}")  # fmt: skip
    return {"generation": es.generation, "stopped": False, "best_fitness": best["fitness"]}


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
    _save_controller(run.controller_weights("mean"), es.mean, arch,
                     {**meta, "what": "CMA-ES mean"})  # fmt: skip
    _save_controller(run.controller_weights("best"), best["params"], arch,
                     {**meta, "what": "best dream candidate", **{
                         k: best[k] for k in ("fitness", "generation")}})  # fmt: skip
    _save_state(run.controller_state, es, best, cfg)
