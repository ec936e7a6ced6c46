"""train_refiner and train_baseline on tiny inputs, with real Ray Train + DeepSpeed workers."""

import dataclasses
import json

import torch
from mlflow.tracking import MlflowClient

from tests.helpers import context
from wsfm.bundle import load_net
from wsfm.components import net_spec
from wsfm.data.datasets import load_dataset
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.stages import get_stage
from wsfm.stages.generate_drafts import generate_drafts
from wsfm.stages.train import train_baseline, train_refiner
from wsfm.tracking import Tracker


def test_training_stages_are_resumable():
    assert get_stage("train_refiner").resumable and get_stage("train_baseline").resumable


def test_refiner_trains_on_two_workers_and_loads_into_plain_torch(tmp_path, tiny_config,
                                                                  draft_dir, ray_local):
    # Paired shards: the refiner reads each draft's stored OT partner (shards.pair).
    tiny_config = dataclasses.replace(tiny_config, shards=dataclasses.replace(
        tiny_config.shards, pair="minibatch_ot"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "t", tmp_path / "mlartifacts")
    run_id = tracker.start_run("train_refiner")
    runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="refiner",
                         tracking={"uri": uri, "run_id": run_id})
    shards = tmp_path / "shards"
    generate_drafts(context(tiny_config, shards, runtime, pretrain_draft=draft_dir))

    out = tmp_path / "refiner"
    result = train_refiner(context(tiny_config, out, runtime, generate_drafts=shards))

    assert result.metrics["paired"] == 1.0
    assert result.metrics["steps"] == tiny_config.train.steps
    assert result.metrics["world_size"] == 2
    assert all(isinstance(v, float) for v in result.metrics.values())
    ds = json.loads((out / "deepspeed_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == tiny_config.train.zero_stage
    assert ds["train_micro_batch_size_per_gpu"] * 2 == tiny_config.train.batch_size
    spec = net_spec(tiny_config.model, load_dataset(tiny_config.data))
    for weights in ("model.pt", "model_raw.pt"):
        net = load_net(spec, 2, out / weights)
        assert net(torch.zeros(4, 2), torch.full((4,), 0.5)).shape == (4, 2)
    # Rank 0 alone logged, every log_every steps.
    history = MlflowClient(uri).get_metric_history(run_id, "train/loss")
    every = tiny_config.train.log_every
    assert [m.step for m in history] == list(range(every, tiny_config.train.steps + 1, every))


def test_baseline_trains_from_noise_with_bf16_and_zero3(tmp_path, tiny_config, ray_local):
    cfg = dataclasses.replace(tiny_config, train=dataclasses.replace(
        tiny_config.train, num_workers=1, zero_stage=3, precision="bf16", steps=10,
        ema_decay=0.0))
    runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="baseline")
    out = tmp_path / "baseline"
    result = train_baseline(context(cfg, out, runtime))
    assert result.metrics["world_size"] == 1 and result.metrics["steps"] == 10
    assert torch.isfinite(torch.tensor(result.metrics["final_loss"]))
    raw = torch.load(out / "model_raw.pt", weights_only=True)  # zero_to_fp32's master weights
    ema = torch.load(out / "model.pt", weights_only=True)
    assert set(raw) == set(load_net(net_spec(cfg.model, load_dataset(cfg.data)), 2,
                                    out / "model_raw.pt").state_dict())
    # With ema_decay 0 the "average" is the last bf16 weights (gathered from the ZeRO-3
    # partitions): exactly the fp32 master weights rounded to bf16.
    for key, master in raw.items():
        assert master.dtype == torch.float32 and ema[key].dtype == torch.float32
        assert torch.equal(ema[key], master.to(torch.bfloat16).float()), key
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)
    assert json.loads((out / "deepspeed_config.json").read_text())["bf16"]["enabled"]
