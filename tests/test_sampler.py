import math

import numpy as np
import pytest
import torch
from torch import nn

from wsfm.drafts import GMMDraft
from wsfm.models import MLPVelocity
from wsfm.sampler import WarmStartSampler

TARGET = torch.tensor([3.0, -1.0])


class TowardPoint(nn.Module):
    """net(x, s) = c - x: in s-units, dx/ds = c - x, so x(1) = c + (x(0) - c) e^-1."""

    dim = 2

    def forward(self, x, s):
        return TARGET.to(x.dtype) - x


class StraightToPoint(nn.Module):
    """net(x, s) = (c - x) / (1 - s): the straight path that reaches c exactly at s = 1."""

    dim = 2

    def forward(self, x, s):
        return (TARGET.to(x.dtype) - x) / (1 - s)[:, None]


class EchoTime(nn.Module):
    """Returns the time it was given, to check which time the sampler feeds the net."""

    dim = 2

    def forward(self, x, s):
        return s[:, None].expand_as(x).clone()


@pytest.fixture(scope="module")
def draft():
    data = np.random.default_rng(0).normal([1.0, 2.0], 0.5, size=(500, 2))
    return GMMDraft(2).fit(data)


@pytest.mark.parametrize("t0,h,n_steps", [(0.9, 0.01, 10), (0.8, 0.05, 4), (0.0, 0.1, 10)])
def test_euler_reaches_closed_form_endpoint(draft, t0, h, n_steps):
    sampler = WarmStartSampler(draft, TowardPoint(), t0=t0, step_size=h)
    x, nfe = sampler.sample(64, seed=3)
    assert nfe == n_steps == math.ceil((1 - t0) / h - 1e-9)
    xd = draft.sample(64, seed=3).astype(np.float64)
    c = TARGET.numpy().astype(np.float64)
    # Euler with N steps in t of size (1 - t0)/N is Euler with ds = 1/N in s-units.
    expected = c + (xd - c) * (1 - 1 / n_steps) ** n_steps
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)
    assert x.dtype == np.float32 and x.shape == (64, 2)


def test_rk4_matches_exact_ode_solution(draft):
    sampler = WarmStartSampler(draft, TowardPoint(), t0=0.9, method="rk4", step_size=0.01)
    x, nfe = sampler.sample(32, seed=1)
    assert nfe == 40 == sampler.expected_nfe()
    c = TARGET.numpy()
    np.testing.assert_allclose(x, c + (draft.sample(32, seed=1) - c) * math.exp(-1),
                               rtol=1e-5, atol=1e-5)


def test_straight_velocity_lands_on_target_with_one_step(draft):
    sampler = WarmStartSampler(draft, StraightToPoint(), t0=0.5, step_size=0.5)
    x, nfe = sampler.sample(16, seed=0)
    assert nfe == 1
    np.testing.assert_allclose(x, np.broadcast_to(TARGET.numpy(), x.shape), atol=1e-6)
    x_steps, nfe_steps = sampler.sample(16, seed=0, steps=5)
    assert nfe_steps == 5 == sampler.expected_nfe(steps=5)
    np.testing.assert_allclose(x_steps, x, atol=1e-5)


def test_velocity_conversion_per_start_mode(draft):
    x = torch.zeros(3, 2)
    t = torch.tensor([0.8, 0.9, 0.95])
    warm = WarmStartSampler(draft, EchoTime(), t0=0.8)
    s = (t - 0.8) / 0.2
    torch.testing.assert_close(warm.velocity(x, t), (s / 0.2)[:, None].expand(3, 2))
    zero_shot = WarmStartSampler(draft, EchoTime(), t0=0.8, start="noised_draft")
    torch.testing.assert_close(zero_shot.velocity(x, t), t[:, None].expand(3, 2))


def test_starting_points(draft):
    n = 20000
    mean = (draft.weights[:, None] * draft.means).sum(0)
    widened = WarmStartSampler(draft, TowardPoint(), t0=0.9, draft_noise=0.5).initial(n, 0)
    resid = widened.numpy() - draft.sample(n, 0)
    assert abs(resid.std() - 0.5) < 0.01
    noised = WarmStartSampler(draft, TowardPoint(), t0=0.75, start="noised_draft").initial(n, 0)
    resid = noised.numpy() - 0.75 * draft.sample(n, 0)
    assert abs(resid.std() - 0.25) < 0.005 and np.allclose(resid.mean(0), 0, atol=0.01)
    np.testing.assert_allclose(noised.numpy().mean(0), 0.75 * mean, atol=0.02)


def test_cold_sampler_from_gaussian():
    class Zero(nn.Module):
        def forward(self, x, s):
            return torch.zeros_like(x)

    sampler = WarmStartSampler(None, Zero(), t0=0.0, dim=3)
    x, nfe = sampler.sample(20000, seed=0)
    assert nfe == 100 and x.shape == (20000, 3)
    assert np.allclose(x.mean(0), 0, atol=0.03) and np.allclose(x.std(0), 1, atol=0.03)
    x2, _ = sampler.sample(20000, seed=0)
    assert np.array_equal(x, x2)
    mlp = MLPVelocity(dim=4, hidden=8, depth=1, time_dim=4).train()
    cold = WarmStartSampler(None, mlp, t0=0.0, step_size=0.25)
    x, nfe = cold.sample(5, seed=1)
    assert x.shape == (5, 4) and nfe == 4 and mlp.training  # train mode is restored


def test_sampling_in_chunks_matches_one_batch_and_counts_steps_not_calls(monkeypatch):
    """Rows are sampled independently: the network called on slices of the batch gives the
    samples of one whole-batch call (float64, so equal to rounding), and the NFE is the number
    of steps, however many calls each step takes."""
    from wsfm.models import UNetLite

    net = UNetLite(dim=64, image_shape=(1, 8, 8), channels=8, time_dim=8).double()
    for p in net.parameters():  # the output layer starts at zero: make the field non-trivial
        nn.init.normal_(p, std=0.1)
    sampler = WarmStartSampler(None, net, t0=0.0, step_size=0.25)
    whole, nfe_whole = sampler.sample(50, seed=3)
    calls = []
    real_forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x, s: calls.append(len(x)) or real_forward(x, s))
    monkeypatch.setattr("wsfm.sampler.CHUNK_ELEMENTS", 64 * 16)  # 16 rows per call
    chunked, nfe_chunked = sampler.sample(50, seed=3)
    assert calls[:4] == [16, 16, 16, 2] and len(calls) == 4 * 4
    assert nfe_whole == nfe_chunked == 4
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)


def test_deterministic_in_seed(draft):
    mlp = MLPVelocity(dim=2, hidden=8, depth=1, time_dim=4)
    sampler = WarmStartSampler(draft, mlp, t0=0.7, draft_noise=0.3, method="heun")
    a, nfe = sampler.sample(10, seed=5)
    assert nfe == 2 * 30
    assert np.array_equal(a, sampler.sample(10, seed=5)[0])
    assert not np.array_equal(a, sampler.sample(10, seed=6)[0])


def test_argument_errors(draft):
    with pytest.raises(ValueError, match="noised_draft"):
        WarmStartSampler(draft, TowardPoint(), t0=0.5, start="sdedit")
    with pytest.raises(ValueError, match="t0"):
        WarmStartSampler(None, TowardPoint(), t0=0.5)
    with pytest.raises(ValueError, match="dim"):
        WarmStartSampler(None, nn.Identity(), t0=0.0)
    with pytest.raises(ValueError):
        WarmStartSampler(draft, MLPVelocity(dim=3), t0=0.5)
    with pytest.raises(ValueError):
        WarmStartSampler(draft, TowardPoint(), t0=1.0)
    with pytest.raises(ValueError, match="rk4"):
        WarmStartSampler(draft, TowardPoint(), t0=0.5, method="rk45")
    with pytest.warns(UserWarning, match="draft_noise"):
        WarmStartSampler(draft, TowardPoint(), t0=0.5, draft_noise=0.3, start="noised_draft")
