"""The discrete (cross-entropy) objective for text: the mixture path from drafts to words.

Same two methods as :class:`wsfm.train.objective.FlowObjective`, so the training loop runs it
unchanged. Batches hold long character codes (the data's, as the dataset carries them); the cold
baseline starts from the all-mask sequence, the warm refiner from drafts paired with data by
Hamming distance: ``nearest`` pairs each draft with its nearest word in the whole training set
(measured: the only pairing with which the refiner beats its draft, BENCHMARKS.md "words_form"),
``minibatch_ot`` solves the assignment within the batch. ``substitute`` (prose windows) trains
the refiner to undo masks and the draft's substitutes of real text (``wsfm.flow.discrete``,
"Corruption"): its batches hold the substitutes with the real windows they were drawn on.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from wsfm.config import FlowConfig
from wsfm.data.base import Dataset
from wsfm.flow.discrete import (
    MixturePath,
    corrupt_loss,
    discrete_fm_loss,
    hamming_nearest,
    hamming_ot,
    mask_source,
)
from wsfm.train.objective import Batch, FlowObjective
from wsfm.train.spec import Mode

__all__ = ["DiscreteObjective", "make_objective"]


def _independent(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    return x0, x1


class DiscreteObjective:
    """Args: ``pool`` (N, L) the training words' codes, the partners of ``nearest``;
    ``paired``: the drafts arrive with their partners (``shards.pair``), no coupling here."""

    def __init__(self, mode: Literal["warm", "cold"], flow: FlowConfig, mask_id: int,
                 pool: Tensor | None = None, paired: bool = False):
        self.warm = mode == "warm"
        self.mask_id = mask_id
        self.substitute = self.warm and flow.coupling == "substitute"
        self.substitute_max = flow.substitute_max if self.substitute else 0.0
        if self.substitute and not paired:
            raise ValueError("coupling substitute reads its substitutes from the shards: "
                             "set shards.pair: substitute")
        self.path = MixturePath(flow.t0 if self.warm else 0.0, flow.kappa_exponent)
        self.pool = pool
        if paired:
            self.pair = _independent
        elif self.warm and flow.coupling == "nearest":  # cold runs never read the coupling
            if pool is None:
                raise ValueError("nearest pairing needs the training words (pool)")
            self.pair = lambda x0, x1: hamming_nearest(x0, pool)
        else:
            pairs = {"independent": _independent, "minibatch_ot": hamming_ot}
            self.pair = pairs[flow.coupling] if self.warm else _independent

    def make_batch(self, source: Tensor, data: Tensor, generator: torch.Generator) -> Batch:
        """source, data: (B, L) long codes; cold sources are all-mask."""
        x1 = data
        if not self.warm:
            return Batch(mask_source(len(x1), x1.shape[1], self.mask_id), x1)
        x0, x1 = self.pair(source, x1)
        return Batch(x0, x1)

    def loss(self, net: nn.Module, batch: Batch, generator: torch.Generator, *,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        if self.substitute:
            return corrupt_loss(net, batch.x1.to(device), batch.x0.to(device), self.mask_id,
                                self.substitute_max, generator)
        # The all-mask cold source learns only where positions are still masked (as measured).
        return discrete_fm_loss(net, self.path, batch.x0.to(device), batch.x1.to(device),
                                generator, corrupted_only=not self.warm)


def make_objective(mode: Mode, flow: FlowConfig, data: Dataset,
                   paired: bool = False, user_clock: bool = False):
    """Text data trains the discrete objective (its mask token from the data's vocabulary);
    everything else flow matching. ``paired``: the drafts come with precomputed partners
    (``shards.pair``); ``user_clock``: a user's network (``FlowObjective``)."""
    if data.text is not None:
        if mode not in ("warm", "cold"):
            raise ValueError(f"text data trains warm or cold only, not {mode!r}")
        pool = None
        if mode == "warm" and flow.coupling == "nearest" and not paired:
            pool = torch.from_numpy(data.train)
        return DiscreteObjective(mode, flow, data.text.mask_id, pool, paired=paired)
    return FlowObjective(mode, flow, paired=paired, user_clock=user_clock)
