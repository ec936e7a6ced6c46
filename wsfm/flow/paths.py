"""Probability paths for cold and warm-start flow matching.

A warm path starts at time ``t0`` in ``[0, 1)`` from a (widened) draft ``x~`` and ends at
the data ``x1`` at time 1:

    s   = (t - t0) / (1 - t0)                  rescaled time in [0, 1]
    x~  = xd + draft_noise * eps               the widened draft (``widen``)
    x_t = (1 - s) x~ + s x1 (+ sigma_min * eps')
    u   = dx_t/dt = (x1 - x~) / (1 - t0)       the true velocity in t-units

**Parameterisation.** The network sees the rescaled time ``s`` and predicts the velocity
in s-units, ``target = x1 - x~``, the same for every ``t0``. A network output is turned back
into a t-velocity with ``velocity_t = net(x, s) / (1 - t0)`` (``WarmPath.to_velocity``). The
cold path is the warm path with ``t0 = 0`` and no widening, where ``s = t`` and
``target = u = x1 - x0``.

Measured (``python -m benchmarks.parameterisation``, BENCHMARKS.md section
"parameterisation"; toy2d, one MLP and budget for all, t0 0.9 and 0.96):

- input ``s`` or absolute ``t``: no difference;
- endpoint prediction (``x1_hat``, velocity ``(x1_hat - x) / (1 - s)``): the worst, at about
  the draft's quality, so it is not offered;
- the t-velocity ``u`` as target trains *better* than ``x1 - x~``, but only because it is
  larger: a fixed output scale (network output x 0.1) on the s-unit target does as well at
  both ``t0`` and leaves the cold model at 100 NFE unchanged. The scale of the regression
  target against the network's output matters; the units of time do not. Such a scale
  belongs to the network (the same for cold and warm), not to this path.

**Left out, and why.** facebookresearch/flow_matching's ``AffineProbPath`` takes other
schedulers (variance-preserving, cosine, polynomial) and converts between velocity, ``x1``
and noise prediction; TorchCFM has variance-preserving and Schrodinger-bridge paths. A warm
start needs a straight path from a draft, not from Gaussian noise, and few-step Euler
sampling is exact only on straight paths; the other schedulers curve the path. Endpoint
prediction, the one conversion that applies here, measured worse (above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

TimeT = TypeVar("TimeT", Tensor, float)  # a time array, or one time

__all__ = ["PathSample", "WarmPath", "ColdPath", "NoisedDraftStart"]


@dataclass(frozen=True)
class PathSample:
    """One batch drawn from a path.

    Attributes:
        x_t: (B, ...) the point on the path at time ``t``.
        t: (B,) absolute time in ``[t0, 1]``.
        s: (B,) rescaled time ``(t - t0) / (1 - t0)`` in ``[0, 1]``: the network's input.
        u: (B, ...) the true velocity ``dx_t/dt`` (t-units).
        target: (B, ...) the network's regression target ``x1 - x0`` (s-units).
        x0: (B, ...) the source actually used (the widened draft for a warm path).
        x1: (B, ...) the data endpoint.
    """

    x_t: Tensor
    t: Tensor
    s: Tensor
    u: Tensor
    target: Tensor
    x0: Tensor
    x1: Tensor


def _noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _expand_time(t: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, ..., 1) so that it broadcasts against ``x`` (B, ...)."""
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1)))


class WarmPath:
    """Straight path from a widened draft at ``t0`` to the data at 1.

    Args:
        t0: start time in ``[0, 1)``.
        draft_noise: std of the Gaussian noise that widens drafts (``>= 0``).
        sigma_min: std of Gaussian noise added to ``x_t`` (``>= 0``), constant in time.
    """

    def __init__(self, t0: float, draft_noise: float = 0.0, sigma_min: float = 0.0) -> None:
        if not 0.0 <= t0 < 1.0:
            raise ValueError(f"t0 must be in [0, 1), got {t0!r}")
        if draft_noise < 0.0:
            raise ValueError(f"draft_noise must be >= 0, got {draft_noise!r}")
        if sigma_min < 0.0:
            raise ValueError(f"sigma_min must be >= 0, got {sigma_min!r}")
        self.t0 = float(t0)
        self.draft_noise = float(draft_noise)
        self.sigma_min = float(sigma_min)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(t0={self.t0}, draft_noise={self.draft_noise}, "
                f"sigma_min={self.sigma_min})")

    def widen(self, xd: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Widen drafts (B, ...) with Gaussian noise: ``xd + draft_noise * eps`` (B, ...)."""
        if self.draft_noise == 0.0:
            return xd
        return xd + self.draft_noise * _noise_like(xd, generator)

    def to_s(self, t: TimeT) -> TimeT:
        """Absolute time -> rescaled time ``(t - t0) / (1 - t0)``."""
        return (t - self.t0) / (1.0 - self.t0)

    def to_time(self, s: TimeT) -> TimeT:
        """Rescaled time -> absolute time ``t0 + s (1 - t0)``."""
        return self.t0 + s * (1.0 - self.t0)

    def to_velocity(self, net_out: Tensor) -> Tensor:
        """Network output (s-units, B, ...) -> velocity ``dx/dt`` (B, ...)."""
        return net_out / (1.0 - self.t0)

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor,
               generator: torch.Generator | None = None) -> PathSample:
        """Draw ``x_t`` on the path.

        Args:
            x0: (B, ...) drafts, not yet widened (widened here when ``draft_noise > 0``).
            x1: (B, ...) data, already paired with ``x0`` by a coupling.
            t: (B,) absolute times in ``[t0, 1]``.
            generator: torch generator for the widening and ``sigma_min`` noise.
        """
        if x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 shapes differ: {tuple(x0.shape)} vs {tuple(x1.shape)}")
        if t.dim() != 1 or t.shape[0] != x0.shape[0]:
            raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        x_src = self.widen(x0, generator)
        s = self.to_s(t)
        s_b = _expand_time(s, x1)
        x_t = (1.0 - s_b) * x_src + s_b * x1
        if self.sigma_min > 0.0:
            x_t = x_t + self.sigma_min * _noise_like(x_t, generator)
        target = x1 - x_src
        return PathSample(x_t=x_t, t=t, s=s, u=self.to_velocity(target), target=target,
                          x0=x_src, x1=x1)

    def sample_t(self, n: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
        """(n,) times uniform in ``[t0, 1)``."""
        u = torch.rand(n, generator=generator, device=device, dtype=dtype)
        return self.t0 + (1.0 - self.t0) * u


class ColdPath(WarmPath):
    """Plain flow matching: ``WarmPath(t0=0, draft_noise=0)``; ``x0`` is usually N(0, I)."""

    def __init__(self, sigma_min: float = 0.0) -> None:
        super().__init__(t0=0.0, draft_noise=0.0, sigma_min=sigma_min)

    def __repr__(self) -> str:
        return f"ColdPath(sigma_min={self.sigma_min})"


class NoisedDraftStart:
    """Zero-shot warm start for a *cold* model (SDEdit-style partial noising).

    ``start(xd) = t0 * xd + (1 - t0) * eps`` is a point of the cold path at time ``t0`` whose
    endpoint is the draft; the cold model then integrates from ``t0`` to 1 with its own
    time (no rescaling).
    """

    def __init__(self, t0: float) -> None:
        if not 0.0 <= t0 < 1.0:
            raise ValueError(f"t0 must be in [0, 1), got {t0!r}")
        self.t0 = float(t0)

    def __repr__(self) -> str:
        return f"NoisedDraftStart(t0={self.t0})"

    def start(self, xd: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Drafts (B, ...) -> starting points (B, ...) at time ``t0``."""
        return self.t0 * xd + (1.0 - self.t0) * _noise_like(xd, generator)
