"""Published reference numbers (SPEC §1, §7, §8), typed once and quoted everywhere.

Every table, terminal summary, JSON file and report section that puts our results beside the
literature reads them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- The detectors' brightness test (SPEC §6) ------------------------------------------------

GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)
"""Grey value of a pixel = these weights of its R, G, B (in [0, 1])."""
BRIGHT = 0.65
"""A pixel is bright (fireballs, explosions) when its grey value exceeds this."""

# --- Take Cover in the real game (SPEC §1, §8) ------------------------------------------------

SOLVED = 750
"""Mean score over 100 episodes at which the task counts as solved."""
RANDOM_POLICY = (210, 108)
"""A uniformly random policy: mean ± std steps survived (World Models)."""
WORLD_MODELS = (1092, 556)
"""World Models' controller trained in the dream, τ 1.15, scored in the real game."""


@dataclass(frozen=True)
class Published:
    """One published real-game score: mean ± std over 100 episodes."""

    who: str
    mean: float
    std: float


PUBLISHED: tuple[Published, ...] = (
    Published("World Models, τ 1.15 (Ha & Schmidhuber 2018)", *WORLD_MODELS),
    Published("later re-implementation", 849, 499),
    Published("later re-implementation", 840, 524),
    Published("Gym leaderboard", 820, 58),
    Published("random policy", *RANDOM_POLICY),
)

WORLD_MODELS_TAU: dict[float, tuple[tuple[int, int], tuple[int, int]]] = {
    0.10: ((2086, 140), (193, 58)),
    0.50: ((2060, 277), (196, 50)),
    1.00: ((1145, 690), (868, 511)),
    1.15: ((918, 546), (1092, 556)),
    1.30: ((732, 269), (753, 139)),
}
"""World Models' Table 2: τ -> ((dream mean, std), (real mean, std))."""

EVALUATE_REFERENCE = {
    "world_models_tau_1.15": list(WORLD_MODELS),
    "random_policy": list(RANDOM_POLICY),
    "solved": SOLVED,
}
"""What ``evaluate/scores.json`` records under "reference" (its format: keep the keys)."""

# --- the paper's analyses (SPEC §7) -----------------------------------------------------------

PAPER_WORLDS_EVENTS: dict[str, tuple[float | None, float | None, str]] = {
    "Explosion": (0.82, 0.39, "***"),
    "LeftWall": (0.46, 0.36, "***"),
    "RightWall": (0.41, 0.34, "***"),
    "Fireball": (0.40, 0.38, "n.s."),
    "FireballAppears": (0.42, 0.34, "***"),
    "MonsterAppears": (0.37, 0.36, "*"),
    "MonsterDisappears": (None, None, "n.s."),
}
"""B: medians read off the paper's box plots: class -> (main component current, any, stars)."""

PAPER_COMMITTED = (
    "the explosion component made ~520 explosion frames per 1000, the others 0-50; fireball "
    "frames were common under every component (~250-700); wall frames stayed under ~100"
)
"""C: the paper's committed dreams, in words (medians per 1000 frames)."""
