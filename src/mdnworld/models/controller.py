"""The controller C of World Models: one linear layer, ``a = tanh(W [z, h] + b)``.

z (B, Z) is V's latent of the current frame, h (B, H) M's LSTM output after the previous step.
CMA-ES searches the flat parameter vector ``[W.flatten(), b]`` of length (Z + H) * A + A
(``ControllerArch.n_params``; saved as the ``fc.weight`` / ``fc.bias`` of ``Controller``);
``PopulationController`` evaluates a whole population at once: dream i is driven by candidate
``owner[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ControllerArch:
    latent_dim: int = 64
    hidden: int = 256
    action_dim: int = 1

    @property
    def inputs(self) -> int:
        return self.latent_dim + self.hidden

    @property
    def n_params(self) -> int:
        return self.inputs * self.action_dim + self.action_dim


class Controller(nn.Module):
    """a = tanh(W [z, h] + b); z (B, Z), h (B, H) -> a (B, A) in [-1, 1]."""

    def __init__(self, arch: ControllerArch = ControllerArch()) -> None:
        super().__init__()
        self.arch = arch
        self.fc = nn.Linear(arch.inputs, arch.action_dim)

    def forward(self, z: Tensor, h: Tensor) -> Tensor:
        return torch.tanh(self.fc(torch.cat([z, h], dim=-1)))

    def set_flat(self, params: Tensor) -> Controller:
        """Load a flat vector (n_params,) laid out as [W.flatten(), b]."""
        W, b = split_params(params.reshape(1, -1), self.arch)
        with torch.no_grad():
            self.fc.weight.copy_(W[0])
            self.fc.bias.copy_(b[0])
        return self

    def flat(self) -> Tensor:
        """The flat parameter vector (n_params,)."""
        return torch.cat([self.fc.weight.flatten(), self.fc.bias]).detach()


def split_params(params: Tensor, arch: ControllerArch) -> tuple[Tensor, Tensor]:
    """(P, n_params) -> W (P, A, Z + H), b (P, A)."""
    if params.dim() != 2 or params.shape[1] != arch.n_params:
        raise ValueError(
            f"expected controller parameters of shape (P, {arch.n_params}), "
            f"got {tuple(params.shape)}"
        )
    A = arch.action_dim
    W = params[:, : arch.inputs * A].reshape(-1, A, arch.inputs)
    return W, params[:, arch.inputs * A :]


class PopulationController:
    """P candidates driving B dreams at once: dream i uses candidate ``owner[i]``."""

    def __init__(self, params: Tensor, owner: Tensor, arch: ControllerArch) -> None:
        W, b = split_params(params.float(), arch)
        self.W, self.b = W[owner], b[owner]  # (B, A, Z + H), (B, A)

    def keep(self, idx: Tensor) -> None:
        """Keep the policies of dreams ``idx`` only (as DreamEnv.keep)."""
        self.W, self.b = self.W[idx], self.b[idx]

    def __call__(self, z: Tensor, h: Tensor) -> Tensor:
        """z (B, Z), h (B, H) -> a (B, A)."""
        x = torch.cat([z, h], dim=-1).unsqueeze(-1)  # (B, Z + H, 1)
        return torch.tanh((self.W @ x).squeeze(-1) + self.b)
