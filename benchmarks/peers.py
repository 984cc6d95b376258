"""The peer's training loops, written the way World Models re-implementations write them.

Issue 20 measures our trainers against "the peer's bare fp32 loop": World Models' layout
(as in ctallec/world-models: a VAE with a sigmoid decoder and summed squared error + KL; an
MDRNN = one ``nn.LSTM`` + one linear head giving K Gaussians over the whole latent, their
log-weights, and a done logit, trained with the GMM NLL + done BCE), Adam(lr 1e-3), in-memory
float32 tensors, nothing else in the loop (no logging, no checkpoints, no data streaming).
Written from that description, not copied. Sizes follow our paper setting so that both sides
do the same arithmetic: latent 64, hidden 256, K 5, windows of 60 steps.

Each ``*_loop`` returns a ``step()`` callable that trains on one batch; the caller times it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PeerVAE(nn.Module):
    """World Models' VAE: (B, 3, 64, 64) in [0, 1] -> (recon in [0, 1], mu, logsigma)."""

    def __init__(self, latent: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 4, stride=2)
        self.conv2 = nn.Conv2d(32, 64, 4, stride=2)
        self.conv3 = nn.Conv2d(64, 128, 4, stride=2)
        self.conv4 = nn.Conv2d(128, 256, 4, stride=2)
        self.fc_mu = nn.Linear(2 * 2 * 256, latent)
        self.fc_logsigma = nn.Linear(2 * 2 * 256, latent)
        self.fc1 = nn.Linear(latent, 1024)
        self.deconv1 = nn.ConvTranspose2d(1024, 128, 5, stride=2)
        self.deconv2 = nn.ConvTranspose2d(128, 64, 5, stride=2)
        self.deconv3 = nn.ConvTranspose2d(64, 32, 6, stride=2)
        self.deconv4 = nn.ConvTranspose2d(32, 3, 6, stride=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = F.relu(self.conv4(h)).view(x.size(0), -1)
        mu, logsigma = self.fc_mu(h), self.fc_logsigma(h)
        z = mu + logsigma.exp() * torch.randn_like(mu)
        h = F.relu(self.fc1(z)).unsqueeze(-1).unsqueeze(-1)
        h = F.relu(self.deconv1(h))
        h = F.relu(self.deconv2(h))
        h = F.relu(self.deconv3(h))
        return torch.sigmoid(self.deconv4(h)), mu, logsigma


def peer_vae_loss(recon: Tensor, x: Tensor, mu: Tensor, logsigma: Tensor) -> Tensor:
    """Summed squared error + KL(q || N(0, I)), per batch (World Models' VAE loss)."""
    mse = F.mse_loss(recon, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + 2 * logsigma - mu.pow(2) - (2 * logsigma).exp())
    return mse + kl


class PeerMDRNN(nn.Module):
    """World Models' MDRNN: z (B, T, Z), a (B, T, A) -> mus, sigmas (B, T, K, Z), logpi (B, T, K),
    done logit (B, T)."""

    def __init__(self, latent: int = 64, actions: int = 1, hidden: int = 256, k: int = 5) -> None:
        super().__init__()
        self.latent, self.k = latent, k
        self.rnn = nn.LSTM(latent + actions, hidden, batch_first=True)
        self.gmm_linear = nn.Linear(hidden, (2 * latent + 1) * k + 1)

    def forward(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out, _ = self.rnn(torch.cat([z, a], dim=-1))
        b, t = out.shape[:2]
        gmm = self.gmm_linear(out)
        stride = self.k * self.latent
        mus = gmm[..., :stride].view(b, t, self.k, self.latent)
        sigmas = gmm[..., stride : 2 * stride].view(b, t, self.k, self.latent).exp()
        logpi = F.log_softmax(gmm[..., 2 * stride : 2 * stride + self.k], dim=-1)
        return mus, sigmas, logpi, gmm[..., -1]


def peer_gmm_loss(z_next: Tensor, mus: Tensor, sigmas: Tensor, logpi: Tensor) -> Tensor:
    """Mean over (B, T) of -log sum_k pi_k N(z_next; mu_k, sigma_k) (World Models' gmm_loss)."""
    normal = torch.distributions.Normal(mus, sigmas)
    log_probs = logpi + normal.log_prob(z_next.unsqueeze(-2)).sum(dim=-1)
    return -torch.logsumexp(log_probs, dim=-1).mean()


def vae_loop(frames: Tensor, batch: int = 100, seed: int = 0) -> Callable[[], float]:
    """One peer VAE step per call on random batches of ``frames`` (N, 3, 64, 64) float32."""
    torch.manual_seed(seed)
    model = PeerVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        x = frames[torch.randint(0, len(frames), (batch,))]
        recon, mu, logsigma = model(x)
        loss = peer_vae_loss(recon, x, mu, logsigma)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def mdrnn_loop(
    z: Tensor, a: Tensor, done: Tensor, batch: int = 256, seed: int = 0
) -> Callable[[], float]:
    """One peer MDRNN step per call on random windows: z (N, T+1, Z), a (N, T, A), done (N, T)
    float32, all in memory (the peer holds its latents as ready-made windows)."""
    torch.manual_seed(seed)
    model = PeerMDRNN(latent=z.shape[-1], actions=a.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        i = torch.randint(0, len(z), (batch,))
        zz = z[i]
        mus, sigmas, logpi, d = model(zz[:, :-1], a[i])
        loss = peer_gmm_loss(zz[:, 1:], mus, sigmas, logpi)
        loss = loss + F.binary_cross_entropy_with_logits(d, done[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step
