import dataclasses
import io
import tarfile

import numpy as np
import torch

from tests.helpers import context, save_untrained
from wsfm.bundle import load_net
from wsfm.components import net_spec
from wsfm.data.datasets import load_dataset
from wsfm.drafts import load_draft
from wsfm.flow.paths import WarmPath
from wsfm.flow.solvers import integrate
from wsfm.orchestrate.local import LocalRuntime
from wsfm.shards import read_manifest, write_manifest
from wsfm.stages import get_stage
from wsfm.stages.generate_drafts import chunk_seed
from wsfm.stages.rivals import (
    REFLOW_STEPS,
    generate_reflow,
    generate_warm_reflow,
    train_cold_ot,
    train_reflow,
    train_warm_reflow,
)


def with_methods(config, methods):
    return dataclasses.replace(config, evaluate=dataclasses.replace(config.evaluate,
                                                                    methods=methods))


def test_reflow_pairs_are_noise_and_the_cold_ot_flow_from_it(tmp_path, tiny_config):
    config = with_methods(tiny_config, ["cold", "cold_ot", "reflow", "warm"])
    model = save_untrained(config, tmp_path / "train_cold_ot", 3)
    out = tmp_path / "pairs"
    result = generate_reflow(context(config, out, LocalRuntime(), train_cold_ot=model))
    records = read_manifest(out)
    assert len(records) == config.shards.num_shards
    assert result.metrics["pairs"] == sum(r.count for r in records)
    with tarfile.open(out / records[0].shard) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".x.npy"))
        rows = np.load(io.BytesIO(tar.extractfile(member).read()))
    assert rows.shape[1] == 4  # [z | x1] for 2-d data
    data = load_dataset(config.data)
    net = load_net(net_spec(config.model, data), 2, model / "model.pt")
    z = torch.from_numpy(rows[:, :2])
    with torch.no_grad():
        x1 = integrate(lambda x, t: net(x, t), z, 0.0, 1.0, steps=REFLOW_STEPS).x
    assert np.allclose(rows[:, 2:], x1.numpy(), atol=1e-5)
    # A second attempt finds every shard complete and makes the same manifest.
    again = tmp_path / "again"
    generate_reflow(context(config, again, LocalRuntime(), train_cold_ot=model))
    assert [(r.sha256, r.count) for r in read_manifest(again)] == [
        (r.sha256, r.count) for r in records]


def _first_shard_rows(folder):
    """The manifest, and every row of the first shard in writing order."""
    records = read_manifest(folder)
    with tarfile.open(folder / records[0].shard) as tar:
        blocks = [np.load(io.BytesIO(tar.extractfile(m).read()))
                  for m in tar.getmembers() if m.name.endswith(".x.npy")]
    return records, np.concatenate(blocks)


def test_warm_reflow_pairs_are_widened_drafts_and_the_refiners_flow_from_t0(
        tmp_path, tiny_config, draft_dir):
    config = with_methods(tiny_config, ["cold", "warm", "warm_reflow"])
    config = dataclasses.replace(config, flow=dataclasses.replace(config.flow, t0=0.8,
                                                                  draft_noise=0.2))
    model = save_untrained(config, tmp_path / "train_refiner", 5)
    out = tmp_path / "pairs"
    generate_warm_reflow(context(config, out, LocalRuntime(), pretrain_draft=draft_dir,
                                 train_refiner=model))
    records, rows = _first_shard_rows(out)
    assert len(records) == config.shards.num_shards and rows.shape == (300, 4)
    # The shard's 300 rows are one chunk: the widened draft drawn with that chunk's seed,
    # and the refiner's flow from it, checked against Euler steps written out by hand in
    # float64: x += (1 - t0) / N * v(x, s) / (1 - t0) at s = k / N.
    seed = chunk_seed(records[0].seed, 0)
    gen = torch.Generator().manual_seed(seed)
    drafts = torch.from_numpy(load_draft(draft_dir / "draft.npz").sample(len(rows), seed))
    widened = WarmPath(0.8, draft_noise=0.2).widen(drafts.float(), gen)
    assert np.allclose(rows[:, :2], widened.numpy(), atol=1e-6)
    assert 0.15 < (rows[:, :2] - drafts.numpy()).std() < 0.25  # the widening noise is there
    net = load_net(net_spec(config.model, load_dataset(config.data)), 2,
                   model / "model.pt").double()
    x = torch.from_numpy(rows[:, :2]).double()
    with torch.no_grad():
        for k in range(REFLOW_STEPS):
            s = torch.full((len(x),), k / REFLOW_STEPS, dtype=torch.float64)
            x = x + net(x, s) / REFLOW_STEPS
    assert np.allclose(rows[:, 2:], x.numpy(), atol=1e-4)


def test_rivals_not_asked_for_are_left_out_of_the_job(tiny_config):
    """A rival that evaluate.methods does not ask for is not part of the job: the plan leaves
    its stage out (``StageSpec.unused_by``), so it never runs, trains or writes anything."""
    config = with_methods(tiny_config, ["draft", "cold", "warm"])
    for stage, name in (("train_cold_ot", "cold_ot"), ("generate_reflow", "reflow"),
                        ("train_reflow", "reflow"), ("generate_warm_reflow", "warm_reflow"),
                        ("train_warm_reflow", "warm_reflow"),
                        ("train_refiner_budget", "warm_budget")):
        assert name in get_stage(stage).unused_by(config), stage
        assert not get_stage(stage).unused_by(with_methods(tiny_config, [
            "draft", "cold", "cold_ot", "reflow", "warm", "warm_reflow", "warm_budget"])), stage


class RecordingRuntime:
    """Trains nothing: keeps the specs a stage asks to train (their labels are the check)."""

    def __init__(self):
        self.specs = []

    def train(self, spec):
        self.specs.append(spec)
        return {"steps": 0}


def test_each_rival_trains_under_its_own_stage_name(tmp_path, tiny_config):
    config = with_methods(tiny_config, ["cold", "cold_ot", "reflow", "warm", "warm_reflow"])
    runtime = RecordingRuntime()
    train_cold_ot(context(config, tmp_path / "cold_ot", runtime))
    for stage, pairs in ((train_reflow, "generate_reflow"),
                         (train_warm_reflow, "generate_warm_reflow")):
        folder = tmp_path / pairs
        folder.mkdir()
        write_manifest(folder, [])
        stage(context(config, tmp_path / stage.__name__, runtime, **{pairs: folder}))
    assert [(s.label, s.mode) for s in runtime.specs] == [
        ("train_cold_ot", "cold_ot"), ("train_reflow", "reflow"),
        ("train_warm_reflow", "reflow")]


def test_the_equal_budget_refiner_trains_the_refiners_objective_for_the_chains_steps(
        tmp_path, tiny_config, draft_dir):
    """warm_reflow's chain trains two networks of train.steps each: its equal-budget line is
    the refiner's own training (same shards, pairs, objective) stretched to twice the steps,
    its schedule with it."""
    from wsfm.stages.generate_drafts import generate_drafts
    from wsfm.stages.train import BUDGET_FACTOR, train_refiner, train_refiner_budget

    config = with_methods(tiny_config, ["cold", "warm", "warm_reflow", "warm_budget"])
    shards = tmp_path / "shards"
    generate_drafts(context(config, shards, LocalRuntime(), pretrain_draft=draft_dir))
    runtime = RecordingRuntime()
    train_refiner(context(config, tmp_path / "refiner", runtime, generate_drafts=shards))
    train_refiner_budget(context(config, tmp_path / "budget", runtime, generate_drafts=shards))
    plain, budget = runtime.specs
    assert BUDGET_FACTOR == 2 and budget.label == "train_refiner_budget"
    assert budget.train.steps == 2 * plain.train.steps
    assert budget.train.warmup_steps == 2 * plain.train.warmup_steps
    assert (budget.mode, budget.flow, budget.shard_urls, budget.paired, budget.model) == (
        plain.mode, plain.flow, plain.shard_urls, plain.paired, plain.model)
    assert dataclasses.replace(budget.train, steps=plain.train.steps,
                               warmup_steps=plain.train.warmup_steps,
                               checkpoint_every=plain.train.checkpoint_every) == plain.train
