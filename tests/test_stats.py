"""Analysis B statistics (SPEC §7B): hand-computed answers and the fair shift null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdnworld.analysis.stats import (
    ClassSummary,
    Share,
    analyse_dreams,
    class_shares,
    current_for_all_shifts,
    mann_whitney,
    shift_null,
    stars,
)

# ---------------------------------------------------------------------------------------------
# class_shares
# ---------------------------------------------------------------------------------------------


def _hand_dream() -> tuple[np.ndarray, np.ndarray]:
    """8 steps, K=3, classes A, B, C, D.

    t  dominant  classes
    0  0         A C
    1  1         A
    2  1         A B
    3  2         B C
    4  2         B
    5  0         (unlabelled)
    6  1         A
    7  2         (unlabelled)
    D never occurs.
    """
    dominant = np.array([0, 1, 1, 2, 2, 0, 1, 2])
    rows = ["AC", "A", "AB", "BC", "B", "", "A", ""]
    labels = np.array([[k in r for k in "ABCD"] for r in rows], dtype=bool)
    return dominant, labels


def test_class_shares_hand_example() -> None:
    dominant, labels = _hand_dream()
    a, b, c, d = class_shares(dominant, labels, n_components=3)
    # Labelled frames: t0 t1 t2 t3 t4 t6 (6 of them) with dominants 0 1 1 2 2 1.
    # A: frames t0 t1 t2 t6 -> 0 1 1 1 -> main 1, current 3/4; any = #1 among labelled = 3/6.
    assert a == Share(main=1, current=0.75, any=0.5, n_frames=4)
    # B: frames t2 t3 t4 -> 1 2 2 -> main 2, current 2/3; any = 2/6 (3/8 if the unlabelled
    # t7, dominated by 2, were wrongly counted).
    assert b == Share(main=2, current=pytest.approx(2 / 3), any=pytest.approx(1 / 3), n_frames=3)
    # C: frames t0 t3 -> 0 2 -> tie, smallest index wins: main 0, current 1/2; any = 1/6
    # (main 2 would give 2/6; counting unlabelled t5 would give 2/8).
    assert c == Share(main=0, current=0.5, any=pytest.approx(1 / 6), n_frames=2)
    # D never occurs: the dream is dropped for D.
    assert d is None


def test_class_shares_rejects_bad_input() -> None:
    dominant, labels = _hand_dream()
    with pytest.raises(ValueError):
        class_shares(dominant, labels, n_components=2)  # dominant 2 is out of range
    with pytest.raises(ValueError):
        class_shares(dominant[:-1], labels, n_components=3)  # T mismatch
    with pytest.raises(ValueError):
        class_shares(dominant, labels.astype(float), n_components=3)  # labels not bool
    with pytest.raises(ValueError):
        class_shares(dominant.astype(float), labels, n_components=3)  # dominant not int


# ---------------------------------------------------------------------------------------------
# mann_whitney and stars
# ---------------------------------------------------------------------------------------------


def _u_by_pairs(x: list[float], y: list[float]) -> float:
    """U of x against y by counting pairs: x > y counts 1, a tie counts 1/2 (no scipy)."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)


def test_mann_whitney_tiny_exact_case() -> None:
    # All of x below all of y: U = 0; exact two-sided p = 2 * P(U = 0) = 2 / C(6, 3) = 0.1.
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == (0.0, pytest.approx(0.1))
    # Swapped: U = n1 * n2 = 9, same two-sided p.
    assert mann_whitney([4, 5, 6], [1, 2, 3]) == (9.0, pytest.approx(0.1))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2, 2], [2, 3]),  # U = 0 + 0 + 0.5 + 0 + 0.5 + 0 = 1
        ([0.5, 0.5, 0.9, 0.1], [0.3, 0.5, 0.7]),
        ([0.8, 0.9, 0.7, 0.85, 0.6, 0.95], [0.3, 0.35, 0.7, 0.2, 0.4, 0.3]),
    ],
)
def test_mann_whitney_u_matches_pair_count(x: list[float], y: list[float]) -> None:
    u, p = mann_whitney(x, y)
    assert u == pytest.approx(_u_by_pairs(x, y))
    assert 0.0 < p <= 1.0


def test_mann_whitney_needs_data() -> None:
    with pytest.raises(ValueError):
        mann_whitney([], [0.1])


@pytest.mark.parametrize(
    ("p", "mark"),
    [
        (0.0, "***"),
        (0.000999, "***"),
        (0.001, "**"),
        (0.00999, "**"),
        (0.01, "*"),
        (0.0499, "*"),
        (0.05, "n.s."),
        (0.5, "n.s."),
        (float("nan"), "n.s."),
    ],
)
def test_stars_thresholds(p: float, mark: str) -> None:
    assert stars(p) == mark


# ---------------------------------------------------------------------------------------------
# Shift null
# ---------------------------------------------------------------------------------------------


def test_current_for_all_shifts_matches_np_roll() -> None:
    rng = np.random.default_rng(3)
    for n_steps in (7, 60, 61):
        dominant = rng.integers(0, 4, size=n_steps)
        labels = rng.random((n_steps, 3)) < [0.3, 0.6, 0.0]  # third class absent
        table = current_for_all_shifts(dominant, labels, n_components=4)
        assert table.shape == (3, n_steps)
        assert np.all(np.isnan(table[2]))
        for offset in range(n_steps):
            shares = class_shares(np.roll(dominant, offset), labels, n_components=4)
            assert table[0, offset] == pytest.approx(shares[0].current, abs=1e-12)
            assert table[1, offset] == pytest.approx(shares[1].current, abs=1e-12)


def _blocks(rng: np.random.Generator, n_steps: int, low: int, high: int) -> np.ndarray:
    """(n_steps,) bool: alternating False/True runs with lengths uniform in [low, high]."""
    out = np.zeros(n_steps, dtype=bool)
    t, on = int(rng.integers(0, high)), True
    while t < n_steps:
        length = int(rng.integers(low, high + 1))
        out[t : t + length] = on
        t, on = t + length, not on
    return out


def test_shift_null_detects_a_real_tie() -> None:
    """Dominant component == class indicator: Current = 1, and no shift reaches it."""
    rng = np.random.default_rng(0)
    dominants, labels = [], []
    for _ in range(10):
        in_class = _blocks(rng, 500, 5, 40)
        dominants.append(in_class.astype(np.int64))  # component 1 exactly on the class
        labels.append(np.stack([in_class, ~in_class], axis=1))  # class, Otherwise
    n_shifts = 300
    for result in shift_null(dominants, labels, n_components=2, n_shifts=n_shifts, seed=1):
        assert result is not None
        assert result.n_dreams == 10
        assert result.observed == 1.0
        assert result.p_value == pytest.approx(1 / (1 + n_shifts))
        assert result.null_mean < 0.8
        assert result.null.shape == (n_shifts,)


def test_shift_null_never_uses_offset_zero() -> None:
    # T = 3, dominant 0 0 1, class on frames 0 and 1: offset 0 gives Current 1, offsets 1 and 2
    # give 1/2. Every null sample must be 1/2.
    dominant = np.array([0, 0, 1])
    labels = np.array([[True], [True], [False]])
    (result,) = shift_null([dominant], [labels], n_components=2, n_shifts=200, seed=0)
    assert result.observed == 1.0
    assert np.all(result.null == 0.5)
    assert result.p_value == pytest.approx(1 / 201)


def test_shift_null_counts_ties_against_the_observed() -> None:
    # A constant dominant sequence: every shift gives Current 1 == observed, so p = 1 exactly.
    labels = np.array([[True], [True], [False], [True]])
    (result,) = shift_null([np.zeros(4, dtype=int)], [labels], n_components=2, n_shifts=99)
    assert result.observed == 1.0
    assert np.all(result.null == 1.0)
    assert result.p_value == 1.0


def _markov_dominants(rng: np.random.Generator, n_steps: int, k: int, stay: float) -> np.ndarray:
    """(n_steps,) a chain over k components that stays with prob `stay`, else jumps elsewhere."""
    out = np.empty(n_steps, dtype=np.int64)
    out[0] = rng.integers(k)
    moves = rng.random(n_steps) >= stay
    jumps = rng.integers(1, k, size=n_steps)
    for t in range(1, n_steps):
        out[t] = (out[t - 1] + jumps[t]) % k if moves[t] else out[t - 1]
    return out


def _simulated_worlds(
    rng: np.random.Generator, n_dreams: int, n_steps: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Persistent dominants drawn independently of world labels (Explosion, Wall, Otherwise).

    Explosion: 3-5 runs of 8-14 frames and only Explosion there; Wall: runs of 20-80 frames.
    """
    dominants, labels = [], []
    for _ in range(n_dreams):
        explosion = np.zeros(n_steps, dtype=bool)
        for start in rng.integers(0, n_steps - 14, size=int(rng.integers(3, 6))):
            explosion[start : start + int(rng.integers(8, 15))] = True
        wall = _blocks(rng, n_steps, 20, 80) & ~explosion
        otherwise = ~explosion & ~wall
        labels.append(np.stack([explosion, wall, otherwise], axis=1))
        dominants.append(_markov_dominants(rng, n_steps, k=5, stay=0.9))
    return dominants, labels


def test_persistent_independent_components_fool_the_paper_test_not_the_null() -> None:
    """SPEC §7B: Mann–Whitney says "***" for Explosion though the components ignore the frames."""
    dominants, labels = _simulated_worlds(np.random.default_rng(2024), n_dreams=50, n_steps=1000)
    rows = analyse_dreams(
        dominants, labels, ["Explosion", "Wall", "Otherwise"], 5, n_shifts=1000, seed=7
    )
    explosion, wall, otherwise = rows
    assert explosion.n_dreams == 50
    # Selection inflates Current (about 0.43 against 0.21 here), and the paper's test calls
    # every class "***" although the components know nothing of the frames.
    assert explosion.median_current > 1.5 * explosion.median_any
    assert wall.median_current > wall.median_any
    assert otherwise.median_current > otherwise.median_any
    for row in rows:
        assert row.stars == "***", row
        # The null pays the same selection bias: its mean sits at the observed median, and the
        # observed value is unremarkable against it.
        assert row.null_p > 0.05, row
        assert row.null_mean == pytest.approx(row.median_current, abs=0.05)


def test_shift_null_is_calibrated_where_the_paper_test_is_not() -> None:
    """Over 40 independent small simulations, the null rejects at about its level."""
    rng = np.random.default_rng(11)
    null_rejects = paper_rejects = 0
    for rep in range(40):
        dominants, labels = _simulated_worlds(rng, n_dreams=10, n_steps=400)
        (explosion, *_) = analyse_dreams(
            dominants, labels, ["Explosion", "Wall", "Otherwise"], 5, n_shifts=199, seed=rep
        )
        null_rejects += explosion.null_p <= 0.05
        paper_rejects += explosion.p < 0.05
    assert null_rejects <= 6  # expected 2; P(Binomial(40, 0.05) >= 7) < 0.005
    assert paper_rejects >= 35


def test_shift_null_seeding() -> None:
    dominants, labels = _simulated_worlds(np.random.default_rng(5), n_dreams=8, n_steps=300)
    first = shift_null(dominants, labels, n_components=5, n_shifts=100, seed=3)
    again = shift_null(dominants, labels, n_components=5, n_shifts=100, seed=3)
    other = shift_null(dominants, labels, n_components=5, n_shifts=100, seed=4)
    for a, b, c in zip(first, again, other, strict=True):
        assert a == b
        assert np.array_equal(a.null, b.null)
        assert a.observed == c.observed  # the data, not the seed, fixes the observed value
        assert not np.array_equal(a.null, c.null)


def test_shift_null_statistic_and_absent_class() -> None:
    dominant, labels = _hand_dream()
    results = shift_null([dominant, dominant], [labels, labels], 3, n_shifts=50, statistic=np.mean)
    assert results[0].observed == pytest.approx(0.75)  # mean of A's Current over two dreams
    assert results[0].n_dreams == 2
    assert results[3] is None  # D occurs in no dream


# ---------------------------------------------------------------------------------------------
# analyse_dreams: the table worlds-events writes
# ---------------------------------------------------------------------------------------------


def test_analyse_dreams_table_is_plain_and_matches_the_parts() -> None:
    dominant, labels = _hand_dream()
    second = np.array([1, 1, 1, 0, 2, 2, 0, 0])  # A: 1 1 1 0 -> 3/4; B: 1 0 2 -> tie -> main 0
    rows = analyse_dreams(
        [dominant, second], [labels, labels], ["A", "B", "C", "D"], 3, n_shifts=20, seed=0
    )
    assert [r.class_name for r in rows] == ["A", "B", "C", "D"]
    a = rows[0]
    assert isinstance(a, ClassSummary)
    assert a.n_dreams == 2
    assert a.median_current == pytest.approx(0.75)
    # Any of A: dream 1 -> 3/6; dream 2 labelled dominants 1 1 1 0 2 0 -> #1 = 3/6.
    assert a.median_any == pytest.approx(0.5)
    assert (a.u, a.p) == mann_whitney([0.75, 0.75], [0.5, 0.5])
    assert a.stars == stars(a.p)
    # B in dream 2: frames t2 t3 t4 -> 1 0 2, three-way tie -> main 0, Current 1/3,
    # Any = #0 among labelled (1 1 1 0 2 0) = 2/6; dream 1 gave 2/3 and 1/3.
    assert rows[1].median_current == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert rows[1].median_any == pytest.approx(1 / 3)
    d = rows[3]
    assert d.n_dreams == 0
    assert d.median_current is d.p is d.stars is d.null_p is None

    table = [r.as_dict() for r in rows]
    json.dumps(table, allow_nan=False)  # strict JSON: no NaN, no numpy scalars
    for row in table:
        for value in row.values():
            assert value is None or type(value) in (str, int, float)
