"""The dream engine (dreams.py) and the dream videos' pi bars (dream_files.py).

The engine's properties are checked on real MDNRNN modules with their initial weights (what is
tested is the batching and the random streams, which do not depend on training); the whole
``dream``/``analyze`` path on trained models runs in test_cli's pipeline test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdnworld.dreams import Dreamer, RandomActions, decode, dream, stream_seed, to_uint8
from mdnworld.dreams.videos import PiBars, dream_video_frames
from mdnworld.models.mdnrnn import MDNRNN, MIXTURES, MDNRNNArch
from mdnworld.models.vae import VAE, VAEArch
from mdnworld.palette import COLOURS

Z = 8


def model(mixture: str = "shared", seed: int = 0) -> MDNRNN:
    torch.manual_seed(seed)
    return MDNRNN(MDNRNNArch(latent_dim=Z, hidden=16, n_components=4, mixture=mixture)).eval()


def starts(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, Z, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mixture", MIXTURES)
def test_a_dream_alone_equals_the_same_dream_inside_a_batch(mixture: str) -> None:
    m, z0 = model(mixture), starts(6)
    seeds = [10, 11, 12, 13, 14, 15]
    batch = dream(m, z0, 40, seeds, tau_pi=1.5, tau_sigma=1.0)
    for i in (0, 4):
        alone = dream(m, z0[i : i + 1], 40, [seeds[i]], tau_pi=1.5, tau_sigma=1.0)
        assert np.array_equal(alone.component[0], batch.component[i])
        np.testing.assert_allclose(alone.z[0], batch.z[i], atol=1e-5)
        np.testing.assert_allclose(alone.pi[0], batch.pi[i], atol=1e-5)
        assert np.array_equal(alone.action[0], batch.action[i])


def test_seeds_reproduce_and_differ() -> None:
    m, z0 = model(), starts(3)
    a = dream(m, z0, 30, [1, 2, 3], tau_pi=1.5, tau_sigma=1.0)
    b = dream(m, z0, 30, [1, 2, 3], tau_pi=1.5, tau_sigma=1.0)
    c = dream(m, z0, 30, [4, 5, 6], tau_pi=1.5, tau_sigma=1.0)
    assert all(
        np.array_equal(x, y)
        for x, y in zip(vars(a).values(), vars(b).values(), strict=True)
        if x is not None
    )
    assert not np.allclose(a.z, c.z)
    assert stream_seed(0, 0, 0) != stream_seed(0, 0, 1) != stream_seed(1, 0, 0)


def test_dream_dropout_is_one_fixed_mask_per_dream_and_batch_independent() -> None:
    """Dropout's Dream Land: each dream's mask is drawn from its seed at (re)start, kept for the
    whole dream, scales the kept units by 1 / (1 - p), and changes what M predicts; a dream
    with dropout is the same alone or inside a batch."""
    m, z0, seeds = model(), starts(4), [21, 22, 23, 24]
    d = Dreamer(m, seeds, tau_pi=1.0, tau_sigma=1.0, dropout=0.5)
    mask = d.h_mask.clone()
    assert mask.shape == (4, 16) and set(mask.unique().tolist()) <= {0.0, 2.0}
    assert not torch.equal(mask[0], mask[1]), "every dream draws its own mask"
    d.reset(z0)
    for _ in range(5):
        d.step(torch.zeros(4, 1))
    assert torch.equal(d.h_mask, mask), "the mask changed within a dream"
    d.reset(z0[:1], torch.tensor([2]), [99])
    assert not torch.equal(d.h_mask[2], mask[2]) and torch.equal(d.h_mask[:2], mask[:2])
    d.keep(torch.tensor([3, 0]))
    assert torch.equal(d.h_mask, mask[[3, 0]])

    def run(idx: list[int], p: float) -> tuple[np.ndarray, np.ndarray]:
        dr = Dreamer(m, [seeds[i] for i in idx], tau_pi=1.0, tau_sigma=1.0, dropout=p)
        dr.reset(z0[idx])
        zs, pis = [], []
        for _ in range(20):
            out, _ = dr.step(torch.full((len(idx), 1), 0.5))
            zs.append(dr.z.clone())
            pis.append(torch.softmax(out.logits, -1))
        return torch.stack(zs, 1).numpy(), torch.stack(pis, 1).numpy()

    batch_z, batch_pi = run([0, 1, 2, 3], 0.3)
    alone_z, alone_pi = run([2], 0.3)
    np.testing.assert_allclose(alone_z[0], batch_z[2], atol=1e-5)
    _, plain_pi = run([0, 1, 2, 3], 0.0)
    assert not np.allclose(plain_pi, batch_pi, atol=1e-3), "dropout changed nothing"
    with pytest.raises(ValueError, match="dropout"):
        Dreamer(m, seeds, dropout=1.0)


def test_shapes_and_recorded_quantities() -> None:
    m = model()
    rec = dream(m, starts(2), 25, [0, 1], tau_pi=1.0, tau_sigma=0.01)
    assert rec.z.shape == (2, 25, Z) and rec.pi.shape == (2, 25, 4)
    assert rec.component.shape == (2, 25) and rec.action.shape == (2, 25, 1)
    np.testing.assert_allclose(rec.pi.sum(-1), 1.0, atol=1e-5)
    assert rec.dominant.shape == (2, 25) and (rec.dominant == rec.pi.argmax(-1)).all()
    with pytest.raises(ValueError, match="z0 must be"):
        dream(m, starts(3), 5, [0, 1])


@pytest.mark.parametrize("mixture", MIXTURES)
def test_committed_dreams_never_use_another_component(mixture: str) -> None:
    m = model(mixture)
    for k in range(4):
        rec = dream(m, starts(5), 50, list(range(5)), tau_pi=3.0, tau_sigma=1.0, commit=k)
        assert (rec.component == k).all()
    free = dream(m, starts(5), 50, list(range(5)), tau_pi=3.0, tau_sigma=1.0)
    assert len(np.unique(free.component)) > 1  # without commitment the components vary


def test_warmup_steps_are_dreamed_and_discarded() -> None:
    m, z0, seeds = model(), starts(2), [7, 8]
    full = dream(m, z0, 30, seeds, tau_pi=1.5, tau_sigma=1.0)
    warm = dream(m, z0, 20, seeds, warmup=10, tau_pi=1.5, tau_sigma=1.0)
    np.testing.assert_allclose(warm.z, full.z[:, 10:], atol=1e-6)
    assert np.array_equal(warm.component, full.component[:, 10:])


def test_teacher_forcing_reads_the_real_steps_then_dreams_on() -> None:
    m = model()
    z_real, a_real = torch.randn(2, 6, Z), torch.rand(2, 5, 1) * 2 - 1
    d = Dreamer(m, [0, 1])
    d.reset(z_real[:, 0])
    d.teacher_force(z_real, a_real)
    _, state = m(z_real[:, :5], a_real)
    torch.testing.assert_close(d.state[0], state[0])
    torch.testing.assert_close(d.z, z_real[:, 5])


def test_reset_touches_only_the_chosen_dreams() -> None:
    m = model()
    d = Dreamer(m, [0, 1, 2], tau_pi=1.0, tau_sigma=1.0)
    d.reset(starts(3))
    for _ in range(3):
        d.step(torch.zeros(3, 1))
    h_before, z_before = d.h.clone(), d.z.clone()
    d.reset(torch.zeros(1, Z), torch.tensor([1]), seeds=[99])
    assert torch.equal(d.h[[0, 2]], h_before[[0, 2]]) and torch.equal(d.z[[0, 2]], z_before[[0, 2]])
    assert (d.h[1] == 0).all() and (d.z[1] == 0).all()


def test_random_actions_follow_spec() -> None:
    """a_0 ~ U(-1, 1); then each step keeps the action or, with probability 0.1, redraws it."""
    policy = RandomActions(list(range(200)), p_change=0.1)
    a = torch.stack([policy() for _ in range(300)], 1)[..., 0]  # (200, 300)
    assert a.min() >= -1 and a.max() <= 1
    changes = (a[:, 1:] != a[:, :-1]).float().mean().item()
    assert 0.08 < changes < 0.12, changes
    assert abs(a[:, 0].mean().item()) < 0.15 and a[:, 0].std().item() > 0.5


def test_decode_shapes_and_uint8() -> None:
    torch.manual_seed(0)
    vae = VAE(VAEArch(latent_dim=Z)).eval()
    frames = decode(vae, np.random.default_rng(0).normal(size=(2, 3, Z)), batch_size=4)
    assert frames.shape == (2, 3, 64, 64, 3) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1
    u8 = to_uint8(frames)
    assert u8.dtype == np.uint8 and np.abs(u8 / 255 - frames).max() <= 0.5 / 255 + 1e-6
    z = np.random.default_rng(0).normal(size=(2, 3, Z))  # 6 frames: a partial last batch
    direct = decode(vae, z, batch_size=4, dtype=np.uint8)
    assert direct.dtype == np.uint8 and np.array_equal(direct, u8)
    one_by_one = np.stack([decode(vae, row[None], batch_size=1)[0] for row in z.reshape(-1, Z)])
    np.testing.assert_allclose(frames.reshape(-1, 64, 64, 3), one_by_one, atol=1e-5)  # padded
    with pytest.raises(ValueError, match="dtype"):
        decode(vae, z, dtype=np.float64)


def test_pi_bars_draw_bars_proportional_to_pi() -> None:
    pi = np.array([0.1, 0.6, 0.0, 0.3])
    bars = PiBars(4, "test")
    img = bars(pi, chosen=1)
    area = [(img == COLOURS[k]).all(-1).sum() for k in range(4)]
    assert area[2] == 0
    ratio = np.array(area)[[0, 3]] / area[1]
    np.testing.assert_allclose(ratio, [1 / 6, 0.5], rtol=0.08)
    assert (img == 0).all(-1).sum() > (bars(pi, chosen=None) == 0).all(-1).sum()  # chosen frame
    video = dream_video_frames(
        np.zeros((3, 64, 64, 3), np.uint8), np.tile(pi, (3, 1)), np.array([1, 1, 3]), "t"
    )
    assert video.shape == (3, 256, 512, 3) and video.dtype == np.uint8
