"""Readers of the training stages' files: the episode manifest, V's and M's metas, dream
settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mdnworld.records.base import Doc, parse, read

# --- episodes: episodes/manifest.json (data/generate.py) ---------------------------------------


@dataclass(frozen=True)
class EpisodeEntry:
    index: int
    seed: int
    length: int
    truncated: bool


@dataclass(frozen=True)
class EpisodeManifest:
    KEYS: ClassVar = {"requested": "config.episodes"}
    episodes: tuple[EpisodeEntry, ...]
    requested: Any
    """``config.episodes``: how many were asked for (None if the manifest does not say)."""

    @property
    def lengths(self) -> list[int]:
        return [e.length for e in self.episodes]


def _episodes(d: Doc) -> EpisodeManifest:
    entries = tuple(
        EpisodeEntry(e["index"], e["seed"], int(e["length"]), bool(e.get("truncated")))
        for e in d.objs("episodes")
    )
    config = d.obj("config") if "config" in d.data else None
    return EpisodeManifest(entries, config.get("episodes") if config else None)


# --- V: vae/model.json (train/vae.py) ----------------------------------------------------------


@dataclass(frozen=True)
class VaeMeta:
    KEYS: ClassVar = {"latent_dim": "arch.latent_dim", "epochs": "config.epochs",
                      "val_recon": "val.recon", "val_kl": "val.kl"}  # fmt: skip
    latent_dim: int
    epochs: int
    """``config.epochs``."""
    steps: int
    val_recon: float
    val_kl: float
    train_episodes: int
    val_episodes: int


def _vae(d: Doc) -> VaeMeta:
    val = d.obj("val")
    return VaeMeta(
        d.obj("arch")["latent_dim"], d.obj("config")["epochs"], d["steps"], val["recon"],
        val["kl"], d["train_episodes"], d["val_episodes"],
    )  # fmt: skip


# --- M: rnn/model_<i>/model.json (train/rnn.py) ------------------------------------------------


@dataclass(frozen=True)
class RnnMetrics:
    """``metrics``: the best epoch's evaluation (NLL in nats per latent dimension)."""

    val_nll_per_dim: float
    val_baseline_nll_per_dim: float
    train_nll_per_dim: float
    train_baseline_nll_per_dim: float
    pi_entropy: float
    pi_entropy_max: float
    component_usage: tuple[float, ...]
    val_done_bce: float | None
    """None without a done head."""

    @property
    def usage_text(self) -> str:
        """Each component's share of the validation steps it dominates: "0.41 0.20 ..."."""
        return " ".join(f"{u:.2f}" for u in self.component_usage)


@dataclass(frozen=True)
class RnnMeta:
    KEYS: ClassVar = {"n_components": "arch.n_components", "done_head": "arch.done_head"}
    model_index: int
    n_components: int
    """``arch.n_components``."""
    done_head: bool
    """``arch.done_head`` (False when absent)."""
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    stopped_by_time: bool
    """False when absent (metas older than the field)."""
    metrics: RnnMetrics

    @property
    def stop_reason(self) -> str:
        """The stop, for terminal tables: " (early)", " (time)" or ""."""
        if self.stopped_early:
            return " (early)"
        return " (time)" if self.stopped_by_time else ""


def _rnn(d: Doc) -> RnnMeta:
    arch, x = d.obj("arch"), d.obj("metrics")
    metrics = RnnMetrics(
        x["val_nll_per_dim"], x["val_baseline_nll_per_dim"], x["train_nll_per_dim"],
        x["train_baseline_nll_per_dim"], x["pi_entropy"], x["pi_entropy_max"],
        tuple(x["component_usage"]), x.get("val_done_bce"),
    )  # fmt: skip
    return RnnMeta(
        d["model_index"], arch["n_components"], bool(arch.get("done_head")), d["best_epoch"],
        d["epochs_run"], d["stopped_early"], bool(d.get("stopped_by_time")), metrics,
    )  # fmt: skip


def rnn_meta(data: Mapping[str, Any], source: Path | str = "M's meta") -> RnnMeta:
    """An M's meta already in memory (``load_weights(...)[1]``, train-rnn's return value)."""
    return parse(_rnn, data, source)


# --- dreams: dreams/model_<i>/dreams.json (dreams/videos.py) -----------------------------------


@dataclass(frozen=True)
class DreamSettings:
    dreams: int
    steps: int
    tau_pi: float
    tau_sigma: float
    warmup: int
    teacher_steps: int
    p_change: float
    n_components: int | None
    """None in folders written before the field."""


def _dreams(d: Doc) -> DreamSettings:
    keys = ("dreams", "steps", "tau_pi", "tau_sigma", "warmup", "teacher_steps", "p_change")
    return DreamSettings(*(d[k] for k in keys), d.get("n_components"))


# --- the readers -------------------------------------------------------------------------------


def read_episode_manifest(path: Path | str) -> EpisodeManifest:
    return read(path, _episodes)


def read_vae_meta(path: Path | str) -> VaeMeta:
    return read(path, _vae)


def read_rnn_meta(path: Path | str) -> RnnMeta:
    return read(path, _rnn)


def read_dream_settings(path: Path | str) -> DreamSettings:
    return read(path, _dreams)
