"""Launch :func:`wsfm.train.loop.train_loop_per_worker` as a Ray Train ``TorchTrainer`` run."""

from __future__ import annotations

import json
from pathlib import Path

from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from wsfm.stages.base import TrainSpec
from wsfm.train.loop import train_loop_per_worker

__all__ = ["fit"]


def fit(spec: TrainSpec, *, storage_path: str, run_name: str,
        tracking: dict[str, str] | None = None) -> dict[str, float]:
    """Train on ``spec.train.num_workers`` Ray workers and return rank 0's summary.

    Args:
        spec: the run; rank 0 writes ``model.pt`` into ``spec.out_dir``.
        storage_path: Ray Train's storage folder (absolute; shared on a cluster).
        run_name: Ray Train run name (unique per stage output).
        tracking: ``{"uri", "run_id"}`` of the MLflow run that rank 0 logs to.
    """
    backend = "nccl" if spec.train.use_gpu else "gloo"
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec, "tracking": tracking},
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=spec.train.num_workers,
                                     use_gpu=spec.train.use_gpu),
        run_config=RunConfig(name=run_name, storage_path=storage_path),
    )
    trainer.fit()
    summary = Path(spec.out_dir) / "train_summary.json"
    if not summary.is_file():
        raise RuntimeError(f"training finished without writing {summary}")
    return json.loads(summary.read_text())
