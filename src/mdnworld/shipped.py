"""Trained models shipped with the repository, and runs started from them.

``mdnworld export-models RUN_DIR OUT`` writes V, every finished M, the train/validation split
and the start latents of the training episodes (steps 0 and 150: where analyses A/B and C
start) into OUT, as safetensors + JSON (float16 by default: half the size, tested to change
decoded frames by < 1 % of the pixel range), with ``MANIFEST.json``: the format, every file's
sha256 and the checksums of the data the models were trained on.

``mdnworld from-shipped RUN_DIR [--models DIR]`` checks those files against the manifest and
makes RUN_DIR a run with V, the Ms, the split and the start latents, so ``dream`` and
``analyze`` run on it right away (and ``train-controller``, if an M has a done head). The
default DIR is ``results/paper/models`` of this repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mdnworld.dreams import STARTS_FILE, StartBank
from mdnworld.io import atomic_write_json, read_json, sha256_file
from mdnworld.train.common import CheckpointError, load_weights, save_weights

FORMAT = "mdnworld.shipped/1"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "results" / "paper" / "models"
START_STEPS = (0, 150)


def _convert(src: Path, dst: Path, dtype: torch.dtype, extra: dict[str, Any]) -> None:
    """Copy a safetensors + JSON pair, casting floating tensors to ``dtype``."""
    tensors, meta = load_weights(src)
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    save_weights(dst, cast, {**meta, **extra})


def export_models(
    run_dir: Path, out: Path, fp16: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    run_dir, out = Path(run_dir), Path(out)
    dtype = torch.float16 if fp16 else torch.float32
    vae_src = run_dir / "vae" / "model.safetensors"
    _convert(vae_src, out / "vae.safetensors", dtype, {"source_sha256": sha256_file(vae_src)})
    models = sorted((run_dir / "rnn").glob("model_*/model.safetensors"))
    if not models:
        raise FileNotFoundError(f"{run_dir / 'rnn'}: no finished M to export")
    for src in models:
        name = src.parent.name  # model_<i>
        extra = {"source_sha256": sha256_file(src)}
        _convert(src, out / "rnn" / f"{name}.safetensors", dtype, extra)
    shutil.copyfile(run_dir / "rnn" / "split.json", out / "split.json")
    StartBank.from_run(run_dir).save_rows(out / STARTS_FILE, START_STEPS)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    data = {
        name: sha256_file(run_dir / name)
        for name in ("episodes/manifest.json", "latents/manifest.json")
        if (run_dir / name).exists()
    }
    manifest = {
        "format": FORMAT,
        "dtype": str(dtype).removeprefix("torch."),
        "models": [p.parent.name for p in models],
        "files": {str(p.relative_to(out)): sha256_file(p) for p in files},
        "data_sha256": data,
    }
    atomic_write_json(out / "MANIFEST.json", manifest)
    size = sum(p.stat().st_size for p in files) / 2**20
    log(f"export-models: V, {len(models)} M(s), split and start latents, {size:.1f} MB, in {out}")
    return manifest


def init_from_shipped(
    run_dir: Path, models_dir: Path = DEFAULT_DIR, log: Callable[[str], None] = print
) -> None:
    run_dir, models_dir = Path(run_dir), Path(models_dir)
    man_path = models_dir / "MANIFEST.json"
    if not man_path.exists():
        raise FileNotFoundError(f"{man_path}: no shipped models there")
    manifest = read_json(man_path)
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{man_path}: format {manifest.get('format')!r}, expected {FORMAT}")
    for rel, sha in manifest["files"].items():
        path = models_dir / rel
        if not path.exists() or sha256_file(path) != sha:
            raise CheckpointError(f"{path}: missing or its checksum differs from {man_path.name}")
    for existing in (run_dir / "vae" / "model.json", run_dir / "rnn"):
        if existing.exists():
            raise FileExistsError(
                f"{existing}: {run_dir} already has trained models; use a new run"
            )
    _convert(models_dir / "vae.safetensors", run_dir / "vae" / "model.safetensors",
             torch.float32, {"shipped_from": str(models_dir)})  # fmt: skip
    for name in manifest["models"]:
        _convert(models_dir / "rnn" / f"{name}.safetensors",
                 run_dir / "rnn" / name / "model.safetensors", torch.float32,
                 {"shipped_from": str(models_dir)})  # fmt: skip
    shutil.copyfile(models_dir / "split.json", run_dir / "rnn" / "split.json")
    (run_dir / "latents").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(models_dir / STARTS_FILE, run_dir / "latents" / STARTS_FILE)
    log(f"from-shipped: {run_dir} has V and {len(manifest['models'])} M(s) from {models_dir}; "
        f"now `mdnworld dream {run_dir}` or `mdnworld analyze all {run_dir}`")  # fmt: skip
