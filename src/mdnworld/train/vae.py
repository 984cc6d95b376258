"""Step 2, ``mdnworld train-vae``: fit V on stored frames, streamed from disk.

Read top to bottom: split episodes, build the frame index, restore a checkpoint if there is
one, then the loop (Adam on the VAE loss), with validation, a reconstruction grid and a
checkpoint at every epoch end, plus a checkpoint every ``checkpoint_every`` steps or
``checkpoint_minutes`` minutes, whichever comes first.

Exact resume: the batch order of epoch e is a permutation seeded by (seed, e), and the noise
of step s comes from a generator seeded by (seed, s); a checkpoint stores weights, Adam state
and the step. A run stopped anywhere and resumed ends with the same weights as one that never
stopped (on the same device and thread count).

Files under ``RUN_DIR/vae/``: ``checkpoint.{safetensors,json}``, ``model.{safetensors,json}``
(the final weights, written when training ends), ``log.jsonl``, ``tb/``, ``split.json``,
``recon/epoch_NNN.png`` and ``reconstructions.png`` (latest grid: validation frames on top,
their reconstructions below).
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mdnworld.checkpoints import (
    load_checkpoint,
    save_checkpoint,
    save_weights,
)
from mdnworld.config import VAEConfig, to_dict
from mdnworld.data.frames import FrameStore, split_episodes
from mdnworld.device import autocast, resolve_device, set_threads
from mdnworld.errors import MissingError
from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout, episode_index
from mdnworld.logs import Logger
from mdnworld.media import upscale, write_png
from mdnworld.models.vae import VAE, VAEArch, frames_to_tensor, tensor_to_frames, vae_loss


def batches(
    store: FrameStore, rows: np.ndarray, batch_size: int, start: int, prefetch: int
) -> Iterator[np.ndarray]:
    """Frames of ``rows[start*B:]`` in batches of B, read ahead on a background thread when
    ``prefetch > 0``. On a small CPU, reading in the training thread is faster: a reader
    thread competing with torch's threads stalls the convolutions more than the ~1 ms reads
    cost (benchmarks/vae.py)."""
    n_batches = math.ceil(len(rows) / batch_size)
    if prefetch <= 0:
        for b in range(start, n_batches):
            yield store.read(rows[b * batch_size : (b + 1) * batch_size])
        return
    q: queue.Queue = queue.Queue(maxsize=max(prefetch, 1))
    stop = threading.Event()

    def produce() -> None:
        try:
            for b in range(start, n_batches):
                if stop.is_set():
                    return
                q.put(store.read(rows[b * batch_size : (b + 1) * batch_size]))
            q.put(None)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                time.sleep(0.001)


@torch.no_grad()
def evaluate(model: VAE, frames: np.ndarray, cfg: VAEConfig, device: torch.device) -> dict:
    """Mean recon and KL per frame on ``frames`` (N, 64, 64, 3) uint8, fixed noise."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    tot_r = tot_k = 0.0
    for i in range(0, len(frames), cfg.batch_size):
        x = frames_to_tensor(frames[i : i + cfg.batch_size]).to(device)
        with autocast(device, cfg.amp):
            logits, mu, logvar = model(x, generator=gen)
        _, r, k = vae_loss(logits, x, mu, logvar, cfg.recon_loss, cfg.free_bits)
        tot_r += float(r) * len(x)
        tot_k += float(k) * len(x)
    model.train()
    return {"recon": tot_r / len(frames), "kl": tot_k / len(frames)}


@torch.no_grad()
def reconstruction_grid(model: VAE, frames: np.ndarray, device: torch.device) -> np.ndarray:
    """Originals (top row) above reconstructions from the posterior mean (bottom row)."""
    model.eval()
    mu, _ = model.encode(frames_to_tensor(frames).to(device))
    recon = tensor_to_frames(model.decode(mu).float().cpu())
    model.train()
    return np.concatenate([np.concatenate(list(frames), 1), np.concatenate(list(recon), 1)], 0)


def train_vae(
    run_dir: Path,
    cfg: VAEConfig,
    log: Callable[[str], None] = print,
    stop_after_steps: int | None = None,
) -> dict:
    """Train V; returns the final metrics. ``stop_after_steps`` stops abruptly after that many
    steps of this call without saving anything more, exactly like a kill (for tests)."""
    run_dir = Path(run_dir)
    run = RunLayout(run_dir)
    out = run.vae_dir
    out.mkdir(parents=True, exist_ok=True)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    files = run.episode_files()
    if not files:
        raise MissingError(f"{run.episodes_dir}: no episodes; run `mdnworld generate`")
    train_ids, val_ids = split_episodes(
        [episode_index(p) for p in files], cfg.val_fraction, cfg.seed
    )
    by_id = {episode_index(p): p for p in files}
    train_store = FrameStore([by_id[i] for i in train_ids])
    val_store = FrameStore([by_id[i] for i in val_ids or train_ids[:1]])
    atomic_write_json(run.vae_split, {"train": train_ids, "val": val_ids, "seed": cfg.seed})
    pick = np.random.default_rng(cfg.seed).permutation(len(val_store))
    val_frames = val_store.read(np.sort(pick[: cfg.val_frames]))
    grid_frames = val_store.read(np.sort(pick[: cfg.grid_frames]))

    arch = VAEArch(latent_dim=cfg.latent_dim)
    model = VAE(arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(train_store) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    ckpt = run.vae_checkpoint
    step = 0
    if ckpt.with_suffix(".json").exists():
        meta = load_checkpoint(ckpt, model, opt)
        if meta["steps_per_epoch"] != steps_per_epoch:
            raise ValueError(
                f"{ckpt}.json: saved with {meta['steps_per_epoch']} steps per "
                f"epoch, the data now gives {steps_per_epoch}; use a new run dir"
            )
        step = meta["step"]
        log(f"train-vae: resumed from step {step}/{total_steps}")
    logger = Logger(out, resume_step=step)

    def checkpoint() -> None:
        save_checkpoint(
            ckpt,
            model,
            opt,
            {"step": step, "steps_per_epoch": steps_per_epoch, "config": to_dict(cfg)},
        )

    log(
        f"train-vae: {len(train_store)} train frames ({len(train_ids)} episodes), "
        f"{len(val_frames)} val frames ({len(val_ids)} episodes), {cfg.epochs} epochs of "
        f"{steps_per_epoch} steps, device {device}"
    )
    gen = torch.Generator(device=device)
    last_ckpt = time.monotonic()
    steps_this_call = 0
    bar = tqdm(total=total_steps, initial=step, desc="train-vae", unit="step", dynamic_ncols=True)
    metrics: dict = {}
    while step < total_steps:
        epoch, start = divmod(step, steps_per_epoch)
        rows = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_store))
        t0 = time.perf_counter()
        for frames in batches(train_store, rows, cfg.batch_size, start, cfg.prefetch):
            x = frames_to_tensor(frames).to(device, non_blocking=True)
            gen.manual_seed(cfg.seed * 1_000_003 + step)
            with autocast(device, cfg.amp):
                logits, mu, logvar = model(x, generator=gen)
            loss, recon, kl = vae_loss(logits, x, mu, logvar, cfg.recon_loss, cfg.free_bits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            steps_this_call += 1
            bar.update(1)
            if step % cfg.log_every == 0:
                rate = len(x) / max(time.perf_counter() - t0, 1e-9)
                logger.log(
                    step,
                    **{
                        "train/loss": loss,
                        "train/recon": recon,
                        "train/kl": kl,
                        "train/samples_per_s": rate,
                    },
                )
                bar.set_postfix(loss=f"{loss.item():.1f}", samples_s=f"{rate:.0f}", refresh=False)
            t0 = time.perf_counter()
            if step % steps_per_epoch == 0:
                break
            if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                bar.close()
                return {}
            if (
                step % cfg.checkpoint_every == 0
                or time.monotonic() - last_ckpt > 60 * cfg.checkpoint_minutes
            ):
                checkpoint()
                last_ckpt = time.monotonic()
        # end of epoch: validation, reconstruction grid, checkpoint
        epoch = step // steps_per_epoch
        metrics = evaluate(model, val_frames, cfg, device)
        logger.log(step, **{"val/recon": metrics["recon"], "val/kl": metrics["kl"], "epoch": epoch})
        grid = upscale(reconstruction_grid(model, grid_frames, device), 2)
        write_png(run.vae_recon_epoch(epoch), grid)
        write_png(run.vae_reconstructions, grid)
        checkpoint()
        last_ckpt = time.monotonic()
        bar.write(
            f"train-vae: epoch {epoch}/{cfg.epochs}  val recon {metrics['recon']:.1f}  "
            f"val KL {metrics['kl']:.1f}  (per frame, nats)"
        )
        if stop_after_steps is not None and steps_this_call >= stop_after_steps:
            bar.close()
            return {}
    bar.close()
    logger.close()
    if not metrics:
        metrics = evaluate(model, val_frames, cfg, device)
    save_weights(
        run.vae_model,
        model.state_dict(),
        {
            "arch": dataclasses.asdict(arch),
            "config": to_dict(cfg),
            "steps": step,
            "val": metrics,
            "train_episodes": len(train_ids),
            "val_episodes": len(val_ids),
        },
    )
    log(
        f"train-vae: done, val recon {metrics['recon']:.1f}, val KL {metrics['kl']:.1f} "
        f"per frame; weights in {run.vae_model}"
    )
    return metrics
