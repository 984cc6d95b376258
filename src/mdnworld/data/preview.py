"""``mdnworld show``: look at a stored episode as an MP4, a GIF and a PNG contact sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdnworld.config import ShowConfig
from mdnworld.data.episodes import load_episode
from mdnworld.layout import RunLayout
from mdnworld.media import upscale, write_png, write_video


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


def show_episode(run_dir: Path | str, cfg: ShowConfig) -> list[Path]:
    """Write MP4, GIF and contact sheet of episode ``cfg.episode``; returns the paths."""
    run = RunLayout(run_dir)
    ep = load_episode(run.episode(cfg.episode))
    big = upscale(ep.frames, cfg.scale)
    paths = [run.preview(cfg.episode, s) for s in (".mp4", ".gif", "_contact.png")]
    write_video(paths[0], big, cfg.fps)
    write_video(paths[1], ep.frames, cfg.fps)
    write_png(paths[2], upscale(contact_sheet(ep.frames, cfg.max_contact_frames), 2))
    return paths
