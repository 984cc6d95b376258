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
from tqdm import tqdm

from mdnworld.checkpoints import LATENT_FORMAT, load_vae
from mdnworld.config import EncodeConfig
from mdnworld.data.episodes import load_episode
from mdnworld.device import resolve_device, set_threads
from mdnworld.errors import ConflictError
from mdnworld.io import atomic_write_json, read_json, remove_stale_temps, write_npz
from mdnworld.layout import RunLayout
from mdnworld.models.vae import encode_frames


def encode_run(run_dir: Path, cfg: EncodeConfig, log: Callable[[str], None] = print) -> int:
    """Encode every episode not yet encoded; returns how many were encoded now."""
    run_dir = Path(run_dir)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    model, meta = load_vae(run_dir, device)
    vae_sha = meta["sha256"]
    run = RunLayout(run_dir)
    out = run.latents_dir
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    man_path = run.latent_manifest
    old = read_json(man_path).get("vae_sha256") if man_path.exists() else None
    if old != vae_sha and run.latent_files():
        made_by = f"another VAE ({old[:12]}...)" if old else "an unknown VAE (no manifest.json)"
        raise ConflictError(
            f"{out}: latents were made by {made_by}, not the current {run.vae_model} "
            f"({vae_sha[:12]}...); delete {out} to re-encode"
        )
    atomic_write_json(
        man_path,
        {"format": LATENT_FORMAT, "vae_sha256": vae_sha, "latent_dim": model.arch.latent_dim},
    )
    todo = [p for p in run.episode_files() if not (out / p.name).exists()]
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
    log(f"encode: {len(todo)} episode(s) encoded now, {len(run.latent_files())} in {out}")
    return len(todo)
