"""Episode files: the on-disk format of step 1 and its validation.

One episode is one uncompressed ``.npz`` (numpy's zip of ``.npy`` arrays, loaded with
``allow_pickle=False``) under ``RUN_DIR/episodes/``::

    ep_000017.npz
      frames   uint8   (T, 64, 64, 3)   obs[t], the preprocessed frame the policy saw
      actions  float32 (T, 1)           a[t] in [-1, 1], taken after seeing obs[t]
      rewards  float32 (T,)             1.0 per tic survived
      dones    bool    (T,)             True only at the step the player died
      seed     int64   ()               game and policy seed of this episode

An episode truncated at the step cap has no True in ``dones``; the manifest records it.
Files are written atomically, so a file under its final name is always complete.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdnworld.env.preprocess import FRAME_SHAPE
from mdnworld.errors import EpisodeFileError
from mdnworld.io import write_npz
from mdnworld.layout import RunLayout, episode_index  # noqa: F401 - episode_index re-exported

FORMAT = "mdnworld.episodes/1"
MAX_STEPS_LIMIT = 100_000


@dataclass
class Episode:
    frames: np.ndarray  # (T, 64, 64, 3) uint8
    actions: np.ndarray  # (T, 1) float32
    rewards: np.ndarray  # (T,) float32
    dones: np.ndarray  # (T,) bool
    seed: int

    def __len__(self) -> int:
        return len(self.frames)


def episode_path(run_dir: Path | str, index: int) -> Path:
    return RunLayout(run_dir).episode(index)


def episode_files(run_dir: Path | str) -> list[Path]:
    """All finished episode files of a run, sorted by index."""
    return RunLayout(run_dir).episode_files()


def save_episode(path: Path | str, ep: Episode) -> None:
    """Validate ``ep`` and write it atomically to ``path``.

    Not fsynced (that cost ~35 µs per frame here, 15 % of a game step): an episode can always
    be regenerated, and ``validate`` finds a file that a power cut left empty.
    """
    check_episode(ep, path)
    arrays = {
        "frames": ep.frames,
        "actions": ep.actions,
        "rewards": ep.rewards,
        "dones": ep.dones,
        "seed": np.int64(ep.seed),
    }
    write_npz(path, arrays, fsync=False)


def check_episode(ep: Episode, path: Path | str = "<episode>") -> None:
    """Raise EpisodeFileError if arrays have the wrong shape, dtype or inconsistent lengths."""
    expected = {
        "frames": (np.uint8, FRAME_SHAPE),
        "actions": (np.float32, (1,)),
        "rewards": (np.float32, ()),
        "dones": (np.bool_, ()),
    }
    n = len(ep.frames)
    if not 1 <= n <= MAX_STEPS_LIMIT:
        raise EpisodeFileError(path, f"episode length {n} outside 1..{MAX_STEPS_LIMIT}")
    for key, (dtype, tail) in expected.items():
        arr = getattr(ep, key)
        if arr.dtype != dtype:
            raise EpisodeFileError(
                path, f"'{key}' has dtype {arr.dtype}, expected {np.dtype(dtype)}"
            )
        if arr.shape != (n, *tail):
            raise EpisodeFileError(
                path, f"'{key}' has shape {arr.shape}, expected {(n, *tail)} (T={n} from frames)"
            )
    if not np.all(np.abs(ep.actions) <= 1.0):
        raise EpisodeFileError(path, "actions outside [-1, 1]")
    if ep.dones[:-1].any():
        raise EpisodeFileError(path, "'dones' is True before the last step")


def load_episode(path: Path | str) -> Episode:
    """Load and validate one episode file (no pickle). Raises EpisodeFileError naming the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"frames", "actions", "rewards", "dones", "seed"} - set(z.files)
            if missing:
                raise EpisodeFileError(path, f"missing arrays {sorted(missing)}")
            ep = Episode(
                frames=z["frames"],
                actions=z["actions"],
                rewards=z["rewards"],
                dones=z["dones"],
                seed=int(z["seed"]),
            )
    except FileNotFoundError:
        raise EpisodeFileError(path, "file not found") from None
    except EpisodeFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise EpisodeFileError(path, f"truncated or not a valid .npz episode ({e})") from None
    check_episode(ep, path)
    return ep


def episode_info(path: Path | str) -> tuple[int, bool]:
    """(length, truncated) of an episode file, reading only its small ``dones`` array."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            dones = z["dones"]
            return int(dones.shape[0]), not bool(dones[-1])
    except (KeyError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise EpisodeFileError(path, f"truncated or not a valid .npz episode ({e})") from None


def validate_run(run_dir: Path | str) -> tuple[list[Path], list[EpisodeFileError]]:
    """Check every episode file of a run; returns (good files, errors)."""
    good, bad = [], []
    for p in episode_files(run_dir):
        try:
            load_episode(p)
            good.append(p)
        except EpisodeFileError as e:
            bad.append(e)
    return good, bad
