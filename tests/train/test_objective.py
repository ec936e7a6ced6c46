"""The objective's parameterisations: the loss's target and time input, and the way back to
the s-velocity the samplers integrate, against the straight path's closed form."""

import pytest
import torch
from torch import nn

from wsfm.config import FlowConfig
from wsfm.flow.paths import WarmPath
from wsfm.train.objective import (Batch, FlowObjective, Parameterisation, SVelocity,
                                  flow_matching_loss)

T0 = 0.8
ALL = [Parameterisation(time, target) for time in ("s", "t")
       for target in ("velocity_s", "velocity_t", "endpoint")]


class _Const(nn.Module):
    """Predicts ``c`` everywhere and records the times it saw."""

    def __init__(self, c: torch.Tensor):
        super().__init__()
        self.c = c

    def forward(self, x, time):
        self.seen = time
        return self.c.expand_as(x)


@pytest.mark.parametrize("p", ALL, ids=lambda p: f"{p.time}-{p.target}")
def test_the_loss_regresses_on_the_closed_form_target_at_the_chosen_time(p):
    x0, x1 = torch.randn(64, 2), torch.randn(64, 2)
    net = _Const(torch.tensor([0.5, -1.0]))
    loss = flow_matching_loss(net, WarmPath(T0), Batch(x0, x1), torch.Generator().manual_seed(0),
                              parameterisation=p)
    target = {"velocity_s": x1 - x0, "velocity_t": (x1 - x0) / (1 - T0),
              "endpoint": x1}[p.target]
    assert loss.item() == pytest.approx(((net.c - target) ** 2).mean().item(), rel=1e-6)
    low = 0.0 if p.time == "s" else T0  # s in [0, 1), t in [t0, 1)
    assert net.seen.min() >= low and net.seen.max() < 1.0
    assert (p.time == "t") == bool(net.seen.min() >= T0)


class _Oracle(nn.Module):
    """Knows each row's pair: outputs the exact regression target of ``p`` (which for the
    endpoint target is x1 itself), and checks that it is asked at the right time."""

    def __init__(self, x0, x1, s, p: Parameterisation):
        super().__init__()
        self.x0, self.x1, self.s, self.p = x0, x1, s, p

    def forward(self, x, time):
        expected = self.s if self.p.time == "s" else T0 + self.s * (1 - T0)
        torch.testing.assert_close(time, expected)
        return self.p.regression_target(self.x0, self.x1, T0)


@pytest.mark.parametrize("p", ALL, ids=lambda p: f"{p.time}-{p.target}")
def test_an_exact_network_becomes_the_straight_paths_s_velocity(p):
    x0, x1, s = torch.randn(32, 2), torch.randn(32, 2), torch.rand(32) * 0.99
    x_s = (1 - s[:, None]) * x0 + s[:, None] * x1  # the point on the straight path
    v = SVelocity(_Oracle(x0, x1, s, p), p, T0)(x_s, s)
    torch.testing.assert_close(v, x1 - x0, rtol=1e-5, atol=1e-5)


def test_the_default_is_the_paths_own_target_and_s():
    flow = FlowConfig(t0=T0, draft_noise=0.0, coupling="independent")
    objective = FlowObjective("warm", flow)
    assert objective.parameterisation == Parameterisation("s", "velocity_s")
    x0, x1 = torch.randn(16, 2), torch.randn(16, 2)
    net = _Const(torch.zeros(2))
    gen = torch.Generator().manual_seed(1)
    loss = objective.loss(net, objective.make_batch(x0, x1, gen), gen)
    ps = WarmPath(T0).sample(x0, x1, WarmPath(T0).sample_t(16, torch.Generator().manual_seed(1)))
    assert loss.item() == pytest.approx((ps.target ** 2).mean().item(), rel=1e-6)
    plain = _Const(torch.ones(2))
    assert torch.equal(SVelocity(plain, Parameterisation(), T0)(x0, torch.rand(16)),
                       torch.ones(16, 2))


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="time must be one of"):
        Parameterisation(time="u")
    with pytest.raises(ValueError, match="target one of"):
        Parameterisation(target="noise")
    with pytest.raises(ValueError, match="endpoint_floor"):
        Parameterisation(endpoint_floor=0.0)
