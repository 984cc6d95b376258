"""One person's dream: M dreams one step per call, V draws it, the person (or C) steers.

``PlayModels`` holds what every player shares (V, one M, the run's controller if it has one,
the start latents), loaded once; ``PlaySession`` is one player's state: M's LSTM state and
latent, the temperature, the committed component, the score and the history of the
play-through (for ``record``). With ``real=True`` the same actions also drive a real ViZDoom
episode, and the dream starts from V's encoding of that episode's first frame, so a person can
compare dream and game side by side.

Shapes: frames (64, 64, 3) uint8; pi (K,) float32; z (Z,). Actions are World Models' one
number a in [-1, 1]: a < -1/3 presses MOVE_LEFT, a > 1/3 MOVE_RIGHT (``env.action_to_buttons``).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdnworld import env as game  # the game's names load vizdoom on first use only
from mdnworld.checkpoints import StartBank, cached_mdnrnn, cached_vae
from mdnworld.control.evaluate import load_controller
from mdnworld.control.realgame import controller_for
from mdnworld.dreams.engine import Dreamer, decode
from mdnworld.dreams.videos import dream_video_frames, write_dream_video
from mdnworld.errors import ConfigError
from mdnworld.layout import RunLayout
from mdnworld.models.controller import Controller
from mdnworld.models.mdnrnn import MDNRNN, mixture_weights
from mdnworld.models.vae import VAE, frames_to_tensor

KEYS = {"left": -1.0, "none": 0.0, "right": 1.0}
"""The keys a player presses -> the action a (MOVE_LEFT, stand still, MOVE_RIGHT)."""


def key_of(a: float) -> str:
    """The key whose button action ``a`` presses (``env.action_to_buttons``)."""
    left, right = game.action_to_buttons(a)
    return "left" if left else "right" if right else "none"


@dataclass
class PlayModels:
    """What all players of one run share: V, M ``model_index``, the run's controller (or
    None) and where dreams start. Loaded once (read-only, safe across threads)."""

    run: RunLayout
    model_index: int
    vae: VAE
    mdnrnn: MDNRNN
    starts: StartBank
    controller: Controller | None = None

    @classmethod
    def from_run(cls, run_dir: Path | str, model_index: int = 0) -> PlayModels:
        run = RunLayout(run_dir)
        if model_index not in run.rnn_indices():
            raise ConfigError(
                f"{run.rnn_model(model_index)}: no M {model_index} in {run_dir} "
                f"(it has {run.rnn_indices() or 'none'})"
            )
        mdnrnn = cached_mdnrnn(run_dir, model_index, "cpu")
        if mdnrnn.arch.mixture != "shared":
            raise ConfigError(f"{run.rnn_model(model_index)}: play needs the shared mixture")
        controller = None
        if run.controller_weights().exists():
            controller = controller_for(mdnrnn, load_controller(run_dir)[0])
        starts = StartBank.from_run(run_dir)
        return cls(run, model_index, cached_vae(run_dir, "cpu"), mdnrnn, starts, controller)

    @property
    def n_components(self) -> int:
        return self.mdnrnn.arch.n_components


@dataclass
class History:
    """The recorded play-through: frames (T, 64, 64, 3), pi (T, K), component (T,), key (T,)."""

    frames: list[np.ndarray] = field(default_factory=list)
    pi: list[np.ndarray] = field(default_factory=list)
    component: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class PlaySession:
    """One player's dream. ``restart()`` starts it, ``step(key)`` advances it one step and
    returns ``view()``: what the page shows. Not thread-safe: the server holds ``lock``."""

    def __init__(self, models: PlayModels, seed: int = 0, real: bool = False) -> None:
        self.models, self.real = models, real
        self.id = secrets.token_hex(4)
        self.lock = threading.Lock()
        self.rng = np.random.default_rng(seed)
        self.tau = 1.0
        self.commit: int | None = None
        self.deaths = True
        self.env: Any = None
        self.recordings = 0
        self.restart()

    # --- settings ---
    def set(
        self,
        tau: float | None = None,
        commit: int | None | str = "keep",
        deaths: bool | None = None,
    ) -> None:
        """Temperature tau (World Models': pi's logits / tau, sigma * sqrt(tau)), the
        committed component (an int in [0, K) or None = free), and whether M's done head may
        end the dream (``deaths``; off, only the 2100-step cap ends it: for exploring)."""
        if deaths is not None:
            if not isinstance(deaths, bool):
                raise ConfigError(f"deaths must be true or false, got {deaths!r}")
            self.deaths = deaths
        if tau is not None:
            if not 0.05 <= tau <= 3.0:
                raise ConfigError(f"tau must be in [0.05, 3], got {tau}")
            self.tau = float(tau)
        if commit != "keep":
            K = self.models.n_components
            if commit is not None and not (isinstance(commit, int) and 0 <= commit < K):
                raise ConfigError(f"commit must be null or an int in [0, {K}), got {commit!r}")
            self.commit = commit
        self.dreamer.tau_pi = self.dreamer.tau_sigma = self.tau
        self.dreamer.commit = self.commit

    # --- the dream ---
    @torch.no_grad()
    def restart(self, real: bool | None = None) -> dict[str, Any]:
        """A new dream from a random real start frame (or, with ``real``, from the real
        game's first frame of a new episode)."""
        self.real = self.real if real is None else real
        seed = int(self.rng.integers(0, 2**31 - 1))
        self.dreamer = Dreamer(self.models.mdnrnn, [seed], self.tau, self.tau, self.commit)
        self.real_frame: np.ndarray | None = None
        self.real_done = False
        if self.real:
            if self.env is None:
                self.env = game.TakeCoverEnv()  # starts a game: on demand
            obs, _ = self.env.reset(seed=seed)
            self.real_frame = obs
            z0 = self.models.vae.encode(frames_to_tensor(obs[None]))[0]
        else:
            z0 = self.models.starts.sample(1, 0, self.rng).z
        self.dreamer.reset(z0)
        self.t, self.done, self.p_death = 0, False, 0.0
        self.pi = np.full(self.models.n_components, 1 / self.models.n_components, np.float32)
        self.component = -1
        self.frame = self._draw()
        self.history = History()
        return self.view()

    def _draw(self) -> np.ndarray:
        return decode(self.models.vae, self.dreamer.z, dtype=np.uint8)[0]

    @torch.no_grad()
    def action(self, key: str | None) -> float:
        """The action of this step: the key's, or (key None) the run's controller's."""
        if key is not None:
            if key not in KEYS:
                raise ConfigError(f"key must be one of {list(KEYS)} or null, got {key!r}")
            return KEYS[key]
        if self.models.controller is None:
            raise ConfigError(f"{self.models.run.root}: no trained controller to play")
        return float(self.models.controller(self.dreamer.z, self.dreamer.h)[0, 0])

    @torch.no_grad()
    def step(self, key: str | None = "none") -> dict[str, Any]:
        """One dream step with ``key`` ("left", "right", "none"; None = the controller acts).
        A finished dream stays as it is until ``restart``."""
        if self.done:
            return self.view()
        a = self.action(key)
        out, k = self.dreamer.step(torch.tensor([[a]], dtype=torch.float32))
        self.pi = mixture_weights(out, self.tau)[0].numpy()
        self.component = int(k[0])
        if out.done_logit is not None:  # M's probability of death at this step: sampled
            self.p_death = float(torch.sigmoid(out.done_logit[0]))
        self.t += 1
        self.frame = self._draw()
        died = self.rng.random() < self.p_death  # drawn either way: the same dream on or off
        self.done = (self.deaths and died) or self.t >= game.MAX_STEPS  # the game's cap
        if self.real and not self.real_done:
            obs, _, term, trunc, _ = self.env.step(np.array([a], np.float32))
            self.real_frame, self.real_done = obs, bool(term or trunc)
        h = self.history
        h.frames.append(self.frame)
        h.pi.append(self.pi)
        h.component.append(self.component)
        h.keys.append(key_of(a))
        return self.view()

    def view(self) -> dict[str, Any]:
        """What the page shows: frame (64, 64, 3) uint8, pi (K,), the dominant and the sampled
        component, M's death probability, the score (steps survived), done, real frame."""
        return {
            "frame": self.frame,
            "pi": self.pi,
            "dominant": int(np.argmax(self.pi)),
            "component": self.component,
            "p_death": self.p_death,
            "score": self.t,
            "done": self.done,
            "tau": self.tau,
            "commit": self.commit,
            "deaths": self.deaths,
            "real_frame": self.real_frame,
            "real_done": self.real_done if self.real else None,
        }

    def record(self, suffix: str = ".mp4", fps: int = 25) -> Path:
        """Write the play-through so far (frames with live pi bars) to the run's ``play/``
        folder; returns the file."""
        h = self.history
        if not h.frames:
            raise ConfigError("nothing to record yet: play a few steps first")
        self.recordings += 1
        path = self.models.run.play_recording(f"play_{self.id}_{self.recordings}{suffix}")
        if path is None:
            raise ConfigError(f"format must be mp4 or gif, got {suffix!r}")
        title = f"play, model {self.models.model_index}"
        video = dream_video_frames(np.stack(h.frames), np.stack(h.pi), np.array(h.component), title)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_dream_video(path, video, fps)
        return path

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
