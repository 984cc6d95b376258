"""Writing pictures and videos of frames (a leaf module: numpy and imageio only).

Frames are uint8 (..., H, W, 3). Every writer is atomic (a temp file renamed into place) and
takes the path first, like ``io.atomic_write_json``.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from mdnworld.io import atomic_open, atomic_path


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling (..., H, W, C) -> (..., H*scale, W*scale, C)."""
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write (T, H, W, 3) uint8 frames as MP4 (H.264, via imageio-ffmpeg) or GIF, atomically."""
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            # H and W must be multiples of 16 for most players; callers upscale 64x64 frames.
            imageio.mimwrite(
                tmp,
                list(frames),
                format="FFMPEG",
                fps=fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=16,
            )
        elif suffix == ".gif":
            imageio.mimwrite(tmp, list(frames), format="GIF", duration=1000 / fps, loop=0)
        else:
            raise ValueError(f"{path}: unsupported video format {suffix!r} (use .mp4 or .gif)")


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W, 4) uint8 image as PNG, atomically; returns ``path``."""
    with atomic_open(path, "wb") as f:
        imageio.imwrite(f, image, format="PNG")
    return path
