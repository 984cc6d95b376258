"""The real game: ViZDoom Take Cover as a Gymnasium env, and frame preprocessing. No torch here.

Importing this package registers ``mdnworld/TakeCover-v0`` with Gymnasium::

    import gymnasium as gym, mdnworld.env
    env = gym.make("mdnworld/TakeCover-v0")

The game itself (``take_cover``, which loads vizdoom) is imported on first use of one of its
names, so that reading episode files (``env.preprocess``) never starts the game's library.
"""

from typing import Any

import gymnasium as gym

from mdnworld.env.preprocess import FRAME_SHAPE, preprocess_frame

ENV_ID = "mdnworld/TakeCover-v0"
_GAME_NAMES = ("MAX_STEPS", "RandomRepeatPolicy", "TakeCoverEnv", "action_to_buttons", "make_game")

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="mdnworld.env.take_cover:TakeCoverEnv")


def __getattr__(name: str) -> Any:
    if name in _GAME_NAMES:
        from mdnworld.env import take_cover

        return getattr(take_cover, name)
    raise AttributeError(f"module 'mdnworld.env' has no attribute {name!r}")


__all__ = ["ENV_ID", "FRAME_SHAPE", "preprocess_frame", *_GAME_NAMES]
