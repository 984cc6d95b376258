"""Step 3, ``mdnworld encode``: every stored frame -> (mu, logvar) under the trained V.

One file per episode under ``RUN_DIR/latents/`` (uncompressed npz, no pickle)::

    ep_000017.npz
      mu          float32 (T, Z)   posterior mean of frame t (the paper trains M on it)
      logvar      float32 (T, Z)   posterior log-variance
      actions     float32 (T, 1),  rewards float32 (T,),  dones bool (T,),  seed int64 ()
      vae_sha256  str     ()       sha256 of the V that made the file (its model.safetensors)

``latents/manifest.json`` records the sha256 of the V too. Every reader checks each file
against the V it expects (``checkpoints.load_latents``): train-rnn against the manifest's V
(itself checked against ``vae/model.json``), encode against the current V. A re-run skips
episodes already encoded by the same V and refuses to mix latents of two different Vs.

Provenance of old files: latent files written before they recorded ``vae_sha256`` are
accepted only where ``latents/manifest.json`` vouches for them (it names the expected V).
Without a manifest, encode checks each existing file against the current V: a file made by
another V, or one that does not say which V made it, is refused, naming the file.

Encoding is deterministic (eval mode, posterior mean and log-variance, no sampling, float32).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mdnworld.checkpoints import LATENT_FORMAT, latent_info, load_vae, read_latent_manifest
from mdnworld.config import EncodeConfig
from mdnworld.data.episodes import checked_episode_files, episode_info, load_episode
from mdnworld.device import prepare_cpu, resolve_device
from mdnworld.errors import ConflictError
from mdnworld.io import atomic_write_json, remove_stale_temps, write_npz
from mdnworld.layout import RunLayout, episode_index
from mdnworld.models.vae import encode_frames


def encode_run(run_dir: Path, cfg: EncodeConfig, log: Callable[[str], None] = print) -> int:
    """Encode every episode not yet encoded; returns how many were encoded now."""
    run_dir = Path(run_dir)
    prepare_cpu(cfg.threads)
    device = resolve_device(cfg.device)
    model, meta = load_vae(run_dir, device)
    vae_sha = meta["sha256"]
    run = RunLayout(run_dir)
    episodes = checked_episode_files(run_dir, log)
    out = run.latents_dir
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    _check_existing(run, vae_sha)
    atomic_write_json(
        run.latent_manifest,
        {"format": LATENT_FORMAT, "vae_sha256": vae_sha, "latent_dim": model.arch.latent_dim},
    )
    todo = [p for p in episodes if not run.latent(episode_index(p)).exists()]
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
                    "vae_sha256": np.str_(vae_sha),
                },
            )
            frames_done += len(ep)
            bar.update(1)
            bar.set_postfix(
                frames_s=f"{frames_done / max(bar.format_dict['elapsed'], 1e-9):.0f}", refresh=False
            )
    log(f"encode: {len(todo)} episode(s) encoded now, {len(run.latent_files())} in {out}")
    return len(todo)


def _check_existing(run: RunLayout, vae_sha: str) -> None:
    """Refuse latents that the current V did not make: a manifest naming another V, or
    (each file checked, reading only its small arrays) a file that records another V, one
    that records none where no manifest vouches for it, or one that no longer matches its
    episode (length or seed)."""
    files = run.latent_files()
    vouched = None
    if run.latent_manifest.exists():
        vouched = read_latent_manifest(run.root, check_vae=False)["vae_sha256"]
        if vouched != vae_sha and files:
            raise ConflictError(
                f"{run.latents_dir}: latents were made by another VAE ({vouched[:12]}...), not "
                f"the current {run.vae_model} ({vae_sha[:12]}...); delete {run.latents_dir} "
                "to re-encode"
            )
    current = f"the current {run.vae_model} ({vae_sha[:12]}...)"
    for p in files:
        info = latent_info(p)
        episode = run.episode(episode_index(p))
        ep = episode_info(episode) if episode.exists() else None
        if info.vae_sha256 is None and vouched is None:
            why = f"does not record which V made it, and no manifest.json vouches for {current}"
        elif info.vae_sha256 is not None and info.vae_sha256 != vae_sha:
            why = f"was made by another VAE ({info.vae_sha256[:12]}...), not {current}"
        elif ep is not None and (ep.length, ep.seed) != (info.length, info.seed):
            why = (
                f"holds {info.length} steps of seed {info.seed}, but {episode} holds "
                f"{ep.length} steps of seed {ep.seed}"
            )
        else:
            continue
        raise ConflictError(f"{p}: {why}; delete it (or all of {run.latents_dir}) to re-encode")
