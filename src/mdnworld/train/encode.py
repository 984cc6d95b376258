"""Step 3, ``mdnworld encode``: every stored frame -> (mu, logvar) under the trained V.

One file per episode under ``RUN_DIR/latents/`` (uncompressed npz, no pickle)::

    ep_000017.npz
      mu       float32 (T, Z)   posterior mean of frame t (the paper trains M on it)
      logvar   float32 (T, Z)   posterior log-variance
      actions  float32 (T, 1),  rewards float32 (T,),  dones bool (T,),  seed int64 ()

``latents/manifest.json`` records the sha256 of the VAE weights used: a re-run skips episodes
already encoded with the same V and refuses to mix latents of two different Vs. Encoding is
deterministic (eval mode, posterior mean and log-variance, no sampling, float32).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mdnworld.config import EncodeConfig
from mdnworld.data.episodes import EpisodeFileError, episode_files, load_episode, write_npz
from mdnworld.io import atomic_write_json, read_json, remove_stale_temps
from mdnworld.models.vae import frames_to_tensor
from mdnworld.train.common import resolve_device, set_threads
from mdnworld.train.vae import VAE_DIR, load_vae

LATENT_DIR = "latents"
LATENT_FORMAT = "mdnworld.latents/1"


def latent_files(run_dir: Path | str) -> list[Path]:
    return sorted((Path(run_dir) / LATENT_DIR).glob("ep_*.npz"))


def load_latents(path: Path | str, latent_dim: int | None = None) -> dict[str, np.ndarray]:
    """One encoded episode, validated (shapes, dtypes, lengths). Errors name the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in ("mu", "logvar", "actions", "rewards", "dones", "seed")}
    except (KeyError, OSError, ValueError, EOFError) as e:
        raise EpisodeFileError(path, f"not a valid latent file ({e})") from None
    t, zdim = d["mu"].shape if d["mu"].ndim == 2 else (-1, -1)
    expected = {
        "mu": (t, zdim),
        "logvar": (t, zdim),
        "actions": (t, 1),
        "rewards": (t,),
        "dones": (t,),
    }
    for key, shape in expected.items():
        if t < 1 or d[key].shape != shape:
            raise EpisodeFileError(path, f"'{key}' has shape {d[key].shape}, expected {shape}")
    if d["mu"].dtype != np.float32 or d["logvar"].dtype != np.float32:
        raise EpisodeFileError(path, "mu/logvar must be float32")
    if latent_dim is not None and zdim != latent_dim:
        raise EpisodeFileError(path, f"latent size {zdim}, expected {latent_dim}")
    return d


@torch.no_grad()
def encode_frames(
    model: torch.nn.Module, frames: np.ndarray, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 64, 64, 3) uint8 -> mu, logvar, each float32 (T, Z)."""
    mus, logvars = [], []
    for i in range(0, len(frames), batch_size):
        mu, logvar = model.encode(frames_to_tensor(frames[i : i + batch_size]).to(device))
        mus.append(mu.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)


def encode_run(run_dir: Path, cfg: EncodeConfig, log: Callable[[str], None] = print) -> int:
    """Encode every episode not yet encoded; returns how many were encoded now."""
    run_dir = Path(run_dir)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    model, meta = load_vae(run_dir, device)
    vae_sha = meta["sha256"]
    out = run_dir / LATENT_DIR
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    man_path = out / "manifest.json"
    if man_path.exists():
        old = read_json(man_path).get("vae_sha256")
        if old != vae_sha and latent_files(run_dir):
            raise ValueError(
                f"{man_path}: latents were made by another VAE ({old[:12]}...), not the current "
                f"{VAE_DIR}/model.safetensors ({vae_sha[:12]}...); delete {out} to re-encode"
            )
    atomic_write_json(
        man_path,
        {"format": LATENT_FORMAT, "vae_sha256": vae_sha, "latent_dim": model.arch.latent_dim},
    )
    todo = [p for p in episode_files(run_dir) if not (out / p.name).exists()]
    frames_done = 0
    with tqdm(total=len(todo), desc="encode", unit="ep", dynamic_ncols=True) as bar:
        for p in todo:
            ep = load_episode(p)
            mu, logvar = encode_frames(model, ep.frames, cfg.batch_size, device)
            write_npz(
                out / p.name,
                {
                    "mu": mu,
                    "logvar": logvar,
                    "actions": ep.actions,
                    "rewards": ep.rewards,
                    "dones": ep.dones,
                    "seed": np.int64(ep.seed),
                },
            )
            frames_done += len(ep)
            bar.update(1)
            bar.set_postfix(
                frames_s=f"{frames_done / max(bar.format_dict['elapsed'], 1e-9):.0f}", refresh=False
            )
    log(f"encode: {len(todo)} episode(s) encoded now, {len(latent_files(run_dir))} in {out}")
    return len(todo)
