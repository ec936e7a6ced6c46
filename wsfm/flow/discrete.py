"""Discrete flow matching on character codes, with the draft (or a mask) as the source.

**Mixture path.** Sequences are (B, L) long codes. On ``[t0, 1]`` with the rescaled time
``s = (t - t0) / (1 - t0)``, each position independently holds the clean character ``x1``
with probability ``kappa(s)`` and the source character ``x0`` otherwise:

    p_s(x_i | x0, x1) = kappa(s) delta(x1_i) + (1 - kappa(s)) delta(x0_i),  kappa(s) = s ** a

so the path is the source at ``s = 0`` and the data at ``s = 1``. The source is a draft
(warm start) or the all-mask sequence (cold start, ``t0 = 0``).

**Training.** The network reads ``x_t`` (long codes, the mask token included) and ``s`` and returns
logits ``(B, L * V)`` of the clean character at each position; the loss is their
cross-entropy against ``x1`` (on every position, or only where ``x_t`` still holds the
source: ``corrupted_only``). The network never sees ``t0``: one trained refiner serves every
``t0``, which only sets the step count.

**Pairing.** ``hamming_ot`` is minibatch OT on Hamming cost; ``hamming_nearest`` pairs each
draft with its nearest training word (the paper's image recipe, computed once for a pool of
drafts). On the words task only the latter makes the refiner beat its draft (BENCHMARKS.md,
section ``words_form``): a batch rarely holds a word near a given draft.

**Sampling** (Euler step of the CTMC of Gat et al. 2024, "Discrete Flow Matching"). The
velocity of the mixture path is ``u_s(y | x) = kappa'(s) / (1 - kappa(s)) (p(x1 = y | x) -
delta_x(y))``; one step of size ``h`` (in s) lets each position jump with probability
``h kappa'(s) / (1 - kappa(s))`` to a draw from the predicted clean distribution. The last
step jumps with probability 1 (exact for ``a = 1``, where ``h / (1 - s) = 1`` there), so
every position ends on a prediction. Step count and NFE follow
``wsfm.flow.solvers.num_steps``: ``ceil((1 - t0) / h)`` steps of 1 NFE each, spread
evenly over ``s`` in [0, 1].

**Corruption** (coupling ``substitute``, prose windows). A mixture path from free-running
drafts with independent pairs cannot tell the draft's characters from clean ones: its sampler
redraws nearly every position and ends worse than its own draft (DESIGN lesson, reproduced on
words). Instead the refiner learns to undo a corruption of real text: in each row a share
``a ~ U(0, 1)`` of the positions is masked and, of the others, a share ``b ~ U(0, b_max)`` is
replaced by the draft model's substitute there, a character drawn given the real characters
before it (``WindowNgramDraft.substitutes``): the kind of mistake the draft makes. The network
predicts the clean character at every position (``corrupt_loss``); its time input is the
share of positions not masked. **Remasking sampler** (``remask_sample``): start from a whole
draft; each step calls the network once, draws every masked position from its prediction,
then masks the positions whose current character it trusts least, a share ``remask`` after the
first step decaying linearly to 0 before the last, so the last step leaves no mask. ``n``
steps are ``n`` network calls; with one step nothing can be redrawn and the draft is returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch.nn import functional as F

from wsfm.flow.solvers import num_steps

__all__ = ["DiscretePathSample", "JumpResult", "MixturePath", "cross_entropy_loss",
           "discrete_fm_loss", "hamming_distances", "hamming_nearest",
           "hamming_nearest_indices", "hamming_ot", "hamming_ot_permutation", "jump_sample",
           "jump_step", "mask_source", "corrupt", "corrupt_loss", "remask_sample"]

TimeT = TypeVar("TimeT", Tensor, float)  # a time array, or one time
Net = Callable[[Tensor, Tensor], Tensor]  # (codes (B, L) long, s (B,)) -> (B, L * V)
_CHUNK = 1024  # x0 rows per block in hamming_nearest
_REF_CHUNK = 8192  # x1 rows per block: (1024, 8192) float32 matches, 32 MB


@dataclass(frozen=True)
class DiscretePathSample:
    """One batch drawn from a mixture path.

    Attributes:
        x_t: (B, L) long codes at time ``t``.
        t: (B,) absolute time in ``[t0, 1]``.
        s: (B,) rescaled time in ``[0, 1]``: the network's input.
        clean: (B, L) bool, True where ``x_t`` took the clean character.
        x0: (B, L) long source codes.
        x1: (B, L) long clean codes.
    """

    x_t: Tensor
    t: Tensor
    s: Tensor
    clean: Tensor
    x0: Tensor
    x1: Tensor


class MixturePath:
    """Mixture path from a source at ``t0`` to the data at 1, ``kappa(s) = s ** exponent``.

    Args:
        t0: start time in ``[0, 1)``.
        exponent: ``a > 0`` in ``kappa(s) = s ** a`` (1: linear).
    """

    def __init__(self, t0: float = 0.0, exponent: float = 1.0) -> None:
        if not 0.0 <= t0 < 1.0:
            raise ValueError(f"t0 must be in [0, 1), got {t0!r}")
        if not exponent > 0:
            raise ValueError(f"exponent must be > 0, got {exponent!r}")
        self.t0, self.exponent = float(t0), float(exponent)

    def __repr__(self) -> str:
        return f"MixturePath(t0={self.t0}, exponent={self.exponent})"

    def kappa(self, s: TimeT) -> TimeT:
        """Probability that a position holds the clean character at rescaled time ``s``."""
        return s ** self.exponent

    def dkappa(self, s: TimeT) -> TimeT:
        """``d kappa / ds``."""
        return self.exponent * s ** (self.exponent - 1.0)

    def jump_prob(self, s: float, h: float) -> float:
        """Probability that a position jumps in the step ``[s, s + h]`` (clipped to [0, 1];
        1 once ``s + h`` reaches 1)."""
        if s + h >= 1.0 - 1e-12:
            return 1.0
        return float(min(max(h * self.dkappa(s) / (1.0 - self.kappa(s)), 0.0), 1.0))

    def to_s(self, t: TimeT) -> TimeT:
        return (t - self.t0) / (1.0 - self.t0)

    def to_time(self, s: TimeT) -> TimeT:
        return self.t0 + s * (1.0 - self.t0)

    def sample_t(self, n: int, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> Tensor:
        """(n,) float32 times uniform in ``[t0, 1)``."""
        return self.to_time(torch.rand(n, generator=generator, device=device))

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor,
               generator: torch.Generator | None = None) -> DiscretePathSample:
        """Draw ``x_t``: x0, x1 (B, L) long (already paired), t (B,) absolute times."""
        if x0.shape != x1.shape or x0.dim() != 2:
            raise ValueError(f"x0 and x1 must share a (B, L) shape, got {tuple(x0.shape)} "
                             f"and {tuple(x1.shape)}")
        if t.shape != (x0.shape[0],):
            raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        s = self.to_s(t)
        u = torch.rand(x0.shape, generator=generator, device=x0.device)
        clean = u < self.kappa(s)[:, None]
        return DiscretePathSample(x_t=torch.where(clean, x1, x0), t=t, s=s, clean=clean,
                                  x0=x0, x1=x1)


def mask_source(n: int, seq_len: int, mask_id: int) -> Tensor:
    """(n, seq_len) long, every position the mask token (the cold source)."""
    return torch.full((n, seq_len), mask_id, dtype=torch.long)


def hamming_distances(a: Tensor, b: Tensor) -> Tensor:
    """(Na, L), (Nb, L) codes -> (Na, Nb) long number of differing positions."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (Na, L) and (Nb, L), got {tuple(a.shape)}, {tuple(b.shape)}")
    return (a[:, None, :] != b[None, :, :]).sum(dim=-1)


def hamming_ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    """(B,) long ``perm`` minimising ``sum_i hamming(x0[i], x1[perm[i]])`` (exact)."""
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(f"hamming_ot needs equal batch sizes, got {x0.shape[0]} and "
                         f"{x1.shape[0]}")
    cost = hamming_distances(x0.detach().cpu(), x1.detach().cpu()).numpy()
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(x1.device)


def hamming_ot(x0: Tensor, x1: Tensor, labels: None = None) -> tuple[Tensor, Tensor]:
    """Minibatch OT on Hamming cost: returns ``(x0, x1[perm])``, x0, x1 (B, L) codes. (On
    one-hot vectors this is ``wsfm.flow.minibatch_ot``: squared L2 = 2 x Hamming.)"""
    if labels is not None:
        raise ValueError("hamming_ot does not take labels")
    return x0, x1[hamming_ot_permutation(x0, x1)]


def hamming_nearest_indices(x0: Tensor, x1: Tensor) -> Tensor:
    """(B0,) long index of the nearest x1 row (B1, L) in Hamming distance for each x0 row
    (B0, L) (ties to the first). Blocks of ``_CHUNK`` x0 rows by ``_REF_CHUNK`` x1 rows with a
    running best, so memory does not grow with B1 (x1 may be a whole training split)."""
    if x1.shape[0] == 0:
        raise ValueError("hamming_nearest needs at least one x1 row")
    if x0.dim() != 2 or x1.dim() != 2 or x0.shape[1] != x1.shape[1]:
        raise ValueError(f"need (B0, L) and (B1, L), got {tuple(x0.shape)}, {tuple(x1.shape)}")
    if x0.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=x1.device)
    # matching positions = one-hot(x0) . one-hot(x1): exact small integers in float32
    v = int(max(x0.max(), x1.max())) + 1
    best = torch.full((x0.shape[0],), -1.0, device=x1.device)
    idx = torch.zeros(x0.shape[0], dtype=torch.long, device=x1.device)
    for r0 in range(0, x1.shape[0], _REF_CHUNK):
        b1 = F.one_hot(x1[r0:r0 + _REF_CHUNK], v).reshape(-1, x1.shape[1] * v).float()
        for q0 in range(0, x0.shape[0], _CHUNK):
            chunk = x0[q0:q0 + _CHUNK]
            same, j = (F.one_hot(chunk, v).reshape(chunk.shape[0], -1).float() @ b1.T).max(dim=1)
            better = same > best[q0:q0 + _CHUNK]  # strict: ties keep the earlier block
            best[q0:q0 + _CHUNK][better] = same[better]
            idx[q0:q0 + _CHUNK][better] = r0 + j[better]
    return idx


def hamming_nearest(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """Pair each x0 row (B0, L) with its nearest x1 row (B1, L) in Hamming distance (ties
    to the first); returns ``(x0, x1_gathered (B0, L))``."""
    return x0, x1[hamming_nearest_indices(x0, x1)]


def cross_entropy_loss(logits: Tensor, x1: Tensor, mask: Tensor | None = None,
                       label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of logits (B, L * V) or (B, L, V) against x1 (B, L) long, over
    the positions where ``mask`` (B, L) bool is True (all when None)."""
    b, length = x1.shape
    logits = logits.reshape(b, length, -1)
    per = F.cross_entropy(logits.transpose(1, 2), x1, reduction="none",
                          label_smoothing=label_smoothing)  # (B, L)
    if mask is None:
        return per.mean()
    return (per * mask).sum() / mask.sum().clamp(min=1)


def discrete_fm_loss(net: Net, path: MixturePath, x0: Tensor, x1: Tensor,
                     generator: torch.Generator | None = None, corrupted_only: bool = False,
                     label_smoothing: float = 0.0) -> Tensor:
    """One training batch: draw ``t``, ``x_t`` on ``path`` and return the scalar loss.

    Args:
        net: ``net(codes (B, L) long, s (B,)) -> logits (B, L * V)``.
        x0: (B, L) long source (drafts, or ``mask_source``), paired with x1 already.
        x1: (B, L) long data codes.
        corrupted_only: average the loss only over positions that still hold the source.
    """
    t = path.sample_t(x0.shape[0], generator, device=x0.device)
    ps = path.sample(x0, x1, t, generator)
    logits = net(ps.x_t, ps.s)
    return cross_entropy_loss(logits, x1, ~ps.clean if corrupted_only else None,
                              label_smoothing)


@dataclass(frozen=True)
class JumpResult:
    """Sampler output: ``x`` (B, L) long codes at s = 1, network calls ``nfe``, ``steps``."""

    x: Tensor
    nfe: int
    steps: int


def jump_step(x: Tensor, logits: Tensor, p_jump: float,
              generator: torch.Generator | None = None, mask_id: int | None = None,
              temperature: float = 1.0, argmax: bool = False) -> Tensor:
    """One Euler jump: x (B, L) long, logits (B, L * V) or (B, L, V) -> new x (B, L).

    Each position jumps with probability ``p_jump`` to a draw from
    ``softmax(logits / temperature)`` (its argmax when ``argmax``). With ``mask_id`` only
    positions holding the mask may jump: the others are final (masked source).
    """
    b, length = x.shape
    jump = torch.rand((b, length), generator=generator, device=x.device) < p_jump
    if mask_id is not None:
        jump &= x == mask_id
    # Only the positions that jump draw (a small share at many steps: the softmax and the
    # draw over every position cost most of a cold run's time on a CPU).
    chosen = logits.reshape(b, length, -1)[jump]
    out = x.clone()
    if chosen.shape[0] == 0:
        return out
    if argmax:
        out[jump] = chosen.argmax(dim=-1)
    else:
        probs = torch.softmax(chosen.double() / temperature, dim=-1)
        out[jump] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return out


def jump_sample(net: Net, x: Tensor, path: MixturePath, *, steps: int | None = None,
                step_size: float | None = None, generator: torch.Generator | None = None,
                temperature: float = 1.0, final: Literal["sample", "argmax"] = "sample",
                mask_id: int | None = None) -> JumpResult:
    """Integrate the CTMC from ``path.t0`` to 1 starting at x (B, L) long.

    Args:
        net: ``net(codes (B, L) long, s (B,)) -> logits (B, L * V)``; called once per step
            (put it in eval mode and under ``torch.no_grad()`` yourself).
        steps / step_size: exactly one (``wsfm.flow.solvers.num_steps``; ``step_size`` in
            t-units, the cold run's ``1 / N``).
        temperature: softmax temperature of the jumps (> 0).
        final: ``"argmax"`` takes the most likely character at the last step.
        mask_id: the mask token of a masked source (only masked positions jump).
    """
    if final not in ("sample", "argmax"):
        raise ValueError(f"final must be 'sample' or 'argmax', got {final!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    n = num_steps(path.t0, 1.0, steps=steps, step_size=step_size)
    nfe = 0
    for k in range(n):
        s, h = k / n, 1.0 / n
        logits = net(x, torch.full((x.shape[0],), s, device=x.device))
        nfe += 1
        x = jump_step(x, logits, path.jump_prob(s, h), generator, mask_id, temperature,
                      argmax=final == "argmax" and k == n - 1)
    return JumpResult(x=x, nfe=nfe, steps=n)


def corrupt(x1: Tensor, substitutes: Tensor, mask_id: int, substitute_max: float = 0.6,
            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The training corruption (module docstring): returns ``(x_t (B, L) long, s (B,))``,
    ``s`` the share of positions of each row that are not masked."""
    if x1.shape != substitutes.shape or x1.dim() != 2:
        raise ValueError(f"x1 and substitutes must share a (B, L) shape, got "
                         f"{tuple(x1.shape)} and {tuple(substitutes.shape)}")
    b = x1.shape[0]
    masked_share = torch.rand(b, 1, generator=generator, device=x1.device)
    sub_share = torch.rand(b, 1, generator=generator, device=x1.device) * substitute_max
    u = torch.rand(x1.shape, generator=generator, device=x1.device)
    v = torch.rand(x1.shape, generator=generator, device=x1.device)
    masked = u < masked_share
    x = torch.where(v < sub_share, substitutes, x1)
    x = torch.where(masked, torch.full_like(x1, mask_id), x)
    return x, 1.0 - masked.float().mean(dim=1)


def corrupt_loss(net: Net, x1: Tensor, substitutes: Tensor, mask_id: int,
                 substitute_max: float = 0.6,
                 generator: torch.Generator | None = None) -> Tensor:
    """Cross-entropy of the clean character at every position of a corrupted batch."""
    x, s = corrupt(x1, substitutes, mask_id, substitute_max, generator)
    return cross_entropy_loss(net(x, s), x1)


def remask_sample(net: Net, x: Tensor, steps: int, mask_id: int, remask: float = 0.2,
                  generator: torch.Generator | None = None,
                  temperature: float = 1.0) -> JumpResult:
    """The remasking sampler (module docstring) from drafts x (B, L) long: ``steps`` network
    calls; returns the codes at the end (no mask left)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    if not 0.0 <= remask <= 1.0 or not temperature > 0:
        raise ValueError(f"need remask in [0, 1] and temperature > 0, got {remask}, "
                         f"{temperature}")
    b, length = x.shape
    for k in range(steps):
        masked = x == mask_id
        logits = net(x, 1.0 - masked.float().mean(dim=1)).reshape(b, length, -1)
        if masked.any():  # only the masked positions draw
            probs = torch.softmax(logits[masked].double() / temperature, dim=-1)
            x = x.clone()
            x[masked] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        if k == steps - 1:
            break
        share = remask * (steps - 1 - k) / (steps - 1)
        m = int(round(share * length))
        if m > 0:
            logp = torch.log_softmax(logits.double() / temperature, dim=-1)
            trust = logp.gather(-1, x[..., None]).squeeze(-1)  # (B, L), log-probabilities
            worst = trust.argsort(dim=1)[:, :m]
            x = x.scatter(1, worst, mask_id)
    return JumpResult(x=x, nfe=steps, steps=steps)
