"""MLflow adapter: the run tree, rank-0 training metrics and the registered pyfunc model.

One parent run per pipeline invocation, one child run per stage. The store defaults to a
SQLite file under the working folder (``MLFLOW_TRACKING_URI`` points elsewhere, a server say).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

__all__ = [
    "CHAMPION",
    "Tracker",
    "WSFMPyfunc",
    "flatten",
    "log_step_metrics",
    "publish_model",
    "tracking_uri",
]

CHAMPION = "champion"
_MAX_PARAM = 6000
_MAX_ARTIFACT_BYTES = 20 * 1024 * 1024  # big shard tars stay in the artifact store


def tracking_uri(home: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


class Tracker:
    """Creates and fills runs by id, so that any process can log to any run."""

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None = None):
        self.uri = uri
        self.client = MlflowClient(uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is not None:
            self.experiment_id = exp.experiment_id
        else:
            location = artifact_root.resolve().as_uri() if artifact_root and uri.startswith(
                "sqlite:") else None
            self.experiment_id = self.client.create_experiment(experiment,
                                                               artifact_location=location)

    def start_run(self, name: str, parent: str | None = None,
                  tags: dict[str, str] | None = None) -> str:
        tags = dict(tags or {})
        if parent:
            tags["mlflow.parentRunId"] = parent
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def log(self, run_id: str, params: dict[str, Any] | None = None,
            metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:_MAX_PARAM]) for k, v in flatten(params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    def log_files(self, run_id: str, folder: Path) -> None:
        """Log the stage's files, leaving out files too big to copy (shards)."""
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and path.stat().st_size <= _MAX_ARTIFACT_BYTES:
                rel = path.parent.relative_to(folder)
                self.client.log_artifact(run_id, str(path),
                                         None if str(rel) == "." else str(rel))

    def finish(self, run_id: str, ok: bool) -> None:
        status = RunStatus.FINISHED if ok else RunStatus.FAILED
        self.client.set_terminated(run_id, RunStatus.to_string(status))


def log_step_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int) -> None:
    now = int(time.time() * 1000)
    MlflowClient(uri).log_batch(run_id, metrics=[Metric(k, float(v), now, step)
                                                 for k, v in metrics.items()])


class WSFMPyfunc(mlflow.pyfunc.PythonModel):
    """Draft + refiner + t0 + solver; ``predict({"n": 16, "seed": 0, "steps": None})``."""

    def load_context(self, context) -> None:
        from wsfm.bundle import load_bundle

        self.sampler = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None) -> np.ndarray:
        request = _request(model_input)
        steps = request.get("steps")
        samples, _ = self.sampler.sample(int(request.get("n", 16)), int(request.get("seed", 0)),
                                         steps=None if steps is None else int(steps))
        return samples


def _request(model_input: Any) -> dict[str, Any]:
    if hasattr(model_input, "to_dict"):  # a DataFrame: one request per frame, first row
        records = model_input.to_dict(orient="records")
        if not records:
            raise ValueError("empty request")
        model_input = records[0]
    if not isinstance(model_input, dict):
        raise ValueError(f"expected a mapping like {{'n': 16}}, got {type(model_input).__name__}")
    unknown = set(model_input) - {"n", "seed", "steps"}
    if unknown:
        raise ValueError(f"unknown request keys {sorted(unknown)} (known: n, seed, steps)")
    return {k: v for k, v in model_input.items() if v is not None and v == v}  # drop NaN


def publish_model(uri: str, run_id: str, bundle: Path, model_name: str,
                  champion: bool) -> dict[str, str]:
    """Log ``bundle`` as a pyfunc model in ``run_id``, register it, maybe alias it."""
    import torch

    import wsfm

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=WSFMPyfunc(),
            artifacts={"bundle": str(bundle)},
            code_paths=[str(Path(wsfm.__file__).parent)],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy",
                              "scikit-learn", "mlflow"],
            registered_model_name=model_name,
        )
    version = str(info.registered_model_version)
    client = MlflowClient(uri)
    if champion:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    return {"model_name": model_name, "model_version": version,
            "model_alias": CHAMPION if champion else ""}
