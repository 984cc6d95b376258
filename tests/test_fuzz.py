"""Every loader fuzzed (issue 17 item 7): random corruptions of files written by the package's
own writers (byte flips, truncations, zeroed ranges; JSON values of the wrong type, deleted keys,
whole documents replaced) must give a ``mdnworld.errors.UserError`` naming the file, never
another exception, and never a silent wrong result: what loads equals what was written.

Bounded and derandomized (the same examples on every run); no game, no training.
``KNOWN_LEAKS`` keeps, as regression tests, the corruptions hypothesis found that once leaked a
raw exception (the third field says which).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import json
import math
import shutil
import types
import typing
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mdnworld import records
from mdnworld.config import RULES, STAGES, RunConfig, load_config
from mdnworld.errors import UserError
from mdnworld.fields import literal_choices
from mdnworld.io import write_npz
from mdnworld.layout import RunLayout

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=25)

_n = itertools.count()


def _fresh(tmp_path: Path) -> Path:
    """A new folder per hypothesis example (the fixture's tmp_path is shared by all)."""
    d = tmp_path / f"x{next(_n)}"
    d.mkdir()
    return d


# --- corruptions ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Corruption:
    """Byte edits, printed short when hypothesis reports a failing example."""

    kind: str  # "flip": (position, xor) pairs; "zero": (start, length); "truncate": (length,)
    edits: tuple

    def __call__(self, data: bytes) -> bytes:
        out = bytearray(data)
        if self.kind == "truncate":
            return bytes(out[: self.edits[0]])
        if self.kind == "zero":
            a, k = self.edits
            out[a : a + k] = bytes(len(out[a : a + k]))
            return bytes(out)
        for at, xor in self.edits:
            out[at] ^= xor
        return bytes(out)


@st.composite
def corruption(draw: st.DrawFn, n: int, hot: tuple[int, ...] = ()) -> Corruption:
    """1-3 bytes flipped, a range zeroed, or a cut, in a file of ``n`` bytes. Positions favour
    ``hot`` (where a zip member's header starts) and the end (the zip's central directory)."""

    def pos() -> int:
        where = draw(st.sampled_from(["any", "hot", "end"] if hot else ["any", "end"]))
        if where == "hot":
            return min(n - 1, draw(st.sampled_from(hot)) + draw(st.integers(0, 160)))
        if where == "end":
            return n - draw(st.integers(1, min(n, 400)))
        return draw(st.integers(0, n - 1))

    kind = draw(st.sampled_from(["flip", "zero", "truncate"]))
    if kind == "truncate":
        return Corruption(kind, (pos(),))
    if kind == "zero":
        return Corruption(kind, (pos(), draw(st.integers(1, 64))))
    flips = tuple((pos(), draw(st.integers(1, 255))) for _ in range(draw(st.integers(1, 3))))
    return Corruption(kind, flips)


class Blob:
    """A valid file's bytes and where its zip members start (short repr for reports)."""

    def __init__(self, data: bytes, hot: tuple[int, ...] = (), extra: Any = None) -> None:
        self.data, self.hot, self.extra = data, hot, extra

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes>"

    def corrupted(self, draw: st.DataObject) -> bytes:
        return draw.draw(corruption(len(self.data), self.hot))(self.data)


def _zip_hot(path: Path) -> tuple[int, ...]:
    """Where each member's local header starts, and the central directory."""
    with zipfile.ZipFile(path) as zf:
        return (*(i.header_offset for i in zf.infolist()), zf.start_dir)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=5,
)  # fmt: skip
"""Any JSON value (NaN and infinities included: Python's json writes and reads them)."""


def _paths(doc: Any, at: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON document: () for the whole, then keys and indices."""
    yield at
    if isinstance(doc, dict | list):
        items = doc.items() if isinstance(doc, dict) else enumerate(doc)
        for k, v in items:
            yield from _paths(v, (*at, k))


@st.composite
def mutation(draw: st.DrawFn, doc: Any, keep: tuple[str, ...] = ()) -> Any:
    """``doc`` with one value replaced by any JSON value, or one key or item deleted (never a
    top-level key in ``keep``)."""
    places = [p for p in _paths(doc) if not (p and p[0] in keep)]
    place = draw(st.sampled_from(places))
    new = copy.deepcopy(doc)
    if not place:
        return draw(JSON)
    parent = new
    for k in place[:-1]:
        parent = parent[k]
    if draw(st.booleans()):
        del parent[place[-1]]
    else:
        parent[place[-1]] = draw(JSON)
    return new


def _named(e: UserError, *paths: Path) -> bool:
    return any(p.name in str(e) for p in paths)


def _same(a: Any, b: Any) -> bool:
    """Equal, arrays by dtype, shape and bytes (NaN equal to NaN)."""
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and _same(a.numpy(), b.numpy())
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and (
            a.tobytes() == b.tobytes())  # fmt: skip
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and _same(dataclasses.asdict(a), dataclasses.asdict(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and isinstance(b, float) and
                      math.isnan(b))  # fmt: skip


def _loads_the_same_or_names(
    load: Callable[[Path], Any], path: Path, original: Any, names: tuple[Path, ...] = ()
) -> None:
    """The property: ``load(path)`` equals ``original``, or raises a UserError naming it (or
    one of ``names``: the file beside it that is to blame)."""
    try:
        got = load(path)
    except UserError as e:
        assert _named(e, path, *names), f"{type(e).__name__} does not name {path.name}: {e}"
        return
    assert _same(got, original), f"{path.name} loaded, but not as written"


# --- leaks found by these tests in loaders this file does not own ----------------------------


def _nul_header(data: bytes) -> bytes:
    """The first npy header's opening brace made a NUL byte (a zeroed range can do it)."""
    out = bytearray(data)
    out[data.index(b"{'descr'")] = 0
    return bytes(out)


def _zip_flag(xor: int) -> Callable[[bytes], bytes]:
    """The first central-directory entry's general-purpose flags xor'ed (bit 0: encrypted,
    bit 6: strong encryption): one flipped byte."""

    def edit(data: bytes) -> bytes:
        import io

        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            at = zf.start_dir + 8
        return data[:at] + bytes([data[at] ^ xor]) + data[at + 1 :]

    return edit


NPZ_READER = "io.NpzReader (load_episode, episode_info, FrameStore, load_latents) let through "
KNOWN_LEAKS = {
    "episode npy header with a NUL": ("load_episode", _nul_header, NPZ_READER
                                      + "tokenize.TokenError('EOF in multi-line statement') "
                                      "from numpy's header parser (io.py NpzReader._header)"),
    "episode flagged encrypted": ("episode_info", _zip_flag(1), NPZ_READER
                                  + "RuntimeError(\"File <ZipInfo filename='frames.npy' ...> "
                                  "is encrypted, password required for extraction\")"),
    "episode flagged strongly encrypted": ("FrameStore", _zip_flag(64), NPZ_READER
                                           + "NotImplementedError('strong encryption (flag "
                                           "bit 6)')"),
    "latents flagged encrypted": ("load_latents", _zip_flag(1), NPZ_READER
                                  + "RuntimeError(\"File <ZipInfo filename='mu.npy' ...> is "
                                  "encrypted, password required for extraction\")"),
    "model.json not UTF-8": ("load_weights", lambda d: bytes([d[0] ^ 0x80]) + d[1:],
                             "io.read_json let UnicodeDecodeError through; load_weights wrapped "
                             "it as CheckpointError(\"'utf-8' codec can't decode byte 0xfb in "
                             "position 0: invalid start byte\"): no file named"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(KNOWN_LEAKS))
def test_a_known_leak(
    case: str, episode_bytes: Blob, latent_bytes: Blob, weights: tuple, tmp_path: Path
) -> None:
    from mdnworld.checkpoints import load_latents, load_weights
    from mdnworld.data.episodes import episode_info, load_episode
    from mdnworld.data.frames import FrameStore

    loader, edit, _ = KNOWN_LEAKS[case]
    if loader == "load_weights":
        tensors, meta = weights
        path = _pair(tmp_path, tensors.data, edit(meta.data))
        names: tuple[Path, ...] = (path.with_suffix(".json"),)
    else:
        good = latent_bytes if loader == "load_latents" else episode_bytes
        path, names = _corrupt_file(tmp_path, "ep_000000.npz", edit(good.data)), ()
    load = {"load_episode": load_episode, "episode_info": episode_info,
            "FrameStore": lambda p: FrameStore([p]), "load_latents": load_latents,
            "load_weights": load_weights}[loader]  # fmt: skip
    with pytest.raises(UserError) as e:
        load(path)
    assert _named(e.value, path, *names), e.value


# --- episode files and the frame store ------------------------------------------------------


def _episode(path: Path, T: int = 2) -> Any:
    from mdnworld.data.episodes import Episode, save_episode

    rng = np.random.default_rng(0)
    dones = np.zeros(T, bool)
    dones[-1] = True
    ep = Episode(
        rng.integers(0, 256, (T, 64, 64, 3), dtype=np.uint8),
        rng.uniform(-1, 1, (T, 1)).astype(np.float32),
        np.ones(T, np.float32), dones, 7,
    )  # fmt: skip
    save_episode(path, ep)
    return ep


@pytest.fixture(scope="module")
def episode_bytes(tmp_path_factory: pytest.TempPathFactory) -> Blob:
    path = tmp_path_factory.mktemp("ep") / "ep_000000.npz"
    _episode(path)
    return Blob(path.read_bytes(), _zip_hot(path))


def _corrupt_file(tmp_path: Path, name: str, bad: bytes) -> Path:
    path = _fresh(tmp_path) / name
    path.write_bytes(bad)
    return path


@pytest.mark.parametrize(
    "loader",
    ["load_episode", "episode_info"],
)  # fmt: skip
@FUZZ
@given(data=st.data())
def test_an_episode_file_corrupted(loader: str, episode_bytes: Blob, tmp_path: Path,
                                   data: st.DataObject) -> None:  # fmt: skip
    from mdnworld.data import episodes

    load = getattr(episodes, loader)
    original = load(_corrupt_file(tmp_path, "ep_000000.npz", episode_bytes.data))
    path = _corrupt_file(tmp_path, "ep_000000.npz", episode_bytes.corrupted(data))
    _loads_the_same_or_names(load, path, original)


@FUZZ
@given(data=st.data())
def test_the_frame_store_over_a_corrupted_episode(episode_bytes: Blob, tmp_path: Path,
                                                  data: st.DataObject) -> None:  # fmt: skip
    """The store reads frames with pread, unchecked (its point is speed), so flips inside the
    frame bytes are invisible to it; everything else (zip and npy headers, the central
    directory, a cut) must be named."""
    from mdnworld.data.frames import FRAME_BYTES, FrameStore

    good = episode_bytes.data
    clean = _corrupt_file(tmp_path, "ep_000000.npz", good)
    store = FrameStore([clean])
    original = store.read(np.arange(len(store)))
    start = int(store.offsets[0])
    end = start + len(store) * FRAME_BYTES
    bad = episode_bytes.corrupted(data)
    if len(bad) == len(good):  # flips and zeros: only outside the frame bytes
        bad = bad[:start] + good[start:end] + bad[end:]
    path = _corrupt_file(tmp_path, "ep_000000.npz", bad)

    def load(p: Path) -> np.ndarray:
        s = FrameStore([p])
        return s.read(np.arange(len(s)))

    _loads_the_same_or_names(load, path, original)


# --- latents and their manifest --------------------------------------------------------------


@pytest.fixture(scope="module")
def latent_bytes(tmp_path_factory: pytest.TempPathFactory) -> Blob:
    path = tmp_path_factory.mktemp("lat") / "ep_000000.npz"
    rng = np.random.default_rng(1)
    write_npz(path, {
        "mu": rng.normal(size=(3, 4)).astype(np.float32),
        "logvar": rng.normal(size=(3, 4)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (3, 1)).astype(np.float32),
        "rewards": np.ones(3, np.float32), "dones": np.array([0, 0, 1], bool),
        "seed": np.int64(3),
    })  # fmt: skip
    return Blob(path.read_bytes(), _zip_hot(path))


@FUZZ
@given(data=st.data())
def test_a_latent_file_corrupted(latent_bytes: Blob, tmp_path: Path, data: st.DataObject) -> None:
    from mdnworld.checkpoints import load_latents

    original = load_latents(_corrupt_file(tmp_path, "ep_000000.npz", latent_bytes.data))
    path = _corrupt_file(tmp_path, "ep_000000.npz", latent_bytes.corrupted(data))
    _loads_the_same_or_names(load_latents, path, original)


LATENT_MANIFEST = {"format": "mdnworld.latents/1", "vae_sha256": "ab" * 32, "latent_dim": 4}


@FUZZ
@given(doc=mutation(LATENT_MANIFEST), with_v=st.booleans())
def test_a_latent_manifest_with_wrong_values(tmp_path: Path, doc: Any, with_v: bool) -> None:
    """It loads only when it matches V (when there is one): latent_dim an int >= 1."""
    from mdnworld.checkpoints import read_latent_manifest

    run = RunLayout(_fresh(tmp_path))
    run.latents_dir.mkdir()
    run.latent_manifest.write_text(json.dumps(doc))
    if with_v:
        run.vae_dir.mkdir()
        run.vae_meta.write_text(json.dumps({"arch": {"latent_dim": 4}, "sha256": "ab" * 32}))
    try:
        man = read_latent_manifest(run.root)
    except UserError as e:
        assert _named(e, run.latent_manifest), e
        return
    dim = man["latent_dim"]
    assert isinstance(dim, int) and not isinstance(dim, bool) and dim >= 1
    if with_v:
        assert (dim, man["vae_sha256"]) == (4, "ab" * 32)


# --- weights and checkpoints ------------------------------------------------------------------


def _tiny(seed: int = 0) -> tuple[Any, Any]:
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return model, opt


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Blob, Blob]:
    from mdnworld.checkpoints import save_weights

    path = tmp_path_factory.mktemp("w") / "model.safetensors"
    model, _ = _tiny()
    save_weights(path, model.state_dict(), {"arch": {"n": 3}, "steps": 5})
    return Blob(path.read_bytes(), (0,)), Blob(path.with_suffix(".json").read_bytes())


def _pair(tmp_path: Path, tensors: bytes, meta: bytes) -> Path:
    folder = _fresh(tmp_path)
    (folder / "model.json").write_bytes(meta)
    (path := folder / "model.safetensors").write_bytes(tensors)
    return path


@pytest.mark.parametrize("which", ["safetensors", "json"])
@FUZZ
@given(data=st.data())
def test_a_weights_file_corrupted(weights: tuple, tmp_path: Path, which: str,
                                  data: st.DataObject) -> None:  # fmt: skip
    """Bytes of either file: the checksum catches the tensors; the JSON either breaks or (a
    flip inside a value) loads, with the tensors as written."""
    from mdnworld.checkpoints import load_weights

    tensors, meta = weights
    original = load_weights(_pair(tmp_path, tensors.data, meta.data))
    if which == "safetensors":
        path = _pair(tmp_path, tensors.corrupted(data), meta.data)
        _loads_the_same_or_names(load_weights, path, original)
        return
    path = _pair(tmp_path, tensors.data, meta.corrupted(data))
    load = lambda p: load_weights(p)[0]  # noqa: E731
    _loads_the_same_or_names(load, path, original[0], (path.with_suffix(".json"),))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    from mdnworld.checkpoints import save_checkpoint

    stem = tmp_path_factory.mktemp("ck") / "checkpoint"
    model, opt = _tiny()
    save_checkpoint(stem, model, opt, {"step": 5, "epoch": 1})
    meta = json.loads(stem.with_suffix(".json").read_text())
    return stem, meta, {k: v.clone() for k, v in model.state_dict().items()}


def _load_checkpoint_into_fresh(stem: Path) -> tuple[dict, dict]:
    from mdnworld.checkpoints import load_checkpoint

    model, opt = _tiny(seed=1)
    meta = load_checkpoint(stem, model, opt)
    return meta, dict(model.state_dict())


@FUZZ
@given(data=st.data())
def test_a_checkpoint_with_wrong_json_values(checkpoint: tuple, tmp_path: Path,
                                             data: st.DataObject) -> None:  # fmt: skip
    """The JSON rewritten with its checksum kept (a consistent pair with wrong contents):
    format, meta and the optimizer's param groups of any JSON type."""
    stem, meta, state = checkpoint
    doc = data.draw(mutation(meta, keep=("sha256",)))
    folder = _fresh(tmp_path)
    shutil.copy(stem.with_suffix(".safetensors"), folder / "checkpoint.safetensors")
    (folder / "checkpoint.json").write_text(json.dumps(doc))
    path = folder / "checkpoint.safetensors"
    try:
        got, loaded = _load_checkpoint_into_fresh(path)
    except UserError as e:
        assert _named(e, path, path.with_suffix(".json")), e
        return
    # what the file says, as the trainers need it: a JSON object, and the weights as saved
    want = doc.get("meta") if isinstance(doc, dict) else None
    assert isinstance(got, dict) and got == want, got
    assert _same(loaded, state)


@FUZZ
@given(data=st.data())
def test_a_checkpoint_with_wrong_tensors(checkpoint: tuple, tmp_path: Path,
                                         data: st.DataObject) -> None:  # fmt: skip
    """Tensors dropped, renamed or reshaped, saved as a consistent pair (checksum right)."""
    import torch

    from mdnworld.checkpoints import load_weights, save_weights

    stem, meta, state = checkpoint
    tensors, info = load_weights(stem.with_suffix(".safetensors"))
    name = data.draw(st.sampled_from(sorted(tensors)))
    what = data.draw(st.sampled_from(["drop", "rename", "reshape", "dtype"]))
    t = tensors.pop(name)
    if what == "rename":
        names = ["model.x", "optim.x.step", "optim.0", "optim.9.y", "optim.0.exp_avg.x"]
        tensors[data.draw(st.sampled_from(names) | st.text(min_size=1, max_size=12))] = t
    elif what == "reshape":
        shape = data.draw(st.lists(st.integers(0, 3), max_size=3))
        if tuple(shape) == tuple(t.shape):
            return
        tensors[name] = torch.zeros(shape)
    elif what == "dtype":
        tensors[name] = t.to(data.draw(st.sampled_from([torch.int64, torch.float16, torch.bool])))
    folder = _fresh(tmp_path)
    path = folder / "checkpoint.safetensors"
    save_weights(path, tensors, {k: v for k, v in info.items() if k != "sha256"})
    if what == "dtype":  # torch casts a tensor of another dtype as it loads: only no leak
        with contextlib.suppress(UserError):
            _load_checkpoint_into_fresh(path.with_suffix(""))
        return
    load, json_path = _load_checkpoint_into_fresh, path.with_suffix(".json")
    _loads_the_same_or_names(load, path, (meta["meta"], state), (json_path,))


# --- episode manifests ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def episode_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = RunLayout(tmp_path_factory.mktemp("man") / "run")
    entries = []
    for i in range(2):
        ep = _episode(run.episode(i), T=2 + i)
        entries.append({"index": i, "seed": ep.seed, "length": len(ep), "truncated": False})
    doc = {"format": "mdnworld.episodes/1", "frame_shape": [64, 64, 3],
           "config": {"episodes": 2, "base_seed": 7}, "episodes": entries}  # fmt: skip
    run.episode_manifest.write_text(json.dumps(doc))
    return run.root, doc


@FUZZ
@given(data=st.data())
def test_an_episode_manifest_with_wrong_values(episode_run: tuple, tmp_path: Path,
                                               data: st.DataObject) -> None:  # fmt: skip
    """``validate`` names manifest.json (or the file it disagrees with) whenever an entry's
    index, seed, length or truncated flag, the list or the document is not what the files
    hold: an error, never a run reported as all good."""
    from mdnworld.data.episodes import validate_run

    root, doc = episode_run
    new = data.draw(mutation(doc, keep=("format", "frame_shape", "config")))
    if json.dumps(new) == json.dumps(doc):
        return
    run = RunLayout(_fresh(tmp_path) / "run")
    shutil.copytree(root, run.root)
    run.episode_manifest.write_text(json.dumps(new))
    try:
        good, bad = validate_run(run.root)
    except UserError as e:
        assert _named(e, run.episode_manifest), e
        return
    assert bad, f"validate passed a manifest that disagrees with the files: {new}"
    names = [run.episode_manifest, *run.episode_files()]
    assert all(_named(e, *names) for e in bad), bad


# --- configs ----------------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int | str):
        return json.dumps(v) if isinstance(v, str) else str(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _fields(stage: str) -> dict[str, Any]:
    return typing.get_type_hints(type(getattr(RunConfig(), stage)))


FIELD_NAMES = sorted({k for s in STAGES for k in _fields(s)})
TOML_VALUES = st.recursive(
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=8)
    | st.sampled_from(["RES_160X120", "bce", "mse", "none", "bf16", "cpu", "auto", "ray"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=2),
    max_leaves=3,
)  # fmt: skip
SETTING = st.tuples(st.sampled_from([*STAGES, "nope"]),
                    st.sampled_from([*FIELD_NAMES, "nope"]), TOML_VALUES)  # fmt: skip


def _valid(cfg: RunConfig) -> None:
    """Every field of a loaded config has its declared type and range (a float is finite)."""
    for stage in STAGES:
        obj = getattr(cfg, stage)
        for key, typ in _fields(stage).items():
            v = getattr(obj, key)
            if (choices := literal_choices(typ)) is not None:
                assert v in choices, (stage, key, v)
            elif typ is bool:
                assert isinstance(v, bool), (stage, key, v)
            elif typ is int:
                assert isinstance(v, int) and not isinstance(v, bool), (stage, key, v)
            elif typ is float:
                assert isinstance(v, float) and math.isfinite(v), (stage, key, v)
            elif typ is str:
                assert isinstance(v, str), (stage, key, v)
            if key in RULES:
                assert RULES[key][1](v), (stage, key, v)


@FUZZ
@given(items=st.lists(SETTING, max_size=4), run_dir=st.none() | TOML_VALUES)
def test_a_config_file_with_any_values(tmp_path: Path, items: list, run_dir: Any) -> None:
    lines = [] if run_dir is None else [f"run_dir = {_toml_value(run_dir)}"]
    tables: dict[str, dict[str, Any]] = {}
    for stage, key, value in items:
        tables.setdefault(stage, {})[key] = value
    for stage, table in tables.items():
        lines += [f"[{stage}]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items())]
    path = _fresh(tmp_path) / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        cfg = load_config(path)
    except UserError as e:
        assert _named(e, path), e
        return
    _valid(cfg)
    assert isinstance(cfg.run_dir, str)


@FUZZ
@given(overrides=st.lists(st.tuples(st.sampled_from([*STAGES, "x"]),
                                    st.sampled_from([*FIELD_NAMES, "x"]),
                                    st.text(max_size=10)), max_size=3))  # fmt: skip
def test_overrides_with_any_text(overrides: list) -> None:
    items = [f"{s}.{k}={v}" for s, k, v in overrides]
    try:
        cfg = load_config(None, items)
    except UserError as e:
        assert "override" in str(e), e
        return
    _valid(cfg)


@FEW
@given(data=st.binary(max_size=64))
@example(data=b"\xff\xfe[vae]\n")
def test_a_config_file_of_any_bytes(tmp_path: Path, data: bytes) -> None:
    path = _fresh(tmp_path) / "run.toml"
    path.write_bytes(data)
    try:
        _valid(load_config(path))
    except UserError as e:
        assert _named(e, path), e


# --- the CMA-ES state -------------------------------------------------------------------------

N_PARAMS = 5


def _controller_config() -> Any:
    from mdnworld.config import ControllerConfig

    return ControllerConfig(popsize=4, rollouts=1, seed=3)


def _es_summary(loaded: tuple) -> tuple:
    es, best = loaded
    return es.generation, np.asarray(es.mean, np.float64), best["fitness"], best["params"]


@pytest.fixture(scope="module")
def cmaes_state(tmp_path_factory: pytest.TempPathFactory) -> Blob:
    from mdnworld.control.cmaes import CMAES, load_state, save_state

    cfg = _controller_config()
    es = CMAES(N_PARAMS, cfg.sigma0, cfg.popsize, cfg.seed)
    rng = np.random.default_rng(0)
    for _ in range(2):
        es.tell(es.ask(), rng.uniform(0, 100, cfg.popsize))
    best = {"fitness": 99.0, "generation": 2, "params": np.ones(N_PARAMS, np.float32)}
    path = tmp_path_factory.mktemp("cma") / "cmaes_state.npz"
    save_state(path, es, best, cfg)
    original = _es_summary(load_state(path, cfg, N_PARAMS, log=lambda s: None))
    return Blob(path.read_bytes(), _zip_hot(path), original)


def _load_cmaes(path: Path) -> tuple:
    from mdnworld.control.cmaes import load_state

    return _es_summary(load_state(path, _controller_config(), N_PARAMS, log=lambda s: None))


@FUZZ
@given(data=st.data())
def test_a_cmaes_state_corrupted(cmaes_state: Blob, tmp_path: Path, data: st.DataObject) -> None:
    path = _corrupt_file(tmp_path, "cmaes_state.npz", cmaes_state.corrupted(data))
    _loads_the_same_or_names(_load_cmaes, path, cmaes_state.extra)


@FUZZ
@given(data=st.data())
def test_a_cmaes_state_with_wrong_values(cmaes_state: Blob, tmp_path: Path,
                                         data: st.DataObject) -> None:  # fmt: skip
    """Its meta (JSON) or one array replaced, as a well-formed .npz: a named error, or a state
    that resumes (the meta's free-form values, such as the versions, may differ)."""
    original = cmaes_state.extra
    path = _corrupt_file(tmp_path, "cmaes_state.npz", cmaes_state.data)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    name = data.draw(st.sampled_from(sorted(arrays)))
    if name == "meta":
        meta = data.draw(mutation(json.loads(str(arrays["meta"]))))
        arrays["meta"] = np.array(json.dumps(meta))
    else:
        shape = data.draw(st.lists(st.integers(0, 6), max_size=2))
        dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_, "<U3"]))
        fills = [0, 1, np.nan, np.inf] if dtype in (np.float64, np.float32) else [0, 1]
        fill = "ab" if dtype == "<U3" else data.draw(st.sampled_from(fills))
        arrays[name] = np.full(shape, fill, dtype)
    write_npz(path, arrays)
    try:
        loaded = _load_cmaes(path)
    except UserError as e:
        assert _named(e, path), e
        return
    assert loaded[0] == original[0]


# --- shipped models ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The repository's shipped folder, hard-linked (each example writes its own MANIFEST)."""
    from mdnworld.shipped import DEFAULT_DIR

    folder = tmp_path_factory.mktemp("shipped") / "models"
    shutil.copytree(DEFAULT_DIR, folder, copy_function=_link)
    return folder, json.loads((DEFAULT_DIR / "MANIFEST.json").read_text())


def _link(src: str, dst: str) -> None:
    import os

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@FEW
@given(data=st.data())
@example(data=None)
def test_a_shipped_manifest_with_wrong_values(shipped: tuple, tmp_path: Path,
                                              data: st.DataObject | None) -> None:  # fmt: skip
    """``from-shipped`` with any MANIFEST.json: a named error, or a run with V and the Ms it
    lists, and nothing read from outside the shipped folder."""
    from mdnworld.shipped import init_from_shipped

    folder, doc = shipped
    if data is not None:
        doc = data.draw(mutation(doc))
        if isinstance(doc, dict) and isinstance(doc.get("files"), dict) and data.draw(
            st.booleans()):  # fmt: skip
            doc["files"][data.draw(st.sampled_from(["../MANIFEST.json", "/etc/hostname",
                                                    "rnn/../../x"]))] = "ab"  # fmt: skip
    models = _fresh(tmp_path) / "models"
    shutil.copytree(folder, models, copy_function=_link)
    (models / "MANIFEST.json").unlink()
    (models / "MANIFEST.json").write_text(json.dumps(doc))
    run = RunLayout(models.parent / "run")
    try:
        init_from_shipped(run.root, models, log=lambda s: None)
    except UserError as e:
        assert str(models) in str(e), e
        return
    assert run.vae_model.is_file()
    assert {f"model_{i}" for i in run.rnn_indices()} == set(doc["models"])


# --- the report's readers ---------------------------------------------------------------------

MODEL = {"figure": "components_over_time/model_0.png", "dominant_share": [3, 7], "switches": 1,
         "start_episode": 0}  # fmt: skip
ROW = {"class": "Fireball", "kind": "events", "n_dreams": 2, "median_current": 0.5,
       "median_any": 0.25, "u": 3.0, "p": 0.04, "stars": "*", "null_mean": 0.3, "null_p": 0.1,
       "paper_current": None, "paper_any": None, "paper_stars": None}  # fmt: skip
DOCS: dict[str, tuple[Callable[[Path], Any], Any]] = {
    "components": (records.read_components, {"steps": 10, "warmup": 5, "models": {"0": MODEL}}),
    "worlds_events": (records.read_worlds_events,
                      {"models": [0], "dreams": 2, "steps": 40, "rows": [ROW]}),
    "committed": (records.read_committed, {
        "model": 0, "tests": 2, "steps": 20, "start_t": 5, "classes": ["Explosion"],
        "median_frames": [{"component": 0, "Explosion": 1.5}], "explosion_component": 0,
        "paper": "p", "note": "n"}),
    "scores": (records.read_scores, {
        "controller": "mean", "generation": 1, "episodes": 1, "mean": 200.0, "std": 0.0,
        "min": 200, "max": 200, "solved": False, "per_episode": [{"seed": 1, "score": 200}],
        "reference": {"solved": 750}, "best_video": {"file": "best.mp4", "seed": 1,
                                                     "score": 200}}),
    "controller_meta": (records.read_controller_meta, {
        "generation": 2, "model_index": 0,
        "config": {"tau": 1.15, "popsize": 4, "rollouts": 2, "generations": 2}}),
    "best_fitness": (records.read_best_fitness, {"fitness": 12.5}),
    "episode_manifest": (records.read_episode_manifest, {
        "episodes": [{"index": 0, "seed": 0, "length": 5, "truncated": True}],
        "config": {"episodes": 1}}),
    "vae_meta": (records.read_vae_meta, {
        "arch": {"latent_dim": 4}, "config": {"epochs": 1}, "steps": 3, "train_episodes": 1,
        "val_episodes": 1, "val": {"recon": 1.0, "kl": 2.0}}),
    "rnn_meta": (records.read_rnn_meta, {
        "model_index": 0, "arch": {"n_components": 2}, "best_epoch": 1, "epochs_run": 1,
        "stopped_early": False, "metrics": {
            "val_nll_per_dim": -1.0, "val_baseline_nll_per_dim": -0.5, "train_nll_per_dim": -1.1,
            "train_baseline_nll_per_dim": -0.6, "pi_entropy": 0.6, "pi_entropy_max": 0.69,
            "component_usage": [0.5, 0.5]}}),
    "dream_settings": (records.read_dream_settings, {
        "dreams": 2, "steps": 12, "tau_pi": 1.0, "tau_sigma": 0.01, "warmup": 3,
        "teacher_steps": 0, "p_change": 0.1, "n_components": 2}),
}  # fmt: skip


def _typed(value: Any, typ: Any) -> bool:
    """``value`` fits the record field type ``typ`` (written apart from records.base)."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if typ is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_typed(value, a) for a in args)
    if dataclasses.is_dataclass(typ):
        hints = typing.get_type_hints(typ)
        return isinstance(value, typ) and all(
            _typed(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(typ)
        )
    if origin is tuple:
        return isinstance(value, tuple) and all(_typed(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            _typed(k, args[0]) and _typed(v, args[1]) for k, v in value.items()
        )
    if typ is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)  # str, bool, NoneType  # fmt: skip


@pytest.mark.parametrize("name", list(DOCS))
@FUZZ
@given(data=st.data())
def test_a_results_file_with_wrong_values(name: str, tmp_path: Path, data: st.DataObject) -> None:
    """A DataError naming the file, or a record whose every value has its declared type."""
    read, doc = DOCS[name]
    path = _fresh(tmp_path) / f"{name}.json"
    text = json.dumps(data.draw(mutation(doc))).encode()
    if data.draw(st.booleans()):
        text = Blob(json.dumps(doc).encode()).corrupted(data)
    path.write_bytes(text)
    try:
        rec = read(path)
    except UserError as e:
        assert _named(e, path), e
        return
    typ = float if name == "best_fitness" else type(rec)
    assert _typed(rec, typ), rec


@pytest.mark.parametrize("name", ["components", "worlds_events", "committed", "scores"])
@FEW
@given(data=st.data())
def test_the_report_over_a_results_file_with_wrong_values(name: str, tmp_path: Path,
                                                          data: st.DataObject) -> None:  # fmt: skip
    """The whole page over such a file: a UserError naming the file, or a page."""
    from mdnworld.report import write_report

    run = RunLayout(_fresh(tmp_path) / "run")
    path = {"components": run.analysis_results("components-over-time"),
            "worlds_events": run.analysis_results("worlds-events"),
            "committed": run.analysis_results("committed"),
            "scores": run.evaluate_scores}[name]  # fmt: skip
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data.draw(mutation(DOCS[name][1]))))
    try:
        write_report(run.root, log=lambda s: None)
    except UserError as e:
        assert _named(e, path), e
        return
    assert run.report_index.is_file()
