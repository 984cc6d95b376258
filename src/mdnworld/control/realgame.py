"""The World Models agent (V + M + C) in the real game.

Each step: V encodes the frame to z = mu, C acts on [z, h], the game advances one tic, and M
reads (z, a) to update h (h starts at zero, as in the dream). The score is the number of steps
survived (SPEC §1), at most ``max_steps``.

``play_job`` is what executors run: a ``PlayJob`` names the run directory, the M, the
controller's flat parameters and the episode seeds; V and M come from the process's model cache
(``checkpoints.MODELS``: loaded once per worker, again only if retrained), the game from
``cached_env`` (one per worker).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, TypedDict, TypeVar

import numpy as np
import torch

from mdnworld.checkpoints import cached_mdnrnn, cached_vae
from mdnworld.control.executors import ControllerJob
from mdnworld.models.controller import Controller, ControllerArch
from mdnworld.models.mdnrnn import MDNRNN
from mdnworld.models.vae import VAE, frames_to_tensor, tensor_to_frames

if TYPE_CHECKING:  # the game loads on first use (cached_env), not on import
    from mdnworld.env.take_cover import TakeCoverEnv


@dataclass(frozen=True, eq=False)
class PlayJob(ControllerJob):
    """One executor job: the controller ``params`` (n,) plays one real episode per seed
    (``play_job``). Fields: ``run_dir``, ``model_index``, ``params`` (``ControllerJob``), then
    these."""

    max_steps: int
    """Episode cap: the highest possible score."""
    seeds: tuple[int, ...] = ()
    """Game seeds, one episode each, played in this order."""
    record: bool = False
    """Also return every step's frame and action (and, with ``decode``, V's reconstruction)."""
    decode: bool = True
    """With ``record``: V decodes every frame too (the evaluation videos; iterate needs none)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))


class Episode(TypedDict):
    """One played episode, as ``play_job`` returns it (the recorded arrays with ``record``)."""

    seed: int
    score: int
    frames: NotRequired[np.ndarray]  # (T, 64, 64, 3) uint8, the real frames
    recons: NotRequired[np.ndarray]  # (T, 64, 64, 3) uint8, V's reconstructions (``decode``)
    actions: NotRequired[np.ndarray]  # (T,) float32, C's actions


@dataclass
class Agent:
    vae: VAE
    mdnrnn: MDNRNN
    controller: Controller

    @torch.no_grad()
    def play(
        self, env: TakeCoverEnv, seed: int, record: bool = False, decode: bool = True
    ) -> tuple[int, dict[str, np.ndarray] | None]:
        """One episode -> (score, None), or with ``record`` (score, {"frames" (T, 64, 64, 3)
        uint8, "actions" (T,) float32, with ``decode`` "recons": V's reconstructions (T, 64,
        64, 3) uint8})."""
        obs, _ = env.reset(seed=seed)
        state = self.mdnrnn.initial_state(1)
        h = state[0][0]
        rec: dict[str, list] = {"frames": [], "recons": [], "actions": []}
        score = 0
        while True:
            mu, _ = self.vae.encode(frames_to_tensor(obs[None]))
            a = self.controller(mu, h)
            if record:
                rec["frames"].append(obs)
                if decode:
                    rec["recons"].append(tensor_to_frames(self.vae.decode(mu))[0])
                rec["actions"].append(float(a[0, 0]))
            obs, reward, terminated, truncated, _ = env.step(a[0].numpy())
            score += int(reward)
            _, state = self.mdnrnn.step(mu, a, state)
            h = state[0][0]
            if terminated or truncated:
                break
        if not record:
            return score, None
        out = {"frames": np.stack(rec["frames"]), "actions": np.asarray(rec["actions"], np.float32)}
        return score, out | ({"recons": np.stack(rec["recons"])} if decode else {})


def controller_for(mdnrnn: MDNRNN, params: np.ndarray | Sequence[float]) -> Controller:
    """A controller sized for M's latent and hidden sizes, with the flat ``params``."""
    arch = ControllerArch(mdnrnn.arch.latent_dim, mdnrnn.arch.hidden, mdnrnn.arch.action_dim)
    flat = torch.as_tensor(np.asarray(params, np.float32))
    return Controller(arch).set_flat(flat).eval()


def load_models(run_dir: Path | str, model_index: int) -> tuple[VAE, MDNRNN]:
    """V and M ``model_index`` of a run, on the CPU (from ``checkpoints.MODELS``)."""
    return cached_vae(run_dir, "cpu"), cached_mdnrnn(run_dir, model_index, "cpu")


@functools.lru_cache(maxsize=1)
def cached_env(max_steps: int) -> TakeCoverEnv:
    """One real game per (worker) process, kept between jobs (it holds no run data)."""
    from mdnworld.env.take_cover import TakeCoverEnv

    return TakeCoverEnv(max_steps=max_steps)


def play_job(job: PlayJob) -> list[Episode]:
    """Run a ``PlayJob``: one ``Episode`` per seed, in the job's order.
    Runs on one thread, so a score depends only on the parameters and the seed."""
    torch.set_num_threads(1)
    vae, mdnrnn = load_models(job.run_dir, job.model_index)
    agent = Agent(vae, mdnrnn, controller_for(mdnrnn, job.params))
    env = cached_env(job.max_steps)
    results: list[Episode] = []
    for seed in job.seeds:
        score, recorded = agent.play(env, seed, job.record, job.decode)
        row: Episode = {"seed": seed, "score": score}
        row.update(recorded or {})
        results.append(row)
    return results


J = TypeVar("J")


def split_seeds(seeds: Sequence[int], n_jobs: int) -> list[tuple[int, ...]]:
    """``seeds`` in at most ``n_jobs`` contiguous, non-empty, near-equal parts."""
    n = max(1, min(n_jobs, len(seeds)))
    return [
        tuple(int(s) for s in part) for part in np.array_split(np.asarray(seeds), n) if len(part)
    ]


def seed_jobs(base: J, seeds: Sequence[int], n_jobs: int) -> list[J]:
    """Split ``seeds`` into at most ``n_jobs`` contiguous jobs, each a copy of the dataclass
    job ``base`` (a ``PlayJob``, or any job with a ``seeds`` field) with its part as ``seeds``."""
    return [dataclasses.replace(base, seeds=part) for part in split_seeds(seeds, n_jobs)]
