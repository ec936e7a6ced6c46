"""MLflow adapter: the run tree, rank-0 training metrics and the registered pyfunc model
(``wsfm/serving.py``, logged as code) with the champion rule of ``wsfm.champion``.

One parent run per pipeline invocation (git state, pipeline YAML, resolved config, the
evaluation's headline numbers and plots), one child run per stage (params, metrics, small
files; shards and checkpoints as links; system metrics and the drafts dataset input for the
training stages). The store defaults to a SQLite file under the working folder
(``MLFLOW_TRACKING_URI`` points elsewhere, a server say: :func:`check_tracking_server`).
Credentials stay in the environment (``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``); nothing
here logs or prints them.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema, TensorSpec

import mlflow
from wsfm.champion import Score, decide
from wsfm.config import flatten
from wsfm.errors import UserError
from wsfm.space import says_disk_full
from wsfm.train.metrics_log import read_step_metrics

if TYPE_CHECKING:
    from wsfm.stages.base import ModelRelease

__all__ = [
    "CHAMPION",
    "Tracker",
    "TrackingLost",
    "champion_score",
    "check_tracking_server",
    "flatten",
    "git_state",
    "log_manifest_input",
    "log_model",
    "log_step_metrics",
    "model_signature",
    "publish_model",
    "redact",
    "registered_weights",
    "server_answers",
    "start_system_metrics",
    "tracking_uri",
]

CHAMPION = "champion"
_MAX_PARAM = 6000
# Outputs logged as links (``links.json``: where they live, their size), not copied: shards,
# training checkpoints and anything big. They already sit in the artifact store.
_LINK_BYTES = 5 * 1024 * 1024
_LINK_PATTERNS = ("*.tar", "model_raw.pt", "checkpoint*", "*.ckpt")
SYSTEM_METRICS_STAGES = ("train_refiner", "train_baseline")
DRAFTS_STAGE = "generate_drafts"  # its manifest is the dataset input of train_refiner
HEADLINE = ("cold_quality", "warm_quality", "draft_quality", "reference", "speedup_nfe",
            "speedup_wall")


class TrackingLost(UserError):
    """The tracking store stopped taking writes in the middle of a run: a server stopped
    answering (it answered at the start: :func:`check_tracking_server`), or a local store's
    disk filled up (``full``). The message names the store and what was being logged; the
    runner adds what was kept."""

    def __init__(self, uri: str, what: str, cause: BaseException | None = None,
                 full: bool = False):
        self.uri, self.what, self.full = redact(uri), what, full
        why = f": {type(cause).__name__}" if cause is not None else ""
        super().__init__(
            f"MLflow tracking store {self.uri} (MLFLOW_TRACKING_URI) cannot be written, its "
            f"disk is full, while {what}" if full else
            f"MLflow tracking server {self.uri} (MLFLOW_TRACKING_URI) stopped answering while "
            f"{what}{why}")


def server_answers(uri: str, timeout: float = 10.0) -> bool:
    """Whether an HTTP tracking server answers at all now (any HTTP status counts); a local
    store always does."""
    import requests

    if not uri.startswith(("http://", "https://")):
        return True
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException:
        return False
    return True


def _guarded(what: str):
    """Method decorator: a failure of a tracking call while the server does not answer, or
    on a full disk, becomes :class:`TrackingLost` (``what``: what was being logged, ``{0}``:
    the first argument after the run id, a stage name say); any other failure stays as it
    is."""
    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except TrackingLost:
                raise
            except Exception as exc:
                full = says_disk_full(exc)
                if not full and server_answers(self.uri):
                    raise
                label = self.labels.get(str(args[0]), str(args[0])) if args else ""
                raise TrackingLost(self.uri, what.format(label), exc, full=full) from exc
        return call
    return wrap


def tracking_uri(home: Path) -> str:
    local = f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"
    return os.environ.get("MLFLOW_TRACKING_URI") or local


class Tracker:
    """Creates and fills runs by id, so that any process can log to any run."""

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None = None):
        self.uri = uri
        self.client = MlflowClient(uri)
        self._monitors: dict[str, Any] = {}  # run id -> its system metrics monitor
        self.labels: dict[str, str] = {}  # run id -> what it is, for TrackingLost messages
        exp = self.client.get_experiment_by_name(experiment)
        if exp is not None:
            self.experiment_id = exp.experiment_id
        else:
            location = artifact_root.resolve().as_uri() if artifact_root and uri.startswith(
                "sqlite:") else None
            self.experiment_id = self.client.create_experiment(experiment,
                                                               artifact_location=location)

    @_guarded("starting the run of {0}")
    def start_run(self, name: str, parent: str | None = None,
                  tags: dict[str, str] | None = None) -> str:
        tags = dict(tags or {})
        if parent:
            tags["mlflow.parentRunId"] = parent
        run_id = self.client.create_run(self.experiment_id, run_name=name,
                                        tags=tags).info.run_id
        self.labels[run_id] = name if parent else f"the pipeline run {name}"
        return run_id

    @_guarded("logging {0}")
    def log(self, run_id: str, params: dict[str, Any] | None = None,
            metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:_MAX_PARAM]) for k, v in flatten(params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    @_guarded("logging the files of {0}")
    def log_files(self, run_id: str, folder: Path) -> None:
        """Log the stage's small files; big ones (shards, checkpoints) as links in
        ``links.json`` (``{relative path: {"uri", "bytes"}}``), not copied."""
        folder = Path(folder)
        links = {}
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(folder)
            if _is_large(rel, path.stat().st_size):
                links[str(rel)] = {"uri": path.resolve().as_uri(), "bytes": path.stat().st_size}
            else:
                self.client.log_artifact(run_id, str(path),
                                         None if str(rel.parent) == "." else str(rel.parent))
        if links:
            self.client.log_dict(run_id, links, "links.json")
            self.log(run_id, tags={"wsfm.linked_files": str(len(links))})

    @_guarded("ending the run of {0}")
    def finish(self, run_id: str, ok: bool) -> None:
        monitor = self._monitors.pop(run_id, None)
        status = RunStatus.FINISHED if ok else RunStatus.FAILED
        self.client.set_terminated(run_id, RunStatus.to_string(status))
        if monitor is not None:
            monitor.finish()

    def abandon(self) -> None:
        """The server is gone: stop the system-metrics threads without waiting on them."""
        for monitor in self._monitors.values():
            monitor._shutdown_event.set()
        self._monitors.clear()

    @_guarded("logging {0}")
    def log_stage(self, run_id: str, record: dict[str, Any], folder: Path) -> None:
        """A finished stage's run: its record's params, metrics and tags, its files, and a
        training stage's step metrics from ``train_metrics.jsonl`` with their own timestamps
        (what rank 0 could not send; resent ones are duplicates, which MLflow ignores)."""
        self.log(run_id, params=record.get("params"), metrics=record.get("metrics", {}),
                 tags=record.get("tags"))
        self.log_files(run_id, folder)
        self.log_step_history(run_id, folder)

    @_guarded("logging the step metrics of {0}")
    def log_step_history(self, run_id: str, folder: Path) -> int:
        """Log the records of ``train_metrics.jsonl`` in ``folder``; returns how many."""
        records = read_step_metrics(Path(folder))
        metrics = [Metric(k, float(v), r["timestamp"], r["step"]) for r in records
                   for k, v in r["metrics"].items()]
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 per batch
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])
        return len(records)

    @_guarded("logging the source of {0}")
    def log_source(self, run_id: str, pipeline_file: str | Path, config: Any) -> None:
        """The parent run's provenance: git commit and dirty flag of the code that ran, the
        pipeline YAML (artifact ``pipeline/``) and the resolved config (``config.json``)."""
        from wsfm.config import to_dict

        self.log(run_id, tags=git_state(Path(__file__).parent))
        if pipeline_file and Path(pipeline_file).is_file():
            self.client.log_artifact(run_id, str(pipeline_file), "pipeline")
        self.client.log_dict(run_id, to_dict(config), "config.json")

    @_guarded("logging the datasets of {0}")
    def log_datasets(self, run_id: str, data: Any, prepared: Path) -> None:
        """The run's data as MLflow dataset inputs: the training split (context
        ``training``) and the held-out split (``evaluation``) that ``prepare_data`` wrote
        into ``prepared``, each with its shard manifest as the profile and the manifest's
        sha256 as the digest (the shards are byte-reproducible: the same data and seed give
        the same digest), so that the runs table shows which data a run used. Reads the
        manifests, not the rows."""
        what = data.path or data.urls or (data.name if data.kind == "toy2d" else data.kind)
        for split, context in (("train", "training"), ("test", "evaluation")):
            log_manifest_input(self.client, run_id, Path(prepared) / split,
                               name=f"{data.kind}:{what}:{split}", context=context)

    @_guarded("starting {0}")
    def stage_started(self, run_id: str, stage: str, inputs: dict[str, str]) -> None:
        """A stage's run before its work: system metrics for the training stages, and the
        draft manifest as the dataset input of the stage that reads the drafts."""
        if stage in SYSTEM_METRICS_STAGES:
            self._monitors[run_id] = start_system_metrics(self.uri, run_id)
        if DRAFTS_STAGE in inputs:
            log_manifest_input(self.client, run_id, Path(inputs[DRAFTS_STAGE]))

    @_guarded("logging the headline of {0}")
    def log_headline(self, run_id: str, evaluated: Path | None) -> None:
        """The evaluation's headline numbers as the parent run's metrics and its plots as
        images, so that the runs table compares pipelines at a glance."""
        report_file = Path(evaluated or "") / "metrics.json"
        if evaluated is None or not report_file.is_file():
            return
        from wsfm.report import EvalReport

        report = EvalReport.from_dict(json.loads(report_file.read_text()))
        draft = next((r.quality for r in report.rows if r.method == "draft"), None)
        numbers: dict[str, Any] = {  # the report's own rule picks the rows
            "cold_quality": report.cold_reference().quality,
            "warm_quality": report.shipped().quality, "draft_quality": draft,
            "reference": report.reference, "speedup_nfe": report.speedup_nfe,
            "speedup_wall": report.speedup_wall}
        self.log(run_id, metrics={f"eval/{k}": float(numbers[k]) for k in HEADLINE
                                  if isinstance(numbers.get(k), (int, float))},
                 tags={"wsfm.metric": report.metric})
        for name in ("samples.png", "quality_vs_nfe.png"):
            if (Path(evaluated) / name).is_file():
                from PIL import Image

                with Image.open(Path(evaluated) / name) as image:
                    self.client.log_image(run_id, image.convert("RGB"), f"plots/{name}")


def _is_large(rel: Path, size: int) -> bool:
    """A file to link rather than copy: big, or a shard or checkpoint (by name or folder)."""
    from fnmatch import fnmatch

    return size > _LINK_BYTES or any(fnmatch(part, pattern) for part in rel.parts
                                     for pattern in _LINK_PATTERNS)


def git_state(path: Path) -> dict[str, str]:
    """``mlflow.source.git.commit`` and ``wsfm.git_dirty`` of the checkout holding ``path``
    ("unknown" outside a git checkout, an installed package say)."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"mlflow.source.git.commit": "unknown", "wsfm.git_dirty": "unknown"}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"mlflow.source.git.commit": commit,
            "wsfm.git_dirty": "unknown" if dirty is None else str(bool(dirty)).lower()}


def start_system_metrics(uri: str, run_id: str):
    """CPU, memory, disk, network (and GPU where present) of this machine into ``run_id``
    every few seconds, until the run ends (``SystemMetricsMonitor.finish``)."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=2, tracking_uri=uri)
    monitor.start()
    return monitor


def log_manifest_input(client: MlflowClient, run_id: str, drafts: Path, *, name: str = "drafts",
                       context: str = "training") -> None:
    """A shard folder's manifest (the drafts', or a prepared split's) as an MLflow dataset
    input of ``run_id`` named ``name``; its digest is the manifest file's sha256 (first 32 hex
    digits: ``sha256sum manifest.parquet``)."""
    import hashlib

    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    manifest = drafts / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{drafts} has no manifest.parquet to log as the {name} input")
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:32]
    dataset = mlflow.data.from_pandas(pd.read_parquet(manifest),  # type: ignore[attr-defined]
                                      source=manifest.resolve().as_uri(), name=name,
                                      digest=digest)
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[
        InputTag("mlflow.data.context", context)])])


def log_step_metrics(uri: str, run_id: str, metrics: dict[str, float], step: int,
                     timestamp: int | None = None) -> None:
    now = int(time.time() * 1000) if timestamp is None else timestamp
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
    """Log and register ``release``; move ``champion`` to it when ``wsfm.champion.decide``
    says so. The score, the decision and the numbers behind it are tagged on the version."""
    client = MlflowClient(uri)
    previous, previous_score = champion_score(client, release.name)
    info = log_model(uri, run_id, release.bundle, release.name)
    if release.metrics:  # on the logged model itself (and its run): what it ships
        mlflow.log_metrics(release.metrics, run_id=run_id, model_id=info.model_id)
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


def redact(uri: str) -> str:
    """``uri`` without any ``user:password@`` part, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_tracking_server(uri: str, timeout: float = 15.0) -> None:
    """For an HTTP tracking URI: one request with the credentials of
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``; a server that is down or
    refuses them raises ``wsfm.errors.UserError`` (one line, no credential in it). A local
    store (``sqlite:``, a folder) needs no check."""
    import requests

    from wsfm.errors import UserError

    if not uri.startswith(("http://", "https://")):
        return
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    auth = (user, password) if user and password else None
    shown = redact(uri)
    try:
        reply = requests.get(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
                             params={"max_results": 1}, auth=auth, timeout=timeout)
    except requests.RequestException as exc:
        raise UserError(f"MLflow tracking server {shown} (MLFLOW_TRACKING_URI) cannot be "
                        f"reached: {type(exc).__name__}; start it, or unset "
                        "MLFLOW_TRACKING_URI to use the local store") from None
    if reply.status_code in (401, 403):
        who = f"user {user!r}" if user else "no credentials"
        raise UserError(f"MLflow tracking server {shown} refused {who} (HTTP "
                        f"{reply.status_code}): set MLFLOW_TRACKING_USERNAME and "
                        "MLFLOW_TRACKING_PASSWORD to an account it knows")
    if reply.status_code >= 400:
        raise UserError(f"MLflow tracking server {shown} answered HTTP {reply.status_code} "
                        "to a search for experiments: is MLFLOW_TRACKING_URI an MLflow server?")


def registered_weights(uri: str, tracking_uri: str | None) -> dict[str, Any]:
    """The network weights of ``models:/NAME/VERSION`` in the store ``tracking_uri``, as a
    state dict (``train.init_from``): a model registered by WS-FM (its bundle's
    ``refiner.pt``) or one logged with ``mlflow.pytorch``. ``wsfm.models.user.ModelError``,
    one line, where there is no such version or it holds neither."""
    from wsfm.models.user import ModelError, file_state

    parts = uri.removeprefix("models:/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ModelError(f"train.init_from {uri}: expected models:/NAME/VERSION")
    if tracking_uri and tracking_uri.startswith("sqlite:///") and not Path(
            tracking_uri.removeprefix("sqlite:///")).is_file():  # a client would create it
        raise ModelError(f"train.init_from {uri}: no such registered model version: the "
                         f"tracking store {redact(tracking_uri)} does not exist yet")
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        version = client.get_model_version(parts[0], parts[1])
    except MlflowException as exc:
        raise ModelError(f"train.init_from {uri}: no such registered model version in the "
                         f"tracking store {redact(client.tracking_uri)} "
                         f"({exc.error_code})") from None
    with tempfile.TemporaryDirectory(prefix="wsfm-init-from-") as tmp:
        source = client.get_model_version_download_uri(parts[0], version.version)
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=tmp, tracking_uri=client.tracking_uri))
        bundled = sorted(local.rglob("refiner.pt"))
        if bundled:  # a WS-FM bundle: the shipped network's weights
            return file_state(bundled[0])
        if (local / "MLmodel").is_file() and "pytorch" in (local / "MLmodel").read_text():
            from mlflow.pytorch import load_model  # the flavour's loader, needed only here

            return dict(load_model(str(local), map_location="cpu").state_dict())
    raise ModelError(f"train.init_from {uri}: the registered model holds neither a WS-FM "
                     "bundle nor an mlflow.pytorch model")
