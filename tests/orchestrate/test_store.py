import hashlib
import json
import os
import time

from wsfm.orchestrate.store import SUCCESS, ArtifactStore


def test_commit_moves_the_folder_into_place_and_records_files(tmp_path):
    store = ArtifactStore(tmp_path, "pipe")
    tmp = store.begin("stage", "abc")
    (tmp / "a.bin").write_bytes(b"hello")
    (tmp / "sub").mkdir()
    (tmp / "sub" / "b.txt").write_text("x" * 10)
    record = store.commit(tmp, "stage", "abc", {"metrics": {"m": 1.0}})

    final = tmp_path / "pipe" / "stage" / "abc"
    assert not tmp.exists() and final.is_dir()
    on_disk = json.loads((final / SUCCESS).read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["files"]["a.bin"] == {"bytes": 5,
                                         "sha256": hashlib.sha256(b"hello").hexdigest(),
                                         "mtime_ns": (final / "a.bin").stat().st_mtime_ns}
    assert on_disk["files"]["sub/b.txt"]["bytes"] == 10
    assert store.load("stage", "abc")["metrics"] == {"m": 1.0}


def test_incomplete_or_damaged_outputs_do_not_count(tmp_path):
    store = ArtifactStore(tmp_path, "pipe")
    assert store.load("stage", "none") is None
    tmp = store.begin("stage", "fp")
    (tmp / "a.bin").write_bytes(b"0123456789")
    store.commit(tmp, "stage", "fp", {})
    path = store.path("stage", "fp") / "a.bin"

    time.sleep(0.05)  # past the file system's clock tick: a rewrite moves the mtime
    path.write_bytes(b"01234")  # truncated: the size check catches it
    assert store.load("stage", "fp") is None
    path.write_bytes(b"ABCDEFGHIJ")  # same size, other bytes: its mtime moved, so it is hashed
    assert store.inspect("stage", "fp")[1] == "finished output damaged: a.bin fails its sha256"
    mtime = json.loads((store.path("stage", "fp") / SUCCESS).read_text())["files"]["a.bin"]
    os.utime(path, ns=(mtime["mtime_ns"], mtime["mtime_ns"]))  # ...and with its old mtime
    assert store.load("stage", "fp") is not None  # only the deep check catches it
    assert store.load("stage", "fp", deep=True) is None
    (store.path("stage", "fp") / SUCCESS).unlink()
    assert store.load("stage", "fp") is None


def test_commit_replaces_an_older_output(tmp_path):
    store = ArtifactStore(tmp_path, "pipe")
    for text in ("old", "new"):
        tmp = store.begin("s", "fp")
        (tmp / "f").write_text(text)
        store.commit(tmp, "s", "fp", {})
    assert (store.path("s", "fp") / "f").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "pipe" / "s").iterdir()) == ["fp"]


def test_discard_removes_the_temporary_folder(tmp_path):
    store = ArtifactStore(tmp_path, "pipe")
    tmp = store.begin("s", "fp")
    (tmp / "partial").write_text("half")
    store.discard(tmp)
    assert not tmp.exists() and store.load("s", "fp") is None


def test_a_resumable_begin_keeps_what_a_failed_attempt_left(tmp_path):
    store = ArtifactStore(tmp_path, "pipe")
    first = store.begin("s", "fp")
    (first / "done-part").write_text("kept")
    assert (store.begin("s", "fp", resume=True) / "done-part").read_text() == "kept"
    assert not (store.begin("s", "fp") / "done-part").exists()  # not resumable: afresh


def test_a_damaged_finished_output_goes_back_to_partial_for_a_resumable_stage(tmp_path):
    store = ArtifactStore(tmp_path, "pipe")
    tmp = store.begin("s", "fp")
    (tmp / "good").write_text("keep me")
    (tmp / "bad").write_text("0123456789")
    store.commit(tmp, "s", "fp", {})
    (store.path("s", "fp") / "bad").write_text("012")  # truncated after the commit
    assert store.load("s", "fp") is None
    again = store.begin("s", "fp", resume=True)
    assert (again / "good").read_text() == "keep me" and not (again / SUCCESS).exists()
    assert not store.path("s", "fp").exists()


def test_a_local_store_stages_in_place_and_keeps_a_partial_folder_where_it_is(tmp_path):
    store = ArtifactStore(tmp_path, "pipe")
    tmp = store.begin("s", "fp")
    (tmp / "f").write_text("x")
    store.commit(tmp, "s", "fp", {})
    assert store.stage_in("s", "fp") == tmp_path / "pipe" / "s" / "fp"
    partial = store.begin("t", "fp", resume=True)
    (partial / "half").write_text("h")
    store.keep(partial, "t", "fp")
    assert (store.begin("t", "fp", resume=True) / "half").read_text() == "h"
