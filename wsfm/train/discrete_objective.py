"""The discrete (cross-entropy) objective for text: the mixture path from drafts to words.

Same two methods as :class:`wsfm.train.objective.FlowObjective`, so the training loop runs it
unchanged. Batches hold long character codes; the cold baseline starts from the all-mask
sequence, the warm refiner from drafts paired with data by Hamming distance.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from wsfm.config import FlowConfig
from wsfm.flow.discrete import (MixturePath, discrete_fm_loss, hamming_nearest, hamming_ot,
                                mask_source)
from wsfm.train.objective import Batch, FlowObjective

__all__ = ["DiscreteObjective", "make_objective"]


def _independent(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    return x0, x1


class DiscreteObjective:
    def __init__(self, mode: Literal["warm", "cold"], flow: FlowConfig, mask_id: int):
        self.warm = mode == "warm"
        self.mask_id = mask_id
        self.path = MixturePath(flow.t0 if self.warm else 0.0, flow.kappa_exponent)
        pairs = {"independent": _independent, "minibatch_ot": hamming_ot,
                 "nearest": hamming_nearest}
        self.pair = pairs[flow.coupling] if self.warm else _independent

    def make_batch(self, source: Tensor, data: Tensor, generator: torch.Generator) -> Batch:
        """source, data: (B, L) float codes -> long codes; cold sources are all-mask."""
        x1 = data.round().long()
        if not self.warm:
            return Batch(mask_source(len(x1), x1.shape[1], self.mask_id), x1)
        x0, x1 = self.pair(source.round().long(), x1)
        return Batch(x0, x1)

    def loss(self, net: nn.Module, batch: Batch, generator: torch.Generator, *,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        return discrete_fm_loss(net, self.path, batch.x0.to(device), batch.x1.to(device),
                                generator)


def make_objective(mode: Literal["warm", "cold"], flow: FlowConfig, data_kind: str,
                   mask_id: int = 27):
    """Text data trains the discrete objective; everything else flow matching."""
    if data_kind in ("words", "text_lines"):
        return DiscreteObjective(mode, flow, mask_id)
    return FlowObjective(mode, flow)
