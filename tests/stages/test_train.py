"""train_refiner and train_baseline on tiny inputs, with real Ray Train + DeepSpeed workers."""

import json

import torch
from mlflow.tracking import MlflowClient

from wsfm.bundle import load_net
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.stages.generate_drafts import generate_drafts
from wsfm.stages.train import train_baseline, train_refiner
from wsfm.tracking import Tracker

from tests.stages.conftest import context


def test_refiner_trains_on_two_workers_and_loads_into_plain_torch(tmp_path, tiny_config,
                                                                  draft_dir, ray_local):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "t", tmp_path / "mlartifacts")
    run_id = tracker.start_run("train_refiner")
    runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="refiner",
                         tracking={"uri": uri, "run_id": run_id})
    shards = tmp_path / "shards"
    generate_drafts(context(tiny_config, shards, runtime, pretrain_draft=draft_dir))

    out = tmp_path / "refiner"
    result = train_refiner(context(tiny_config, out, runtime, generate_drafts=shards))

    assert result.metrics["steps"] == tiny_config.train.steps
    assert result.metrics["world_size"] == 2
    ds = json.loads((out / "deepspeed_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == tiny_config.train.zero_stage
    assert ds["train_micro_batch_size_per_gpu"] * 2 == tiny_config.train.batch_size
    net = load_net(tiny_config.model, 2, out / "model.pt")
    assert net(torch.zeros(4, 2), torch.full((4,), 0.5)).shape == (4, 2)
    # Rank 0 alone logged, every log_every steps.
    history = MlflowClient(uri).get_metric_history(run_id, "train/loss")
    every = tiny_config.train.log_every
    assert [m.step for m in history] == list(range(every, tiny_config.train.steps + 1, every))


def test_baseline_trains_from_noise_with_one_worker(tmp_path, tiny_config, ray_local):
    import dataclasses

    cfg = dataclasses.replace(tiny_config, train=dataclasses.replace(
        tiny_config.train, num_workers=1, zero_stage=0, steps=10))
    runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="baseline")
    out = tmp_path / "baseline"
    result = train_baseline(context(cfg, out, runtime))
    assert result.metrics["world_size"] == 1 and result.metrics["steps"] == 10
    assert torch.isfinite(torch.tensor(result.metrics["final_loss"]))
    assert set(torch.load(out / "model.pt", weights_only=True)) == set(
        load_net(cfg.model, 2, out / "model.pt").state_dict())
