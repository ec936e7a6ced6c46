"""Launch :func:`wsfm.train.loop.train_loop_per_worker` as a Ray Train ``TorchTrainer`` run.

Resuming. Ray Train (V2) restores a run's checkpoints in two cases, and the loop picks the
latest up with ``ray.train.get_checkpoint()``:

- a worker dies (or raises): the worker group restarts inside the same ``fit()``, up to
  ``train.max_failures`` times (``FailureConfig``);
- the driver dies: a new ``fit()`` with the same ``RunConfig(name, storage_path)`` finds the
  run's checkpoint-manager snapshot in storage.

The Ray run name lives in the stage folder (``ray_run.json``): the orchestrator keeps a
resumable stage's partial folder after a failure, so a rerun continues the same Ray run,
while a fresh folder (a first run, ``--force`` after success) starts a new one instead of
silently restoring a finished run. A run whose snapshot cannot be read (cut short by a full
disk, say: Ray Train would fail to start on it) is not continued: a new run starts, with a
warning (:func:`ray_run_name`).

Where rank 0 writes. The workers may run on nodes that do not see the stage folder (an
object-store root, several nodes, no shared mount): ``spec.files`` (``wsfm.taskfiles``) then
gives each worker the shards as its node sees them and rank 0 a scratch folder whose files it
delivers at the end (and on failure: the divergence marker); :func:`fit` collects them into
the stage folder before it reads ``train_summary.json``.
"""

from __future__ import annotations

import json
import tempfile
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
from ray.train.torch import TorchConfig, TorchTrainer

from wsfm.components import net_spec
from wsfm.models import build_model
from wsfm.orchestrate.storage import ray_storage
from wsfm.space import require_space
from wsfm.taskfiles import LocalFiles
from wsfm.train.checkpoint import KEEP, POINTER, checkpoint_bytes, model_bytes
from wsfm.train.loop import train_loop_per_worker, training_data
from wsfm.train.monitor import DIVERGED, Divergence
from wsfm.train.spec import TrainSpec

__all__ = ["RAY_RUN", "SNAPSHOT", "fit", "ray_run_name"]

RAY_RUN = "ray_run.json"
SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train V2's record of a run's checkpoints


def ray_run_name(out_dir: Path, run_name: str, storage_path: str) -> str:
    """The Ray run this stage folder continues, or a new one (recorded in ``ray_run.json``):
    new when there is none, when the storage moved, or when the run's snapshot is damaged."""
    record = Path(out_dir) / RAY_RUN
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved["storage_path"] == storage_path:
            damage = _damaged_snapshot(storage_path, saved["name"])
            if damage is None:
                return saved["name"]
            warnings.warn(f"the checkpoint record of Ray run {saved['name']} cannot be read "
                          f"({damage}); training starts over in a new run", stacklevel=2)
    name = f"{run_name}-{uuid.uuid4().hex[:8]}"
    (Path(out_dir) / POINTER).unlink(missing_ok=True)  # it would point into another run
    record.write_text(json.dumps({"name": name, "storage_path": storage_path}, indent=2))
    return name


def _damaged_snapshot(storage_path: str, name: str) -> str | None:
    """Why the run's snapshot cannot be read (None: it can, or there is none yet)."""
    import pyarrow.fs as pafs

    filesystem, root = ray_storage(storage_path)
    fs = filesystem or pafs.LocalFileSystem()
    path = f"{root.rstrip('/')}/{name}/{SNAPSHOT}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    try:
        with fs.open_input_stream(path) as stream:
            json.loads(stream.read().decode())
    except (ValueError, OSError) as exc:
        return f"{SNAPSHOT}: {exc}"
    return None


def fit(spec: TrainSpec, *, storage_path: str, run_name: str,
        tracking: dict[str, str] | None = None,
        hooks: Sequence[Callable[[int, int], None]] = ()) -> dict[str, float]:
    """Train on ``spec.train.num_workers`` Ray workers and return rank 0's summary.

    Args:
        spec: the run; rank 0 writes ``model.pt`` and the rest into ``spec.out_dir``.
        storage_path: Ray Train's storage: an absolute folder (shared on a cluster) or a URI
            (``s3://bucket/prefix/ray``: the artifact root's, so checkpoints outlive a node).
        run_name: the stem of the Ray Train run name (unique per stage output).
        tracking: ``{"uri", "run_id"}`` of the MLflow run that rank 0 logs to.
        hooks: ``hook(rank, step)`` called on every worker after each step
            (``wsfm.train.faults``).

    Raises:
        Divergence: the loss became NaN or inf (the message names the step and the
            checkpoint kept).
    """
    tc, out = spec.train, Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = spec.files or LocalFiles(str(out))
    name = ray_run_name(out, run_name, storage_path)
    _require_space(spec, f"{storage_path.rstrip('/')}/{name}")
    filesystem, path = ray_storage(storage_path)  # an S3 endpoint from the environment
    (out / DIVERGED).unlink(missing_ok=True)  # a new attempt may try again,
    files.remove(DIVERGED)  # and its workers on other nodes must not fetch an old marker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec, "tracking": tracking, "hooks": tuple(hooks),
                           "run_dir": f"{storage_path.rstrip('/')}/{name}"},
        torch_config=TorchConfig(backend="nccl" if tc.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu),
        run_config=RunConfig(name=name, storage_path=path, storage_filesystem=filesystem,
                             checkpoint_config=CheckpointConfig(num_to_keep=KEEP),
                             failure_config=FailureConfig(max_failures=tc.max_failures)),
    )
    try:
        try:
            trainer.fit()
        finally:
            files.collect()  # what rank 0 delivered from another node
    except TrainingFailedError as exc:
        diverged = out / DIVERGED
        if diverged.is_file():
            raise Divergence(json.loads(diverged.read_text())["message"]) from exc
        raise
    summary = out / "train_summary.json"
    if not summary.is_file():
        raise RuntimeError(f"training finished without writing {summary}")
    return json.loads(summary.read_text())


def _require_space(spec: TrainSpec, run_dir: str) -> None:
    """Refuse before any worker starts when the run's checkpoints (``KEEP`` of them, and the
    next one written before the oldest goes; what the run folder holds already counts), one
    more in each rank's temporary folder, or the models do not fit (``wsfm.space``)."""
    data = training_data(spec, rows=False)  # the network's size needs no sample
    kwargs = net_spec(spec.model, data)
    net = build_model(kwargs.pop("kind"), dim=data.dim, **kwargs)
    params = sum(p.numel() for p in net.parameters())
    one = checkpoint_bytes(params, spec.train.precision)
    held = 0 if "://" in run_dir or not Path(run_dir).is_dir() else sum(
        p.stat().st_size for p in Path(run_dir).rglob("*") if p.is_file())
    require_space({run_dir: (KEEP + 1) * one - held, spec.out_dir: model_bytes(params),
                   tempfile.gettempdir(): one},
                  f"{spec.label} ({params:,} parameters, {KEEP} checkpoints kept)")

