"""Configuration: one dataclass per pipeline stage, from TOML, overridden on the command line.

A config file has one table per stage (``[generate]``, ...) plus a top-level ``run_dir``.
Command-line overrides come either as a stage's own flags (``mdnworld generate --episodes 5``)
or as ``--set generate.episodes=5`` (any stage, any field). Unknown tables or keys are errors,
so a typo never silently falls back to a default. Every value is checked as it is read: a
string option is a ``Literal`` of its allowed values, a float is finite (no nan, no inf), and
the numeric fields in ``RULES`` have a range; the ``ConfigError`` names the file or override,
the key and what is allowed.

The string literal after each field is its documentation; ``fields.field_docs`` reads it for the
command line's ``--help``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mdnworld.errors import ConfigError

ReconLoss = Literal["bce", "mse"]
Amp = Literal["auto", "none", "bf16"]
"""device.py's ``resolve_amp``: "auto" = bf16 where the CPU has native bf16, else float32."""
Resident = Literal["auto", "on", "off"]
Compile = Literal["auto", "none", "on"]
Mixture = Literal["shared", "per_dim"]
ZSource = Literal["mu", "sample"]
DoneRule = Literal["sample", "threshold"]
ExecutorKind = Literal["local", "ray"]
Which = Literal["mean", "best", "selected"]
Resolution = Literal[
    "RES_160X120", "RES_200X125", "RES_200X150", "RES_256X144", "RES_256X160", "RES_256X192",
    "RES_320X180", "RES_320X200", "RES_320X240", "RES_320X256", "RES_400X225", "RES_400X250",
    "RES_400X300", "RES_512X288", "RES_512X320", "RES_512X384", "RES_640X360", "RES_640X400",
    "RES_640X480", "RES_800X450", "RES_800X500", "RES_800X600", "RES_1024X576", "RES_1024X640",
    "RES_1024X768", "RES_1280X720", "RES_1280X800", "RES_1280X960", "RES_1280X1024",
    "RES_1400X787", "RES_1400X875", "RES_1400X1050", "RES_1600X900", "RES_1600X1000",
    "RES_1600X1200", "RES_1920X1080",
]  # fmt: skip
"""Every ``vizdoom.ScreenResolution`` name (tests/test_cli.py checks the list against it)."""


@dataclass
class GenerateConfig:
    """Step 1: random-policy episodes from the real game (SPEC §1-2)."""

    episodes: int = 2000
    """Number of episodes; episode i always uses seed base_seed + i."""
    workers: int = 0
    """Worker processes; 0 means one per CPU core."""
    base_seed: int = 0
    max_steps: int = 2100
    """Episode cap in game tics (SPEC §1)."""
    resolution: Resolution = "RES_160X120"
    """ViZDoom screen resolution name; the smallest is the fastest and still shows fireballs."""
    retries: int = 1
    """How often episodes of a crashed worker are retried before the run fails."""
    truth: bool = False
    """Also store the game's per-frame truth (objects on screen, hits, walls: data/truth.py)."""


@dataclass
class ShowConfig:
    """Preview of one stored episode: MP4, GIF and a PNG contact sheet."""

    episode: int = 0
    fps: int = 35
    """Playback speed; the game runs at 35 tics per second."""
    scale: int = 4
    """Nearest-neighbour upscaling of the 64x64 frames in the videos."""
    max_contact_frames: int = 64


@dataclass
class VAEConfig:
    """Step 2: the convolutional VAE "V" (SPEC §3)."""

    latent_dim: int = 64
    recon_loss: ReconLoss = "bce"
    """"bce" (the paper's) or "mse" (World Models'), summed over the 12,288 values."""
    free_bits: float = 0.0
    """Floor on the per-frame KL in nats (World Models: kl_tolerance 0.5 x 64 = 32)."""
    beta: float = 1.0
    """Weight of the KL term (1 = the ELBO)."""
    bright_weight: float = 0.0
    """Bright pixels of the real frame (grey > 0.65: fireballs, explosions) count 1 + this."""
    decoder_width: int = 1
    """Channel multiplier of the decoder's three hidden layers (1 = World Models')."""
    epochs: int = 10
    """Maximum number of epochs; ``max_minutes`` may end training sooner."""
    max_minutes: float = 0.0
    """Also stop at the first epoch end after this many minutes in one call (0 = no limit)."""
    batch_size: int = 100
    lr: float = 1e-3
    val_fraction: float = 0.15
    """Share of whole episodes held out for validation."""
    val_frames: int = 1000
    """Validation frames evaluated at every epoch end (a fixed random subset)."""
    grid_frames: int = 8
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    """Steps between checkpoints (besides every epoch end)."""
    checkpoint_minutes: float = 10.0
    """Wall-clock minutes between checkpoints at most: a stop loses no more than this."""
    amp: Amp = "auto"
    """"bf16" autocast, "none", or "auto": bf16 on a CPU with native bf16 (benchmarks/vae.py)."""
    device: str = "auto"
    threads: int = 0
    """Torch CPU threads; 0 = one per core."""
    prefetch: int = 0
    """Batches read ahead on a thread; 0 = none (fastest on a 2-core CPU; try 2 on a GPU)."""
    resident: Resident = "auto"
    """Frames copied to the device once: "on", "off", "auto" (CUDA, under half its free memory)."""


@dataclass
class EncodeConfig:
    """Step 3: every stored frame -> (mu, logvar) under V."""

    batch_size: int = 500
    device: str = "auto"
    threads: int = 0


@dataclass
class RNNConfig:
    """Step 4: the MDN-RNN "M" (SPEC §4), one or several models per run."""

    hidden: int = 256
    """LSTM units (the paper: 256; World Models' Doom: 512)."""
    n_components: int = 5
    mixture: Mixture = "shared"
    """"shared" (the paper's: one categorical over K full-latent Gaussians) or "per_dim"
    (World Models': an independent K-mixture per latent dim)."""
    done_head: bool = False
    """Also predict death (needed by the controller's DreamEnv); adds a training window ending
    at each episode's last frame so that every death is a target."""
    reward_head: bool = False
    done_pos_weight: float = 0.0
    """Weight of death targets in the done head's BCE; 0 = automatic: the ratio (~20) by which
    overlapping windows under-count deaths (data/sequences.done_balance)."""
    standardise: bool = True
    """Feed and predict latents standardised per dim (training mean and std), undone inside the
    model (its outputs are in the VAE's units); why: train/rnn_data.py."""
    epochs: int = 1000
    """Maximum number of epochs (the original ran 1000); early stopping ends sooner."""
    patience: int = 10
    """Stop after this many epochs without a new best validation NLL; 0 = never stop early."""
    max_minutes: float = 0.0
    """Also end each M at its first epoch end after it trained this many minutes (0 = no limit)."""
    batch_size: int = 256
    lr: float = 1e-3
    grad_clip: float = 0.0
    """Clip the gradient norm to this value; 0 = off (World Models used 1.0)."""
    seq_len: int = 60
    skip_ahead: int = 3
    """A window starts every skip_ahead frames of an episode."""
    z_source: ZSource = "mu"
    """"mu" (the paper) or "sample": z ~ N(mu, exp(logvar)) drawn afresh each epoch."""
    val_fraction: float = 0.15
    """Share of whole episodes held out (split seeded by `seed`: V's split if the seeds agree)."""
    eval_windows: int = 2048
    """Training windows (a fixed subset) evaluated at every epoch end for the train NLL."""
    latent_dim: int = 0
    """0 = read it from latents/manifest.json; any other value must match it."""
    seed: int = 0
    """Model i uses seed + i (initial weights, batch order, samples)."""
    init: str = ""
    """Start from an M's weights (same architecture and latent size; standardisation and done
    bias kept) instead of random ones: a model.safetensors for every model, or a folder (shipped
    models' rnn/, or a run directory) where model i starts from its own M i. Empty = random."""
    model_index: int = 0
    """First model to train; it goes to RUN_DIR/rnn/model_<index>/."""
    models: int = 1
    """Train models model_index .. model_index + models - 1, ``jobs`` at a time."""
    log_every: int = 10
    checkpoint_every: int = 500
    """Steps between checkpoints (besides every epoch end)."""
    checkpoint_minutes: float = 10.0
    amp: Amp = "auto"
    """"bf16" autocast, "none", or "auto": bf16 on a CPU with native bf16 (from its flags)."""
    compile: Compile = "auto"
    """torch.compile M's head and loss: "on", "none", or "auto" (on a CPU with a C++ compiler)."""
    jobs: int = 1
    """Models trained at once, each in a process with cores // jobs threads (or ``threads``): on
    2 cores, 2 jobs of 1 thread trained 1.16x faster than 1 of 2 (train/rnn_jobs.py)."""
    device: str = "auto"
    threads: int = 0
    """Torch CPU threads; 0 = one per core."""


@dataclass
class DreamConfig:
    """``mdnworld dream``: dreams of one M decoded by V, as videos with live pi bars (SPEC §5)."""

    model_index: int = 0
    """Which trained M (RUN_DIR/rnn/model_<i>/) dreams."""
    dreams: int = 4
    steps: int = 300
    """Recorded steps per dream."""
    warmup: int = 0
    """Free-running dream steps run and discarded before recording (the original's warm-up)."""
    teacher_steps: int = 0
    """Real encoded steps (latents and actions of the start episode) fed before dreaming."""
    start_t: int = 0
    """Start from the latent at this step of a random training episode."""
    tau_pi: float = 1.0
    tau_sigma: float = 0.01
    """Scales the variance of the sampled Gaussian (SPEC §5: the paper's 0.01)."""
    commit: int = -1
    """Committed dreaming: always use this component; -1 = sample it from pi."""
    committed: int = 1
    """Besides the free dreams, this many committed dreams per component (0 = none)."""
    p_change: float = 0.1
    """Per-step probability that the dream's random action is redrawn from U(-1, 1)."""
    seed: int = 0
    fps: int = 35
    gif: bool = True
    """Also write a GIF next to each MP4."""
    device: str = "auto"
    threads: int = 0


@dataclass
class AnalyzeConfig:
    """``mdnworld analyze``: the paper's three analyses (SPEC §7) over the trained Ms."""

    models: int = 0
    """How many trained Ms (model_0 ..) take part; 0 = every one in RUN_DIR/rnn."""
    tau_pi: float = 1.0
    tau_sigma: float = 0.01
    p_change: float = 0.1
    seed: int = 0
    a_warmup: int = 500
    """A, components over time: discarded warm-up steps, then ``a_steps`` recorded."""
    a_steps: int = 100
    b_dreams: int = 10
    """B, worlds and events: dreams per model, ``b_steps`` steps each, warm-up 0."""
    b_steps: int = 1000
    n_shifts: int = 1000
    """Circular shifts of each dream's dominant components for B's null."""
    c_tests: int = 10
    """C, committed dreaming: dreams per component, ``c_steps`` steps from the latent at step
    ``c_start`` of a random episode."""
    c_steps: int = 1000
    c_start: int = 150
    c_model: int = 0
    """Which M dreams the committed dreams (components are not comparable across Ms)."""
    detectors: Literal["spec", "validated"] = "spec"
    """B and C's detector set (analysis/detectors.py ``DETECTOR_SETS``)."""
    wall_red_over_blue: float = 0.0
    """> 0: overrides the set's wall colour test (a wall's edge mean red - blue must exceed
    it; 0 = the set's own; 0.05 separates brick from a grey ceiling, analysis/detectors.py)."""
    device: str = "auto"
    threads: int = 0


@dataclass
class ControllerConfig:
    """``mdnworld train-controller``: C trained by CMA-ES inside M's dream (SPEC §8)."""

    model_index: int = 0
    """The M that dreams; it needs a done head (train-rnn --done-head)."""
    popsize: int = 64
    rollouts: int = 16
    """Dreams per candidate (fitness: their mean survival); popsize x rollouts run as one batch."""
    generations: int = 200
    sigma0: float = 0.1
    """CMA-ES initial step size (the search starts from all-zero parameters, or ``init``)."""
    init: str = ""
    """Start the search at this controller (a controller*.safetensors of the same size, e.g.
    the previous round's in ``mdnworld iterate``) instead of at zeros. Empty = zeros."""
    tau: float = 1.15
    """Dream temperature (World Models': logits / tau, variance x tau)."""
    max_steps: int = 2100
    done: DoneRule = "sample"
    """How M's done head ends a dream: "sample" (~ Bernoulli(p)) or "threshold" (p > threshold)."""
    done_threshold: float = 0.5
    dream_dropout: float = 0.0
    """Dropout's Dream Land: drop each unit of M's LSTM output (what its heads read) with this
    probability, one mask per dream, so each dream is a slightly different M (0 = off)."""
    select_top: int = 0
    """After training, re-score this many of the best generation winners and the CMA-ES mean
    on select_rollouts fresh dreams each; the best becomes evaluate's "selected" (0 = off)."""
    select_rollouts: int = 1024
    eval_every: int = 10
    """Play each this many generations' best candidate in the real game (0 = never)."""
    eval_episodes: int = 8
    seed: int = 0
    executor: ExecutorKind = "local"
    """"local" (processes on this machine) or "ray" (``pip install mdnworld[ray]``)."""
    address: str = ""
    """Ray cluster address (``ray start --head`` prints it); empty = start a local Ray."""
    workers: int = 0
    """Processes for real-game episodes; 0 = one per core."""
    dream_chunks: int = 1
    """Split a generation's dreams into this many executor jobs (1 = one batch, here)."""
    device: str = "auto"
    threads: int = 0


@dataclass
class EvaluateConfig:
    """``mdnworld evaluate``: the trained controller in the real game."""

    episodes: int = 100
    which: Which = "mean"
    """"mean" (CMA-ES's final mean, the controller), "best" (best dream candidate) or
    "selected" (the winner of train-controller's re-scoring, ``controller.select_top``)."""
    seed: int = 1_000_000
    """Episode i uses game seed seed + i (apart from the training data's seeds)."""
    max_steps: int = 2100
    executor: ExecutorKind = "local"
    """"local" (processes on this machine) or "ray" (``pip install mdnworld[ray]``)."""
    address: str = ""
    workers: int = 0
    videos: bool = True
    """MP4 of the best and the worst episode: real frame beside V's reconstruction."""


@dataclass
class IterateConfig:
    """``mdnworld iterate``: World Models' iterative training after the controller (its §5)."""

    rounds: int = 0
    """Rounds after the controller (0 = none): C plays, M is fine-tuned, C retrained."""
    episodes: int = 200
    """Real episodes the last round's controller plays each round (added to M's data)."""
    seed: int = 7_000_000
    """Round r's episode i uses game seed seed + 10000 r + i (apart from every other set)."""
    rnn_epochs: int = 5
    """Epochs of fine-tuning M each round, from the last round's M (the best epoch is kept)."""
    generations: int = 30
    """CMA-ES generations each round, starting at the last round's controller."""
    which: Which = "mean"
    """The controller of each round that plays, seeds the next round and is scored."""
    eval_episodes: int = 100
    """Each round's C on the choice seeds eval_seed + i (the same every round, not evaluate's)."""
    eval_seed: int = 5_000_000


@dataclass
class RunConfig:
    """Everything a pipeline run needs: one table per stage."""

    run_dir: str = "runs/default"
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    show: ShowConfig = field(default_factory=ShowConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)


STAGES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunConfig))[1:]
"""The stage tables of a config, in pipeline order (``run_dir`` is not one)."""


def _in(lo: float, hi: float, closed: bool) -> tuple[str, Callable[[Any], bool]]:
    if closed:
        return f"in [{lo:g}, {hi:g}]", lambda v: lo <= v <= hi
    return f"in [{lo:g}, {hi:g})", lambda v: lo <= v < hi


_AT_LEAST_1: tuple[str, Callable[[Any], bool]] = (">= 1", lambda v: v >= 1)
_AT_LEAST_0: tuple[str, Callable[[Any], bool]] = (">= 0", lambda v: v >= 0)
RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **dict.fromkeys(
        ("epochs", "batch_size", "seq_len", "skip_ahead", "max_steps", "rollouts", "episodes",
         "generations", "dream_chunks", "hidden", "select_rollouts", "n_components", "fps",
         "scale", "decoder_width", "rnn_epochs", "jobs"),
        _AT_LEAST_1,
    ),
    **dict.fromkeys(
        ("episode", "eval_episodes", "workers", "threads", "prefetch", "retries",
         "patience", "max_minutes", "grad_clip", "free_bits", "checkpoint_minutes", "beta",
         "bright_weight", "select_top", "eval_every", "model_index", "models", "tau_sigma",
         "rounds"),
        _AT_LEAST_0,
    ),
    **dict.fromkeys(("lr", "sigma0", "tau", "tau_pi"), ("> 0", lambda v: v > 0)),
    **dict.fromkeys(("val_fraction", "dream_dropout"), _in(0, 1, closed=False)),
    **dict.fromkeys(("p_change", "done_threshold"), _in(0, 1, closed=True)),
    "popsize": (">= 2 (CMA-ES)", lambda v: v >= 2),
    "commit": (">= -1 (-1 = sample the component from pi)", lambda v: v >= -1),
}  # fmt: skip
"""Range of the numeric fields, by field name (the same name means the same in every table)."""


def coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert ``value`` (from TOML or a command-line string) to the field type ``typ``."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value, args[0], where)
    if origin is Literal:
        allowed = typing.get_args(typ)
        if isinstance(value, str) and value in allowed:
            return value
        names = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{where}: expected one of {names}, got {value!r}")
    if origin in (list, tuple):
        (item,) = typing.get_args(typ)[:1]
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [coerce(v, item, where) for v in value]
    if typ is bool:
        word = value.lower() if isinstance(value, str) else value  # a TOML 1 is no bool
        if isinstance(value, bool) or word in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return word in (True, "true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ in (int, float, str):
        if typ is int and isinstance(value, bool | float) and not float(value).is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            out = typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None
        if typ is float and not math.isfinite(out):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return out
    raise ConfigError(f"{where}: unsupported field type {typ!r}")


def check(key: str, value: Any, where: str) -> None:
    """Raise a ConfigError naming ``where`` if ``value`` breaks ``RULES[key]``."""
    rule = RULES.get(key)
    if rule is not None and value is not None and not rule[1](value):
        raise ConfigError(f"{where}: must be {rule[0]}, got {value!r}")


def _apply(obj: Any, values: dict[str, Any], source: str, prefix: str = "") -> None:
    """Set ``values`` (a TOML table) on the config dataclass ``obj``; errors name ``source``
    (a file, an override) and the dotted key."""
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        name = prefix + key
        if key not in hints:
            table = f" in [{prefix.rstrip('.')}]" if prefix else ""
            known = ", ".join(hints)
            raise ConfigError(f"{source}: unknown key {key!r}{table} (known: {known})")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {name}: expected a table")
            _apply(getattr(obj, key), value, source, f"{name}.")
        else:
            where = f"{source}: {name}"
            value = coerce(value, hints[key], where)
            check(key, value, where)
            setattr(obj, key, value)


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """Defaults, then the TOML file at ``path``, then ``section.key=value`` overrides."""
    cfg = RunConfig()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
        _apply(cfg, data, str(path))
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        parts = key.strip().split(".")
        nested: dict[str, Any] = {parts[-1]: value.strip()}
        for p in reversed(parts[:-1]):
            nested = {p: nested}
        _apply(cfg, nested, f"override {item!r}")
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-serialisable copy of a config dataclass."""
    return dataclasses.asdict(cfg)
