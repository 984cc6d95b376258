"""Trained models shipped with the repository, and runs started from them.

``mdnworld export-models RUN_DIR OUT`` writes V, every finished M, the train/validation split,
the start latents of the training episodes (steps 0 and 150: where analyses A/B and C start)
and the run's trained controller if it has one into OUT, as safetensors + JSON (float16 by
default: half the size, tested to change decoded frames by < 1 % of the pixel range; the tiny
controller stays float32), with ``MANIFEST.json``: the format, every file's sha256 and the
checksums of the data the models were trained on.

``mdnworld from-shipped RUN_DIR [--models DIR]`` checks those files against the manifest and
makes RUN_DIR a run with V, the Ms, the split and the start latents (and the controller), so
``dream`` and ``analyze`` run on it right away (``train-controller`` if an M has a done head,
``evaluate`` if a controller was shipped). The default DIR is ``results/paper/models`` of this
repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mdnworld.checkpoints import STARTS_FILE, StartBank, load_weights, save_weights
from mdnworld.errors import CheckpointError, ConflictError, MissingError
from mdnworld.io import atomic_write_json, read_json, sha256_file
from mdnworld.layout import RunLayout, model_index, within

FORMAT = "mdnworld.shipped/1"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "results" / "paper" / "models"
START_STEPS = (0, 150)
CONTROLLER = "controller.safetensors"  # optional: the run's trained controller (CMA-ES mean)


def convert_weights(src: Path, dst: Path, dtype: torch.dtype, extra: dict[str, Any]) -> None:
    """Copy a safetensors + JSON pair to ``dst``, casting floating tensors to ``dtype``, dropping
    the old sha256 and adding ``extra`` to the meta."""
    tensors, meta = load_weights(src)
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    save_weights(dst, cast, {**meta, **extra})


def export_models(
    run_dir: Path, out: Path, fp16: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    run_dir, out = Path(run_dir), Path(out)
    dtype = torch.float16 if fp16 else torch.float32
    run = RunLayout(run_dir)
    vae_src = run.vae_model
    extra = {"source_sha256": sha256_file(vae_src)}
    convert_weights(vae_src, out / "vae.safetensors", dtype, extra)
    models = [run.rnn_model(i) for i in run.rnn_indices()]
    if not models:
        raise MissingError(f"{run.rnn_dir}: no finished M to export")
    for src in models:
        name = src.parent.name  # model_<i>
        extra = {"source_sha256": sha256_file(src)}
        convert_weights(src, out / "rnn" / f"{name}.safetensors", dtype, extra)
    shutil.copyfile(run.rnn_split, out / "split.json")
    if run.controller_weights().exists():
        extra = {"source_sha256": sha256_file(run.controller_weights())}
        convert_weights(run.controller_weights(), out / CONTROLLER, torch.float32, extra)
    StartBank.from_run(run_dir).save_rows(out / STARTS_FILE, START_STEPS)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    data = {
        run.rel(path): sha256_file(path)
        for path in (run.episode_manifest, run.latent_manifest)
        if path.exists()
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
    what = ", a controller" if (out / CONTROLLER).exists() else ""
    log(f"export-models: V, {len(models)} M(s){what}, split and start latents, {size:.1f} MB, "
        f"in {out}")  # fmt: skip
    return manifest


def read_manifest(models_dir: Path) -> dict[str, Any]:
    """``MANIFEST.json`` of a shipped folder, checked: its format, ``models`` (model_<i>
    names), ``files`` (relative path -> sha256, every one inside the folder, V, each M, the
    split and the start latents among them; the controller's meta if it lists a controller) and
    every file's checksum. A CheckpointError (or DataError) naming it otherwise."""
    path = models_dir / "MANIFEST.json"
    if not path.exists():
        raise MissingError(f"{path}: no shipped models there")
    man = read_json(path)
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        got = man.get("format") if isinstance(man, dict) else f"a JSON {type(man).__name__}"
        raise CheckpointError(f"{path}: format {got!r}, expected an object of format {FORMAT}")
    files, models = man.get("files"), man.get("models")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CheckpointError(f"{path}: 'files' is not an object of file -> sha256")
    if not isinstance(models, list) or not models:
        raise CheckpointError(f"{path}: 'models' is not a list of model_<i> names")
    try:
        for name in models:
            model_index(name)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: key 'models': {e}") from None
    names = {f"rnn/{m}.{ext}" for m in models for ext in ("safetensors", "json")}
    if CONTROLLER in files:  # optional, but then with its meta
        names.add(CONTROLLER.replace(".safetensors", ".json"))
    missing = {"vae.safetensors", "vae.json", "split.json", STARTS_FILE, *names} - set(files)
    if missing:
        raise CheckpointError(f"{path}: 'files' does not list {sorted(missing)}")
    for rel, sha in files.items():
        file = within(models_dir, rel, f"{path}: key 'files'")
        if not file.is_file() or sha256_file(file) != sha:
            raise CheckpointError(f"{file}: missing or its checksum differs from {path.name}")
    return man


def init_from_shipped(
    run_dir: Path, models_dir: Path = DEFAULT_DIR, log: Callable[[str], None] = print
) -> None:
    run_dir, models_dir = Path(run_dir), Path(models_dir)
    manifest = read_manifest(models_dir)
    run = RunLayout(run_dir)
    for existing in (run.vae_meta, run.rnn_dir):
        if existing.exists():
            raise ConflictError(f"{existing}: {run_dir} already has trained models; use a new run")
    origin = {"shipped_from": str(models_dir)}
    convert_weights(models_dir / "vae.safetensors", run.vae_model, torch.float32, origin)
    for name in manifest["models"]:
        src = models_dir / "rnn" / f"{name}.safetensors"
        convert_weights(src, run.rnn_model(model_index(name)), torch.float32, origin)
    shutil.copyfile(models_dir / "split.json", run.rnn_split)
    run.latents_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(models_dir / STARTS_FILE, run.starts)
    what, then = "", f"`mdnworld dream {run_dir}` or `mdnworld analyze all {run_dir}`"
    if CONTROLLER in manifest["files"]:
        convert_weights(models_dir / CONTROLLER, run.controller_weights(), torch.float32, origin)
        what, then = " and a controller", f"{then} or `mdnworld evaluate {run_dir}`"
    log(f"from-shipped: {run_dir} has V, {len(manifest['models'])} M(s){what} from "
        f"{models_dir}; now {then}")  # fmt: skip
