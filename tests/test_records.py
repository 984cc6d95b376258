"""The typed readers of the run's results files (mdnworld.records) and numbers as text
(mdnworld.text): no game, no torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdnworld import records
from mdnworld.errors import DataError, MissingError
from mdnworld.text import fmt

RNN_META = {
    "model_index": 3,
    "arch": {"n_components": 5, "done_head": True},
    "best_epoch": 17,
    "epochs_run": 17,
    "stopped_early": False,
    "metrics": {
        "val_nll_per_dim": -3.29,
        "val_baseline_nll_per_dim": -1.93,
        "train_nll_per_dim": -3.28,
        "train_baseline_nll_per_dim": -1.89,
        "pi_entropy": 1.08,
        "pi_entropy_max": 1.61,
        "component_usage": [0.2, 0.3, 0.1, 0.25, 0.15],
    },
}


def _write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_rnn_meta_is_read_with_its_optional_fields(tmp_path: Path) -> None:
    m = records.read_rnn_meta(_write(tmp_path / "model.json", RNN_META))
    assert (m.model_index, m.n_components, m.done_head, m.best_epoch) == (3, 5, True, 17)
    assert m.metrics.component_usage == (0.2, 0.3, 0.1, 0.25, 0.15)
    assert m.metrics.val_done_bce is None and m.stopped_by_time is False
    assert m.stop_reason == ""
    assert records.rnn_meta({**RNN_META, "stopped_by_time": True}).stop_reason == " (time)"


def test_a_missing_file_is_missing_and_a_bad_one_names_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(MissingError, match="nope.json"):
        records.read_rnn_meta(tmp_path / "nope.json")
    bad = _write(tmp_path / "bad.json", '{"model_index": 3,')
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        records.read_rnn_meta(bad)
    meta = json.loads(json.dumps(RNN_META))
    del meta["metrics"]["pi_entropy"]
    with pytest.raises(DataError, match=r"model\.json: no key 'metrics\.pi_entropy'"):
        records.read_rnn_meta(_write(tmp_path / "model.json", meta))
    with pytest.raises(DataError, match=r"key 'metrics' is not a JSON object"):
        records.read_rnn_meta(_write(tmp_path / "model.json", {**RNN_META, "metrics": [1]}))
    with pytest.raises(DataError, match=r"list\.json: the file is not a JSON object"):
        records.read_vae_meta(_write(tmp_path / "list.json", [1, 2]))
    # any other slip of the file inside a reader is a DataError with the file's name too
    with pytest.raises(DataError, match=r"usage\.json: TypeError"):
        usage = {**RNN_META, "metrics": {**RNN_META["metrics"], "component_usage": 7}}
        records.read_rnn_meta(_write(tmp_path / "usage.json", usage))


def test_values_keep_their_json_type(tmp_path: Path) -> None:
    """An int stays an int, so text made from a record equals text made from the file."""
    rows = [{"component": 0, "Explosion": 0.0, "Fireball": 12}]
    c = records.read_committed(_write(tmp_path / "c.json", {
        "model": 0, "tests": 10, "steps": 1000, "start_t": 150,
        "classes": ["Explosion", "Fireball"], "median_frames": rows,
        "explosion_component": None, "paper": "p", "note": "n",
    }))  # fmt: skip
    assert c.median_frames[0].frames == {"Explosion": 0.0, "Fireball": 12}
    assert isinstance(c.median_frames[0].frames["Fireball"], int)
    with pytest.raises(DataError, match=r"no key 'median_frames\[0\]\.Fireball'"):
        rows = [{"component": 0, "Explosion": 0.0}]
        records.read_committed(_write(tmp_path / "c.json", {
            "model": 0, "tests": 10, "steps": 1000, "start_t": 150,
            "classes": ["Explosion", "Fireball"], "median_frames": rows,
            "explosion_component": None, "paper": "p", "note": "n",
        }))  # fmt: skip


def test_committed_lead_names_the_leading_component_and_the_rest(tmp_path: Path) -> None:
    rows = [{"component": k, "Explosion": e, "Fireball": 5.0} for k, e in enumerate([3, 900, 40])]
    doc = {"model": 0, "tests": 10, "steps": 1000, "start_t": 150,
           "classes": ["Explosion", "Fireball"], "median_frames": rows,
           "explosion_component": 1, "paper": "p", "note": "n"}  # fmt: skip
    c = records.read_committed(_write(tmp_path / "c.json", doc))
    assert c.lead("Explosion") == (1, 900, 40)
    assert c.lead("Fireball") == (0, 5.0, 5.0)  # a tie: the first component leads
    empty = records.read_committed(_write(tmp_path / "e.json", {**doc, "median_frames": []}))
    assert empty.lead("Explosion") is None


def test_components_keep_the_files_model_order(tmp_path: Path) -> None:
    model = {"figure": "f.png", "dominant_share": [1, 2], "switches": 3, "start_episode": 4}
    a = records.read_components(_write(tmp_path / "a.json", {
        "steps": 100, "warmup": 5, "models": {"10": model, "2": model},
    }))  # fmt: skip
    assert list(a.models) == [10, 2] and a.models[2].dominant_share == (1, 2)


def test_scores_without_videos_and_a_controller_meta_without_a_generation(tmp_path: Path) -> None:
    scores = {
        "controller": "mean", "generation": 2, "episodes": 2, "mean": 100.0, "std": 0.0,
        "min": 100, "max": 100, "solved": False, "reference": {"solved": 750},
        "per_episode": [{"seed": 1, "score": 100}, {"seed": 2, "score": 100}],
    }  # fmt: skip
    s = records.read_scores(_write(tmp_path / "scores.json", scores))
    assert s.best_video is None and [e.seed for e in s.per_episode] == [1, 2]
    video = {"file": "best.mp4", "seed": 1, "score": 100}
    s = records.read_scores(_write(tmp_path / "scores.json", {**scores, "best_video": video}))
    assert s.best_video == records.ScoreVideo("best.mp4", 1, 100)
    config = {"tau": 1.15, "popsize": 4, "rollouts": 2, "generations": 2}
    c = records.read_controller_meta(_write(tmp_path / "controller.json", {"config": config}))
    assert c.generation is None and c.tau == 1.15


def test_log_rows_skip_a_line_being_written(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.jsonl", '{"step": 1, "epoch": 1}\n[1]\n{"step": 1, "epoch": 2}\n')
    path.write_text(path.read_text() + '{"step": 2, "val/rec')
    rows = records.read_log_rows(path)
    assert rows == [{"step": 1, "epoch": 1}, {"step": 1, "epoch": 2}]
    assert records.dedupe(rows, "step") == [{"step": 1, "epoch": 2}]
    with pytest.raises(MissingError):
        records.read_log_rows(tmp_path / "none.jsonl")


@pytest.mark.parametrize(
    ("value", "spec", "text"),
    [
        (None, ".2f", "—"),
        (float("nan"), ".2f", "—"),
        (0.8234, ".2f", "0.82"),
        (5.2e-10, ".2g", "5.2e-10"),
        (12345, ".4g", "12,345"),
        (12345.6, "d", "12,346"),
        (1699, "id", "1699"),
        (True, ".4g", "yes"),
        ("k", ".4g", "k"),
    ],
)
def test_fmt(value: object, spec: str, text: str) -> None:
    assert fmt(value, spec) == text
