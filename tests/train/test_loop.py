"""The loop's parts without Ray: schedule, DeepSpeed config, EMA, loss, data position."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from tests.helpers import write_shard
from wsfm.config import FlowConfig, TrainConfig
from wsfm.flow.paths import WarmPath
from wsfm.train.data import BatchStream, step_generator
from wsfm.train.ema import EMA
from wsfm.train.engine import build_optimizer, deepspeed_config, lr_lambda
from wsfm.train.objective import Batch, FlowObjective, flow_matching_loss


def test_learning_rate_warms_up_linearly_then_decays_on_a_cosine():
    cfg = TrainConfig(steps=1100, warmup_steps=100)
    f = lr_lambda(cfg)
    assert f(0) == pytest.approx(0.01) and f(49) == pytest.approx(0.5)
    assert f(100) == pytest.approx(1.0)
    mid = 100 + 500  # halfway through the decay: cos(pi/2) = 0
    assert f(mid) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(1100) == pytest.approx(0.1)
    decay = [f(s) for s in range(100, 1101)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert f(700) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.6)))


def test_deepspeed_batch_arithmetic_and_settings():
    cfg = TrainConfig(batch_size=512, num_workers=4, grad_accum=2, zero_stage=3,
                      precision="bf16", grad_clip=0.5)
    ds = deepspeed_config(cfg, world_size=4)
    assert (ds["train_batch_size"], ds["train_micro_batch_size_per_gpu"],
            ds["gradient_accumulation_steps"]) == (512, 64, 2)
    assert ds["zero_optimization"]["stage"] == 3 and ds["gradient_clipping"] == 0.5
    assert ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    fp32 = deepspeed_config(TrainConfig(batch_size=64, num_workers=2), world_size=2)
    assert not fp32["bf16"]["enabled"] and fp32["train_micro_batch_size_per_gpu"] == 32
    with pytest.raises(ValueError, match=r"3 workers.*batch_size 64 = micro_batch 32 x "
                                         r"grad_accum 1 x num_workers 2"):
        deepspeed_config(TrainConfig(batch_size=64, num_workers=2), world_size=3)


def test_cpu_runs_use_a_torch_adamw():
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(TrainConfig(lr=0.01, weight_decay=0.1), params)
    assert type(opt) is torch.optim.AdamW
    assert opt.defaults["lr"] == 0.01 and opt.defaults["weight_decay"] == 0.1


def test_ema_follows_the_closed_form_and_round_trips():
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    ema = EMA({"w": w}, decay=0.5)
    expected = torch.zeros(2, dtype=torch.float64)
    for n, value in enumerate([4.0, 2.0, 8.0, -2.0]):
        with torch.no_grad():
            w.fill_(value)
        d = min(0.5, (1 + n) / (10 + n))  # warm-up of the decay
        expected = d * expected + (1 - d) * value
        ema.update({"w": w})
    assert ema.shadow["w"].dtype == torch.float32
    assert torch.allclose(ema.shadow["w"].double(), expected, atol=1e-6)
    full = {"w": torch.ones(2), "buffer": torch.full((1,), 7.0)}
    weights = ema.weights(full)
    assert torch.equal(weights["w"], ema.shadow["w"]) and weights["buffer"].item() == 7.0
    restored = EMA({"w": torch.zeros(2)}, decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 4 and torch.equal(restored.shadow["w"], ema.shadow["w"])
    with pytest.raises(ValueError, match="decay"):
        EMA({"w": w}, decay=1.0)


def test_flow_matching_loss_is_the_mse_to_x1_minus_x0():
    x0, x1 = torch.randn(16, 2), torch.randn(16, 2)
    t0 = 0.5
    net = _Const(torch.tensor([1.0, -1.0]))
    gen = torch.Generator().manual_seed(3)
    loss = flow_matching_loss(net, WarmPath(t0), Batch(x0, x1), gen)
    # Independent: a constant prediction c has loss mean((c - (x1 - x0))^2), whatever t is.
    assert loss.item() == pytest.approx(((net.c - (x1 - x0)) ** 2).mean().item(), rel=1e-6)
    assert net.seen_s.min() >= 0 and net.seen_s.max() <= 1
    cold = FlowObjective("cold", FlowConfig(t0=0.9, draft_noise=0.5, coupling="minibatch_ot"))
    assert cold.path.t0 == 0.0 and cold.widener.draft_noise == 0.0


class _Const(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x, s):
        self.seen_s = s
        return self.c.expand_as(x)


def test_step_generators_are_distinct_and_reproducible():
    a = torch.rand(4, generator=step_generator(0, 0, 5))
    assert torch.equal(a, torch.rand(4, generator=step_generator(0, 0, 5)))
    for other in [(1, 0, 5), (0, 1, 5), (0, 0, 6)]:
        assert not torch.equal(a, torch.rand(4, generator=step_generator(*other)))


def paired_shards(folder, n_rows, sizes=(300, 300, 300)):
    """Shards whose drafts carry their partner row in column 1 (and in ``idx.npy``)."""
    rng = np.random.default_rng(0)
    urls = []
    for i, n in enumerate(sizes):
        idx = rng.integers(0, n_rows, size=n)
        x = np.stack([rng.normal(size=n), idx], axis=1).astype(np.float32)
        urls.append(str(folder / write_shard(folder, i, x, seed=i, block=16, idx=idx,
                                             pair="nearest").shard))
    return urls


@pytest.mark.parametrize("mode", ["cold", "warm", "paired"])
def test_a_restored_stream_continues_with_the_same_batches(tmp_path, mode):
    urls = []
    if mode == "warm":
        rng = np.random.default_rng(0)
        urls = [str(tmp_path / write_shard(tmp_path, i, rng.normal(size=(300, 2)), seed=i).shard)
                for i in range(3)]
    if mode == "paired":
        urls = paired_shards(tmp_path, 500)
    data = torch.randn(500, 2)

    def stream():
        return BatchStream("cold" if mode == "cold" else "warm", data, 16, rank=1,
                           world_size=2, seed=7, shard_urls=urls, shuffle_buffer=64,
                           paired=mode == "paired")

    whole = stream()
    batches = [next(whole) for _ in range(12)]
    first = stream()
    for _ in range(5):
        next(first)
    resumed = stream()
    resumed.load_state_dict(first.state_dict())
    for expected in batches[5:]:
        got = next(resumed)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert torch.equal(torch.rand(3, generator=got[2]), torch.rand(3, generator=expected[2]))
    assert not torch.equal(batches[0][1], batches[1][1])  # the data rows change per step
    other_rank = BatchStream("cold" if mode == "cold" else "warm", data, 16, rank=0,
                             world_size=2, seed=7, shard_urls=urls, shuffle_buffer=64,
                             paired=mode == "paired")
    assert not torch.equal(next(other_rank)[0], batches[0][0])


def test_a_paired_stream_returns_each_drafts_stored_partner(tmp_path):
    urls = paired_shards(tmp_path, 40, sizes=(100, 70, 130))
    data = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 2)  # row i is (i, i)
    stream = BatchStream("warm", data, 32, rank=0, world_size=1, seed=3, shard_urls=urls,
                         shuffle_buffer=50, paired=True)
    for _ in range(20):  # more than an epoch: shuffled and reread, still aligned
        source, x1, _ = next(stream)
        assert torch.equal(x1[:, 0], source[:, 1])  # the partner named inside the draft

    short = BatchStream("warm", data[:10], 32, rank=0, world_size=1, seed=3, shard_urls=urls,
                        paired=True)
    with pytest.raises(ValueError, match="training split has 10 rows"):
        for _ in range(5):
            next(short)
    with pytest.raises(ValueError, match="only warm"):
        BatchStream("cold", data, 8, rank=0, world_size=1, seed=0, paired=True)


def test_paired_objectives_keep_the_stored_pairs():
    from wsfm.train.discrete_objective import DiscreteObjective

    flow = FlowConfig(t0=0.9, coupling="minibatch_ot", draft_noise=0.0, sigma_min=0.0)
    x0 = torch.randn(64, 2)
    x1 = -x0  # far from OT: minibatch OT would reorder these
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(FlowObjective("warm", flow, paired=True).make_batch(x0, x1, gen).x1, x1)
    assert not torch.equal(FlowObjective("warm", flow).make_batch(x0, x1, gen).x1, x1)

    codes = torch.randint(0, 27, (16, 5)).float()
    partners = torch.randint(0, 27, (16, 5)).float()
    text = DiscreteObjective("warm", dataclasses.replace(flow, coupling="nearest"), 27,
                             paired=True)
    batch = text.make_batch(codes, partners, gen)
    assert torch.equal(batch.x0, codes.long()) and torch.equal(batch.x1, partners.long())


def test_a_restarted_worker_stops_at_once_after_a_divergence(tmp_path):
    from wsfm.config import DataConfig, ModelConfig
    from wsfm.train.loop import train_loop_per_worker
    from wsfm.train.monitor import DIVERGED, Divergence
    from wsfm.train.spec import TrainSpec

    (tmp_path / DIVERGED).write_text('{"step": 7, "message": "cold training diverged at 7"}')
    spec = TrainSpec(mode="cold", data=DataConfig(), flow=FlowConfig(), model=ModelConfig(),
                     train=TrainConfig(), dim=2, out_dir=str(tmp_path))
    with pytest.raises(Divergence, match="cold training diverged at 7"):
        train_loop_per_worker({"spec": spec, "run_dir": str(tmp_path / "ray")})


def test_divergence_names_the_first_bad_step_of_the_window_and_the_checkpoint_kept(tmp_path):
    from wsfm.train.checkpoint import POINTER
    from wsfm.train.monitor import DIVERGED, Divergence, check_divergence, global_losses

    window = dict(first_step=5, lrs=[1e-3, 2e-3, 3e-3], mode="warm", rank=0, world_size=1,
                  out_dir=tmp_path)
    check_divergence([1.0, 2.0, 3.0], **window)  # finite: nothing happens
    assert not (tmp_path / DIVERGED).exists()
    (tmp_path / POINTER).write_text('{"step": 4, "path": "/ckpt/step-000004"}')
    losses = global_losses(torch.tensor([1.0, float("nan"), float("inf")]), world_size=1)
    with pytest.raises(Divergence, match=r"the loss is nan at step 6 \(the first non-finite "
                                         r"loss of steps 5-7, checked at step 7; learning rate "
                                         r"0.002\); the last good checkpoint \(step 4, "
                                         r"/ckpt/step-000004\) is kept"):
        check_divergence(losses, **window)
    assert json.loads((tmp_path / DIVERGED).read_text())["step"] == 6


class _Elsewhere:
    """A ``TaskFiles`` whose inputs this node sees under another folder (a worker on
    another node: ``wsfm.taskfiles``)."""

    def __init__(self, stage_node: str, here: str):
        self.stage_node, self.here = stage_node, here

    def input(self, path):
        from pathlib import Path

        return Path(str(path).replace(self.stage_node, self.here))


def test_training_reads_the_prepared_data_as_its_node_sees_it(tmp_path):
    """With ``data_dir`` the workers train on the prepared dataset (read through the spec's
    files on another node), not on the config's source; without it, on the source."""
    import shutil

    from wsfm.config import DataConfig, ModelConfig
    from wsfm.data.datasets import load_dataset
    from wsfm.data.prepared import write_prepared
    from wsfm.train.loop import training_data
    from wsfm.train.spec import TrainSpec

    prepared_cfg, config = DataConfig(n_train=300, n_test=50), DataConfig(n_train=700, n_test=50)
    write_prepared(load_dataset(prepared_cfg), tmp_path / "stage-node" / "prepare_data")
    shutil.copytree(tmp_path / "stage-node", tmp_path / "this-node")
    spec = TrainSpec(mode="cold", data=config, flow=FlowConfig(), model=ModelConfig(),
                     train=TrainConfig(), dim=2, out_dir=str(tmp_path),
                     data_dir=str(tmp_path / "stage-node" / "prepare_data"),
                     files=_Elsewhere(str(tmp_path / "stage-node"), str(tmp_path / "this-node")))
    shutil.rmtree(tmp_path / "stage-node")  # only this node's copy is there to read
    assert len(training_data(spec).train) == 300
    assert len(training_data(dataclasses.replace(spec, data_dir="")).train) == 700


@pytest.mark.parametrize("mode", ["cold", "paired"])
def test_batches_drawn_from_the_prepared_split_in_place_are_those_drawn_from_memory(tmp_path,
                                                                                  mode):
    """The workers' rows stay in their memory-mapped shards (``training_set``): the same
    batches, step for step, as the split loaded into a tensor."""
    from wsfm.config import DataConfig, ModelConfig
    from wsfm.data.datasets import load_dataset
    from wsfm.data.prepared import RowTable, write_prepared
    from wsfm.train.loop import training_set
    from wsfm.train.spec import TrainSpec

    data_cfg = DataConfig(n_train=5000, n_test=50)
    write_prepared(load_dataset(data_cfg), tmp_path / "prepared", shard_bytes=2048 * 2 * 4)
    spec = TrainSpec(mode="cold", data=data_cfg, flow=FlowConfig(), model=ModelConfig(),
                     train=TrainConfig(), dim=2, out_dir=str(tmp_path),
                     data_dir=str(tmp_path / "prepared"))
    about, rows = training_set(spec)
    assert isinstance(rows, RowTable) and len(about.train) == 0 and about.dim == 2
    memory = torch.from_numpy(load_dataset(data_cfg).train)
    (tmp_path / "drafts").mkdir()
    urls = paired_shards(tmp_path / "drafts", 5000) if mode == "paired" else []
    streams = [BatchStream("warm" if mode == "paired" else "cold", data, 64, rank=0,
                           world_size=1, seed=5, shard_urls=urls, paired=mode == "paired")
               for data in (rows, memory)]
    for _ in range(10):
        a, b = (next(s) for s in streams)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[1].dtype == b[1].dtype
