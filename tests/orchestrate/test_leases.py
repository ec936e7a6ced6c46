"""Stage leases on an object store, against moto's real S3 server on 127.0.0.1: one holder at
a time across processes that share no disk, a waiter that says whom it waits for, renewal
that outlives the lease time, and the take-over of a lease whose holder is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.helpers import cli_env
from tests.s3server import CREDENTIALS, make_bucket, moto_server
from wsfm.orchestrate import leases
from wsfm.orchestrate.leases import lease_holder, lease_uri, object_lease

BUCKET = "wsfm-leases"
URI = lease_uri(f"s3://{BUCKET}/wsfm/artifacts", "toy2d", "train_refiner", "fp")

# A second invocation on "another machine": its own process, the lease its only link.
HOLDER = textwrap.dedent("""
    import sys, time
    from wsfm.orchestrate.leases import object_lease
    with object_lease(sys.argv[1], {"mlflow_run_id": sys.argv[2]}, note="held", seconds=1.5):
        print("holding", flush=True)
        time.sleep(float(sys.argv[3]))
    print("released", flush=True)
""")


@pytest.fixture(scope="module")
def s3():
    with moto_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        yield {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


@pytest.fixture
def env(s3, monkeypatch):
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    return s3


def hold(env, run_id: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, URI, run_id, str(seconds)],
                            env=cli_env(**env), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
    return proc


def test_a_second_holder_waits_for_the_first_and_says_for_whom(env, capfd):
    first = hold(env, "run-a", 4.0)  # longer than the 1.5 s lease: it must renew
    try:
        assert lease_holder(URI)["mlflow_run_id"] == "run-a"
        began = time.monotonic()
        with object_lease(URI, {"mlflow_run_id": "run-b"}, note="train_refiner is busy",
                          seconds=1.5) as waited:
            waited_for = time.monotonic() - began
            assert lease_holder(URI)["mlflow_run_id"] == "run-b"
        # The first held 4 s on a 1.5 s lease: renewed, so the second waited it out.
        assert waited and waited_for > 3.0
    finally:
        first.wait(timeout=30)
    assert first.stdout.read() == "released\n"
    err = capfd.readouterr().err
    assert err.count("train_refiner is busy (MLflow run run-a, pid") == 1
    assert "took over" not in err
    assert lease_holder(URI) is None  # deleted on release


def test_a_lease_whose_holder_died_is_taken_over(env, capfd):
    first = hold(env, "run-dead", 60.0)
    first.kill()  # SIGKILL: no release, no renewal
    first.wait()
    assert lease_holder(URI)["mlflow_run_id"] == "run-dead"  # until it expires
    began = time.monotonic()
    with object_lease(URI, {"mlflow_run_id": "run-c"}, note="busy", seconds=1.5):
        assert lease_holder(URI)["mlflow_run_id"] == "run-c"
    assert time.monotonic() - began < 10  # 1.5 s after its last renewal, not 60
    assert "took over the lease" in capfd.readouterr().err


def test_two_waiters_never_hold_an_expired_lease_at_once(env):
    """An expired lease, two waiters at once: each takes over or waits, never both hold."""
    import boto3

    bucket, key = leases._split(URI)
    stale = {"mlflow_run_id": "gone", "expires": time.time() - 5}
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(stale))
    spans: list[tuple[float, float]] = []

    def waiter(name):
        with object_lease(URI, {"mlflow_run_id": name}, seconds=1.5):
            start = time.monotonic()
            time.sleep(1.0)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=waiter, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0  # one after the other
    assert lease_holder(URI) is None


def test_a_root_that_is_not_s3_holds_no_lease():
    with object_lease("file:///tmp/x.lease", {}) as waited:
        assert waited is False


def test_status_names_the_run_that_holds_a_stage_on_another_machine(env, tmp_path,
                                                                    tiny_config):
    from wsfm.orchestrate.dag import make_plan
    from wsfm.orchestrate.remote_store import RemoteArtifactStore
    from wsfm.orchestrate.staleness import pipeline_status
    from wsfm.stages import STAGES

    root = f"s3://{BUCKET}/wsfm/artifacts"
    store = RemoteArtifactStore(root, tiny_config.name, cache=tmp_path / "cache")
    fp = {i.stage: i for i in make_plan(STAGES, tiny_config, store)}["train_refiner"].fingerprint
    uri = lease_uri(root, tiny_config.name, "train_refiner", fp)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, uri, "run-z", "3"],
                            env=cli_env(**env), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
        states = {s.stage: s for s in pipeline_status(STAGES, tiny_config, store)}
        assert states["train_refiner"].state == "running"
        assert states["train_refiner"].reasons[0].startswith("being made by MLflow run run-z")
        assert states["train_baseline"].state == "missing"
    finally:
        proc.wait(timeout=30)
    states = {s.stage: s for s in pipeline_status(STAGES, tiny_config, store)}
    assert states["train_refiner"].state == "missing"


STAGE = textwrap.dedent("""
    import json, sys
    from wsfm.config import load_pipeline
    from wsfm.orchestrate.local import LocalRuntime
    from wsfm.orchestrate.stage_task import execute_stage
    from tests.helpers import with_shards
    cfg = with_shards(load_pipeline(sys.argv[1], profile="smoke"), num_shards=4,
                      per_shard=20000)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    record = execute_stage("generate_drafts", cfg, {"prepare_data": "pfp",
                                                     "pretrain_draft": "dfp"}, sys.argv[2],
                           "fp", LocalRuntime(), {"mlflow_run_id": sys.argv[3]})
    print(json.dumps({"tags": record.get("tags", {}), "run": record.get("mlflow_run_id")}))
""")


def test_two_machines_on_one_object_store_make_a_stage_once(env, tmp_path, draft_dir):
    """Two processes with caches of their own (two machines: no shared disk, so no shared
    ``flock``) run the same stage output on one s3:// root: the second waits on the lease,
    says for whom once, then reuses what the first committed."""
    import shutil

    from tests.helpers import ROOT, TOY2D, prepared_data
    from wsfm.config import load_pipeline
    from wsfm.orchestrate.remote_store import RemoteArtifactStore

    root = f"s3://{BUCKET}/two-machines/artifacts"
    store = RemoteArtifactStore(root, "toy2d", cache=tmp_path / "cache-setup")
    tmp = store.begin("pretrain_draft", "dfp")
    shutil.copytree(draft_dir, tmp, dirs_exist_ok=True)
    store.commit(tmp, "pretrain_draft", "dfp", {"mlflow_run_id": "draft"})
    tmp = store.begin("prepare_data", "pfp")  # the smoke profile's data, which the stage reads
    shutil.copytree(prepared_data(load_pipeline(TOY2D, profile="smoke"), tmp_path), tmp,
                    dirs_exist_ok=True)
    store.commit(tmp, "prepare_data", "pfp", {"mlflow_run_id": "data"})

    def start(name):
        return subprocess.Popen(
            [sys.executable, "-c", STAGE, str(ROOT / "pipelines" / "toy2d.yaml"), root, name],
            env=cli_env(**env, WSFM_CACHE=str(tmp_path / f"cache-{name}")), cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first, second = start("first"), start("second")
    for proc in (first, second):  # both imported and configured: start is now quick
        assert proc.stdout.readline() == "ready\n"
    first.stdin.write("go\n")
    first.stdin.flush()
    uri = lease_uri(root, "toy2d", "generate_drafts", "fp")
    deadline = time.monotonic() + 300
    while lease_holder(uri) is None:  # the first holds the lease and is making the shards
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second.stdin.write("go\n")
    second.stdin.flush()
    (out1, err1), (out2, err2) = (p.communicate(timeout=600) for p in (first, second))
    assert first.returncode == 0 and second.returncode == 0, err1[-2000:] + err2[-2000:]
    one, two = (json.loads(out.strip().splitlines()[-1]) for out in (out1, out2))
    assert one["run"] == "first" and "wsfm.status" not in one["tags"]
    assert two["tags"]["wsfm.status"] == "reused" and two["run"] == "first"
    assert err2.count("generate_drafts is being made by another invocation (MLflow run "
                      "first") == 1
    assert RemoteArtifactStore(root, "toy2d", cache=tmp_path / "cache-check").load(
        "generate_drafts", "fp", deep=True) is not None
    assert lease_holder(uri) is None
