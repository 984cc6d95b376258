"""Random access to stored frames without loading episodes: memory stays flat at any data size.

Episode files are uncompressed zips, so each episode's ``frames`` array lies contiguously in
its file. ``FrameStore`` finds where, once, and then reads any frame with one ``os.pread`` of
12,288 bytes. The OS page cache does the caching; the process itself holds only the index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mdnworld.env.preprocess import FRAME_SHAPE
from mdnworld.errors import EpisodeFileError
from mdnworld.io import open_npz

FRAME_BYTES = int(np.prod(FRAME_SHAPE))


def split_episodes(
    indices: list[int], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Hold out whole episodes: (train, val), a seeded random ``val_fraction`` of them in val
    (at least one when there are two or more episodes). Same inputs -> same split, in every
    stage that needs one (V and M hold out the same episodes)."""
    idx = sorted(indices)
    n_val = int(round(val_fraction * len(idx)))
    if len(idx) >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), len(idx) - 1)
    perm = np.random.default_rng(seed).permutation(len(idx))
    val = sorted(idx[i] for i in perm[:n_val])
    train = sorted(set(idx) - set(val))
    return train, val


def _frames_offset(path: Path) -> tuple[int, int]:
    """(byte offset of frames[0], number of frames) inside an uncompressed episode .npz; an
    EpisodeFileError naming the file unless the frames lie there raw, uint8 (T, 64, 64, 3) in
    C order (a Fortran-ordered array would be read scrambled)."""
    with open_npz(path) as z:
        z.require(["frames"])
        h = z.headers["frames"]
    if h.dtype != np.uint8 or h.shape[1:] != FRAME_SHAPE or len(h.shape) != 4:
        raise EpisodeFileError(
            path, f"frames are {h.dtype} {h.shape}, expected uint8 (T, 64, 64, 3)"
        )
    if h.fortran_order:
        raise EpisodeFileError(path, "frames are stored in Fortran order; expected C order")
    if h.offset < 0:
        raise EpisodeFileError(path, "frames are compressed; expected a stored (raw) member")
    return h.offset, h.shape[0]


class FrameStore:
    """All frames of a list of episode files, addressed by a global row number.

    ``index[r] = (file number, t)``; ``read(rows)`` -> uint8 (B, 64, 64, 3) in ``rows`` order.
    """

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        located = [_frames_offset(p) for p in self.paths]
        self.offsets = np.array([o for o, _ in located], dtype=np.int64)
        self.lengths = np.array([n for _, n in located], dtype=np.int64)
        self.index = np.concatenate(
            [np.stack([np.full(n, i), np.arange(n)], 1) for i, n in enumerate(self.lengths)]
            or [np.zeros((0, 2), np.int64)]
        ).astype(np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *FRAME_SHAPE), np.uint8)
        flat = out.reshape(len(rows), -1)
        files, ts = self.index[rows, 0], self.index[rows, 1]
        for f in np.unique(files):
            fd = os.open(self.paths[f], os.O_RDONLY)
            try:
                for j in np.flatnonzero(files == f):
                    pos = int(self.offsets[f] + ts[j] * FRAME_BYTES)
                    data = os.pread(fd, FRAME_BYTES, pos)
                    if len(data) != FRAME_BYTES:
                        raise EpisodeFileError(
                            self.paths[f], "file is shorter than its header says"
                        )
                    flat[j] = np.frombuffer(data, np.uint8)
            finally:
                os.close(fd)
        return out
