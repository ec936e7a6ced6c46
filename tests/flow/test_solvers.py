import math

import pytest
import torch

from wsfm.flow import METHODS, integrate, nfe_per_step, num_steps

F64 = torch.float64


def _cubic(x, t):  # dx/dt = 3 t^2: x(1) = x(0) + 1
    return (3 * t**2)[:, None].expand_as(x)


def _nonautonomous(x, t):  # dx/dt = cos(t) x: x(t) = x(a) exp(sin t - sin a)
    return torch.cos(t)[:, None] * x


def test_rk4_exact_on_cubic():
    x = torch.tensor([[0.5, -2.0]], dtype=F64)
    out = integrate(_cubic, x, 0.0, 1.0, steps=3, method="rk4")
    torch.testing.assert_close(out.x, x + 1.0, rtol=0, atol=1e-14)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2),
                                          ("rk4", 4)])
def test_empirical_order_of_convergence(method, order):
    a, b = 0.2, 1.0
    x0 = torch.tensor([[1.0], [-0.5]], dtype=F64)
    exact = x0 * math.exp(math.sin(b) - math.sin(a))
    errs = [(integrate(_nonautonomous, x0, a, b, steps=n, method=method).x - exact).abs().max()
            .item() for n in (8, 16, 32)]
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.25 for r in rates), (errs, rates)
    assert METHODS[method].order == order


@pytest.mark.parametrize("method,expect", [("euler", 1), ("midpoint", 2), ("heun", 2),
                                           ("rk4", 4)])
def test_nfe_counted_by_calls(method, expect):
    calls = []

    def v(x, t):
        assert t.shape == (x.shape[0],) and t.dtype == x.dtype
        calls.append(float(t[0]))
        return torch.zeros_like(x)

    out = integrate(v, torch.zeros(4, 3), 0.9, 1.0, step_size=0.01, method=method)
    assert out.steps == 10
    assert out.nfe == len(calls) == 10 * expect == 10 * nfe_per_step(method)
    assert min(calls) == pytest.approx(0.9) and max(calls) <= 1.0 + 1e-6


def test_euler_linear_closed_form():
    # Euler on dx/dt = a x with n steps: x(1) = x(0) (1 + a/n)^n exactly
    a, n = -1.7, 13
    x = torch.tensor([[2.0]], dtype=F64)
    out = integrate(lambda x, t: a * x, x, 0.0, steps=n)
    assert out.x.item() == pytest.approx(2.0 * (1 + a / n) ** n, rel=1e-13)


@pytest.mark.parametrize("t_start,h,n", [(0.9, 0.01, 10), (0.0, 0.01, 100), (0.7, 0.1, 3),
                                         (0.8, 0.5, 1), (0.95, 0.1, 1), (0.0, 1 / 3, 3),
                                         (1.0, 0.1, 0)])
def test_step_count_from_step_size(t_start, h, n):
    assert num_steps(t_start, 1.0, step_size=h) == n
    out = integrate(lambda x, t: torch.ones_like(x), torch.zeros(1, 1, dtype=F64), t_start,
                    step_size=h)
    assert out.steps == n
    assert out.x.item() == pytest.approx(1.0 - t_start, abs=1e-12)  # ends exactly at 1


def test_dtype_kept_and_argument_errors():
    x = torch.zeros(2, 2, dtype=torch.float32)
    assert integrate(lambda x, t: x + t[:, None], x, 0.0, steps=4).x.dtype == torch.float32
    with pytest.raises(ValueError):
        integrate(lambda x, t: x, x, 0.0, steps=4, step_size=0.1)
    with pytest.raises(ValueError):
        integrate(lambda x, t: x, x, 0.0)
    with pytest.raises(ValueError, match="rk4"):
        integrate(lambda x, t: x, x, 0.0, steps=4, method="dopri5")
    with pytest.raises(ValueError):
        integrate(lambda x, t: x, x, 0.0, steps=0)
    with pytest.raises(ValueError):
        nfe_per_step("leapfrog")
