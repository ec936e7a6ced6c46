"""Shared fixtures: a real local Ray runtime and tiny pipeline configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from wsfm.config import load_pipeline

# Small models on 2 shared cores: one intra-op thread avoids oversubscription stalls next to
# the Ray workers that the pipeline tests start.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
TOY2D = ROOT / "pipelines" / "toy2d.yaml"


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray runtime (2 CPUs) for every test that needs it."""
    import os

    import ray

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny_config():
    """The toy2d smoke profile, made smaller still for stage tests."""
    cfg = load_pipeline(TOY2D, profile="smoke")
    return dataclasses.replace(
        cfg,
        name="toy2d-tiny",
        data=dataclasses.replace(cfg.data, n_train=2000, n_test=500),
        shards=dataclasses.replace(cfg.shards, num_shards=3, per_shard=300, pair="none"),
        train=dataclasses.replace(cfg.train, steps=20, batch_size=64, warmup_steps=5,
                                  log_every=10),
        evaluate=dataclasses.replace(cfg.evaluate, n_samples=300, seeds=2, nfe_grid=[1, 2]),
    )
