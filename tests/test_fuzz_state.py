"""Configs, the CMA-ES state, shipped manifests and the report's readers fuzzed (issue 17
item 7): corrupted or mutated files give a ``UserError`` naming the file, or load as written.
The data loaders are in ``test_fuzz.py``; the shared machinery in ``fuzzing.py``."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import (
    FEW,
    FUZZ,
    Blob,
    corrupt_file,
    fresh,
    loads_the_same_or_names,
    mutation,
    named,
    zip_hot,
)
from hypothesis import example, given
from hypothesis import strategies as st

from mdnworld import records
from mdnworld.config import RULES, STAGES, RunConfig, load_config
from mdnworld.errors import UserError
from mdnworld.fields import literal_choices
from mdnworld.io import write_npz
from mdnworld.layout import RunLayout

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
    path = fresh(tmp_path) / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        cfg = load_config(path)
    except UserError as e:
        assert named(e, path), e
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
    path = fresh(tmp_path) / "run.toml"
    path.write_bytes(data)
    try:
        _valid(load_config(path))
    except UserError as e:
        assert named(e, path), e


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
    return Blob(path.read_bytes(), zip_hot(path), original)


def _load_cmaes(path: Path) -> tuple:
    from mdnworld.control.cmaes import load_state

    return _es_summary(load_state(path, _controller_config(), N_PARAMS, log=lambda s: None))


@FUZZ
@given(data=st.data())
def test_a_cmaes_state_corrupted(cmaes_state: Blob, tmp_path: Path, data: st.DataObject) -> None:
    path = corrupt_file(tmp_path, "cmaes_state.npz", cmaes_state.corrupted(data))
    loads_the_same_or_names(_load_cmaes, path, cmaes_state.extra)


@FUZZ
@given(data=st.data())
def test_a_cmaes_state_with_wrong_values(cmaes_state: Blob, tmp_path: Path,
                                         data: st.DataObject) -> None:  # fmt: skip
    """Its meta (JSON) or one array replaced, as a well-formed .npz: a named error, or a state
    that resumes (the meta's free-form values, such as the versions, may differ)."""
    original = cmaes_state.extra
    path = corrupt_file(tmp_path, "cmaes_state.npz", cmaes_state.data)
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
        assert named(e, path), e
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
    models = fresh(tmp_path) / "models"
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
    path = fresh(tmp_path) / f"{name}.json"
    text = json.dumps(data.draw(mutation(doc))).encode()
    if data.draw(st.booleans()):
        text = Blob(json.dumps(doc).encode()).corrupted(data)
    path.write_bytes(text)
    try:
        rec = read(path)
    except UserError as e:
        assert named(e, path), e
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

    run = RunLayout(fresh(tmp_path) / "run")
    path = {"components": run.analysis_results("components-over-time"),
            "worlds_events": run.analysis_results("worlds-events"),
            "committed": run.analysis_results("committed"),
            "scores": run.evaluate_scores}[name]  # fmt: skip
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data.draw(mutation(DOCS[name][1]))))
    try:
        write_report(run.root, log=lambda s: None)
    except UserError as e:
        assert named(e, path), e
        return
    assert run.report_index.is_file()
