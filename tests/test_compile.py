"""``rnn.compile``: torch.compile of M's heads and loss where a C++ compiler is found, a warned
fallback to the plain code where compiling fails, and a compiled training run that learns what
the plain one learns. conftest.py turns torch.compile off for the other tests; these turn it on."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from mdnworld.config import RNNConfig
from mdnworld.device import compiled, resolve_compile
from mdnworld.errors import ConfigError
from mdnworld.layout import RunLayout
from mdnworld.logs import read_log
from mdnworld.train.rnn import train_rnn

CPU = torch.device("cpu")


@pytest.fixture
def compile_on() -> Iterator[None]:
    """torch.compile enabled (conftest.py disables it), with fresh compile caches."""
    torch._dynamo.reset()
    with torch._dynamo.config.patch(disable=False):
        yield
    torch._dynamo.reset()


def test_auto_compiles_on_a_cpu_with_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "g++")
    assert resolve_compile(CPU, "auto") == (shutil.which("g++") is not None)
    monkeypatch.setenv("CXX", "no-such-compiler++")
    assert resolve_compile(CPU, "auto") is False
    assert resolve_compile(CPU, "on") is True and resolve_compile(CPU, "none") is False
    assert resolve_compile(torch.device("cuda"), "auto") is False  # not measured on a GPU yet
    with pytest.raises(ConfigError, match="'auto', 'none' or 'on'.*'yes'"):
        resolve_compile(CPU, "yes")


def f(x: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(-0.5 * (x * 2.0) ** 2 - x, dim=-1)


@pytest.mark.slow
def test_a_failed_compile_warns_and_runs_the_plain_function(compile_on: None) -> None:
    x = torch.randn(4, 5)
    with torch._inductor.config.patch({"cpp.cxx": (None, "no-such-compiler++")}):
        g = compiled(f, True, "the test's f")
        with pytest.warns(UserWarning, match="torch.compile of the test's f failed"):
            y = g(x)
        torch.testing.assert_close(y, f(x))
        torch.testing.assert_close(g(x + 1), f(x + 1))  # plain from now on, no second warning
    assert compiled(f, False, "f") is f


@pytest.mark.skipif(shutil.which("g++") is None, reason="inductor needs a C++ compiler on a CPU")
@pytest.mark.filterwarnings("error:torch.compile")  # a fallback to the plain code fails the test
def test_compiled_training_learns_what_the_plain_one_learns(
    encoded: Path, tmp_path: Path, compile_on: None
) -> None:
    """Same seed, same data: the compiled step's fused kernels round differently, so the two
    runs drift apart a little; their validation NLL per epoch must agree closely."""
    curves = {}
    for mode in ("none", "on"):
        run = tmp_path / mode
        shutil.copytree(encoded, run)
        cfg = RNNConfig(hidden=32, epochs=4, patience=0, batch_size=32, log_every=5,
                        done_head=True, compile=mode, device="cpu", threads=1)  # fmt: skip
        (meta,) = train_rnn(run, cfg, log=lambda s: None)
        rows = read_log(RunLayout(run).rnn_model_dir(0) / "log.jsonl")
        curves[mode] = [r["val/nll_per_dim"] for r in rows if "val/nll_per_dim" in r]
    assert counters["stats"]["unique_graphs"] >= 1  # it did compile
    plain, fast = curves["none"], curves["on"]
    assert len(plain) == len(fast) == 4 and plain[-1] < plain[0] - 0.1  # it learned
    drop = plain[0] - plain[-1]
    for a, b in zip(plain, fast, strict=True):
        assert abs(a - b) < 0.01 * drop, (plain, fast)
