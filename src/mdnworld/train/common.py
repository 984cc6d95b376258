"""What every trainer shares: device and threads, safetensors checkpoints, JSONL + TensorBoard logs.

A checkpoint is two files written atomically, tensors first:

    STEM.safetensors   model weights ("model.*") and optimizer tensors ("optim.<param>.<key>")
    STEM.json          format, metadata (step, epoch, config...), optimizer param groups and
                       the sha256 of the .safetensors file, so a torn or mismatched pair is caught

No pickle anywhere: safetensors holds only tensors, JSON holds the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mdnworld.io import atomic_open, atomic_write_json, read_json

CHECKPOINT_FORMAT = "mdnworld.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint or weights file that cannot be used; the message names the file."""


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA when present, else CPU; otherwise any torch device string. On CUDA,
    cuDNN may pick its fastest convolution and LSTM kernels for our fixed shapes."""
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        torch.backends.cudnn.benchmark = True
    return dev


def set_threads(n: int = 0) -> int:
    """Intra-op threads for CPU training: ``n``, or (0) one per core. On a 2-core machine both
    cores go to the matrix multiplies; data reading is a few preads per batch and needs none."""
    n = n if n > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def autocast(device: torch.device, amp: str) -> Iterator[None]:
    """bf16 autocast ("bf16") or nothing ("none"). On a CPU without native bf16 (AVX2 only),
    oneDNN has no bf16 LSTM kernel (it fails with "could not create a primitive descriptor"), so
    oneDNN is switched off inside and PyTorch's own kernels run (slowly: measure first)."""
    if amp == "none":
        yield
        return
    if amp != "bf16":
        raise ValueError(f"amp must be 'none' or 'bf16', got {amp!r}")
    with torch.autocast(device.type, dtype=torch.bfloat16):
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            with torch.backends.mkldnn.flags(enabled=False):
                yield
        else:
            yield


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_weights(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` (meta + checksum)."""
    data = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    with atomic_open(path, "wb") as f:
        f.write(data)
    atomic_write_json(path.with_suffix(".json"), {**meta, "sha256": _sha256(data)})


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a pair written by ``save_weights``; checks the checksum. Tensors on the CPU."""
    meta_path = path.with_suffix(".json")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    try:
        meta = read_json(meta_path)
    except (FileNotFoundError, ValueError) as e:
        raise CheckpointError(str(e)) from None
    if meta.get("sha256") != _sha256(data):
        raise CheckpointError(
            f"{path}: checksum does not match {meta_path.name} (corrupt, truncated, or the two "
            "files come from different saves)"
        )
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None
    return tensors, meta


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """``module.load_state_dict`` with an error naming the file and the first mismatches."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if extra:
            parts.append(f"unexpected {extra[:3]}")
        if wrong:
            k = wrong[0]
            parts.append(
                f"shape of {k}: {tuple(state[k].shape)} in file, model wants {tuple(own[k].shape)}"
            )
        raise CheckpointError(f"{where}: does not match the model ({'; '.join(parts)})")
    module.load_state_dict(state)


def save_checkpoint(
    stem: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]
) -> None:
    """Model + optimizer state + ``meta`` (JSON-serialisable) as ``stem.safetensors/.json``."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"optim.{pid}.{key}"] = t
    save_weights(
        stem.with_suffix(".safetensors"),
        tensors,
        {"format": CHECKPOINT_FORMAT, "meta": meta, "param_groups": opt["param_groups"]},
    )


def load_checkpoint(
    stem: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote; returns its ``meta``."""
    path = stem.with_suffix(".safetensors")
    tensors, info = load_weights(path)
    if info.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {info.get('format')!r}")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    load_state_strict(model, model_state, path)
    if optimizer is not None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v
        try:
            optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: optimizer state does not match ({e})") from None
    return info["meta"]


class Logger:
    """Scalars to ``log.jsonl`` (one JSON object per line) and to TensorBoard (``tb/``).

    On resume, rows past ``resume_step`` (written after the checkpoint, before a stop) are
    dropped, so the log reads as if the run had never stopped.
    """

    def __init__(self, folder: Path, resume_step: int = 0, tensorboard: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "log.jsonl"
        rows = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a stop
                if row.get("step", 0) <= resume_step:
                    rows.append(line)
        with atomic_open(self.path, "w") as f:
            f.write("".join(r + "\n" for r in rows))
        self._f = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(folder / "tb"), purge_step=resume_step + 1)

    def log(self, step: int, tags: dict[str, str] | None = None, **scalars: float) -> None:
        """One row: ``scalars`` go to both, ``tags`` (text, e.g. the machine) to the JSONL only."""
        scalars = {k: v.item() if torch.is_tensor(v) else float(v) for k, v in scalars.items()}
        row = {"step": step, **scalars, **(tags or {})}
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    """All complete rows of a ``log.jsonl``."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
