"""Fixed-step ODE solvers for ``dx/dt = velocity(x, t)``.

Step count. Given ``steps = N`` the interval ``[t_start, t_end]`` is cut into N equal steps.
Given ``step_size = h`` the solver takes ``N = ceil((t_end - t_start) / h - 1e-9)`` equal
steps of size ``(t_end - t_start) / N`` (never larger than ``h``). The ``1e-9`` absorbs
float error, so ``t_start = 0.9, h = 0.01`` gives 10 steps, not 11: a warm start at ``t0``
with the cold run's ``h = 1/N_cold`` costs ``ceil((1 - t0) N_cold)`` steps.

NFE (velocity calls) per step: euler 1, midpoint 2, heun 2, rk4 4; ``ODEResult.nfe`` is
counted by wrapping the velocity, not computed from the table. Gradients are the caller's
business (wrap in ``torch.no_grad()`` for sampling); the dtype of ``x`` is kept.

**Left out, and why.** facebookresearch/flow_matching's ``ODESolver`` (torchdiffeq) and
TorchCFM (torchdyn) also integrate with adaptive-step solvers such as dopri5, on arbitrary
time grids, and flow_matching computes log-likelihoods through the divergence. WS-FM's claim
is a guaranteed cost: ``ceil((1 - t0) N)`` evaluations, fixed before sampling. An adaptive
solver spends a data- and tolerance-dependent NFE (at least 6 per accepted dopri5 step), so
it cannot make that guarantee, and likelihoods are not one of this project's metrics.
Non-uniform grids would keep a fixed NFE but break the rule "the warm run uses the cold run's
step ``h``" that the speed-up is defined by.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["METHODS", "Method", "ODEResult", "integrate", "nfe_per_step", "num_steps"]

Velocity = Callable[[Tensor, Tensor], Tensor]  # (x (B, ...), t (B,)) -> (B, ...)
StepFn = Callable[[Velocity, Tensor, float, float], Tensor]

_CEIL_SLACK = 1e-9


@dataclass(frozen=True)
class ODEResult:
    """Solver output: ``x`` (B, ...) at ``t_end``, velocity calls ``nfe``, ``steps`` taken."""

    x: Tensor
    nfe: int
    steps: int


@dataclass(frozen=True)
class Method:
    """One explicit Runge-Kutta scheme: its step, its NFE per step and its order."""

    step: StepFn
    nfe_per_step: int
    order: int


def _time(x: Tensor, t: float) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _euler(f: Velocity, x: Tensor, t: float, h: float) -> Tensor:
    return x + h * f(x, _time(x, t))


def _midpoint(f: Velocity, x: Tensor, t: float, h: float) -> Tensor:
    k1 = f(x, _time(x, t))
    return x + h * f(x + 0.5 * h * k1, _time(x, t + 0.5 * h))


def _heun(f: Velocity, x: Tensor, t: float, h: float) -> Tensor:
    k1 = f(x, _time(x, t))
    k2 = f(x + h * k1, _time(x, t + h))
    return x + 0.5 * h * (k1 + k2)


def _rk4(f: Velocity, x: Tensor, t: float, h: float) -> Tensor:
    k1 = f(x, _time(x, t))
    k2 = f(x + 0.5 * h * k1, _time(x, t + 0.5 * h))
    k3 = f(x + 0.5 * h * k2, _time(x, t + 0.5 * h))
    k4 = f(x + h * k3, _time(x, t + h))
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


METHODS: dict[str, Method] = {
    "euler": Method(_euler, nfe_per_step=1, order=1),
    "midpoint": Method(_midpoint, nfe_per_step=2, order=2),
    "heun": Method(_heun, nfe_per_step=2, order=2),
    "rk4": Method(_rk4, nfe_per_step=4, order=4),
}


def _method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown ODE method {name!r}; known: {sorted(METHODS)}") from None


def nfe_per_step(method: str) -> int:
    """Velocity evaluations per step of ``method``."""
    return _method(method).nfe_per_step


def num_steps(t_start: float, t_end: float = 1.0, *, steps: int | None = None,
              step_size: float | None = None) -> int:
    """Number of steps ``integrate`` takes (see the module docstring)."""
    if (steps is None) == (step_size is None):
        raise ValueError(f"give exactly one of steps and step_size, got steps={steps!r}, "
                         f"step_size={step_size!r}")
    if t_end < t_start:
        raise ValueError(f"t_end must be >= t_start, got t_start={t_start!r}, t_end={t_end!r}")
    if steps is not None:
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        return int(steps)
    assert step_size is not None  # exactly one of the two was given
    if not step_size > 0.0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")
    return max(0, math.ceil((t_end - t_start) / step_size - _CEIL_SLACK))


def integrate(velocity: Velocity, x: Tensor, t_start: float, t_end: float = 1.0, *,
              steps: int | None = None, step_size: float | None = None,
              method: str = "euler") -> ODEResult:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t_start`` to ``t_end`` with fixed steps.

    Args:
        velocity: ``(x (B, ...), t (B,)) -> (B, ...)``; ``t`` has the dtype of ``x``.
        x: (B, ...) state at ``t_start``.
        steps / step_size: exactly one of them (see the module docstring).
        method: a key of ``METHODS``.
    """
    scheme = _method(method)
    n = num_steps(float(t_start), float(t_end), steps=steps, step_size=step_size)
    calls = 0

    def counted(x_: Tensor, t_: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return velocity(x_, t_)

    if n > 0:
        dt = (float(t_end) - float(t_start)) / n
        for k in range(n):
            # t_k from k, not by accumulation, so the last step ends exactly at t_end.
            x = scheme.step(counted, x, float(t_start) + k * dt, dt)
    return ODEResult(x=x, nfe=calls, steps=n)
