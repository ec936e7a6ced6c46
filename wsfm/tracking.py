"""MLflow adapter: the run tree, rank-0 training metrics and the registered pyfunc model
(``wsfm/serving.py``, logged as code) with the champion rule of ``wsfm.registry``.

One parent run per pipeline invocation, one child run per stage. The store defaults to a
SQLite file under the working folder (``MLFLOW_TRACKING_URI`` points elsewhere, a server say).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema, TensorSpec

from wsfm.registry import Score, decide
from wsfm.stages.base import ModelRelease

__all__ = [
    "CHAMPION",
    "Tracker",
    "champion_score",
    "log_model",
    "model_signature",
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


def model_signature(settings) -> ModelSignature:
    """The request table (``wsfm.serving``) and the answer's shape for this bundle's kind."""
    inputs = Schema([ColSpec("long", "n"), ColSpec("long", "seed"),
                     ColSpec("double", "t0", required=False),
                     ColSpec("long", "steps", required=False),
                     ColSpec("string", "method", required=False)])
    if settings.kind == "text":
        outputs = Schema([ColSpec("string")])
    else:
        shape = settings.shape if settings.kind == "image" else (settings.dim,)
        outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *shape))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _requirements() -> list[str]:
    """What the model needs beyond the ``wsfm`` package itself (installed beside it)."""
    import pandas
    import torch

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}", f"pandas=={pandas.__version__}", "scikit-learn"]


def log_model(uri: str, run_id: str, bundle: Path, model_name: str):
    """Log ``bundle`` as a models-from-code pyfunc (``wsfm/serving.py``: nothing pickled)
    with its signature and an input example, and register it as ``model_name``."""
    import pandas as pd

    from wsfm import serving
    from wsfm.bundle import read_settings

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # MLflow 3.17 itself compares the example's column index with a range() when it
        # writes the example (mlflow/models/utils.py), which pandas >= 3 deprecates; nothing
        # in our call can avoid it.
        warnings.filterwarnings("ignore", message="Operation with range is deprecated",
                                module=r"mlflow\.models\.utils")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=serving.__file__,
            artifacts={"bundle": str(bundle)},
            signature=model_signature(read_settings(bundle)),
            input_example=pd.DataFrame({"n": [4], "seed": [0]}),
            pip_requirements=_requirements(),
            registered_model_name=model_name,
        )


def champion_score(client: MlflowClient, name: str) -> tuple[str | None, Score | None]:
    """The current champion's version and recorded score (None, None without a champion)."""
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None, None
        raise
    return str(version.version), Score.from_tags(version.tags)


def publish_model(uri: str, run_id: str, release: ModelRelease) -> dict[str, str]:
    """Log and register ``release``; move ``champion`` to it when ``wsfm.registry.decide``
    says so. The score, the decision and the numbers behind it are tagged on the version."""
    client = MlflowClient(uri)
    previous, previous_score = champion_score(client, release.name)
    info = log_model(uri, run_id, release.bundle, release.name)
    version = str(info.registered_model_version)
    decision = decide(release.score, release.gates_passed, previous_score, previous)
    tags = {**release.tags, **(release.score.tags() if release.score else {}),
            "wsfm.gates_passed": str(release.gates_passed).lower(),
            "wsfm.decision": "promoted" if decision.promote else "kept",
            "wsfm.decision_reason": decision.reason,
            "wsfm.previous_champion": previous or ""}
    if previous_score is not None:
        tags.update(previous_score.tags("wsfm.previous_"))
    for key, value in tags.items():
        client.set_model_version_tag(release.name, version, key, value)
    if decision.promote:
        client.set_registered_model_alias(release.name, CHAMPION, version)
    return {"model_name": release.name, "model_version": version,
            "model_alias": CHAMPION if decision.promote else "",
            "champion_decision": decision.reason}
