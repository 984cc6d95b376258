"""The validated detector set (``VALIDATED``): hand-made frames where each of its rules matters."""

from __future__ import annotations

import numpy as np
import pytest

from mdnworld.analysis.detectors import (
    DETECTOR_SETS,
    EVENT_CLASSES,
    SPEC,
    VALIDATED,
    Thresholds,
    detect,
    event_labels,
    hold_counts,
)

BACKGROUND = (0.1, 0.3, 0.1)  # not bright, not a monster, no wall
YELLOW = (1.0, 0.9, 0.4)  # a fireball's / an explosion's colour: bright, red over blue
GREY = (0.8, 0.8, 0.8)  # a bright grey ceiling: bright, red = blue
YY, XX = np.mgrid[0:64, 0:64]


def blank() -> np.ndarray:
    return np.broadcast_to(np.array(BACKGROUND, np.float32), (64, 64, 3)).copy()


def disc(frame: np.ndarray, row: int, col: int, radius: float, colour=YELLOW) -> np.ndarray:
    frame[(YY - row) ** 2 + (XX - col) ** 2 <= radius**2] = colour
    return frame


def test_the_sets() -> None:
    assert DETECTOR_SETS == {"spec": SPEC, "validated": VALIDATED}
    assert Thresholds() == SPEC  # the SPEC's detectors stay the default
    assert VALIDATED != SPEC


def test_a_grey_ceiling_edge_is_not_a_wall_but_brick_is() -> None:
    assert VALIDATED.wall_red_over_blue > 0
    ceiling, brick = blank(), blank()
    ceiling[:10, 0] = (0.6, 0.6, 0.6)  # red 0.6 passes the SPEC's red test
    brick[:10, -1] = (0.55, 0.4, 0.3)  # brown brick: red well over blue
    frames = np.stack([ceiling, brick])
    spec, val = detect(frames, SPEC), detect(frames, VALIDATED)
    assert spec.wall_left.tolist() == [True, False] and val.wall_left.tolist() == [False, False]
    assert spec.wall_right.tolist() == val.wall_right.tolist() == [False, True]


def test_min_fireball_drops_a_one_pixel_speck() -> None:
    speck, ball = blank(), disc(blank(), 45, 20, 3)
    speck[45, 20] = YELLOW
    frames = np.stack([speck, ball])
    assert detect(frames, SPEC).n_fireballs.tolist() == [1, 1]
    assert detect(frames, Thresholds(min_fireball=2)).n_fireballs.tolist() == [0, 1]


def test_explosions_need_a_large_blob() -> None:
    assert VALIDATED.min_explosion > 1
    small, big = disc(blank(), 10, 32, 2), disc(blank(), 14, 32, 12)  # 13 and ~450 pixels
    frames = np.stack([small, big])
    assert detect(frames, SPEC).explosion.tolist() == [True, True]
    assert detect(frames, VALIDATED).explosion.tolist() == [False, True]
    assert detect(frames, VALIDATED).n_fireballs.tolist() == [0, 0]  # a top blob is no fireball


def test_bright_colour_rule_drops_a_grey_ceiling_band() -> None:
    grey_top = blank()
    grey_top[:12] = GREY
    frames = np.stack([grey_top, disc(blank(), 14, 32, 12)])
    assert detect(frames, SPEC).explosion.tolist() == [True, True]
    assert detect(frames, Thresholds(bright_red_over_blue=0.1)).explosion.tolist() == [False, True]


def test_min_monster_drops_a_one_pixel_speck() -> None:
    assert VALIDATED.min_monster > 1
    frame = blank()
    frame[29, 10] = (0.1, 0.05, 0.1)  # one dark pixel on the back wall
    frame[28:32, 30:33] = (0.1, 0.05, 0.1)  # an imp
    assert detect(frame[None], SPEC).n_monsters.tolist() == [2]
    assert detect(frame[None], VALIDATED).n_monsters.tolist() == [1]


def test_a_one_frame_count_flicker_is_not_an_event() -> None:
    one, two = disc(blank(), 45, 20, 3), disc(disc(blank(), 45, 20, 3), 45, 50, 3)
    appears, disappears = EVENT_CLASSES.index("FireballAppears"), 1
    flicker = np.stack([one, one, two, one, one, one, one])
    spec = event_labels(detect(flicker, SPEC))
    assert spec[2, appears] and spec[3, disappears]
    assert VALIDATED.fireball_hold > 1
    assert not event_labels(detect(flicker, VALIDATED))[:, :4].any()
    th = Thresholds(fireball_hold=3)
    assert not event_labels(detect(flicker, th))[:, :4].any()
    lasting = np.stack([one, one, two, two, two, two])
    labels = event_labels(detect(lasting, th))
    assert labels[2, appears] and labels[:, :4].sum() == 1  # at the onset of the new count


def test_hold_counts() -> None:
    calm = np.ones(9, dtype=bool)
    counts = np.array([1, 1, 2, 1, 1, 3, 3, 3, 0])
    assert hold_counts(counts, calm, 1).tolist() == counts.tolist()
    assert hold_counts(counts, calm, 2).tolist() == [1, 1, 1, 1, 1, 3, 3, 3, 3]
    calm[5] = False  # skipped frames keep their own count and split no run
    assert hold_counts(counts, calm, 3).tolist() == [1, 1, 1, 1, 1, 3, 1, 1, 1]
    assert hold_counts(np.array([], dtype=int), np.array([], dtype=bool), 3).tolist() == []


@pytest.mark.parametrize("field", ["min_fireball", "min_explosion", "min_monster", "monster_hold"])
def test_counts_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Thresholds(**{field: 0})


def test_analyze_config_picks_a_set() -> None:
    from mdnworld.config import load_config

    assert load_config().analyze.detectors == "spec"
    cfg = load_config(overrides=["analyze.detectors=validated"]).analyze
    assert DETECTOR_SETS[cfg.detectors] is VALIDATED
