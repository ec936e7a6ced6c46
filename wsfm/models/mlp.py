"""MLP velocity network for vector data."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wsfm.models.embedding import sinusoidal_embedding

__all__ = ["MLPVelocity"]


class MLPVelocity(nn.Module):
    """``v(x, s)``: an MLP on ``[x, embed(s)]`` with SiLU activations.

    Args:
        dim: D, the size of x.
        hidden: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        time_dim: size of the sinusoidal embedding of ``s`` (even).
        out_scale: a fixed factor on the output. Measured (BENCHMARKS.md, "parameterisation"):
            0.1 trains a clearly better warm refiner and leaves the cold model unchanged; the
            network then regresses a 10x larger version of the same O(1) target.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, time_dim: int = 32,
                 out_scale: float = 1.0) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"dim, hidden and depth must be >= 1, got dim={dim!r}, "
                             f"hidden={hidden!r}, depth={depth!r}")
        if time_dim < 2 or time_dim % 2:
            raise ValueError(f"time_dim must be even and >= 2, got {time_dim!r}")
        if not out_scale > 0:
            raise ValueError(f"out_scale must be > 0, got {out_scale!r}")
        self.dim, self.hidden, self.depth, self.time_dim = dim, hidden, depth, time_dim
        self.out_scale = float(out_scale)
        layers: list[nn.Module] = [nn.Linear(dim + time_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        """x (B, D), s (B,) or a scalar tensor -> velocity (B, D) in s-units."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        if s.dim() == 0:
            s = s.expand(x.shape[0])
        emb = sinusoidal_embedding(s, self.time_dim).to(x.dtype)  # (B, time_dim)
        return self.out_scale * self.net(torch.cat([x, emb], dim=1))
