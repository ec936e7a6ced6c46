"""The training objective: what a batch is and how its loss is computed.

The loop only calls :meth:`FlowObjective.make_batch` and :meth:`FlowObjective.loss`; another
objective with the same two methods (a discrete, cross-entropy one for text) plugs in beside
it. Pure torch: no DeepSpeed, no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from wsfm.config import FlowConfig
from wsfm.flow.couplings import get_coupling
from wsfm.flow.paths import WarmPath

__all__ = ["Batch", "FlowObjective", "flow_matching_loss"]


@dataclass(frozen=True)
class Batch:
    """One micro-batch: ``x0`` (B, D) the source the flow starts from (noise, or widened
    drafts) already paired with ``x1`` (B, D) data by the coupling."""

    x0: Tensor
    x1: Tensor


def flow_matching_loss(net: nn.Module, path: WarmPath, batch: Batch, generator: torch.Generator,
                       *, device: torch.device | str = "cpu",
                       dtype: torch.dtype = torch.float32) -> Tensor:
    """Mean squared error between ``net(x_t, s)`` and the path's target ``x1 - x0``.

    Times ``t`` (and ``sigma_min`` noise) come from ``generator`` on the CPU, so a batch's
    randomness does not depend on the device. ``x_t`` enters the network in ``dtype`` (bf16
    under mixed precision); ``s`` stays fp32 so that the time embedding keeps its precision;
    the loss is computed in fp32. Returns a scalar tensor on ``device``.
    """
    t = path.sample_t(batch.x0.shape[0], generator=generator)  # (B,)
    ps = path.sample(batch.x0, batch.x1, t, generator=generator)
    pred = net(ps.x_t.to(device, dtype), ps.s.to(device))  # (B, D)
    return torch.mean((pred.float() - ps.target.to(device)) ** 2)


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
      matched the drafts before widening. A warm objective with ``flow.t0 = 0`` is the
      ``draft_source`` rival (the whole path from the widened drafts).
    """

    def __init__(self, mode: Literal["warm", "cold", "cold_ot", "reflow"], flow: FlowConfig,
                 paired: bool = False):
        if mode not in ("warm", "cold", "cold_ot", "reflow"):
            raise ValueError(f"unknown objective mode {mode!r}")
        warm = mode == "warm"
        t0 = flow.t0 if warm else 0.0
        self.widener = WarmPath(t0, draft_noise=flow.draft_noise if warm else 0.0)
        # Sources arrive widened, so the path itself adds only sigma_min noise.
        self.path = WarmPath(t0, sigma_min=flow.sigma_min if warm else 0.0)
        self.split = mode == "reflow"
        coupling = {"warm": "independent" if paired else flow.coupling,
                    "cold_ot": "minibatch_ot"}.get(mode, "independent")
        self.pair = get_coupling(coupling)

    def make_batch(self, source: Tensor, data: Tensor, generator: torch.Generator) -> Batch:
        """Widen the sources (B, D), then pair them with data (B, D): the coupling sees what
        the flow starts from."""
        if self.split:  # reflow: the pairs are fixed, the data rows are not used
            x0, x1 = source.chunk(2, dim=1)
            return Batch(x0, x1)
        x0 = self.widener.widen(source, generator=generator)
        x0, x1 = self.pair(x0, data)
        return Batch(x0, x1)

    def loss(self, net: nn.Module, batch: Batch, generator: torch.Generator, *,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        return flow_matching_loss(net, self.path, batch, generator, device=device, dtype=dtype)
