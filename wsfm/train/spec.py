"""What one distributed training run needs: the record a stage hands to its runtime.

It lives here, not beside the stages, so that a Ray Train worker that unpickles it loads
only the training code and the config, not every stage module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from wsfm.config import DataConfig, FlowConfig, ModelConfig, TrainConfig
from wsfm.taskfiles import TaskFiles

__all__ = ["Mode", "TrainSpec"]

# The refiner (warm), the cold baseline, and the evaluation's trained rivals.
Mode = Literal["warm", "cold", "cold_ot", "reflow"]


@dataclass(frozen=True)
class TrainSpec:
    """Everything one distributed training run needs; picklable, paths absolute."""

    # cold_ot, reflow: the evaluation's rivals (wsfm.train.objective.FlowObjective)
    mode: Mode
    data: DataConfig
    flow: FlowConfig  # cold runs use t0 = 0 and ignore the rest
    model: ModelConfig
    train: TrainConfig
    dim: int
    out_dir: str  # rank 0 writes model.pt and train_summary.json here
    shard_urls: tuple[str, ...] = ()
    paired: bool = False  # the shards hold each draft's training partner (shards.pair)
    # How a worker on another node reads the shards and delivers rank 0's files into
    # out_dir (wsfm.taskfiles); None: out_dir and the shards are visible to every worker.
    files: TaskFiles | None = None
    stage: str = ""  # the stage it trains for, in progress lines ("": by mode)
    # A user's network (model.kind python): the weights of train.init_from, resolved by the
    # stage (a file, or a registered model through the runtime), carried to every worker.
    init_state: dict[str, Any] | None = None
    # The prepared dataset (prepare_data's folder; read through ``files`` on another node).
    # "": the config's source, loaded whole (benchmarks that train outside a pipeline).
    data_dir: str = ""

    @property
    def mode_stage(self) -> str:
        """The stage its mode trains for by default (the WSFM_FAULT drills' names)."""
        return "train_refiner" if self.mode == "warm" else "train_baseline"

    @property
    def label(self) -> str:
        return self.stage or self.mode_stage
