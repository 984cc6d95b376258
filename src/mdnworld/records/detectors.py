"""``analysis/detectors/results.json`` (``mdnworld detectors``, analysis/truth.py): the SPEC
detectors' precision, recall and F1 against the game's truth, per source and class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mdnworld.records.base import Doc, read


@dataclass(frozen=True)
class DetectorScore:
    source: str  # "real" or "reconstruction"
    cls: str
    kind: str  # "world" or "event"
    tp: int
    fp: int
    fn: int
    support: int
    precision: float | None  # None where undefined (no detection / no true frame)
    recall: float | None
    f1: float | None


@dataclass(frozen=True)
class DetectorResults:
    episodes: int  # how many episodes were scored
    episodes_from: str
    frames: int
    reconstruction: str | None  # V's weights file (run-relative), None: real frames only
    scores: tuple[DetectorScore, ...]


def _score(source: str, cls: str, kind: str, s: Doc) -> DetectorScore:
    counts = [s[k] for k in ("tp", "fp", "fn", "support", "precision", "recall", "f1")]
    return DetectorScore(source, cls, kind, *counts)


def _results(d: Doc) -> DetectorResults:
    kinds, scores = d.obj("classes"), d.obj("scores")
    rows = tuple(
        _score(source, cls, kinds[cls], scores.obj(source).obj(cls))
        for source in scores.data
        for cls in scores.obj(source).data
    )
    return DetectorResults(
        len(d["episodes"]), d["episodes_from"], d["frames"], d["reconstruction"], rows
    )


def read_detectors(path: Path | str) -> DetectorResults:
    return read(path, _results)
