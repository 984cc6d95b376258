"""Tests for the MDN-RNN model, its mixture NLL and its samplers (CPU, fast)."""

import dataclasses
import json

import pytest
import torch
from torch import distributions as D

from mdnworld.device import autocast, cpu_has_native_bf16
from mdnworld.models.mdnrnn import (
    LOG_SIGMA_MAX,
    LOG_SIGMA_MIN,
    MDNRNN,
    MDNOutput,
    MDNRNNArch,
    mdn_loss,
    mdn_nll,
    mixture_weights,
    parametrise_log_sigma,
    run_lstm,
    sample_next,
)

MIXTURES = ["shared", "per_dim"]


def random_output(mixture: str, lead=(3, 4), Z=6, K=5, seed=0) -> MDNOutput:
    """Random mixture parameters with leading dims `lead` in the given layout."""
    g = torch.Generator().manual_seed(seed)
    if mixture == "shared":
        shapes = ((*lead, K), (*lead, K, Z), (*lead, K, Z))
    else:
        shapes = ((*lead, Z, K), (*lead, Z, K), (*lead, Z, K))
    logits, mu, log_sigma = (torch.randn(s, generator=g) for s in shapes)
    return MDNOutput(logits, mu, 0.5 * log_sigma)


def reference_log_prob(out: MDNOutput, x: torch.Tensor, mixture: str) -> torch.Tensor:
    """log p(x) via torch.distributions, (B, T)."""
    sigma = out.log_sigma.exp()
    if mixture == "shared":
        comp = D.Independent(D.Normal(out.mu, sigma), 1)
        return D.MixtureSameFamily(D.Categorical(logits=out.logits), comp).log_prob(x)
    mix = D.MixtureSameFamily(D.Categorical(logits=out.logits), D.Normal(out.mu, sigma))
    return mix.log_prob(x).sum(-1)


# --- architecture ---------------------------------------------------------------------------


def test_arch_json_roundtrip_and_bad_mixture():
    arch = MDNRNNArch(mixture="per_dim", done_head=True)
    assert MDNRNNArch(**json.loads(json.dumps(dataclasses.asdict(arch)))) == arch
    with pytest.raises(ValueError, match="'gaussian'"):
        MDNRNNArch(mixture="gaussian")


@pytest.mark.parametrize("mixture", MIXTURES)
def test_output_shapes(mixture):
    arch = MDNRNNArch(latent_dim=8, hidden=16, n_components=3, mixture=mixture)
    model = MDNRNN(arch)
    out, (h, c) = model(torch.randn(2, 7, 8), torch.randn(2, 7, 1))
    if mixture == "shared":
        assert out.logits.shape == (2, 7, 3)
        assert out.mu.shape == out.log_sigma.shape == (2, 7, 3, 8)
    else:
        assert out.logits.shape == out.mu.shape == out.log_sigma.shape == (2, 7, 8, 3)
    assert out.done_logit is None and out.reward is None
    assert h.shape == c.shape == (1, 2, 16)
    assert all(t.dtype == torch.float32 for t in out[:3])


def test_wrong_latent_size_raises_with_both_sizes():
    model = MDNRNN(MDNRNNArch(latent_dim=64))
    with pytest.raises(ValueError, match=r"32.*64"):
        model(torch.randn(2, 5, 32), torch.randn(2, 5, 1))
    with pytest.raises(ValueError, match=r"action size 2.*1"):
        model(torch.randn(2, 5, 64), torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="latent size 32"):
        model.step(torch.randn(2, 32), torch.randn(2, 1))
    with pytest.raises(ValueError, match=r"\(B, T"):
        model(torch.randn(5, 64), torch.randn(5, 1))


@pytest.mark.parametrize("mixture", MIXTURES)
def test_step_matches_forward(mixture):
    torch.manual_seed(0)
    arch = MDNRNNArch(latent_dim=8, hidden=32, n_components=4, mixture=mixture, done_head=True)
    model = MDNRNN(arch)
    z, a = torch.randn(3, 9, 8), torch.randn(3, 9, 1)
    full, (h_full, c_full) = model(z, a)

    state = model.initial_state(3)
    steps = []
    for t in range(9):
        out_t, state = model.step(z[:, t], a[:, t], state)
        steps.append(out_t)
    for name, got in zip(MDNOutput._fields, zip(*steps, strict=True), strict=True):
        if got[0] is None:
            continue
        want = getattr(full, name)
        torch.testing.assert_close(torch.stack(got, dim=1), want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(state[0], h_full, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(state[1], c_full, rtol=1e-6, atol=1e-6)

    # chunked forward with the carried state is the same sequence
    first, mid = model(z[:, :4], a[:, :4])
    second, _ = model(z[:, 4:], a[:, 4:], mid)
    torch.testing.assert_close(torch.cat([first.mu, second.mu], 1), full.mu)


@pytest.mark.parametrize("width", [65, 64])
def test_run_lstm_is_the_lstm_itself(width):
    """An odd input width padded to an even one (oneDNN's bf16 kernels): the outputs, the
    final state and every gradient are those of calling the LSTM, whose weights keep their
    shape; under autocast, where it pads by default, the two agree to bf16 precision."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(width, 32, batch_first=True)
    x = torch.randn(4, 7, width, requires_grad=True)
    for state in (None, (torch.randn(1, 4, 32), torch.randn(1, 4, 32))):
        results = []
        for run in (lstm, lambda x, s: run_lstm(lstm, x, s, pad=True)):
            h, (h_n, c_n) = run(x, state)
            loss = h.square().sum() + h_n.sum() + c_n.sum()
            results.append((h, h_n, c_n, *torch.autograd.grad(loss, [x, *lstm.parameters()])))
        for a, b in zip(*results, strict=True):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)
    with (
        torch.no_grad(),
        autocast(torch.device("cpu"), "bf16" if cpu_has_native_bf16() else "none"),
    ):
        padded, _ = run_lstm(lstm, x)
        plain, _ = lstm(x.detach())
    torch.testing.assert_close(padded.float(), plain.float(), atol=3e-2, rtol=0)


def test_log_sigma_parametrisation_is_bounded_and_smooth():
    raw = torch.tensor([-1e4, -50.0, -5.0, 0.0, 5.0, 50.0, 1e4], requires_grad=True)
    log_sigma = parametrise_log_sigma(raw)
    assert (log_sigma >= LOG_SIGMA_MIN).all() and (log_sigma <= LOG_SIGMA_MAX + 1e-3).all()
    assert torch.all(log_sigma.diff() >= 0)  # monotone
    assert abs(log_sigma[3].item()) < 0.2  # raw 0 -> sigma ~ 1
    log_sigma.sum().backward()
    assert torch.isfinite(raw.grad).all()


# --- NLL --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mixture", MIXTURES)
def test_nll_matches_torch_distributions(mixture):
    out = random_output(mixture)
    x = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(1))
    nll = mdn_nll(out, x, mixture)
    assert nll.shape == (3, 4)
    torch.testing.assert_close(nll, -reference_log_prob(out, x, mixture), rtol=1e-4, atol=1e-4)
    # float64 path is not downcast
    out64 = MDNOutput(*(t.double() for t in out[:3]))
    nll64 = mdn_nll(out64, x.double(), mixture)
    assert nll64.dtype == torch.float64
    torch.testing.assert_close(nll64, -reference_log_prob(out64, x.double(), mixture))


@pytest.mark.parametrize("mixture", MIXTURES)
@pytest.mark.parametrize("raw_scale", [-1e4, 1e4])
def test_nll_gradients_finite_at_extreme_sigma(mixture, raw_scale):
    """Saturated sigma head + far-away targets: float32 loss and grads stay finite."""
    base = random_output(mixture, seed=2)
    logits = (base.logits * 100).requires_grad_()  # very peaked mixture weights too
    mu = base.mu.clone().requires_grad_()
    raw = torch.full_like(base.log_sigma, raw_scale, requires_grad=True)
    out = MDNOutput(logits, mu, parametrise_log_sigma(raw))
    for target in (torch.full((3, 4, 6), 1e3), torch.full((3, 4, 6), -1e3)):
        nll = mdn_nll(out, target, mixture)
        assert torch.isfinite(nll).all()
        logits.grad = mu.grad = raw.grad = None
        nll.mean().backward(retain_graph=True)
        for p in (logits, mu, raw):
            assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("mixture", MIXTURES)
def test_nll_gradients_finite_through_model_with_far_targets(mixture):
    torch.manual_seed(0)
    model = MDNRNN(MDNRNNArch(latent_dim=8, hidden=16, mixture=mixture))
    with torch.no_grad():
        model.mdn.weight.mul_(1e3)  # saturate every head output
    out, _ = model(torch.randn(2, 5, 8) * 1e2, torch.randn(2, 5, 1))
    loss = mdn_loss(out, torch.full((2, 5, 8), 1e3), model.arch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# --- heads and loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("mixture", MIXTURES)
def test_done_and_reward_heads(mixture):
    torch.manual_seed(0)
    arch = MDNRNNArch(latent_dim=8, hidden=16, mixture=mixture, done_head=True, reward_head=True)
    model = MDNRNN(arch)
    z, a = torch.randn(2, 6, 8), torch.randn(2, 6, 1)
    out, _ = model(z, a)
    assert out.done_logit.shape == out.reward.shape == (2, 6)
    out_step, _ = model.step(z[:, 0], a[:, 0])
    assert out_step.done_logit.shape == out_step.reward.shape == (2,)

    target = torch.randn(2, 6, 8)
    done = torch.zeros(2, 6, dtype=torch.bool)
    done[:, -1] = True
    reward = torch.ones(2, 6)
    losses = mdn_loss(out, target, arch, done=done, reward=reward, done_pos_weight=5.0)
    assert set(losses) == {"loss", "nll", "done", "reward"}
    assert all(v.shape == () for v in losses.values())
    torch.testing.assert_close(losses["loss"], losses["nll"] + losses["done"] + losses["reward"])
    torch.testing.assert_close(losses["nll"], mdn_nll(out, target, mixture).mean())
    torch.testing.assert_close(losses["reward"], ((out.reward - 1) ** 2).mean())
    w = 1 + 4 * done.float()  # pos_weight multiplies the positive term
    p = torch.sigmoid(out.done_logit)
    bce = -(w * done * p.log() + (~done) * (1 - p).log())
    torch.testing.assert_close(losses["done"], bce.mean())
    losses["loss"].backward()
    assert model.done.weight.grad is not None and model.reward.weight.grad is not None

    # mask: mean over valid steps only; garbage (inf) targets at masked steps are ignored
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    bad_target = target.clone()
    bad_target[1, 3:] = float("inf")
    masked = mdn_loss(out, bad_target, arch, done=done, reward=reward, mask=mask)
    torch.testing.assert_close(masked["nll"], mdn_nll(out, target, mixture)[mask].mean())
    assert torch.isfinite(masked["loss"])


def test_loss_without_head_targets_and_errors():
    arch = MDNRNNArch(latent_dim=4, hidden=8)
    out, _ = MDNRNN(arch)(torch.randn(1, 3, 4), torch.randn(1, 3, 1))
    losses = mdn_loss(out, torch.randn(1, 3, 4), arch)
    assert losses["done"].item() == 0.0 and losses["reward"].item() == 0.0
    with pytest.raises(ValueError, match="done head"):
        mdn_loss(out, torch.randn(1, 3, 4), arch, done=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="'bogus'"):
        mdn_nll(out, torch.randn(1, 3, 4), "bogus")


# --- sampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mixture", MIXTURES)
def test_zero_temperature_returns_argmax_mean(mixture):
    out = random_output(mixture, lead=(8,), seed=3)
    z, k = sample_next(out, tau_pi=0.0, tau_sigma=0.0)
    assert z.shape == (8, 6)
    best = out.logits.argmax(-1)
    if mixture == "shared":
        assert k.shape == (8,) and k.dtype == torch.long
        want = out.mu[torch.arange(8), best]  # (8, Z)
    else:
        assert k.shape == (8, 6)
        want = out.mu.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    assert torch.equal(k, best)
    assert torch.equal(z, want)
    torch.testing.assert_close(mixture_weights(out, 0.0).argmax(-1), best)


@pytest.mark.parametrize("mixture", MIXTURES)
@pytest.mark.parametrize("forced", [3, "tensor"])
def test_committed_sampling_uses_only_forced_component(mixture, forced):
    """Components far apart; the forced one is the LEAST likely; every draw stays on it."""
    B, Z, K, n_draws = 4, 3, 5, 500
    centres = 100.0 * torch.arange(K, dtype=torch.float32)  # component k sits at 100 k
    logits = torch.tensor([10.0, 0.0, 0.0, -10.0, 0.0])  # component 3 has prob ~ 2e-9
    if mixture == "shared":
        out = MDNOutput(logits.expand(B, K), centres[:, None].expand(B, K, Z), torch.zeros(B, K, Z))
    else:
        out = MDNOutput(logits.expand(B, Z, K), centres.expand(B, Z, K), torch.zeros(B, Z, K))
    force = 3 if forced == 3 else torch.tensor([3, 1, 4, 0])
    want_k = torch.as_tensor(force).expand(B)  # (B,)
    if mixture == "per_dim":
        want_k = want_k[:, None].expand(B, Z)  # same component in every dim
    want_z = 100.0 * want_k.float().reshape(B, -1)  # (B, 1) or (B, Z), broadcasts over Z
    g = torch.Generator().manual_seed(0)
    for _ in range(n_draws):
        z, k = sample_next(out, tau_pi=2.0, tau_sigma=1.0, force_component=force, generator=g)
        assert torch.equal(k, want_k)
        assert ((z - want_z).abs() < 10.0).all()  # sigma 1: 10 sigma from the centre
    with pytest.raises(ValueError, match="force_component"):
        sample_next(out, force_component=K)


@pytest.mark.parametrize("mixture", MIXTURES)
def test_sampling_statistics_and_generator(mixture):
    """Component frequencies follow softmax(logits / tau); tau_sigma scales the variance."""
    K, Z, n = 3, 2, 20000
    logits = torch.tensor([0.0, 1.0, 2.0])
    if mixture == "shared":
        out = MDNOutput(logits.expand(n, K), torch.zeros(n, K, Z), torch.zeros(n, K, Z))
    else:
        out = MDNOutput(logits.expand(n, Z, K), torch.zeros(n, Z, K), torch.zeros(n, Z, K))
    z, k = sample_next(out, tau_pi=2.0, tau_sigma=0.25, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(k.flatten(), minlength=K).float() / k.numel()
    torch.testing.assert_close(freq, torch.softmax(logits / 2.0, 0), atol=0.02, rtol=0)
    assert abs(z.var().item() - 0.25) < 0.02  # variance = sigma^2 * tau_sigma
    z2, k2 = sample_next(
        out, tau_pi=2.0, tau_sigma=0.25, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(z, z2) and torch.equal(k, k2)


@pytest.mark.parametrize("mixture", MIXTURES)
def test_supplied_noise_inverts_the_cdf(mixture):
    """With noise=(u, eps), component = first k whose cumulative weight exceeds u."""
    K, Z = 3, 2
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    u = torch.tensor([0.0, 0.19, 0.21, 0.69, 0.71, 0.999])
    want = torch.tensor([0, 0, 1, 1, 2, 2])
    n = len(u)
    eps = torch.ones(n, Z)
    if mixture == "shared":
        mu = torch.arange(K, dtype=torch.float32)[None, :, None].expand(n, K, Z)
        out = MDNOutput(logits.expand(n, K), mu, torch.zeros(n, K, Z))
    else:
        mu = torch.arange(K, dtype=torch.float32).expand(n, Z, K)
        out = MDNOutput(logits.expand(n, Z, K), mu, torch.zeros(n, Z, K))
        u = u[:, None].expand(n, Z)
    z, k = sample_next(out, tau_pi=1.0, tau_sigma=0.25, noise=(u, eps))
    assert torch.equal(k.reshape(n, -1)[:, 0], want)
    torch.testing.assert_close(z, want[:, None].float().expand(n, Z) + 0.5)  # mu_k + 1 * sqrt(.25)


def test_step_output_feeds_sampler():
    model = MDNRNN(MDNRNNArch(latent_dim=8, hidden=16))
    out, state = model.step(torch.randn(2, 8), torch.randn(2, 1))
    z, k = sample_next(out)
    assert z.shape == (2, 8) and k.shape == (2,)
    out, _ = model.step(z, torch.zeros(2, 1), state)
    assert torch.isfinite(out.mu).all()


# --- training and precision -------------------------------------------------------------------


def synthetic_sequences(n=32, T=20, Z=4, seed=0):
    """z_{t+1} = 0.9 z_t + drift + noise; the drift sign (regime) is the action's sign."""
    g = torch.Generator().manual_seed(seed)
    regime = torch.randint(0, 2, (n, 1, 1), generator=g).float() * 2 - 1  # +-1 per sequence
    z = torch.zeros(n, T + 1, Z)
    z[:, 0] = torch.randn(n, Z, generator=g)
    for t in range(T):
        z[:, t + 1] = 0.9 * z[:, t] + 0.5 * regime[:, 0] + 0.05 * torch.randn(n, Z, generator=g)
    a = regime.expand(n, T, 1)
    return z[:, :-1], a, z[:, 1:]


@pytest.mark.parametrize("mixture", MIXTURES)
def test_adam_steps_lower_nll(mixture):
    torch.manual_seed(0)
    arch = MDNRNNArch(latent_dim=4, hidden=32, n_components=3, mixture=mixture)
    model = MDNRNN(arch)
    z, a, target = synthetic_sequences()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(150):
        out, _ = model(z, a)
        loss = mdn_loss(out, target, arch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    late = sum(history[-10:]) / 10
    assert late < history[0] - 15.0, history  # starts ~26-29 nats (4 dims)
    assert late < 0.0, history  # sharper than a unit Gaussian (~5.7 nats for Z=4)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
@pytest.mark.parametrize("mixture", MIXTURES)
def test_bf16_autocast_nll_close_to_fp32(mixture):
    torch.manual_seed(0)
    arch = MDNRNNArch(mixture=mixture)  # default size: Z=64, H=256, K=5
    model = MDNRNN(arch)
    z, a, target = torch.randn(4, 16, 64), torch.randn(4, 16, 1), torch.randn(4, 16, 64)
    # oneDNN's bf16 LSTM needs AVX512-BF16/AMX; the native path autocasts its matmuls
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        out32, _ = model(z, a)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out16, _ = model(z, a)
            nll16 = mdn_nll(out16, target, mixture)  # (B, T)
    nll32 = mdn_nll(out32, target, mixture)
    assert out16.mu.dtype == nll16.dtype == torch.float32
    assert not torch.equal(out16.mu, out32.mu)  # bf16 really was used
    rel_mean = abs(nll16.mean().item() - nll32.mean().item()) / abs(nll32.mean().item())
    rel_step = ((nll16 - nll32).abs() / nll32.abs()).max().item()
    print(f"bf16 vs fp32 NLL ({mixture}): mean rel {rel_mean:.1e}, per-step max rel {rel_step:.1e}")
    assert rel_mean < 1e-3, f"bf16 autocast mean NLL relative difference {rel_mean:.2e}"
    assert rel_step < 1e-2, f"bf16 autocast per-step NLL relative difference {rel_step:.2e}"
