"""N independent MDN-RNNs as one module: one batched matmul per layer and step for all N.

The paper trains five Ms that differ only in their seed. Trained one after another (or in five
processes) each step launches its own small kernels; stacked, every matmul runs once for all N
models (``torch.baddbmm`` over the model axis), which on a GPU keeps it busy (issue 20's goal: the
five Ms together at >= 120k windows/s on an H200). The weights stay independent: model n's
outputs and gradients depend only on model n's slice, and ``to_models`` writes the slices back
into ordinary ``StandardisedMDNRNN`` modules, so checkpoints keep their format.

The LSTM is written out (``nn.LSTM`` has no batching rule over weights): with x_t the input,
h, c the state and W_ih (4H, I), W_hh (4H, H) in PyTorch's gate order (input, forget, cell,
output)::

    i, f, g, o = split(x_t W_ih^T + b_ih + h W_hh^T + b_hh)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g);   h = sigmoid(o) * tanh(c)

Shapes: N models, B batch, T time; inputs z (N, B, T, Z), a (N, B, T, A); outputs as
``MDNRNN`` with a leading N (logits (N, B, T, K), mu (N, B, T, K, Z) for "shared", ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mdnworld.models.mdnrnn import MDNOutput, MDNRNNArch, StandardisedMDNRNN, parametrise_log_sigma


def _stack(tensors: Sequence[Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach().clone() for t in tensors]))


class BatchedMDNRNN(nn.Module):
    """``len(models)`` StandardisedMDNRNNs of one architecture, stacked (copies their weights)."""

    def __init__(self, models: Sequence[StandardisedMDNRNN]) -> None:
        super().__init__()
        archs = {m.arch for m in models}
        if len(archs) != 1 or not models:
            raise ValueError(f"BatchedMDNRNN needs models of one architecture, got {archs}")
        self.arch: MDNRNNArch = archs.pop()
        self.n = len(models)
        lstms = [m.lstm for m in models]
        self.w_ih = _stack([m.weight_ih_l0 for m in lstms])  # (N, 4H, I)
        self.w_hh = _stack([m.weight_hh_l0 for m in lstms])  # (N, 4H, H)
        self.b = _stack([m.bias_ih_l0 + m.bias_hh_l0 for m in lstms])  # (N, 4H)
        self.w_mdn = _stack([m.mdn.weight for m in models])  # (N, O, H)
        self.b_mdn = _stack([m.mdn.bias for m in models])  # (N, O)
        if self.arch.done_head:
            self.w_done = _stack([m.done.weight for m in models])  # (N, 1, H)
            self.b_done = _stack([m.done.bias for m in models])  # (N, 1)
        if self.arch.reward_head:
            raise ValueError("BatchedMDNRNN does not carry a reward head")
        self.register_buffer("z_shift", torch.stack([m.z_shift for m in models]))  # (N, Z)
        self.register_buffer("z_scale", torch.stack([m.z_scale for m in models]))  # (N, Z)

    @staticmethod
    def _linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """x (N, ..., in) @ w (N, out, in)^T + b (N, out) -> (N, ..., out), one kernel for all N."""
        lead = x.shape[1:-1]
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        y = torch.baddbmm(b.unsqueeze(1).to(flat.dtype), flat, w.transpose(1, 2).to(flat.dtype))
        return y.reshape(x.shape[0], *lead, w.shape[1])

    def lstm(self, x: Tensor) -> Tensor:
        """x (N, B, T, I) -> LSTM outputs h (N, B, T, H), from a zero state."""
        N, B, T, _ = x.shape
        H = self.arch.hidden
        xg = self._linear(x, self.w_ih, self.b)  # (N, B, T, 4H): the input part, all steps
        h = x.new_zeros(N, B, H)
        c = x.new_zeros(N, B, H)
        w_hh_t = self.w_hh.transpose(1, 2).to(x.dtype)  # (N, H, 4H)
        out = []
        for t in range(T):
            i, f, g, o = torch.baddbmm(xg[:, :, t], h, w_hh_t).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            out.append(h)
        return torch.stack(out, dim=2)

    def heads(self, h: Tensor) -> MDNOutput:
        """h (N, B, T, H) -> MDNOutput with leading (N, B, T), in the latents' units, float32."""
        Z, K = self.arch.latent_dim, self.arch.n_components
        y = self._linear(h, self.w_mdn, self.b_mdn).float()
        if self.arch.mixture == "shared":
            logits, rest = y.split([K, 2 * K * Z], dim=-1)
            mu, raw = rest.unflatten(-1, (2, K, Z)).unbind(-3)
            shift = self.z_shift[:, None, None, None].float()  # (N, 1, 1, 1, Z)
            scale = self.z_scale[:, None, None, None].float()
        else:
            logits, mu, raw = y.unflatten(-1, (3, Z, K)).unbind(-3)
            shift = self.z_shift[:, None, None, :, None].float()  # (N, 1, 1, Z, 1)
            scale = self.z_scale[:, None, None, :, None].float()
        done = None
        if self.arch.done_head:
            done = self._linear(h, self.w_done, self.b_done).float().squeeze(-1)
        log_sigma = parametrise_log_sigma(raw) + scale.log()
        return MDNOutput(logits, mu * scale + shift, log_sigma, done, None)

    def forward(self, z: Tensor, a: Tensor) -> MDNOutput:
        """z (N, B, T, Z), a (N, B, T, A) in the latents' units -> MDNOutput over z_{t+1}."""
        if z.shape[0] != self.n or z.shape[-1] != self.arch.latent_dim or z.dim() != 4:
            raise ValueError(f"z must be ({self.n}, B, T, {self.arch.latent_dim}), got "
                             f"{tuple(z.shape)}")  # fmt: skip
        zs = (z - self.z_shift[:, None, None]) / self.z_scale[:, None, None]
        return self.heads(self.lstm(torch.cat([zs, a.to(zs.dtype)], dim=-1)))

    @torch.no_grad()
    def to_models(self, models: Sequence[StandardisedMDNRNN]) -> None:
        """Write each model's slice back into ``models`` (the LSTM's two biases: all of the sum
        in ``bias_ih``, ``bias_hh`` zero; the outputs are the same)."""
        for n, m in enumerate(models):
            m.lstm.weight_ih_l0.copy_(self.w_ih[n])
            m.lstm.weight_hh_l0.copy_(self.w_hh[n])
            m.lstm.bias_ih_l0.copy_(self.b[n])
            m.lstm.bias_hh_l0.zero_()
            m.mdn.weight.copy_(self.w_mdn[n])
            m.mdn.bias.copy_(self.b_mdn[n])
            if self.arch.done_head:
                m.done.weight.copy_(self.w_done[n])
                m.done.bias.copy_(self.b_done[n])
            m.z_shift.copy_(self.z_shift[n])
            m.z_scale.copy_(self.z_scale[n])
