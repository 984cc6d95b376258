"""Small file helpers (numpy only): every file mdnworld writes goes through these.

Writes are atomic (temp file in the same folder, fsync, rename), so a killed process never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mdnworld.errors import DataError, LockedError, MissingError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str | os.PathLike, path: Path) -> None:
    """Give the temp file normal permissions (mkstemp makes it 0600) and rename it."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """Open a temp file beside ``path``; on clean exit rename it onto ``path``.

    ``fsync=False`` skips flushing to the disk before the rename: still atomic against a
    killed process, but after a power cut the file may be empty (``validate`` finds it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path with the same suffix beside ``path`` (for writers that need a file
    name, such as ffmpeg); on clean exit rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npz(path: Path | str, arrays: dict[str, np.ndarray], fsync: bool = True) -> None:
    """Atomically write an uncompressed ``.npz`` that ``np.load`` reads, byte-for-byte
    reproducible: unlike ``np.savez`` it stamps every member with a fixed date, so equal
    arrays give equal files (and equal checksums)."""
    with (
        atomic_open(path, "wb", fsync=fsync) as f,
        zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf,
    ):
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises an error that names it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temp files left in ``folder`` by a killed writer; returns how many."""
    n = 0
    for p in [*Path(folder).glob(".*.tmp"), *Path(folder).glob(".*.tmp.*")]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs, so two
    processes cannot write the same state at once; one that asks meanwhile gets LockedError.
    The OS drops the lock when the holder ends, however it ends (POSIX flock)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise LockedError(
                f"{path}: another {what} (pid {holder}) is running on this run directory; "
                "wait for it or stop it, then run this again"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
