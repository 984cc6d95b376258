"""Benchmark: five Ms trained one step each in turn (nn.LSTM, as train-rnn does) against the
five as one BatchedMDNRNN (one batched matmul per layer and step for all five).

    python benchmarks/batched_rnn.py [--device auto] [--seconds 6] [--models 5] [--compile]

Windows/s of a training step (forward, mdn_loss, backward, Adam) summed over the models, at
batch 256 per model, windows of 60 steps, the paper's M (hidden 256, K 5, latent 64, done head),
in float32 and under bf16 autocast. Issue 20's GPU target: the five together >= 120k windows/s
on an H200 (train-rnn's five processes side by side reached ~56k). Synthetic latents (the
speed does not depend on the values). ``--compile``: train-rnn's step with ``rnn.compile = "on"``
(its heads and loss under torch.compile) for the models one after another. Prints a table,
writes benchmarks/results/batched_rnn[_compile][_cuda].json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from mdnworld.device import autocast, compiled, prepare_cpu, resolve_device
from mdnworld.models.batched_mdnrnn import BatchedMDNRNN
from mdnworld.models.mdnrnn import MDNRNNArch, StandardisedMDNRNN, mdn_loss
from mdnworld.train.rnn import head_losses

RESULTS = Path(__file__).parent / "results"
BATCH, SEQ = 256, 60
ARCH = MDNRNNArch(latent_dim=64, hidden=256, n_components=5, done_head=True)


def timed(step, seconds: float, device: torch.device) -> float:
    """Seconds per call of ``step`` (after two warm-up calls)."""
    for _ in range(2):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    sync()
    return (time.perf_counter() - t0) / n


def measure(
    n_models: int, batched: bool, amp: bool, device: torch.device, seconds: float, compile_: bool
) -> float:
    """Windows/s over all models."""
    torch.manual_seed(0)
    ms = [StandardisedMDNRNN(ARCH).to(device) for _ in range(n_models)]
    z = torch.randn(n_models, BATCH, SEQ + 1, ARCH.latent_dim, device=device)
    a = torch.rand(n_models, BATCH, SEQ, 1, device=device) * 2 - 1
    done = torch.rand(n_models, BATCH, SEQ, device=device) < 0.01

    def ctx():  # what train-rnn runs under --amp bf16 / none
        return autocast(device, "bf16" if amp else "none")

    if batched:
        model = BatchedMDNRNN(ms).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step() -> None:
            with ctx():
                out = model(z[:, :, :-1], a)
            loss = n_models * mdn_loss(out, z[:, :, 1:], ARCH, done)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:  # train-rnn's step
        opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in ms]
        losses = compiled(head_losses, compile_, "M's loss")
        pos_weight = torch.tensor(1.0, device=device)

        def step() -> None:
            for n, (m, opt) in enumerate(zip(ms, opts, strict=True)):
                with ctx():
                    h, _ = m.hidden(z[n, :, :-1], a[n])
                amp_ = "bf16" if amp else "none"
                loss = losses(m, h, z[n, :, 1:], done[n], done[n], amp_, pos_weight)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    return n_models * BATCH / timed(step, seconds, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="train-rnn's step under torch.compile")
    args = ap.parse_args()
    device = resolve_device(args.device)
    threads = prepare_cpu(0)
    rows = []
    for amp in (False, True):
        for batched in (False, True):
            rate = measure(args.models, batched, amp, device, args.seconds, args.compile)
            compiled_ = args.compile and not batched
            rows.append(
                {"batched": batched, "bf16": amp, "compile": compiled_, "windows_per_s": rate}
            )
            print(json.dumps(rows[-1]), flush=True)
    cuda = device.type == "cuda"
    name = str(torch.cuda.get_device_name(device)) if cuda else f"{threads} CPU threads"
    print(f"\n{args.models} Ms, batch {BATCH} x {SEQ} steps each, on {name}")
    print(f"{'':26} {'fp32':>10} {'bf16':>10}")
    for batched in (False, True):
        label = "one BatchedMDNRNN" if batched else "one after another (nn.LSTM)"
        label += " + compile" if args.compile and not batched else ""
        r = {row["bf16"]: row["windows_per_s"] for row in rows if row["batched"] == batched}
        print(f"{label:26} {r[False]:10.0f} {r[True]:10.0f}")
    name_ = "batched_rnn" + ("_compile" if args.compile else "") + ("_cuda" if cuda else "")
    out = RESULTS / f"{name_}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": name, "models": args.models, "batch": BATCH, "seq": SEQ,
                               "cpus": os.cpu_count(), "rows": rows, "target_cuda": 120_000},
                              indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
