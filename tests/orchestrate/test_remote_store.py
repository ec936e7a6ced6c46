"""The artifact store on an object store: a real S3 server (moto's, on 127.0.0.1) and
``file://``. Two "nodes" are two cache folders: what one commits, the other must fetch."""

import dataclasses
import hashlib
import json
import os
import uuid

import pyarrow.fs as pafs
import pytest

from tests.s3server import CREDENTIALS, make_bucket, moto_server
from wsfm.orchestrate.dag import make_plan
from wsfm.orchestrate.remote_store import CACHE_ENV, RemoteArtifactStore
from wsfm.orchestrate.runner import execute_stage
from wsfm.orchestrate.storage import locate, storage_env
from wsfm.orchestrate.store import SUCCESS, ArtifactStore
from wsfm.orchestrate.stores import open_store
from wsfm.stages import STAGES


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["s3", "file"])
def root(request, tmp_path, monkeypatch):
    """A fresh, empty store root; for S3 configured only through the environment."""
    if request.param == "file":
        return (tmp_path / "bucket").as_uri()
    endpoint = request.getfixturevalue("s3_endpoint")
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    make_bucket(endpoint, bucket)
    return f"s3://{bucket}/wsfm/artifacts"


def node(root, tmp_path, name):
    return RemoteArtifactStore(root, "pipe", cache=tmp_path / f"cache-{name}")


def commit(store, stage, fp, files):
    tmp = store.begin(stage, fp)
    for rel, data in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    return store.commit(tmp, stage, fp, {"metrics": {"m": 1.0}})


def remote_files(store, stage, fp):
    """``{relative path: bytes}`` read straight from the filesystem."""
    fs, base = pafs.FileSystem.from_uri(store.path(stage, fp)) if not store.root.startswith(
        "s3") else (store.fs, store._key(stage, fp))
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    out = {}
    for info in infos:
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as stream:
                out[info.path[len(base) + 1:]] = stream.read()
    return out


def put(store, key, data):
    store.fs.create_dir(key.rsplit("/", 1)[0], recursive=True)  # a local root needs it
    with store.fs.open_output_stream(key) as out:
        out.write(data)


def test_commit_uploads_every_file_and_a_success_record_with_sizes_and_sha256(root, tmp_path):
    store = node(root, tmp_path, "a")
    record = commit(store, "s", "fp", {"a.bin": b"hello", "sub/b.txt": b"x" * 10})
    there = remote_files(store, "s", "fp")
    assert set(there) == {"a.bin", "sub/b.txt", SUCCESS}
    on_store = json.loads(there[SUCCESS])
    assert on_store == json.loads(json.dumps(record))
    assert on_store["files"]["a.bin"] == {"bytes": 5,
                                          "sha256": hashlib.sha256(b"hello").hexdigest()}
    assert store.load("s", "fp", deep=True)["metrics"] == {"m": 1.0}
    assert not store.partial("s", "fp").exists()  # the build folder became the cached copy
    assert (store.cached("s", "fp") / "sub" / "b.txt").read_bytes() == b"x" * 10


def test_a_half_uploaded_or_damaged_output_does_not_count(root, tmp_path):
    store = node(root, tmp_path, "a")
    key = store._key("s", "fp")
    put(store, f"{key}/a.bin", b"0123456789")  # files up, no record yet: not done
    assert store.inspect("s", "fp") == (None, "no finished output")
    commit(store, "s", "fp", {"a.bin": b"0123456789", "b.bin": b"bb"})
    store.fs.delete_file(f"{key}/b.bin")  # the record lists a file that is not there
    assert store.inspect("s", "fp") == (None, "finished output damaged: b.bin is missing")
    put(store, f"{key}/b.bin", b"bb")
    put(store, f"{key}/a.bin", b"01234")  # truncated
    assert store.inspect("s", "fp")[1] == ("finished output damaged: a.bin has 5 bytes, "
                                           "expected 10")
    put(store, f"{key}/a.bin", b"ABCDEFGHIJ")  # same size: only the deep check sees it
    assert store.load("s", "fp") is not None and store.load("s", "fp", deep=True) is None
    with pytest.raises(OSError, match="a.bin arrived with sha256"):
        node(root, tmp_path, "b").stage_in("s", "fp")
    with pytest.raises(FileNotFoundError, match="no finished output"):
        store.stage_in("s", "other")


def test_another_node_fetches_a_verified_copy_and_reuses_it(root, tmp_path):
    a, b = node(root, tmp_path, "a"), node(root, tmp_path, "b")
    commit(a, "s", "fp", {"a.bin": b"payload", "sub/c": b"c" * 100})
    local = b.stage_in("s", "fp")
    assert local == b.cached("s", "fp") and (local / "sub" / "c").read_bytes() == b"c" * 100
    inode = os.stat(local / "a.bin").st_ino
    assert b.stage_in("s", "fp") == local and os.stat(local / "a.bin").st_ino == inode  # reused
    (local / "a.bin").write_bytes(b"PAYLOAD")  # the copy went bad (same size): fetched again
    assert (b.stage_in("s", "fp") / "a.bin").read_bytes() == b"payload"
    commit(a, "s", "fp", {"a.bin": b"newer"})  # replaced in the store (--force elsewhere)
    again = b.stage_in("s", "fp")
    assert (again / "a.bin").read_bytes() == b"newer" and not (again / "sub").exists()
    assert set(remote_files(a, "s", "fp")) == {"a.bin", SUCCESS}  # old files went too


def test_a_failed_resumable_attempt_resumes_on_another_node(root, tmp_path):
    a, b = node(root, tmp_path, "a"), node(root, tmp_path, "b")
    first = a.begin("s", "fp", resume=True)
    (first / "shard-0.tar").write_bytes(b"done part")
    (first / "ckpt").mkdir()
    (first / "ckpt" / "pointer.json").write_text("{}")
    a.keep(first, "s", "fp")
    assert a.load("s", "fp") is None  # a partial state never counts as done
    second = b.begin("s", "fp", resume=True)
    assert (second / "shard-0.tar").read_bytes() == b"done part"
    assert (second / "ckpt" / "pointer.json").read_text() == "{}"
    (second / "shard-1.tar").write_bytes(b"rest")
    b.commit(second, "s", "fp", {})
    assert set(b.load("s", "fp")["files"]) == {"shard-0.tar", "shard-1.tar", "ckpt/pointer.json"}
    assert a._sizes(a._key("s", ".fp.partial")) == {}  # the uploaded partial state is gone
    fresh = a.begin("s", "fp")  # not resumable: starts empty
    assert list(fresh.iterdir()) == []


def test_a_damaged_finished_output_comes_back_as_partial_state_for_a_resumable_stage(
        root, tmp_path):
    a, b = node(root, tmp_path, "a"), node(root, tmp_path, "b")
    commit(a, "s", "fp", {"good": b"keep me", "bad": b"0123456789"})
    put(a, f"{a._key('s', 'fp')}/bad", b"012")
    again = b.begin("s", "fp", resume=True)
    assert (again / "good").read_bytes() == b"keep me" and not (again / SUCCESS).exists()
    assert a._sizes(a._key("s", "fp")) == {}


def test_the_planner_works_against_a_remote_root(root, tmp_path, tiny_config):
    store = node(root, tmp_path, "a")
    store.pipeline = tiny_config.name
    plan = [item for item in make_plan(STAGES, tiny_config, store) if item.action != "unused"]
    assert {item.action for item in plan} == {"run"}
    for item in plan:
        store.commit(store.begin(item.stage, item.fingerprint), item.stage, item.fingerprint,
                     {"mlflow_run_id": f"run-{item.stage}"})
    again = make_plan(STAGES, tiny_config, store)
    assert {item.action for item in again} == {"cached", "unused"}  # the rivals: not asked
    assert again[0].producer_run_id == f"run-{again[0].stage}"


def test_open_store_and_locate_pick_by_the_kind_of_root(tmp_path, monkeypatch):
    assert isinstance(open_store(tmp_path, "p"), ArtifactStore)
    assert isinstance(open_store(tmp_path.as_uri(), "p"), RemoteArtifactStore)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = locate(tmp_path / "home")
    assert local.artifacts == str(tmp_path / "home" / "artifacts") and not local.remote
    assert local.mlflow_uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    with pytest.raises(ValueError, match="set MLFLOW_TRACKING_URI"):
        locate("s3://bucket/wsfm")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
    remote = locate("s3://bucket/wsfm/")
    assert (remote.artifacts, remote.ray_storage) == ("s3://bucket/wsfm/artifacts",
                                                      "s3://bucket/wsfm/ray")
    assert remote.mlflow_artifacts == tmp_path / "db" / "mlartifacts" and remote.remote


def test_the_workers_get_where_the_object_store_is_but_no_credentials(monkeypatch):
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert storage_env() == {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1",
                             "AWS_DEFAULT_REGION": "us-east-1"}


class SerialRuntime:
    """``map`` in this process (no Ray), failing on one item if asked: the stage's fan-out
    is not what is tested here, the store around it is."""

    def __init__(self, fail_on: int | None = None):
        self.fail_on = fail_on

    def map(self, fn, items, **progress):
        out = []
        for item in items:
            if item.index == self.fail_on:
                raise OSError(f"disk on fire at {item}")
            out.append(fn(item))
        return out

    def node_id(self):
        return ""


def test_a_stage_fails_on_one_node_and_its_rerun_on_another_resumes_from_the_store(
        root, tmp_path, tiny_config, monkeypatch):
    """execute_stage with a URI root: inputs staged in, output committed, and a failed
    resumable stage's shards carried to the next node through the store."""
    cfg = tiny_config
    store = open_store(root, cfg.name)
    fps = {item.stage: item.fingerprint for item in make_plan(STAGES, cfg, store)}
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "node-a"))
    execute_stage("prepare_data", cfg, {}, root, fps["prepare_data"], None, {})
    data = {"prepare_data": fps["prepare_data"]}
    execute_stage("pretrain_draft", cfg, data, root, fps["pretrain_draft"], None, {})
    inputs = {**data, "pretrain_draft": fps["pretrain_draft"]}
    with pytest.raises(OSError, match="disk on fire"):
        execute_stage("generate_drafts", cfg, inputs, root, fps["generate_drafts"],
                      SerialRuntime(fail_on=2), {})
    kept = node(root, tmp_path, "x")
    kept.pipeline = cfg.name
    uploaded = kept._sizes(kept._key("generate_drafts", f".{fps['generate_drafts']}.partial"))
    assert {"shard-000000.tar", "shard-000001.tar"} <= set(uploaded)
    assert kept.load("generate_drafts", fps["generate_drafts"]) is None

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "node-b"))  # the rerun lands elsewhere
    record = execute_stage("generate_drafts", cfg, inputs, root, fps["generate_drafts"],
                           SerialRuntime(), {"inputs": inputs})
    assert record["metrics"]["shards_reused"] == 2 and record["metrics"]["shards_written"] == 1
    assert kept.load("generate_drafts", fps["generate_drafts"], deep=True) is not None
    assert (tmp_path / "node-b").is_dir() and kept._sizes(
        kept._key("generate_drafts", f".{fps['generate_drafts']}.partial")) == {}


def test_a_task_on_another_node_reads_inputs_and_delivers_files_through_the_store(
        root, tmp_path, monkeypatch):
    """StoreFiles, as a fan-out task on a node that sees none of the stage's folders uses it:
    the input comes from that node's verified copy, the output goes to the attempt's outbox,
    and the stage's collect brings it into the folder that the commit uploads."""
    stage_node = node(root, tmp_path, "a")
    up = commit(stage_node, "up", "fp-up", {"draft.bin": b"d" * 300})["fingerprint"]
    folder = stage_node.stage_in("up", up)
    tmp = stage_node.begin("down", "fp-d")
    files = stage_node.task_files("down", "fp-d", tmp, {"up": (up, folder)})
    assert files.here() and files.input(folder / "draft.bin") == folder / "draft.bin"
    with files.workspace() as out:
        assert out == tmp  # the stage's own node writes in place
    elsewhere = dataclasses.replace(files, node="the-stage-node")  # this process is not it
    assert not elsewhere.here()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-b"))
    seen = elsewhere.input(str(folder / "draft.bin"))
    assert seen != folder / "draft.bin" and seen.read_bytes() == b"d" * 300
    assert str(seen).startswith(str(tmp_path / "cache-b"))
    with pytest.raises(ValueError, match="not under an input"):
        elsewhere.input(tmp_path / "other.bin")
    with elsewhere.workspace() as out:
        assert out != tmp and out.is_dir()
        (out / "shard.tar").write_bytes(b"s" * 1000)
        (out / "stats.json").write_text("{}")
        elsewhere.publish(out, "shard.tar", "stats.json")
    assert not out.exists() and not (tmp / "shard.tar").exists()  # not collected yet
    with elsewhere.workspace(fetch=["stats.json", "absent"]) as again:  # a restarted task
        assert sorted(p.name for p in again.iterdir()) == ["stats.json"]
    assert files.collect() == ["shard.tar", "stats.json"]  # on the stage's node
    assert (tmp / "shard.tar").read_bytes() == b"s" * 1000
    assert files.collect() == []  # the outbox is gone
    record = stage_node.commit(tmp, "down", "fp-d", {})
    assert set(record["files"]) == {"shard.tar", "stats.json"}
    assert remote_files(stage_node, "down", "fp-d")["shard.tar"] == b"s" * 1000


def test_an_outbox_nobody_collected_is_removed_by_the_next_attempt(root, tmp_path):
    store = node(root, tmp_path, "a")
    tmp = store.begin("down", "fp-d")
    files = dataclasses.replace(store.task_files("down", "fp-d", tmp, {}), node="gone")
    with files.workspace() as out:
        (out / "x.bin").write_bytes(b"x")
        files.publish(out, "x.bin")
    assert store._sizes(store.outbox("down", "fp-d", files.attempt)) == {"x.bin": 1}
    store.begin("down", "fp-d")  # the stage task died; its rerun starts afresh
    assert store._sizes(store.outbox("down", "fp-d", files.attempt)) == {}


def test_a_local_root_hands_tasks_the_folders_themselves(tmp_path):
    store = ArtifactStore(tmp_path / "art", "pipe")
    tmp = store.begin("down", "fp")
    files = store.task_files("down", "fp", tmp, {})
    with files.workspace(fetch=["x"]) as out:
        assert out == tmp
        (out / "x").write_text("1")
        files.publish(out, "x")
    assert files.collect() == [] and (tmp / "x").read_text() == "1"
    assert files.input(tmp_path / "any") == tmp_path / "any"
