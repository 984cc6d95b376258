"""Where an M's training starts: its own checkpoint (``resume``: exact resume, checked against
the data and the architecture), else ``rnn.init``'s weights (``warm_start``: fine-tuning, e.g.
``mdnworld iterate``'s rounds or the shipped paper Ms), else random weights (train/rnn.py).

``rnn.init`` names one M's weights for every model, or a folder with one per model: model i
starts from ``FOLDER/model_<i>.safetensors`` (shipped models' ``rnn/``) or, when FOLDER is a
run directory, from that run's M i: ``--init results/paper/models/rnn`` fine-tunes each
shipped paper M on its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from mdnworld.checkpoints import load_checkpoint, load_state_strict, load_weights
from mdnworld.errors import CheckpointError, MissingError
from mdnworld.io import read_json
from mdnworld.layout import RunLayout
from mdnworld.models.mdnrnn import StandardisedMDNRNN
from mdnworld.train.loop import EarlyStopping, TrainLoop


def init_file(init: Path, index: int) -> Path:
    """Model ``index``'s ``rnn.init`` weights: ``init`` itself when it is not a folder, else
    the folder's ``model_<index>.safetensors`` or, for a run directory, its M ``index``."""
    if not init.is_dir():
        return init  # load_weights names it if it is missing
    for path in (init / f"model_{index}.safetensors", RunLayout(init).rnn_model(index)):
        if path.is_file():
            return path
    raise MissingError(
        f"{init}: rnn.init is a folder with neither model_{index}.safetensors nor a run's "
        f"rnn/model_{index}/model.safetensors, for model {index}"
    )


def warm_start(model: StandardisedMDNRNN, path: Path) -> None:
    """``rnn.init``'s weights (its standardisation and done bias too) into ``model``."""
    tensors, meta = load_weights(path)
    if meta.get("arch") != dataclasses.asdict(model.arch):
        raise CheckpointError(
            f"{path}: rnn.init has architecture {meta.get('arch')}, the config gives "
            f"{dataclasses.asdict(model.arch)}"
        )
    load_state_strict(model, tensors, path)


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


def resume(
    ckpt: Path,
    ident: dict[str, Any],
    model: StandardisedMDNRNN,
    opt: torch.optim.Optimizer,
    loop: TrainLoop,
    stopping: EarlyStopping,
) -> bool:
    """Restore weights, Adam state, the step and the early-stopping state from ``ckpt`` if
    there is one (after checking it fits the data and architecture); True if it did."""
    path = ckpt.with_suffix(".json")
    if not path.exists():
        return False
    try:
        saved = read_json(path)["meta"]
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: not a valid checkpoint ({e})") from None
    _check_resume(path, saved, ident)
    saved = load_checkpoint(ckpt, model, opt)
    loop.step = saved["step"]
    stopping.best_val, stopping.best_epoch = saved["best_val"], saved["best_epoch"]
    stopping.bad_epochs = saved["bad_epochs"]
    return True
