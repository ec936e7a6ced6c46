"""A node of the two-node cluster SIGKILLed during training, and a replacement node joining.

The set-up of ``tests/test_cluster_e2e.py``: a head on 127.0.0.2 and a worker node on
127.0.0.3 (1 CPU each, token auth), an MLflow server on 127.0.0.1, and ``wsfm submit`` of the
toy2d smoke pipeline shortened as in ``test_faults.py`` (120 steps, a checkpoint every 40,
``train.max_failures: 2``). The two Ray Train workers of ``train_refiner`` take one CPU on
each node. Once the refiner has committed its step-80 checkpoint and rank 0 stalls after
step 90 (``WSFM_FAULT=pause:train_refiner@90``), the test SIGKILLs the process group of the
worker node's ``ray start --block`` (raylet, workers, agents: that node alone), then starts a
replacement node on 127.0.0.4 with the same resources. Ray Train must count one worker-group
failure (within ``FailureConfig(max_failures=2)``), wait for room for two workers, restart the
group from the step-80 checkpoint on the head and the new node, and the stage must finish.

The job's home is a copy of the session's smoke home (``smoke`` in tests/conftest.py: the same
data, draft and shards, so the same upstream fingerprints) and the job runs ``--only
train_refiner``: the drill is about training; the stages around it are the smoke run's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import cli_env, project_copy, stage_lines, wait_for_pause
from tests.servers import RayCluster, mlflow_server, ray_cluster
from wsfm.train.checkpoint import read_pointer
from wsfm.train.faults import ENV

pytestmark = [pytest.mark.reliability, pytest.mark.pipeline, pytest.mark.cluster]
STEPS, EVERY, PAUSE, MAX_FAILURES = 120, 40, 90, 2

ACTORS = """
import json, sys, ray
from ray._private.state import actors
ray.init(address=sys.argv[1], log_to_driver=False)
print(json.dumps([{"cls": a["ActorClassName"], "node": a["Address"]["NodeID"]}
                  for a in actors().values() if a["State"] == "ALIVE"]))
"""  # the GCS's actor table (no dashboard request)


def shorten(doc: dict) -> None:
    """The smoke profile's training, shortened, with a checkpoint every EVERY steps. The
    refiner is the job's only stage: its task lands beside the job's driver on the head, as
    the drill below expects (the node it kills must hold a worker but not the
    controller)."""
    doc["profiles"]["smoke"]["train"].update(steps=STEPS, checkpoint_every=EVERY,
                                             log_every=EVERY, warmup_steps=10,
                                             max_failures=MAX_FAILURES)


def alive_actors(cluster: RayCluster) -> list[dict[str, str]]:
    out = subprocess.run([sys.executable, "-c", ACTORS, cluster.address], text=True,
                         capture_output=True, timeout=300, env={**os.environ, **cluster.env})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_node_killed_during_training_restarts_from_the_checkpoint_on_a_replacement(
        smoke, tmp_path):
    root = tmp_path
    pipeline = project_copy(root / "project", "toy2d-node-loss", shorten)
    home = smoke.copy(root / "smoke", without=("train_refiner", "evaluate", "register")).home
    log = root / "submit.log"
    with mlflow_server(root / "mlflow") as server, ray_cluster(root / "ray") as cluster:
        env = cli_env(**cluster.env, MLFLOW_TRACKING_URI=server.uri)
        with open(log, "w") as fh:
            job = subprocess.Popen(
                [sys.executable, "-m", "wsfm.cli", "submit", str(pipeline), "--profile",
                 "smoke", "--only", "train_refiner", "--address", cluster.dashboard,
                 "--home", str(home),
                 "--working-dir", str(root / "project"), "--submission-id", "wsfm-node-loss",
                 "--env", f"{ENV}=pause:train_refiner@{PAUSE}", "--follow"],
                env=env, text=True, stdout=fh, stderr=subprocess.STDOUT, cwd=root)
        try:
            partial = wait_for_pause(home / "artifacts" / "toy2d" / "train_refiner",
                                     PAUSE, job, log, timeout=1500).parent
            assert read_pointer(partial)["step"] == 2 * EVERY  # the checkpoint to restart from
            nodes = cluster.nodes()  # {node id: ip}
            actors = alive_actors(cluster)
            workers = [a["node"] for a in actors if a["cls"] == "RayTrainWorker"]
            [controller] = [a["node"] for a in actors if a["cls"] == "TrainController"]
            assert len(workers) == 2 and len(set(workers)) == 2, actors  # one per node
            head = next(n for n, ip in nodes.items() if ip == cluster.node_ips[0])
            # The node to lose: a training worker's, not the head's nor the controller's
            # (the controller lives beside the stage task that called fit()).
            victims = [n for n in set(workers) if n not in (head, controller)]
            assert len(victims) == 1, (head, controller, workers)
            victim = victims[0]
            index = cluster.node_ips.index(nodes[victim])
            cluster.kill_node(index)
            killed_at = time.monotonic()
            cluster.add_node("127.0.0.4")
            joined = time.monotonic() - killed_at
            new = next(n for n, ip in cluster.nodes().items() if ip == "127.0.0.4")
            code = job.wait(timeout=1800)
        finally:
            if job.poll() is None:
                job.kill()
    text = log.read_text()
    print(text[-6000:])
    print(f"replacement node joined {joined:.0f}s after the kill")
    assert code == 0, text[-3000:]
    assert "job wsfm-node-loss: SUCCEEDED" in text
    assert {s for s, v in stage_lines(text).items() if v == "done"} == {"train_refiner"}

    [folder] = [p for p in (home / "artifacts" / "toy2d" / "train_refiner").iterdir()
                if not p.name.startswith(".")]
    summary = json.loads((folder / "train_summary.json").read_text())
    # Restarted once, from the step-80 checkpoint, not from 0; within max_failures.
    assert summary["resumed_from_step"] == 2 * EVERY and summary["steps"] == STEPS
    assert summary["attempt_starts"] == [0, 2 * EVERY] and summary["attempts"] == 2
    assert summary["max_failures"] == MAX_FAILURES
    assert summary["attempts"] - 1 <= summary["max_failures"]
    # The restarted group ran on the head and the replacement node, not on the dead one.
    assert summary["world_size"] == 2 and set(summary["nodes"]) == {head, new}
    assert victim not in summary["nodes"]

    # Ray Train's own account: one worker-group failure, retried within the limit.
    policy = [p.read_text(errors="replace") for p in (root / "ray").rglob("*")
              if p.is_file() and p.suffix in (".log", ".err", ".out")
              and "[FailurePolicy]" in p.read_text(errors="replace")]
    decisions = "\n".join(policy)
    print(decisions[-3000:])
    assert "Source: worker group" in decisions
    assert f"Error count: 1 (max allowed: {MAX_FAILURES})" in decisions
    assert f"Error count: 2 (max allowed: {MAX_FAILURES})" not in decisions
    resumed = [line for p in (home / "logs").glob("*.log")
               for line in p.read_text(errors="replace").splitlines()
               if "[train] resuming at step" in line]
    assert any(f"resuming at step {2 * EVERY}/{STEPS}" in line for line in resumed), resumed
