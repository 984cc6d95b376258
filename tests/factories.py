"""Small real objects for tests that need no game: episodes with random frames, written with
the package's own writers (never a stand-in for the game in a test that plays it)."""

from __future__ import annotations

import numpy as np

from mdnworld.data.episodes import Episode


def random_episode(t: int = 5, seed: int = 3) -> Episode:
    """An episode of ``t`` steps with random frames and actions, dying at its last step;
    ``seed`` is both the random stream and the recorded game seed."""
    rng = np.random.default_rng(seed)
    dones = np.zeros(t, bool)
    dones[-1] = True
    return Episode(
        frames=rng.integers(0, 256, (t, 64, 64, 3), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (t, 1)).astype(np.float32),
        rewards=np.ones(t, np.float32),
        dones=dones,
        seed=seed,
    )
