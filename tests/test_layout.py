"""The run directory's one owner (layout.py): names, parses and "done" tests. Pure: no game."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdnworld.layout import ANALYSES, RunLayout, episode_index, episode_name, model_index


def test_episode_names_round_trip() -> None:
    for i in (0, 17, 999_999, 1_234_567):
        assert episode_index(Path("x") / episode_name(i)) == i


@pytest.mark.parametrize("name", ["ep_000001 (copy).npz", "ep_1.npz", "ep_000001.npz.tmp", "x.npz"])
def test_stray_names_are_not_episodes(name: str) -> None:
    with pytest.raises(ValueError, match="not an episode file name"):
        episode_index(name)


def test_listings_ignore_stray_files_and_sort_by_index(tmp_path: Path) -> None:
    run = RunLayout(tmp_path)
    run.episodes_dir.mkdir()
    for i in (10, 2, 1_000_000):
        run.episode(i).write_bytes(b"")
    (run.episodes_dir / "ep_000002 (copy).npz").write_bytes(b"")
    (run.episodes_dir / ".ep_000003.npz.abc.tmp").write_bytes(b"")
    assert [episode_index(p) for p in run.episode_files()] == [2, 10, 1_000_000]
    assert run.latent_files() == []  # no folder yet: empty, not an error


def test_model_indices_sort_numerically_and_need_a_meta(tmp_path: Path) -> None:
    run = RunLayout(tmp_path)
    for i in (10, 2):
        run.rnn_model_dir(i).mkdir(parents=True)
        run.rnn_meta(i).write_text("{}")
    run.rnn_model_dir(3).mkdir()  # unfinished: no model.json
    run.rnn_log(3).write_text("")
    assert run.rnn_indices() == [2, 10]
    assert run.rnn_logged() == [3]
    assert model_index(run.rnn_model_dir(10)) == 10
    with pytest.raises(ValueError):
        model_index("model_x")


def test_every_path_lies_inside_the_run(tmp_path: Path) -> None:
    run = RunLayout(tmp_path / "r")
    paths = [
        run.config_json, run.stage_log, run.episode_manifest, run.episode(3),
        run.preview(0, ".mp4"),
        run.vae_model, run.vae_meta, run.vae_checkpoint, run.vae_log, run.vae_split,
        run.vae_reconstructions, run.vae_recon_epoch(2), run.latent_manifest, run.latent(3),
        run.starts, run.rnn_split, run.rnn_model(1), run.rnn_meta(1), run.rnn_best(1),
        run.rnn_checkpoint(1), run.rnn_log(1), run.dream_arrays(0), run.dream_settings(0, 2),
        run.dream_video(0, -1, 3), run.analysis_summary, run.committed_counts,
        run.controller_state, run.controller_weights("best"), run.controller_meta,
        run.controller_log, run.controller_lock, run.evaluate_scores, run.evaluate_video("best"),
        run.report_index,
        *(run.analysis_results(a) for a in ANALYSES),
    ]  # fmt: skip
    assert len(set(paths)) == len(paths)
    for p in paths:
        assert p.is_relative_to(run.root)
        assert run.rel(p) == p.relative_to(run.root).as_posix()
    assert run.analysis("worlds-events") == run.analysis("worlds_events")
    assert run.analysis_figure("committed").name == "committed.png"
    with pytest.raises(ValueError, match=r"one of \['mean', 'best', 'selected'\]"):
        run.controller_weights("worst")
    for bad in ("../config.json", "play_0123abcd_1.mp4/x", "play_xyz_1.mp4", "p.mp4"):
        assert run.play_recording(bad) is None, bad
    assert run.play_recording("play_0123abcd_12.gif") == run.play_dir / "play_0123abcd_12.gif"


def test_done_tests_read_only_what_the_stage_leaves(tmp_path: Path) -> None:
    run = RunLayout(tmp_path)
    assert not run.generate_done(2) and not run.encode_done() and not run.vae_done(10)
    run.episodes_dir.mkdir()
    run.latents_dir.mkdir()
    for i in range(2):
        run.episode(i).write_bytes(b"")
    assert run.generate_done(2) and not run.generate_done(3)
    assert not run.encode_done()
    for i in range(2):
        run.latent(i).write_bytes(b"")
    assert run.encode_done()
    run.vae_dir.mkdir()
    run.vae_meta.write_text(json.dumps({"config": {"epochs": 10}}))
    assert run.vae_done(10) and not run.vae_done(11)  # more epochs later: not done
    run.dream_dir(0).mkdir(parents=True)
    run.dream_settings(0).write_text(json.dumps({"n_components": 2}))
    assert run.dreams_done(0) and not run.dreams_done(0, committed=1)
    for k in range(2):
        run.dream_dir(0, k).mkdir()
        run.dream_settings(0, k).write_text("{}")
    assert run.dreams_done(0, committed=1)
    run.evaluate_dir.mkdir()
    run.evaluate_scores.write_text(json.dumps({"generation": 5, "episodes": 100}))
    assert run.evaluate_done(5, 100) and not run.evaluate_done(6, 100)
