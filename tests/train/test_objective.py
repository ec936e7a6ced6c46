"""The objective's modes: cold (independent), cold_ot (OT-CFM pairs), reflow (stored pairs),
warm from t0 = 0 (draft_source). Defaults unchanged."""

import dataclasses

import pytest
import torch

from wsfm.config import FlowConfig
from wsfm.train.objective import FlowObjective


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

    from wsfm.train.data import BatchStream

    from tests.helpers import write_shard

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
