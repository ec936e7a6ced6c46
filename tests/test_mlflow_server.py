"""End to end against a real ``mlflow server`` with basic auth, over HTTP: the toy2d smoke
pipeline through the CLI, the run tree, the logged model, the champion rule, serving, and
that no credential shows up in anything logged. A wrong password is refused before any work.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from mlflow.tracking import MlflowClient

import mlflow
from tests.helpers import ROOT, STAGE_NAMES, wsfm
from tests.servers import mlflow_server, model_server
from wsfm.config import load_pipeline
from wsfm.orchestrate.local import LocalRuntime
from wsfm.orchestrate.store import ArtifactStore
from wsfm.stages import StageContext
from wsfm.stages.register import register
from wsfm.tracking import Tracker

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def served(tmp_path_factory, smoke_yaml):
    """A basic-auth server, a refused run with a wrong password, then one run of the shared
    smoke pipeline (tests/conftest.py: short, gates loosened) into it."""
    root = tmp_path_factory.mktemp("served")
    pipeline = smoke_yaml
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                                            "MLFLOW_TRACKING_PASSWORD")}
    with mlflow_server(root / "server", auth=True) as server:
        wrong_home = root / "wrong-home"
        wrong = wsfm("run", str(pipeline), "--profile", "smoke", home=wrong_home,
                     env=server.env(password="not-the-password"))
        os.environ.update(server.env())  # this process's client: the right credentials
        mlflow.set_tracking_uri(server.uri)  # other tests may have set another store
        client = MlflowClient(server.uri)
        try:
            experiments_before = [e.name for e in client.search_experiments()]
            home = root / "home"
            first = wsfm("run", str(pipeline), "--profile", "smoke", home=home, env=server.env())
            assert first.returncode == 0, first.stderr[-3000:]
            yield {"server": server, "client": client, "pipeline": pipeline, "home": home,
                   "first": first,
                   "wrong": wrong, "wrong_home": wrong_home, "outputs": [wrong, first],
                   "experiments_before": experiments_before,
                   "config": load_pipeline(pipeline, profile="smoke")}
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None)
                if value is not None:
                    os.environ[key] = value


def test_a_wrong_password_is_refused_before_any_work(served):
    wrong = served["wrong"]
    assert wrong.returncode == 2
    lines = wrong.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsfm: error:") and "refused" in lines[0]
    assert "[wsfm]" not in wrong.stdout  # no stage started, not even as cached
    assert not (served["wrong_home"] / "artifacts").exists()
    assert "toy2d" not in served["experiments_before"]  # nothing reached the server


def test_the_run_tree_over_http(served):
    client = served["client"]
    exp = client.get_experiment_by_name("toy2d")
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # served by the server
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["wsfm.stage"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == sorted(STAGE_NAMES) and parent.info.status == "FINISHED"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert parent.data.tags["mlflow.source.git.commit"] == head
    assert parent.data.params["flow.t0"] == "0.9"
    assert {"eval/warm_quality", "eval/cold_quality", "eval/speedup_nfe"} <= set(
        parent.data.metrics)
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pipeline", "config.json", "plots"} <= top
    assert client.get_metric_history(children["train_refiner"].info.run_id, "train/loss")
    for stage in ("train_refiner", "train_baseline"):
        assert any(k.startswith("system/") for k in children[stage].data.metrics), stage
    (drafts,) = children["train_refiner"].inputs.dataset_inputs
    assert drafts.dataset.name == "drafts" and len(drafts.dataset.digest) == 32
    shards = {a.path for a in client.list_artifacts(children["generate_drafts"].info.run_id)}
    assert "links.json" in shards and not any(p.endswith(".tar") for p in shards)


def test_the_model_is_registered_champion_and_samples_over_http(served):
    client = served["client"]
    version = client.get_model_version_by_alias("wsfm-toy2d", "champion")
    assert version.tags["wsfm.decision"] == "promoted"
    assert float(version.tags["wsfm.t0"]) >= 0.9 and version.tags["wsfm.metric"]
    mlflow.set_tracking_uri(served["server"].uri)
    model = mlflow.pyfunc.load_model("models:/wsfm-toy2d@champion")
    assert np.asarray(model.predict({"n": 5, "seed": 1})).shape == (5, 2)
    out = served["home"].parent / "samples.npy"
    proc = wsfm("sample", "--model", "models:/wsfm-toy2d@champion", "-n", "50", "--out",
                str(out), home=served["home"], env=served["server"].env())
    served["outputs"].append(proc)
    assert proc.returncode == 0 and np.load(out).shape == (50, 2)


def test_a_worse_registration_does_not_move_the_champion(served, tmp_path):
    """``register`` again, through the runtime, on a report that is clearly worse (its
    draft row too, so that the refiner still beats its draft and the gates pass: only the
    champion rule is at stake)."""
    store = ArtifactStore(served["home"] / "artifacts", "toy2d")
    done = {p.parent.parent.name: p.parent for p in store.root.rglob("_SUCCESS.json")}
    report = json.loads((done["evaluate"] / "metrics.json").read_text())
    for row in report["rows"]:
        if row["method"].startswith("warm") or row["method"] == "draft":
            penalty = 2.0 if row["method"] == "draft" else 1.0
            row["quality"] = row["quality"] * 10 + penalty
            row["per_seed"] = [v * 10 + penalty for v in row["per_seed"]]
    worse = tmp_path / "evaluate"
    worse.mkdir()
    (worse / "metrics.json").write_text(json.dumps(report))
    tracker = Tracker(served["server"].uri, "toy2d")
    runtime = LocalRuntime(tracking={"uri": tracker.uri, "run_id": tracker.start_run("register")})
    out = tmp_path / "register"
    out.mkdir()
    result = register(StageContext(served["config"], {
        "prepare_data": done["prepare_data"], "pretrain_draft": done["pretrain_draft"],
        "train_refiner": done["train_refiner"],
        "evaluate": worse}, out, runtime))
    assert result.tags["gates_passed"] == "true" and result.tags["model_alias"] == ""
    client = served["client"]
    new = client.get_model_version("wsfm-toy2d", result.tags["model_version"])
    assert new.tags["wsfm.decision"] == "kept"
    assert "not shown to be at least as good as" in new.tags["wsfm.decision_reason"]
    assert str(client.get_model_version_by_alias("wsfm-toy2d", "champion").version) == "1"


def test_mlflow_models_serve_answers_a_post_from_the_champion(served, tmp_path):
    env = {**served["server"].env(), "PYTHONPATH": str(ROOT)}
    with model_server("models:/wsfm-toy2d@champion", env, tmp_path / "serve.log") as url:
        reply = requests.post(url, json={"dataframe_records": [{"n": 8, "seed": 0}]},
                              timeout=120)
        assert reply.status_code == 200, reply.text[-2000:]
        assert np.asarray(reply.json()["predictions"]).shape == (8, 2)


def test_no_credential_shows_up_in_anything_logged(served, tmp_path):
    """Runs last: it reads everything the other tests logged."""
    server = served["server"]
    secrets = [server.password, base64.b64encode(
        f"{server.username}:{server.password}".encode()).decode()]
    client = served["client"]
    seen: list[str] = [p.stdout + p.stderr for p in served["outputs"]]
    exp = client.get_experiment_by_name("toy2d")
    for run in client.search_runs([exp.experiment_id]):
        seen += [f"{k}={v}" for k, v in {**run.data.params, **run.data.tags}.items()]
        local = Path(mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, dst_path=str(tmp_path / run.info.run_id),
            tracking_uri=server.uri))
        for path in local.rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                seen.append(path.read_bytes().decode(errors="replace"))
    for model in client.search_registered_models():
        for v in client.search_model_versions(f"name = '{model.name}'"):
            seen += [f"{k}={v_}" for k, v_ in v.tags.items()] + [v.source or ""]
    assert len(seen) > 50
    leaks = [text[:200] for text in seen for secret in secrets if secret in text]
    assert not leaks
