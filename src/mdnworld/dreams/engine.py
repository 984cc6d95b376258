"""The dream engine: B dreams of M at once, decoded by V (SPEC §5).

A dream starts from a real latent z_0 (the mu of a stored frame). Each step feeds [z_t, a_t] to
M's LSTM, reads the mixture (pi, mu, sigma) over z_{t+1}, picks a component
k ~ softmax(logits / tau_pi) (or the committed one) and samples
z_{t+1} ~ N(mu_k, sigma_k^2 * tau_sigma); the sampling is ``models.mdnrnn.sample_next``.
``tau_sigma`` scales the VARIANCE (the original multiplied sigma's square by it too); at the
paper's 0.01 a dream is nearly deterministic given its components.

Warm-up: ``warmup`` free-running dream steps are run and thrown away before recording (the
original's, SPEC §5), or, with ``teacher_force``, M first reads W real encoded steps.

Dream actions (SPEC §5): a_0 ~ U(-1, 1); then keep the previous action, and with probability
0.1 per step draw a new one from U(-1, 1).

Randomness: every dream has its own random streams (torch Generators seeded from
``(seed, dream index)``), drawn in blocks, so a dream comes out the same alone or inside any
batch. Nothing loops over dreams in Python except the block refills.

Recorded per step t (arrays (B, T, ...), see ``DreamRecord``): the action a_t fed with z_t, the
mixture weights pi_t that produced z_{t+1}, the component z_{t+1} was drawn from, and z_{t+1}
itself; ``decode`` turns z into frames. So frame t is the frame that component[t] of pi[t] made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mdnworld.models.mdnrnn import MDNRNN, MDNOutput, mixture_weights, sample_next
from mdnworld.models.vae import VAE, pad_rows, tensor_to_frames

NOISE_BLOCK = 64
"""Steps of random numbers drawn at once per dream."""


def stream_seed(seed: int, dream: int, stream: int) -> int:
    """An independent 63-bit seed for random stream ``stream`` of dream ``dream``."""
    state = np.random.SeedSequence([seed, dream, stream]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


class RandomStreams:
    """One stream of uniforms (width U) and normals (width N) per dream, drawn in blocks.

    ``draw()`` -> (u (B, U), n (B, N)) on ``device``; row i depends only on dream i's seed and
    how many draws it has made since it was (re)seeded.
    """

    def __init__(
        self, seeds: Sequence[int], n_uniform: int, n_normal: int, device: torch.device | str
    ) -> None:
        self.U, self.N, self.device = n_uniform, n_normal, torch.device(device)
        B = len(seeds)
        self.u = torch.empty(B, NOISE_BLOCK, n_uniform)
        self.n = torch.empty(B, NOISE_BLOCK, n_normal)
        self.pos = torch.zeros(B, dtype=torch.long)
        self.gens = [torch.Generator() for _ in range(B)]
        self.reseed(range(B), seeds)

    def reseed(self, idx: Sequence[int], seeds: Sequence[int]) -> None:
        """Restart the streams of dreams ``idx`` from ``seeds``."""
        for i, s in zip(idx, seeds, strict=True):
            self.gens[i].manual_seed(int(s))
            self._refill(int(i))

    def _refill(self, i: int) -> None:
        g = self.gens[i]
        self.u[i] = torch.rand(NOISE_BLOCK, self.U, generator=g)
        self.n[i] = torch.randn(NOISE_BLOCK, self.N, generator=g)
        self.pos[i] = 0

    def keep(self, idx: Tensor) -> None:
        """Keep only the streams of rows ``idx`` (1-D), in that order; each goes on as before."""
        i = idx.cpu()
        self.u, self.n, self.pos = self.u[i], self.n[i], self.pos[i]
        self.gens = [self.gens[j] for j in i.tolist()]

    def draw(self) -> tuple[Tensor, Tensor]:
        for i in (self.pos == NOISE_BLOCK).nonzero().flatten().tolist():
            self._refill(i)
        rows = torch.arange(len(self.pos))
        u, n = self.u[rows, self.pos], self.n[rows, self.pos]
        self.pos += 1
        return u.to(self.device), n.to(self.device)


class Dreamer:
    """B dreams of one M stepping together (the core of ``dream`` and of the controller's
    DreamEnv).

    ``reset(z0)`` starts dreams from real latents with a zero LSTM state; ``step(a)`` feeds
    [z_t, a_t] and samples z_{t+1}. ``z`` (B, Z) is the current latent and ``h`` (B, H) the
    LSTM output after the last step (zeros after a reset): the controller's [z, h].
    ``commit`` fixes the component of every step (an int, or (B,) per dream). ``dropout`` p > 0
    (Dropout's Dream Land) drops each of the H units of the LSTM output that M's heads read with
    probability p (the rest scaled by 1 / (1 - p)), one mask per dream, drawn from its seed when
    it (re)starts and kept for the whole dream: every dream is a slightly different M. The LSTM
    state and ``h`` (the controller's input) are not masked.
    """

    def __init__(
        self,
        model: MDNRNN,
        seeds: Sequence[int],
        tau_pi: float = 1.0,
        tau_sigma: float = 0.01,
        commit: int | Tensor | None = None,
        dropout: float = 0.0,
    ) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.model, self.dropout = model, dropout
        self.device = next(model.parameters()).device
        self.tau_pi, self.tau_sigma = tau_pi, tau_sigma
        self.commit = commit
        arch = model.arch
        self.B, self.Z = len(seeds), arch.latent_dim
        n_u = 1 if arch.mixture == "shared" else arch.latent_dim
        self.noise = RandomStreams([stream_seed(s, 0, 0) for s in seeds], n_u, self.Z, self.device)
        self.z = torch.zeros(self.B, self.Z, device=self.device)
        self.state = model.initial_state(self.B, self.device)
        self.h_mask: Tensor | None = None  # (B, H) with dropout, else None
        if dropout > 0:
            self.h_mask = torch.empty(self.B, arch.hidden, device=self.device)
            self._draw_masks(range(self.B), seeds)

    def _draw_masks(self, idx: Sequence[int], seeds: Sequence[int]) -> None:
        """Dropout masks of dreams ``idx`` from their ``seeds`` (stream 5 of each)."""
        H, keep = self.model.arch.hidden, 1.0 - self.dropout
        for i, s in zip(idx, seeds, strict=True):
            g = torch.Generator().manual_seed(stream_seed(s, 0, 5))
            self.h_mask[int(i)] = ((torch.rand(H, generator=g) < keep).float() / keep).to(
                self.device
            )

    @property
    def h(self) -> Tensor:
        """(B, H) LSTM output of the last step."""
        return self.state[0][0]

    def reset(self, z0: Tensor, idx: Tensor | None = None, seeds: Sequence[int] | None = None):
        """Start dreams ``idx`` (all if None) from z0 (len(idx), Z) with a zero LSTM state;
        with ``seeds``, their random streams restart too."""
        idx = torch.arange(self.B, device=self.device) if idx is None else idx.to(self.device)
        self.z[idx] = z0.to(self.device, torch.float32)
        for s in self.state:
            s[:, idx] = 0.0
        if seeds is not None:
            self.noise.reseed(idx.tolist(), [stream_seed(s, 0, 0) for s in seeds])
            if self.h_mask is not None:
                self._draw_masks(idx.tolist(), seeds)

    def keep(self, idx: Tensor) -> None:
        """Keep only dreams ``idx`` (1-D), in that order; each goes on exactly as before."""
        idx = idx.to(self.device)
        self.z = self.z[idx]
        self.state = tuple(s[:, idx] for s in self.state)
        self.noise.keep(idx)
        if self.h_mask is not None:
            self.h_mask = self.h_mask[idx]
        if isinstance(self.commit, Tensor) and self.commit.ndim > 0:
            self.commit = self.commit[idx]
        self.B = len(idx)

    @torch.no_grad()
    def teacher_force(self, z_real: Tensor, a_real: Tensor) -> None:
        """Feed W real steps: z_real (B, W + 1, Z), a_real (B, W, A). M reads z_0..z_{W-1}
        with their actions; the dream then continues from the real z_W."""
        W = a_real.shape[1]
        if W > 0:
            z_in, a_in = z_real[:, :W].to(self.device), a_real.to(self.device)
            _, self.state = self.model(z_in.float(), a_in.float(), self.state)
        self.z = z_real[:, W].to(self.device, torch.float32).clone()

    @torch.no_grad()
    def step(self, action: Tensor) -> tuple[MDNOutput, Tensor]:
        """action (B, A) -> (mixture over z_{t+1} with leading (B,), component (B,) or (B, Z));
        ``z`` becomes the sampled z_{t+1}."""
        out, self.state = self.model.step(self.z, action.to(self.device).float(), self.state)
        if self.h_mask is not None:  # the heads read the masked LSTM output
            out = self.model.heads(self.state[0][0] * self.h_mask)
        u, eps = self.noise.draw()
        u = u[:, 0] if self.model.arch.mixture == "shared" else u
        self.z, k = sample_next(
            out, self.tau_pi, self.tau_sigma, force_component=self.commit, noise=(u, eps)
        )
        return out, k


class RandomActions:
    """SPEC §5's dream actions for B dreams: a_0 ~ U(-1, 1); each later step keeps the
    previous action, or with probability ``p_change`` draws a new one from U(-1, 1)."""

    def __init__(self, seeds: Sequence[int], p_change: float = 0.1, device: str = "cpu"):
        self.p = p_change
        self.noise = RandomStreams([stream_seed(s, 0, 1) for s in seeds], 2, 0, device)
        self.a: Tensor | None = None

    def __call__(self) -> Tensor:
        """-> (B, 1) actions of this step."""
        u, _ = self.noise.draw()
        new = 2.0 * u[:, 1:2] - 1.0
        self.a = new if self.a is None else torch.where(u[:, :1] < self.p, new, self.a)
        return self.a


@dataclass
class DreamRecord:
    """Recorded dream steps (numpy). B dreams, T steps, Z latent, K components."""

    z: np.ndarray  # (B, T, Z) float32: z_{t+1}, the dreamed latent of step t
    pi: np.ndarray  # (B, T, K) float32 ("shared") or (B, T, Z, K): softmax(logits / tau_pi)
    component: np.ndarray  # (B, T) int64 or (B, T, Z): the component z_{t+1} came from
    action: np.ndarray  # (B, T, 1) float32: a_t
    done_prob: np.ndarray | None = None  # (B, T) float32 when M has a done head

    @property
    def dominant(self) -> np.ndarray:
        """(B, T) argmax of pi (the paper's "dominant" component)."""
        return self.pi.argmax(-1)


@torch.no_grad()
def dream(
    model: MDNRNN,
    z0: Tensor,
    steps: int,
    seeds: Sequence[int],
    warmup: int = 0,
    tau_pi: float = 1.0,
    tau_sigma: float = 0.01,
    commit: int | Tensor | None = None,
    p_change: float = 0.1,
    teacher: tuple[Tensor, Tensor] | None = None,
) -> DreamRecord:
    """Run len(seeds) dreams from z0 (B, Z): ``warmup`` discarded steps, then ``steps``
    recorded ones. ``teacher`` = (z_real (B, W + 1, Z), a_real (B, W, A)) first feeds W real
    steps (z0 is then ignored: the dream continues from z_real[:, W])."""
    B = len(seeds)
    if z0.shape != (B, model.arch.latent_dim):
        raise ValueError(f"z0 must be ({B}, {model.arch.latent_dim}), got {tuple(z0.shape)}")
    dreamer = Dreamer(model, seeds, tau_pi, tau_sigma, commit)
    dreamer.reset(z0)
    if teacher is not None:
        dreamer.teacher_force(*teacher)
    policy = RandomActions(seeds, p_change, dreamer.device)
    rec: dict[str, list[Tensor]] = {"z": [], "pi": [], "component": [], "action": [], "done": []}
    for t in range(warmup + steps):
        a = policy()
        out, k = dreamer.step(a)
        if t < warmup:
            continue
        rec["z"].append(dreamer.z)
        rec["pi"].append(mixture_weights(out, tau_pi))
        rec["component"].append(k)
        rec["action"].append(a)
        if out.done_logit is not None:
            rec["done"].append(torch.sigmoid(out.done_logit))

    def stack(key: str) -> np.ndarray:
        return torch.stack(rec[key], 1).cpu().numpy()

    return DreamRecord(
        z=stack("z"),
        pi=stack("pi"),
        component=stack("component"),
        action=stack("action"),
        done_prob=stack("done") if rec["done"] else None,
    )


@torch.no_grad()
def decode(
    vae: VAE, z: np.ndarray | Tensor, batch_size: int = 256, dtype: type = np.float32
) -> np.ndarray:
    """Latents (..., Z) -> frames (..., 64, 64, 3): float32 in [0, 1], or with
    ``dtype=np.uint8`` rounded to uint8 as ``to_uint8`` does (a quarter of the memory: dream
    videos). Decoded in batches into one array allocated up front, so the peak memory is the
    frames and one batch; the last batch padded (``pad_rows``)."""
    if dtype not in (np.float32, np.uint8):
        raise ValueError(f"decode: dtype must be np.float32 or np.uint8, got {dtype}")
    z = torch.as_tensor(z, dtype=torch.float32)
    lead, Z = z.shape[:-1], z.shape[-1]
    flat = z.reshape(-1, Z)
    device = next(vae.parameters()).device
    out, as_uint8 = np.empty((len(flat), 64, 64, 3), dtype), dtype == np.uint8
    for i in range(0, len(flat), batch_size):
        part = flat[i : i + batch_size]
        x = vae.decode(pad_rows(part, batch_size).to(device))[: len(part)].float().cpu()
        out[i : i + len(x)] = tensor_to_frames(x) if as_uint8 else x.permute(0, 2, 3, 1).numpy()
    return out.reshape(*lead, 64, 64, 3)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float frames (..., H, W, 3) in [0, 1] -> uint8, rounded (as ``tensor_to_frames``)."""
    lead = frames.shape[:-3]
    x = torch.from_numpy(frames.reshape(-1, *frames.shape[-3:])).permute(0, 3, 1, 2)
    return tensor_to_frames(x).reshape(*lead, *frames.shape[-3:])
