"""The artifact-root visibility check on a real two-node Ray cluster (loopback addresses).

Both nodes run on this machine, so both see any local folder, except one: the worker node is
started in its own mount namespace where an empty tmpfs covers ``hidden/``. That node really
cannot read what the driver writes there, which is the case the check must refuse.

Drivers run in subprocesses: Ray reads ``RAY_AUTH_MODE`` once per process, and this cluster
wants a token where the rest of the suite's local runtimes do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, TOY2D
from tests.servers import can_mask

pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(not can_mask(), reason="needs a private mount namespace "
                                 "(root or CAP_SYS_ADMIN) to hide a folder from one node")]

CHECK = """
import json, sys
import ray
from wsfm.orchestrate.cluster import ArtifactRootNotShared, check_artifact_root
ray.init(address=sys.argv[1], log_to_driver=False)
try:
    views = check_artifact_root(sys.argv[2])
    print(json.dumps({"views": [v.__dict__ for v in views]}))
except ArtifactRootNotShared as exc:
    print(json.dumps({"refused": str(exc)}))
nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
print(json.dumps({"nodes": nodes}))
"""


@pytest.fixture(scope="module")
def cluster(loopback_cluster):
    """The session's two-node cluster, whose worker does not see ``root / "hidden"``."""
    return loopback_cluster.cluster, loopback_cluster.root


def driver(cluster, *args: str, code: str | None = None, timeout: int = 600
           ) -> subprocess.CompletedProcess:
    running, _ = cluster
    env = {**os.environ, **running.env, "PYTHONPATH": str(ROOT), "DS_ACCELERATOR": "cpu"}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, *args]
    proc = subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=timeout,
                          cwd=ROOT)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def check(cluster, root: Path) -> tuple[dict, dict[str, str]]:
    proc = driver(cluster, cluster[0].address, str(root), code=CHECK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result, nodes = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    return result, nodes["nodes"]


def test_every_node_reads_the_marker_in_a_shared_folder(cluster):
    result, nodes = check(cluster, cluster[1] / "shared")
    views = result["views"]
    assert sorted(v["address"] for v in views) == ["127.0.0.2", "127.0.0.3"]
    assert {v["node_id"]: v["address"] for v in views} == nodes
    assert all(v["problem"] is None and v["ran_on"] == v["node_id"] for v in views)
    assert list((cluster[1] / "shared" / ".wsfm-visibility").iterdir()) == []  # cleaned up


def test_a_folder_one_node_cannot_see_is_refused_naming_that_node(cluster):
    result, nodes = check(cluster, cluster[1] / "hidden")
    message = result["refused"]
    (worker,) = [node for node, addr in nodes.items() if addr == "127.0.0.3"]
    (head,) = [node for node, addr in nodes.items() if addr == "127.0.0.2"]
    assert f"node {worker} (127.0.0.3)" in message and "1 of 2 nodes" in message
    assert head not in message
    assert "--home / WSFM_HOME" in message


def test_wsfm_run_on_the_cluster_refuses_before_any_stage_runs(cluster):
    home = cluster[1] / "hidden" / "home"
    proc = driver(cluster, "-m", "wsfm.cli", "run", str(TOY2D), "--profile", "smoke",
                  "--address", cluster[0].address, "--home", str(home))
    assert proc.returncode == 2
    assert "not visible from 1 of 2 nodes" in proc.stderr and "127.0.0.3" in proc.stderr
    assert "started" not in proc.stdout
    assert not (home / "artifacts" / "toy2d").exists()  # nothing ran, nothing was made
