"""The training objective: what a batch is and how its loss is computed.

The loop only calls :meth:`FlowObjective.make_batch` and :meth:`FlowObjective.loss`; another
objective with the same two methods (a discrete, cross-entropy one for text) plugs in beside
it. Pure torch: no DeepSpeed, no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from wsfm.config import FlowConfig
from wsfm.flow.couplings import get_coupling
from wsfm.flow.paths import NoisedDraftStart, WarmPath

__all__ = ["Batch", "FlowObjective", "Parameterisation", "SVelocity", "flow_matching_loss"]

TimeInput = Literal["s", "t"]
Target = Literal["velocity_s", "velocity_t", "endpoint"]


@dataclass(frozen=True)
class Parameterisation:
    """What the network sees and what it regresses on; the default is the package's choice.

    Measured in BENCHMARKS.md "parameterisation" (``benchmarks/parameterisation.py``, the one
    user of the other settings): the time input does not matter; ``velocity_t`` trains better
    than ``velocity_s`` only by its larger scale, which a fixed output scale on the network
    (``model.out_scale``) matches for every ``t0``; ``endpoint`` is the worst.

    Attributes:
        time: the network's time input: ``s``, the rescaled time in [0, 1], or ``t``, the
            absolute time ``t0 + s (1 - t0)``.
        target: ``velocity_s``, ``x1 - x0`` (s-units); ``velocity_t``,
            ``(x1 - x0) / (1 - t0)`` (t-units); or ``endpoint``, ``x1``, turned into a velocity
            as ``(x1_hat - x) / (1 - s)`` with ``1 - s`` floored at ``endpoint_floor``.
    """

    time: TimeInput = "s"
    target: Target = "velocity_s"
    endpoint_floor: float = 1e-3

    def __post_init__(self) -> None:
        if self.time not in get_args(TimeInput) or self.target not in get_args(Target):
            raise ValueError(f"time must be one of {get_args(TimeInput)} and target one of "
                             f"{get_args(Target)}, got time={self.time!r}, "
                             f"target={self.target!r}")
        if not 0.0 < self.endpoint_floor < 1.0:
            raise ValueError(f"endpoint_floor must be in (0, 1), got {self.endpoint_floor}")

    def net_time(self, s: Tensor, t0: float) -> Tensor:
        """The network's time input (B,) for rescaled times ``s`` (B,)."""
        return s if self.time == "s" else t0 + s * (1.0 - t0)

    def regression_target(self, x0: Tensor, x1: Tensor, t0: float) -> Tensor:
        """What the network regresses on (B, ...) for the pair ``x0``, ``x1`` (B, ...)."""
        if self.target == "velocity_s":
            return x1 - x0
        if self.target == "velocity_t":
            return (x1 - x0) / (1.0 - t0)
        return x1

    def s_velocity(self, out: Tensor, x: Tensor, s: Tensor, t0: float) -> Tensor:
        """A network output (B, ...) at ``x`` (B, ...), rescaled time ``s`` (B,), as the
        velocity in s-units ``dx/ds`` (B, ...) that the samplers integrate."""
        if self.target == "velocity_s":
            return out
        if self.target == "velocity_t":
            return out * (1.0 - t0)
        left = (1.0 - s).clamp(min=self.endpoint_floor)
        return (out - x) / left.reshape(-1, *([1] * (x.dim() - 1)))


class SVelocity(nn.Module):
    """A network trained with ``parameterisation`` on a path from ``t0``, as the samplers'
    ``v(x (B, D), s (B,)) -> (B, D)`` in s-units. With the default parameterisation it
    returns the network's own output."""

    def __init__(self, net: nn.Module, parameterisation: Parameterisation, t0: float) -> None:
        super().__init__()
        self.net, self.parameterisation, self.t0 = net, parameterisation, float(t0)
        self.dim = getattr(net, "dim", None)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        p = self.parameterisation
        return p.s_velocity(self.net(x, p.net_time(s, self.t0)), x, s, self.t0)


@dataclass(frozen=True)
class Batch:
    """One micro-batch: ``x0`` (B, D) the source the flow starts from (noise, or widened
    drafts) already paired with ``x1`` (B, D) data by the coupling."""

    x0: Tensor
    x1: Tensor


def flow_matching_loss(net: nn.Module, path: WarmPath, batch: Batch, generator: torch.Generator,
                       *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                       parameterisation: Parameterisation = Parameterisation()) -> Tensor:
    """Mean squared error between ``net(x_t, s)`` and the path's target ``x1 - x0`` (by
    default; another ``parameterisation`` changes the time input and the target).

    Times ``t`` (and ``sigma_min`` noise) come from ``generator`` on the CPU, so a batch's
    randomness does not depend on the device. ``x_t`` enters the network in ``dtype`` (bf16
    under mixed precision); ``s`` stays fp32 so that the time embedding keeps its precision;
    the loss is computed in fp32. Returns a scalar tensor on ``device``.
    """
    t = path.sample_t(batch.x0.shape[0], generator=generator)  # (B,)
    ps = path.sample(batch.x0, batch.x1, t, generator=generator)
    p = parameterisation
    pred = net(ps.x_t.to(device, dtype), p.net_time(ps.s, path.t0).to(device))  # (B, D)
    target = p.regression_target(ps.x0, ps.x1, path.t0)  # ps.target by default
    return torch.mean((pred.float() - target.to(device)) ** 2)


class FlowObjective:
    """Cold (noise -> data) or warm (widened draft at ``t0`` -> data) flow matching, and two
    rivals of the evaluation (``wsfm.stages.rivals``):

    - ``cold`` ignores every flow setting (t0 = 0, no widening, independent pairs), so "same
      network, same budget" holds with one loop for both;
    - ``cold_ot``: noise -> data from t = 0 with minibatch-OT pairs (OT-CFM);
    - ``reflow``: each source row holds a pair ``[x0 | x1]`` (B, 2D) made before training
      (noise and a cold model's sample from it); the flow runs from t = 0 on those pairs
      and the data rows are not used;
    - ``warm``: the refiner. ``paired``: the sources arrive with their partners (precomputed
      by ``generate_drafts``, ``shards.pair``), so no coupling runs here; the stored pairing
      matched the drafts before widening. With the default parameterisation the loss does
      not depend on ``flow.t0``: the
      network reads ``s = (t - t0) / (1 - t0)``, so the refiner is also the flow from the
      widened drafts over the whole clock (docs/method.md).

    ``parameterisation``: what the network sees and regresses on (the default is the
    package's choice; the others are for ``benchmarks/parameterisation.py``).
    """

    def __init__(self, mode: Literal["warm", "cold", "cold_ot", "reflow"], flow: FlowConfig,
                 paired: bool = False, parameterisation: Parameterisation = Parameterisation(),
                 user_clock: bool = False):
        if mode not in ("warm", "cold", "cold_ot", "reflow"):
            raise ValueError(f"unknown objective mode {mode!r}")
        self.parameterisation = parameterisation
        warm = mode == "warm"
        t0 = flow.t0 if warm else 0.0
        self.widener = WarmPath(t0, draft_noise=flow.draft_noise if warm else 0.0)
        # A user's network keeps its clock (wsfm.models.user): the refiner starts where
        # zero-shot does and regresses dx/dt on absolute time, so that the user's weights,
        # untouched, are exactly zero-shot warm start.
        self.noised = NoisedDraftStart(t0) if (user_clock and warm) else None
        if self.noised is not None:
            self.parameterisation = Parameterisation(time="t", target="velocity_t")
        # Sources arrive widened, so the path itself adds only sigma_min noise.
        self.path = WarmPath(t0, sigma_min=flow.sigma_min if warm else 0.0)
        self.split = mode == "reflow"
        if mode == "warm":  # only the refiner reads the coupling (cold runs ignore it)
            coupling = "independent" if paired else flow.coupling
        else:
            coupling = "minibatch_ot" if mode == "cold_ot" else "independent"
        self.pair = get_coupling(coupling)

    def make_batch(self, source: Tensor, data: Tensor, generator: torch.Generator) -> Batch:
        """Widen the sources (B, D), then pair them with data (B, D): the coupling sees what
        the flow starts from."""
        if self.split:  # reflow: the pairs are fixed, the data rows are not used
            x0, x1 = source.chunk(2, dim=1)
            return Batch(x0, x1)
        x0 = (self.noised.start(source, generator) if self.noised is not None
              else self.widener.widen(source, generator=generator))
        x0, x1 = self.pair(x0, data)
        return Batch(x0, x1)

    def loss(self, net: nn.Module, batch: Batch, generator: torch.Generator, *,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        return flow_matching_loss(net, self.path, batch, generator, device=device, dtype=dtype,
                                  parameterisation=self.parameterisation)
