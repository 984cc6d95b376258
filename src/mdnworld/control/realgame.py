"""The World Models agent (V + M + C) in the real game.

Each step: V encodes the frame to z = mu, C acts on [z, h], the game advances one tic, and M
reads (z, a) to update h (h starts at zero, as in the dream). The score is the number of steps
survived (SPEC §1), at most ``max_steps``.

``play_job`` is what executors run: a job names the run directory, the M, the controller's
flat parameters and the episode seeds; the models are loaded once per worker process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdnworld.env.take_cover import TakeCoverEnv
from mdnworld.models.controller import Controller, ControllerArch
from mdnworld.models.mdnrnn import MDNRNN
from mdnworld.models.vae import VAE, frames_to_tensor, tensor_to_frames


@dataclass
class Agent:
    vae: VAE
    mdnrnn: MDNRNN
    controller: Controller

    @torch.no_grad()
    def play(
        self, env: TakeCoverEnv, seed: int, record: bool = False
    ) -> tuple[int, dict[str, np.ndarray] | None]:
        """One episode -> (score, None), or with ``record`` (score, {"frames" (T, 64, 64, 3)
        uint8, "recons" V's reconstructions (T, 64, 64, 3) uint8, "actions" (T,) float32})."""
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
        return score, {
            "frames": np.stack(rec["frames"]),
            "recons": np.stack(rec["recons"]),
            "actions": np.asarray(rec["actions"], np.float32),
        }


def controller_for(mdnrnn: MDNRNN, params: np.ndarray | list[float]) -> Controller:
    """A controller sized for M's latent and hidden sizes, with the flat ``params``."""
    arch = ControllerArch(mdnrnn.arch.latent_dim, mdnrnn.arch.hidden, mdnrnn.arch.action_dim)
    flat = torch.as_tensor(np.asarray(params, np.float32))
    return Controller(arch).set_flat(flat).eval()


@functools.lru_cache(maxsize=2)
def load_models(run_dir: str, model_index: int) -> tuple[VAE, MDNRNN]:
    """V and M ``model_index`` of a run, on the CPU (cached per process)."""
    from mdnworld.checkpoints import load_mdnrnn, load_vae

    return load_vae(Path(run_dir), "cpu")[0], load_mdnrnn(run_dir, model_index, "cpu")[0]


@functools.lru_cache(maxsize=1)
def cached_env(max_steps: int) -> TakeCoverEnv:
    """One real game per (worker) process, kept between jobs."""
    return TakeCoverEnv(max_steps=max_steps)


def play_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Executor job: {"run_dir", "model_index", "params" (list), "seeds" (list), "max_steps",
    "record" (bool)} -> one {"seed", "score"} per seed (+ "frames", "recons", "actions" with
    record).
    Runs on one thread, so a score depends only on the parameters and the seed."""
    torch.set_num_threads(1)
    vae, mdnrnn = load_models(str(job["run_dir"]), int(job["model_index"]))
    agent = Agent(vae, mdnrnn, controller_for(mdnrnn, job["params"]))
    env = cached_env(int(job["max_steps"]))
    results = []
    for seed in job["seeds"]:
        score, recorded = agent.play(env, int(seed), bool(job.get("record", False)))
        results.append({"seed": int(seed), "score": score, **(recorded or {})})
    return results


def seed_jobs(base: dict[str, Any], seeds: list[int], n_jobs: int) -> list[dict[str, Any]]:
    """Split ``seeds`` into at most n_jobs contiguous jobs (each a copy of ``base``)."""
    n = max(1, min(n_jobs, len(seeds)))
    return [{**base, "seeds": list(chunk)} for chunk in np.array_split(seeds, n) if len(chunk)]
