"""Readers of the controller's files: its meta, the best candidate's fitness, the real-game
scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mdnworld.records.base import Doc, read

# --- controller: controller/controller.json, best.json (control/train.py) ----------------------


@dataclass(frozen=True)
class ControllerMeta:
    KEYS: ClassVar = {k: f"config.{k}" for k in ("tau", "popsize", "rollouts", "generations")}
    generation: int | None
    model_index: int | None
    tau: float
    popsize: int
    rollouts: int
    generations: int
    """``config.generations``: planned."""


def _controller(d: Doc) -> ControllerMeta:
    c = d.obj("config")
    return ControllerMeta(
        d.get("generation"), d.get("model_index"), c["tau"], c["popsize"], c["rollouts"],
        c["generations"],
    )  # fmt: skip


# --- real-game scores: evaluate/scores.json (control/evaluate.py) ------------------------------


@dataclass(frozen=True)
class EpisodeScore:
    seed: int
    score: int


@dataclass(frozen=True)
class ScoreVideo:
    file: str
    """Relative to ``evaluate/``."""
    seed: int
    score: int


@dataclass(frozen=True)
class Scores:
    controller: str
    """"mean" or "best"."""
    generation: int
    episodes: int
    mean: float
    std: float
    min: int
    max: int
    solved: bool
    per_episode: tuple[EpisodeScore, ...]
    reference: dict[str, Any]
    """``reference.EVALUATE_REFERENCE`` as written then."""
    best_video: ScoreVideo | None
    worst_video: ScoreVideo | None


def _video(d: Doc, key: str) -> ScoreVideo | None:
    if d.get(key) is None:
        return None
    v = d.obj(key)
    return ScoreVideo(v["file"], v["seed"], v["score"])


def _scores(d: Doc) -> Scores:
    per = tuple(EpisodeScore(e["seed"], e["score"]) for e in d.objs("per_episode"))
    return Scores(
        d["controller"], d["generation"], d["episodes"], d["mean"], d["std"], d["min"],
        d["max"], d["solved"], per, d.obj("reference").data, _video(d, "best_video"),
        _video(d, "worst_video"),
    )  # fmt: skip


# --- selection: controller/selection.json (control/select.py) ----------------------------------


@dataclass(frozen=True)
class SelectionRow:
    candidate: str
    training_fitness: float | None
    """The dream fitness it had in training (None for the CMA-ES mean)."""
    rescored: float


@dataclass(frozen=True)
class Selection:
    rollouts: int
    winner: str
    rows: tuple[SelectionRow, ...]


def _selection(d: Doc) -> Selection:
    rows = tuple(
        SelectionRow(r.typed("candidate", str), r.get("training_fitness"),
                     r.typed("rescored", float))
        for r in d.objs("rows")
    )  # fmt: skip
    return Selection(d.typed("rollouts", int), d.typed("winner", str), rows)


# --- iterate: iterate/round_<r>.json (iterate.py) -----------------------------------------------


@dataclass(frozen=True)
class IterateRound:
    round: int
    episodes: int
    """Real episodes in M's data this round."""
    rnn_val_nll_per_dim: float
    dream_fitness_mean: float | None
    """The population's mean dream survival in the controller's last generation."""
    generation: int
    mean: float | None
    """Real-game score on the choice seeds (None: not scored)."""
    std: float | None
    n_scores: int


def _iterate_round(d: Doc) -> IterateRound:
    maybe = float | None
    return IterateRound(
        d.typed("round", int), d.typed("episodes", int), d.typed("rnn_val_nll_per_dim", float),
        d.typed("dream_fitness_mean", maybe), d.typed("generation", int), d.typed("mean", maybe),
        d.typed("std", maybe), len(d.typed("scores", list[int])),
    )  # fmt: skip


# --- the readers -------------------------------------------------------------------------------


def read_controller_meta(path: Path | str) -> ControllerMeta:
    return read(path, _controller)


def read_best_fitness(path: Path | str) -> float:
    """``fitness`` of the best dream candidate's meta (``best.json``)."""
    return read(path, lambda d: d.typed("fitness", float))


def read_scores(path: Path | str) -> Scores:
    return read(path, _scores)


def read_selection(path: Path | str) -> Selection:
    return read(path, _selection)


def read_iterate_round(path: Path | str) -> IterateRound:
    return read(path, _iterate_round)
