"""``mdnworld detectors``: the SPEC §6 detectors measured against the game's truth (SPEC §9).

Episodes generated with ``generate --truth`` carry per-frame truth arrays (``truth_fireballs``,
``truth_imps``, ``truth_explosion``, ``truth_left_wall``, ``truth_right_wall``, ...; their
format and how the game gives them: ``data/truth.py``; read as ``Episode.truth``). This module
scores the detectors of ``analysis/detectors.py`` against them, on (a) the real frames of
held-out episodes and (b) V's reconstructions of the same frames (``decode(mu(frame))``: V then
detector, the chain the analyses use).

Classes and their truth (:data:`CLASSES`). The truth goes through the *same* labelling
functions as the detector output (``world_labels``, ``event_labels``), fed a
:class:`FrameFeatures` built from the truth arrays (:func:`truth_features`: fireball count =
``truth_fireballs``, monster count = ``truth_imps``, explosion and walls from their arrays):

- worlds: an explosion frame is only Explosion; otherwise Fireball (count > 0), LeftWall and
  RightWall (SPEC §7B) -- so a fireball during a true explosion is not a true Fireball frame;
- events (SPEC §7B): the first frame and explosion frames are skipped; every other frame
  compares its count with the last earlier frame without an explosion, per episode. Each side
  skips *its own* explosion frames, and a skipped frame is a negative on that side: a detector
  event on a frame the game calls an explosion is a false alarm, a true event on a frame the
  detector took for an explosion is a miss. So the scores measure the labels the analyses use,
  frame for frame, errors of the explosion test included.

Scores per class and source (:func:`score`), over every frame of the chosen episodes:
``tp``, ``fp``, ``fn``; ``support = tp + fn`` (true frames); ``precision = tp / (tp + fp)``
(None when the detector never fires); ``recall = tp / support`` (None when the class never
occurs); ``f1 = 2 tp / (2 tp + fp + fn)`` (None when both are empty; 0 when one is). Never NaN.

Files (``RunLayout.detectors_*``, under ``analysis/detectors/``): ``table.csv`` (one row per
source x class), ``results.json`` (the same numbers, the episodes used, the thresholds) and
``detectors.png`` (example frames per class: hits, misses, false alarms). A run without a
trained V gets the real-frame rows only (``results.json``: ``"reconstruction": null``).
``--detectors validated`` (``DETECTOR_SETS``) writes the same three files under
``detectors/validated/``; ``compare.csv`` puts the F1 of every set scored so far side by side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.analysis.common import pyplot, save_figure, write_csv
from mdnworld.analysis.detectors import (
    DETECTOR_SETS,
    FrameFeatures,
    Thresholds,
    detect,
    event_labels,
    world_labels,
)
from mdnworld.checkpoints import load_vae
from mdnworld.data.episodes import load_episode
from mdnworld.device import resolve_device
from mdnworld.dreams import decode
from mdnworld.errors import ConfigError, DataError, MissingError
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout, episode_index
from mdnworld.models.vae import encode_frames

WORLDS = ("Explosion", "Fireball", "LeftWall", "RightWall")  # world_labels' first 4 columns
EVENTS = ("FireballAppears", "FireballDisappears", "MonsterAppears", "MonsterDisappears")
CLASSES = WORLDS + EVENTS
SOURCES = ("real", "reconstruction")
CELLS = ("hit", "miss", "false alarm")
FIGURE_CLASSES = ("Explosion", "Fireball", "LeftWall", "MonsterAppears")
NO_TRUTH = "episodes have no truth; regenerate with `mdnworld generate --truth`"


def truth_features(truth: dict[str, np.ndarray]) -> FrameFeatures:
    """The truth arrays as detector output, for ``world_labels`` / ``event_labels``."""
    fireballs = np.asarray(truth["truth_fireballs"], dtype=np.int64)
    return FrameFeatures(
        n_bright=fireballs,  # unused by the labels
        explosion=np.asarray(truth["truth_explosion"], dtype=bool),
        n_fireballs=fireballs,
        n_monsters=np.asarray(truth["truth_imps"], dtype=np.int64),
        wall_left=np.asarray(truth["truth_left_wall"], dtype=bool),
        wall_right=np.asarray(truth["truth_right_wall"], dtype=bool),
    )


def class_labels(features: FrameFeatures) -> np.ndarray:
    """(N, 8) bool over :data:`CLASSES` for one episode's frames (events never cross episodes)."""
    return np.concatenate([world_labels(features)[:, :4], event_labels(features)[:, :4]], axis=1)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def score(predicted: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    """tp, fp, fn, support, precision, recall, f1 of bool arrays of one shape (module doc)."""
    predicted, true = np.asarray(predicted, dtype=bool), np.asarray(true, dtype=bool)
    if predicted.shape != true.shape:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape} differ in shape")
    tp = int((predicted & true).sum())
    fp = int((predicted & ~true).sum())
    fn = int((~predicted & true).sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": tp + fn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def score_classes(predicted: np.ndarray, true: np.ndarray) -> dict[str, dict[str, Any]]:
    """:func:`score` per column of (N, 8) label arrays over :data:`CLASSES`."""
    return {name: score(predicted[:, j], true[:, j]) for j, name in enumerate(CLASSES)}


# --- which episodes ---------------------------------------------------------------------------


def held_out(run: RunLayout) -> tuple[list[int], str]:
    """Validation episodes of M's split, else of V's split, else every episode; and where from."""
    available = [episode_index(p) for p in run.episode_files()]
    if not available:
        raise MissingError(f"{run.episodes_dir}: no episodes; run `mdnworld generate --truth`")
    for split in (run.rnn_split, run.vae_split):
        if split.exists():
            val = read_json(split).get("val")
            if not isinstance(val, list) or not all(isinstance(i, int) for i in val):
                raise DataError(f"{split}: 'val' must be a list of episode indices")
            chosen = sorted(set(val) & set(available))
            if chosen:
                return chosen, f"{run.rel(split)} val"
    return available, "all episodes (no split)"


# --- the evaluation ---------------------------------------------------------------------------


@dataclass
class Examples:
    """Up to ``k`` example frames per (source, class, cell), reservoir-sampled over episodes."""

    k: int
    rng: np.random.Generator
    frames: dict[tuple[str, str, str], list[tuple[np.ndarray, str]]] = field(default_factory=dict)
    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def offer(
        self,
        source: str,
        frames: np.ndarray,
        pred: np.ndarray,
        true: np.ndarray,
        caption: Callable[[int], str],
    ) -> None:
        """One random frame of each cell that occurs in this episode, into the reservoir."""
        for name in FIGURE_CLASSES:
            j = CLASSES.index(name)
            masks = (pred[:, j] & true[:, j], ~pred[:, j] & true[:, j], pred[:, j] & ~true[:, j])
            for cell, mask in zip(CELLS, masks, strict=True):
                where = np.flatnonzero(mask)
                if not len(where):
                    continue
                key = (source, name, cell)
                n = self.seen[key] = self.seen.get(key, 0) + 1
                kept = self.frames.setdefault(key, [])
                t = int(self.rng.choice(where))
                item = (np.array(frames[t]), caption(t))
                if len(kept) < self.k:
                    kept.append(item)
                elif (slot := int(self.rng.integers(n))) < self.k:
                    kept[slot] = item


def _caption(index: int, feats: FrameFeatures, truth: FrameFeatures) -> Callable[[int], str]:
    def caption(t: int) -> str:
        return (
            f"ep {index} t {t}\nfire {feats.n_fireballs[t]}/{truth.n_fireballs[t]} "
            f"imp {feats.n_monsters[t]}/{truth.n_monsters[t]}"
        )

    return caption


def _reconstruct(vae: Any, frames: np.ndarray, device: Any, batch_size: int = 256) -> np.ndarray:
    """decode(mu(frames)): float32 (T, 64, 64, 3) in [0, 1]."""
    mu, _ = encode_frames(vae, frames, batch_size, device)
    return decode(vae, mu, batch_size)


def evaluate_detectors(
    run_dir: Path | str,
    episodes: int = 0,
    device: str = "auto",
    thresholds: Thresholds | None = None,
    examples: int = 3,
    detectors: str = "spec",
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score the detectors on the held-out episodes (the first ``episodes`` of them; 0 = all)
    and write ``analysis/detectors/``; returns what ``results.json`` holds. ``thresholds``:
    the detectors' settings (default: those of the set ``detectors``, a ``DETECTOR_SETS`` name,
    whose files go to ``RunLayout.detectors_set_dir(detectors)``)."""
    if detectors not in DETECTOR_SETS:
        raise ConfigError(f"--detectors must be one of {sorted(DETECTOR_SETS)}, got {detectors!r}")
    thresholds = thresholds or DETECTOR_SETS[detectors]
    if episodes < 0:
        raise ConfigError(f"--episodes must be >= 0 (0 = all held-out episodes), got {episodes}")
    run = RunLayout(run_dir)
    ids, origin = held_out(run)
    ids = ids[:episodes] if episodes else ids
    vae, torch_device = None, None
    if run.vae_model.exists():
        torch_device = resolve_device(device)
        vae, _ = load_vae(run.root, torch_device)
    else:
        log(f"detectors: {run.rel(run.vae_model)} not found; real frames only")
    sources = SOURCES if vae is not None else SOURCES[:1]
    labels: dict[str, list[np.ndarray]] = {s: [] for s in ("truth", *sources)}
    shown = Examples(examples, np.random.default_rng(seed))
    for i in ids:
        path = run.episode(i)
        ep = load_episode(path)  # checks the truth arrays against the frames
        if ep.truth is None:
            raise MissingError(f"{path}: {NO_TRUTH}")
        frames, true_feats = ep.frames, truth_features(ep.truth)
        labels["truth"].append(true := class_labels(true_feats))
        for source in sources:
            x = frames if source == "real" else _reconstruct(vae, frames, torch_device)
            feats = detect(x, thresholds)
            labels[source].append(pred := class_labels(feats))
            shown.offer(source, x, pred, true, _caption(i, feats, true_feats))
    log(f"detectors: {len(ids)} episodes ({origin}), sources {list(sources)}")
    true_all = np.concatenate(labels["truth"])
    result = {
        "detectors": detectors,
        "episodes": ids,
        "episodes_from": origin,
        "frames": len(true_all),
        "thresholds": dataclasses.asdict(thresholds),
        "reconstruction": run.rel(run.vae_model) if vae is not None else None,
        "classes": {name: "world" if name in WORLDS else "event" for name in CLASSES},
        "scores": {s: score_classes(np.concatenate(labels[s]), true_all) for s in sources},
    }
    write_outputs(run, result, shown)
    log(f"detectors: wrote {run.rel(run.detectors_set_dir(detectors))}")
    return result


# --- files ------------------------------------------------------------------------------------


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per (source, class), in :data:`SOURCES` x :data:`CLASSES` order."""
    return [
        {"source": source, "class": name, "kind": result["classes"][name], **s}
        for source, by_class in result["scores"].items()
        for name, s in by_class.items()
    ]


def write_outputs(run: RunLayout, result: dict[str, Any], shown: Examples) -> None:
    name = result.get("detectors", "spec")
    out = run.detectors_set_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{k: "" if v is None else v for k, v in r.items()} for r in table_rows(result)]
    write_csv(out / run.detectors_table.name, rows)
    atomic_write_json(out / run.detectors_results.name, result)
    write_figure(out / run.detectors_figure.name, shown, list(result["scores"]), name)
    write_compare(run)


def write_compare(run: RunLayout) -> None:
    """``compare.csv``: F1 per (source, class), one column per set with a ``results.json``."""
    f1: dict[str, dict[tuple[str, str], Any]] = {}
    for name in DETECTOR_SETS:
        path = run.detectors_set_dir(name) / run.detectors_results.name
        if path.exists():
            rows = table_rows(read_json(path))
            f1[name] = {(r["source"], r["class"]): r["f1"] for r in rows}
    keys = list(dict.fromkeys(k for by in f1.values() for k in by))
    rows = [
        {"source": s, "class": c, **{f"f1_{n}": _blank(by.get((s, c))) for n, by in f1.items()}}
        for s, c in keys
    ]
    write_csv(run.detectors_compare, rows)


def _blank(value: Any) -> Any:
    return "" if value is None else value


def write_figure(
    path: Path, shown: Examples, sources: Sequence[str], detectors: str = "spec"
) -> None:
    """Rows: (source, class) of :data:`FIGURE_CLASSES`; columns: k examples of each cell."""
    plt = pyplot()
    rows = [(s, name) for s in sources for name in FIGURE_CLASSES]
    cols = [(cell, j) for cell in CELLS for j in range(shown.k)]
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(1.3 * len(cols), 1.6 * len(rows)), squeeze=False
    )
    for r, (source, name) in enumerate(rows):
        for c, (cell, j) in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            kept = shown.frames.get((source, name, cell), [])
            if j < len(kept):
                ax.imshow(kept[j][0])
                ax.set_xlabel(kept[j][1], fontsize=5)
            else:
                ax.set_frame_on(False)  # no such frame (yet): an empty cell
            if r == 0 and j == 0:
                ax.set_title(cell, fontsize=8, loc="left")
            if c == 0:
                ax.set_ylabel(f"{name}\n({source})", fontsize=7)
    title = f"{'SPEC' if detectors == 'spec' else detectors} detectors vs. game truth"
    fig.suptitle(f"{title} (captions: detector/truth counts)", fontsize=9)
    save_figure(fig, path)
