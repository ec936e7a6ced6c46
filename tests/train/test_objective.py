"""The objective: its parameterisations (the loss's target and time input, and the way back to
the s-velocity the samplers integrate, against the straight path's closed form) and its
modes (cold, cold_ot with OT-CFM pairs, reflow on stored pairs, warm from t0 = 0 for
draft_source). Defaults unchanged."""

import dataclasses

import pytest
import torch
from torch import nn

from wsfm.config import FlowConfig
from wsfm.flow.paths import WarmPath
from wsfm.train.objective import (
    Batch,
    FlowObjective,
    Parameterisation,
    SVelocity,
    flow_matching_loss,
)

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


def total_cost(x0, x1):
    return float(((x0 - x1) ** 2).sum())


def test_cold_keeps_independent_pairs_whatever_the_flow_coupling():
    gen = torch.Generator().manual_seed(0)
    noise, data = torch.randn(64, 2, generator=gen), torch.randn(64, 2, generator=gen) + 3
    batch = FlowObjective("cold", FlowConfig(coupling="minibatch_ot")).make_batch(noise, data, gen)
    assert torch.equal(batch.x0, noise) and torch.equal(batch.x1, data)


def test_cold_ot_pairs_noise_and_data_by_exact_minibatch_ot():
    gen = torch.Generator().manual_seed(1)
    noise, data = torch.randn(32, 2, generator=gen), torch.randn(32, 2, generator=gen) * 3
    batch = FlowObjective("cold_ot", FlowConfig(coupling="independent")).make_batch(
        noise, data, gen)
    assert torch.equal(batch.x0, noise)  # no widening, the noise as drawn
    assert sorted(map(tuple, batch.x1.tolist())) == sorted(map(tuple, data.tolist()))
    # The assignment is optimal: no swap of two partners lowers the cost (2-opt check),
    # and it beats the independent pairing.
    cost = total_cost(batch.x0, batch.x1)
    assert cost < total_cost(noise, data)
    for i in range(32):
        for j in range(i + 1, 32):
            swapped = batch.x1.clone()
            swapped[[i, j]] = swapped[[j, i]]
            assert total_cost(batch.x0, swapped) >= cost - 1e-4
    assert FlowObjective("cold_ot", FlowConfig()).path.t0 == 0.0


def test_reflow_splits_the_stored_pairs_and_ignores_the_data():
    gen = torch.Generator().manual_seed(2)
    z, x1 = torch.randn(16, 3, generator=gen), torch.randn(16, 3, generator=gen)
    batch = FlowObjective("reflow", FlowConfig(t0=0.9, draft_noise=0.5)).make_batch(
        torch.cat([z, x1], 1), torch.full((16, 3), 99.0), gen)
    assert torch.equal(batch.x0, z) and torch.equal(batch.x1, x1)


def test_warm_from_zero_is_the_draft_source_objective():
    flow = FlowConfig(t0=0.9, draft_noise=0.2, coupling="independent")
    obj = FlowObjective("warm", dataclasses.replace(flow, t0=0.0))
    assert obj.path.t0 == 0.0 and obj.widener.draft_noise == 0.2
    assert FlowObjective("warm", flow).path.t0 == 0.9  # the refiner: unchanged


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown objective mode"):
        FlowObjective("hot", FlowConfig())


def test_a_reflow_stream_reads_the_stored_pairs_and_the_objective_keeps_them(tmp_path):
    import numpy as np

    from tests.helpers import write_shard
    from wsfm.train.data import BatchStream

    rng = np.random.default_rng(0)
    pairs = rng.normal(size=(512, 4)).astype(np.float32)  # [z | x1] for 2-d data
    rec = write_shard(tmp_path, 0, pairs, seed=1)
    data = torch.full((100, 2), 99.0)
    stream = BatchStream("reflow", data, 32, rank=0, world_size=1, seed=0,
                         shard_urls=[str(tmp_path / rec.shard)], shuffle_buffer=64)
    source, _, gen = next(stream)
    batch = FlowObjective("reflow", FlowConfig()).make_batch(source, _, gen)
    stored = {tuple(row) for row in pairs.round(5).tolist()}
    got = torch.cat([batch.x0, batch.x1], 1).numpy().round(5).tolist()
    assert all(tuple(row) in stored for row in got)  # every pair arrives whole
    with pytest.raises(ValueError, match="reflow training needs shards"):
        BatchStream("reflow", data, 32, rank=0, world_size=1, seed=0)
    cold_ot = BatchStream("cold_ot", data, 32, rank=0, world_size=1, seed=0)
    noise, rows, _ = next(cold_ot)
    assert noise.shape == (32, 2) and torch.equal(rows, data[:32])
