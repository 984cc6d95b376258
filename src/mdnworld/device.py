"""Where torch runs: the device, CPU threads and bf16 autocast (for training and inference)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from mdnworld.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA when present, else CPU; otherwise any torch device string. On CUDA,
    cuDNN may pick its fastest convolution and LSTM kernels for our fixed shapes."""
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available")
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
        raise ConfigError(f"amp must be 'none' or 'bf16', got {amp!r}")
    with torch.autocast(device.type, dtype=torch.bfloat16):
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            with torch.backends.mkldnn.flags(enabled=False):
                yield
        else:
            yield
