"""Step 4, ``mdnworld train-rnn``: fit M on windows of encoded episodes, with early stopping.

Read top to bottom: check the latents (size, VAE), split whole episodes, cut windows, fit the
baseline, then per model: restore a checkpoint if there is one, the loop (Adam on the mixture
NLL, + the done/reward heads if any), at every epoch end validation, the best weights so far
and a checkpoint (also every ``checkpoint_every`` steps or ``checkpoint_minutes`` minutes).
It ends after ``epochs`` epochs or ``patience`` epochs without a new best validation NLL; the
final weights are the best epoch's.

What it reports (per epoch in the log, at the end on screen and in ``model.json``): NLL per
step and latent dim (nats/dim) on the validation windows and a fixed subset of training
windows, beside the random-walk baseline z_{t+1} ~ N(z_t, sigma^2) (per-dim sigma fitted on
the training windows): below it, M learned more than "nothing moves"; the mean entropy of pi
and each component's share of the steps where it leads, so a collapsed mixture shows.
Evaluation uses mu, or with ``z_source="sample"`` one fixed sample (the training objective);
``init`` starts from another M's weights instead of random ones (``mdnworld iterate``).

Standardisation (``standardise``, on by default): M is a ``StandardisedMDNRNN`` fed and
predicting latents in the VAE's units, standardised inside by the training mean and std (why:
train/rnn_data.py). The data, the split, the windows and the baseline: train/rnn_data.py;
the resumable loop (batch order, checkpoints, the stop hook): train/loop.py.

Exact resume: epoch e's batch order and sampled latents come from (seed, e), evaluation is
deterministic; a checkpoint holds weights, Adam, the step and the early-stopping state, and the
best weights are a file of their own: stopped anywhere and resumed, a run ends with the
weights of one that never stopped (on the same device, thread count and compile setting; a
job left alone takes idle cores unless ``threads`` is set: train/rnn_jobs.py).

Files under ``RUN_DIR/rnn/``: ``split.json``; per model ``model_<i>/``: ``checkpoint.*``,
``best.{safetensors,json}``, ``model.{safetensors,json}`` (final), ``log.jsonl``, ``tb/``."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mdnworld.checkpoints import (
    load_state_strict,
    load_weights,
    save_checkpoint,
    save_weights,
)
from mdnworld.config import RNNConfig, to_dict
from mdnworld.data.sequences import SequenceData, done_balance
from mdnworld.device import (
    autocast,
    compiled,
    prepare_cpu,
    resolve_amp,
    resolve_compile,
    resolve_device,
)
from mdnworld.errors import ConfigError
from mdnworld.io import atomic_write_json, remove_stale_temps
from mdnworld.layout import RunLayout
from mdnworld.logs import Logger
from mdnworld.models.mdnrnn import MDNRNN, MDNRNNArch, StandardisedMDNRNN, mdn_loss, mdn_nll
from mdnworld.procs import release_freed_heap
from mdnworld.records import rnn_meta
from mdnworld.train.loop import EarlyStopping, Stopped, TrainLoop
from mdnworld.train.rnn_data import RNNData, load_rnn_data
from mdnworld.train.rnn_jobs import train_in_jobs, use_idle_cores
from mdnworld.train.rnn_start import init_file, resume, warm_start


def model_indices(cfg: RNNConfig) -> list[int]:
    return list(range(cfg.model_index, cfg.model_index + cfg.models))


# --- evaluation -------------------------------------------------------------------------------


def _tensors(batch, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in batch)


@torch.no_grad()
def evaluate(
    model: MDNRNN,
    data: SequenceData,
    z: np.ndarray,
    ids: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> dict[str, Any]:
    """NLL (nats/dim), pi entropy (nats), component usage (+ done/reward losses) on ``ids``,
    in float32 (whatever the training's amp): the numbers the saved weights give anywhere."""
    model.eval()
    arch = model.arch
    K = arch.n_components
    nll_sum = ent_sum = done_sum = reward_sum = 0.0
    n_steps = n_pi = 0
    usage = torch.zeros(K, dtype=torch.float64)
    for i in range(0, len(ids), batch_size):
        zt, at, zn, done, reward = _tensors(data.batch(ids[i : i + batch_size], z), device)
        out, _ = model(zt, at)
        nll_sum += float(mdn_nll(out, zn, arch.mixture).double().sum())
        n_steps += zn.shape[0] * zn.shape[1]
        logp = torch.log_softmax(out.logits.float(), dim=-1)  # (B, T, K) or (B, T, Z, K)
        ent_sum += float(-(logp.exp() * logp).sum(-1).double().sum())
        n_pi += logp[..., 0].numel()
        usage += torch.bincount(logp.argmax(-1).flatten().cpu(), minlength=K).double()
        if out.done_logit is not None:
            done_sum += float(
                F.binary_cross_entropy_with_logits(out.done_logit, done.float(), reduction="sum")
            )
        if out.reward is not None:
            reward_sum += float(((out.reward - reward) ** 2).sum())
    model.train()
    result: dict[str, Any] = {
        "nll_per_dim": nll_sum / (n_steps * arch.latent_dim),
        "pi_entropy": ent_sum / n_pi,
        "usage": (usage / usage.sum()).tolist(),
    }
    if arch.done_head:
        result["done_bce"] = done_sum / n_steps
    if arch.reward_head:
        result["reward_mse"] = reward_sum / n_steps
    return result


# --- training ---------------------------------------------------------------------------------


def _arch(cfg: RNNConfig, latent_dim: int) -> MDNRNNArch:
    return MDNRNNArch(
        latent_dim=latent_dim,
        hidden=cfg.hidden,
        n_components=cfg.n_components,
        mixture=cfg.mixture,
        done_head=cfg.done_head,
        reward_head=cfg.reward_head,
    )


def _build(
    cfg: RNNConfig, data: RNNData, index: int, device: torch.device
) -> tuple[StandardisedMDNRNN, torch.optim.Optimizer, float]:
    """M ``index`` seeded by ``seed + index`` (standardised by the training latents, its done
    head starting at the death rate per step; or ``init``'s), its Adam, and the done head's
    positive weight."""
    torch.manual_seed(cfg.seed + index)
    model = StandardisedMDNRNN(_arch(cfg, data.latent_dim))
    model.set_standardisation(data.shift, data.scale)
    pos_weight, done_bias = done_balance(data.train)
    if cfg.done_pos_weight > 0:
        pos_weight = cfg.done_pos_weight
    if model.done is not None:  # a checkpoint overrides it
        with torch.no_grad():
            model.done.bias.fill_(done_bias)
    if cfg.init:
        warm_start(model, init_file(Path(cfg.init), index))
    model.to(device)
    return model, torch.optim.Adam(model.parameters(), lr=cfg.lr), pos_weight


def _train_one(
    run: RunLayout,
    cfg: RNNConfig,
    index: int,
    data: RNNData,
    device: torch.device,
    log: Callable[[str], None],
    stop_after_steps: int | None,
) -> tuple[dict[str, Any], int]:
    """Train model ``index``: its final meta, and the steps this call took. Raises
    ``Stopped`` when ``stop_after_steps`` ran out (a kill)."""
    seed = cfg.seed + index
    model, opt, pos_weight = _build(cfg, data, index, device)
    arch = model.arch
    loop = TrainLoop(
        cfg,
        len(data.train),
        seed=seed,
        desc=f"train-rnn model_{index}",
        stop_after_steps=stop_after_steps,
    )
    ident = {
        "latent_dim": data.latent_dim,
        "arch": dataclasses.asdict(arch),
        "vae_sha256": data.vae_sha256,
        "train_windows": len(data.train),
        "steps_per_epoch": loop.steps_per_epoch,
    }
    stopping = EarlyStopping(cfg.patience)
    step_losses = compiled(head_losses, resolve_compile(device, cfg.compile), "M's loss")
    amp = resolve_amp(device, cfg.amp)
    pos_weight_t = torch.tensor(pos_weight, device=device)  # a tensor: no recompile per value
    ckpt = run.rnn_checkpoint(index)
    if resume(ckpt, ident, model, opt, loop, stopping):
        log(f"train-rnn model_{index}: resumed from step {loop.step} (epoch {loop.epochs_done})")

    def checkpoint(step: int) -> None:
        meta = {"step": step, **stopping.saved(), **ident, "config": to_dict(cfg)}
        save_checkpoint(ckpt, model, opt, meta)

    started = time.monotonic()
    with closing(Logger(run.rnn_model_dir(index), resume_step=loop.step)) as logger:
        for epoch in loop.epochs(checkpoint, stopping.done, bar_per_epoch=cfg.patience > 0):
            use_idle_cores(log, f"train-rnn model_{index}")  # other jobs done: their cores
            z = data.train.epoch_latents(cfg.z_source, seed, epoch.index)
            for ids in loop.steps(epoch.batch_ids):
                zt, at, zn, done, reward = _tensors(data.train.batch(ids, z), device)
                with autocast(device, cfg.amp):
                    h, _ = model.hidden(zt, at)
                losses = step_losses(model, h, zn, done, reward, amp, pos_weight_t)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                if loop.end_step(len(ids), losses["loss"]):
                    _log_step(logger, loop, losses, arch)
            _end_of_epoch(run.rnn_best(index), model, data, cfg, device, stopping, loop, logger)
            minutes = (time.monotonic() - started) / 60
            stopping.timed_out = cfg.max_minutes > 0 and minutes > cfg.max_minutes
    return _finish(run, cfg, index, model, data, loop, stopping), loop.steps_run


def head_losses(
    model: StandardisedMDNRNN,
    h: torch.Tensor,
    zn: torch.Tensor,
    done: torch.Tensor,
    reward: torch.Tensor,
    amp: str,
    pos_weight: float | torch.Tensor,
) -> dict[str, torch.Tensor]:
    """M's heads on its LSTM outputs h (B, T, H), and ``mdn_loss`` against the next latents zn
    (B, T, Z), deaths and rewards (B, T) for the heads it has: the elementwise part of a step,
    which torch.compile fuses (``rnn.compile``). ``amp``: "bf16" or "none" (resolved).
    Plain torch.autocast, not device.autocast: its oneDNN check would break the compiled graph
    (and the heads are linear layers, which need no oneDNN switch)."""
    with torch.autocast(h.device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
        pred = model.heads(h)
    arch = model.arch
    done, reward = (done if arch.done_head else None), (reward if arch.reward_head else None)
    return mdn_loss(pred, zn, arch, done=done, reward=reward, done_pos_weight=pos_weight)


def _log_step(logger: Logger, loop: TrainLoop, losses: dict, arch: MDNRNNArch) -> None:
    nll_dim = losses["nll"].item() / arch.latent_dim
    row = {"train/loss": losses["loss"].item(), "train/nll_per_dim": nll_dim}
    if arch.done_head:
        row["train/done_bce"] = losses["done"].item()
    if arch.reward_head:
        row["train/reward_mse"] = losses["reward"].item()
    logger.log(loop.step, **row, **{"train/windows_per_s": loop.rate})
    loop.postfix(nll_dim=f"{nll_dim:.3f}", windows_s=f"{loop.rate:.0f}")


def _end_of_epoch(
    best_path: Path,
    model: StandardisedMDNRNN,
    data: RNNData,
    cfg: RNNConfig,
    device: torch.device,
    stopping: EarlyStopping,
    loop: TrainLoop,
    logger: Logger,
) -> None:
    """Evaluate, keep the best weights, update early stopping; the loop then checkpoints."""
    epoch = loop.epochs_done
    ev = functools.partial(evaluate, batch_size=cfg.batch_size, device=device)
    v = ev(model, data.val, data.val_z, np.arange(len(data.val)))
    t = ev(model, data.train, data.train_eval_z, data.eval_ids)
    if stopping.update(v["nll_per_dim"], epoch):
        save_weights(best_path, model.state_dict(), {"metrics": _metrics(v, t, data, epoch)})
    row = {
        "epoch": epoch,
        "val/nll_per_dim": v["nll_per_dim"],
        "val/baseline_nll_per_dim": data.baseline_val,
        "train/eval_nll_per_dim": t["nll_per_dim"],
        "train/baseline_nll_per_dim": data.baseline_train,
        "val/pi_entropy": v["pi_entropy"],
        "val/best_nll_per_dim": stopping.best_val,
        **{f"val/usage_{k}": u for k, u in enumerate(v["usage"])},
    }
    row.update({f"val/{k}": v[k] for k in ("done_bce", "reward_mse") if k in v})
    logger.log(loop.step, **row)
    loop.write(
        f"{loop.desc}: epoch {epoch}  NLL/dim val {v['nll_per_dim']:.4f} "
        f"(baseline {data.baseline_val:.4f})  train {t['nll_per_dim']:.4f} "
        f"(baseline {data.baseline_train:.4f})  pi entropy {v['pi_entropy']:.3f}"
        + ("  *best" if stopping.bad_epochs == 0 else f"  ({stopping.bad_epochs} without gain)")
    )


def _finish(
    run: RunLayout,
    cfg: RNNConfig,
    index: int,
    model: StandardisedMDNRNN,
    data: RNNData,
    loop: TrainLoop,
    stopping: EarlyStopping,
) -> dict[str, Any]:
    """Write the best epoch's weights as the final model; its meta."""
    best_path = run.rnn_best(index)
    tensors, best = load_weights(best_path)
    load_state_strict(model, tensors, best_path)
    finished = loop.step >= loop.total_steps
    meta = {
        "arch": dataclasses.asdict(model.arch),
        "config": to_dict(cfg),
        "model_index": index,
        "seed": cfg.seed + index,
        "latent_dim": data.latent_dim,
        "vae_sha256": data.vae_sha256,
        "standardised": cfg.standardise,
        "steps": loop.step,
        "epochs_run": loop.epochs_done,
        "best_epoch": stopping.best_epoch,
        "stopped_early": stopping.early,
        "stopped_by_time": stopping.timed_out and not finished and not stopping.early,
        "metrics": best["metrics"],
        "baseline_sigma": data.sigma.tolist(),
        "train_episodes": len(data.train_ids),
        "val_episodes": len(data.val_ids),
        "train_windows": len(data.train),
        "val_windows": len(data.val),
        "skipped_short_episodes": {"train": data.train.skipped, "val": data.val.skipped},
    }
    save_weights(run.rnn_model(index), model.state_dict(), meta)
    return meta


def _metrics(v: dict, t: dict, data: RNNData, epoch: int) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "val_nll_per_dim": v["nll_per_dim"],
        "val_baseline_nll_per_dim": data.baseline_val,
        "train_nll_per_dim": t["nll_per_dim"],
        "train_baseline_nll_per_dim": data.baseline_train,
        "pi_entropy": v["pi_entropy"],
        "pi_entropy_max": math.log(len(v["usage"])),
        "component_usage": v["usage"],
        **{f"val_{k}": v[k] for k in ("done_bce", "reward_mse") if k in v},
    }


def summary_lines(metas: list[dict]) -> list[str]:
    """A small table of finished models (from their model.json metas)."""
    lines = [
        "model  best/run epochs   NLL/dim val (baseline)   train (baseline)   pi entropy   "
        "component usage"
    ]
    for m in map(rnn_meta, metas):
        x = m.metrics
        lines.append(
            f"{m.model_index:>5}  {m.best_epoch:>4}/{m.epochs_run:<4}{m.stop_reason:8}  "
            f"{x.val_nll_per_dim:8.4f} ({x.val_baseline_nll_per_dim:8.4f})  "
            f"{x.train_nll_per_dim:8.4f} ({x.train_baseline_nll_per_dim:8.4f})  "
            f"{x.pi_entropy:.3f}/{x.pi_entropy_max:.3f}  {x.usage_text}"
        )
    return lines


def train_rnn(
    run_dir: Path,
    cfg: RNNConfig,
    log: Callable[[str], None] = print,
    stop_after_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Train models ``model_index .. model_index + models - 1`` (finished ones are skipped;
    ``jobs`` > 1: that many at once, train/rnn_jobs.py); returns their final metas.
    ``stop_after_steps`` (tests; one process) stops abruptly after that many steps of this
    call without saving anything more, exactly like a kill; it returns the metas so far."""
    _check_config(cfg)
    if cfg.jobs > 1 and cfg.models > 1 and stop_after_steps is None:
        log(f"train-rnn: models {model_indices(cfg)} in {cfg.jobs} processes (rnn.jobs)")
        return _summarised(train_in_jobs(run_dir, cfg, train_rnn), RunLayout(run_dir), log)
    prepare_cpu(cfg.threads)
    device = resolve_device(cfg.device)
    run = RunLayout(run_dir)
    for index in model_indices(cfg):  # what a killed run left
        remove_stale_temps(run.rnn_model_dir(index))
    data = load_rnn_data(run.root, cfg)
    release_freed_heap()  # reading left ~0.9 GB of freed temporaries (paper scale) in the heap
    atomic_write_json(
        run.rnn_split,
        {
            "train": data.train_ids,
            "val": data.val_ids,
            "seed": cfg.seed,
            "skipped_short": data.train.skipped_names + data.val.skipped_names,
        },
    )
    skipped = data.train.skipped + data.val.skipped
    log(
        f"train-rnn: {len(data.train)} training windows ({data.train.n_episodes} episodes), "
        f"{len(data.val)} validation windows ({data.val.n_episodes} episodes); {skipped} "
        f"episode(s) shorter than {cfg.seq_len + 1} frames skipped ({data.train.skipped} "
        f"train, {data.val.skipped} val); latent size {data.latent_dim}, z from "
        f"{cfg.z_source}, device {device}, amp {resolve_amp(device, cfg.amp)}, compile "
        f"{'on' if resolve_compile(device, cfg.compile) else 'off'}"
    )
    log(
        f"train-rnn: baseline z_(t+1) = z_t, NLL/dim val {data.baseline_val:.4f}, "
        f"train {data.baseline_train:.4f}"
    )
    metas, steps_left = [], stop_after_steps
    for index in model_indices(cfg):
        if run.rnn_meta(index).exists():
            log(f"train-rnn model_{index}: already finished, skipped")
            metas.append(load_weights(run.rnn_model(index))[1])
            continue
        try:
            meta, steps = _train_one(run, cfg, index, data, device, log, steps_left)
        except Stopped:
            return metas
        metas.append(meta)
        steps_left = None if steps_left is None else steps_left - steps
    return _summarised(metas, run, log)


def _summarised(metas: list[dict], run: RunLayout, log: Callable[[str], None]) -> list[dict]:
    for line in summary_lines(metas):
        log(f"train-rnn: {line}")
    log(f"train-rnn: done, weights in {run.rnn_dir}/model_<i>/model.safetensors")
    return metas


def _check_config(cfg: RNNConfig) -> None:
    """What the config loader may not have checked (a config built in code)."""
    if min(cfg.models, cfg.epochs, cfg.jobs) < 1 or cfg.model_index < 0:
        raise ConfigError("rnn.models, epochs and jobs must be >= 1 and rnn.model_index >= 0")
    if cfg.amp not in ("auto", "none", "bf16"):
        raise ConfigError(f"rnn.amp must be 'auto', 'none' or 'bf16', got {cfg.amp!r}")
    try:
        _arch(cfg, 1)  # the mixture kind and sizes, before any data is read
    except ValueError as e:
        raise ConfigError(f"rnn: {e}") from None
