"""Benchmark steps 2-3: VAE training throughput, data-loading overhead, encode speed, memory.

    python benchmarks/vae.py [--episodes 60] [--steps 40]

Measures, on real generated episodes (cached in ~/.cache/mdnworld-bench):
- the peer's bare fp32 loop (World Models' VAE, loss and Adam: benchmarks/peers.py), the
  reference of issue 20's target (train_vae >= 1.4x it);
- `train_vae` samples/s at batch 100 (the real trainer: streamed frames, logging, checkpoints)
  against a bare PyTorch loop over in-memory tensors of the same model, loss and optimizer;
- the same bare loop under bf16 autocast (does bf16 pay off on this CPU?);
- encode frames/s;
- peak RSS of the trainer (in a child process) on a small and a large data set: flat memory
  means the data set is streamed, not loaded;
- the projected wall time of the paper-scale run (2000 episodes, 10 epochs).
Prints a table and writes --out (default benchmarks/results/vae.json; the record names the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mdnworld.config import GenerateConfig, VAEConfig
from mdnworld.data.episodes import episode_files, load_episode
from mdnworld.data.generate import generate
from mdnworld.device import cpu_flags, cpu_has_native_bf16, cpu_model, resolve_amp
from mdnworld.io import atomic_write_json
from mdnworld.layout import RunLayout
from mdnworld.logs import read_log
from mdnworld.models.vae import VAE, VAEArch, encode_frames, frames_to_tensor, vae_loss

sys.path.insert(0, str(Path(__file__).parent))
import peers  # noqa: E402  (benchmarks/ is not a package)

RESULTS = Path(__file__).parent / "results" / "vae.json"
CACHE = Path.home() / ".cache" / "mdnworld-bench"


def data(episodes: int) -> Path:
    run = CACHE / f"episodes_{episodes}"
    generate(run, GenerateConfig(episodes=episodes), log=lambda m: None)
    return run


def rate(step: Callable[[], float], steps: int, warmup: int, batch: int = 100) -> float:
    """Samples/s of ``step`` (one batch per call): median over ``steps`` timed calls."""
    times = []
    for i in range(steps + warmup):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


def bare_loop(x_all: torch.Tensor, amp: str) -> Callable[[], float]:
    """Our V in a bare loop: in-memory tensor, random batches of 100, Adam, the same loss, on
    the tensor's device."""
    torch.manual_seed(0)
    device = x_all.device
    model = VAE(VAEArch()).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        x = x_all[torch.randint(0, len(x_all), (100,), device=device)]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits, mu, logvar = model(x)
        loss, _, _ = vae_loss(logits, x, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def trainer_rate(run: Path, steps: int, device: str = "cpu", log_every: int = 1) -> float:
    """Median samples/s that the real trainer logs (a row every ``log_every`` steps; each
    row's rate covers the steps since the last), on ``device``."""
    shutil.rmtree(RunLayout(run).vae_dir, ignore_errors=True)
    cmd = [
        sys.executable,
        "-c",
        (
            "import sys; from pathlib import Path; from mdnworld.config import VAEConfig;"
            "from mdnworld.train.vae import train_vae;"
            f"cfg = VAEConfig(log_every={log_every}, device={device!r}, val_frames=100);"
            f"train_vae(Path({str(run)!r}), cfg,"
            f" log=lambda m: None, stop_after_steps={steps})"
        ),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    rows = [r for r in read_log(RunLayout(run).vae_log) if "train/samples_per_s" in r]
    return float(np.median([r["train/samples_per_s"] for r in rows[3:]]))


def peak_rss_mb(run: Path, steps: int) -> float:
    """Peak RSS of a child process running the real trainer for ``steps`` steps."""
    shutil.rmtree(RunLayout(run).vae_dir, ignore_errors=True)
    code = (
        "import resource; from pathlib import Path; from mdnworld.config import VAEConfig;"
        "from mdnworld.train.vae import train_vae;"
        f"train_vae(Path({str(run)!r}), VAEConfig(device='cpu'), log=lambda m: None,"
        f" stop_after_steps={steps});"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3, help="peer/ours/trainer rounds")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"JSON to write (default: {RESULTS})")
    args = ap.parse_args()
    # The bare loops run here with glibc's default heap, as the peer's code and a loop someone
    # writes would; the trainer (a child process) sets itself up with device.prepare_cpu
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)

    small, large = data(10), data(args.episodes)
    files = episode_files(large)
    lengths = [len(load_episode(p)) for p in files]
    frames = np.concatenate([load_episode(p).frames for p in files[:10]])

    x_all = frames_to_tensor(frames)
    amp = resolve_amp(torch.device("cpu"), "auto")
    # This machine's speed drifts by up to 1.6x over tens of seconds (a shared host): each
    # round times the four side by side, the ratios are taken within a round, and the table
    # gives the medians over the rounds.
    rounds = []
    for _ in range(args.rounds):
        rounds.append(
            {
                "peer": rate(peers.vae_loop(x_all), args.steps, 3),
                "bare": rate(bare_loop(x_all, "none"), args.steps, 3),
                "bare_bf16": rate(bare_loop(x_all, "bf16"), args.steps, 3),
                "trainer": trainer_rate(large, args.steps),
            }
        )
        print(json.dumps(rounds[-1]), flush=True)

    def median(f: Callable[[dict], float]) -> float:
        return float(np.median([f(r) for r in rounds]))

    peer, bare, bare_bf16, trainer = (median(lambda r, k=k: r[k]) for k in rounds[0])
    vs_peer, vs_bare = (
        median(lambda r: r["trainer"] / r["peer"]),
        median(lambda r: r["trainer"] / r["bare"]),
    )
    bf16_gain = median(lambda r: r["bare_bf16"] / r["bare"])
    model = VAE(VAEArch()).eval()
    t0 = time.perf_counter()
    encode_frames(model, frames[:2000], 500, torch.device("cpu"))
    encode_rate = 2000 / (time.perf_counter() - t0)
    rss_small = peak_rss_mb(small, 15)
    rss_large = peak_rss_mb(large, 15)

    mean_len = float(np.mean(lengths))
    paper_frames = 2000 * mean_len * 0.85
    paper_hours = paper_frames * 10 / trainer / 3600
    data_mb = sum(p.stat().st_size for p in files) / 1e6
    rows = [
        ("peer's bare loop (World Models), fp32", f"{peer:.0f} samples/s"),
        ("our bare loop, in-memory tensors, fp32", f"{bare:.0f} samples/s"),
        ("our bare loop, bf16 autocast", f"{bare_bf16:.0f} samples/s ({bf16_gain:.2f}x)"),
        (
            f"train_vae (streamed, amp auto = {amp})",
            f"{trainer:.0f} samples/s ({vs_bare:.2f}x bare, {vs_peer:.2f}x peer; target 1.4x)",
        ),
        ("encode", f"{encode_rate:.0f} frames/s"),
        (f"peak RSS, train on {len(episode_files(small))} episodes", f"{rss_small:.0f} MB"),
        (f"peak RSS, train on {len(files)} episodes ({data_mb:.0f} MB)", f"{rss_large:.0f} MB"),
        ("projected paper run (2000 ep, 10 epochs)", f"{paper_hours:.1f} h on this machine"),
    ]
    for name, val in rows:
        print(f"{name:50s} {val}")
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": threads,
            "torch": torch.__version__,
            "native_bf16": cpu_has_native_bf16(),
            "cpu_model": cpu_model(),
            "amx": "amx_bf16" in cpu_flags(),
        },
        "batch_size": 100,
        "amp_auto": amp,
        "peer_samples_per_s": peer,
        "rounds": rounds,
        "bare_samples_per_s": bare,
        "bare_bf16_samples_per_s": bare_bf16,
        "bf16_speedup": bf16_gain,
        "trainer_samples_per_s": trainer,
        "trainer_vs_bare": vs_bare,
        "target_trainer_vs_bare": 0.9,
        "trainer_vs_peer": vs_peer,
        "target_trainer_vs_peer": 1.4,
        "encode_frames_per_s": encode_rate,
        "peak_rss_mb": {"episodes_10": rss_small, f"episodes_{len(files)}": rss_large},
        "large_dataset_mb": data_mb,
        "mean_episode_length": mean_len,
        "paper_projection": {
            "train_frames_per_epoch": paper_frames,
            "epochs": 10,
            "hours": paper_hours,
            "encode_hours": 2000 * mean_len / encode_rate / 3600,
        },
        "maxrss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "default_config": VAEConfig().__dict__,
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
