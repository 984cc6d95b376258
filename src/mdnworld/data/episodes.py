"""Episode files: the on-disk format of step 1, its manifest, and their validation.

One episode is one uncompressed ``.npz`` (numpy's zip of ``.npy`` arrays, C order, read with
``io.open_npz``: no pickle) under ``RUN_DIR/episodes/``::

    ep_000017.npz
      frames   uint8   (T, 64, 64, 3)   obs[t], the preprocessed frame the policy saw
      actions  float32 (T, 1)           a[t] in [-1, 1], taken after seeing obs[t]
      rewards  float32 (T,)             1.0 per tic survived
      dones    bool    (T,)             True only at the step the player died
      seed     int64   ()               game and policy seed of this episode
      truth_*  ...                      optional: the game's per-frame truth (data/truth.py)

An episode truncated at the step cap has no True in ``dones``. Files are written atomically,
so a file under its final name is always complete. ``episodes/manifest.json`` (written by
``generate``) records each episode's ``index``, ``seed``, ``length`` and ``truncated``, and the
settings that made them.

The manifest and the files are checked against each other by ``validate`` (``validate_run``:
every array read) and at the start of every stage that reads episodes
(``checked_episode_files``: cheap, only the arrays' headers, ``dones`` and ``seed``).
Files in ``episodes/`` that are not named ``ep_NNNNNN.npz`` are ignored by the stages
(which warn) and named by ``validate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.data.truth import TRUTH_ARRAYS, check_truth, check_truth_header, check_truth_present
from mdnworld.env.preprocess import FRAME_SHAPE
from mdnworld.errors import DataError, EpisodeFileError, MissingError
from mdnworld.io import NpzReader, open_npz, read_json, write_npz
from mdnworld.layout import RunLayout, episode_index

FORMAT = "mdnworld.episodes/1"
MAX_STEPS_LIMIT = 100_000

ARRAYS = {  # name -> (dtype, shape after the leading T)
    "frames": (np.uint8, FRAME_SHAPE),
    "actions": (np.float32, (1,)),
    "rewards": (np.float32, ()),
    "dones": (np.bool_, ()),
}
ENTRY_KEYS = ("index", "seed", "length", "truncated")
"""The keys of one manifest entry; ``EpisodeInfo`` holds the same facts read from the file."""


@dataclass
class Episode:
    frames: np.ndarray  # (T, 64, 64, 3) uint8
    actions: np.ndarray  # (T, 1) float32
    rewards: np.ndarray  # (T,) float32
    dones: np.ndarray  # (T,) bool
    seed: int
    truth: dict[str, np.ndarray] | None = None  # the TRUTH_ARRAYS of data/truth.py, or None

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class EpisodeInfo:
    """What the manifest records about an episode, as read from its file."""

    index: int
    seed: int
    length: int
    truncated: bool
    truth: bool = False  # holds the truth arrays (not a manifest key)

    def entry(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ENTRY_KEYS}


def episode_path(run_dir: Path | str, index: int) -> Path:
    return RunLayout(run_dir).episode(index)


def episode_files(run_dir: Path | str) -> list[Path]:
    """All finished episode files of a run, sorted by index."""
    return RunLayout(run_dir).episode_files()


def save_episode(path: Path | str, ep: Episode) -> None:
    """Validate ``ep`` and write it atomically to ``path`` (C order, whatever ``ep`` holds).

    Not fsynced (that cost ~35 µs per frame here, 15 % of a game step): an episode can always
    be regenerated, and ``validate`` finds a file that a power cut left empty.
    """
    check_episode(ep, path)
    arrays = {key: np.ascontiguousarray(getattr(ep, key)) for key in ARRAYS}
    arrays.update({key: np.ascontiguousarray(a) for key, a in (ep.truth or {}).items()})
    write_npz(path, {**arrays, "seed": np.int64(ep.seed)}, fsync=False)


def check_episode(ep: Episode, path: Path | str = "<episode>") -> None:
    """Raise EpisodeFileError if arrays have the wrong shape, dtype or inconsistent lengths."""
    n = len(ep.frames)
    _check_length(n, path)
    for key, (dtype, tail) in ARRAYS.items():
        arr = getattr(ep, key)
        _check_array(path, key, arr.dtype, arr.shape, dtype, (n, *tail))
    if not np.all(np.abs(ep.actions) <= 1.0):
        raise EpisodeFileError(path, "actions not finite or outside [-1, 1]")
    _check_dones(ep.dones, path)
    if ep.truth is not None:
        check_truth(ep.truth, n, path)


def _check_length(n: int, path: Path | str) -> None:
    if n == 0:
        raise EpisodeFileError(path, "holds no steps (an empty episode, T = 0)")
    if not 1 <= n <= MAX_STEPS_LIMIT:
        raise EpisodeFileError(path, f"episode length {n} outside 1..{MAX_STEPS_LIMIT}")


def _check_array(
    path: Path | str, key: str, dtype: Any, shape: tuple, want: Any, want_shape: tuple
) -> None:
    if dtype != want:
        raise EpisodeFileError(path, f"'{key}' has dtype {dtype}, expected {np.dtype(want)}")
    if tuple(shape) != want_shape:
        raise EpisodeFileError(
            path, f"'{key}' has shape {tuple(shape)}, expected {want_shape} (T from frames)"
        )


def _check_dones(dones: np.ndarray, path: Path | str) -> None:
    if dones[:-1].any():
        raise EpisodeFileError(path, "'dones' is True before the last step")


def _check_headers(z: NpzReader) -> int:
    """Every array's header: present, dtype, shape, C order; a scalar integer seed. -> T."""
    z.require([*ARRAYS, "seed"])
    frames = z.headers["frames"].shape
    n = frames[0] if frames else -1
    if n < 0:
        raise EpisodeFileError(z.path, f"'frames' has shape {frames}, expected (T, 64, 64, 3)")
    _check_length(n, z.path)
    for key, (dtype, tail) in ARRAYS.items():
        h = z.headers[key]
        _check_array(z.path, key, h.dtype, h.shape, dtype, (n, *tail))
    truth = list(TRUTH_ARRAYS) if check_truth_present(list(z.headers), z.path) else []
    for key in truth:
        check_truth_header(z.path, key, z.headers[key].dtype, z.headers[key].shape, n)
    for key in [*ARRAYS, *truth]:
        if z.headers[key].fortran_order:
            raise EpisodeFileError(
                z.path, f"'{key}' is stored in Fortran order, not C order (as save_episode writes)"
            )
    seed = z.headers["seed"]
    if seed.shape != () or seed.dtype.kind not in "iu":
        raise EpisodeFileError(
            z.path, f"'seed' is {seed.dtype} of shape {seed.shape}, expected one int64 (shape ())"
        )
    return n


def load_episode(path: Path | str) -> Episode:
    """Load and validate one episode file (no pickle). Raises EpisodeFileError naming the file."""
    with open_npz(path) as z:
        _check_headers(z)
        ep = Episode(*(z.array(key) for key in ARRAYS), seed=int(z.array("seed")))
        if TRUTH_ARRAYS.keys() <= z.headers.keys():
            ep.truth = {key: z.array(key) for key in TRUTH_ARRAYS}
    check_episode(ep, path)
    return ep


def episode_info(path: Path | str) -> EpisodeInfo:
    """Index, seed, length and truncated flag of an episode file, checking every array's
    header but reading only the small ``dones`` and ``seed`` (not the frames)."""
    path = Path(path)
    with open_npz(path) as z:
        n = _check_headers(z)
        dones, seed = z.array("dones"), int(z.array("seed"))
        truth = TRUTH_ARRAYS.keys() <= z.headers.keys()
    _check_dones(dones, path)
    return EpisodeInfo(_index(path), seed, n, not bool(dones[-1]), truth)


def _index(path: Path) -> int:
    try:
        return episode_index(path)
    except ValueError:
        return -1  # a file checked outside a run (tests, tools)


# --- the manifest ---------------------------------------------------------------------------


def read_manifest(run_dir: Path | str) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """(the ``config`` table, entries by index) of ``episodes/manifest.json``: MissingError if
    it is not there, DataError naming the file and the key if it is malformed."""
    path = RunLayout(run_dir).episode_manifest
    man = read_json(path)
    if not isinstance(man, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(man).__name__}")
    config, items = man.get("config", {}), man.get("episodes")
    if not isinstance(config, dict):
        raise DataError(f"{path}: 'config' is not a JSON object")
    if not isinstance(items, list):
        raise DataError(f"{path}: no 'episodes' list")
    entries: dict[int, dict[str, Any]] = {}
    for n, item in enumerate(items):
        entry = _entry(item, f"{path}: episodes[{n}]")
        if entry["index"] in entries:
            raise DataError(f"{path}: episodes[{n}]: index {entry['index']} is listed twice")
        entries[entry["index"]] = entry
    return config, entries


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


CHECKS = {
    "index": (lambda x: _is_int(x) and x >= 0, "an integer >= 0"),
    "seed": (_is_int, "an integer"),
    "length": (lambda x: _is_int(x) and 1 <= x <= MAX_STEPS_LIMIT, f"1..{MAX_STEPS_LIMIT}"),
    "truncated": (lambda x: isinstance(x, bool), "true or false"),
}


def _entry(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DataError(f"{where} is not a JSON object")
    for key, (ok, want) in CHECKS.items():
        if key not in item:
            raise DataError(f"{where} has no {key!r}")
        if not ok(item[key]):
            raise DataError(f"{where}: {key!r} is {item[key]!r}, expected {want}")
    return {key: item[key] for key in ENTRY_KEYS}


def disagreement(info: EpisodeInfo, entry: dict[str, Any]) -> str | None:
    """What the manifest's ``entry`` says that the file does not, in words; None if they agree."""
    got = info.entry()
    diff = [key for key in ENTRY_KEYS if entry[key] != got[key]]
    if not diff:
        return None
    said = ", ".join(f"{key} {entry[key]!r}" for key in diff)
    holds = ", ".join(f"{key} {got[key]!r}" for key in diff)
    return f"manifest.json records {said}; the file holds {holds}"


# --- checking a run's episodes --------------------------------------------------------------

FIX = (
    "delete the file to regenerate it, or manifest.json to rebuild it from the files, and "
    "run `mdnworld generate` again"
)


@dataclass
class EpisodeCheck:
    """The outcome of ``check_episodes``."""

    files: list[Path] = field(default_factory=list)  # episode files that passed
    problems: list[EpisodeFileError] = field(default_factory=list)
    unknown: list[Path] = field(default_factory=list)  # names that are not ep_NNNNNN.npz
    manifest_missing: bool = False


def unknown_files(run_dir: Path | str) -> list[Path]:
    """Entries of ``episodes/`` that are neither an episode file, the manifest nor a writer's
    temp file (``.NAME.tmp``): the stages ignore them."""
    run = RunLayout(run_dir)
    if not run.episodes_dir.is_dir():
        return []
    known = {p.name for p in run.episode_files()} | {run.episode_manifest.name}
    return sorted(
        p
        for p in run.episodes_dir.iterdir()
        if p.name not in known and not (p.name.startswith(".") and ".tmp" in p.name)
    )


def check_episodes(run_dir: Path | str, full: bool = False) -> EpisodeCheck:
    """Every episode file against the manifest (seed, length, truncated) and the format
    (arrays, dtypes, shapes, C order); ``full`` also reads every array (frames included)."""
    run = RunLayout(run_dir)
    man_path = run.episode_manifest
    check = EpisodeCheck(unknown=unknown_files(run_dir))
    entries: dict[int, dict[str, Any]] | None = None
    try:
        entries = read_manifest(run_dir)[1]
    except MissingError:
        check.manifest_missing = True
    except DataError as e:
        check.problems.append(EpisodeFileError(man_path, str(e).removeprefix(f"{man_path}: ")))
    files = run.episode_files()
    for p in files:
        try:
            info = _info_full(p) if full else episode_info(p)
        except EpisodeFileError as e:
            check.problems.append(e)
            continue
        entry = None if entries is None else entries.get(info.index)
        if entries is not None and entry is None:
            check.problems.append(EpisodeFileError(p, f"not recorded in manifest.json; {FIX}"))
        elif entry is not None and (why := disagreement(info, entry)):
            check.problems.append(EpisodeFileError(p, f"{why}; {FIX}"))
        else:
            check.files.append(p)
    for i in sorted(set(entries or ()) - {episode_index(p) for p in files}):
        check.problems.append(
            EpisodeFileError(
                run.episode(i), "listed in manifest.json but missing; run `mdnworld generate`"
            )
        )
    return check


def _info_full(path: Path) -> EpisodeInfo:
    ep = load_episode(path)
    truncated = not bool(ep.dones[-1])
    return EpisodeInfo(_index(path), ep.seed, len(ep), truncated, ep.truth is not None)


def validate_run(run_dir: Path | str) -> tuple[list[Path], list[EpisodeFileError]]:
    """Check every episode file of a run (every array read) and the manifest against them;
    returns (good files, problems), the problems naming each file that is not an episode."""
    check = check_episodes(run_dir, full=True)
    bad = list(check.problems)
    if check.manifest_missing:
        man = RunLayout(run_dir).episode_manifest
        bad.insert(0, EpisodeFileError(man, "missing; `mdnworld generate` rebuilds it"))
    bad += [
        EpisodeFileError(p, "not an episode file name (ep_NNNNNN.npz): the stages ignore it")
        for p in check.unknown
    ]
    return check.files, bad


def checked_episode_files(run_dir: Path | str, log: Callable[[str], None] = print) -> list[Path]:
    """A stage's start: the run's episode files, checked cheaply against the manifest and the
    format (``check_episodes``); raises EpisodeFileError naming the first problem and warns
    (through ``log``) about files that are not episodes or a missing manifest."""
    check = check_episodes(run_dir)
    run = RunLayout(run_dir)
    if check.unknown:
        names = ", ".join(repr(p.name) for p in check.unknown[:5])
        log(f"warning: {run.episodes_dir}: ignoring file(s) that are not episodes: {names}")
    if check.manifest_missing and check.files:
        log(f"warning: {run.episode_manifest} is missing: episodes not checked against it")
    if check.problems:
        first, n = check.problems[0], len(check.problems)
        more = f" (and {n - 1} more: `mdnworld validate {run_dir}` lists them)" if n > 1 else ""
        raise EpisodeFileError(first.path, first.reason + more)
    return check.files
