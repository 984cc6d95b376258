"""Step 2, ``mdnworld train-vae``: fit V on stored frames, streamed from disk.

Read top to bottom: split episodes, build the frame index, restore a checkpoint if there is
one, then the loop (Adam on the VAE loss), with validation, a reconstruction grid and a
checkpoint at every epoch end, plus a checkpoint every ``checkpoint_every`` steps or
``checkpoint_minutes`` minutes, whichever comes first (the loop itself: train/loop.py).

Exact resume: the batch order of epoch e is a permutation seeded by (seed, e), and the noise
of step s comes from a generator seeded by (seed, s); a checkpoint stores weights, Adam state
and the step. A run stopped anywhere and resumed ends with the same weights as one that never
stopped (on the same device and thread count).

On a GPU the training frames are copied to it once (``resident``, paper scale 6.2 GB): a step
then gathers its batch there instead of reading the disk and copying to the device.

Files under ``RUN_DIR/vae/``: ``checkpoint.{safetensors,json}``, ``model.{safetensors,json}``
(the final weights, written when training ends), ``log.jsonl``, ``tb/``, ``split.json``,
``recon/epoch_NNN.png`` and ``reconstructions.png`` (latest grid: validation frames on top,
their reconstructions below).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import torch

from mdnworld.checkpoints import load_checkpoint, save_checkpoint, save_weights
from mdnworld.config import VAEConfig, to_dict
from mdnworld.data.episodes import checked_episode_files
from mdnworld.data.frames import FRAME_BYTES, FRAME_SHAPE, FrameStore, split_episodes
from mdnworld.device import autocast, prepare_cpu, resolve_amp, resolve_device
from mdnworld.errors import CheckpointError, MissingError
from mdnworld.io import atomic_write_json, remove_stale_temps
from mdnworld.layout import RunLayout, episode_index
from mdnworld.logs import Logger
from mdnworld.media import upscale, write_png
from mdnworld.models.vae import VAE, VAEArch, frames_to_tensor, tensor_to_frames, vae_loss
from mdnworld.train.loop import Stopped, TrainLoop


class ResidentFrames:
    """The frames of a FrameStore as one uint8 (N, 64, 64, 3) tensor on ``device``, copied
    once in chunks of ``chunk`` rows; ``read(rows)`` gathers them there (same rows, same order
    as ``FrameStore.read``), so a step costs no disk read and no host-to-device copy."""

    def __init__(self, store: FrameStore, device: torch.device, chunk: int = 4096) -> None:
        self.frames = torch.empty((len(store), *FRAME_SHAPE), dtype=torch.uint8, device=device)
        for start in range(0, len(store), chunk):
            rows = np.arange(start, min(start + chunk, len(store)))
            self.frames[start : start + len(rows)] = torch.from_numpy(store.read(rows))

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, rows: np.ndarray) -> torch.Tensor:
        return self.frames[torch.from_numpy(np.asarray(rows, np.int64)).to(self.frames.device)]


def use_resident(setting: str, device: torch.device, n_frames: int) -> bool:
    """``VAEConfig.resident`` resolved: "auto" is on for CUDA when the frames take under half
    of its free memory, off elsewhere (on a CPU they are in the page cache already)."""
    if setting != "auto":
        return setting == "on"
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return n_frames * FRAME_BYTES < free // 2


def read_batches(
    store: FrameStore | ResidentFrames, batch_ids: Iterable[np.ndarray], prefetch: int
) -> Iterator[np.ndarray | torch.Tensor]:
    """The frames of each batch of rows in ``batch_ids``, read ahead on a background thread
    when ``prefetch > 0``. On a small CPU, reading in the training thread is faster: a reader
    thread competing with torch's threads stalls the convolutions more than the ~1 ms reads
    cost (benchmarks/vae.py)."""
    if prefetch <= 0:
        for ids in batch_ids:
            yield store.read(ids)
        return
    q: queue.Queue = queue.Queue(maxsize=max(prefetch, 1))
    stop = threading.Event()

    def produce() -> None:
        try:
            for ids in batch_ids:
                if stop.is_set():
                    return
                q.put(store.read(ids))
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


def loss_of(cfg: VAEConfig, *outputs_and_target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``vae_loss(logits, x, mu, logvar)`` with the config's loss settings."""
    return vae_loss(*outputs_and_target, cfg.recon_loss, cfg.free_bits, cfg.beta, cfg.bright_weight)


@torch.no_grad()
def evaluate(model: VAE, frames: np.ndarray, cfg: VAEConfig, device: torch.device) -> dict:
    """Mean recon and KL per frame on ``frames`` (N, 64, 64, 3) uint8, fixed noise; in float32
    whatever ``cfg.amp``, so that the saved weights give the reported numbers on any machine."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    tot_r = tot_k = 0.0
    for i in range(0, len(frames), cfg.batch_size):
        x = frames_to_tensor(frames[i : i + cfg.batch_size]).to(device)
        logits, mu, logvar = model(x, generator=gen)
        _, r, k = loss_of(cfg, logits, x, mu, logvar)
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


@dataclasses.dataclass
class VAEData:
    """The training frames (read from disk batch by batch) and the fixed validation frames."""

    train: FrameStore | ResidentFrames
    train_ids: list[int]
    val_ids: list[int]
    val_frames: np.ndarray  # (N, 64, 64, 3) uint8, evaluated at every epoch end
    grid_frames: np.ndarray  # the first row of the reconstruction grid


def load_vae_data(run: RunLayout, cfg: VAEConfig, log: Callable[[str], None] = print) -> VAEData:
    """Check the episodes against their manifest, split whole episodes (and record the
    split), index the training frames, read the validation frames."""
    files = checked_episode_files(run.root, log)
    if not files:
        raise MissingError(f"{run.episodes_dir}: no episodes; run `mdnworld generate`")
    by_id = {episode_index(p): p for p in files}
    train_ids, val_ids = split_episodes(list(by_id), cfg.val_fraction, cfg.seed)
    train = FrameStore([by_id[i] for i in train_ids])
    val_store = FrameStore([by_id[i] for i in val_ids or train_ids[:1]])
    atomic_write_json(run.vae_split, {"train": train_ids, "val": val_ids, "seed": cfg.seed})
    pick = np.random.default_rng(cfg.seed).permutation(len(val_store))
    return VAEData(
        train=train,
        train_ids=train_ids,
        val_ids=val_ids,
        val_frames=val_store.read(np.sort(pick[: cfg.val_frames])),
        grid_frames=val_store.read(np.sort(pick[: cfg.grid_frames])),
    )


def train_vae(
    run_dir: Path,
    cfg: VAEConfig,
    log: Callable[[str], None] = print,
    stop_after_steps: int | None = None,
    out_of_budget: Callable[[], bool] = lambda: False,
) -> dict:
    """Train V; returns the final metrics. ``stop_after_steps`` stops abruptly after that many
    steps of this call without saving anything more, exactly like a kill (for tests).
    ``out_of_budget()`` True ends training at an epoch end like ``max_minutes`` (benchmarks:
    a budget of CPU time)."""
    run = RunLayout(run_dir)
    run.vae_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(run.vae_dir)  # what a killed run left
    prepare_cpu(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_vae_data(run, cfg, log)
    if use_resident(cfg.resident, device, len(data.train)):
        data.train = ResidentFrames(data.train, device)
        log(f"train-vae: {len(data.train)} training frames resident on {device}")
    arch = VAEArch(latent_dim=cfg.latent_dim, decoder_width=cfg.decoder_width)
    model = VAE(arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loop = TrainLoop(
        cfg, len(data.train), seed=cfg.seed, desc="train-vae", stop_after_steps=stop_after_steps
    )
    _resume(run.vae_checkpoint, model, opt, loop, log)
    log(
        f"train-vae: {len(data.train)} train frames ({len(data.train_ids)} episodes), "
        f"{len(data.val_frames)} val frames ({len(data.val_ids)} episodes), {cfg.epochs} epochs "
        f"of {loop.steps_per_epoch} steps, device {device}, amp {resolve_amp(device, cfg.amp)}"
    )
    try:
        metrics = _fit(run, cfg, model, opt, data, loop, device, out_of_budget)
    except Stopped:
        return {}
    if not metrics:  # nothing left to train in this call
        metrics = evaluate(model, data.val_frames, cfg, device)
    save_weights(
        run.vae_model,
        model.state_dict(),
        {
            "arch": dataclasses.asdict(arch),
            "config": to_dict(cfg),
            "steps": loop.step,
            "val": metrics,
            "train_episodes": len(data.train_ids),
            "val_episodes": len(data.val_ids),
        },
    )
    log(
        f"train-vae: done, val recon {metrics['recon']:.1f}, val KL {metrics['kl']:.1f} "
        f"per frame; weights in {run.vae_model}"
    )
    return metrics


def _resume(
    ckpt: Path, model: VAE, opt: torch.optim.Optimizer, loop: TrainLoop, log: Callable
) -> None:
    """Restore weights, Adam state and the step from ``ckpt`` if there is one."""
    if not ckpt.with_suffix(".json").exists():
        return
    meta = load_checkpoint(ckpt, model, opt)
    if meta["steps_per_epoch"] != loop.steps_per_epoch:
        raise CheckpointError(
            f"{ckpt}.json: saved with {meta['steps_per_epoch']} steps per "
            f"epoch, the data now gives {loop.steps_per_epoch}; use a new run dir"
        )
    loop.step = meta["step"]
    log(f"train-vae: resumed from step {loop.step}/{loop.total_steps}")


def _fit(
    run: RunLayout,
    cfg: VAEConfig,
    model: VAE,
    opt: torch.optim.Optimizer,
    data: VAEData,
    loop: TrainLoop,
    device: torch.device,
    out_of_budget: Callable[[], bool],
) -> dict:
    """The loop: Adam on the VAE loss, the noise of step s seeded by (seed, s); the last
    epoch's validation metrics ({} if no epoch ended in this call)."""

    def checkpoint(step: int) -> None:
        meta = {"step": step, "steps_per_epoch": loop.steps_per_epoch, "config": to_dict(cfg)}
        save_checkpoint(run.vae_checkpoint, model, opt, meta)

    gen = torch.Generator(device=device)
    metrics: dict = {}
    start = time.monotonic()

    def out_of_time() -> bool:  # asked before each epoch: one epoch at least per call
        late = cfg.max_minutes > 0 and time.monotonic() - start > 60 * cfg.max_minutes
        return loop.steps_run > 0 and (late or out_of_budget())

    prefetch = cfg.prefetch if isinstance(data.train, FrameStore) else 0  # resident: no reads
    with closing(Logger(run.vae_dir, resume_step=loop.step)) as logger:
        for epoch in loop.epochs(checkpoint, stop_when=out_of_time):
            for frames in loop.steps(read_batches(data.train, epoch.batch_ids, prefetch)):
                x = frames_to_tensor(frames).to(device, non_blocking=True)
                gen.manual_seed(cfg.seed * 1_000_003 + loop.step)
                with autocast(device, cfg.amp):
                    logits, mu, logvar = model(x, generator=gen)
                loss, recon, kl = loss_of(cfg, logits, x, mu, logvar)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if loop.end_step(len(x), loss):
                    row = {"train/loss": loss, "train/recon": recon, "train/kl": kl}
                    logger.log(loop.step, **row, **{"train/samples_per_s": loop.rate})
                    loop.postfix(loss=f"{loss.item():.1f}", samples_s=f"{loop.rate:.0f}")
            metrics = _end_of_epoch(run, cfg, model, data, loop, logger, device)
    return metrics


def _end_of_epoch(
    run: RunLayout,
    cfg: VAEConfig,
    model: VAE,
    data: VAEData,
    loop: TrainLoop,
    logger: Logger,
    device: torch.device,
) -> dict:
    """Validation and a reconstruction grid; the loop then saves a checkpoint."""
    epoch = loop.epochs_done
    metrics = evaluate(model, data.val_frames, cfg, device)
    logger.log(
        loop.step, **{"val/recon": metrics["recon"], "val/kl": metrics["kl"], "epoch": epoch}
    )
    grid = upscale(reconstruction_grid(model, data.grid_frames, device), 2)
    write_png(run.vae_recon_epoch(epoch), grid)
    write_png(run.vae_reconstructions, grid)
    loop.write(
        f"train-vae: epoch {epoch}/{cfg.epochs}  val recon {metrics['recon']:.1f}  "
        f"val KL {metrics['kl']:.1f}  (per frame, nats)"
    )
    return metrics
