"""Windows for M: (input, target) pairs, skip_ahead, short episodes, sampled latents, baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdnworld.data.sequences import (
    SequenceData,
    n_windows,
    random_walk_nll,
    random_walk_sigma,
    sample_latents,
)


def _episode(T: int, Z: int = 3, base: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """An encoded episode whose values say where they come from: mu[t, d] = base + t + d/10."""
    t = np.arange(T, dtype=np.float32)[:, None]
    mu = base + t + np.arange(Z, dtype=np.float32) / 10
    dones = np.zeros(T, bool)
    dones[-1] = True
    rng = np.random.default_rng(seed)
    return {
        "mu": mu.astype(np.float32),
        "logvar": rng.uniform(-3, 0, (T, Z)).astype(np.float32),
        "actions": (base + t / 1000).astype(np.float32),
        "rewards": np.arange(T, dtype=np.float32) + base,
        "dones": dones,
        "seed": np.int64(seed),
    }


def test_windows_pairs_skip_ahead_and_short_episodes() -> None:
    L, skip = 5, 3
    eps = [_episode(5, base=100), _episode(6, base=200), _episode(12, base=300)]
    eps += [_episode(9, base=400), _episode(2, base=500)]
    data = SequenceData(eps, seq_len=L, skip_ahead=skip, names=["a", "b", "c", "d", "e"])
    # 5 and 2 frames < L + 1 = 6: skipped and counted; 6 -> 1 window; 12 -> starts 0, 3, 6;
    # 9 -> starts 0, 3 (start 6 would need frames 6..11)
    assert data.skipped == 2 and data.skipped_names == ["a", "e"]
    assert data.n_episodes == 3 and len(data) == 1 + 3 + 2
    assert [n_windows(n, L, skip) for n in (5, 6, 8, 9, 12)] == [0, 1, 1, 2, 3]
    expected = [(200, 0), (300, 0), (300, 3), (300, 6), (400, 0), (400, 3)]  # (episode, start)
    b = data.batch(np.arange(len(data)))
    assert b.z.shape == (6, L, 3) and b.a.shape == (6, L, 1) and b.z_next.shape == (6, L, 3)
    assert b.done.shape == (6, L) and b.done.dtype == bool and b.reward.shape == (6, L)
    for w, (base, s) in enumerate(expected):
        ep = {200: eps[1], 300: eps[2], 400: eps[3]}[base]
        t = np.arange(s, s + L)
        np.testing.assert_array_equal(b.z[w], ep["mu"][t])  # inputs z_t
        np.testing.assert_array_equal(b.a[w], ep["actions"][t])  # a_t
        np.testing.assert_array_equal(b.z_next[w], ep["mu"][t + 1])  # targets z_{t+1}
        np.testing.assert_array_equal(b.done[w], ep["dones"][t + 1])  # done_{t+1}
        np.testing.assert_array_equal(b.reward[w], ep["rewards"][t + 1])
        np.testing.assert_array_equal(b.z_next[w][:-1], b.z[w][1:])  # shifted by one
    # windows that reach an episode's last frame (here 6..11 and 3..8 do) carry its done flag
    assert b.done.sum() == 3 and b.done[0, -1] and b.done[3, -1] and b.done[5, -1]
    # arbitrary order, repeated ids; never a window across two episodes
    b2 = data.batch(np.array([5, 0, 5]))
    np.testing.assert_array_equal(b2.z[0], b.z[5])
    np.testing.assert_array_equal(b2.z_next[1], b.z_next[0])
    assert np.all(np.diff(b.z[..., 0], axis=1) == 1) and np.all(b.z_next[..., 0] - b.z[..., 0] == 1)


def test_windows_index_the_latents_without_copies() -> None:
    data = SequenceData([_episode(300, Z=8, base=i) for i in range(4)], seq_len=60, skip_ahead=3)
    assert len(data) == 4 * ((300 - 61) // 3 + 1)
    assert data.starts.dtype == np.int64 and data.mu.shape == (1200, 8)  # one copy of the data
    assert data.latents("mu") is data.mu
    assert data.epoch_latents("mu", seed=0, epoch=3) is data.mu


def test_all_too_short_gives_no_windows() -> None:
    data = SequenceData([_episode(10), _episode(20)], seq_len=60, skip_ahead=3)
    assert len(data) == 0 and data.skipped == 2 and data.n_episodes == 0


def test_sampled_latents_differ_between_epochs_and_are_seeded() -> None:
    eps = [_episode(200, Z=4, seed=s) for s in range(3)]
    data = SequenceData(eps, seq_len=60, skip_ahead=3)
    e0 = data.epoch_latents("sample", seed=7, epoch=0)
    e1 = data.epoch_latents("sample", seed=7, epoch=1)
    assert e0.dtype == np.float32 and e0.shape == data.mu.shape
    assert not np.allclose(e0, e1)  # fresh each epoch
    np.testing.assert_array_equal(e0, data.epoch_latents("sample", seed=7, epoch=0))  # seeded
    assert not np.allclose(e0, data.epoch_latents("sample", seed=8, epoch=0))
    assert e0 is not data.mu and np.array_equal(data.mu, np.concatenate([e["mu"] for e in eps]))
    # the samples follow N(mu, exp(logvar)): standardised noise ~ N(0, 1)
    eps_hat = (e0 - data.mu) / np.exp(0.5 * data.logvar)
    assert abs(eps_hat.mean()) < 0.05 and abs(eps_hat.std() - 1) < 0.05
    # windows cut from a sample are the sample's rows
    b = data.batch(np.array([3]), e0)
    np.testing.assert_array_equal(b.z[0], e0[data.starts[3] : data.starts[3] + 60])
    with pytest.raises(ValueError, match="z_source"):
        data.latents("median")
    direct = sample_latents(data.mu, data.logvar, np.random.default_rng([7, 0, 1]))
    np.testing.assert_array_equal(direct, e0)


def test_random_walk_baseline_fit_and_nll() -> None:
    # mu moves by exactly c_d per step: the MLE sigma is |c_d| and the NLL has a closed form
    T, c = 100, np.array([0.5, 2.0], np.float32)
    ep = _episode(T, Z=2)
    ep["mu"] = (np.arange(T, dtype=np.float32)[:, None] * c).astype(np.float32)
    data = SequenceData([ep], seq_len=10, skip_ahead=3)
    sigma = random_walk_sigma(data)
    np.testing.assert_allclose(sigma, c, rtol=1e-6)
    nll = random_walk_nll(data, data.mu, sigma)
    expected = np.mean(np.log(c)) + 0.5 * math.log(2 * math.pi) + 0.5
    assert nll == pytest.approx(expected, rel=1e-6)
    # "sample": the expected squared step adds both frames' variances
    s2 = random_walk_sigma(data, "sample")
    rows = np.flatnonzero(data.coverage())
    cov = data.coverage()[rows]
    var = np.exp(ep["logvar"][rows]) + np.exp(ep["logvar"][rows + 1]) + c**2
    np.testing.assert_allclose(s2**2, (cov[:, None] * var).sum(0) / cov.sum(), rtol=1e-5)
    # coverage counts the windows that use each (t -> t+1) step
    assert data.coverage().sum() == len(data) * 10 and data.coverage()[-1] == 0


def test_end_windows_make_every_last_frame_a_target() -> None:
    eps = [
        {
            "mu": np.zeros((n, 2), np.float32),
            "logvar": np.zeros((n, 2), np.float32),
            "actions": np.zeros((n, 1), np.float32),
            "rewards": np.ones(n, np.float32),
            "dones": np.arange(n) == n - 1,
        }
        for n in (10, 11, 12)
    ]
    plain = SequenceData(eps, seq_len=4, skip_ahead=3)
    ends = SequenceData(eps, seq_len=4, skip_ahead=3, end_windows=True)
    # T = 10, 11, 12 with L = 4: starts 0,3 / 0,3,6 / 0,3,6 cover frames up to 7 / 10 / 10,
    # so only the T = 11 episode has its last frame (the death) as a target
    assert plain.batch(np.arange(len(plain))).done.any(axis=1).sum() == 1
    assert ends.batch(np.arange(len(ends))).done.any(axis=1).sum() == 3
    assert len(ends) == len(plain) + 2


def test_done_balance_undoes_the_windows_undercounting_of_deaths() -> None:
    from mdnworld.data.sequences import done_balance

    n = 100
    ep = {
        "mu": np.zeros((n, 2), np.float32),
        "logvar": np.zeros((n, 2), np.float32),
        "actions": np.zeros((n, 1), np.float32),
        "rewards": np.ones(n, np.float32),
        "dones": np.arange(n) == n - 1,
    }
    data = SequenceData([ep, ep], seq_len=10, skip_ahead=2, end_windows=True)
    weight, bias = done_balance(data)
    # frames 1..99 are targets; the death (frame 99) of 1 window only, the others of up to 5
    cov = data.coverage()[:-1]  # rows 0..98 -> targets 1..99 of the first episode
    assert cov[n - 2] == 1
    assert weight == pytest.approx(cov[: n - 2][cov[: n - 2] > 0].mean() / 1.0)
    p = 1 / (1 + np.exp(-bias))
    assert p == pytest.approx(2 / (2 * 99))  # two deaths among 198 target frames
