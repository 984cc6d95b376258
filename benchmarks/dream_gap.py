"""How dangerous is M's dream compared with the real game? Fixed policies in both, and the done
head's calibration on real held-out episodes.

    python benchmarks/dream_gap.py RUN_DIR [--model 0] [--episodes 16] [--rollouts 64] [--out F]

Policies: stand still (a = 0) and always right (a = tanh(3)). Each survives ``--rollouts`` dreams
at τ 1.0 and 1.15 (the controller's DreamEnv, starts = first frames of training episodes) and
``--episodes`` real games (seeds 2,000,000 + i). Then M reads held-out real episodes (teacher
forcing; an episode without a latent file goes through the run's V): mean predicted death
probability per step against the true rate, and the prediction one step before death. A dream
much safer than the game lets a controller score in the dream without learning to dodge.
Prints a table, writes --out (default benchmarks/results/dream_gap.json).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch

from mdnworld.checkpoints import load_latents, load_mdnrnn, load_vae
from mdnworld.control.realgame import PlayJob, play_job
from mdnworld.control.train import dream_fitness, dream_inputs
from mdnworld.data.episodes import load_episode
from mdnworld.io import atomic_write_json, read_json
from mdnworld.layout import RunLayout
from mdnworld.models.controller import ControllerArch
from mdnworld.models.vae import encode_frames

RESULTS = Path(__file__).parent / "results" / "dream_gap.json"


def policies(n_params: int) -> dict[str, np.ndarray]:
    right = np.zeros(n_params, np.float32)
    right[-1] = 3.0  # the bias: a = tanh(3) whatever z and h are
    return {"stand still": np.zeros(n_params, np.float32), "always right": right}


def _episode_mu(run: Path, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode i's mu (T, Z) and actions (T, 1): its latent file, or (a run made from shipped
    models, with the episodes linked in but not encoded) its frames through the run's V."""
    path = RunLayout(run).latent(i)
    if path.exists():
        d = load_latents(path)
        return d["mu"], d["actions"]
    ep = load_episode(RunLayout(run).episode(i))
    mu, _ = encode_frames(_vae(str(run)), ep.frames, 500, torch.device("cpu"))
    return mu, ep.actions


@functools.lru_cache(maxsize=1)
def _vae(run: str) -> torch.nn.Module:
    return load_vae(Path(run))[0]


@torch.no_grad()
def done_calibration(run: Path, model_index: int, n_episodes: int = 150) -> dict[str, float]:
    model, _ = load_mdnrnn(run, model_index, "cpu")
    val = read_json(RunLayout(run).rnn_split)["val"][:n_episodes]
    every, before_death = [], []
    for i in val:
        mu, actions = _episode_mu(run, i)
        out, _ = model(torch.from_numpy(mu)[None], torch.from_numpy(actions)[None])
        p = torch.sigmoid(out.done_logit[0]).numpy()  # p[t]: death at step t + 1
        every.append(p[:-1])
        before_death.append(p[-2])
    steps = sum(len(p) for p in every)
    return {
        "episodes": len(val),
        "true_rate": len(val) / steps,
        "mean_predicted": float(np.concatenate(every).mean()),
        "median_step_before_death": float(np.median(before_death)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--model", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--rollouts", type=int, default=64)
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, starts = dream_inputs(str(args.run), args.model, "cpu")
    arch = ControllerArch(model.arch.latent_dim, model.arch.hidden, model.arch.action_dim)
    rows = []
    for name, params in policies(arch.n_params).items():
        row = {"policy": name}
        for tau in (1.0, 1.15):
            fit = dream_fitness(model, starts, params[None], args.rollouts, tau, 2100, 0.5, seed=1)
            row[f"dream_tau_{tau}"] = float(fit[0])
        seeds = list(range(2_000_000, 2_000_000 + args.episodes))
        job = PlayJob(str(args.run), args.model, params, max_steps=2100, seeds=tuple(seeds))
        scores = [r["score"] for r in play_job(job)]
        row.update(real_mean=float(np.mean(scores)), real_std=float(np.std(scores)))
        rows.append(row)
        print(
            f"{name:<13} dream τ 1.0 {row['dream_tau_1.0']:6.0f}  "
            f" τ 1.15 {row['dream_tau_1.15']:6.0f}"
            f"   real {row['real_mean']:5.0f} ± {row['real_std']:.0f} ({args.episodes} episodes)"
        )
    calib = done_calibration(args.run, args.model)
    print(
        f"done head on {calib['episodes']} held-out real episodes: predicted "
        f"{calib['mean_predicted']:.4f} per step (true {calib['true_rate']:.4f}); "
        f"median {calib['median_step_before_death']:.3f} one step before death"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {"run": str(args.run), "model": args.model, "policies": rows, "done_head": calib}
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
