"""``mdnworld dream``: dreams written to disk as videos with live pi bars and raw arrays.

Files under ``RUN_DIR/dreams/model_<i>/`` (``committed_<k>/`` inside it for committed dreams):

- ``dream_<j>.mp4`` (and ``.gif``): the decoded dream frame (x4) beside a bar chart of pi at that
  step; the bar of the component the frame was drawn from has a black frame around it;
- ``dreams.npz`` (no pickle): ``z`` (B, T, Z), ``pi`` (B, T, K), ``component`` (B, T),
  ``action`` (B, T, 1), ``frames`` (B, T, 64, 64, 3) uint8, ``start_episode`` (B,), ``seeds`` (B,);
- ``dreams.json``: the settings, so a rerun with the same settings is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mdnworld.checkpoints import StartBank, load_mdnrnn, load_vae
from mdnworld.config import DreamConfig, to_dict
from mdnworld.device import prepare_cpu, resolve_device
from mdnworld.dreams.engine import decode, dream
from mdnworld.errors import ConfigError
from mdnworld.io import atomic_write_json, read_json, write_npz
from mdnworld.layout import RunLayout
from mdnworld.media import upscale, write_video
from mdnworld.palette import component_colour

PANEL = 256  # pixels: the frame is shown x4 (256 x 256) and the bar chart beside it as big


class PiBars:
    """Draws pi (K,) as a bar chart into a (PANEL, PANEL, 3) uint8 image: axes, labels and
    title are rendered once by matplotlib, the bars are filled per frame with numpy."""

    def __init__(self, K: int, title: str) -> None:
        # an Agg canvas of its own: no pyplot, so the caller's backend (a notebook's) stays
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(PANEL / 100, PANEL / 100), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.18, 0.14, 0.77, 0.74))
        ax.set_xlim(-0.5, K - 0.5)
        ax.set_ylim(0, 1)
        ax.set_xticks(range(K), [f"k={k}" for k in range(K)], fontsize=8)
        ax.set_ylabel("π (mixture weight)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_title(title, fontsize=9)
        fig.canvas.draw()
        self.background = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        box = ax.get_window_extent()
        self.K = K
        self.left, self.right = box.x0, box.x1
        self.top, self.bottom = PANEL - box.y1, PANEL - box.y0  # image rows

    def __call__(self, pi: np.ndarray, chosen: int | None = None) -> np.ndarray:
        img = self.background.copy()
        width = (self.right - self.left) / self.K
        for k, p in enumerate(pi):
            c0 = int(round(self.left + (k + 0.15) * width))
            c1 = int(round(self.left + (k + 0.85) * width))
            r0 = int(round(self.bottom - float(p) * (self.bottom - self.top)))
            r1 = int(round(self.bottom))
            img[r0:r1, c0:c1] = component_colour(k)
            if k == chosen:  # a black frame around the component the frame came from
                img[max(r0 - 3, 0) : r1, c0 - 3 : c0] = 0
                img[max(r0 - 3, 0) : r1, c1 : c1 + 3] = 0
                img[max(r0 - 3, 0) : r0, c0:c1] = 0
        return img


def dream_video_frames(
    frames: np.ndarray, pi: np.ndarray, component: np.ndarray, title: str
) -> np.ndarray:
    """One dream: frames (T, 64, 64, 3) uint8, pi (T, K), component (T,) -> (T, 256, 512, 3)."""
    bars = PiBars(pi.shape[-1], title)
    scale = PANEL // frames.shape[1]
    video = np.empty((len(frames), PANEL, 2 * PANEL, 3), np.uint8)  # filled frame by frame
    for t in range(len(frames)):
        video[t, :, :PANEL] = upscale(frames[t], scale)
        video[t, :, PANEL:] = bars(pi[t], int(component[t]))
    return video


def write_dream_video(path: Path, video: np.ndarray, fps: int) -> None:
    """``dream_video_frames`` output as MP4, or as a GIF at half the size (GIFs are large)."""
    write_video(path, video[:, ::2, ::2] if path.suffix == ".gif" else video, fps)


def run_dreams(run_dir: Path, cfg: DreamConfig, log: Callable[[str], None] = print) -> Path:
    """Dream ``cfg.dreams`` dreams with model ``cfg.model_index`` (and ``cfg.committed``
    committed dreams per component); returns the folder of the free dreams."""
    run = RunLayout(run_dir)
    out = run.dream_dir(cfg.model_index, cfg.commit)
    settings = to_dict(cfg)
    settings.pop("device"), settings.pop("threads")
    done = run.dream_settings(cfg.model_index, cfg.commit)
    if (
        done.exists()
        and {k: v for k, v in read_json(done).items() if k != "n_components"} == settings
    ):
        log(f"dream: {out} already has these dreams, skipped")
    else:
        K = _dream_and_write(run, cfg, log)
        atomic_write_json(done, {**settings, "n_components": K})  # written last: the marker
    for c in committed_configs(cfg, read_json(done)["n_components"]):
        run_dreams(run_dir, c, log)
    return out


def _dream_and_write(run: RunLayout, cfg: DreamConfig, log: Callable) -> int:
    """Dream, write videos and dreams.npz; returns K."""
    prepare_cpu(cfg.threads, keep_heap=False)  # one pass: its peak is what counts
    device = resolve_device(cfg.device)
    model, meta = load_mdnrnn(run.root, cfg.model_index, device)
    vae, _ = load_vae(run.root, device)
    K = model.arch.n_components
    if model.arch.mixture != "shared":
        raise ConfigError(f"{run.rnn_model(cfg.model_index)}: dream videos need the shared mixture")
    if cfg.commit >= K:
        raise ConfigError(
            f"dream.commit must be < {K} (the number of components), got {cfg.commit}"
        )
    rng = np.random.default_rng(cfg.seed)
    starts = StartBank.from_run(run.root).sample(cfg.dreams, cfg.start_t, rng, cfg.teacher_steps)
    seeds = [cfg.seed * 1_000_003 + j for j in range(cfg.dreams)]
    what = f"committed to k={cfg.commit}" if cfg.commit >= 0 else f"τπ={cfg.tau_pi:g}"
    log(f"dream: {cfg.dreams} dream(s) x {cfg.steps} steps, model_{cfg.model_index}, {what}")
    rec = dream(
        model,
        starts.z,
        cfg.steps,
        seeds,
        warmup=cfg.warmup,
        tau_pi=cfg.tau_pi,
        tau_sigma=cfg.tau_sigma,
        commit=cfg.commit if cfg.commit >= 0 else None,
        p_change=cfg.p_change,
        teacher=starts.teacher,
    )
    frames = decode(vae, rec.z, dtype=np.uint8)
    for j in tqdm(range(cfg.dreams), desc="dream videos", unit="dream", dynamic_ncols=True):
        video = dream_video_frames(
            frames[j], rec.pi[j], rec.component[j], f"model {cfg.model_index}, {what}"
        )
        write_dream_video(run.dream_video(cfg.model_index, cfg.commit, j), video, cfg.fps)
        if cfg.gif:
            gif = run.dream_video(cfg.model_index, cfg.commit, j, ".gif")
            write_dream_video(gif, video, cfg.fps)
    arrays = {
        "z": rec.z,
        "pi": rec.pi,
        "component": rec.component,
        "action": rec.action,
        "frames": frames,
        "start_episode": np.array(starts.episodes, np.int64),
        "seeds": np.array(seeds, np.int64),
    }
    path = run.dream_arrays(cfg.model_index, cfg.commit)
    write_npz(path, arrays)
    log(f"dream: wrote {cfg.dreams} video(s) and {path.name} to {path.parent}")
    return K


def committed_configs(cfg: DreamConfig, K: int) -> list[DreamConfig]:
    """The settings of the committed dreams that go with free dreams ``cfg``."""
    if cfg.commit >= 0 or cfg.committed <= 0:
        return []
    return [dataclasses.replace(cfg, commit=k, dreams=cfg.committed, committed=0) for k in range(K)]


def dreams_done(run_dir: Path, cfg: DreamConfig) -> bool:
    return RunLayout(run_dir).dreams_done(cfg.model_index, cfg.commit, cfg.committed)
