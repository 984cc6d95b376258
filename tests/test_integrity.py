"""Data and metadata agree, latents of two Vs never mix, bad files give named errors (issue 17,
items 3-5). One test per defect, on tiny episode files written by the package's own writer
(``save_episode``), their manifest as ``generate`` writes it (``generate`` plays no game when
every episode is already there) and two tiny untrained Vs saved by ``save_weights``: the
checks under test look at files and checksums, not at what the models learned."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from factories import random_episode

from mdnworld.checkpoints import load_latents, save_weights
from mdnworld.cli import main
from mdnworld.config import EncodeConfig, GenerateConfig, RNNConfig, VAEConfig, to_dict
from mdnworld.data.episodes import load_episode, save_episode, validate_run
from mdnworld.data.frames import FrameStore
from mdnworld.data.generate import generate
from mdnworld.errors import ConflictError, DataError, EpisodeFileError, UserError
from mdnworld.io import atomic_write_json, read_json, write_npz
from mdnworld.layout import RunLayout

QUIET = {"log": lambda s: None}
N = 4  # episodes per run


def _run(root: Path, n: int = N, manifest: bool = True) -> RunLayout:
    """Episodes 0..n-1 (seeds 0..n-1, 6..9 steps) and, by default, their manifest as
    ``generate`` writes it."""
    run = RunLayout(root)
    entries = []
    for i in range(n):
        save_episode(run.episode(i), random_episode(6 + i, i))
        entries.append({"index": i, "seed": i, "length": 6 + i, "truncated": False})
    if manifest:
        cfg = to_dict(GenerateConfig(episodes=n))
        atomic_write_json(run.episode_manifest, {"config": cfg, "episodes": entries})
    return run


def _manifest(run: RunLayout) -> dict:
    return read_json(run.episode_manifest)


def _bad(run: RunLayout) -> list[str]:
    return [str(e) for e in validate_run(run.root)[1]]


def _v(run: RunLayout, seed: int) -> None:
    """A V (untrained, its weights from ``seed``) saved as the run's vae/model.safetensors."""
    import torch

    from mdnworld.models.vae import VAE, VAEArch

    torch.manual_seed(seed)
    arch = VAEArch(latent_dim=8)
    save_weights(run.vae_model, VAE(arch).state_dict(), {"arch": dataclasses.asdict(arch)})


def _encode(run: RunLayout) -> int:
    from mdnworld.train.encode import encode_run

    return encode_run(run.root, EncodeConfig(device="cpu", threads=1), **QUIET)


def _rnn_data(run: RunLayout):
    from mdnworld.train.rnn_data import load_rnn_data

    return load_rnn_data(run.root, RNNConfig(seq_len=3, eval_windows=4))


@pytest.fixture
def two_vs(tmp_path: Path) -> tuple[RunLayout, RunLayout]:
    """The same episodes encoded by two different Vs, in two runs."""
    runs = []
    for seed in (1, 2):
        run = _run(tmp_path / f"v{seed}")
        _v(run, seed)
        assert _encode(run) == N
        runs.append(run)
    return runs[0], runs[1]


# --- 3. latents of two Vs ---------------------------------------------------------------------


def test_train_rnn_refuses_a_latent_file_made_by_another_v(two_vs) -> None:
    run, other = two_vs
    assert len(_rnn_data(run).train_ids) == N - 1  # the clean run loads
    shutil.copy(other.latent(2), run.latent(2))
    with pytest.raises(EpisodeFileError, match="made by another V") as e:
        _rnn_data(run)
    assert str(run.latent(2)) in str(e.value)


def test_encode_without_manifest_checks_each_file_against_the_current_v(two_vs) -> None:
    run, other = two_vs
    kept = {p.name: p.read_bytes() for p in run.latent_files()}
    run.latent_manifest.unlink()
    run.latent(3).unlink()
    assert _encode(run) == 1  # the files of this V are kept, the missing one encoded
    assert {p.name: p.read_bytes() for p in run.latent_files()} == kept
    assert read_json(run.latent_manifest)["vae_sha256"] == read_json(run.vae_meta)["sha256"]
    # a file of another V, with no manifest to say whose the latents are
    shutil.copy(other.latent(1), run.latent(1))
    run.latent_manifest.unlink()
    with pytest.raises(ConflictError, match="made by another VAE") as e:
        _encode(run)
    assert str(run.latent(1)) in str(e.value)


def test_old_latent_files_are_accepted_only_where_the_manifest_vouches(two_vs) -> None:
    run, _ = two_vs
    old = run.latent(1)
    write_npz(old, load_latents(old))  # as written before files recorded their V
    assert len(_rnn_data(run).val_ids) == 1  # the manifest vouches for it
    run.latent_manifest.unlink()
    with pytest.raises(ConflictError, match="does not record which V made it") as e:
        _encode(run)
    assert str(old) in str(e.value)


def test_latent_manifest_that_is_an_empty_object(two_vs) -> None:
    run, _ = two_vs
    atomic_write_json(run.latent_manifest, {})
    for stage in (_encode, _rnn_data):
        with pytest.raises(DataError, match="manifest.json: no valid 'latent_dim'"):
            stage(run)


def test_truncated_latent_file_is_named(two_vs) -> None:
    run, _ = two_vs
    bad = run.latent(1)
    bad.write_bytes(bad.read_bytes()[:300])
    for read in (lambda: load_latents(bad), lambda: _rnn_data(run)):
        with pytest.raises(EpisodeFileError, match="truncated") as e:
            read()
        assert str(bad) in str(e.value)


# --- 4. data and metadata agree ---------------------------------------------------------------


def test_generate_without_manifest_takes_seeds_from_the_files(tmp_path: Path) -> None:
    run = _run(tmp_path, manifest=False)  # as a kill can leave it: files, no manifest
    with pytest.raises(UserError, match="holds seed 0, but episode 0 of base_seed 100") as e:
        generate(tmp_path, GenerateConfig(episodes=N, base_seed=100), **QUIET)
    assert str(run.episode(0)) in str(e.value)
    assert not run.episode_manifest.exists()
    generate(tmp_path, GenerateConfig(episodes=N), **QUIET)  # the right seed: rebuilt
    assert [e["seed"] for e in _manifest(run)["episodes"]] == list(range(N))
    assert _bad(run) == []


def test_validate_checks_seeds_lengths_and_flags_against_the_files(tmp_path: Path) -> None:
    run = _run(tmp_path)
    man = _manifest(run)
    man["episodes"][0]["seed"] = 100
    man["episodes"][1]["length"] = 8
    man["episodes"][2]["truncated"] = True
    atomic_write_json(run.episode_manifest, man)
    bad = _bad(run)
    assert len(bad) == 3
    for i, said, holds in [(0, "seed 100", "seed 0"), (1, "length 8", "length 7"),
                           (2, "truncated True", "truncated False")]:  # fmt: skip
        assert bad[i].startswith(f"{run.episode(i)}: manifest.json records {said}; "
                                 f"the file holds {holds}; delete the file")  # fmt: skip


def test_manifest_length_is_believed_by_no_one(tmp_path: Path) -> None:
    from mdnworld.train.vae import load_vae_data

    run = _run(tmp_path)
    man = _manifest(run)
    man["episodes"][1]["length"] = 999999
    atomic_write_json(run.episode_manifest, man)
    assert any("'length' is 999999" in b for b in _bad(run))
    man["episodes"][1]["length"] = 50
    atomic_write_json(run.episode_manifest, man)
    assert any(str(run.episode(1)) in b and "length 50" in b for b in _bad(run))
    with pytest.raises(EpisodeFileError, match="records length 50; the file holds length 7"):
        load_vae_data(run, VAEConfig(val_frames=4, grid_frames=2))  # train-vae's start


def test_fortran_ordered_frames_are_refused(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ep = load_episode(run.episode(1))
    arrays = {k: getattr(ep, k) for k in ("actions", "rewards", "dones")}
    write_npz(run.episode(1), {"frames": np.asfortranarray(ep.frames), **arrays, "seed": 1})
    assert any(str(run.episode(1)) in b and "Fortran order" in b for b in _bad(run))
    with pytest.raises(EpisodeFileError, match="Fortran order"):
        FrameStore([run.episode(1)])


def test_stray_files_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mdnworld.train.vae import load_vae_data

    run = _run(tmp_path)
    stray = run.episodes_dir / "ep_000001 (copy).npz"
    shutil.copy(run.episode(1), stray)
    assert main(["validate", str(tmp_path)]) == 1
    assert f"BAD {stray}: not an episode file name" in capsys.readouterr().err
    logged: list[str] = []
    data = load_vae_data(run, VAEConfig(val_frames=4, grid_frames=2), logged.append)
    assert len(data.train_ids) + len(data.val_ids) == N
    assert "ep_000001 (copy).npz" in logged[0]


# --- 5. named errors, not tracebacks ----------------------------------------------------------


def test_seed_that_is_not_a_scalar(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ep = load_episode(run.episode(2))
    arrays = {k: getattr(ep, k) for k in ("frames", "actions", "rewards", "dones")}
    write_npz(run.episode(2), {**arrays, "seed": np.array([1, 2])})
    assert _bad(run) == [
        f"{run.episode(2)}: 'seed' is int64 of shape (2,), expected one int64 (shape ())"
    ]


def test_empty_episode_not_in_manifest(tmp_path: Path) -> None:
    run = _run(tmp_path)
    empty = {"frames": np.zeros((0, 64, 64, 3), np.uint8), "actions": np.zeros((0, 1), np.float32)}
    empty |= {"rewards": np.zeros(0, np.float32), "dones": np.zeros(0, bool), "seed": N}
    write_npz(run.episode(N), empty)
    with pytest.raises(UserError, match="holds no steps") as e:
        generate(tmp_path, GenerateConfig(episodes=N + 1), **QUIET)
    assert str(run.episode(N)) in str(e.value)
    assert any("holds no steps" in b for b in _bad(run))


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ([], "expected a JSON object, got list"),
        (
            {"episodes": [{"seed": 0, "length": 6, "truncated": False}]},
            "episodes\\[0\\] has no 'index'",
        ),
        (
            {"episodes": [{"index": 0, "seed": 0, "length": "abc", "truncated": False}]},
            "'length' is 'abc'",
        ),
    ],
)
def test_malformed_episode_manifest(tmp_path: Path, manifest, message: str) -> None:
    run = _run(tmp_path)
    run.episode_manifest.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=message) as e:
        generate(tmp_path, GenerateConfig(episodes=N), **QUIET)
    assert str(run.episode_manifest) in str(e.value)
    assert any(str(run.episode_manifest) in b and message.replace("\\", "") in b for b in _bad(run))


def test_zeroed_episode_file_is_not_called_pickled(tmp_path: Path) -> None:
    run = _run(tmp_path)
    path = run.episode(1)
    path.write_bytes(bytes(path.stat().st_size))
    (bad,) = _bad(run)
    assert bad.startswith(f"{path}: all zero bytes") and "pickled" not in bad
