"""``mdnworld show``: look at a stored episode as an MP4, a GIF and a PNG contact sheet."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from mdnworld.config import ShowConfig
from mdnworld.data.episodes import episode_path, load_episode
from mdnworld.io import atomic_open, atomic_path

PREVIEW_DIR = "preview"


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling (..., H, W, C) -> (..., H*scale, W*scale, C)."""
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def contact_sheet(
    frames: np.ndarray, max_frames: int = 64, cols: int = 8, pad: int = 2
) -> np.ndarray:
    """Evenly spaced frames of (T, H, W, 3) tiled into one (rows*(H+pad), cols*(W+pad), 3) image."""
    t = len(frames)
    idx = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    rows = -(-len(idx) // cols)
    h, w = frames.shape[1:3]
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for n, i in enumerate(idx):
        r, c = divmod(n, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y : y + h, x : x + w] = frames[i]
    return sheet


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


def write_png(path: Path, image: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        imageio.imwrite(f, image, format="PNG")


def show_episode(run_dir: Path | str, cfg: ShowConfig) -> list[Path]:
    """Write MP4, GIF and contact sheet of episode ``cfg.episode``; returns the paths."""
    run_dir = Path(run_dir)
    ep = load_episode(episode_path(run_dir, cfg.episode))
    out = run_dir / PREVIEW_DIR
    stem = f"episode_{cfg.episode:06d}"
    big = upscale(ep.frames, cfg.scale)
    paths = [out / f"{stem}.mp4", out / f"{stem}.gif", out / f"{stem}_contact.png"]
    write_video(paths[0], big, cfg.fps)
    write_video(paths[1], ep.frames, cfg.fps)
    write_png(paths[2], upscale(contact_sheet(ep.frames, cfg.max_contact_frames), 2))
    return paths
