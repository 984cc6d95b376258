"""Where torch runs: the device, CPU threads, bf16 autocast and torch.compile (for training and
inference)."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch

from mdnworld.errors import ConfigError
from mdnworld.procs import give_back_freed_heap, keep_freed_heap

R = TypeVar("R")


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA when present, else CPU; otherwise any torch device string. On CUDA,
    cuDNN may pick its fastest convolution and LSTM kernels for our fixed shapes."""
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available")
        torch.backends.cudnn.benchmark = True
    return dev


def prepare_cpu(n: int = 0, keep_heap: bool = True) -> int:
    """Set this process up for torch work on the CPU; returns the intra-op threads.

    Threads: ``n``, or (0) one per core. On a 2-core machine both cores go to the matrix
    multiplies; data reading is a few preads per batch and needs none. Memory (``keep_heap``):
    glibc keeps the heap that torch frees (``procs.keep_freed_heap``); by default it hands each
    large temporary back to the OS and the next step faults fresh pages in (~70k page faults
    per M step): M trained 1.3-1.4x faster at 1 thread with it (537/549 -> 701/778 windows/s,
    M's step timed part by part on the sharp run's latents). A process then holds its peak heap
    in every thread's arena: ``dream`` at paper scale peaked at 3.1 GB with it and 1.3-1.8 GB
    without (2 threads), so the stages that do not loop over the same large buffers pass False
    (glibc's default thresholds back).
    """
    if keep_heap:
        keep_freed_heap()
    else:
        give_back_freed_heap()
    n = n if n > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic: with them, bf16 autocast trains M
1.5-1.6x faster than float32 (benchmarks/rnn.py; V between 0.9x and 1.27x, benchmarks/vae.py);
without, PyTorch emulates bf16 ~20-30x slower."""


def _cpuinfo(path: str) -> str:
    """``/proc/cpuinfo``'s text; empty where there is no such file (not Linux)."""
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's flags as ``/proc/cpuinfo`` lists them (read at run time, once); empty where
    it does not."""
    lines = (line for line in _cpuinfo(cpuinfo).splitlines() if line.startswith("flags"))
    return frozenset(flag for line in lines for flag in line.split())


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU's flags include one of NATIVE_BF16_FLAGS (no flags known: False)."""
    return any(flag in cpu_flags(cpuinfo) for flag in NATIVE_BF16_FLAGS)


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) ..."), or the platform's machine
    ("x86_64") where ``/proc/cpuinfo`` does not say: benchmarks record which CPU they ran on,
    since the same code runs at very different speeds on CPUs with and without AMX."""
    for line in _cpuinfo(cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.machine()


def resolve_amp(device: torch.device, amp: str) -> str:
    """ "auto" -> "bf16" on a CPU with native bf16 (``cpu_has_native_bf16``), else "none"
    (on CUDA too: V's bare loop at batch 100 ran slower in bf16 on an H200, 15.8k vs 21.5k
    samples/s);
    "bf16" and "none" as given."""
    if amp not in ("auto", "none", "bf16"):
        raise ConfigError(f"amp must be 'auto', 'none' or 'bf16', got {amp!r}")
    if amp != "auto":
        return amp
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "none"


@contextlib.contextmanager
def autocast(device: torch.device, amp: str) -> Iterator[None]:
    """bf16 autocast ("bf16"), nothing ("none"), or either as ``resolve_amp`` decides ("auto").
    On a CPU without native bf16 (AVX2 only), oneDNN has no bf16 LSTM kernel (it fails with
    "could not create a primitive descriptor"), so oneDNN is switched off inside and PyTorch's
    own kernels run (slowly: measure first)."""
    if resolve_amp(device, amp) == "none":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            with torch.backends.mkldnn.flags(enabled=False):
                yield
        else:
            yield


def resolve_compile(device: torch.device, mode: str) -> bool:
    """ "auto" -> True on a CPU with a C++ compiler (``$CXX`` or g++, with which inductor builds
    its kernels: M's mixture head and loss fused trained 1.09-1.13x faster under bf16,
    benchmarks/rnn.py, 1.25x in an interleaved micro-benchmark), False on CUDA (not measured
    there yet); "on" and "none" as given."""
    if mode not in ("auto", "none", "on"):
        raise ConfigError(f"compile must be 'auto', 'none' or 'on', got {mode!r}")
    if mode != "auto":
        return mode == "on"
    return device.type == "cpu" and shutil.which(os.environ.get("CXX", "g++")) is not None


def compiled(fn: Callable[..., R], enabled: bool, what: str) -> Callable[..., R]:
    """``torch.compile(fn)`` if ``enabled``, else ``fn``. If compiling fails (no compiler, an
    op inductor cannot build), it warns once, naming ``what``, and runs ``fn`` as written."""
    if not enabled:
        return fn
    fast = torch.compile(fn)
    failed = False

    def call(*args, **kwargs) -> R:
        nonlocal failed
        if not failed:
            try:
                return fast(*args, **kwargs)
            except Exception as e:  # a real error in fn raises again below, uncompiled
                failed = True
                msg = f"torch.compile of {what} failed, running it uncompiled: {e!s:.300}"
                warnings.warn(msg, stacklevel=2)
        return fn(*args, **kwargs)

    return call
