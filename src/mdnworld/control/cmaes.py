"""CMA-ES for the controller: pycma with a private random stream, and its replayable state.

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cma
import numpy as np

from mdnworld.config import ControllerConfig, to_dict
from mdnworld.errors import CheckpointError
from mdnworld.io import write_npz

CMAES_FORMAT = "mdnworld.cmaes/2"
READABLE_FORMATS = ("mdnworld.cmaes/1", CMAES_FORMAT)

# --- CMA-ES with a private random stream and a replayable state ---------------------------------


class CMAES:
    """pycma's CMAEvolutionStrategy from zeros; ``fitness`` is maximised.

    pycma draws from numpy's global generator; we swap a private state in around every call,
    so nothing else can shift its stream, and the state is just (seed, fitness history).
    """

    def __init__(
        self, n: int, sigma0: float, popsize: int, seed: int, restart: Restart | None = None,
        x0: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """A fresh run from zeros (or from ``x0`` (n,)), or with ``restart`` one that goes on
        from a saved mean and σ (keeping the generations before it as history, not replayed)."""
        self._state: dict | None = None
        start = np.zeros(n) if x0 is None else np.asarray(x0, np.float64)
        x0, g0 = (start, 0) if restart is None else (restart.mean, restart.generation)
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


SETTINGS = ("model_index", "popsize", "rollouts", "sigma0", "tau", "max_steps", "done",
            "done_threshold", "seed", "dream_dropout")  # fmt: skip
"""Settings a resumed run must share with its checkpoint (the rest may change)."""
SETTING_DEFAULTS = {"dream_dropout": 0.0}
"""What a setting was in a state saved before the setting existed."""


def save_state(path: Path, es: CMAES, best: dict[str, Any], cfg: ControllerConfig) -> None:
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


def read_state(path: Path, cfg: ControllerConfig, n: int) -> tuple[dict[str, np.ndarray], dict]:
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
    saved = {**SETTING_DEFAULTS, **saved} if isinstance(saved, dict) else {}
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


def load_state(
    path: Path, cfg: ControllerConfig, n: int, log: Callable[[str], None] = print
) -> tuple[CMAES, dict[str, Any]]:
    arrays, meta = read_state(path, cfg, n)
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
