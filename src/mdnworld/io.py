"""Small file helpers (numpy only): every file mdnworld writes goes through these.

Writes are atomic (temp file in the same folder, fsync, rename), so a killed process never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mdnworld.errors import DataError, EpisodeFileError, LockedError, MissingError


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


# --- reading .npz files with errors that name the file ---


@dataclasses.dataclass(frozen=True)
class NpyHeader:
    """One array of an ``.npz`` as its header describes it (none of its data read)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int
    """Byte offset of the array's data in the file; -1 for a compressed member."""


CORRUPT = (
    zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error, zlib.error, SyntaxError,
    tokenize.TokenError, RuntimeError, NotImplementedError, OverflowError, KeyError, TypeError,
)  # fmt: skip
"""What zipfile and numpy's header parser raise on damaged bytes (encrypted or unsupported
flags, a header that is not a dict literal, bad CRC, ...): always the file's fault."""


class NpzReader:
    """An ``.npz`` opened for checked reading (``with open_npz(path) as z``): ``z.headers``
    (every array's shape, dtype, order and data offset, read without the data) and
    ``z.array(name)``. Every problem (missing, empty, all zero bytes, truncated, not a zip,
    pickled objects, a header that does not match the data) raises ``EpisodeFileError``
    naming the file; nothing is ever unpickled."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise EpisodeFileError(self.path, "file not found") from None
        except CORRUPT as e:
            raise EpisodeFileError(self.path, _not_a_zip(self.path, e)) from None
        try:
            with open(self.path, "rb") as raw:
                size = os.fstat(raw.fileno()).st_size
                self.headers = {
                    info.filename[:-4]: self._header(info, raw, size)
                    for info in self._zip.infolist()
                    if info.filename.endswith(".npy")
                }
        except BaseException as e:
            self._zip.close()
            if isinstance(e, CORRUPT):
                reason = f"truncated or corrupt .npz ({type(e).__name__}: {e})"
                raise EpisodeFileError(self.path, reason) from None
            raise

    def _header(self, info: zipfile.ZipInfo, raw: IO[bytes], size: int) -> NpyHeader:
        name = info.filename[:-4]
        fmt = np.lib.format
        with self._zip.open(info) as member:
            read = {(1, 0): fmt.read_array_header_1_0}.get(fmt.read_magic(member))
            shape, fortran, dtype = (read or fmt.read_array_header_2_0)(member)
            header_len = member.tell()
        if dtype.hasobject:
            raise EpisodeFileError(
                self.path, f"array '{name}' holds Python objects (pickled data); refused"
            )
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if info.file_size != header_len + nbytes:
            raise EpisodeFileError(
                self.path,
                f"array '{name}' holds {info.file_size - header_len} bytes of data, its header "
                f"says {dtype} {tuple(shape)} ({nbytes} bytes): truncated or corrupt",
            )
        offset = -1
        if info.compress_type == zipfile.ZIP_STORED:
            raw.seek(info.header_offset)
            name_len, extra_len = struct.unpack("<HH", raw.read(30)[26:30])
            offset = info.header_offset + 30 + name_len + extra_len + header_len
            if offset + nbytes > size:
                raise EpisodeFileError(self.path, f"array '{name}' ends past the end of the file")
        return NpyHeader(tuple(shape), dtype, bool(fortran), offset)

    def require(self, names: Iterable[str]) -> None:
        missing = set(names) - set(self.headers)
        if missing:
            raise EpisodeFileError(self.path, f"missing arrays {sorted(missing)}")

    def array(self, name: str) -> np.ndarray:
        self.require([name])
        try:
            with self._zip.open(f"{name}.npy") as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except CORRUPT as e:
            reason = f"array '{name}' is truncated or corrupt ({type(e).__name__}: {e})"
            raise EpisodeFileError(self.path, reason) from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_npz(path: Path | str) -> NpzReader:
    """``with open_npz(path) as z: z.headers, z.array("frames")``; see ``NpzReader``."""
    return NpzReader(path)


def _not_a_zip(path: Path, error: Exception) -> str:
    """Why ``path`` is not a zip, in words: empty and zeroed files are what a crash leaves."""
    try:
        size, zero = path.stat().st_size, True
        with open(path, "rb") as f:
            while zero and (chunk := f.read(1 << 20)):
                zero = not chunk.strip(b"\0")
    except OSError as e:
        return f"cannot be read ({e})"
    if size == 0 or zero:
        what = "empty (0 bytes)" if size == 0 else f"all zero bytes ({size} bytes)"
        return f"{what}, as a crash or power cut can leave a file; delete it and run again"
    return f"truncated or not an .npz (zip) file ({error})"


# --- a data file and its JSON, replaced as one unit ---

PENDING = ".pending"


def pending_path(path: str | os.PathLike) -> Path:
    """Where ``write_pair`` keeps the new bytes of ``path`` until the JSON names them."""
    path = Path(path)
    return path.with_name(f".{path.name}{PENDING}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _named_sha256(path: Path) -> str | None:
    """The checksum that ``path``'s JSON names; None if it has none or cannot be read."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("sha256") if isinstance(meta, dict) else None


def settle_pair(path: str | os.PathLike) -> bool:
    """Finish a ``write_pair`` of ``path`` that a kill interrupted: a pending file whose
    checksum the JSON names replaces ``path`` (that write had committed), any other pending
    file is deleted (it had not; returns True)."""
    path, pending = Path(path), pending_path(path)
    try:
        data = pending.read_bytes()
    except FileNotFoundError:
        return False
    if _named_sha256(path) == _sha256(data):
        os.replace(pending, path)
        return False
    pending.unlink(missing_ok=True)
    return True


def write_pair(path: str | os.PathLike, data: bytes, meta: dict[str, Any]) -> None:
    """Write ``data`` as ``path`` and ``{**meta, "sha256": <its checksum>}`` as
    ``path.with_suffix('.json')``, the two as one unit: whenever the writer is killed, the
    pair ``read_pair`` finds is the old one or the new one, never a mix.

    Three atomic renames: the new bytes to a pending file beside ``path`` (``.NAME.pending``),
    then the JSON (the commit: it names the new checksum), then the pending file onto
    ``path``. Killed before the JSON, the old pair stands (the stale pending file is deleted
    by the next write or ``remove_stale_temps``); killed after it, ``read_pair`` takes the
    pending file, and the next write or ``remove_stale_temps`` finishes the rename. A first
    write (neither file there) writes ``path`` first, then the JSON: until the JSON exists,
    nothing was saved.
    """
    path = Path(path)
    meta_path = path.with_suffix(".json")
    settle_pair(path)
    record = {**meta, "sha256": _sha256(data)}
    if not path.exists() and not meta_path.exists():
        with atomic_open(path, "wb") as f:
            f.write(data)
        atomic_write_json(meta_path, record)
        return
    pending = pending_path(path)
    with atomic_open(pending, "wb") as f:
        f.write(data)
    atomic_write_json(meta_path, record)
    os.replace(pending, path)


def read_pair(path: str | os.PathLike) -> tuple[bytes | None, Any]:
    """What ``write_pair`` wrote: (the bytes whose checksum the JSON names, the JSON). The
    bytes come from ``path`` or, after a write killed between its last two renames, from the
    pending file; None when neither matches (a corrupt or mismatched pair). Raises
    ``MissingError`` when both are missing, and ``read_json``'s errors for the JSON."""
    path = Path(path)
    for _ in range(3):  # a write_pair in another process may commit between our reads
        meta = read_json(path.with_suffix(".json"))
        named = meta.get("sha256") if isinstance(meta, dict) else None
        found = False
        for candidate in (path, pending_path(path)):
            try:
                data = candidate.read_bytes()
            except FileNotFoundError:
                continue
            found = True
            if named == _sha256(data):
                return data, meta
    if not found:
        raise MissingError(f"{path}: file not found")
    return None, meta


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file raises an error that names it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text, so not a JSON file ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temp files left in ``folder`` by a killed writer, and finish (or undo) each
    ``write_pair`` that a kill interrupted there; returns how many files it removed. Call it
    at a stage's start, on the folders that stage alone writes."""
    n = 0
    for p in Path(folder).glob(f".*{PENDING}"):
        n += settle_pair(p.with_name(p.name[1 : -len(PENDING)]))
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
