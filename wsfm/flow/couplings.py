"""Couplings: how sources (drafts or noise) are paired with data for training.

Every coupling takes ``x0`` (B0, ...) and ``x1`` (B1, ...), keeps ``x0`` in its order and
returns ``(x0, x1_paired)`` where ``x1_paired`` (B0, ...) holds rows of ``x1``. Costs are
squared L2 distances between flattened rows, computed in float64 on the CPU.

**Labels.** ``labels`` restricts pairs to equal classes. It is either one (B,) integer
tensor that labels both ``x0`` and ``x1`` row for row (draft ``i`` was made for the class of
data row ``i``, the usual class-conditional batch), or a pair ``(labels0 (B0,),
labels1 (B1,))``. ``minibatch_ot`` needs, for every class, as many ``x0`` rows as ``x1``
rows (a ValueError names the first class whose counts differ); ``nearest`` needs each class
of ``x0`` to occur in ``x1``.

**Left out, and why.** TorchCFM's ``OTPlanSampler`` also offers entropic (Sinkhorn),
unbalanced and partial OT through the POT library, and draws pairs *from* the plan, with
replacement; its Schrodinger-bridge matcher pairs by entropic OT and adds noise along the
path. Here the exact assignment is cheap (a 256 x 256 ``linear_sum_assignment`` takes a few
milliseconds on a CPU core) and gives the straightest pairs, which is what few-step warm
sampling needs; entropic blurring re-curves the flow, and would add a dependency (POT) and a
regularisation strength to tune. Pairs are a permutation, so every draft and every data row
of the batch is used exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from wsfm.flow.search import exact_nearest

__all__ = [
    "COUPLINGS",
    "get_coupling",
    "independent",
    "minibatch_ot",
    "nearest",
    "nearest_indices",
    "ot_permutation",
]

Labels = Tensor | tuple[Tensor, Tensor] | None
Coupling = Callable[..., tuple[Tensor, Tensor]]

def _split_labels(labels: Labels, n0: int, n1: int) -> tuple[np.ndarray, np.ndarray] | None:
    if labels is None:
        return None
    if isinstance(labels, tuple):
        l0, l1 = labels
    else:
        if n0 != n1:
            raise ValueError(f"a single labels tensor needs len(x0) == len(x1), got {n0} vs "
                             f"{n1}; pass (labels0, labels1)")
        l0 = l1 = labels
    a0, a1 = l0.detach().cpu().numpy(), l1.detach().cpu().numpy()
    if a0.shape != (n0,) or a1.shape != (n1,):
        raise ValueError(f"labels must have shapes ({n0},) and ({n1},), got {a0.shape} and "
                         f"{a1.shape}")
    return a0, a1


def _sq_dists(a: Tensor, b: Tensor) -> np.ndarray:
    """(Na, ...), (Nb, ...) -> (Na, Nb) float64 squared L2 distances of flattened rows."""
    a64 = a.detach().reshape(a.shape[0], -1).to("cpu", torch.float64)
    b64 = b.detach().reshape(b.shape[0], -1).to("cpu", torch.float64)
    return (torch.cdist(a64, b64) ** 2).numpy()


def independent(x0: Tensor, x1: Tensor, labels: Labels = None) -> tuple[Tensor, Tensor]:
    """Random pairs (plain CFM): the batches are returned as they are."""
    return x0, x1


def ot_permutation(x0: Tensor, x1: Tensor, labels: Labels = None) -> Tensor:
    """(B,) long indices ``perm`` minimising ``sum_i |x0[i] - x1[perm[i]]|^2`` (per class)."""
    n = x0.shape[0]
    if x1.shape[0] != n:
        raise ValueError(f"minibatch_ot needs equal batch sizes, got {n} and {x1.shape[0]}")
    split = _split_labels(labels, n, n)
    if split is None:
        groups = [(np.arange(n), np.arange(n))]
    else:
        l0, l1 = split
        groups = []
        for c in np.unique(np.concatenate([l0, l1])):
            i0, i1 = np.flatnonzero(l0 == c), np.flatnonzero(l1 == c)
            if len(i0) != len(i1):
                raise ValueError(f"class {c} has {len(i0)} x0 rows but {len(i1)} x1 rows")
            groups.append((i0, i1))
    perm = np.empty(n, dtype=np.int64)
    for i0, i1 in groups:
        rows, cols = linear_sum_assignment(_sq_dists(x0[i0], x1[i1]))
        perm[i0[rows]] = i1[cols]
    return torch.from_numpy(perm).to(x1.device)


def minibatch_ot(x0: Tensor, x1: Tensor, labels: Labels = None) -> tuple[Tensor, Tensor]:
    """Exact optimal assignment on squared L2 inside the batch: x0 (B, ...), x1 (B, ...)."""
    return x0, x1[ot_permutation(x0, x1, labels)]


def nearest_indices(x0: Tensor, x1: Tensor, labels: Labels = None) -> Tensor:
    """(B0,) long index of the nearest ``x1`` row (B1 >= 1) for each ``x0`` row (per class),
    in bounded memory whatever B1 (``wsfm.flow.search.exact_nearest``)."""
    n0, n1 = x0.shape[0], x1.shape[0]
    if n1 == 0:
        raise ValueError("nearest needs at least one x1 row")
    split = _split_labels(labels, n0, n1)
    a0 = x0.detach().reshape(n0, -1).to("cpu", torch.float64).numpy()
    a1 = x1.detach().reshape(n1, -1).to("cpu", torch.float64).numpy()
    if split is None:
        idx = exact_nearest(a0, a1)[0]
    else:
        l0, l1 = split
        idx = np.empty(n0, dtype=np.int64)
        for c in np.unique(l0):
            i0, i1 = np.flatnonzero(l0 == c), np.flatnonzero(l1 == c)
            if len(i1) == 0:
                raise ValueError(f"class {c} of x0 has no x1 rows")
            idx[i0] = i1[exact_nearest(a0[i0], a1[i1])[0]]
    return torch.from_numpy(idx).to(x1.device)


def nearest(x0: Tensor, x1: Tensor, labels: Labels = None) -> tuple[Tensor, Tensor]:
    """Pair each x0 row (B0, ...) with its nearest x1 row (B1, ...); repeats allowed.

    Returns ``(x0, x1_gathered)`` with ``x1_gathered`` of shape (B0, ...).
    """
    return x0, x1[nearest_indices(x0, x1, labels)]


COUPLINGS: dict[str, Coupling] = {
    "independent": independent,
    "minibatch_ot": minibatch_ot,
    "nearest": nearest,
}


def get_coupling(name: str) -> Coupling:
    """The coupling function registered under ``name``."""
    try:
        return COUPLINGS[name]
    except KeyError:
        raise ValueError(f"unknown coupling {name!r}; known: {sorted(COUPLINGS)}") from None
