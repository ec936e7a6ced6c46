"""Checkpoints: every rank's DeepSpeed shard plus rank 0's run state.

One checkpoint, ``<storage>/<ray run>/step-000500/`` under Ray Train (merged by Ray from what
each rank reports) or ``<out_dir>/checkpoints/step-000500/`` in one process
(``wsfm.train.session``)::

    deepspeed/latest, deepspeed/state/   DeepSpeed: weights, every rank's optimizer partition,
                                         the LR scheduler
    trainer.json                         rank 0: step, samples seen, data position
    ema.pt                               rank 0: the EMA of the weights

Resuming goes through the session: under Ray Train ``ray.train.get_checkpoint()`` (Ray Train
restores it after a worker restart, and for a new ``fit()`` with the same run name and
storage); in one process the newest complete local folder. Once the session has committed the
checkpoint (every rank uploaded, Ray Train recorded it), rank 0 records it in the stage
folder's ``checkpoints.json``: the last complete checkpoint, for people and for error
messages; a restart resumes from it or from a later one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from wsfm.train.data import BatchStream
from wsfm.train.ema import EMA
from wsfm.train.engine import TAG, weights_only_loads
from wsfm.train.session import Session

__all__ = ["DEEPSPEED", "KEEP", "POINTER", "TrainState", "checkpoint_bytes", "checkpoint_name",
           "load_engine", "model_bytes", "read_pointer", "restore", "save"]

POINTER = "checkpoints.json"
DEEPSPEED = "deepspeed"  # DeepSpeed's folder inside a checkpoint
_STATE, _EMA = "trainer.json", "ema.pt"
KEEP = 2  # checkpoints Ray Train keeps per run (CheckpointConfig.num_to_keep)


def checkpoint_bytes(params: int, precision: str = "fp32") -> int:
    """At least the bytes of one checkpoint of a ``params``-parameter network: DeepSpeed's
    module states (the weights: 2 bytes each in bf16, else 4), its ZeRO optimizer states
    (the fp32 master copy and Adam's two moments, split over the ranks: 12) and the EMA
    (fp32: 4). Pickling and DeepSpeed's scripts add a few tens of kB."""
    return params * ((2 if precision == "bf16" else 4) + 12 + 4)


def model_bytes(params: int) -> int:
    """At least the bytes of a training stage's models: ``model.pt`` and ``model_raw.pt``,
    fp32."""
    return 2 * 4 * params


@dataclass
class TrainState:
    """Where the run is: optimizer steps done, global samples consumed, the recent loss."""

    step: int = 0
    samples: int = 0
    loss: float = float("nan")

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.samples = int(state["step"]), int(state["samples"])
        self.loss = float(state["loss"])


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def save(engine, state: TrainState, stream: BatchStream, ema: EMA | None, session: Session,
         *, metrics: dict[str, float], out_dir: Path) -> None:
    """Save and commit a checkpoint from every rank (a collective), then point to it."""
    name = checkpoint_name(state.step)
    with tempfile.TemporaryDirectory(prefix="wsfm-ckpt-", ignore_cleanup_errors=True) as tmp:
        engine.save_checkpoint(os.path.join(tmp, DEEPSPEED), tag=TAG)
        if session.rank == 0:
            trainer = {**state.state_dict(), "data": stream.state_dict()}
            Path(tmp, _STATE).write_text(json.dumps(trainer, indent=2))
            if ema is not None:
                torch.save(ema.state_dict(), os.path.join(tmp, _EMA))
        path = session.commit(tmp, name, {**metrics, "step": state.step})
    if session.rank == 0:
        _write_pointer(out_dir, {"step": state.step, "path": path})


def restore(folder: str, engine, state: TrainState, stream: BatchStream,
            ema: EMA | None) -> None:
    """Load the checkpoint in ``folder`` into the engine, the run state, the data stream and
    the EMA (weights-only unpickling throughout: ``load_engine``)."""
    trainer = json.loads(Path(folder, _STATE).read_text())
    load_engine(engine, os.path.join(folder, DEEPSPEED))
    if ema is not None:
        ema.load_state_dict(torch.load(os.path.join(folder, _EMA), map_location="cpu",
                                       weights_only=True))
    state.load_state_dict(trainer)
    stream.load_state_dict(trainer["data"])


def load_engine(engine, folder: str) -> None:
    """Load a DeepSpeed checkpoint (weights, optimizer, schedule) with weights-only
    unpickling: a checkpoint carrying a pickle payload is refused, the payload never runs."""
    with weights_only_loads():
        path, _ = engine.load_checkpoint(folder, tag=TAG, load_optimizer_states=True,
                                         load_lr_scheduler_states=True)
    if path is None:
        raise FileNotFoundError(f"no DeepSpeed checkpoint in {folder}")


def read_pointer(out_dir: Path) -> dict[str, Any] | None:
    """The last complete checkpoint recorded in a stage folder, or None."""
    try:
        return json.loads((Path(out_dir) / POINTER).read_text())
    except FileNotFoundError:
        return None


def _write_pointer(out_dir: Path, entry: dict[str, Any]) -> None:
    path = Path(out_dir) / POINTER
    tmp = path.with_name(f".{POINTER}.tmp")
    tmp.write_text(json.dumps(entry, indent=2))
    os.replace(tmp, path)
