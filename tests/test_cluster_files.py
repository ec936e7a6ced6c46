"""The files under cluster/: every YAML loads and has what its tool needs, and every ``wsfm``
command line in them is one the real CLI accepts, naming a pipeline that exists."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT
from wsfm.cli import build_parser

CLUSTER = ROOT / "cluster"
YAMLS = sorted(CLUSTER.glob("*.yaml")) + sorted(CLUSTER.glob("*.yml"))


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def wsfm_commands(text: str) -> list[str]:
    """Every ``wsfm run|submit ...`` command in ``text`` (comments included), with
    backslash continuations joined; not the usage lines (in backquotes) of a README."""
    joined = re.sub(r"\\+\n\s*#?\s*", " ", text)
    found = [m.group(1).strip() for m in
             re.finditer(r"(?<!`)\b(wsfm (?:run|submit) [^\n`#]+)", joined)]
    # a command quoted inside another (ray exec "... && wsfm run ...") loses its closing quote
    return [c.rstrip('"') if c.count('"') % 2 else c for c in found]


def parse(command: str):
    """Parse a ``wsfm ...`` command line with the real parser (argparse exits on error)."""
    argv = shlex.split(command)
    assert argv[0] == "wsfm", command
    return build_parser().parse_args(argv[1:])


def test_every_yaml_under_cluster_loads_and_is_known():
    assert {p.name for p in YAMLS} == {"aws-gpu.yaml", "kuberay-digits.yaml"}
    for path in YAMLS:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path


def test_the_cluster_launcher_yaml_passes_rays_own_schema():
    import json

    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = load("aws-gpu.yaml")
    jsonschema.validate(config, schema)  # Ray's cluster-launcher schema: raises on a bad field
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu = [t for name, t in types.items() if name != config["head_node_type"]]
    assert gpu and all(re.match(r"(g|p)\d", t["node_config"]["InstanceType"]) for t in gpu)
    setup = " ".join(config["setup_commands"])
    assert "pip install -e /home/ubuntu/wsfm" in setup and "DS_BUILD_OPS=0" in setup
    assert config["file_mounts"]["/home/ubuntu/wsfm"] == "."
    assert "WSFM_HOME=s3://" in setup and "MLFLOW_TRACKING_URI=" in setup


def test_the_rayjob_manifest_has_what_kuberay_requires():
    job = load("kuberay-digits.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["metadata"]["name"]
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert head and all(c["image"] for c in head)
    (gpu,) = cluster["workerGroupSpecs"]
    assert gpu["groupName"] and gpu["replicas"] >= 1
    (worker,) = gpu["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["WSFM_HOME"].startswith("s3://") and env["MLFLOW_TRACKING_URI"]
    args = parse(spec["entrypoint"])
    assert args.command == "run" and args.pipeline == "pipelines/digits.yaml"
    assert args.gpu is True and args.workers == cluster["workerGroupSpecs"][0]["replicas"]


@pytest.mark.parametrize("path", [*YAMLS, CLUSTER / "start-local.sh", CLUSTER / "README.md"],
                         ids=lambda p: p.name)
def test_every_wsfm_command_in_the_cluster_files_parses(path):
    commands = wsfm_commands(path.read_text())
    assert commands, f"no wsfm command in {path}"
    for command in commands:
        command = command.replace('"$here/wsfm-runs"', "/srv/wsfm-runs").replace("$", "")
        args = parse(command)
        assert (ROOT / args.pipeline).is_file(), command
        if args.command == "submit":
            assert args.address or "address" in command, command


def test_the_dockerfile_installs_the_project_with_the_clusters_ray():
    text = (CLUSTER / "Dockerfile").read_text()
    version = re.search(r"FROM rayproject/ray:([\d.]+)-py311-gpu", text).group(1)
    assert str(load("kuberay-digits.yaml")["spec"]["rayClusterSpec"]["rayVersion"]) == version
    assert "pip install --no-cache-dir -e /home/ray/wsfm" in text


def test_the_local_scripts_are_executable_and_valid_bash():
    for name in ("start-local.sh", "stop-local.sh"):
        path = CLUSTER / name
        assert os.access(path, os.X_OK), path
        subprocess.run(["bash", "-n", str(path)], check=True)
    assert "ray stop" not in (CLUSTER / "stop-local.sh").read_text().replace(
        "Never `ray stop`", "")


@pytest.mark.cluster
def test_start_local_and_stop_local_start_and_stop_exactly_their_nodes(tmp_path):
    long = subprocess.run([str(CLUSTER / "start-local.sh")], text=True, capture_output=True,
                          env={**os.environ, "WSFM_CLUSTER_STATE": str(tmp_path / "state")},
                          timeout=60, check=False)
    assert long.returncode == 2 and "too long" in long.stderr  # Ray's socket paths would break
    # Short: Ray's unix sockets live under it (at most 107 bytes a path).
    state = Path(tempfile.mkdtemp(prefix="wsfm-c-", dir="/tmp"))
    # A token file of its own that does not exist yet: the script must make it.
    env = {**os.environ, "WSFM_CLUSTER_STATE": str(state), "PYTHONPATH": str(ROOT),
           "RAY_AUTH_TOKEN_PATH": str(tmp_path / "ray" / "auth_token")}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN", None)
    pids: list[list[str]] = []
    try:
        start = subprocess.run([str(CLUSTER / "start-local.sh"), "--workers", "1",
                                "--dashboard-port", "28266"], env=env, text=True,
                               capture_output=True, timeout=600, check=False)
        print(start.stdout, start.stderr[-3000:])
        assert start.returncode == 0 and "Ray is up: 2 nodes" in start.stdout
        assert "generated a Ray auth token" in start.stdout
        assert len((tmp_path / "ray" / "auth_token").read_text()) == 64
        pids = [line.split() for line in (state / "pids").read_text().splitlines()]
        assert [ip for ip, _ in pids] == ["127.0.0.2", "127.0.0.3"]
        again = subprocess.run([str(CLUSTER / "start-local.sh")], env=env, text=True,
                               capture_output=True, timeout=60, check=False)
        assert again.returncode == 1 and "already running" in again.stderr
        listed = subprocess.run([sys.executable, "-m", "wsfm.cli", "jobs", "list", "--address",
                                 "http://127.0.0.2:28266"], env=env, text=True,
                                capture_output=True, timeout=120, check=False)
        assert listed.returncode == 0 and "submission id" in listed.stdout
    finally:
        stop = subprocess.run([str(CLUSTER / "stop-local.sh")], env=env, text=True,
                              capture_output=True, timeout=300, check=False)
        print(stop.stdout, stop.stderr)
        if stop.returncode == 0:
            shutil.rmtree(state, ignore_errors=True)
    assert stop.returncode == 0 and stop.stdout.count(": stopped") == 2
    for _, pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(int(pid), 0)  # the node's whole process group is gone
