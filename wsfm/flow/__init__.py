"""Flow-matching core: paths, couplings and ODE solvers (pure torch)."""

from wsfm.flow.couplings import (
    COUPLINGS,
    get_coupling,
    independent,
    minibatch_ot,
    nearest,
    nearest_indices,
    ot_permutation,
)
from wsfm.flow.paths import ColdPath, NoisedDraftStart, PathSample, WarmPath
from wsfm.flow.solvers import METHODS, Method, ODEResult, integrate, nfe_per_step, num_steps

__all__ = [
    "COUPLINGS",
    "ColdPath",
    "METHODS",
    "Method",
    "NoisedDraftStart",
    "ODEResult",
    "PathSample",
    "WarmPath",
    "get_coupling",
    "independent",
    "integrate",
    "minibatch_ot",
    "nearest",
    "nearest_indices",
    "nfe_per_step",
    "num_steps",
    "ot_permutation",
]
