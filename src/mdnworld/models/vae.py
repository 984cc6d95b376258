"""Convolutional VAE ("V" model) in the World Models layout (Ha & Schmidhuber, 2018).

Frames are (B, 3, 64, 64) float32 in [0, 1], channels first. The encoder maps a frame to a
diagonal Gaussian posterior q(z|x) = N(mu, exp(logvar)) over a `latent_dim`-sized code; the
decoder maps a code back to a frame.

Design note on logits: `VAE.forward` returns the decoder's *pre-sigmoid logits*, not the
image, so that `vae_loss` can compute binary cross-entropy with
`F.binary_cross_entropy_with_logits` (stable and non-saturating even when the sigmoid output
is 0 or 1). Use `VAE.decode` or `torch.sigmoid(logits)` when you want the image itself::

    logits, mu, logvar = model(x)
    total, recon, kl = vae_loss(logits, x, mu, logvar)
    image = torch.sigmoid(logits)  # (B, 3, 64, 64) in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mdnworld.reference import BRIGHT, GREY_WEIGHTS

FRAME_SIZE = 64  # frames are FRAME_SIZE x FRAME_SIZE pixels
RECON_LOSSES = ("bce", "mse")


class DeconvFrom1x1(nn.ConvTranspose2d):
    """The decoder's first layer: a transposed convolution of a (B, C_in, 1, 1) map to
    (B, C_out, k, k). On a 1 x 1 input it is one matrix product with the same weight
    (C_in, C_out, k, k) and bias (C_out,): the same parameters and state-dict keys as
    ``nn.ConvTranspose2d``, the same numbers, but CPUs run the product ~100x faster than their
    transposed-convolution kernel (benchmarks/vae.py: the whole V step 1.7x under bf16).
    Any other input size takes ``nn.ConvTranspose2d``'s own path."""

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, 1, 1) -> (B, C_out, k, k)
        plain = (self.padding, self.output_padding, self.dilation) == ((0, 0), (0, 0), (1, 1))
        if x.shape[-2:] != (1, 1) or not plain or self.groups != 1:
            return super().forward(x)
        y = x.flatten(1) @ self.weight.flatten(1)  # (B, C_out * k * k)
        y = y.view(len(x), self.out_channels, *self.kernel_size)
        return y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y


@dataclass(frozen=True)
class VAEArch:
    """Architecture hyper-parameters only (JSON-serialisable via `dataclasses.asdict`)."""

    latent_dim: int = 64
    in_channels: int = 3
    decoder_width: int = 1
    """Channel multiplier of the decoder's hidden layers (1 = World Models' 128, 64, 32)."""


class VAE(nn.Module):
    """World Models convolutional VAE for (B, C, 64, 64) frames in [0, 1]."""

    def __init__(self, arch: VAEArch = VAEArch()) -> None:
        super().__init__()
        self.arch = arch
        c, z, w = arch.in_channels, arch.latent_dim, arch.decoder_width
        # 64 -> 31 -> 14 -> 6 -> 2 spatially; 256 * 2 * 2 = 1024 features.
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 32, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(128, 256, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(1024, z)
        self.fc_logvar = nn.Linear(1024, z)
        self.fc_dec = nn.Linear(z, 1024)
        # (1024, 1, 1) -> 5 -> 13 -> 30 -> 64 spatially. No sigmoid here: see decode_logits.
        self.decoder = nn.Sequential(
            DeconvFrom1x1(1024, 128 * w, kernel_size=5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(128 * w, 64 * w, kernel_size=5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(64 * w, 32 * w, kernel_size=6, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(32 * w, c, kernel_size=6, stride=2),
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, 64, 64) in [0, 1] -> (mu, logvar), each (B, Z)."""
        expected = (self.arch.in_channels, FRAME_SIZE, FRAME_SIZE)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"VAE.encode expects input of shape (B, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)}"
            )
        h = self.encoder(x)  # (B, 1024)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_logits(self, z: Tensor) -> Tensor:
        """(B, Z) -> pre-sigmoid logits (B, C, 64, 64)."""
        h = self.fc_dec(z).view(-1, 1024, 1, 1)
        return self.decoder(h)

    def decode(self, z: Tensor) -> Tensor:
        """(B, Z) -> reconstructed frames (B, C, 64, 64) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Sample z = mu + exp(logvar / 2) * eps, eps ~ N(0, I); (B, Z) -> (B, Z).

        `generator`, if given, must live on the same device as `mu`.
        """
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(B, C, 64, 64) -> (recon_logits (B, C, 64, 64), mu (B, Z), logvar (B, Z)).

        The first output is the decoder's pre-sigmoid logits for a reparameterised sample
        z ~ q(z|x); pass it straight to `vae_loss`, or apply `torch.sigmoid` for the image.
        """
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        return self.decode_logits(z), mu, logvar


def bright_pixels(x: Tensor) -> Tensor:
    """(B, 3, H, W) frames in [0, 1] -> (B, 1, H, W) float: 1 where the detectors call the
    pixel bright (fireballs, explosions), else 0."""
    grey = (x * x.new_tensor(GREY_WEIGHTS).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return (grey > BRIGHT).to(x.dtype)


def vae_loss(
    recon_logits: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    recon_loss: str = "bce",
    free_bits: float = 0.0,
    beta: float = 1.0,
    bright_weight: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """The loss recon + beta * kl, returned as scalar batch means (total, recon, kl).

    recon_logits: (B, C, H, W) decoder logits (the first output of `VAE.forward`).
    x: (B, C, H, W) targets in [0, 1].  mu, logvar: (B, Z).
    recon: per-sample sum over all C*H*W values (12,288 for 3x64x64) of
        "bce": binary cross-entropy, computed from logits (numerically safe), or
        "mse": squared error between sigmoid(recon_logits) and x;
        each value of a bright pixel (``bright_pixels(x)``) weighs 1 + bright_weight.
    kl: per-sample KL(q(z|x) || N(0, I)) summed over latent dims, floored at `free_bits`
        (World Models used free_bits = kl_tolerance * latent_dim, e.g. 0.5 * 32).
    beta = 1 and bright_weight = 0 give the negative ELBO. The loss is computed in float32
    even if the inputs come from bf16 autocast.
    """
    if recon_loss not in RECON_LOSSES:
        raise ValueError(f"recon_loss must be one of {RECON_LOSSES}, got {recon_loss!r}")
    logits, x, mu, logvar = recon_logits.float(), x.float(), mu.float(), logvar.float()
    if recon_loss == "bce":
        per_value = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per_value = (torch.sigmoid(logits) - x).pow(2)
    if bright_weight:
        per_value = per_value * (1.0 + bright_weight * bright_pixels(x))
    recon = per_value.flatten(1).sum(dim=1)  # (B,)
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)  # (B,)
    kl = kl.clamp(min=free_bits)
    recon, kl = recon.mean(), kl.mean()
    return recon + beta * kl, recon, kl


def frames_to_tensor(frames_uint8: np.ndarray | Tensor) -> Tensor:
    """(B, H, W, C) uint8 HWC frames -> (B, C, H, W) float32 in [0, 1] (same device)."""
    frames = torch.as_tensor(frames_uint8)
    if frames.dtype != torch.uint8 or frames.ndim != 4:
        raise ValueError(
            f"expected (B, H, W, C) uint8 frames, got {tuple(frames.shape)} {frames.dtype}"
        )
    return frames.permute(0, 3, 1, 2).float().div(255.0).contiguous()


def tensor_to_frames(x: Tensor) -> np.ndarray:
    """(B, C, H, W) float in [0, 1] -> (B, H, W, C) uint8 numpy frames (rounded, clamped)."""
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    x = x.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


SHAPE_STEP = 32
"""Batches are padded to a multiple of this many rows (``pad_rows``)."""


def pad_rows(x: Tensor, most: int) -> Tensor:
    """(B, ...) -> (B', ...) with zero rows appended, B' = B rounded up to a multiple of
    ``SHAPE_STEP`` (at most ``most``). oneDNN builds and caches its kernels for every input
    shape it meets; a batch of each episode's length grew a process by ~11 MB an episode
    (encode reached 3 GB at paper scale), padded ones take a few shapes. Outputs of the
    first B rows are those of the unpadded batch up to float rounding (~1e-6)."""
    b = len(x)
    padded = min(max(most, b), -(-b // SHAPE_STEP) * SHAPE_STEP)
    return x if padded == b else torch.cat([x, x.new_zeros((padded - b, *x.shape[1:]))])


@torch.no_grad()
def encode_frames(
    model: torch.nn.Module, frames: np.ndarray, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 64, 64, 3) uint8 -> mu, logvar, each float32 (T, Z); in batches of ``batch_size``
    frames, the last one padded (``pad_rows``)."""
    mus, logvars = [], []
    for i in range(0, len(frames), batch_size):
        x = frames_to_tensor(frames[i : i + batch_size])
        mu, logvar = model.encode(pad_rows(x, batch_size).to(device))
        mus.append(mu[: len(x)].float().cpu().numpy())
        logvars.append(logvar[: len(x)].float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)
