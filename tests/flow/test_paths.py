import pytest
import torch

from wsfm.flow import ColdPath, NoisedDraftStart, WarmPath


def _batch(b=64, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=torch.float64), \
        torch.randn(b, d, generator=g, dtype=torch.float64) + 5.0


@pytest.mark.parametrize("t0", [0.0, 0.5, 0.9, 0.99])
def test_warm_path_endpoints_and_velocity(t0):
    x0, x1 = _batch()
    path = WarmPath(t0)
    b = x0.shape[0]
    start = path.sample(x0, x1, torch.full((b,), t0, dtype=torch.float64))
    end = path.sample(x0, x1, torch.ones(b, dtype=torch.float64))
    torch.testing.assert_close(start.x_t, x0)
    torch.testing.assert_close(end.x_t, x1)
    torch.testing.assert_close(start.s, torch.zeros(b, dtype=torch.float64))
    # u is dx_t/dt: check with a central finite difference in t (the path is linear in t).
    t = path.sample_t(b, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = t.clamp(max=1 - 1e-4)
    eps = 1e-6 * (1 - t0)
    fd = (path.sample(x0, x1, t + eps).x_t - path.sample(x0, x1, t - eps).x_t) / (2 * eps)
    ps = path.sample(x0, x1, t)
    torch.testing.assert_close(ps.u, fd, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ps.target, x1 - x0)  # O(1) whatever t0 is
    torch.testing.assert_close(ps.u * (1 - t0), ps.target)
    torch.testing.assert_close(ps.s, (t - t0) / (1 - t0))


def test_cold_path_is_warm_path_at_zero():
    x0, x1 = _batch()
    t = torch.rand(x0.shape[0], dtype=torch.float64)
    cold, warm = ColdPath().sample(x0, x1, t), WarmPath(0.0).sample(x0, x1, t)
    for name in ("x_t", "t", "s", "u", "target", "x0", "x1"):
        torch.testing.assert_close(getattr(cold, name), getattr(warm, name))
    torch.testing.assert_close(cold.x_t, (1 - t[:, None]) * x0 + t[:, None] * x1)
    torch.testing.assert_close(cold.u, x1 - x0)
    assert ColdPath().t0 == 0.0


def test_widening_is_used_and_returned():
    x0, x1 = _batch(b=20000, d=2)
    path = WarmPath(0.5, draft_noise=0.3)
    t = path.sample_t(x0.shape[0], generator=torch.Generator().manual_seed(2),
                      dtype=torch.float64)
    ps = path.sample(x0, x1, t, generator=torch.Generator().manual_seed(3))
    noise = ps.x0 - x0
    assert abs(noise.std().item() - 0.3) < 0.01
    assert abs(noise.mean().item()) < 0.01
    s = ps.s[:, None]
    torch.testing.assert_close(ps.x_t, (1 - s) * ps.x0 + s * x1)
    torch.testing.assert_close(ps.target, x1 - ps.x0)
    # same generator seed -> same widening
    again = path.sample(x0, x1, t, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(again.x0, ps.x0)


def test_sigma_min_noise():
    x0, x1 = _batch(b=20000, d=2)
    path = WarmPath(0.2, sigma_min=0.1)
    t = path.sample_t(x0.shape[0], dtype=torch.float64)
    ps = path.sample(x0, x1, t)
    s = ps.s[:, None]
    resid = ps.x_t - ((1 - s) * x0 + s * x1)
    assert abs(resid.std().item() - 0.1) < 0.005


def test_sample_t_range_and_time_helpers():
    path = WarmPath(0.8)
    t = path.sample_t(10000, generator=torch.Generator().manual_seed(0))
    assert t.shape == (10000,) and t.min() >= 0.8 and t.max() < 1.0
    assert abs(t.mean().item() - 0.9) < 0.005
    assert path.to_s(0.8) == 0.0 and abs(path.to_s(0.9) - 0.5) < 1e-12
    assert abs(path.to_time(path.to_s(0.93)) - 0.93) < 1e-12
    assert ColdPath().sample_t(5).min() >= 0.0


@pytest.mark.parametrize("kwargs", [dict(t0=1.0), dict(t0=-0.1), dict(t0=0.5, draft_noise=-1),
                                    dict(t0=0.5, sigma_min=-0.1)])
def test_warm_path_validation(kwargs):
    with pytest.raises(ValueError):
        WarmPath(**kwargs)


def test_shape_mismatch_raises():
    x0, x1 = _batch()
    with pytest.raises(ValueError):
        WarmPath(0.5).sample(x0, x1[:-1], torch.full((64,), 0.7, dtype=torch.float64))
    with pytest.raises(ValueError):
        WarmPath(0.5).sample(x0, x1, torch.full((3,), 0.7, dtype=torch.float64))


def test_noised_draft_start_moments():
    xd = torch.full((50000, 2), 2.0)
    x = NoisedDraftStart(0.75).start(xd, generator=torch.Generator().manual_seed(0))
    assert abs(x.mean().item() - 1.5) < 0.01
    assert abs(x.std().item() - 0.25) < 0.005
    with pytest.raises(ValueError):
        NoisedDraftStart(1.0)
