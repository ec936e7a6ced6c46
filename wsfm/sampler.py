"""Warm-start sampling: draw drafts, place them at ``t0``, integrate the refiner to 1.

Three ways to start (``start`` and ``draft``):

- ``start="draft"`` (WS-FM): ``x(t0) = xd + draft_noise * eps``, the widened draft with the
  same ``draft_noise`` as in training. The refiner was trained on the warm path and is fed
  the rescaled time ``s = (t - t0) / (1 - t0)``; its output (s-units) is divided by
  ``1 - t0`` to give ``dx/dt`` (see ``wsfm.flow.paths``).
- ``draft=None`` (cold baseline): needs ``t0 = 0``; ``x(0) ~ N(0, I)`` with D taken from
  ``dim=`` or ``refiner.dim``. Here ``s = t`` and no rescaling happens.
- ``start="noised_draft"`` (zero-shot): the refiner is a *cold* model; ``x(t0) = t0 xd +
  (1 - t0) eps`` and the model is fed its own time ``t`` (``s = t``, no rescaling).

Sampling integrates from ``t0`` to 1 with the solver's ``step_size`` rule, so NFE is
``ceil((1 - t0) / h) * nfe_per_step(method)``. The draft's own cost is not counted in NFE.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from wsfm.drafts.base import Draft
from wsfm.flow.discrete import MixturePath, jump_sample, jump_step, mask_source, remask_sample
from wsfm.flow.paths import NoisedDraftStart, WarmPath
from wsfm.flow.solvers import integrate, nfe_per_step, num_steps

__all__ = ["START_MODES", "DiscreteWarmStartSampler", "WarmStartSampler", "build_sampler"]

START_MODES = ("draft", "noised_draft")
CHUNK_ELEMENTS = 1 << 16  # numbers per network call in sampling (WarmStartSampler._net)


class WarmStartSampler:
    """Draft + refiner + ``t0`` + solver: everything needed to draw samples.

    Args:
        draft: a fitted draft, or None for a cold sampler (``t0 = 0``, N(0, I) start).
        refiner: ``net(x (B, D), s (B,)) -> (B, D)``.
        t0: start time in ``[0, 1)``.
        method: ODE method (``wsfm.flow.solvers.METHODS``).
        step_size: solver step ``h`` in t-units (the cold run's ``1 / N``).
        draft_noise: widening noise std for ``start="draft"``.
        start: one of ``START_MODES`` (module docstring).
        dim: D for a cold sampler whose refiner has no ``dim`` attribute.
    """

    def __init__(self, draft: Draft | None, refiner: nn.Module, t0: float,
                 method: str = "euler", step_size: float = 0.01, draft_noise: float = 0.0,
                 start: str = "draft", *, dim: int | None = None) -> None:
        if start not in START_MODES:
            raise ValueError(f"unknown start {start!r}; known: {list(START_MODES)}")
        nfe_per_step(method)  # validates the name
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size!r}")
        self.path = WarmPath(t0, draft_noise=draft_noise)  # validates t0 and draft_noise
        self.draft, self.refiner, self.method, self.start = draft, refiner, method, start
        self.t0, self.step_size, self.draft_noise = float(t0), float(step_size), float(draft_noise)
        self.dim = self._resolve_dim(dim)
        self.noised_start = NoisedDraftStart(t0) if start == "noised_draft" else None
        if draft_noise > 0 and (draft is None or start == "noised_draft"):
            warnings.warn(f"draft_noise={draft_noise} is ignored with "
                          f"{'no draft' if draft is None else 'start=noised_draft'}",
                          stacklevel=2)

    def _resolve_dim(self, dim: int | None) -> int:
        net_dim = getattr(self.refiner, "dim", None)
        if self.draft is None:
            if self.t0 != 0.0 or self.start != "draft":
                raise ValueError(f"a sampler without a draft is a cold sampler: needs t0=0 and "
                                 f"start='draft', got t0={self.t0}, start={self.start!r}")
            found = dim if dim is not None else net_dim
            if found is None:
                raise ValueError("cold sampler needs dim= or a refiner with a 'dim' attribute")
        else:
            found = self.draft.dim
        for name, other in (("dim", dim), ("refiner.dim", net_dim)):
            if isinstance(other, int) and other != found:
                raise ValueError(f"{name}={other} does not match the sample size {found}")
        return int(found)

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        param = next(self.refiner.parameters(), None)
        if param is None:
            return torch.device("cpu"), torch.float32
        return param.device, param.dtype

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """``dx/dt`` (B, D) at ``x`` (B, D) and absolute time ``t`` (B,)."""
        if self.start == "noised_draft":
            return self._net(x, t)
        return self.path.to_velocity(self._net(x, self.path.to_s(t)))

    def _net(self, x: Tensor, s: Tensor) -> Tensor:
        """The network on at most ``CHUNK_ELEMENTS`` numbers per call: rows are independent,
        and a convolution over one big batch is memory-bound on a CPU (the 32x32 U-Net
        evaluates 2,000 glyphs in 4.1 s at once, 0.9 s in calls of 64; the digits MLP is
        also slightly faster in calls of 1,024 rows)."""
        rows = max(1, CHUNK_ELEMENTS // max(1, x.shape[1]))
        if len(x) <= rows:
            return self.refiner(x, s)
        return torch.cat([self.refiner(x[i:i + rows], s[i:i + rows])
                          for i in range(0, len(x), rows)])

    def initial(self, n: int, seed: int) -> Tensor:
        """(n, D) float32 starting points at ``t0`` on the CPU, deterministic in ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        if self.draft is None:
            return torch.randn((n, self.dim), generator=gen)
        xd = torch.from_numpy(self.draft.sample(n, seed)).to(torch.float32)
        if self.noised_start is not None:
            return self.noised_start.start(xd, gen)
        return self.path.widen(xd, gen)

    def expected_nfe(self, steps: int | None = None) -> int:
        """NFE that ``sample`` spends with ``steps`` (default: the ``step_size`` rule)."""
        n = num_steps(self.t0, 1.0, steps=steps,
                      step_size=None if steps is not None else self.step_size)
        return n * nfe_per_step(self.method)

    def sample(self, n: int, seed: int, steps: int | None = None) -> tuple[np.ndarray, int]:
        """Draw ``n`` samples: ((n, D) float32 array, NFE spent). ``steps`` overrides ``h``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        device, dtype = self._device_dtype()
        x = self.initial(n, seed).to(device=device, dtype=dtype)
        was_training = self.refiner.training
        self.refiner.eval()
        try:
            with torch.no_grad():
                result = integrate(self.velocity, x, self.t0, 1.0, steps=steps,
                                   step_size=None if steps is not None else self.step_size,
                                   method=self.method)
        finally:
            self.refiner.train(was_training)
        return result.x.detach().cpu().numpy().astype(np.float32), result.nfe


class DiscreteWarmStartSampler:
    """The discrete counterpart of :class:`WarmStartSampler` for character codes.

    ``start="draft"``: the refiner (trained on the mixture path from drafts) starts from a
    fresh draft at ``t0`` and jumps (``wsfm.flow.discrete.jump_sample``). ``draft=None``:
    the cold model starts from the all-mask sequence at 0. ``start="noised_draft"``
    (zero-shot): the *cold* model starts at ``t0`` from a draft whose positions are masked
    with probability ``1 - kappa(t0)``, a point of its own path, and runs on its own time.
    Samples are (n, L) int64 codes; NFE is one per step, ``ceil((1 - t0) / h)`` steps.
    ``temperature`` is the softmax temperature of the jumps; ``final="argmax"`` takes the most
    likely character at the last step instead of a draw (``start="draft"`` only).
    ``remask > 0`` (a refiner trained with coupling ``substitute``): ``start="draft"`` runs
    the remasking sampler (``wsfm.flow.discrete.remask_sample``) from the draft instead of
    jumps, with the same step count.
    """

    def __init__(self, draft: Draft | None, refiner: nn.Module, t0: float, step_size: float = 0.01,
                 start: str = "draft", *, seq_len: int, mask_id: int, exponent: float = 1.0,
                 temperature: float = 1.0, final: str = "sample", remask: float = 0.0) -> None:
        if start not in START_MODES:
            raise ValueError(f"unknown start {start!r}; known: {list(START_MODES)}")
        if final not in ("sample", "argmax") or (final == "argmax" and start != "draft"):
            raise ValueError(f"final must be 'sample' or 'argmax' (argmax with start='draft' "
                             f"only), got final={final!r}, start={start!r}")
        self.final: Literal["sample", "argmax"] = "argmax" if final == "argmax" else "sample"
        if draft is None and (t0 != 0.0 or start != "draft"):
            raise ValueError("a sampler without a draft is a cold sampler: needs t0=0")
        self.draft, self.refiner, self.start = draft, refiner, start
        self.t0, self.step_size, self.temperature = float(t0), float(step_size), temperature
        self.seq_len, self.mask_id = seq_len, mask_id
        self.remask = float(remask)
        if not 0.0 <= self.remask <= 1.0:
            raise ValueError(f"remask must be in [0, 1], got {remask!r}")
        self.path = MixturePath(t0, exponent)
        self.cold_path = MixturePath(0.0, exponent)

    def expected_nfe(self, steps: int | None = None) -> int:
        return num_steps(self.t0, 1.0, steps=steps,
                         step_size=None if steps is not None else self.step_size)

    def initial(self, n: int, seed: int) -> Tensor:
        """(n, L) long codes at ``t0``."""
        gen = torch.Generator().manual_seed(seed)
        if self.draft is None:
            return mask_source(n, self.seq_len, self.mask_id)
        x = torch.from_numpy(self.draft.sample(n, seed))
        if self.start == "noised_draft":
            keep = torch.rand(x.shape, generator=gen) < self.cold_path.kappa(self.t0)
            x = torch.where(keep, x, torch.full_like(x, self.mask_id))
        return x

    def sample(self, n: int, seed: int, steps: int | None = None) -> tuple[np.ndarray, int]:
        x = self.initial(n, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        was_training = self.refiner.training
        self.refiner.eval()
        try:
            with torch.no_grad():
                if self.start == "draft" and self.draft is not None and self.remask > 0:
                    result = remask_sample(self.refiner, x, self.expected_nfe(steps),
                                           self.mask_id, self.remask, gen, self.temperature)
                    x, nfe = result.x, result.nfe
                elif self.start == "draft":
                    mask = None if self.draft is not None else self.mask_id
                    result = jump_sample(self.refiner, x, self.path, steps=steps,
                                         step_size=None if steps else self.step_size,
                                         generator=gen, temperature=self.temperature,
                                         final=self.final, mask_id=mask)
                    x, nfe = result.x, result.nfe
                else:  # zero-shot: the cold model on its own clock, from t0 to 1
                    n_steps = self.expected_nfe(steps)
                    h = (1.0 - self.t0) / n_steps
                    for k in range(n_steps):
                        t = self.t0 + k * h
                        logits = self.refiner(x, torch.full((n,), t))
                        x = jump_step(x, logits, self.cold_path.jump_prob(t, h), gen,
                                      self.mask_id, self.temperature)
                    nfe = n_steps
        finally:
            self.refiner.train(was_training)
        return x.numpy(), nfe


def build_sampler(draft: Draft | None, net: nn.Module, t0: float, *, step_size: float, dim: int,
                  codes: tuple[int, int] | None = None, method: str = "euler",
                  draft_noise: float = 0.0, start: str = "draft", exponent: float = 1.0,
                  temperature: float = 1.0, final: str = "sample",
                  remask: float = 0.0) -> WarmStartSampler | DiscreteWarmStartSampler:
    """The one rule that turns draft + network + settings into a sampler.

    Evaluation (``wsfm.components.make_sampler``, from the data) and the shipped bundle
    (``wsfm.bundle``, from ``sampler.json``) both build through here, so that what is
    measured is what is shipped: the same class, the same mask id, the same noise rule.

    Args:
        dim: D, the size of one sample.
        codes: ``(seq_len, mask_id)`` for text codes: the CTMC jump sampler
            (``temperature``, ``final``, ``exponent``, ``remask``: see
            :class:`DiscreteWarmStartSampler`);
            None: ODE integration (``method``) for vectors and images.
        draft: None makes the cold sampler (noise / all-mask start at 0).
        draft_noise: widens the draft only where there is one to widen (``start="draft"``);
            elsewhere it is dropped here rather than warned about in the sampler.

    A network on the user's clock (``user_clock``: ``wsfm.models.user``) starts from the
    zero-shot point whatever ``start`` says: it was trained from there, on absolute time.
    """
    if draft is not None and getattr(net, "user_clock", False):
        start = "noised_draft"
    if codes is not None:
        seq_len, mask_id = codes
        return DiscreteWarmStartSampler(draft, net, t0, step_size, start, seq_len=seq_len,
                                        mask_id=mask_id, exponent=exponent,
                                        temperature=temperature, final=final, remask=remask)
    noise = draft_noise if (start == "draft" and draft is not None) else 0.0
    return WarmStartSampler(draft, net, t0, method=method, step_size=step_size,
                            draft_noise=noise, start=start, dim=dim)
