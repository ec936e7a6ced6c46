"""An object-store root on a two-node cluster without a shared mount: fan-out tasks deliver.

Two Ray nodes on this machine (head 127.0.0.2, worker 127.0.0.3; 1 CPU each), the artifact
root on moto's S3 server (127.0.0.1), and every node's stage cache at the same path,
``WSFM_CACHE``, where the worker node is started in its own mount namespace with an empty
tmpfs over it: that node cannot see a single file that the driver or the head node put in
their cache (their stage folders, their inputs), nor can they see its own, as on two
machines. The toy2d smoke pipeline (smaller still, with the OT-CFM and reflow rivals so that
``generate_reflow`` fans out too), its data the checkerboard's rows as Parquet files in the
bucket (users' data in an object store, which ``prepare_data`` reads by parts, a task per
file), runs through ``wsfm run --address``. Shard tasks, evaluation
jobs and Ray Train workers run on both nodes, whichever node runs their stage: each must read
its inputs from its own node's copy and deliver its files through the store
(``wsfm.taskfiles``). Checked: every stage's output is committed in the bucket with every file
its record lists (all the shards, the models), no partial folder or outbox is left, the data's
parts, shard tasks and training ranks ran on both nodes, the prepared data is what one
process writes from the same files, Ray Train's checkpoints are in the bucket and the
training stages' pointers name them, the head's cache holds only whole, verified copies, and a
second invocation skips every stage. (This run is also the suite's object-store end-to-end
run: a separate single-node run into the bucket proved nothing this one does not.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

from tests.helpers import (
    ROOT,
    assert_committed,
    bucket_contents,
    job_stages,
    small_smoke,
    stage_lines,
    write_pipeline,
    wsfm,
)
from tests.s3server import CREDENTIALS, make_bucket, moto_server
from tests.servers import can_mask, ray_cluster
from wsfm.config import load_pipeline
from wsfm.data.partitioned import prepare_keyed
from wsfm.data.prepared import SPLITS
from wsfm.data.toy2d import make_toy2d
from wsfm.shards import read_manifest

pytestmark = [pytest.mark.pipeline, pytest.mark.cluster,
              pytest.mark.skipif(not can_mask(), reason="needs a private mount namespace "
                                 "(root or CAP_SYS_ADMIN) to hide the cache from one node")]
BUCKET = "wsfm-cluster"
PREFIX = f"{BUCKET}/wsfm/artifacts/toy2d"
METHODS = ["draft", "cold", "cold_ot", "reflow", "zero_shot", "warm"]
SHARDS = 6  # a few per node
SOURCE = f"s3://{BUCKET}/data"  # the users' data: Parquet files in the bucket
PARTS = 4  # its files, read by prepare_data's part tasks on both nodes


def fetch(endpoint: str, path: str, dest: Path) -> Path:
    """One object of the bucket, downloaded to ``dest``."""
    fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1",
                           access_key="testing", secret_key="testing")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(fs.open_input_stream(path).read())
    return dest


def _parquet_in_the_bucket(doc: dict) -> None:
    doc["data"] = {"kind": "parquet", "path": SOURCE, "column": "x"}
    doc["profiles"]["smoke"].pop("data")


def _write_source(endpoint: str) -> None:
    """The checkerboard's rows as ``PARTS`` Parquet files in the bucket."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1",
                           access_key="testing", secret_key="testing")
    x = make_toy2d("checkerboard", 2500, seed=0)
    for i, rows in enumerate(np.array_split(x, PARTS)):
        table = pa.table({"x": pa.array(rows.tolist(), type=pa.list_(pa.float32()))})
        with fs.open_output_stream(f"{SOURCE[5:]}/part-{i}.parquet") as sink:
            pq.write_table(table, sink)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster-s3")
    pipeline = small_smoke(root, methods=METHODS, solvers=["euler"])
    # Shard and part tasks on both nodes: with one CPU a node, the generate_drafts task
    # itself (1 CPU) left only the other node free for them. Its task only waits on them: 0
    # CPUs; so does prepare_data's.
    write_pipeline(pipeline, pipeline, edit=_parquet_in_the_bucket,
                   shards={"num_shards": SHARDS, "per_shard": 500},
                   resources={"generate_drafts": {"num_cpus": 0},
                              "prepare_data": {"num_cpus": 0}})
    cache = root / "cache"  # the same path on both nodes; the worker's is its own tmpfs
    cache.mkdir()
    with moto_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        _write_source(endpoint)
        store = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "WSFM_CACHE": str(cache),
                 "PYTHONPATH": str(ROOT)}
        with ray_cluster(root / "ray", extra_env=store, masks={1: [cache]}) as cluster:
            env = {**cluster.env, **store, "DS_ACCELERATOR": "cpu",
                   "WSFM_LOG_DIR": str(root / "logs"),
                   "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
            args = ("run", str(pipeline), "--profile", "smoke", "--address", cluster.address)
            home = f"s3://{BUCKET}/wsfm"
            first = wsfm(*args, home=home, env=env, cwd=root, timeout=2700)
            second = (wsfm(*args, home=home, env=env, cwd=root, timeout=2700)
                      if first.returncode == 0 else None)
            nodes = cluster.nodes()
        listing, successes = bucket_contents(endpoint, f"{BUCKET}/wsfm")
        outputs = {}
        for path, record in successes.items():
            stage = path.split("/")[-3]
            folder = root / "outputs" / stage
            for rel in ("manifest.parquet", "train_summary.json", "checkpoints.json",
                        "parts.json", *(f"{s}/manifest.parquet" for s in SPLITS)):
                if rel in record["files"]:
                    fetch(endpoint, f"{path.rsplit('/', 1)[0]}/{rel}", folder / rel)
            outputs[stage] = folder
        with pytest.MonkeyPatch.context() as env_here:  # the same source, in this process
            for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
                env_here.setenv(key, value)
            prepare_keyed(load_pipeline(pipeline, profile="smoke").data, root / "one-process")
    yield {"first": first, "second": second, "listing": listing, "successes": successes,
           "nodes": nodes, "outputs": outputs, "cache": cache,
           "one_process": root / "one-process",
           "job": job_stages(load_pipeline(pipeline, profile="smoke"))}


def record_of(run, stage: str) -> dict:
    [record] = [r for p, r in run["successes"].items() if p.startswith(f"{PREFIX}/{stage}/")]
    return record


def test_every_stage_ran_and_is_committed_whole_in_the_bucket(run):
    assert run["first"].returncode == 0, run["first"].stderr[-3000:]
    assert stage_lines(run["first"].stdout) == {n: "done" for n in run["job"]}
    assert_committed(run["listing"], run["successes"], PREFIX, run["job"])
    for stage in ("generate_drafts", "generate_reflow"):
        files = set(record_of(run, stage)["files"])
        assert {"shard-000000.tar", "shard-000001.tar", "manifest.parquet"} <= files, stage
        assert len(read_manifest(run["outputs"][stage])) == SHARDS
    for stage in ("train_refiner", "train_baseline", "train_cold_ot", "train_reflow"):
        assert {"model.pt", "model_raw.pt", "train_summary.json"} <= set(
            record_of(run, stage)["files"]), stage


def test_shard_tasks_and_training_ranks_ran_on_both_nodes(run):
    nodes = run["nodes"]
    assert sorted(nodes.values()) == ["127.0.0.2", "127.0.0.3"]
    drafts = read_manifest(run["outputs"]["generate_drafts"])
    assert {r.node for r in drafts} == set(nodes)  # one shard was made off its stage's node
    pairs = read_manifest(run["outputs"]["generate_reflow"])
    assert {r.node for r in pairs} <= set(nodes) and all(r.node for r in pairs)
    summary = json.loads((run["outputs"]["train_refiner"] / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and set(summary["nodes"]) == set(nodes)


def test_the_data_was_read_by_parts_on_both_nodes_into_the_shards_of_one_process(run):
    """No node read all the Parquet files (each part task reads its own file, and parts ran
    on both nodes), and the prepared splits are, shard for shard and byte for byte (sha256),
    what one process writes from the same bucket."""
    nodes = run["nodes"]
    parts = json.loads((run["outputs"]["prepare_data"] / "parts.json").read_text())
    assert [p["items"] for p in parts] == [[i, i + 1] for i in range(PARTS)]
    by_node = {n: {p["part"] for p in parts if p["node"] == n} for n in nodes}
    assert all(0 < len(read) < PARTS for read in by_node.values()), by_node
    for split in SPLITS:
        cluster = read_manifest(run["outputs"]["prepare_data"] / split)
        alone = read_manifest(run["one_process"] / split)
        assert [(r.shard, r.count, r.bytes, r.sha256) for r in cluster] == [
            (r.shard, r.count, r.bytes, r.sha256) for r in alone], split
        assert sum(r.count for r in cluster) > 0


def test_a_rerun_skips_every_stage(run):
    second = run["second"]
    assert second is not None and second.returncode == 0, second.stderr[-3000:]
    assert stage_lines(second.stdout) == {n: "cached" for n in run["job"]}


def test_training_checkpoints_are_in_the_bucket_and_the_pointers_name_them(run):
    listing = run["listing"]
    for stage in ("train_refiner", "train_baseline"):
        runs = {p.split("/")[3] for p in listing
                if p.startswith(f"{BUCKET}/wsfm/ray/toy2d-{stage}-")}
        assert len(runs) == 1, (stage, runs)
        [ray_run] = runs
        steps = {p.split("/")[4] for p in listing
                 if p.startswith(f"{BUCKET}/wsfm/ray/{ray_run}/step-")}
        assert steps == {"step-000020", "step-000040"}, (stage, steps)  # num_to_keep=2
        assert "checkpoints.json" in record_of(run, stage)["files"]
        pointer = json.loads((run["outputs"][stage] / "checkpoints.json").read_text())
        last = f"s3://{BUCKET}/wsfm/ray/{ray_run}/step-000040"
        assert pointer["path"].rstrip("/") == last, pointer


def test_the_heads_cache_holds_only_whole_verified_copies(run):
    """What the driver's node staged in from the bucket: every file its record lists, with
    the record's sha256 (checked here with hashlib, not the store's own check)."""
    # <cache>/<hash of the root>/<pipeline>/<stage>/<fingerprint>/ (wsfm.orchestrate.remote_store)
    copies = [p.parent for p in run["cache"].glob("*/toy2d/*/*/_SUCCESS.json")]
    assert copies
    for folder in copies:
        record = record_of(run, folder.parent.name)
        assert json.loads((folder / "_SUCCESS.json").read_text()) == record
        for rel, meta in record["files"].items():
            data = (folder / rel).read_bytes()
            assert len(data) == meta["bytes"], (folder, rel)
            assert hashlib.sha256(data).hexdigest() == meta["sha256"], (folder, rel)
    assert not list(run["cache"].glob("*/toy2d/*/.*.download-*"))  # no half download
