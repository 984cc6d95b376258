"""The real ViZDoom "Take Cover" game as a Gymnasium environment (SPEC §1).

One step is one game tic; the action is one scalar ``a`` in [-1, 1]: ``a > 1/3`` presses
MOVE_RIGHT, ``a < -1/3`` presses MOVE_LEFT, anything in between presses nothing and the player
stands still. (The original World Models / Ellefsen code mapped "still" to MOVE_RIGHT by
mistake; we do not.) Reward is 1 per tic survived, so the score equals the steps survived.
The episode terminates at death and is truncated at ``max_steps`` (2100).
"""

from __future__ import annotations

import math
import os
from typing import Any

import gymnasium as gym
import numpy as np
import vizdoom as vzd

from mdnworld.env.preprocess import FRAME_SHAPE, preprocess_frame

LEFT_THRESHOLD = -1.0 / 3.0
RIGHT_THRESHOLD = 1.0 / 3.0
MAX_STEPS = 2100


def action_to_buttons(a: float) -> list[int]:
    """Scalar action -> [MOVE_LEFT, MOVE_RIGHT] button states."""
    return [int(a < LEFT_THRESHOLD), int(a > RIGHT_THRESHOLD)]


def make_game(resolution: str = "RES_160X120", labels: bool = False) -> vzd.DoomGame:
    """A headless, initialised DoomGame running the bundled take_cover scenario; ``labels``
    also renders the labels buffer (the objects on screen; it changes no frame and no RNG)."""
    try:
        res = getattr(vzd.ScreenResolution, resolution)
    except AttributeError:
        raise ValueError(f"unknown ViZDoom resolution {resolution!r}") from None
    game = vzd.DoomGame()
    game.load_config(os.path.join(vzd.scenarios_path, "take_cover.cfg"))
    game.set_window_visible(False)
    game.set_screen_resolution(res)
    game.set_screen_format(vzd.ScreenFormat.RGB24)
    game.set_mode(vzd.Mode.PLAYER)
    game.set_labels_buffer_enabled(labels)
    game.set_available_game_variables([vzd.GameVariable.HEALTH, vzd.GameVariable.POSITION_Y])
    buttons = game.get_available_buttons()
    if buttons != [vzd.Button.MOVE_LEFT, vzd.Button.MOVE_RIGHT]:
        raise RuntimeError(f"take_cover.cfg has unexpected buttons {buttons}")
    game.init()
    return game


def _speed(label: Any) -> float:
    """A label's object speed in map units per tic (0 while a fireball explodes)."""
    return math.hypot(label.object_velocity_x, label.object_velocity_y, label.object_velocity_z)


class TakeCoverEnv(gym.Env):
    """Gymnasium wrapper: observations are preprocessed 64x64x3 uint8 frames, or the raw
    (120, 160, 3) screens with ``preprocess=False`` (for callers that preprocess in bulk).

    ``reset(seed=s)`` calls ``game.set_seed(s)`` right before ``new_episode()``, so the same
    seed and the same actions replay the same episode. ``info`` holds the player's ``health``
    and lateral map coordinate ``y`` (strafing left raises it); with ``truth=True`` also
    ``labels``: every object in the labels buffer of that frame as ``(name, x, y, width,
    height, speed)`` (screen pixels; speed in map units per tic), the raw material of
    ``data/truth.py``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 35}

    def __init__(
        self,
        max_steps: int = MAX_STEPS,
        resolution: str = "RES_160X120",
        render_mode: str | None = None,
        preprocess: bool = True,
        truth: bool = False,
    ) -> None:
        self.game = make_game(resolution, labels=truth)
        self.preprocess = preprocess
        self.truth = truth
        shape = FRAME_SHAPE if preprocess else self.screen_shape
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.max_steps = max_steps
        self.render_mode = render_mode
        self._t = 0
        self._obs = np.zeros(FRAME_SHAPE, np.uint8)
        self._screen: np.ndarray | None = None
        self._health = 0.0
        self._y = 0.0
        self._labels: tuple = ()

    @property
    def screen_shape(self) -> tuple[int, int, int]:
        return (self.game.get_screen_height(), self.game.get_screen_width(), 3)

    def _observe(self) -> np.ndarray:
        state = self.game.get_state()
        if state is None:  # the episode has finished: repeat the last frame
            self._health, self._labels = 0.0, ()
            return self._obs.copy()
        self._screen = state.screen_buffer  # a fresh array for every state
        health, y = state.game_variables
        self._health, self._y = float(health), float(y)
        if self.truth:
            self._labels = tuple(
                (lab.object_name, lab.x, lab.y, lab.width, lab.height, _speed(lab))
                for lab in state.labels
            )
        self._obs = preprocess_frame(self._screen) if self.preprocess else self._screen
        return self._obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self.game.set_seed(int(seed) % 2**32)
        self.game.new_episode()
        self._t = 0
        return self._observe(), self._info()

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"health": self._health, "y": self._y, "t": self._t}
        if self.truth:
            info["labels"] = self._labels
        return info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = float(np.asarray(action, dtype=np.float32).reshape(-1)[0])
        self.game.make_action(action_to_buttons(a), 1)
        self._t += 1
        terminated = self.game.is_episode_finished()
        truncated = not terminated and self._t >= self.max_steps
        obs = self._observe()
        return obs, 1.0, terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """The raw RGB screen of the last observation (H, W, 3) uint8."""
        return None if self._screen is None else self._screen.copy()

    def close(self) -> None:
        self.game.close()


class RandomRepeatPolicy:
    """SPEC §2 random policy: ``repeat ~ randint(1, 10)`` (inclusive) once per episode; at
    every step t with ``t % repeat == 0`` draw a new ``a ~ U(-1, 1)``, else keep the last one.
    A given ``repeat`` fixes it (``repeat=1``: a new uniform action every step)."""

    def __init__(self, seed: int, repeat: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.repeat = int(self.rng.integers(1, 11)) if repeat is None else repeat
        self.t = 0
        self.a = 0.0

    def __call__(self, obs: np.ndarray | None = None) -> np.ndarray:
        if self.t % self.repeat == 0:
            self.a = float(self.rng.uniform(-1.0, 1.0))
        self.t += 1
        return np.array([self.a], dtype=np.float32)
