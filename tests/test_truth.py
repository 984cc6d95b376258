"""The game's per-frame truth (data/truth.py): its rules on real frames, frames unchanged by it,
and the optional truth arrays of episode files (old files load, bad arrays are named)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from factories import random_episode

from mdnworld.data.episodes import episode_info, load_episode, save_episode
from mdnworld.data.truth import TRUTH_ARRAYS, truth_arrays, wall_reach
from mdnworld.errors import EpisodeFileError
from mdnworld.io import write_npz

SCREEN = (120, 160, 3)
GREY = np.array([0.2125, 0.7154, 0.0721])  # SPEC §6 luminance


def _infos(labels: list[tuple], health: list[float], y: list[float]) -> list[dict]:
    return [
        {"labels": lab, "health": h, "y": v} for lab, h, v in zip(labels, health, y, strict=True)
    ]


def _with_truth(t: int = 4) -> object:
    ep = random_episode(t)
    ball = ("DoomImpBall", 40, 60, 8, 6, 10.0)
    infos = _infos([(ball,)] + [()] * (t - 1), [100.0] * t, [384.0] * t)
    ep.truth = truth_arrays(infos, 100.0, SCREEN)
    return ep


# --- the rules, on labels as the env reports them ------------------------------------------


def test_rules_on_known_labels() -> None:
    imp = ("DoomImp", 10, 50, 8, 12, 0.0)  # imps stand still: never an "explosion"
    small, big = ("DoomImpBall", 0, 0, 1, 1, 10.0), ("DoomImpBall", 80, 60, 10, 12, 0.0)
    infos = _infos(
        [(imp, imp), (imp, small, big), (small,), ()],
        [100.0, 100.0, 76.0, 76.0],
        [384.0, 768.0 - 100.0, 110.0, 16.0],
    )
    t = truth_arrays(infos, 0.0, SCREEN)
    assert list(t) == list(TRUTH_ARRAYS)
    assert t["truth_fireballs"].tolist() == [0, 2, 1, 0]
    assert t["truth_imps"].tolist() == [2, 1, 0, 0]
    # the largest ball, screen (80..90, 60..72) of 160x120 -> 64x64, half-open, outward rounding
    assert t["truth_fireball_box"].tolist() == [[-1] * 4, [32, 32, 36, 39], [0, 0, 1, 1], [-1] * 4]
    assert t["truth_explosion"].tolist() == [False, True, False, False]  # the still fireball
    assert t["truth_hit"].tolist() == [False, True, False, True]  # 100 -> 76, and the death
    assert t["truth_left_wall"].tolist() == [False, True, False, False]
    assert t["truth_right_wall"].tolist() == [False, False, False, True]
    assert wall_reach(SCREEN) == pytest.approx(100.8)


# --- episode files: old ones load, truth round-trips, bad truth is named ------------------


def test_old_files_without_truth_load(tmp_path: Path) -> None:
    path = tmp_path / "ep_000000.npz"
    save_episode(path, random_episode())
    assert load_episode(path).truth is None
    assert not episode_info(path).truth


def test_truth_round_trip(tmp_path: Path) -> None:
    ep = _with_truth()
    save_episode(tmp_path / "ep_000000.npz", ep)
    back = load_episode(tmp_path / "ep_000000.npz")
    assert back.truth is not None and list(back.truth) == list(TRUTH_ARRAYS)
    for key, a in ep.truth.items():
        assert back.truth[key].dtype == a.dtype and np.array_equal(back.truth[key], a)
    assert episode_info(tmp_path / "ep_000000.npz").truth


@pytest.mark.parametrize(
    ("key", "bad", "match"),
    [
        ("truth_fireballs", lambda a: a.astype(np.int64), "'truth_fireballs' has dtype int64"),
        ("truth_hit", lambda a: a[:-1], r"'truth_hit' has shape \(3,\), expected \(4,\)"),
        ("truth_fireball_box", lambda a: a[:, :2], "'truth_fireball_box' has shape"),
        ("truth_left_wall", None, r"has truth arrays .* but not \['truth_left_wall'\]"),
        ("truth_fireball_box", lambda a: np.where(a >= 0, 70, a), "box outside the 64x64 frame"),
        ("truth_fireball_box", lambda a: a * 0, "not -1 on a frame without fireballs"),
    ],
)
def test_bad_truth_is_named(tmp_path: Path, key: str, bad: object, match: str) -> None:
    ep = _with_truth()
    if bad is None:
        del ep.truth[key]
    else:
        ep.truth[key] = bad(ep.truth[key])
    with pytest.raises(EpisodeFileError, match=match):
        save_episode(tmp_path / "a.npz", ep)
    assert not (tmp_path / "a.npz").exists()
    # the same arrays written by another hand: the loader names the file
    path = tmp_path / "ep_000000.npz"
    write_npz(path, {**{k: getattr(ep, k) for k in ("frames", "actions", "rewards", "dones")},
                     "seed": np.int64(3), **ep.truth})  # fmt: skip
    with pytest.raises(EpisodeFileError, match=match) as e:
        load_episode(path)
    assert str(path) in str(e.value)
    if "outside" not in match and "not -1" not in match:  # header problems: found cheaply too
        with pytest.raises(EpisodeFileError, match=match):
            episode_info(path)


# --- the real game ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def played() -> dict[int, tuple]:
    """Seeds 3 and 4 played with and without truth on two games: {seed: (plain, truth)}."""
    from mdnworld.data.generate import play_episode
    from mdnworld.env.take_cover import TakeCoverEnv

    plain, labelled = TakeCoverEnv(), TakeCoverEnv(truth=True)
    try:
        return {s: (play_episode(plain, s)[0], play_episode(labelled, s)[0]) for s in (3, 4)}
    finally:
        plain.close()
        labelled.close()


@pytest.mark.slow
def test_truth_changes_no_frame(played: dict[int, tuple]) -> None:
    for plain, labelled in played.values():
        assert plain.truth is None and labelled.truth is not None
        for key in ("frames", "actions", "rewards", "dones"):
            assert getattr(plain, key).tobytes() == getattr(labelled, key).tobytes()


@pytest.mark.slow
def test_fireball_boxes_cover_bright_pixels(played: dict[int, tuple]) -> None:
    ep = played[3][1]
    box, n = ep.truth["truth_fireball_box"], ep.truth["truth_fireballs"]
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) * (n > 0)
    t = int(np.argmax(area * ~ep.truth["truth_explosion"]))  # the nearest flying fireball
    x0, y0, x1, y1 = box[t]
    assert n[t] >= 1 and area[t] >= 4
    grey = ep.frames[t].astype(np.float64) @ GREY / 255
    assert grey[y0:y1, x0:x1].max() > 0.65  # the SPEC's fireball threshold, inside the box
    outside = grey.copy()
    outside[y0:y1, x0:x1] = 0
    assert (grey[y0:y1, x0:x1] > 0.65).sum() > (outside > 0.65).sum()  # most bright pixels
    # and over the episode: nearly every box holds a bright pixel (misses: far, tiny balls)
    hits = [(ep.frames[i].astype(np.float64) @ GREY / 255)[b[1] : b[3], b[0] : b[2]].max() > 0.65
            for i, b in zip(np.flatnonzero(n), box[n > 0], strict=True)]  # fmt: skip
    assert np.mean(hits) > 0.85


@pytest.mark.slow
def test_hit_then_explosion_on_screen(played: dict[int, tuple]) -> None:
    """Seed 3 (hand-checked): hits at steps 252 and 290, death at 360; each hit's fireball
    bursts in front of the camera on the following frames (a big bright bloom up top)."""
    ep = played[3][1]
    hit, boom = ep.truth["truth_hit"], ep.truth["truth_explosion"]
    assert np.flatnonzero(hit).tolist() == [252, 290, len(ep) - 1] and ep.dones[-1]
    assert boom[253] and not boom[:253].any()
    grey = ep.frames[253].astype(np.float64) @ GREY / 255
    assert (grey[:28] > 0.65).sum() > 50  # the SPEC's explosion region is lit


@pytest.mark.slow
def test_walls_when_running_into_them() -> None:
    """Holding left (then right) from the start: the left (right) wall truth turns on as the
    player nears it, never both, and then the stored frame's top corner shows brick."""
    from mdnworld.env.take_cover import TakeCoverEnv

    env = TakeCoverEnv(truth=True)
    try:
        for a, side, other in ((-1.0, "left", "right"), (1.0, "right", "left")):
            obs, info = env.reset(seed=5)
            frames, infos = [obs], [info]
            for _ in range(70):
                obs, _, done, _, info = env.step(np.array([a], np.float32))
                frames.append(obs)
                infos.append(info)
            t = truth_arrays(infos[:-1], infos[-1]["health"], env.screen_shape)
            wall = t[f"truth_{side}_wall"]
            assert not wall[:40].any() and wall[-10:].all() and not t[f"truth_{other}_wall"].any()
            col = 0 if side == "left" else -1
            corner = np.stack(frames[:-1])[:, 0, col].astype(int)
            brick = corner[:, 0] - corner[:, 2] > 20  # red-brown brick, not the grey ceiling
            assert (brick == wall).mean() > 0.95
    finally:
        env.close()


@pytest.mark.slow
def test_map_geometry_matches_the_constants() -> None:
    """The wall rule's constants are take_cover.wad's: side walls at y = 0 and 768, ceiling
    104; the player never turns (ANGLE 0) and stays at one x."""
    import vizdoom as vzd

    from mdnworld.data import truth

    game = vzd.DoomGame()
    game.load_config(os.path.join(vzd.scenarios_path, "take_cover.cfg"))
    game.set_window_visible(False)
    game.set_sectors_info_enabled(True)
    game.set_available_game_variables([vzd.GameVariable.POSITION_X, vzd.GameVariable.ANGLE])
    game.init()
    try:
        game.set_seed(1)
        game.new_episode()
        state = game.get_state()
        (sector,) = state.sectors
        assert sector.ceiling_height - sector.floor_height == truth.CEILING
        lines = [(ln.x1, ln.x2, ln.y1) for ln in sector.lines if ln.y1 == ln.y2]
        along_x = {y for x1, x2, y in lines if min(x1, x2) <= -416 <= max(x1, x2)}
        assert along_x == {truth.RIGHT_WALL_Y, truth.LEFT_WALL_Y}
        seen = set()
        while not game.is_episode_finished():
            seen.add(tuple(game.get_state().game_variables))
            game.make_action([1, 0], 1)
        assert seen == {(-416.0, 0.0)}
    finally:
        game.close()
