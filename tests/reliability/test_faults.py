"""Faults injected for real: killed processes, damaged shards, a full disk, two runs at once.

The pipeline-level faults run the real command line (``python -m wsfm.cli run``) on the
toy2d smoke profile, shortened to 120 training steps with a checkpoint every 40, against the
session's undisturbed smoke run (``smoke`` in tests/conftest.py: same seeds, same
fingerprints): a disturbed run must end with the reference's bytes. Faults inside a run are
cued through ``WSFM_FAULT`` (``wsfm.train.faults``). The tests that need no Ray (a full disk,
the stage lock) drive ``execute_stage`` with the in-process runtime. RELIABILITY.md
tabulates all of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.helpers import (
    ROOT,
    STAGE_NAMES,
    NoRuntime,
    WrappingRuntime,
    cli_env,
    committed,
    context,
    fill_disk,
    manifest_rows,
    prepared_data,
    stage_lines,
    with_shards,
    wsfm,
)
from tests.helpers import SMOKE_EVERY as EVERY
from tests.helpers import SMOKE_STEPS as STEPS
from wsfm.config import load_pipeline
from wsfm.orchestrate.local import LocalRuntime
from wsfm.orchestrate.runner import execute_stage
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.orchestrate.store import SUCCESS, ArtifactStore
from wsfm.shards import (
    ShardRecord,
    ShardsDamaged,
    ShardWriter,
    check_shard,
    read_manifest,
    verify_shards,
)
from wsfm.space import SpaceShort
from wsfm.stages.generate_drafts import generate_drafts
from wsfm.stages.train import train_refiner
from wsfm.train.checkpoint import read_pointer
from wsfm.train.faults import ENV, parse_faults

pytestmark = pytest.mark.reliability
PAUSE = 90  # the shared smoke run checkpoints at 40, 80, 120; the drill stalls after 90


def assert_same_weights(got: Path, want: Path) -> None:
    for name in ("model.pt", "model_raw.pt"):
        a = torch.load(got / name, weights_only=True)
        b = torch.load(want / name, weights_only=True)
        assert a.keys() == b.keys()
        for key in b:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


# -- no Ray ------------------------------------------------------------------------------


def test_fault_drills_are_parsed_strictly():
    assert [(f.action, f.stage, f.step) for f in parse_faults("pause:train_refiner@90, "
                                                              "raise:evaluate")] == [
        ("pause", "train_refiner", 90), ("raise", "evaluate", None)]
    for bad in ("explode:evaluate", "pause:train_refiner", "raise:", "raise:x@ten"):
        with pytest.raises(ValueError, match=ENV):
            parse_faults(bad)


def _fill_before_first_shard(mnt: Path, leave: int):
    """A wrap for the shard task: before the first shard, another writer fills ``mnt`` up
    to ``leave`` free bytes (after the stage checked its space)."""
    filler = mnt / "filler"

    def wrap(fn):
        def task(job):
            if not filler.exists():
                free = shutil.disk_usage(mnt).free
                filler.write_bytes(b"\0" * max(0, free - leave))
            return fn(job)
        return task
    return wrap, filler


def test_a_full_disk_is_named_nothing_half_written_counts_and_a_rerun_succeeds(
        tmpfs, tmp_path, tiny_config, draft_dir):
    mnt, remount = tmpfs
    cfg = with_shards(tiny_config, num_shards=4, per_shard=3000)  # about 170 KB of shards
    reference = tmp_path / "reference"
    generate_drafts(context(cfg, reference, LocalRuntime(), pretrain_draft=draft_dir))
    inputs = {"pretrain_draft": str(draft_dir)}
    store = ArtifactStore(mnt, cfg.name)
    shard = (reference / "shard-000000.tar").stat().st_size

    # The space is checked first (wsfm.space): refused before a shard is written...
    with pytest.raises(SpaceShort, match=f"generate_drafts \\(4 shards of 3,000 drafts\\) "
                                         f"needs .* \\({4 * shard:,} bytes\\)") as short:
        execute_stage("generate_drafts", cfg, inputs, str(mnt), "fp", LocalRuntime(), {})
    print(short.value)
    assert not list(mnt.rglob("*.tar")) and not list(mnt.rglob(".*.tmp-*"))

    # ...then the disk fills anyway (another writer, after the check): mid-shard.
    remount("1m")
    wrap, filler = _fill_before_first_shard(mnt, leave=shard + shard // 2)
    with pytest.raises(OSError, match=r"No space left on device") as info:
        execute_stage("generate_drafts", cfg, inputs, str(mnt), "fp",
                      WrappingRuntime(LocalRuntime(), wrap), {})
    assert info.value.filename == str(store.partial("generate_drafts", "fp"))
    print(info.value)
    assert store.load("generate_drafts", "fp") is None  # not marked complete...
    assert not list(mnt.rglob(SUCCESS))
    partial = store.partial("generate_drafts", "fp")
    for stats in partial.glob("shard-*.json"):  # ...and a shard with a record is whole
        record = json.loads(stats.read_text())
        assert check_shard(partial, ShardRecord(**record)) is None

    filler.unlink()
    remount("16m")
    record = execute_stage("generate_drafts", cfg, inputs, str(mnt), "fp", LocalRuntime(), {})
    final = store.path("generate_drafts", "fp")
    assert record["metrics"]["shards_reused"] >= 1  # what fitted the first time was kept
    assert verify_shards(final) == [] and store.load("generate_drafts", "fp", deep=True)
    assert manifest_rows(final) == manifest_rows(reference)


class _FillsBeforeTheModel(LocalRuntime):
    """Trains in this process with its checkpoints on another filesystem (``roomy``), and
    fills the stage folder's filesystem at the last step: the final checkpoint fits, the
    models written after it do not."""

    def __init__(self, full: Path | None, roomy: Path):
        super().__init__()
        self.full, self.roomy = full, roomy

    def train(self, spec):
        from wsfm.train.local import CHECKPOINTS, fit_local

        link = Path(spec.out_dir) / CHECKPOINTS
        if not link.exists():
            link.symlink_to(self.roomy)
        filled = []

        def hook(rank, step):
            if self.full is not None and step >= spec.train.steps - 1 and not filled:
                filled.append(fill_disk(self.full, leave=16384))

        return fit_local(spec, hooks=(hook,))


def test_a_disk_full_while_the_model_is_written_is_named_and_a_rerun_finishes(
        tmpfs, tmp_path, tiny_config):
    """``torch.save`` on a full disk says only "unexpected pos ..."; the stage's error must
    still say the disk is full, keep those words, name the folder, and commit nothing."""
    mnt, remount = tmpfs
    remount("4m")
    cfg = dataclasses.replace(tiny_config, train=dataclasses.replace(
        tiny_config.train, num_workers=1, checkpoint_every=1000))
    roomy = tmp_path / "checkpoints"
    roomy.mkdir()
    data = {"prepare_data": str(prepared_data(cfg, tmp_path))}  # its input, off the small disk
    with pytest.raises(OSError, match="No space left on device") as info:
        execute_stage("train_baseline", cfg, data, str(mnt), "fp",
                      _FillsBeforeTheModel(mnt, roomy), {})
    print(info.value)
    assert "(the error: RuntimeError:" in str(info.value)  # torch's own words, kept
    store = ArtifactStore(mnt, cfg.name)
    assert info.value.filename == str(store.partial("train_baseline", "fp"))
    assert [p.name for p in roomy.iterdir()] == [f"step-{cfg.train.steps:06d}"]  # it fitted
    assert store.load("train_baseline", "fp") is None and not list(mnt.rglob(SUCCESS))

    (mnt / "filler").unlink()
    record = execute_stage("train_baseline", cfg, data, str(mnt), "fp",
                           _FillsBeforeTheModel(None, roomy), {})  # nothing fills now
    assert record["metrics"]["steps"] == cfg.train.steps
    assert store.load("train_baseline", "fp", deep=True) is not None


STAGE_SCRIPT = r"""
import json, sys
from pathlib import Path
from wsfm.config import load_pipeline
from wsfm.orchestrate.local import LocalRuntime
from wsfm.orchestrate.runner import execute_stage
from tests.helpers import with_shards
cfg = with_shards(load_pipeline(sys.argv[1], profile="smoke"), num_shards=4, per_shard=20000)
record = execute_stage("generate_drafts", cfg, {"prepare_data": sys.argv[5],
                                                 "pretrain_draft": sys.argv[2]}, sys.argv[3],
                       "fp", LocalRuntime(), {"mlflow_run_id": sys.argv[4]})
print(json.dumps({"tags": record.get("tags", {}), "run": record.get("mlflow_run_id")}))
"""


def test_two_invocations_of_one_stage_wait_for_each_other_and_reuse(tmp_path, draft_dir):
    """Two processes run the same stage output on one store: the second waits on the
    stage's lock, then reuses what the first committed (nothing is built twice)."""
    root = tmp_path / "artifacts"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(ROOT / "pipelines" / "toy2d.yaml"), str(draft_dir), str(root)]
    data = str(prepared_data(load_pipeline(ROOT / "pipelines" / "toy2d.yaml", profile="smoke"),
                             tmp_path))  # the data the script's config reads
    first = subprocess.Popen([sys.executable, "-c", STAGE_SCRIPT, *args, "first", data], env=env,
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    partial = root / "toy2d" / "generate_drafts" / ".fp.partial"
    deadline = time.monotonic() + 300
    while not partial.exists():  # the first holds the lock and is writing shards
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second = subprocess.Popen([sys.executable, "-c", STAGE_SCRIPT, *args, "second", data],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    out1, out2 = (json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1])
                  for p in (first, second))
    assert first.returncode == 0 and second.returncode == 0
    assert out1["run"] == "first" and "wsfm.status" not in out1["tags"]
    assert out2["tags"]["wsfm.status"] == "reused" and out2["run"] == "first"
    store = ArtifactStore(root, "toy2d")
    assert store.load("generate_drafts", "fp", deep=True) is not None
    assert verify_shards(store.path("generate_drafts", "fp")) == []
    assert not partial.exists()


# -- the command line --------------------------------------------------------------------


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver; then its Ray processes (orphans a dead driver leaves behind)."""
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=20)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=20)


@pytest.mark.pipeline
def test_the_driver_sigkilled_during_training_resumes_from_the_checkpoint(smoke, tmp_path):
    # The shared run's home without the refiner and what follows it: the run trains the
    # refiner from scratch, the stages before it are there already.
    copy = smoke.copy(tmp_path, without=("train_refiner", "evaluate", "register"))
    pipeline, reference, home = copy.pipeline, smoke.home, copy.home
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        driver = subprocess.Popen(
            [sys.executable, "-m", "wsfm.cli", "run", str(pipeline), "--profile", "smoke"],
            env=cli_env(home, **{ENV: f"pause:train_refiner@{PAUSE}"}), cwd=ROOT, stdout=fh,
            stderr=subprocess.STDOUT)
        try:
            stage = home / "artifacts" / "toy2d" / "train_refiner"
            deadline = time.monotonic() + 900
            while True:  # the refiner checkpointed at step 80; rank 0 stalls after step 90
                steps = [(read_pointer(p) or {}).get("step") for p in stage.glob(".*.partial")]
                if 2 * EVERY in steps:
                    break
                assert driver.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint at step 80 in time"
                time.sleep(0.2)
        finally:
            _kill_tree(driver)
    assert not list(stage.glob("*/model.pt"))  # it was killed mid-training
    done = {s for s in STAGE_NAMES if list((home / "artifacts" / "toy2d" / s).glob(
        f"*/{SUCCESS}"))} if (home / "artifacts" / "toy2d").exists() else set()
    assert set(STAGE_NAMES) - done == {"train_refiner", "evaluate", "register"}
    before = {p: p.stat().st_mtime_ns for p in (home / "artifacts").rglob(SUCCESS)}

    proc = wsfm("run", str(pipeline), "--profile", "smoke", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = stage_lines(proc.stdout)
    assert all(status[s] == "cached" for s in done), status  # finished stages not rerun
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    summary = json.loads((committed(home, "train_refiner") / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == 2 * EVERY and summary["steps"] == STEPS
    assert_same_weights(committed(home, "train_refiner"), committed(reference, "train_refiner"))


@pytest.mark.pipeline
def test_a_stage_that_raises_keeps_upstream_discards_its_partial_and_exits_non_zero(
        smoke, tmp_path):
    copy = smoke.copy(tmp_path)
    pipeline, home = copy.pipeline, copy.home
    store = ArtifactStore(home / "artifacts", "toy2d")
    before = {p: p.stat().st_mtime_ns for p in (home / "artifacts").rglob(SUCCESS)}
    proc = wsfm("run", str(pipeline), "--profile", "smoke", "--from", "evaluate", home=home,
                env={ENV: "raise:evaluate"})
    assert proc.returncode == 1
    status = stage_lines(proc.stdout)
    assert status["evaluate"] == "FAILED" and status["register"] == "blocked"
    assert "InjectedFault" in proc.stdout and "before its commit" in proc.stdout
    assert not list((home / "artifacts" / "toy2d" / "evaluate").glob(".*.partial"))
    assert {p: p.stat().st_mtime_ns for p in (home / "artifacts").rglob(SUCCESS)} == before
    for stage in STAGE_NAMES:  # every output, upstream and the old evaluate, still verifies
        assert store.load(stage, committed(home, stage).name, deep=True) is not None, stage

    again = wsfm("run", str(pipeline), "--profile", "smoke", home=home)
    assert again.returncode == 0 and stage_lines(again.stdout) == {
        s: "cached" for s in STAGE_NAMES}


@pytest.mark.pipeline
def test_an_altered_shard_is_refused_by_training_named_by_verify_and_repaired_alone(
        smoke, tmp_path):
    copy = smoke.copy(tmp_path / "copy")
    pipeline, home = copy.pipeline, copy.home
    shards = committed(home, "generate_drafts")
    bad, good = shards / "shard-000001.tar", shards / "shard-000000.tar"
    original, good_mtime = bad.read_bytes(), good.stat().st_mtime_ns
    with tarfile.open(bad) as tar:
        offset = tar.getmembers()[-1].offset_data + 200  # inside a block of drafts
    altered = bytearray(original)
    altered[offset] ^= 0xFF
    time.sleep(0.05)
    bad.write_bytes(bytes(altered))  # same size, other bytes

    verify = wsfm("shards", "verify", str(shards), home=home)
    assert verify.returncode == 1 and "shard-000001.tar" in verify.stdout
    assert "shard-000000.tar" not in verify.stdout

    config = load_pipeline(pipeline, profile="smoke")
    with pytest.raises(ShardsDamaged, match=r"shard-000001\.tar: sha256 differs"):
        train_refiner(context(config, tmp_path / "train", NoRuntime(), generate_drafts=shards))

    proc = wsfm("run", str(pipeline), "--profile", "smoke", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = stage_lines(proc.stdout)
    assert status["generate_drafts"] == "done"
    assert {s for s, v in status.items() if v == "cached"} == set(STAGE_NAMES) - {
        "generate_drafts"}
    assert "shard-000001.tar fails its sha256" in proc.stdout
    assert bad.read_bytes() == original  # remade byte for byte...
    assert good.stat().st_mtime_ns == good_mtime  # ...and the good shard was kept
    assert wsfm("shards", "verify", str(shards), home=home).returncode == 0


@pytest.mark.pipeline
def test_two_invocations_at_once_do_not_corrupt_each_other(smoke, tmp_path):
    # The shared run's home without the shards and what they feed (a fan-out stage and a
    # training stage), and without its MLflow store: both invocations make those stages at
    # once, and log into one fresh store; the other stages are reused by both.
    made = ("generate_drafts", "train_refiner", "evaluate", "register")
    copy = smoke.copy(tmp_path, without=made)
    (copy.home / "mlflow.db").unlink()
    shutil.rmtree(copy.home / "mlartifacts", ignore_errors=True)
    pipeline, reference, home = copy.pipeline, smoke.home, copy.home
    args = [sys.executable, "-m", "wsfm.cli", "run", str(pipeline), "--profile", "smoke"]
    logs = [open(tmp_path / f"run{i}.log", "w+") for i in (1, 2)]
    procs = [subprocess.Popen(args, env=cli_env(home), cwd=ROOT, stdout=fh,
                              stderr=subprocess.STDOUT) for fh in logs]
    codes = [p.wait(timeout=1800) for p in procs]
    texts = [(tmp_path / f"run{i}.log").read_text() for i in (1, 2)]
    for fh in logs:
        fh.close()
    assert codes == [0, 0], [t[-3000:] for t in texts]

    store = ArtifactStore(home / "artifacts", "toy2d")
    for stage in STAGE_NAMES:
        folders = list((home / "artifacts" / "toy2d" / stage).iterdir())
        assert [p.name for p in folders] == [committed(home, stage).name], stage  # no partial
        assert store.load(stage, folders[0].name, deep=True) is not None
    assert_same_weights(committed(home, "train_refiner"), committed(reference, "train_refiner"))
    assert manifest_rows(committed(home, "generate_drafts")) == manifest_rows(
        committed(reference, "generate_drafts"))

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("toy2d").experiment_id])
    for stage in STAGE_NAMES:  # each stage was made once; the other run reused it
        statuses = sorted(r.data.tags.get("wsfm.status") for r in runs
                          if r.data.tags.get("wsfm.stage") == stage)
        assert len(statuses) == 2 and statuses.count("ran") == (stage in made), (stage,
                                                                                  statuses)
        assert set(statuses) - {"ran"} <= {"reused", "cached"}
    assert len(client.search_model_versions("name='wsfm-toy2d'")) == 1
    assert all(r.info.status == "FINISHED" for r in runs)


# -- Ray: a worker killed during draft generation ----------------------------------------


def _stall_then_die(pid_file: Path, index: int):
    """Shard ``index``'s first attempt writes part of its tar, says its pid, and waits to be
    killed from outside."""
    def wrap(fn):
        def shard(job):
            if job.index == index and not pid_file.exists():
                writer = ShardWriter(Path(job.out_dir), job.index)
                writer.write(np.zeros((7, 2), np.float32))
                writer._fh.flush()
                pid_file.write_text(str(os.getpid()))
                time.sleep(600)
            return fn(job)
        return shard
    return wrap


@pytest.mark.pipeline
def test_a_ray_worker_sigkilled_from_outside_during_draft_generation(
        tmp_path, tiny_config, draft_dir, ray_local):
    cfg = with_shards(tiny_config, num_shards=4, per_shard=400)
    reference = tmp_path / "reference"
    generate_drafts(context(cfg, reference, LocalRuntime(), pretrain_draft=draft_dir))

    out, pid_file = tmp_path / "shards", tmp_path / "worker.pid"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 300
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        killed.append(int(pid_file.read_text()))
        os.kill(killed[0], signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="t", max_retries=2)
    result = generate_drafts(context(cfg, out, WrappingRuntime(runtime, _stall_then_die(
        pid_file, 2)), pretrain_draft=draft_dir))
    thread.join(timeout=10)

    assert killed and killed[0] != os.getpid() and not psutil.pid_exists(killed[0])
    assert result.metrics["shards_written"] == 4
    assert verify_shards(out) == []
    assert manifest_rows(out) == manifest_rows(reference)
    for rec in read_manifest(reference):
        assert (out / rec.shard).read_bytes() == (reference / rec.shard).read_bytes()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the torn tar is gone
