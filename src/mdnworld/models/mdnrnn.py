"""MDN-RNN: an LSTM whose output is a Gaussian mixture over the next latent z_{t+1}.

The "memory" model of World Models (Ha & Schmidhuber 2018), in the two mixture
flavours studied by Ellefsen et al. (2019), "How do Mixture Density RNNs
Predict the Future?".

Shapes (B batch, T time, Z latent_dim, A action_dim, H hidden, K n_components):

    inputs          z (B, T, Z), a (B, T, A)       step(): z (B, Z), a (B, A)
    state           (h, c), each (1, B, H)         the nn.LSTM convention

    mixture="shared"   (the paper's): ONE categorical over K components, each a
                       diagonal Gaussian over the whole latent vector.
        logits      (B, T, K)
        mu          (B, T, K, Z)
        log_sigma   (B, T, K, Z)

    mixture="per_dim"  (World Models'): an independent K-mixture per latent dim.
        logits      (B, T, Z, K)
        mu          (B, T, Z, K)
        log_sigma   (B, T, Z, K)

    done_logit      (B, T)  or None                one Bernoulli logit per step
    reward          (B, T)  or None                scalar regression per step

The component axis K is always the LAST axis of ``logits``; in "shared" mode
mu/log_sigma put K before Z, in "per_dim" mode every tensor ends in (Z, K).
``step`` and ``sample_next`` use the same shapes without the T axis.

log_sigma is softly clamped into [LOG_SIGMA_MIN, LOG_SIGMA_MAX] (see
``parametrise_log_sigma``), so the NLL and its gradients stay finite in float32
even when the head saturates or targets are far away. Head outputs are cast to
float32 before any loss is computed, so the model can run under bf16 autocast.
(On CPUs without native bf16, oneDNN's LSTM rejects CPU bf16 autocast with
"could not create a primitive descriptor"; wrap the call in
``torch.backends.mkldnn.flags(enabled=False)`` there.)
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIXTURES = ("shared", "per_dim")
LOG_SIGMA_MIN = -5.0  # sigma >= ~6.7e-3
LOG_SIGMA_MAX = 2.0  # sigma <= ~7.4
LOG_2PI = math.log(2.0 * math.pi)

State = tuple[Tensor, Tensor]  # (h, c), each (1, B, H)


@dataclass(frozen=True)
class MDNRNNArch:
    """Architecture hyper-parameters (JSON-serialisable via dataclasses.asdict)."""

    latent_dim: int = 64
    action_dim: int = 1
    hidden: int = 256
    n_components: int = 5
    mixture: str = "shared"  # or "per_dim"
    done_head: bool = False
    reward_head: bool = False

    def __post_init__(self) -> None:
        if self.mixture not in MIXTURES:
            raise ValueError(f"unknown mixture {self.mixture!r}, expected one of {MIXTURES}")
        for name in ("latent_dim", "action_dim", "hidden", "n_components"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class MDNOutput(NamedTuple):
    """Mixture parameters (+ optional heads); shapes in the module docstring."""

    logits: Tensor  # mixture logits, K on the last axis
    mu: Tensor
    log_sigma: Tensor
    done_logit: Tensor | None = None  # (B, T)
    reward: Tensor | None = None  # (B, T)


def parametrise_log_sigma(raw: Tensor) -> Tensor:
    """Soft clamp raw head outputs into ~[LOG_SIGMA_MIN, LOG_SIGMA_MAX], any shape.

    Two softplus "soft walls" (as in PETS, Chua et al. 2018): identity-like in
    the middle (raw=0 -> log_sigma ~ -0.12), smooth, monotone, never exactly
    flat. The floor is exact; the ceiling overshoots by at most
    softplus(LOG_SIGMA_MIN - LOG_SIGMA_MAX) ~ 1e-3.
    """
    log_sigma = LOG_SIGMA_MAX - F.softplus(LOG_SIGMA_MAX - raw)
    return LOG_SIGMA_MIN + F.softplus(log_sigma - LOG_SIGMA_MIN)


def mixture_kind(out: MDNOutput) -> str:
    """'shared' if mu has one more axis than logits (K, Z vs K), else 'per_dim'."""
    return "shared" if out.mu.dim() == out.logits.dim() + 1 else "per_dim"


def run_lstm(
    lstm: nn.LSTM, x: Tensor, state: State | None = None, pad: bool | None = None
) -> tuple[Tensor, State]:
    """``lstm(x, state)`` for a one-layer, batch-first ``lstm``; x (B, T, I) -> (h (B, T, H),
    state). With ``pad`` (default: where autocast is on for x's device) an odd input width I
    gets one more input that is always 0, with a weight column of 0: the same function and the
    same gradients, and the stored weights keep their shape. oneDNN's bf16 LSTM runs its AMX
    kernels only for an even width: at 65 (64 + 1 action) its forward ran ~5x slower here
    (~215 against ~43 ms at batch 256 x 60 steps, one thread). In float32 the padding only
    costs (+40 % at batch 1: a dream step), so it is off there."""
    if pad is None:
        pad = torch.is_autocast_enabled(x.device.type)
    if not pad or x.shape[-1] % 2 == 0:
        return lstm(x, state)
    if state is None:
        zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
        state = (zeros, zeros)
    weights = [
        F.pad(lstm.weight_ih_l0, (0, 1)),
        lstm.weight_hh_l0,
        lstm.bias_ih_l0,
        lstm.bias_hh_l0,
    ]
    # what nn.LSTM.forward calls: (input, hx, params, has_biases, num_layers, dropout, train,
    # bidirectional, batch_first)
    h, h_last, c_last = torch.lstm(F.pad(x, (0, 1)), state, weights, True, 1, 0.0, lstm.training,
                                   False, True)  # fmt: skip
    return h, (h_last, c_last)


class MDNRNN(nn.Module):
    """LSTM over [z_t, a_t] with a mixture-density head predicting z_{t+1}."""

    def __init__(self, arch: MDNRNNArch = MDNRNNArch()) -> None:
        super().__init__()
        self.arch = arch
        Z, K = arch.latent_dim, arch.n_components
        self.lstm = nn.LSTM(Z + arch.action_dim, arch.hidden, batch_first=True)
        n_out = K + 2 * K * Z if arch.mixture == "shared" else 3 * Z * K
        self.mdn = nn.Linear(arch.hidden, n_out)
        self.done = nn.Linear(arch.hidden, 1) if arch.done_head else None
        self.reward = nn.Linear(arch.hidden, 1) if arch.reward_head else None

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zero (h, c), each (1, batch, H)."""
        h = torch.zeros(1, batch, self.arch.hidden, device=device)
        return h, h.clone()

    def heads(self, h: Tensor) -> MDNOutput:
        """LSTM outputs h (..., H) -> MDNOutput with leading dims (...), in float32."""
        Z, K = self.arch.latent_dim, self.arch.n_components
        y = self.mdn(h).float()
        if self.arch.mixture == "shared":
            logits, rest = y.split([K, 2 * K * Z], dim=-1)
            mu, raw = rest.unflatten(-1, (2, K, Z)).unbind(-3)
        else:
            logits, mu, raw = y.unflatten(-1, (3, Z, K)).unbind(-3)
        done = self.done(h).float().squeeze(-1) if self.done is not None else None
        reward = self.reward(h).float().squeeze(-1) if self.reward is not None else None
        return MDNOutput(logits, mu, parametrise_log_sigma(raw), done, reward)

    def hidden(self, z: Tensor, a: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """z (B, T, Z), a (B, T, A) -> (LSTM outputs h (B, T, H), state): forward without heads."""
        self._check_inputs(z, a, time_axis=True)
        x = torch.cat([z, a.to(z.dtype)], dim=-1)  # (B, T, Z + A)
        return run_lstm(self.lstm, x, state)

    def forward(self, z: Tensor, a: Tensor, state: State | None = None) -> tuple[MDNOutput, State]:
        """z (B, T, Z), a (B, T, A) -> (MDNOutput over z_{t+1} with leading (B, T), state)."""
        h, state = self.hidden(z, a, state)
        return self.heads(h), state

    def step(self, z: Tensor, a: Tensor, state: State | None = None) -> tuple[MDNOutput, State]:
        """One step: z (B, Z), a (B, A) -> (MDNOutput with leading (B,), state).

        Runs the same nn.LSTM on a length-1 sequence, so stepping through a
        sequence gives the same numbers as ``forward`` over it.
        """
        self._check_inputs(z, a, time_axis=False)
        out, state = self.forward(z.unsqueeze(1), a.unsqueeze(1), state)
        return MDNOutput(*(t[:, 0] if t is not None else None for t in out)), state

    def _check_inputs(self, z: Tensor, a: Tensor, time_axis: bool) -> None:
        ndim, shape = (3, "(B, T, ·)") if time_axis else (2, "(B, ·)")
        if z.dim() != ndim or a.dim() != ndim:
            raise ValueError(
                f"expected z and a shaped {shape}, got z {tuple(z.shape)} and a {tuple(a.shape)}"
            )
        if z.shape[-1] != self.arch.latent_dim:
            raise ValueError(
                f"latent size {z.shape[-1]} does not match model latent_dim {self.arch.latent_dim}"
            )
        if a.shape[-1] != self.arch.action_dim:
            raise ValueError(
                f"action size {a.shape[-1]} does not match model action_dim {self.arch.action_dim}"
            )
        if z.shape[:-1] != a.shape[:-1]:
            raise ValueError(
                f"z and a leading dims differ: {tuple(z.shape[:-1])} vs {tuple(a.shape[:-1])}"
            )


class StandardisedMDNRNN(MDNRNN):
    """An MDNRNN that works on standardised latents inside and in the VAE's units outside.

    Input z -> (z - z_shift) / z_scale per dim; the mixture it predicts for the standardised
    z_{t+1} is mapped back (mu * z_scale + z_shift, log_sigma + log z_scale), so ``forward``,
    ``step``, ``mdn_nll`` and ``sample_next`` all see real latents. With shift 0 and scale 1
    (the defaults) it is a plain MDNRNN. The two buffers are part of the saved weights.
    """

    def __init__(self, arch: MDNRNNArch) -> None:
        super().__init__(arch)
        self.register_buffer("z_shift", torch.zeros(arch.latent_dim))
        self.register_buffer("z_scale", torch.ones(arch.latent_dim))

    def set_standardisation(self, shift: Tensor | np.ndarray, scale: Tensor | np.ndarray) -> None:
        """shift, scale: (Z,) training mean and std of the latents M is fed."""
        with torch.no_grad():
            self.z_shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
            self.z_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def hidden(self, z: Tensor, a: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        self._check_inputs(z, a, time_axis=True)
        return super().hidden((z - self.z_shift) / self.z_scale, a, state)

    def heads(self, h: Tensor) -> MDNOutput:
        out = super().heads(h)
        shift, scale = self.z_shift.float(), self.z_scale.float()
        if self.arch.mixture == "per_dim":  # (..., Z, K)
            shift, scale = shift[:, None], scale[:, None]
        return out._replace(mu=out.mu * scale + shift, log_sigma=out.log_sigma + scale.log())


def mdn_nll(out: MDNOutput, target_z: Tensor, mixture: str) -> Tensor:
    """Negative log-likelihood (nats) of target_z (B, T, Z) -> (B, T), summed over Z.

    Works for any leading dims. Computed in (at least) float32.
    """
    if mixture not in MIXTURES:
        raise ValueError(f"unknown mixture {mixture!r}, expected one of {MIXTURES}")
    dtype = torch.promote_types(out.mu.dtype, torch.float32)
    logits, mu, log_sigma = (t.to(dtype) for t in out[:3])
    x = target_z.to(dtype).unsqueeze(-2 if mixture == "shared" else -1)  # broadcast over K
    # log N(x; mu, sigma) per dim and component
    log_prob = -0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2 - log_sigma - 0.5 * LOG_2PI
    if mixture == "shared":
        log_prob = log_prob.sum(-1)  # (B, T, K): diagonal Gaussian over the whole latent
    log_joint = torch.log_softmax(logits, dim=-1) + log_prob  # (B, T, K) or (B, T, Z, K)
    nll = -torch.logsumexp(log_joint, dim=-1)  # log-sum-exp over the K components
    return nll if mixture == "shared" else nll.sum(-1)  # per_dim: sum over Z


def _masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of x (B, T) over steps where mask (B, T) is True (all steps if None)."""
    if mask is None:
        return x.mean()
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp_min(1)


def mdn_loss(
    out: MDNOutput,
    target_z: Tensor,
    arch: MDNRNNArch,
    done: Tensor | None = None,
    reward: Tensor | None = None,
    done_pos_weight: float | Tensor = 1.0,
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Scalar losses, each a mean over valid steps.

    target_z (B, T, Z); done (B, T) bool/float; reward (B, T); mask (B, T) bool.
    "nll" is per step, summed over latent dims; "done" is BCE with logits
    weighted by ``done_pos_weight`` on positives; "reward" is MSE. A head term is
    0 when its target is None. loss = nll + done + reward (reweight from the
    components if needed).
    """
    zero = out.mu.new_zeros((), dtype=torch.float32)
    nll = _masked_mean(mdn_nll(out, target_z, arch.mixture), mask)
    done_loss = reward_loss = zero
    if done is not None:
        if out.done_logit is None:
            raise ValueError("done targets given but the model has no done head")
        pos_weight = torch.as_tensor(done_pos_weight, device=out.done_logit.device)
        bce = F.binary_cross_entropy_with_logits(
            out.done_logit, done.float(), pos_weight=pos_weight, reduction="none"
        )
        done_loss = _masked_mean(bce, mask)
    if reward is not None:
        if out.reward is None:
            raise ValueError("reward targets given but the model has no reward head")
        reward_loss = _masked_mean((out.reward - reward.float()) ** 2, mask)
    loss = nll + done_loss + reward_loss
    return {"loss": loss, "nll": nll, "done": done_loss, "reward": reward_loss}


def mixture_weights(out_step: MDNOutput, tau_pi: float = 1.0) -> Tensor:
    """pi = softmax(logits / tau_pi) over the last axis; tau_pi <= 1e-6 gives one-hot argmax."""
    logits = out_step.logits.float()
    if tau_pi <= 1e-6:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / tau_pi, dim=-1)


def sample_next(
    out_step: MDNOutput,
    tau_pi: float = 1.0,
    tau_sigma: float = 1.0,
    force_component: int | Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Sample z_{t+1} from a one-step mixture (no time axis).

    Returns (z_next (B, Z), component): component is (B,) long for "shared"
    (one component for the whole latent), (B, Z) long for "per_dim".

    component ~ Categorical(softmax(logits / tau_pi)), drawn by inverting the
    CDF at a uniform u; tau_pi <= 1e-6 -> argmax.
    z = mu_k + sigma_k * sqrt(tau_sigma) * eps, eps ~ N(0, I): tau_sigma scales
    the VARIANCE; tau_sigma = 0 returns mu_k exactly.
    force_component (int, (B,) or, for "per_dim", (B, Z)) fixes the component
    ("committed" sampling); tau_pi is then ignored.
    noise = (u, eps) supplies the random numbers instead of ``generator``:
    u uniform in [0, 1) shaped like logits without K ((B,) or (B, Z)), eps
    standard normal (B, Z). The dream engine uses it to give every dream its
    own random stream, so a dream is the same alone or inside a batch.
    """
    if tau_pi < 0 or tau_sigma < 0:
        raise ValueError(f"temperatures must be >= 0, got tau_pi={tau_pi}, tau_sigma={tau_sigma}")
    mixture = mixture_kind(out_step)
    logits = out_step.logits  # (B, K) or (B, Z, K)
    K = logits.shape[-1]
    if noise is None:
        kw = {"generator": generator, "device": logits.device}
        u = torch.rand(logits.shape[:-1], **kw)
        mu_shape = out_step.mu.shape  # (B, K, Z) or (B, Z, K)
        z_shape = mu_shape[:-2] + mu_shape[-1:] if mixture == "shared" else mu_shape[:-1]
        eps = torch.randn(z_shape, **kw)
    else:
        u, eps = noise
    if force_component is not None:
        k = torch.as_tensor(force_component, dtype=torch.long, device=logits.device)
        if k.dim() == 1 and mixture == "per_dim":
            k = k.unsqueeze(-1)  # (B,) -> (B, 1), broadcast over Z
        k = k.expand(logits.shape[:-1])
        if k.min() < 0 or k.max() >= K:
            raise ValueError(f"force_component must be in [0, {K}), got {force_component}")
    elif tau_pi <= 1e-6:
        k = logits.argmax(-1)
    else:
        cdf = mixture_weights(out_step, tau_pi).cumsum(-1)  # (..., K)
        k = (cdf <= u.unsqueeze(-1)).sum(-1).clamp_max(K - 1)  # first k with cdf_k > u

    if mixture == "shared":  # mu (B, K, Z): pick row k
        idx = k[..., None, None].expand(*k.shape, 1, out_step.mu.shape[-1])
        mu, log_sigma = (t.gather(-2, idx).squeeze(-2) for t in out_step[1:3])
    else:  # mu (B, Z, K): pick entry k per dim
        mu, log_sigma = (t.gather(-1, k.unsqueeze(-1)).squeeze(-1) for t in out_step[1:3])

    z = mu + torch.exp(log_sigma) * math.sqrt(tau_sigma) * eps.to(mu.dtype)
    return z, k.clone()
