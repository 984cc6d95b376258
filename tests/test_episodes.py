"""Episode files: round trip, and clear errors on bad files (named, nothing destroyed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from factories import random_episode

from mdnworld.data.episodes import episode_files, load_episode, save_episode, validate_run
from mdnworld.errors import EpisodeFileError


def test_round_trip(tmp_path: Path) -> None:
    ep = random_episode()
    save_episode(tmp_path / "e.npz", ep)
    back = load_episode(tmp_path / "e.npz")
    for key in ("frames", "actions", "rewards", "dones"):
        assert np.array_equal(getattr(ep, key), getattr(back, key))
        assert getattr(ep, key).dtype == getattr(back, key).dtype
    assert back.seed == 3
    save_episode(tmp_path / "f.npz", ep)
    assert (tmp_path / "e.npz").read_bytes() == (tmp_path / "f.npz").read_bytes()


def test_save_rejects_bad_episode(tmp_path: Path) -> None:
    ep = random_episode()
    ep.actions = ep.actions[:-1]
    with pytest.raises(EpisodeFileError, match="'actions' has shape"):
        save_episode(tmp_path / "e.npz", ep)
    assert not list(tmp_path.iterdir())  # nothing written


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "ep_000000.npz"
    save_episode(path, random_episode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFileError, match="truncated") as e:
        load_episode(path)
    assert str(path) in str(e.value)
    assert path.read_bytes() == data[: len(data) // 2]  # the bad file is left as it was


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("frames", np.zeros((5, 32, 32, 3), np.uint8), "'frames' has shape"),
        ("frames", np.zeros((5, 64, 64, 3), np.float32), "'frames' has dtype"),
        ("dones", np.ones(5, bool), "before the last step"),
        ("rewards", np.ones(4, np.float32), "'rewards' has shape"),
    ],
)
def test_wrong_arrays(tmp_path: Path, key: str, value: np.ndarray, message: str) -> None:
    ep = random_episode()
    arrays = {k: getattr(ep, k) for k in ("frames", "actions", "rewards", "dones")}
    arrays[key] = value
    path = tmp_path / "bad.npz"
    np.savez(path, seed=np.int64(0), **arrays)
    with pytest.raises(EpisodeFileError, match=message) as e:
        load_episode(path)
    assert str(path) in str(e.value)


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickle.npz"
    ep = random_episode()
    np.savez(
        path,
        frames=np.array([object()], dtype=object),
        actions=ep.actions,
        rewards=ep.rewards,
        dones=ep.dones,
        seed=np.int64(0),
    )
    with pytest.raises(EpisodeFileError, match=r"'frames' holds Python objects \(pickled"):
        load_episode(path)


def test_missing_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, frames=random_episode().frames)
    with pytest.raises(EpisodeFileError, match="missing arrays"):
        load_episode(path)


def test_validate_cli_names_bad_files(small_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    ok = subprocess.run(
        [sys.executable, "-m", "mdnworld.cli", "validate", str(run)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "4 valid" in ok.stdout
    files = episode_files(run)
    files[1].write_bytes(files[1].read_bytes()[:1000])
    bad = subprocess.run(
        [sys.executable, "-m", "mdnworld.cli", "validate", str(run)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert files[1].name in bad.stderr and "truncated" in bad.stderr
    assert "3 valid episode file(s), 1 bad" in bad.stdout
    good, errors = validate_run(run)
    assert len(good) == 3 and errors[0].path == files[1]
