"""Benchmark step 1: raw ViZDoom steps/s against `generate` with 1 and 2 workers.

    python benchmarks/generate.py [--episodes 100] [--repeats 3] [--truth-only]

Raw = the same scenario and resolution in one process, random buttons from the same random
policy and seeds, no preprocessing, no storage (with and without reading the frame via
get_state()). `generate` = the real command (policy, preprocessing, atomic episode files,
manifest), reported in steady state and as wall time with the pool start-up. Prints a table
and writes benchmarks/results/generate.json, with the random policy's episode length (and two
variants that explain it) next to World Models' 210 ± 108.

Truth (``generate --truth``): µs per step of one worker's loop (``play`` on a raw-screen
env with the preprocessing thread, the same seeds) with truth off and on, and ``generate``'s
steady state with truth on; ``--truth-only`` measures just the loop and writes
benchmarks/results/generate_truth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mdnworld.config import GenerateConfig
from mdnworld.data.generate import generate, play, to_episode
from mdnworld.device import cpu_model
from mdnworld.env import RandomRepeatPolicy, TakeCoverEnv, action_to_buttons, make_game
from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout

RESULTS = Path(__file__).parent / "results" / "generate.json"
TRUTH_RESULTS = RESULTS.with_name("generate_truth.json")


def raw_steps_per_s(episodes: int, resolution: str, read_frame: bool) -> float:
    """The bare game loop, driven by the same policy and seeds as `generate` (so the same
    game states are rendered), optionally reading each frame's buffer."""
    game = make_game(resolution)
    steps, t0 = 0, time.perf_counter()
    for seed in range(episodes):
        policy = RandomRepeatPolicy(seed)
        game.set_seed(seed)
        game.new_episode()
        while not game.is_episode_finished() and steps < 10**9:
            if read_frame:
                game.get_state().screen_buffer  # noqa: B018 - the read is what we time
            game.make_action(action_to_buttons(policy()[0]), 1)
            steps += 1
    rate = steps / (time.perf_counter() - t0)
    game.close()
    return rate


def loop_us_per_step(episodes: int, resolution: str, truth: bool) -> float:
    """µs per step of a worker's loop: game and policy, and on its thread the preprocessing
    and truth arrays of the episode before (as ``generate``'s workers, without the file)."""
    from concurrent.futures import ThreadPoolExecutor

    env = TakeCoverEnv(resolution=resolution, preprocess=False, truth=truth)
    steps, t0, prev = 0, time.perf_counter(), None
    with ThreadPoolExecutor(1) as threads:
        for seed in range(episodes):
            played = play(env, seed)
            steps += len(played)
            if prev is not None:
                prev.result()
            prev = threads.submit(to_episode, played, env)
    dt = time.perf_counter() - t0
    env.close()
    return 1e6 * dt / steps


def truth_cost(episodes: int, resolution: str, repeats: int) -> dict:
    """The loop's µs per step with truth off and on, interleaved; medians."""
    reps: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(repeats):
        for key in reps:
            reps[key].append(loop_us_per_step(episodes, resolution, key == "on"))
    off, on = (float(np.median(reps[k])) for k in ("off", "on"))
    print(f"worker loop, truth off: {off:6.1f} µs/step; on: {on:6.1f} µs/step ({on - off:+.1f})")
    return {"us_per_step_off": off, "us_per_step_on": on, "extra_us_per_step": on - off,
            "ratio_on_vs_off": on / off, "all_measurements": reps}  # fmt: skip


def lengths_with(episodes: int, resolution: str, variant: str) -> list[int]:
    """Episode lengths of policy variants, to explain the random policy's score."""
    game = make_game(resolution)
    rng = np.random.default_rng(0)
    lengths = []
    for seed in range(episodes):
        policy = RandomRepeatPolicy(seed)
        game.set_seed(seed)
        game.new_episode()
        t = 0
        while not game.is_episode_finished() and t < 2100:
            if variant == "original_mapping":  # World Models' code: "still" pressed MOVE_RIGHT
                a = policy()[0]
                buttons = [int(a < -1 / 3), int(a >= -1 / 3)]
            else:  # "uniform_per_tic": left / still / right uniformly at every tic
                b = int(rng.integers(0, 3))
                buttons = [int(b == 0), int(b == 2)]
            game.make_action(buttons, 1)
            t += 1
        lengths.append(t)
    game.close()
    return lengths


def generate_rate(
    episodes: int, workers: int, truth: bool = False
) -> tuple[float, float, list[int]]:
    """(wall-clock steps/s including pool start-up, steady-state steps/s, lengths)."""
    stamps: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GenerateConfig(episodes=episodes, workers=workers, truth=truth)
        t0 = time.perf_counter()
        s = generate(
            tmp,
            cfg,
            progress=lambda e: stamps.append((time.perf_counter(), e["length"])),
            log=lambda m: None,
        )
        dt = time.perf_counter() - t0
        man = json.loads(RunLayout(tmp).episode_manifest.read_text())
    # steady state: from the first `workers` finished episodes to the last one
    head = stamps[workers - 1][0]
    steady = sum(n for _, n in stamps[workers:]) / (stamps[-1][0] - head)
    return s.frames / dt, steady, [e["length"] for e in man["episodes"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100, help="episodes per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resolution", default=GenerateConfig.resolution)
    ap.add_argument("--truth-only", action="store_true", help="only the truth on/off loop cost")
    ap.add_argument("--out", type=Path, help=f"default: {RESULTS.name} / {TRUTH_RESULTS.name}")
    args = ap.parse_args()
    if args.truth_only:
        result = {"resolution": args.resolution, "episodes_per_run": args.episodes,
                  "repeats": args.repeats, **truth_cost(args.episodes, args.resolution,
                                                          args.repeats)}  # fmt: skip
        _write(args.out or TRUTH_RESULTS, result)
        return

    keys = ("raw_nf", "raw", "g1", "g1s", "g2", "g2s", "g1t")
    reps: dict[str, list[float]] = {k: [] for k in keys}
    lengths: list[int] = []
    for _ in range(args.repeats):  # interleaved, medians: this VM's speed drifts by +-20 %
        reps["raw_nf"].append(raw_steps_per_s(args.episodes, args.resolution, read_frame=False))
        reps["raw"].append(raw_steps_per_s(args.episodes, args.resolution, read_frame=True))
        g1, g1s, lengths = generate_rate(args.episodes, 1)
        g2, g2s, _ = generate_rate(args.episodes, 2)
        reps["g1t"].append(generate_rate(args.episodes, 1, truth=True)[1])
        reps["g1"].append(g1)
        reps["g1s"].append(g1s)
        reps["g2"].append(g2)
        reps["g2s"].append(g2s)
    med = {k: float(np.median(v)) for k, v in reps.items()}
    raw_nf, raw, g1, g2 = med["raw_nf"], med["raw"], med["g1s"], med["g2s"]
    lengths = np.array(lengths)

    rows = [
        ("raw vizdoom, make_action only", raw_nf, raw_nf / raw),
        ("raw vizdoom, make_action + get_state", raw, 1.0),
        ("generate, 1 worker (steady state)", g1, g1 / raw),
        ("generate, 2 workers (steady state)", g2, g2 / raw),
        ("generate --truth, 1 worker (steady state)", med["g1t"], med["g1t"] / raw),
        ("generate, 1 worker (wall, with start-up)", med["g1"], med["g1"] / raw),
        ("generate, 2 workers (wall, with start-up)", med["g2"], med["g2"] / raw),
    ]
    print(f"{'what':44s} {'steps/s':>10s} {'x raw':>7s}")
    for name, rate, ratio in rows:
        print(f"{name:44s} {rate:10.0f} {ratio:7.2f}")
    result = {
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model()},
        "resolution": args.resolution,
        "episodes_per_run": args.episodes,
        "repeats": args.repeats,
        "all_measurements": reps,
        "generate_1_worker_wall_steps_per_s": med["g1"],
        "generate_2_workers_wall_steps_per_s": med["g2"],
        "raw_steps_per_s_no_frame": raw_nf,
        "raw_steps_per_s": raw,
        "generate_1_worker_steps_per_s": g1,
        "generate_2_workers_steps_per_s": g2,
        "generate_1_worker_truth_steps_per_s": med["g1t"],
        "truth": truth_cost(args.episodes, args.resolution, args.repeats),
        "ratio_1_worker_vs_raw_no_frame": g1 / raw_nf,
        "ratio_1_worker_vs_raw": g1 / raw,
        "ratio_2_vs_1_workers": g2 / g1,
        "targets": {"ratio_1_worker_vs_raw": 0.9, "ratio_2_vs_1_workers": 1.7},
        "random_policy_episode_length": {
            "episodes": int(len(lengths)),
            "mean": float(lengths.mean()),
            "std": float(lengths.std()),
            "world_models_reference": "210 ± 108",
        },
    }
    variants = {
        "spec_policy": lengths,
        "original_mapping": np.array(
            lengths_with(args.episodes, args.resolution, "original_mapping")
        ),
        "uniform_per_tic": np.array(
            lengths_with(args.episodes, args.resolution, "uniform_per_tic")
        ),
    }
    result["random_policy_variants"] = {
        k: {"episodes": len(v), "mean": float(v.mean()), "std": float(v.std())}
        for k, v in variants.items()
    }
    for k, v in variants.items():
        print(f"episode length, {k:18s}: {v.mean():6.1f} ± {v.std():5.1f} over {len(v)} episodes")
    print(f"1 worker / raw (with frame read): {g1 / raw:.2f}  (target >= 0.9)")
    print(f"1 worker / raw (make_action only): {g1 / raw_nf:.2f}")
    print(f"2 workers / 1 worker: {g2 / g1:.2f}  (target >= 1.7)")
    print(
        f"random policy: {lengths.mean():.1f} ± {lengths.std():.1f} steps over {len(lengths)} "
        "episodes (World Models: 210 ± 108)"
    )
    _write(args.out or RESULTS, result)


def _write(out: Path, result: dict) -> None:
    atomic_write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
