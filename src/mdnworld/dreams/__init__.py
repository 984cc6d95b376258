"""Dreams: M run on its own predictions, decoded by V (SPEC §5).

- ``engine``: the batched dream engine (``Dreamer``, ``dream``, ``decode``), pure torch;
- ``env``: ``DreamEnv``, the controller's vectorised environment inside the dream;
- ``videos``: the ``mdnworld dream`` stage (videos with live π bars + raw arrays on disk).

Where dreams start (``StartBank``) is read from the run by ``mdnworld.checkpoints``.
"""

from mdnworld.dreams.engine import (
    Dreamer,
    DreamRecord,
    RandomActions,
    RandomStreams,
    decode,
    dream,
    stream_seed,
    to_uint8,
)
from mdnworld.dreams.env import DreamEnv

__all__ = [
    "DreamEnv",
    "DreamRecord",
    "Dreamer",
    "RandomActions",
    "RandomStreams",
    "decode",
    "dream",
    "stream_seed",
    "to_uint8",
]
