"""What the three analyses share: the trained models, starting latents, decoded and labelled
dreams, and small writers for CSV and figures. Outputs go under ``RUN_DIR/analysis/``."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdnworld.analysis.detectors import DETECTOR_SETS, FrameFeatures, detect
from mdnworld.checkpoints import StartBank, Starts, load_mdnrnn, load_vae
from mdnworld.config import AnalyzeConfig
from mdnworld.device import prepare_cpu, resolve_device
from mdnworld.dreams import DreamRecord, decode, dream
from mdnworld.errors import ConfigError, MissingError
from mdnworld.io import atomic_open
from mdnworld.layout import RunLayout
from mdnworld.models.mdnrnn import MDNRNN
from mdnworld.models.vae import VAE


def detector_settings(cfg: AnalyzeConfig) -> dict[str, Any]:
    """The detector set a B or C result was labelled with, kept in its results.json."""
    return {"detectors": cfg.detectors, "wall_red_over_blue": cfg.wall_red_over_blue}


@dataclass
class Inputs:
    """The trained V and Ms of a run, and where their dreams start."""

    vae: VAE
    models: dict[int, MDNRNN]  # model index -> M
    starts: StartBank

    @property
    def n_components(self) -> int:
        return next(iter(self.models.values())).arch.n_components


def load_inputs(run_dir: Path, cfg: AnalyzeConfig, indices: Sequence[int] | None = None) -> Inputs:
    """Load V and the Ms (``indices``, or the first ``cfg.models``, or all), on cfg.device."""
    prepare_cpu(cfg.threads)
    device = resolve_device(cfg.device)
    run = RunLayout(run_dir)
    if indices is None:
        found = run.rnn_indices()
        if not found:
            raise MissingError(f"{run.rnn_dir}: no trained M; run train-rnn first")
        indices = found[: cfg.models] if cfg.models > 0 else found
    models = {}
    for i in indices:
        model, _ = load_mdnrnn(run_dir, i, device)
        if model.arch.mixture != "shared":
            raise ConfigError(
                f"{run.rnn_model_dir(i)}: the analyses need the paper's shared mixture "
                f"(one pi over K components), this M has mixture={model.arch.mixture!r}"
            )
        models[i] = model
    vae, _ = load_vae(run_dir, device)
    return Inputs(vae=vae, models=models, starts=StartBank.from_run(run_dir))


def dream_seeds(seed: int, model_index: int, n: int, offset: int = 0) -> list[int]:
    """Distinct, reproducible seeds of n dreams of one model in one analysis."""
    return [seed * 1_000_003 + model_index * 10_007 + offset + j for j in range(n)]


@dataclass
class LabelledDreams:
    """Dreams with their decoded frames and detector output."""

    record: DreamRecord
    starts: Starts
    frames: np.ndarray  # (B, T, 64, 64, 3) float32 in [0, 1]
    features: list[FrameFeatures]  # one per dream


def labelled_dreams(
    inputs: Inputs,
    model_index: int,
    cfg: AnalyzeConfig,
    n: int,
    steps: int,
    warmup: int = 0,
    start_t: int = 0,
    commit: int | None = None,
    seed_offset: int = 0,
) -> LabelledDreams:
    """n dreams of one M from real starts (SPEC §5), decoded by V and run through the
    detectors (SPEC §6)."""
    rng = np.random.default_rng([cfg.seed, model_index, seed_offset])
    starts = inputs.starts.sample(n, start_t, rng)
    seeds = dream_seeds(cfg.seed, model_index, n, seed_offset)
    rec = dream(
        inputs.models[model_index],
        starts.z,
        steps,
        seeds,
        warmup=warmup,
        tau_pi=cfg.tau_pi,
        tau_sigma=cfg.tau_sigma,
        commit=commit,
        p_change=cfg.p_change,
    )
    frames = decode(inputs.vae, rec.z)
    th = DETECTOR_SETS[cfg.detectors]
    if cfg.wall_red_over_blue > 0:
        th = dataclasses.replace(th, wall_red_over_blue=cfg.wall_red_over_blue)
    return LabelledDreams(rec, starts, frames, [detect(f, th) for f in frames])


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows of equal keys -> a CSV file, written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_open(path, "w") as f:
        f.write(buf.getvalue())


def save_figure(fig: Any, path: Path, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
