"""The real game: ViZDoom Take Cover as a Gymnasium env, and frame preprocessing. No torch here.

Importing this package registers ``mdnworld/TakeCover-v0`` with Gymnasium::

    import gymnasium as gym, mdnworld.env
    env = gym.make("mdnworld/TakeCover-v0")
"""

import gymnasium as gym

from mdnworld.env.preprocess import FRAME_SHAPE, preprocess_frame
from mdnworld.env.take_cover import (
    MAX_STEPS,
    RandomRepeatPolicy,
    TakeCoverEnv,
    action_to_buttons,
    make_game,
)

ENV_ID = "mdnworld/TakeCover-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="mdnworld.env.take_cover:TakeCoverEnv")

__all__ = [
    "ENV_ID",
    "FRAME_SHAPE",
    "MAX_STEPS",
    "RandomRepeatPolicy",
    "TakeCoverEnv",
    "action_to_buttons",
    "make_game",
    "preprocess_frame",
]
