"""BatchedMDNRNN: N stacked MDN-RNNs give each model's own outputs and gradients, and write
their weights back into ordinary modules."""

from __future__ import annotations

import pytest
import torch

from mdnworld.models.batched_mdnrnn import BatchedMDNRNN
from mdnworld.models.mdnrnn import MDNRNNArch, StandardisedMDNRNN, mdn_loss

N, B, T, Z = 3, 4, 7, 5


def models(mixture: str) -> list[StandardisedMDNRNN]:
    arch = MDNRNNArch(latent_dim=Z, hidden=12, n_components=3, mixture=mixture, done_head=True)
    out = []
    for n in range(N):
        torch.manual_seed(n)
        m = StandardisedMDNRNN(arch)
        m.set_standardisation(torch.randn(Z), torch.rand(Z) + 0.5)
        out.append(m)
    return out


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(9)
    z = torch.randn(N, B, T + 1, Z, generator=g)
    a = torch.rand(N, B, T, 1, generator=g) * 2 - 1
    done = torch.rand(N, B, T, generator=g) < 0.1
    return z[:, :, :-1], a, z[:, :, 1:], done


def close(x: torch.Tensor, y: torch.Tensor) -> None:
    torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mixture", ["shared", "per_dim"])
def test_outputs_and_gradients_are_each_model_s_own(mixture: str) -> None:
    ms = models(mixture)
    batched = BatchedMDNRNN(ms)
    z, a, zn, done = data()
    out = batched(z, a)
    total = sum(mdn_loss(type(out)(*(t[n] for t in out[:4])), zn[n], ms[n].arch, done[n])["loss"]
                for n in range(N))  # fmt: skip
    total.backward()
    for n, m in enumerate(ms):
        own, _ = m(z[n], a[n])
        for got, want in zip(out[:4], own[:4], strict=True):
            close(got[n], want)
        mdn_loss(own, zn[n], m.arch, done[n])["loss"].backward()
        close(batched.w_ih.grad[n], m.lstm.weight_ih_l0.grad)
        close(batched.w_hh.grad[n], m.lstm.weight_hh_l0.grad)
        close(batched.b.grad[n], m.lstm.bias_ih_l0.grad)
        close(batched.w_mdn.grad[n], m.mdn.weight.grad)
        close(batched.w_done.grad[n], m.done.weight.grad)


def test_a_training_step_written_back_matches_the_batched_model() -> None:
    ms = models("shared")
    batched = BatchedMDNRNN(ms)
    z, a, zn, done = data()
    opt = torch.optim.Adam(batched.parameters(), lr=1e-2)
    out = batched(z, a)
    mdn_loss(out, zn, ms[0].arch, done)["loss"].backward()
    opt.step()
    batched.to_models(ms)
    after = batched(z, a)
    for n, m in enumerate(ms):
        own, _ = m(z[n], a[n])
        for got, want in zip(after[:4], own[:4], strict=True):
            close(got[n], want)
    with pytest.raises(ValueError, match="one architecture"):
        BatchedMDNRNN([ms[0], models("per_dim")[0]])
    with pytest.raises(ValueError, match="z must be"):
        batched(z[:2], a[:2])
