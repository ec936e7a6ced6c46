"""End to end on a real two-node Ray cluster: ``wsfm submit`` the toy2d smoke pipeline.

Two nodes on this machine (head 127.0.0.2, worker 127.0.0.3; 1 CPU and a custom resource
each), token authentication on, and an MLflow tracking server on 127.0.0.1. The job's
working_dir is a copy of the project's sources with the smoke pipeline's gates loosened (as
in tests/test_pipeline.py), so the job runs the uploaded code. Checked: the job SUCCEEDED;
shard tasks ran on both nodes (node ids in the shard stats records); the two Ray Train workers
of train_refiner ran on different nodes (node ids in train_summary.json), so DeepSpeed's gloo
group spanned them; the model was registered in that MLflow server. Every process is stopped
by its pid at the end, whatever happened.

With 1 CPU per node a stage task (1 CPU) and its two training workers (1 CPU each) fit
because a task blocked in ``TorchTrainer.fit()`` (a ``ray.get``) gives its CPU back.
"""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import STAGE_NAMES, committed, project_copy, wsfm
from tests.servers import mlflow_server
from wsfm.shards import read_manifest

pytestmark = [pytest.mark.pipeline, pytest.mark.cluster]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, loopback_cluster):
    root = tmp_path_factory.mktemp("cluster-e2e")
    pipeline = project_copy(root / "project")
    home = root / "home"
    cluster = loopback_cluster.cluster
    with mlflow_server(root / "mlflow") as server:
        proc = wsfm("submit", str(pipeline), "--profile", "smoke", "--address",
                    cluster.dashboard, "--home", str(home), "--working-dir",
                    str(root / "project"), "--submission-id", "wsfm-e2e", "--follow",
                    env={**cluster.env, "MLFLOW_TRACKING_URI": server.uri}, cwd=root,
                    timeout=1800)
        yield {"proc": proc, "home": home, "nodes": cluster.nodes(), "server": server}


def test_the_job_succeeded_and_ran_every_stage(e2e):
    proc = e2e["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "job wsfm-e2e: SUCCEEDED" in proc.stdout
    done = {line.split()[1] for line in proc.stdout.splitlines()
            if line.startswith("[wsfm]") and len(line.split()) > 2 and line.split()[2] == "done"}
    assert done == set(STAGE_NAMES)


def test_shard_tasks_ran_on_both_nodes(e2e):
    nodes = e2e["nodes"]
    assert sorted(nodes.values()) == ["127.0.0.2", "127.0.0.3"]
    records = read_manifest(committed(e2e["home"], "generate_drafts"))
    assert {r.node for r in records} == set(nodes)


def test_the_two_training_workers_ran_on_different_nodes(e2e):
    summary = json.loads((committed(e2e["home"], "train_refiner") / "train_summary.json")
                         .read_text())
    assert summary["world_size"] == 2
    assert len(summary["nodes"]) == 2 and set(summary["nodes"]) == set(e2e["nodes"])


def test_the_model_was_registered_in_the_tracking_server(e2e):
    client = MlflowClient(e2e["server"].uri)
    version = client.get_model_version_by_alias("wsfm-toy2d", "champion")
    run = client.get_run(version.run_id)
    assert run.data.tags["wsfm.stage"] == "register" and run.info.status == "FINISHED"
    assert not (e2e["home"] / "mlflow.db").exists()  # nothing went to a local store
