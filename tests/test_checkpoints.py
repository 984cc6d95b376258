"""Weights files survive a kill at any instant (issue 17, item 1): the pair NAME.safetensors +
NAME.json is replaced as one unit, so the next load gives the previous save or the new one,
bit-exact, and the next save works; stale temp files are cleaned at a stage's start; a
genuinely corrupt pair is still a CheckpointError naming the file. No game, no training.

A kill is simulated at the k-th file-system rename of a save, for every k: that rename and
everything after it never happen (no clean-up handler runs either, as after a SIGKILL).
tests/test_kill.py kills the real trainers with SIGKILL."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mdnworld.checkpoints import load_checkpoint, load_weights, save_checkpoint, save_weights
from mdnworld.errors import CheckpointError, MissingError
from mdnworld.io import pending_path, remove_stale_temps


class Killed(BaseException):
    """The simulated SIGKILL: not an Exception, so no ``except Exception`` swallows it."""


@contextlib.contextmanager
def killed_at(k: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Within the block, the process "dies" at its k-th ``os.replace`` (1-based): that rename
    and every rename and unlink after it do not happen, and ``Killed`` is raised. Yields the
    list of calls made (its length: how many renames the block tried)."""
    calls: list[int] = []
    real_replace, real_unlink = os.replace, os.unlink

    def replace(src, dst, **kw):
        calls.append(1)
        if len(calls) >= k:
            raise Killed(f"killed at rename {k}")
        real_replace(src, dst, **kw)

    def unlink(path, **kw):
        if len(calls) >= k:  # dead: clean-up handlers never run
            return
        real_unlink(path, **kw)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        m.setattr(os, "unlink", unlink)
        with contextlib.suppress(Killed):
            yield calls


def tensors(v: float) -> dict[str, torch.Tensor]:
    """Distinct tensors per save; odd sizes and dtypes so a mix would show."""
    g = torch.Generator().manual_seed(int(v * 1000))
    return {
        "w": torch.randn(7, 5, generator=g) * v,
        "b": torch.arange(3, dtype=torch.int64) + int(v),
    }


def version(path: Path) -> float | None:
    """Which save ``load_weights`` sees (its meta's ``v``), after checking the tensors are
    exactly that save's; None when nothing is saved (no JSON: the "done" tests' marker)."""
    if not path.with_suffix(".json").exists():
        with pytest.raises((CheckpointError, MissingError)):
            load_weights(path)
        return None
    got, meta = load_weights(path)
    want = tensors(meta["v"])
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    return meta["v"]


def renames_per_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    path = tmp_path / "count" / "w.safetensors"
    save_weights(path, tensors(1), {"v": 1})
    with killed_at(10**9, monkeypatch) as calls:
        save_weights(path, tensors(2), {"v": 2})
    return len(calls)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("first_save", [False, True])
def test_a_kill_at_any_rename_leaves_the_old_or_the_new_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_save: bool
) -> None:
    """For every k: a save of v=2 killed at its k-th rename, then loads and more saves."""
    n = renames_per_save(tmp_path, monkeypatch)
    assert n >= 2
    for k in range(1, n + 2):  # k = n + 1: not killed
        folder = tmp_path / f"k{k}"
        path = folder / "w.safetensors"
        folder.mkdir()
        old = None if first_save else 1.0
        if old is not None:
            save_weights(path, tensors(old), {"v": old})
        with killed_at(k, monkeypatch):
            save_weights(path, tensors(2), {"v": 2.0})
        seen = version(path)
        assert seen in (old, 2.0), (k, seen)
        if k > n:
            assert seen == 2.0
        # the next save (a resumed run) works, and is what loads
        save_weights(path, tensors(3), {"v": 3.0})
        assert version(path) == 3.0
        remove_stale_temps(folder)
        assert leftovers(folder) == [], k
        assert sorted(p.name for p in folder.iterdir()) == ["w.json", "w.safetensors"]


def test_two_kills_in_a_row_never_go_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save killed at rename k1, the resumed run's next save killed at k2: each load gives
    the newest save that got through, never an older one, never an error."""
    n = renames_per_save(tmp_path, monkeypatch) + 1  # the 2nd save may also finish the 1st
    for k1 in range(1, n + 1):
        for k2 in range(1, n + 2):
            path = tmp_path / f"k{k1}_{k2}" / "w.safetensors"
            save_weights(path, tensors(1), {"v": 1.0})
            with killed_at(k1, monkeypatch):
                save_weights(path, tensors(2), {"v": 2.0})
            first = version(path)
            with killed_at(k2, monkeypatch):
                save_weights(path, tensors(3), {"v": 3.0})
            second = version(path)
            assert first in (1.0, 2.0) and second in (first, 3.0), (k1, k2, first, second)
            if k2 > n:
                assert second == 3.0


def test_a_killed_checkpoint_resumes_model_and_optimizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_checkpoint killed at every rename: load_checkpoint restores the model, Adam's
    state and the meta of one save, the old (step 1) or the new (step 2), exactly."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    trained = {}
    for step in (1, 2):
        opt.zero_grad()
        model(torch.full((2, 4), float(step))).square().sum().backward()
        opt.step()
        trained[step] = copy.deepcopy((model, opt))

    def state(m: torch.nn.Module, o: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        st = {f"model.{k}": v for k, v in m.state_dict().items()}
        for pid, s in o.state_dict()["state"].items():
            st.update({f"optim.{pid}.{k}": torch.as_tensor(v) for k, v in s.items()})
        return st

    stem = tmp_path / "checkpoint"
    for k in range(1, 5):
        save_checkpoint(stem, *trained[1], {"step": 1})
        with killed_at(k, monkeypatch):
            save_checkpoint(stem, *trained[2], {"step": 2})
        fresh = torch.nn.Linear(4, 3)
        fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-2)
        got = load_checkpoint(stem, fresh, fresh_opt)["step"]
        assert got in (1, 2) and (k < 4 or got == 2)
        now, want = state(fresh, fresh_opt), state(*trained[got])
        assert now.keys() == want.keys()
        assert all(torch.equal(now[key], want[key]) for key in now), (k, got)


def test_stale_temps_are_removed_and_a_committed_pending_file_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    path = folder / "checkpoint.safetensors"
    save_weights(path, tensors(1), {"v": 1.0})
    stale = [
        ".checkpoint.json.abc123.tmp",  # atomic_open's temp names
        ".checkpoint.safetensors.x_9.tmp",
        ".checkpoint.safetensors.pending.q1.tmp",
        ".preview.q2.tmp.png",  # atomic_path's
    ]
    for name in stale:
        (folder / name).write_bytes(b"half written")
    pending_path(path).write_bytes(b"not named by the JSON")
    assert remove_stale_temps(folder) == len(stale) + 1
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", "checkpoint.safetensors"]
    assert version(path) == 1.0

    # a save killed after its JSON: cleaning finishes it instead of losing it
    with pytest.MonkeyPatch.context() as m, killed_at(3, m):
        save_weights(path, tensors(2), {"v": 2.0})
    assert pending_path(path).exists()
    assert version(path) == 2.0
    assert remove_stale_temps(folder) == 0
    assert not pending_path(path).exists()
    assert version(path) == 2.0
    assert remove_stale_temps(tmp_path / "not_there") == 0


def test_a_corrupt_pair_is_still_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_weights(path, tensors(1), {"v": 1.0})
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    pending_path(path).write_bytes(b"garbage")  # a pending file that matches nothing
    with pytest.raises(CheckpointError, match="checksum does not match model.json") as e:
        load_weights(path)
    assert str(path) in str(e.value)
    path.write_bytes(good)
    path.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"model.json: expected a JSON object"):
        load_weights(path)
    path.with_suffix(".json").write_text("{")
    with pytest.raises(CheckpointError, match="model.json"):
        load_weights(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="model.json: file not found"):
        load_weights(path)
    save_weights(path, tensors(1), {"v": 1.0})  # also deletes the stale pending file
    assert not pending_path(path).exists()
    path.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: file not found"):
        load_weights(path)


def test_checkpoint_without_meta_is_a_clear_error(tmp_path: Path) -> None:
    stem = tmp_path / "checkpoint"
    save_weights(stem.with_suffix(".safetensors"), {}, {"format": "mdnworld.checkpoint/1"})
    with pytest.raises(CheckpointError, match="no 'meta'"):
        load_checkpoint(stem, torch.nn.Linear(1, 1))


def test_the_format_is_unchanged(tmp_path: Path) -> None:
    """The file names and contents a plain save leaves: what shipped models and existing runs
    hold, so they keep loading."""
    import hashlib
    import json

    from safetensors.torch import load

    path = tmp_path / "model.safetensors"
    save_weights(path, tensors(1), {"v": 1.0})
    save_weights(path, tensors(2), {"v": 2.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    data = path.read_bytes()
    assert json.loads(path.with_suffix(".json").read_text()) == {
        "v": 2.0,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert all(torch.equal(load(data)[k], tensors(2)[k]) for k in tensors(2))
