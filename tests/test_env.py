"""The real ViZDoom Take Cover env: spaces, action mapping, seeding, truncation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from mdnworld.data.generate import play_episode
from mdnworld.env import (
    ENV_ID,
    FRAME_SHAPE,
    RandomRepeatPolicy,
    TakeCoverEnv,
    action_to_buttons,
    preprocess_frame,
)


@pytest.fixture(scope="module")
def env() -> TakeCoverEnv:
    e = TakeCoverEnv()
    yield e
    e.close()


@pytest.mark.slow
def test_reset_and_step_shapes(env: TakeCoverEnv) -> None:
    obs, info = env.reset(seed=3)
    assert obs.shape == FRAME_SHAPE and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert info["health"] == 100.0
    obs, reward, terminated, truncated, info = env.step(np.array([0.0], np.float32))
    assert obs.shape == FRAME_SHAPE and obs.dtype == np.uint8
    assert reward == 1.0 and not terminated and not truncated and info["t"] == 1
    raw = env.render()
    assert raw.shape == (120, 160, 3) and raw.dtype == np.uint8
    assert np.array_equal(obs, preprocess_frame(raw))


@pytest.mark.slow
def test_gym_make() -> None:
    e = gym.make(ENV_ID, max_steps=5)
    obs, _ = e.reset(seed=0)
    assert obs.shape == FRAME_SHAPE
    e.close()


@pytest.mark.parametrize(
    ("a", "buttons"),
    [
        (-1.0, [1, 0]),
        (-0.34, [1, 0]),
        (-1 / 3, [0, 0]),
        (0.0, [0, 0]),
        (1 / 3, [0, 0]),
        (0.34, [0, 1]),
        (1.0, [0, 1]),
    ],
)
def test_action_thresholds(a: float, buttons: list[int]) -> None:
    assert action_to_buttons(a) == buttons


def _x_after(env: TakeCoverEnv, a: float, steps: int = 15) -> tuple[float, float, list]:
    _, info = env.reset(seed=0)
    for _ in range(steps):
        _, _, _, _, last = env.step(np.array([a], np.float32))
    return info["y"], last["y"], env.game.get_last_action()


@pytest.mark.slow
def test_actions_drive_the_real_buttons(env: TakeCoverEnv) -> None:
    """Left, still and right move the player in the game itself (still = no movement at all)."""
    x0, x_left, last_left = _x_after(env, -0.9)
    _, x_still, last_still = _x_after(env, 0.0)
    _, x_right, last_right = _x_after(env, 0.9)
    assert last_left == [1.0, 0.0] and last_still == [0.0, 0.0] and last_right == [0.0, 1.0]
    assert x_still == x0
    assert x_left != x0 and x_right != x0
    assert x_left > x0 > x_right  # the player faces +x: strafing left raises y


@pytest.mark.slow
def test_same_seed_same_episode(env: TakeCoverEnv) -> None:
    ep1, _ = play_episode(env, seed=11)
    play_episode(env, seed=12)
    ep2, _ = play_episode(env, seed=11)
    other = TakeCoverEnv()
    ep3, _ = play_episode(other, seed=11)
    other.close()
    for e in (ep2, ep3):
        assert np.array_equal(ep1.frames, e.frames)
        assert np.array_equal(ep1.actions, e.actions)


@pytest.mark.slow
def test_truncation_at_cap() -> None:
    e = TakeCoverEnv(max_steps=30)
    ep, truncated = play_episode(e, seed=0)
    e.close()
    assert truncated and len(ep) == 30 and not ep.dones.any()


@pytest.mark.slow
def test_death_terminates(env: TakeCoverEnv) -> None:
    ep, truncated = play_episode(env, seed=1)
    assert not truncated and ep.dones[-1] and not ep.dones[:-1].any()
    assert ep.rewards.sum() == len(ep)


def test_random_policy_repeats() -> None:
    p = RandomRepeatPolicy(seed=5)
    acts = np.array([p()[0] for _ in range(10 * p.repeat)])
    assert 1 <= p.repeat <= 10
    assert np.all(np.abs(acts) <= 1)
    blocks = acts.reshape(-1, p.repeat)
    assert np.all(blocks == blocks[:, :1])  # constant within each block of `repeat` steps
    repeats = {RandomRepeatPolicy(seed=s).repeat for s in range(300)}
    assert repeats == set(range(1, 11))


def test_random_policy_fixed_repeat() -> None:
    """repeat=1: a new uniform action at every step (the anchor's "uniformly random policy")."""
    p = RandomRepeatPolicy(seed=5, repeat=1)
    acts = np.array([p()[0] for _ in range(200)])
    assert p.repeat == 1 and len(np.unique(acts)) == 200
    assert -1 <= acts.min() < -0.9 and 0.9 < acts.max() <= 1
