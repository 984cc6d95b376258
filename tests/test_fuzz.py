"""Data loaders fuzzed (issue 17 item 7): random corruptions of files written by the package's
own writers (byte flips, truncations, zeroed ranges; JSON values of the wrong type, deleted keys,
whole documents replaced) must give a ``mdnworld.errors.UserError`` naming the file, never
another exception, and never a silent wrong result: what loads equals what was written.

Bounded and derandomized (the same examples on every run); no game, no training.
``KNOWN_LEAKS`` keeps, as regression tests, the corruptions hypothesis found that once leaked a
raw exception (the third field says which).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import (
    FUZZ,
    Blob,
    corrupt_file,
    fresh,
    loads_the_same_or_names,
    mutation,
    named,
    same,
    zip_hot,
)
from hypothesis import given
from hypothesis import strategies as st

from mdnworld.errors import UserError
from mdnworld.io import write_npz
from mdnworld.layout import RunLayout

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
        path, names = corrupt_file(tmp_path, "ep_000000.npz", edit(good.data)), ()
    load = {"load_episode": load_episode, "episode_info": episode_info,
            "FrameStore": lambda p: FrameStore([p]), "load_latents": load_latents,
            "load_weights": load_weights}[loader]  # fmt: skip
    with pytest.raises(UserError) as e:
        load(path)
    assert named(e.value, path, *names), e.value


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
    return Blob(path.read_bytes(), zip_hot(path))


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
    original = load(corrupt_file(tmp_path, "ep_000000.npz", episode_bytes.data))
    path = corrupt_file(tmp_path, "ep_000000.npz", episode_bytes.corrupted(data))
    loads_the_same_or_names(load, path, original)


@FUZZ
@given(data=st.data())
def test_the_frame_store_over_a_corrupted_episode(episode_bytes: Blob, tmp_path: Path,
                                                  data: st.DataObject) -> None:  # fmt: skip
    """The store reads frames with pread, unchecked (its point is speed), so flips inside the
    frame bytes are invisible to it; everything else (zip and npy headers, the central
    directory, a cut) must be named."""
    from mdnworld.data.frames import FRAME_BYTES, FrameStore

    good = episode_bytes.data
    clean = corrupt_file(tmp_path, "ep_000000.npz", good)
    store = FrameStore([clean])
    original = store.read(np.arange(len(store)))
    start = int(store.offsets[0])
    end = start + len(store) * FRAME_BYTES
    bad = episode_bytes.corrupted(data)
    if len(bad) == len(good):  # flips and zeros: only outside the frame bytes
        bad = bad[:start] + good[start:end] + bad[end:]
    path = corrupt_file(tmp_path, "ep_000000.npz", bad)

    def load(p: Path) -> np.ndarray:
        s = FrameStore([p])
        return s.read(np.arange(len(s)))

    loads_the_same_or_names(load, path, original)


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
    return Blob(path.read_bytes(), zip_hot(path))


@FUZZ
@given(data=st.data())
def test_a_latent_file_corrupted(latent_bytes: Blob, tmp_path: Path, data: st.DataObject) -> None:
    from mdnworld.checkpoints import load_latents

    original = load_latents(corrupt_file(tmp_path, "ep_000000.npz", latent_bytes.data))
    path = corrupt_file(tmp_path, "ep_000000.npz", latent_bytes.corrupted(data))
    loads_the_same_or_names(load_latents, path, original)


LATENT_MANIFEST = {"format": "mdnworld.latents/1", "vae_sha256": "ab" * 32, "latent_dim": 4}


@FUZZ
@given(doc=mutation(LATENT_MANIFEST), with_v=st.booleans())
def test_a_latent_manifest_with_wrong_values(tmp_path: Path, doc: Any, with_v: bool) -> None:
    """It loads only when it matches V (when there is one): latent_dim an int >= 1."""
    from mdnworld.checkpoints import read_latent_manifest

    run = RunLayout(fresh(tmp_path))
    run.latents_dir.mkdir()
    run.latent_manifest.write_text(json.dumps(doc))
    if with_v:
        run.vae_dir.mkdir()
        run.vae_meta.write_text(json.dumps({"arch": {"latent_dim": 4}, "sha256": "ab" * 32}))
    try:
        man = read_latent_manifest(run.root)
    except UserError as e:
        assert named(e, run.latent_manifest), e
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
    folder = fresh(tmp_path)
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
        loads_the_same_or_names(load_weights, path, original)
        return
    path = _pair(tmp_path, tensors.data, meta.corrupted(data))
    load = lambda p: load_weights(p)[0]  # noqa: E731
    loads_the_same_or_names(load, path, original[0], (path.with_suffix(".json"),))


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
    folder = fresh(tmp_path)
    shutil.copy(stem.with_suffix(".safetensors"), folder / "checkpoint.safetensors")
    (folder / "checkpoint.json").write_text(json.dumps(doc))
    path = folder / "checkpoint.safetensors"
    try:
        got, loaded = _load_checkpoint_into_fresh(path)
    except UserError as e:
        assert named(e, path, path.with_suffix(".json")), e
        return
    # what the file says, as the trainers need it: a JSON object, and the weights as saved
    want = doc.get("meta") if isinstance(doc, dict) else None
    assert isinstance(got, dict) and got == want, got
    assert same(loaded, state)


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
    folder = fresh(tmp_path)
    path = folder / "checkpoint.safetensors"
    save_weights(path, tensors, {k: v for k, v in info.items() if k != "sha256"})
    if what == "dtype":  # torch casts a tensor of another dtype as it loads: only no leak
        with contextlib.suppress(UserError):
            _load_checkpoint_into_fresh(path.with_suffix(""))
        return
    load, json_path = _load_checkpoint_into_fresh, path.with_suffix(".json")
    loads_the_same_or_names(load, path, (meta["meta"], state), (json_path,))


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
    run = RunLayout(fresh(tmp_path) / "run")
    shutil.copytree(root, run.root)
    run.episode_manifest.write_text(json.dumps(new))
    try:
        good, bad = validate_run(run.root)
    except UserError as e:
        assert named(e, run.episode_manifest), e
        return
    assert bad, f"validate passed a manifest that disagrees with the files: {new}"
    names = [run.episode_manifest, *run.episode_files()]
    assert all(named(e, *names) for e in bad), bad
