"""Tests for the World Models convolutional VAE (mdnworld.models.vae)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from mdnworld.models.vae import (
    VAE,
    DeconvFrom1x1,
    VAEArch,
    encode_frames,
    frames_to_tensor,
    pad_rows,
    tensor_to_frames,
    vae_loss,
)


def squares_batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    """(n, 3, 64, 64) images in [0, 1]: a dark background with a few coloured squares."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 3, 64, 64), 0.1)
    for i in range(n):
        for _ in range(3):
            size = int(torch.randint(8, 20, (1,), generator=g))
            r, c = torch.randint(0, 64 - size, (2,), generator=g).tolist()
            x[i, :, r : r + size, c : c + size] = torch.rand(3, 1, 1, generator=g)
    return x


@pytest.fixture
def model() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEArch(latent_dim=32))


def test_arch_is_json_serialisable() -> None:
    arch = VAEArch(latent_dim=16)
    assert VAEArch(**json.loads(json.dumps(dataclasses.asdict(arch)))) == arch


def test_shapes_and_ranges(model: VAE) -> None:
    x = squares_batch(4)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 32)
    recon = model.decode(mu)
    assert recon.shape == (4, 3, 64, 64)
    assert recon.min() >= 0.0 and recon.max() <= 1.0
    logits, mu2, logvar2 = model(x)
    assert logits.shape == (4, 3, 64, 64)
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    # decode is the sigmoid of decode_logits
    torch.testing.assert_close(model.decode(mu), torch.sigmoid(model.decode_logits(mu)))


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (3, 64, 64), (2, 64, 64, 3), (2, 1, 64, 64)])
def test_encode_rejects_bad_shapes(model: VAE, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        model.encode(torch.zeros(shape))


def test_loss_components_and_zero_kl(model: VAE) -> None:
    x = squares_batch(4)
    logits, mu, logvar = model(x)
    for kind in ("bce", "mse"):
        total, recon, kl = vae_loss(logits, x, mu, logvar, recon_loss=kind)
        for t in (total, recon, kl):
            assert t.ndim == 0 and torch.isfinite(t)
        torch.testing.assert_close(total, recon + kl)
        assert recon > 0 and kl >= 0
    zeros = torch.zeros(4, 32)
    _, _, kl = vae_loss(logits, x, zeros, zeros)
    assert kl.item() == 0.0


def test_recon_loss_values_match_definition() -> None:
    x = torch.rand(2, 3, 64, 64)
    logits = torch.randn(2, 3, 64, 64)
    z = torch.zeros(2, 8)
    _, bce, _ = vae_loss(logits, x, z, z, recon_loss="bce")
    p = torch.sigmoid(logits.double())
    expected_bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum() / 2
    torch.testing.assert_close(bce.double(), expected_bce, rtol=1e-4, atol=1e-2)
    _, mse, _ = vae_loss(logits, x, z, z, recon_loss="mse")
    torch.testing.assert_close(mse.double(), ((p - x) ** 2).sum() / 2, rtol=1e-4, atol=1e-3)


def test_bce_is_finite_for_saturated_logits() -> None:
    x = torch.zeros(1, 3, 64, 64)
    x[..., :32] = 1.0
    logits = torch.full((1, 3, 64, 64), 200.0, requires_grad=True)  # sigmoid == 1.0 exactly
    z = torch.zeros(1, 4)
    total, recon, _ = vae_loss(logits, x, z, z)
    total.backward()
    assert torch.isfinite(recon) and recon.item() == pytest.approx(200.0 * 3 * 64 * 32, rel=1e-5)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_free_bits_floors_kl() -> None:
    logits = torch.zeros(2, 3, 64, 64)
    x = torch.full((2, 3, 64, 64), 0.5)
    mu = torch.zeros(2, 8)
    mu[1] = 1.0  # per-sample KL: 0 and 0.5 * 8 = 4
    logvar = torch.zeros(2, 8)
    _, _, kl = vae_loss(logits, x, mu, logvar)
    assert kl.item() == pytest.approx(2.0)
    _, _, kl = vae_loss(logits, x, mu, logvar, free_bits=3.0)  # max(0, 3), max(4, 3)
    assert kl.item() == pytest.approx(3.5)
    _, _, kl = vae_loss(logits, x, mu, logvar, free_bits=10.0)
    assert kl.item() == pytest.approx(10.0)


def test_bad_recon_loss_raises(model: VAE) -> None:
    x = squares_batch(2)
    logits, mu, logvar = model(x)
    with pytest.raises(ValueError, match="'l1'"):
        vae_loss(logits, x, mu, logvar, recon_loss="l1")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_training_decreases_loss(kind: str) -> None:
    torch.manual_seed(0)
    model = VAE(VAEArch(latent_dim=16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = squares_batch(8)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(30):
        logits, mu, logvar = model(x, generator=g)
        total, _, _ = vae_loss(logits, x, mu, logvar, recon_loss=kind)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.8 * first, f"{kind}: loss went {first:.1f} -> {last:.1f}"


def test_forward_is_deterministic_with_seeded_generator(model: VAE) -> None:
    x = squares_batch(3)
    a = model(x, generator=torch.Generator().manual_seed(123))
    b = model(x, generator=torch.Generator().manual_seed(123))
    c = model(x, generator=torch.Generator().manual_seed(124))
    for ta, tb in zip(a, b, strict=True):
        assert torch.equal(ta, tb)
    assert not torch.equal(a[0], c[0])


def test_frames_round_trip_exact() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert torch.equal(x[:, 1], torch.from_numpy(frames[..., 1]).float() / 255.0)
    back = tensor_to_frames(x)
    assert back.dtype == np.uint8 and back.shape == frames.shape
    np.testing.assert_array_equal(back, frames)
    np.testing.assert_array_equal(
        tensor_to_frames(frames_to_tensor(torch.from_numpy(frames))), frames
    )


def test_tensor_to_frames_clamps() -> None:
    x = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert tensor_to_frames(x)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_frames_to_tensor_rejects_non_uint8() -> None:
    with pytest.raises(ValueError):
        frames_to_tensor(np.zeros((1, 64, 64, 3), dtype=np.float32))


def test_bf16_autocast_forward_matches_fp32(model: VAE) -> None:
    x = squares_batch(4)
    with torch.no_grad():
        ref = torch.sigmoid(model(x, generator=torch.Generator().manual_seed(0))[0])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, mu, logvar = model(x, generator=torch.Generator().manual_seed(0))
            total, _, _ = vae_loss(logits, x, mu, logvar)
    assert torch.isfinite(total) and total.dtype == torch.float32
    assert (torch.sigmoid(logits.float()) - ref).abs().max() < 0.05


def test_bright_pixels_weigh_more_and_beta_scales_the_kl() -> None:
    x = torch.full((2, 3, 64, 64), 0.2)
    x[0, :, 10:14, 20:24] = 0.9  # 16 bright pixels (grey 0.9 > 0.65) in frame 0
    logits = torch.zeros_like(x)  # sigmoid = 0.5 everywhere
    mu, logvar = torch.ones(2, 4), torch.zeros(2, 4)  # KL 2 nats per frame
    _, plain, kl = vae_loss(logits, x, mu, logvar, "mse")
    total, weighted, kl2 = vae_loss(logits, x, mu, logvar, "mse", beta=0.25, bright_weight=10.0)
    extra = 10.0 * 16 * 3 * (0.9 - 0.5) ** 2 / 2  # 10 x their squared error, batch mean
    assert weighted.item() == pytest.approx(plain.item() + extra, rel=1e-5)
    assert kl2.item() == kl.item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(weighted.item() + 0.25 * 2.0, rel=1e-6)


def test_wider_decoder_has_the_same_shapes_and_more_channels() -> None:
    wide = VAE(VAEArch(latent_dim=16, decoder_width=2))
    x = squares_batch(2)
    logits, mu, _ = wide(x)
    assert logits.shape == x.shape and mu.shape == (2, 16)
    assert wide.decoder[0].out_channels == 256 and wide.decoder[-1].in_channels == 64
    assert json.loads(json.dumps(dataclasses.asdict(wide.arch)))["decoder_width"] == 2


def test_deconv_from_1x1_is_the_transposed_convolution_it_replaces() -> None:
    torch.manual_seed(0)
    fast = DeconvFrom1x1(16, 8, kernel_size=5, stride=2)
    plain = torch.nn.ConvTranspose2d(16, 8, kernel_size=5, stride=2)
    plain.load_state_dict(fast.state_dict())  # the same parameters, the same keys
    x = torch.randn(3, 16, 1, 1, requires_grad=True)
    y_fast, y_plain = fast(x), plain(x)
    assert y_fast.shape == y_plain.shape == (3, 8, 5, 5)
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y_fast)
    (gx_fast, gw_fast) = torch.autograd.grad(y_fast, (x, fast.weight), g)
    (gx_plain, gw_plain) = torch.autograd.grad(y_plain, (x, plain.weight), g)
    torch.testing.assert_close(gx_fast, gx_plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw_fast, gw_plain, rtol=1e-5, atol=1e-5)
    wider = torch.randn(2, 16, 3, 3)  # not 1 x 1: the transposed convolution's own path
    torch.testing.assert_close(fast(wider), plain(wider))
    padded = DeconvFrom1x1(16, 8, kernel_size=5, stride=2, output_padding=1, dilation=2)
    twin = torch.nn.ConvTranspose2d(16, 8, kernel_size=5, stride=2, output_padding=1, dilation=2)
    twin.load_state_dict(padded.state_dict())  # output size 10, not k: its own path too
    torch.testing.assert_close(padded(x), twin(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(fast(x).float(), y_plain, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    ("rows", "most", "want"),
    [(1, 500, 32), (32, 500, 32), (33, 500, 64), (490, 500, 500), (7, 20, 20), (64, 64, 64)],
)
def test_pad_rows_appends_zero_rows_to_a_multiple_of_32(rows: int, most: int, want: int) -> None:
    x = torch.rand(rows, 3, 2)
    padded = pad_rows(x, most)
    assert padded.shape == (want, 3, 2) and torch.equal(padded[:rows], x)
    assert not padded[rows:].any()


def test_encode_frames_meets_few_batch_shapes(model: VAE) -> None:
    """Episodes of every length go through V in batches of a few shapes (oneDNN caches its
    kernels per shape), and each frame's code is that of the frame on its own."""
    model.eval()
    frames = tensor_to_frames(squares_batch(70, seed=1))
    shapes: set[int] = set()
    encode = model.encode
    model.encode = lambda x: shapes.add(len(x)) or encode(x)  # type: ignore[method-assign]
    for t in range(1, 71):
        mu, logvar = encode_frames(model, frames[:t], 64, torch.device("cpu"))
        assert mu.shape == logvar.shape == (t, 32) and mu.dtype == np.float32
    assert shapes == {32, 64}
    one = np.concatenate([encode_frames(model, frames[i : i + 1], 1, torch.device("cpu"))[0]
                          for i in range(70)])  # fmt: skip
    np.testing.assert_allclose(mu, one, atol=1e-5)
