"""Analysis B (SPEC §7B): which mixture component leads in which world/event class, and a fair null.

Per dream the inputs are

* ``dominant``: shape ``(T,)``, int, the dominant component (argmax π) at each dreamed step, a
  value in ``[0, K)`` where ``K = n_components``;
* ``labels``: shape ``(T, C)``, bool, class membership per frame. A frame may belong to several
  classes (Fireball and LeftWall at once); a row with no True is an unlabelled (skipped) frame,
  e.g. the first frame or an explosion frame in the event analysis. One of the classes is
  "Otherwise".

The paper's test, per class: in each dream, *main* is the most frequent dominant component over
the class's frames, **Current** the share of the class's frames dominated by main, **Any** the
share of all labelled frames dominated by main; then Mann–Whitney U between the Current list and
the Any list over dreams.

That test is biased: main is chosen *on* the class's frames, so Current > Any even when the
components have nothing to do with the class, and more so when components persist in time and the
class comes in blocks (an explosion lasts several frames). Our null keeps everything but the tie
between components and frames: each dream's dominant sequence is circularly shifted by a random
offset (its persistence survives, its alignment with the frames does not), main is chosen again
the same way, and Current recomputed. The observed Current is compared with that distribution.

Only numpy and scipy.stats; every number that leaves :func:`analyse_dreams` is a plain Python
``int``/``float``/``str``/``None``, ready for JSON or CSV.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

Statistic = Callable[..., Any]
"""A reduction such as ``np.median`` or ``np.mean``; it must accept ``axis=``."""


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_dream(
    dominant: np.ndarray, labels: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``dominant`` as int64 ``(T,)`` and ``labels`` as bool ``(T, C)``, or raise."""
    dominant = np.asarray(dominant)
    labels = np.asarray(labels)
    if dominant.ndim != 1:
        raise ValueError(f"dominant must have shape (T,), got {dominant.shape}")
    if labels.ndim != 2 or labels.shape[0] != dominant.shape[0]:
        raise ValueError(f"labels must have shape (T={dominant.shape[0]}, C), got {labels.shape}")
    if labels.dtype != np.bool_:
        raise ValueError(f"labels must be a bool array, got dtype {labels.dtype}")
    if not np.issubdtype(dominant.dtype, np.integer):
        raise ValueError(f"dominant must be an integer array, got dtype {dominant.dtype}")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    if dominant.size and (dominant.min() < 0 or dominant.max() >= n_components):
        raise ValueError(f"dominant values must lie in [0, {n_components})")
    return dominant.astype(np.int64, copy=False), labels


# --------------------------------------------------------------------------------------------
# The paper's per-dream quantities
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One class in one dream.

    ``main``: the most frequent dominant component over the class's frames (ties go to the
    smallest component index); ``current``: share of the class's frames dominated by ``main``;
    ``any``: share of all labelled frames of the dream dominated by ``main``; ``n_frames``:
    number of the class's frames.
    """

    main: int
    current: float
    any: float
    n_frames: int


def class_shares(dominant: np.ndarray, labels: np.ndarray, n_components: int) -> list[Share | None]:
    """Main component, Current and Any for every class of one dream (SPEC §7B).

    Args:
        dominant: ``(T,)`` int, dominant component per step, values in ``[0, n_components)``.
        labels: ``(T, C)`` bool, class membership per frame; all-False rows are unlabelled.
        n_components: K, the number of mixture components.

    Returns:
        A list of length C: a :class:`Share` per class, or ``None`` where the class has no frame
        in this dream (the dream is then dropped for that class, from Current and Any alike).

    A tie for main (two components equally frequent over the class's frames) goes to the
    smallest component index (``np.argmax``). Current does not depend on the tie-break; Any does.
    """
    dominant, labels = _check_dream(dominant, labels, n_components)
    labelled = labels.any(axis=1)  # (T,)
    n_labelled = int(labelled.sum())
    # counts_any[k] = labelled frames dominated by k: the denominator of Any is every labelled
    # frame (Otherwise included), never the unlabelled ones.
    counts_any = np.bincount(dominant[labelled], minlength=n_components)  # (K,)

    shares: list[Share | None] = []
    for c in range(labels.shape[1]):
        in_class = labels[:, c]  # (T,)
        n_frames = int(in_class.sum())
        if n_frames == 0:
            shares.append(None)
            continue
        counts = np.bincount(dominant[in_class], minlength=n_components)  # (K,)
        main = int(np.argmax(counts))  # first maximum: ties -> smallest index
        shares.append(
            Share(
                main=main,
                current=float(counts[main] / n_frames),
                any=float(counts_any[main] / n_labelled),
                n_frames=n_frames,
            )
        )
    return shares


# --------------------------------------------------------------------------------------------
# The paper's test
# --------------------------------------------------------------------------------------------


def mann_whitney(current: Sequence[float], any_: Sequence[float]) -> tuple[float, float]:
    """Mann–Whitney U test of the Current list against the Any list, two-sided.

    Args:
        current: Current over dreams, length n1 >= 1.
        any_: Any over dreams, length n2 >= 1 (n1 == n2 in analysis B, but not required).

    Returns:
        ``(U, p)``: U is scipy's statistic for ``current`` (the number of (current, any) pairs
        with current > any, ties counting one half; ``U_any = n1 * n2 - U``); p is two-sided,
        with scipy's default ``method="auto"`` (exact for small samples without ties, otherwise
        the normal approximation with tie and continuity correction). Samples whose values are
        all equal give p = 1.

    The paper treats the two lists as independent samples although each dream contributes one
    value to both; we follow the paper here, and the shift null (:func:`shift_null`) is the test
    we trust.
    """
    x = np.asarray(current, dtype=float)
    y = np.asarray(any_, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.size == 0 or y.size == 0:
        raise ValueError("mann_whitney needs two non-empty 1-D samples")
    result = sps.mannwhitneyu(x, y, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def stars(p: float) -> str:
    """Significance marks as in the paper: ``***`` p<0.001, ``**`` p<0.01, ``*`` p<0.05.

    The bounds are strict (p = 0.05 is "n.s."); NaN is "n.s.".
    """
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return "n.s."


# --------------------------------------------------------------------------------------------
# The fair null: circular shifts of the dominant-component sequence
# --------------------------------------------------------------------------------------------


def current_for_all_shifts(
    dominant: np.ndarray, labels: np.ndarray, n_components: int
) -> np.ndarray:
    """Current of every class for every circular shift of one dream's dominant sequence.

    Args:
        dominant: ``(T,)`` int, values in ``[0, n_components)``.
        labels: ``(T, C)`` bool.
        n_components: K.

    Returns:
        ``(C, T)`` float: entry ``[c, o]`` is Current of class c when the dominant sequence is
        ``np.roll(dominant, o)`` (main chosen again for that shift); column 0 is the observed
        Current. Rows of classes absent from the dream are NaN.

    How: the number of class-c frames that component k dominates after a shift by o is the
    circular cross-correlation ``sum_t labels[t, c] * [dominant[t - o] == k]``, which one FFT
    gives for all T offsets at once (O(K C T log T) instead of O(K C T^2)); FFT values are
    rounded back to the integer counts they are.
    """
    dominant, labels = _check_dream(dominant, labels, n_components)
    n_steps = dominant.shape[0]
    onehot = np.zeros((n_components, n_steps))  # (K, T)
    onehot[dominant, np.arange(n_steps)] = 1.0
    mask = labels.T.astype(float)  # (C, T)

    # corr[c, k, o] = sum_t mask[c, t] * onehot[k, t - o]  (indices mod T)
    spectrum = np.fft.rfft(mask, axis=1)[:, None, :] * np.conj(np.fft.rfft(onehot, axis=1))[None]
    counts = np.rint(np.fft.irfft(spectrum, n=n_steps, axis=2))  # (C, K, T)

    n_frames = mask.sum(axis=1)  # (C,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts.max(axis=1) / n_frames[:, None]  # (C, T); NaN where n_frames == 0


@dataclass(frozen=True)
class NullResult:
    """The shift null for one class.

    ``observed``: the statistic (median by default) of Current over the dreams that contain the
    class; ``null_mean``/``null_std``: mean and standard deviation of that statistic under random
    circular shifts; ``p_value``: one-sided empirical p of "Current is inflated",
    ``(1 + #(null >= observed)) / (1 + n_shifts)``; ``n_dreams``: dreams that contain the class;
    ``null``: ``(n_shifts,)`` the null samples themselves (not compared, not for JSON).
    """

    observed: float
    null_mean: float
    null_std: float
    p_value: float
    n_dreams: int
    null: np.ndarray = field(compare=False, repr=False)


_TIE_TOLERANCE = 1e-12
"""A null sample within this of the observed value counts as >= (conservative: float noise)."""


def shift_null(
    dominants: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    n_components: int,
    n_shifts: int = 1000,
    seed: int = 0,
    statistic: Statistic = np.median,
) -> list[NullResult | None]:
    """Per class: the observed Current against a circular-shift null (SPEC §7B, "fair null").

    Args:
        dominants: one ``(T_i,)`` int array per dream (lengths may differ, T_i >= 2).
        labels: one ``(T_i, C)`` bool array per dream, same C for all.
        n_components: K.
        n_shifts: number of null draws (SPEC asks for >= 1000).
        seed: seeds the ``numpy.random.Generator`` that draws the offsets.
        statistic: reduction over dreams, called as ``statistic(values, axis=...)``.

    Returns:
        A list of length C: a :class:`NullResult` per class, or ``None`` for a class that occurs
        in no dream.

    Each draw shifts every dream by its own offset, uniform in ``[1, T_i - 1]`` (never the
    identity); one draw uses the same offset for all classes of a dream, as if the shifted
    sequence had been dreamed. Main is chosen again on the shifted sequence, so the null pays the
    same selection bias as the observed value.
    """
    if len(dominants) != len(labels):
        raise ValueError(f"{len(dominants)} dominant sequences but {len(labels)} label arrays")
    if n_shifts < 1:
        raise ValueError(f"n_shifts must be >= 1, got {n_shifts}")
    n_classes = {np.shape(lab)[1] for lab in labels if np.ndim(lab) == 2}
    if len(n_classes) != 1:
        raise ValueError("every labels array must have shape (T_i, C) with the same C")
    (n_class,) = n_classes
    rng = np.random.default_rng(seed)

    observed_per_class: list[list[float]] = [[] for _ in range(n_class)]
    null_per_class: list[list[np.ndarray]] = [[] for _ in range(n_class)]
    for dominant, lab in zip(dominants, labels, strict=True):
        n_steps = np.shape(dominant)[0]
        if n_steps < 2:
            raise ValueError("every dream needs at least 2 steps to be shifted")
        table = current_for_all_shifts(dominant, lab, n_components)  # (C, T_i)
        offsets = rng.integers(1, n_steps, size=n_shifts)  # (n_shifts,), in [1, T_i - 1]
        for c in range(n_class):
            if np.isnan(table[c, 0]):
                continue  # the class never occurs in this dream
            observed_per_class[c].append(table[c, 0])
            null_per_class[c].append(table[c, offsets])

    results: list[NullResult | None] = []
    for c in range(n_class):
        if not observed_per_class[c]:
            results.append(None)
            continue
        observed = float(statistic(np.asarray(observed_per_class[c]), axis=0))
        null = np.asarray(statistic(np.stack(null_per_class[c], axis=1), axis=1), dtype=float)
        n_at_least = int(np.sum(null >= observed - _TIE_TOLERANCE))
        results.append(
            NullResult(
                observed=observed,
                null_mean=float(null.mean()),
                null_std=float(null.std()),
                p_value=(1 + n_at_least) / (1 + n_shifts),
                n_dreams=len(observed_per_class[c]),
                null=null,
            )
        )
    return results


# --------------------------------------------------------------------------------------------
# The table `worlds-events` writes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSummary:
    """One row of analysis B: the paper's test and the shift null, for one class.

    Numeric fields are ``None`` where undefined (the class occurs in no dream). ``median_current``
    is also the observed value the shift null is tested against.
    """

    class_name: str
    n_dreams: int
    median_current: float | None
    median_any: float | None
    u: float | None
    p: float | None
    stars: str | None
    null_mean: float | None
    null_std: float | None
    null_p: float | None
    n_shifts: int

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (str/int/float/None only), for JSON or ``csv.DictWriter``."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _plain(x: float) -> float | None:
    """A Python float, or None for NaN (strict JSON has no NaN)."""
    x = float(x)
    return None if math.isnan(x) else x


def analyse_dreams(
    dominants: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    class_names: Sequence[str],
    n_components: int,
    n_shifts: int = 1000,
    seed: int = 0,
) -> list[ClassSummary]:
    """Analysis B over all dreams: per class, medians, Mann–Whitney U and the shift null.

    Args:
        dominants: one ``(T_i,)`` int array per dream.
        labels: one ``(T_i, C)`` bool array per dream.
        class_names: C names, in the column order of ``labels``.
        n_components: K.
        n_shifts: draws of the shift null.
        seed: seed of the shift null.

    Returns:
        One :class:`ClassSummary` per class, in ``class_names`` order. The null uses the median,
        so ``null_p`` tests the same number the table reports as ``median_current``.
    """
    if len(dominants) != len(labels):
        raise ValueError(f"{len(dominants)} dominant sequences but {len(labels)} label arrays")
    n_class = len(class_names)
    currents: list[list[float]] = [[] for _ in range(n_class)]
    anys: list[list[float]] = [[] for _ in range(n_class)]
    for dominant, lab in zip(dominants, labels, strict=True):
        if np.ndim(lab) != 2 or np.shape(lab)[1] != n_class:
            raise ValueError(f"labels must have {n_class} columns, got shape {np.shape(lab)}")
        for c, share in enumerate(class_shares(dominant, lab, n_components)):
            if share is not None:
                currents[c].append(share.current)
                anys[c].append(share.any)

    nulls: list[NullResult | None] = (
        shift_null(dominants, labels, n_components, n_shifts=n_shifts, seed=seed)
        if dominants
        else [None] * n_class
    )

    rows = []
    for c, name in enumerate(class_names):
        null = nulls[c]
        if null is None:
            rows.append(ClassSummary(str(name), 0, *([None] * 8), n_shifts=n_shifts))
            continue
        u, p = mann_whitney(currents[c], anys[c])
        rows.append(
            ClassSummary(
                class_name=str(name),
                n_dreams=len(currents[c]),
                median_current=_plain(np.median(currents[c])),
                median_any=_plain(np.median(anys[c])),
                u=_plain(u),
                p=_plain(p),
                stars=stars(p),
                null_mean=_plain(null.null_mean),
                null_std=_plain(null.null_std),
                null_p=_plain(null.p_value),
                n_shifts=n_shifts,
            )
        )
    return rows
