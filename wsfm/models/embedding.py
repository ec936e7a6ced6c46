"""Sinusoidal embedding of a scalar time per sample."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sinusoidal_embedding"]


def sinusoidal_embedding(s: Tensor, dim: int, max_period: float = 10_000.0,
                         scale: float = 1_000.0) -> Tensor:
    """Embed times ``s`` (B,) in [0, 1] as (B, dim) ``[cos(w s), sin(w s)]``.

    Frequencies ``w_i = scale * max_period ** (-i / (dim / 2))``, ``i < dim / 2``, run
    geometrically from ``scale`` down to ``scale / max_period``; ``scale`` stretches [0, 1]
    to the integer-timestep range this embedding was designed for (DDPM / Transformers).
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"embedding dim must be even and >= 2, got {dim!r}")
    if s.dim() != 1:
        raise ValueError(f"s must have shape (B,), got {tuple(s.shape)}")
    dtype = s.dtype if s.is_floating_point() else torch.float32
    half = dim // 2
    exponent = torch.arange(half, device=s.device, dtype=dtype) / half
    freqs = scale * torch.exp(-math.log(max_period) * exponent)  # (half,)
    args = s.to(dtype)[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
