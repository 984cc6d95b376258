"""Loading what the stages wrote: weights files, V, M, latents and dream starts.

The layer between the pure models (models/) and everything that uses trained models
(dreams, analysis, control, report, shipped). Trainers save through it too, so the file
format lives in one place.

Weights are two files, replaced as one unit (``io.write_pair``: killed at any instant, the
writer leaves the old pair or the new one, never a mix)::

    NAME.safetensors   tensors (a checkpoint: model weights "model.*" and optimizer tensors
                       "optim.<param>.<key>")
    NAME.json          metadata (arch, config, metrics; a checkpoint's step and optimizer
                       param groups) and the sha256 of the .safetensors file, so a torn or
                       mismatched pair is caught

No pickle anywhere: safetensors holds only tensors, JSON holds the rest.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from mdnworld.errors import CheckpointError, ConfigError, DataError, EpisodeFileError, MissingError
from mdnworld.io import NpzReader, open_npz, read_json, read_pair, write_npz, write_pair
from mdnworld.layout import RunLayout, episode_index
from mdnworld.models.mdnrnn import MDNRNNArch, StandardisedMDNRNN
from mdnworld.models.vae import VAE, VAEArch

CHECKPOINT_FORMAT = "mdnworld.checkpoint/1"
LATENT_FORMAT = "mdnworld.latents/1"
T = TypeVar("T")


# --- weights files ---


def save_weights(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` (meta + checksum) as
    one unit (``io.write_pair``): a kill at any instant leaves the previous pair or this one."""
    data = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    write_pair(path, data, meta)


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a pair written by ``save_weights``; checks the checksum (a save killed after its
    JSON is read from its pending file, ``io.read_pair``). Tensors on the CPU."""
    try:
        data, meta = read_pair(path)
    except (FileNotFoundError, ValueError) as e:
        raise CheckpointError(str(e)) from None
    meta_path = path.with_suffix(".json")
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{meta_path}: expected a JSON object (the weights' meta), got {type(meta).__name__}"
        )
    if data is None:
        raise CheckpointError(
            f"{path}: checksum does not match {path.with_suffix('.json').name} (corrupt, "
            "truncated, or the two files come from different saves)"
        )
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None
    return tensors, meta


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    """``module.load_state_dict`` with an error naming the file and the first mismatches."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if extra:
            parts.append(f"unexpected {extra[:3]}")
        if wrong:
            k = wrong[0]
            parts.append(
                f"shape of {k}: {tuple(state[k].shape)} in file, model wants {tuple(own[k].shape)}"
            )
        raise CheckpointError(f"{where}: does not match the model ({'; '.join(parts)})")
    module.load_state_dict(state)


def save_checkpoint(
    stem: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]
) -> None:
    """Model + optimizer state + ``meta`` (JSON-serialisable) as ``stem.safetensors/.json``."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"optim.{pid}.{key}"] = t
    save_weights(
        stem.with_suffix(".safetensors"),
        tensors,
        {"format": CHECKPOINT_FORMAT, "meta": meta, "param_groups": opt["param_groups"]},
    )


def load_checkpoint(
    stem: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote; returns its ``meta``."""
    path = stem.with_suffix(".safetensors")
    tensors, info = load_weights(path)
    if info.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {info.get('format')!r}")
    if not isinstance(info.get("meta"), dict):
        raise CheckpointError(f"{path}: its .json has no 'meta' table")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    load_state_strict(model, model_state, path)
    if optimizer is not None:
        try:
            state: dict[int, dict[str, torch.Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith("optim."):
                    _, pid, key = k.split(".", 2)
                    state.setdefault(int(pid), {})[key] = v
            optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: optimizer state does not match ({e})") from None
    return info["meta"]


# --- trained V and M ---


def read_meta(path: Path, what: str) -> dict[str, Any]:
    """A JSON object file (a weights meta, a manifest); an error naming it otherwise."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object ({what}), got {type(meta).__name__}")
    return meta


def _arch_of(meta: dict[str, Any], path: Path, cls: type) -> Any:
    """``cls(**meta["arch"])`` with an error naming the file when it is missing or wrong."""
    meta_path = path.with_suffix(".json")
    arch = meta.get("arch")
    if arch is None:
        raise CheckpointError(f"{meta_path}: no 'arch' table; not the meta of a trained model")
    if not isinstance(arch, dict):
        raise CheckpointError(f"{meta_path}: 'arch' is {type(arch).__name__}, expected a table")
    try:
        return cls(**arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(
            f"{meta_path}: 'arch' does not describe a {cls.__name__} ({e})"
        ) from None


def load_vae(run_dir: Path | str, device: torch.device | str = "cpu") -> tuple[VAE, dict]:
    """The trained V of a run (``vae/model.safetensors``) in eval mode, and its meta."""
    path = RunLayout(run_dir).vae_model
    if not path.exists():
        raise MissingError(f"{path}: no trained V; run `mdnworld train-vae` first")
    tensors, meta = load_weights(path)
    model = VAE(_arch_of(meta, path, VAEArch))
    load_state_strict(model, tensors, path)
    return model.to(device).eval(), meta


def load_mdnrnn(
    run_dir: Path | str, index: int = 0, device: torch.device | str = "cpu"
) -> tuple[StandardisedMDNRNN, dict[str, Any]]:
    """Trained M ``index`` of a run (``rnn/model_<index>/model.safetensors``) in eval mode,
    and its meta. Inputs and outputs are latents in the VAE's units. Raises CheckpointError
    naming the file if it does not fit the run's latents."""
    run = RunLayout(run_dir)
    path = run.rnn_model(index)
    if not path.exists():
        raise MissingError(f"{path}: no trained M {index}; run `mdnworld train-rnn` first")
    tensors, meta = load_weights(path)
    man_path = run.latent_manifest
    if man_path.exists():
        man = read_meta(man_path, "the latents' manifest")
        if man.get("latent_dim") != meta.get("latent_dim"):
            raise CheckpointError(
                f"{path}: trained on latents of size {meta.get('latent_dim')}, {man_path} "
                f"says {man.get('latent_dim')}"
            )
        if man.get("vae_sha256") != meta.get("vae_sha256"):
            raise CheckpointError(
                f"{path}: trained on latents of another VAE than the one in {man_path}"
            )
    model = StandardisedMDNRNN(_arch_of(meta, path, MDNRNNArch))
    load_state_strict(model, tensors, path)
    return model.to(device).eval(), meta


# --- latents ---

LATENT_ARRAYS = ("mu", "logvar", "actions", "rewards", "dones", "seed")
LATENT_DTYPES = ("f4", "f4", "f4", "f4", "?", "i8")


class LatentInfo(NamedTuple):
    length: int
    seed: int
    vae_sha256: str | None  # the V that made it; None: an old file (see train/encode.py)


def _latent_vae(z: NpzReader) -> str | None:
    if "vae_sha256" not in z.headers:
        return None
    h = z.headers["vae_sha256"]
    if h.dtype.kind != "U" or h.shape != ():
        raise EpisodeFileError(z.path, f"'vae_sha256' is {h.dtype} {h.shape}, not one string")
    return str(z.array("vae_sha256")[()])


def _latent_header(z: NpzReader) -> int:
    """Every array's header checked (present, dtype, shape, C order); -> T."""
    z.require(LATENT_ARRAYS)
    h = z.headers
    t, zdim = h["mu"].shape if len(h["mu"].shape) == 2 else (0, 0)
    shapes = [(t, zdim), (t, zdim), (t, 1), (t,), (t,), ()]
    for key, shape, dtype in zip(LATENT_ARRAYS, shapes, LATENT_DTYPES, strict=True):
        if t < 1 or h[key].shape != shape:
            raise EpisodeFileError(z.path, f"'{key}' has shape {h[key].shape}, expected {shape}")
        if h[key].dtype != np.dtype(dtype) or h[key].fortran_order:
            raise EpisodeFileError(
                z.path, f"'{key}' is {h[key].dtype}, expected {np.dtype(dtype)} in C order"
            )
    return t


def latent_info(path: Path | str) -> LatentInfo:
    """Length, seed and maker of a latent file, its headers checked, without reading mu."""
    with open_npz(path) as z:
        return LatentInfo(_latent_header(z), int(z.array("seed")), _latent_vae(z))


def load_latents(
    path: Path | str, latent_dim: int | None = None, vae_sha256: str | None = None
) -> dict[str, np.ndarray]:
    """One encoded episode, validated (shapes, dtypes, lengths; errors name the file), and
    refused if it records another V than ``vae_sha256`` or holds a non-finite value. A file
    that records no V (written before latents did) is accepted: pass the V of a manifest that
    vouches for it."""
    path = Path(path)
    with open_npz(path) as z:
        _latent_header(z)
        d = {k: z.array(k) for k in LATENT_ARRAYS}
        made_by = _latent_vae(z)
    if vae_sha256 and made_by is not None and made_by != vae_sha256:
        raise EpisodeFileError(
            path,
            f"made by another V ({made_by[:12]}...) than the run's ({vae_sha256[:12]}...); "
            "delete it and run `mdnworld encode` to encode it again",
        )
    zdim = d["mu"].shape[1]
    if latent_dim is not None and zdim != latent_dim:
        raise EpisodeFileError(path, f"latent size {zdim}, expected {latent_dim}")
    for key in ("mu", "logvar", "actions", "rewards"):  # what M trains on and dreams start from
        bad = ~np.isfinite(d[key])
        if bad.any():
            t = int(np.flatnonzero(bad.reshape(len(bad), -1).any(1))[0])
            raise EpisodeFileError(
                path, f"'{key}' is not finite (first at frame {t}); encode this episode again"
            )
    return d


def read_latent_manifest(
    run_dir: Path | str, latent_dim: int = 0, check_vae: bool = True
) -> dict[str, Any]:
    """``latents/manifest.json``, checked: its ``latent_dim`` against ``latent_dim`` (0: any)
    and (``check_vae``) its ``vae_sha256`` against the run's current V."""
    run = RunLayout(run_dir)
    path = run.latent_manifest
    if not path.exists():
        raise MissingError(f"{path}: no latents; run `mdnworld encode` first")
    man = read_meta(path, "the latents' manifest")
    if not isinstance(man.get("latent_dim"), int) or man["latent_dim"] < 1:
        raise DataError(f"{path}: no valid 'latent_dim' ({man.get('latent_dim')!r})")
    sha = man.get("vae_sha256")
    if not isinstance(sha, str) or len(sha) != 64 or sha.strip("0123456789abcdef"):
        raise DataError(f"{path}: no valid 'vae_sha256' ({sha!r}); delete it and run encode")
    if latent_dim and latent_dim != man["latent_dim"]:
        raise DataError(
            f"{path}: the latents have size {man['latent_dim']}, the config asks for "
            f"rnn.latent_dim = {latent_dim} (set it to 0 to follow the latents)"
        )
    vae_json = run.vae_meta
    if check_vae and vae_json.exists():
        vae = read_meta(vae_json, "V's meta")
        if vae.get("sha256") != sha:
            raise DataError(
                f"{path}: the latents were made by another VAE than {run.vae_model}; run "
                "`mdnworld encode` again (into a fresh latents/)"
            )
        arch = vae.get("arch") if isinstance(vae.get("arch"), dict) else {}
        vae_z = arch.get("latent_dim", man["latent_dim"])
        if vae_z != man["latent_dim"]:
            raise DataError(f"{path}: latent_dim {man['latent_dim']} but {vae_json} has {vae_z}")
    return man


# --- where dreams start ---


@dataclass
class Starts:
    """Real starting points: latents z (B, Z) taken at step ``t`` of ``episodes``."""

    z: Tensor
    episodes: list[int]
    t: int
    teacher: tuple[Tensor, Tensor] | None = None  # (B, W + 1, Z), (B, W, 1) when asked


STARTS_FILE = "starts.npz"
"""Start latents of a run made from shipped models (``RunLayout.starts``; shipped.py): ``t``
(S,) int, and for each listed step t: ``episodes_<t>`` (N,) int, ``mu_<t>`` (N, Z)."""


class StartBank:
    """Where dreams start: mu of real frames of the training episodes.

    Read from the run's encoded episodes (``latents/ep_*.npz``: every step, and the actions
    for teacher forcing) or, in a run made from shipped models, from ``latents/starts.npz``
    (only the steps t it lists).
    """

    def __init__(
        self,
        episodes: dict[int, dict[str, np.ndarray]] | None = None,
        rows: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.episodes = episodes or {}  # episode -> {"mu": (T, Z), "actions": (T, 1)}
        self.rows = rows or {}  # t -> (episode ids (N,), mu (N, Z))

    @classmethod
    def from_run(cls, run_dir: Path | str) -> StartBank:
        run = RunLayout(run_dir)
        split = run.rnn_split
        if not split.exists():
            raise MissingError(f"{split}: no train/validation split; run train-rnn first")
        train = set(read_meta(split, "the train/validation split").get("train", []))
        paths = [p for p in run.latent_files() if episode_index(p) in train]
        if paths:  # latents of the run's V only (the dreams are decoded by it)
            vae = read_latent_manifest(run.root).get("vae_sha256")
            eps = {episode_index(p): load_latents(p, vae_sha256=vae) for p in paths}
            return cls(episodes={i: {k: d[k] for k in ("mu", "actions")} for i, d in eps.items()})
        shipped = run.starts
        if not shipped.exists():
            raise MissingError(
                f"{run.latents_dir}: no encoded training episodes and no {shipped.name}; "
                "run `mdnworld encode` first"
            )
        with np.load(shipped, allow_pickle=False) as f:
            rows = {int(t): (f[f"episodes_{t}"], f[f"mu_{t}"].astype(np.float32)) for t in f["t"]}
        return cls(rows=rows)

    def at(self, t: int, teacher_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Episodes (N,) long enough to start at step t (after teacher_steps more), mu (N, Z)."""
        if self.episodes:
            need = t + teacher_steps + 1
            ids = np.array(sorted(i for i, d in self.episodes.items() if len(d["mu"]) >= need))
            if not len(ids):
                raise ConfigError(f"no episode has the {need} steps needed to start at t={t}")
            return ids, np.stack([self.episodes[i]["mu"][t] for i in ids])
        if teacher_steps or t not in self.rows:
            raise ConfigError(
                f"these shipped start latents hold steps {sorted(self.rows)} only, without "
                f"actions: start_t={t}, teacher_steps={teacher_steps} needs the encoded episodes"
            )
        return self.rows[t]

    def sample(
        self, n: int, t: int = 0, rng: np.random.Generator | None = None, teacher_steps: int = 0
    ) -> Starts:
        """n starts: mu at step t of training episodes drawn at random (with replacement);
        with ``teacher_steps`` W also the real (z, a) of the W steps from t on."""
        rng = rng or np.random.default_rng(0)
        ids, mu = self.at(t, teacher_steps)
        pick = rng.integers(0, len(ids), n)
        chosen = [int(ids[j]) for j in pick]
        teacher = None
        if teacher_steps:
            end = t + teacher_steps + 1
            z_real = np.stack([self.episodes[i]["mu"][t:end] for i in chosen])
            a_real = np.stack([self.episodes[i]["actions"][t : end - 1] for i in chosen])
            teacher = torch.from_numpy(z_real), torch.from_numpy(a_real)
        return Starts(z=torch.from_numpy(mu[pick]), episodes=chosen, t=t, teacher=teacher)

    def save_rows(self, path: Path, steps: Sequence[int], dtype: type = np.float16) -> None:
        """Write the start latents at ``steps`` as a starts.npz (for shipping)."""
        arrays: dict[str, np.ndarray] = {"t": np.array(steps, np.int64)}
        for t in steps:
            ids, mu = self.at(t)
            arrays[f"episodes_{t}"], arrays[f"mu_{t}"] = ids.astype(np.int64), mu.astype(dtype)
        write_npz(path, arrays)


# --- loaded models, cached by file identity ---


FileStamp = tuple[str, int, int, int] | tuple[str, None]
"""A file's identity: (resolved path, inode, mtime_ns, size), or (resolved path, None) when it
is missing."""


def file_stamp(path: Path | str) -> FileStamp:
    """The identity of ``path`` now: rewriting it (even atomically, to the same size within one
    clock tick: a new inode) changes it."""
    resolved = Path(path).resolve()
    try:
        st = resolved.stat()
    except FileNotFoundError:
        return (str(resolved), None)
    return (str(resolved), st.st_ino, st.st_mtime_ns, st.st_size)


class ModelCache:
    """Loaded models (or anything built from run-directory files) kept for reuse in a
    long-lived process (an executor's worker, a notebook), never stale.

    ``get(files, build, *extra)`` returns the value cached under the ``file_stamp`` of every
    file in ``files`` plus the hashable ``extra`` (e.g. the device), or calls ``build()`` and
    caches what it returns. A retrained model rewrites its weights, so its stamp changes and
    the next ``get`` loads it afresh; a missing file is stamped too (a value built while it was
    missing is not served once it exists). A ``build`` that raises caches nothing. The least
    recently used values beyond ``maxsize`` are dropped; ``clear()`` drops all. Values are
    shared: callers must not change them (models are in eval mode; do not train them).
    """

    def __init__(self, maxsize: int = 6) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[Hashable, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, files: Sequence[Path | str], build: Callable[[], T], *extra: Hashable) -> T:
        key = (tuple(file_stamp(p) for p in files), *extra)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


MODELS = ModelCache()
"""The process's cache of loaded V and M (``cached_vae``, ``cached_mdnrnn``) and of what the
controller builds from the run (its dream starts)."""


def cached_vae(run_dir: Path | str, device: torch.device | str = "cpu") -> VAE:
    """``load_vae(run_dir, device)[0]``, loaded once per version of its files (``MODELS``)."""
    run = RunLayout(run_dir)
    files = (run.vae_model, run.vae_meta)
    return MODELS.get(files, lambda: load_vae(run_dir, device)[0], "vae", str(device))


def cached_mdnrnn(
    run_dir: Path | str, index: int = 0, device: torch.device | str = "cpu"
) -> StandardisedMDNRNN:
    """``load_mdnrnn(run_dir, index, device)[0]``, loaded once per version of its files (its
    weights and the latents' manifest it is checked against; ``MODELS``)."""
    run = RunLayout(run_dir)
    files = (run.rnn_model(index), run.rnn_meta(index), run.latent_manifest)
    return MODELS.get(files, lambda: load_mdnrnn(run_dir, index, device)[0], "mdnrnn", str(device))
