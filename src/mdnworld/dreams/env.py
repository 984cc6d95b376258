"""The controller's world: N dreams of an M with a done head as one batched environment."""

from __future__ import annotations

import torch
from torch import Tensor

from mdnworld.dreams.engine import Dreamer, RandomStreams, stream_seed
from mdnworld.models.mdnrnn import MDNRNN


class DreamEnv:
    """N dreams of an M with a done head as one vectorised environment (like Gymnasium's
    vector envs, in torch): the controller acts inside M's dream.

    Observation: ``(z (N, Z), h (N, H))``, the current dreamed latent and M's LSTM output, the
    controller's input. ``step(a)`` -> ``(obs, reward (N,), terminated (N,), truncated (N,))``:
    reward 1 for a step survived; terminated when M's done head says death; truncated after
    ``max_steps`` steps. ``done="sample"`` (default) draws death from Bernoulli(p) with p =
    sigmoid(done_logit), M's probability of death at the next step; ``done="threshold"`` ends
    the dream when p > ``done_threshold`` (a small M's done head is rarely that sure).
    Temperature ``tau`` is World Models': logits / tau and variance * tau. ``dropout`` (Dropout's
    Dream Land) gives each dream its own dropout mask on M's LSTM output (``Dreamer``).

    Dreams start from latents drawn from ``start_z`` (M, Z), e.g. mu of the first frame of every
    training episode. With ``autoreset`` a finished dream restarts at once from a new start (its
    returned obs is already the new one) and only finished dreams are touched; without it a
    finished dream stays finished (reward 0, still flagged) until ``reset()``.
    """

    def __init__(
        self,
        model: MDNRNN,
        start_z: Tensor,
        n: int,
        tau: float = 1.15,
        max_steps: int = 2100,
        done_threshold: float = 0.5,
        seed: int = 0,
        autoreset: bool = True,
        done: str = "sample",
        dropout: float = 0.0,
    ) -> None:
        if model.done is None:
            raise ValueError("DreamEnv needs an M with a done head (train-rnn --done-head)")
        if done not in ("sample", "threshold"):
            raise ValueError(f"done must be 'sample' or 'threshold', got {done!r}")
        self.done_mode = done
        self.model, self.n, self.seed = model, n, seed
        self.max_steps, self.done_threshold, self.autoreset = max_steps, done_threshold, autoreset
        self.dreamer = Dreamer(model, [0] * n, tau_pi=tau, tau_sigma=tau, dropout=dropout)
        self.device = self.dreamer.device
        self.death = RandomStreams([0] * n, 1, 0, self.device)  # uniforms for sampled deaths
        self.start_z = start_z.to(self.device, torch.float32)
        self.t = torch.zeros(n, dtype=torch.long, device=self.device)
        self.finished = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.episodes = torch.zeros(n, dtype=torch.long)  # resets per dream, for its seeds
        self.pick = torch.Generator().manual_seed(stream_seed(seed, 0, 2))  # which start

    @property
    def obs(self) -> tuple[Tensor, Tensor]:
        return self.dreamer.z, self.dreamer.h

    def _start(self, idx: Tensor) -> None:
        rows = torch.randint(len(self.start_z), (len(idx),), generator=self.pick)
        i = idx.cpu()
        # dream d's e-th episode: its own seed (streams 0-2 are taken, so 3 + e)
        seeds = [stream_seed(self.seed, int(d), 3 + int(self.episodes[d])) for d in i]
        self.episodes[i] += 1
        self.dreamer.reset(self.start_z[rows.to(self.device)], idx, seeds)
        self.death.reseed(i.tolist(), [stream_seed(s, 0, 4) for s in seeds])
        self.t[idx] = 0
        self.finished[idx] = False

    def keep(self, idx: Tensor) -> None:
        """Drop every dream but ``idx`` (1-D), in that order, so that finished dreams stop
        costing compute; each kept dream goes on exactly as before. Only without autoreset
        (a restarted dream's seed comes from its row)."""
        if self.autoreset:
            raise ValueError("DreamEnv.keep() needs autoreset=False")
        self.dreamer.keep(idx)
        self.death.keep(idx)
        idx = idx.to(self.device)
        self.t, self.finished = self.t[idx], self.finished[idx]
        self.episodes = self.episodes[idx.cpu()]
        self.n = len(idx)

    def reset(self) -> tuple[Tensor, Tensor]:
        """Start every dream anew; returns the observation."""
        self._start(torch.arange(self.n, device=self.device))
        return self.obs

    def step(self, action: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor, Tensor, Tensor]:
        alive = ~self.finished
        out, _ = self.dreamer.step(action)
        self.t += alive.long()
        p_death = torch.sigmoid(out.done_logit)
        u = self.death.draw()[0][:, 0]
        dies = u < p_death if self.done_mode == "sample" else p_death > self.done_threshold
        terminated = alive & dies
        truncated = alive & ~terminated & (self.t >= self.max_steps)
        reward = alive.float()
        self.finished |= terminated | truncated
        if self.autoreset and self.finished.any():
            self._start(self.finished.nonzero().flatten())
        return self.obs, reward, terminated, truncated
