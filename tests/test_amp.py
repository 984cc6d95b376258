"""``amp = "auto"``: bf16 autocast where the CPU has native bf16 (decided from its flags at run
time), and training under bf16 reaching the same loss as float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mdnworld.device import autocast, cpu_has_native_bf16, cpu_model, resolve_amp
from mdnworld.errors import ConfigError
from mdnworld.models.mdnrnn import MDNRNN, MDNRNNArch, mdn_loss
from mdnworld.models.vae import VAE, VAEArch, vae_loss

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 avx512f avx512bw", False),  # AVX-512 without bf16: emulated, slow
        ("fpu sse2 avx2 avx512f avx512_bf16", True),
        ("fpu sse2 avx2 amx_tile amx_bf16", True),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_has_native_bf16(str(info)) is native
    assert cpu_has_native_bf16(str(tmp_path / "absent")) is False  # not Linux: no bf16


def test_the_cpu_model_is_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n")
    assert cpu_model(str(info)) == "AMD EPYC"
    info.write_text("processor\t: 0\nflags\t\t: fpu\n")  # no model name: the platform's
    assert cpu_model(str(info)) == cpu_model(str(tmp_path / "absent")) != ""


def test_auto_follows_the_cpu_and_explicit_choices_win(monkeypatch: pytest.MonkeyPatch) -> None:
    import mdnworld.device as device

    for native in (True, False):
        monkeypatch.setattr(device, "cpu_has_native_bf16", lambda native=native: native)
        assert resolve_amp(CPU, "auto") == ("bf16" if native else "none")
        assert resolve_amp(CPU, "none") == "none" and resolve_amp(CPU, "bf16") == "bf16"
    assert resolve_amp(torch.device("cuda"), "auto") == "none"
    with pytest.raises(ConfigError, match="'fp16'"):
        resolve_amp(CPU, "fp16")


def _train(model: torch.nn.Module, amp: str, steps: int, step_loss) -> list[float]:
    """``steps`` Adam steps of ``step_loss(model)`` under ``autocast(cpu, amp)``; the losses."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for s in range(steps):
        with autocast(CPU, amp):
            loss = step_loss(model, s)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _twins(make) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    a = make()
    b = make()
    b.load_state_dict(a.state_dict())
    return a, b


def test_vae_trained_under_bf16_reaches_the_float32_loss() -> None:
    from test_vae_model import squares_batch

    x = squares_batch(8)

    def step_loss(model: VAE, s: int) -> torch.Tensor:
        logits, mu, logvar = model(x, generator=torch.Generator().manual_seed(s))
        if torch.is_autocast_enabled("cpu"):
            assert mu.dtype == torch.bfloat16  # bf16 really is used
        return vae_loss(logits, x, mu, logvar, "mse", 8.0)[0]

    fp32, bf16 = _twins(lambda: VAE(VAEArch(latent_dim=16)))
    l32, l16 = _train(fp32, "none", 30, step_loss), _train(bf16, "bf16", 30, step_loss)
    late32, late16 = sum(l32[-5:]) / 5, sum(l16[-5:]) / 5
    assert late32 < 0.8 * l32[0]  # it learned
    assert abs(late16 - late32) < 0.03 * late32, (l32[-5:], l16[-5:])


def test_mdnrnn_trained_under_bf16_reaches_the_float32_nll() -> None:
    arch = MDNRNNArch(latent_dim=8, hidden=32, n_components=3)
    g = torch.Generator().manual_seed(0)
    walk = torch.randn(8, 21, 8, generator=g).cumsum(1) * 0.3  # a learnable random walk
    a = torch.randn(8, 20, 1, generator=g)

    def step_loss(model: MDNRNN, s: int) -> torch.Tensor:
        out, _ = model(walk[:, :-1], a)
        return mdn_loss(out, walk[:, 1:], arch)["loss"]

    fp32, bf16 = _twins(lambda: MDNRNN(arch))
    l32, l16 = _train(fp32, "none", 60, step_loss), _train(bf16, "bf16", 60, step_loss)
    late32, late16 = sum(l32[-5:]) / 5, sum(l16[-5:]) / 5
    assert late32 < l32[0] - 3.0  # it learned
    assert abs(late16 - late32) < 0.05 * abs(l32[0] - late32), (l32[-5:], l16[-5:])
