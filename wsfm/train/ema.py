"""An exponential moving average of a network's weights, kept in fp32.

Standard in flow-matching and diffusion training: sampling uses the averaged weights, which
are smoother than the last iterate. The effective decay warms up as
``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that early averages are not
dominated by the random initial weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["EMA"]


class EMA:
    """``shadow <- d * shadow + (1 - d) * weights`` on every :meth:`update`.

    Args:
        params: the parameters by name (any dtype; the average is fp32, on their device).
        decay: the long-run decay ``d`` in [0, 1); 0 keeps a copy of the raw weights.
    """

    def __init__(self, params: Mapping[str, Tensor], decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in params.items()}

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, params: Mapping[str, Tensor]) -> None:
        d = self.current_decay()
        names = list(self.shadow)
        new = [params[k].detach().float() for k in names]
        if new and new[0].device != self.shadow[names[0]].device:  # the net moved
            self.shadow = {k: v.to(new[0].device) for k, v in self.shadow.items()}
        torch._foreach_lerp_([self.shadow[k] for k in names], new, 1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("EMA checkpoint holds other parameters than this network")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow = {k: v.to(self.shadow[k].device, torch.float32).clone()
                       for k, v in state["shadow"].items()}

    def weights(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``state_dict`` (the full fp32 one) with its parameters replaced by the averages;
        buffers are kept as they are."""
        missing = set(self.shadow) - set(state_dict)
        if missing:
            raise ValueError(f"state dict lacks averaged parameters {sorted(missing)[:3]}")
        return {k: (self.shadow[k] if k in self.shadow else v).to("cpu", torch.float32).clone()
                for k, v in state_dict.items()}
