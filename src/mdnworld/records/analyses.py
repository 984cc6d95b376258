"""Readers of the analyses' ``results.json``: A (components over time), B (worlds and events),
C (committed dreaming)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mdnworld.records.base import Doc, read

# --- analyses: analysis/<name>/results.json (analysis/) ----------------------------------------


@dataclass(frozen=True)
class ComponentsModel:
    figure: str
    """The figure, relative to ``analysis/``."""
    dominant_share: tuple[int, ...]
    """Steps at which each component has the largest π."""
    switches: int
    start_episode: int


@dataclass(frozen=True)
class ComponentsOverTime:
    """Analysis A."""

    steps: int
    warmup: int
    models: dict[int, ComponentsModel]
    """In the file's order."""


def _components(d: Doc) -> ComponentsOverTime:
    models = d.obj("models")
    return ComponentsOverTime(
        d["steps"],
        d["warmup"],
        {
            int(i): ComponentsModel(
                m["figure"], tuple(m["dominant_share"]), m["switches"], m["start_episode"]
            )
            for i, m in ((i, models.obj(i)) for i in models.data)
        },
    )


@dataclass(frozen=True)
class WorldsEventsRow:
    KEYS: ClassVar = {"cls": "class"}
    cls: str
    """``class``."""
    kind: str
    n_dreams: int
    median_current: float | None
    median_any: float | None
    u: float | None
    p: float | None
    stars: str | None
    null_mean: float | None
    null_p: float | None
    paper_current: float | None
    paper_any: float | None
    paper_stars: str | None


@dataclass(frozen=True)
class WorldsEvents:
    """Analysis B."""

    models: tuple[int, ...]
    dreams: int
    steps: int
    rows: tuple[WorldsEventsRow, ...]
    detectors: str = "spec"
    """The detector set the dreams were labelled with (files before it was recorded: spec)."""
    wall_red_over_blue: float = 0.0


_ROW_KEYS = ("class", "kind", "n_dreams", "median_current", "median_any", "u", "p", "stars",
             "null_mean", "null_p", "paper_current", "paper_any", "paper_stars")  # fmt: skip


def _worlds_events(d: Doc) -> WorldsEvents:
    rows = tuple(WorldsEventsRow(*(r[k] for k in _ROW_KEYS)) for r in d.objs("rows"))
    return WorldsEvents(tuple(d["models"]), d["dreams"], d["steps"], rows, *_detectors(d))


def _detectors(d: Doc) -> tuple[str, float]:
    return d.get("detectors", "spec"), d.get("wall_red_over_blue", 0.0)


@dataclass(frozen=True)
class CommittedRow:
    KEYS: ClassVar = {"frames": ""}
    component: int
    frames: dict[str, float]
    """Median frames per class, for every class of ``Committed.classes``."""


@dataclass(frozen=True)
class Committed:
    """Analysis C."""

    model: int
    tests: int
    steps: int
    start_t: int
    classes: tuple[str, ...]
    median_frames: tuple[CommittedRow, ...]
    explosion_component: int | None
    paper: str
    note: str
    detectors: str = "spec"
    wall_red_over_blue: float = 0.0

    def lead(self, cls: str) -> tuple[int, float, float] | None:
        """The component that dreams ``cls`` most (median frames), those frames, and the most
        any other component dreams; None without components."""
        frames = {row.component: row.frames[cls] for row in self.median_frames}
        if not frames:
            return None
        k = max(frames, key=frames.__getitem__)
        return k, frames[k], max((v for j, v in frames.items() if j != k), default=0.0)


def _committed(d: Doc) -> Committed:
    classes = tuple(d["classes"])
    rows = tuple(
        CommittedRow(r["component"], {c: r[c] for c in classes}) for r in d.objs("median_frames")
    )
    return Committed(
        d["model"], d["tests"], d["steps"], d["start_t"], classes, rows,
        d["explosion_component"], d["paper"], d["note"], *_detectors(d),
    )  # fmt: skip


# --- the readers -------------------------------------------------------------------------------


def read_components(path: Path | str) -> ComponentsOverTime:
    return read(path, _components)


def read_worlds_events(path: Path | str) -> WorldsEvents:
    return read(path, _worlds_events)


def read_committed(path: Path | str) -> Committed:
    return read(path, _committed)
