"""Step 4, ``mdnworld train-rnn``: fit M on windows of encoded episodes, with early stopping.

Read top to bottom: check the latents (size, VAE), split whole episodes, cut windows, fit the
baseline, then per model: restore a checkpoint if there is one, the loop (Adam on the mixture
NLL, + the done/reward heads if any), and at every epoch end validation, the best weights so
far and a checkpoint, plus a checkpoint every ``checkpoint_every`` steps or
``checkpoint_minutes`` minutes. Training ends after ``epochs`` epochs or ``patience`` epochs
without a new best validation NLL; the final weights are the best epoch's.

What it reports (per epoch in the log, at the end on screen and in ``model.json``):
- NLL per step and latent dim (nats/dim) on the validation windows and on a fixed subset of
  training windows, next to the random-walk baseline z_{t+1} ~ N(z_t, sigma^2) with a per-dim
  sigma fitted by maximum likelihood on the training windows, on the same windows: a model
  below the baseline has learned dynamics beyond "nothing moves";
- the mean entropy of the mixture weights pi (nats; log K = uniform, 0 = one component) and
  each component's share of the validation steps where it has the largest weight, so a
  collapsed mixture shows.
Evaluation uses mu, or with ``z_source="sample"`` one fixed sample (the training objective).

Standardisation (``standardise``, on by default): the model is a ``StandardisedMDNRNN``, which
standardises its input latents per dim with the training mean and std and maps its mixture
back, so inputs and outputs are in the VAE's units and the NLL is the NLL of the real latents.
Why: the mixture head floors sigma at exp(-5) ~ 6.7e-3 in absolute units, but most latent
dims of a VAE are barely used and their mu moves by less than that per step; the baseline fits
those steps and M could not, whatever it learned. Standardised, the floor is 6.7e-3 stds.

Exact resume: batch order of epoch e is a permutation seeded by (seed, e), the sampled latents
of epoch e (``z_source="sample"``) come from (seed, e), evaluation is deterministic; a
checkpoint stores weights, Adam state, the step and the early-stopping state, and the best
weights are a file of their own. A run stopped anywhere and resumed ends with the same weights
as one that never stopped (on the same device and thread count).

Files under ``RUN_DIR/rnn/``: ``split.json``; per model ``model_<i>/``: ``checkpoint.*``,
``best.{safetensors,json}``, ``model.{safetensors,json}`` (final), ``log.jsonl``, ``tb/``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mdnworld.checkpoints import (
    load_checkpoint,
    load_latents,
    load_state_strict,
    load_weights,
    read_latent_manifest,
    save_checkpoint,
    save_weights,
)
from mdnworld.config import RNNConfig, to_dict
from mdnworld.data.frames import split_episodes
from mdnworld.data.sequences import (
    Z_SOURCES,
    SequenceData,
    random_walk_nll,
    random_walk_sigma,
)
from mdnworld.device import autocast, resolve_device, set_threads
from mdnworld.errors import CheckpointError
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout, episode_index
from mdnworld.logs import Logger
from mdnworld.models.mdnrnn import MDNRNN, MDNRNNArch, StandardisedMDNRNN, mdn_loss, mdn_nll

MIN_SCALE = 1e-6
"""Floor on the standardisation scale (a latent dim that never moves)."""


def model_indices(cfg: RNNConfig) -> list[int]:
    return list(range(cfg.model_index, cfg.model_index + cfg.models))


# --- data -------------------------------------------------------------------------------------


@dataclasses.dataclass
class RNNData:
    """Windows of the training and validation episodes, with what evaluation needs."""

    train: SequenceData
    val: SequenceData
    train_ids: list[int]
    val_ids: list[int]
    latent_dim: int
    vae_sha256: str
    eval_ids: np.ndarray  # fixed subset of training windows evaluated every epoch
    train_eval_z: np.ndarray  # (N_train, Z) latents for evaluation (mu or a fixed sample)
    val_z: np.ndarray
    sigma: np.ndarray  # (Z,) the baseline's per-dim sigma
    baseline_train: float  # nats/dim on eval_ids
    baseline_val: float
    shift: np.ndarray  # (Z,) standardisation
    scale: np.ndarray


def load_rnn_data(run_dir: Path, cfg: RNNConfig) -> RNNData:
    """Read every latent file (all in memory), split, window, fit the baseline."""
    if cfg.z_source not in Z_SOURCES:
        raise ValueError(f"z_source must be one of {Z_SOURCES}, got {cfg.z_source!r}")
    run = RunLayout(run_dir)
    man = read_latent_manifest(run_dir, cfg.latent_dim)
    zdim = man["latent_dim"]
    files = run.latent_files()
    if not files:
        raise FileNotFoundError(f"{run.latents_dir}: no latent files; run `mdnworld encode`")
    by_id = {episode_index(p): p for p in files}
    train_ids, val_ids = split_episodes(list(by_id), cfg.val_fraction, cfg.seed)
    if not val_ids:
        raise ValueError(
            f"{run.latents_dir}: rnn.val_fraction = {cfg.val_fraction} holds out no episode "
            f"of {len(train_ids)}; early stopping needs validation episodes"
        )

    def windows(ids: list[int]) -> SequenceData:
        eps = [load_latents(by_id[i], latent_dim=zdim) for i in ids]
        return SequenceData(
            eps,
            cfg.seq_len,
            cfg.skip_ahead,
            names=[by_id[i].name for i in ids],
            end_windows=cfg.done_head,
        )

    train, val = windows(train_ids), windows(val_ids)
    for name, data, ids in (("training", train, train_ids), ("validation", val, val_ids)):
        if len(data) == 0:
            raise ValueError(
                f"{run.latents_dir}: no {name} windows: all {len(ids)} {name} episode(s) "
                f"are shorter than seq_len + 1 = {cfg.seq_len + 1} frames (lower rnn.seq_len, "
                "or generate more episodes)"
            )
    if cfg.z_source == "mu":
        train_eval_z, val_z = train.mu, val.mu
    else:  # one fixed sample: the training objective, the same at every epoch
        train_eval_z = train.latents("sample", np.random.default_rng([cfg.seed, 2**32 - 1, 1]))
        val_z = val.latents("sample", np.random.default_rng([cfg.seed, 2**32 - 1, 2]))
    rng = np.random.default_rng([cfg.seed, 2**32 - 1, 3])
    eval_ids = np.sort(rng.permutation(len(train))[: cfg.eval_windows])
    sigma = random_walk_sigma(train, cfg.z_source)
    # standardisation: training mean and std of the latents the model is fed
    mu64 = train.mu.astype(np.float64)
    var = mu64.var(0)
    if cfg.z_source == "sample":
        var = var + np.exp(train.logvar.astype(np.float64)).mean(0)
    if cfg.standardise:
        shift, scale = mu64.mean(0), np.maximum(np.sqrt(var), MIN_SCALE)
    else:
        shift, scale = np.zeros(zdim), np.ones(zdim)
    return RNNData(
        train=train,
        val=val,
        train_ids=train_ids,
        val_ids=val_ids,
        latent_dim=zdim,
        vae_sha256=man.get("vae_sha256", ""),
        eval_ids=eval_ids,
        train_eval_z=train_eval_z,
        val_z=val_z,
        sigma=sigma,
        baseline_train=random_walk_nll(train, train_eval_z, sigma, eval_ids),
        baseline_val=random_walk_nll(val, val_z, sigma),
        shift=shift.astype(np.float32),
        scale=scale.astype(np.float32),
    )


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
    amp: str = "none",
) -> dict[str, Any]:
    """NLL (nats/dim), pi entropy (nats), component usage (+ done/reward losses) on ``ids``."""
    model.eval()
    arch = model.arch
    K = arch.n_components
    nll_sum = ent_sum = done_sum = reward_sum = 0.0
    n_steps = n_pi = 0
    usage = torch.zeros(K, dtype=torch.float64)
    for i in range(0, len(ids), batch_size):
        zt, at, zn, done, reward = _tensors(data.batch(ids[i : i + batch_size], z), device)
        with autocast(device, amp):
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


def done_balance(data: SequenceData) -> tuple[float, float]:
    """(pos_weight, initial bias) that make the done head a per-step death probability.

    Windows overlap (60 steps every 3), so an ordinary frame is a target in ~20 windows while
    the death at an episode's end is a target in one or two: trained as is, the head learns
    deaths ~20x too rarely. Weighting death targets by that coverage ratio undoes it; the head
    starts at the per-step death rate (from a bias of 0 Adam would need thousands of steps to
    get down to it)."""
    cov = data.coverage()  # cov[r]: windows in which row r+1 is a target
    target_cov = np.concatenate([[0], cov[:-1]])  # per row: windows in which it is a target
    targets = target_cov > 0
    death = data.dones & targets
    if not death.any():
        return 1.0, 0.0
    weight = float(target_cov[targets & ~data.dones].mean() / target_cov[death].mean())
    p = death.sum() / targets.sum()
    return weight, float(math.log(p / (1.0 - p)))


def _arch(cfg: RNNConfig, latent_dim: int) -> MDNRNNArch:
    return MDNRNNArch(
        latent_dim=latent_dim,
        hidden=cfg.hidden,
        n_components=cfg.n_components,
        mixture=cfg.mixture,
        done_head=cfg.done_head,
        reward_head=cfg.reward_head,
    )


def _check_resume(path: Path, saved: dict, now: dict) -> None:
    """A checkpoint must come from the same data and architecture; the message names it."""
    if saved.get("latent_dim") != now["latent_dim"]:
        raise CheckpointError(
            f"{path}: trained on latents of size {saved.get('latent_dim')}, the run's latents "
            f"have size {now['latent_dim']}; use a new run dir or delete {path.parent}"
        )
    if saved.get("arch") != now["arch"]:
        raise CheckpointError(
            f"{path}: saved with architecture {saved.get('arch')}, the config now gives "
            f"{now['arch']}; use a new run dir or delete {path.parent}"
        )
    for key, what in (
        ("vae_sha256", "the latents were re-encoded by another VAE"),
        ("train_windows", "the training windows changed"),
        ("steps_per_epoch", "the steps per epoch changed"),
    ):
        if saved.get(key) != now[key]:
            raise CheckpointError(
                f"{path}: {what} since this checkpoint ({key} {saved.get(key)!r} -> "
                f"{now[key]!r}); use a new run dir or delete {path.parent}"
            )


def _train_one(
    run_dir: Path,
    cfg: RNNConfig,
    index: int,
    data: RNNData,
    device: torch.device,
    log: Callable[[str], None],
    budget: list[int | None],
) -> dict[str, Any] | None:
    """Train model ``index``; its final meta, or None if stopped by ``budget`` (a kill)."""
    run = RunLayout(run_dir)
    out = run.rnn_model_dir(index)
    out.mkdir(parents=True, exist_ok=True)
    seed = cfg.seed + index
    torch.manual_seed(seed)
    arch = _arch(cfg, data.latent_dim)
    model = StandardisedMDNRNN(arch)
    model.set_standardisation(data.shift, data.scale)
    pos_weight, done_bias = done_balance(data.train)
    if cfg.done_pos_weight > 0:
        pos_weight = cfg.done_pos_weight
    if model.done is not None:  # start at the death rate per step (a checkpoint overrides it)
        with torch.no_grad():
            model.done.bias.fill_(done_bias)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train = data.train
    spe = math.ceil(len(train) / cfg.batch_size)
    ckpt, best_path = run.rnn_checkpoint(index), run.rnn_best(index)
    ident = {
        "latent_dim": data.latent_dim,
        "arch": dataclasses.asdict(arch),
        "vae_sha256": data.vae_sha256,
        "train_windows": len(train),
        "steps_per_epoch": spe,
    }
    st: dict[str, Any] = {"step": 0, "best_val": None, "best_epoch": 0, "bad_epochs": 0}
    if ckpt.with_suffix(".json").exists():
        path = ckpt.with_suffix(".json")
        try:
            saved = read_json(path)["meta"]
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: not a valid checkpoint ({e})") from None
        _check_resume(path, saved, ident)
        saved = load_checkpoint(ckpt, model, opt)
        st = {k: saved[k] for k in st}
        log(f"train-rnn model_{index}: resumed from step {st['step']} (epoch {st['step'] // spe})")
    step = st["step"]
    logger = Logger(out, resume_step=step)

    def checkpoint() -> None:
        st["step"] = step
        save_checkpoint(ckpt, model, opt, {**st, **ident, "config": to_dict(cfg)})

    started, timed_out = time.monotonic(), False

    def early_stop() -> bool:
        return cfg.patience > 0 and st["bad_epochs"] >= cfg.patience

    clip = cfg.grad_clip > 0
    last_ckpt = time.monotonic()
    bar = tqdm(
        total=spe * cfg.epochs,
        initial=step,
        desc=f"train-rnn model_{index}",
        unit="step",
        dynamic_ncols=True,
    )
    val_ids = np.arange(len(data.val))
    while step < spe * cfg.epochs and not early_stop() and not timed_out:
        epoch, start = divmod(step, spe)
        perm = np.random.default_rng([seed, epoch]).permutation(len(train))
        z = train.epoch_latents(cfg.z_source, seed, epoch)
        t0 = time.perf_counter()
        for b in range(start, spe):
            ids = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            zt, at, zn, done, reward = _tensors(train.batch(ids, z), device)
            with autocast(device, cfg.amp):
                pred, _ = model(zt, at)
            losses = mdn_loss(
                pred,
                zn,
                arch,
                done=done if arch.done_head else None,
                reward=reward if arch.reward_head else None,
                done_pos_weight=pos_weight,
            )
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            bar.update(1)
            if budget[0] is not None:
                budget[0] -= 1
            if step % cfg.log_every == 0:
                rate = len(ids) / max(time.perf_counter() - t0, 1e-9)
                nll_dim = losses["nll"].item() / arch.latent_dim
                row = {"train/loss": losses["loss"].item(), "train/nll_per_dim": nll_dim}
                if arch.done_head:
                    row["train/done_bce"] = losses["done"].item()
                if arch.reward_head:
                    row["train/reward_mse"] = losses["reward"].item()
                logger.log(step, **row, **{"train/windows_per_s": rate})
                bar.set_postfix(nll_dim=f"{nll_dim:.3f}", windows_s=f"{rate:.0f}", refresh=False)
            t0 = time.perf_counter()
            if step % spe == 0:
                break
            if budget[0] is not None and budget[0] <= 0:
                bar.close()
                logger.close()
                return None
            if (
                step % cfg.checkpoint_every == 0
                or time.monotonic() - last_ckpt > 60 * cfg.checkpoint_minutes
            ):
                checkpoint()
                last_ckpt = time.monotonic()
        # end of epoch: evaluate, keep the best weights, early-stopping state, checkpoint
        epoch = step // spe
        v = evaluate(model, data.val, data.val_z, val_ids, cfg.batch_size, device, cfg.amp)
        t = evaluate(
            model, train, data.train_eval_z, data.eval_ids, cfg.batch_size, device, cfg.amp
        )
        metrics = _metrics(v, t, data, epoch)
        if st["best_val"] is None or v["nll_per_dim"] < st["best_val"]:
            st.update(best_val=v["nll_per_dim"], best_epoch=epoch, bad_epochs=0)
            save_weights(best_path, model.state_dict(), {"metrics": metrics})
        else:
            st["bad_epochs"] += 1
        row = {
            "epoch": epoch,
            "val/nll_per_dim": v["nll_per_dim"],
            "val/baseline_nll_per_dim": data.baseline_val,
            "train/eval_nll_per_dim": t["nll_per_dim"],
            "train/baseline_nll_per_dim": data.baseline_train,
            "val/pi_entropy": v["pi_entropy"],
            "val/best_nll_per_dim": st["best_val"],
            **{f"val/usage_{k}": u for k, u in enumerate(v["usage"])},
        }
        row.update({f"val/{k}": v[k] for k in ("done_bce", "reward_mse") if k in v})
        logger.log(step, **row)
        checkpoint()
        last_ckpt = time.monotonic()
        bar.write(
            f"train-rnn model_{index}: epoch {epoch}  NLL/dim val {v['nll_per_dim']:.4f} "
            f"(baseline {data.baseline_val:.4f})  train {t['nll_per_dim']:.4f} "
            f"(baseline {data.baseline_train:.4f})  pi entropy {v['pi_entropy']:.3f}"
            + ("  *best" if st["bad_epochs"] == 0 else f"  ({st['bad_epochs']} without gain)")
        )
        if budget[0] is not None and budget[0] <= 0:
            bar.close()
            logger.close()
            return None
        timed_out = cfg.max_minutes > 0 and time.monotonic() - started > 60 * cfg.max_minutes
    bar.close()
    logger.close()
    tensors, best = load_weights(best_path)
    load_state_strict(model, tensors, best_path)
    meta = {
        "arch": dataclasses.asdict(arch),
        "config": to_dict(cfg),
        "model_index": index,
        "seed": seed,
        "latent_dim": data.latent_dim,
        "vae_sha256": data.vae_sha256,
        "standardised": cfg.standardise,
        "steps": step,
        "epochs_run": step // spe,
        "best_epoch": st["best_epoch"],
        "stopped_early": early_stop(),
        "stopped_by_time": timed_out and step < spe * cfg.epochs and not early_stop(),
        "metrics": best["metrics"],
        "baseline_sigma": data.sigma.tolist(),
        "train_episodes": len(data.train_ids),
        "val_episodes": len(data.val_ids),
        "train_windows": len(train),
        "val_windows": len(data.val),
        "skipped_short_episodes": {"train": train.skipped, "val": data.val.skipped},
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


def _stop_reason(meta: dict) -> str:
    if meta["stopped_early"]:
        return " (early)"
    return " (time)" if meta.get("stopped_by_time") else ""


def summary_lines(metas: list[dict]) -> list[str]:
    """A small table of finished models (from their model.json metas)."""
    lines = [
        "model  best/run epochs   NLL/dim val (baseline)   train (baseline)   pi entropy   "
        "component usage"
    ]
    for m in metas:
        x = m["metrics"]
        usage = " ".join(f"{u:.2f}" for u in x["component_usage"])
        lines.append(
            f"{m['model_index']:>5}  {m['best_epoch']:>4}/{m['epochs_run']:<4}"
            f"{_stop_reason(m):8}  "
            f"{x['val_nll_per_dim']:8.4f} ({x['val_baseline_nll_per_dim']:8.4f})  "
            f"{x['train_nll_per_dim']:8.4f} ({x['train_baseline_nll_per_dim']:8.4f})  "
            f"{x['pi_entropy']:.3f}/{x['pi_entropy_max']:.3f}  {usage}"
        )
    return lines


def train_rnn(
    run_dir: Path,
    cfg: RNNConfig,
    log: Callable[[str], None] = print,
    stop_after_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Train models ``model_index .. model_index + models - 1`` (finished ones are skipped);
    returns their final metas. ``stop_after_steps`` stops abruptly after that many steps of
    this call without saving anything more, exactly like a kill (for tests); it then returns
    the metas finished so far."""
    run_dir = Path(run_dir)
    if cfg.models < 1 or cfg.model_index < 0 or cfg.epochs < 1:
        raise ValueError("rnn.models and rnn.epochs must be >= 1 and rnn.model_index >= 0")
    if cfg.amp not in ("none", "bf16"):
        raise ValueError(f"amp must be 'none' or 'bf16', got {cfg.amp!r}")
    _arch(cfg, 1)  # validates the mixture kind and sizes before any data is read
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    data = load_rnn_data(run_dir, cfg)
    atomic_write_json(
        RunLayout(run_dir).rnn_split,
        {
            "train": data.train_ids,
            "val": data.val_ids,
            "seed": cfg.seed,
            "skipped_short": data.train.skipped_names + data.val.skipped_names,
        },
    )
    L = cfg.seq_len
    log(
        f"train-rnn: {len(data.train)} training windows ({data.train.n_episodes} episodes), "
        f"{len(data.val)} validation windows ({data.val.n_episodes} episodes); "
        f"{data.train.skipped + data.val.skipped} episode(s) shorter than {L + 1} frames "
        f"skipped ({data.train.skipped} train, {data.val.skipped} val); latent size "
        f"{data.latent_dim}, z from {cfg.z_source}, device {device}"
    )
    log(
        f"train-rnn: baseline z_(t+1) = z_t, NLL/dim val {data.baseline_val:.4f}, "
        f"train {data.baseline_train:.4f}"
    )
    budget: list[int | None] = [stop_after_steps]
    metas = []
    for index in model_indices(cfg):
        final = RunLayout(run_dir).rnn_model(index)
        if final.with_suffix(".json").exists():
            log(f"train-rnn model_{index}: already finished, skipped")
            metas.append(load_weights(final)[1])
            continue
        meta = _train_one(run_dir, cfg, index, data, device, log, budget)
        if meta is None:
            return metas
        metas.append(meta)
    for line in summary_lines(metas):
        log(f"train-rnn: {line}")
    log(f"train-rnn: done, weights in {RunLayout(run_dir).rnn_dir}/model_<i>/model.safetensors")
    return metas
