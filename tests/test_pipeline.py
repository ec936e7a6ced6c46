"""End to end: the toy2d smoke profile through the real CLI (Ray, DeepSpeed, MLflow, shards)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import STAGE_NAMES, cli_env, stage_lines, wsfm
from wsfm.orchestrate.store import ArtifactStore
from wsfm.shards import read_manifest

pytestmark = pytest.mark.pipeline


def wsfm_in_terminal(*args: str, home: Path, timeout: int = 900) -> tuple[int, str]:
    """``wsfm`` with a pseudo-terminal (200 columns) as stdout and stderr: what a user sees."""
    env = cli_env(home)
    env.pop("COLUMNS", None)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "wsfm.cli", *args], env=env, cwd=home.parent,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = b"".join(chunks).decode(errors="replace")
    print(text[-4000:])
    return proc.wait(timeout=60), text


def test_every_stage_ran_and_left_verified_artifacts(smoke):
    assert stage_lines(smoke.first.stdout) == {n: "done" for n in STAGE_NAMES}
    store = ArtifactStore(smoke.home / "artifacts", "toy2d")
    for name in STAGE_NAMES:
        (folder,) = [p for p in (store.root / "toy2d" / name).iterdir()
                     if not p.name.startswith(".")]
        assert store.load(name, folder.name, deep=True) is not None, name
    (shards,) = (store.root / "toy2d" / "generate_drafts").iterdir()
    records = read_manifest(shards)
    cfg = smoke.config
    assert len(records) == cfg.shards.num_shards
    assert sum(r.count for r in records) == cfg.shards.num_shards * cfg.shards.per_shard
    for rec in records:
        assert hashlib.sha256((shards / rec.shard).read_bytes()).hexdigest() == rec.sha256
    (evaluated,) = (store.root / "toy2d" / "evaluate").iterdir()
    report = json.loads((evaluated / "metrics.json").read_text())
    assert report["speedup_nfe"] == 10.0 and report["task"] == "toy2d"
    assert (evaluated / "samples.png").stat().st_size > 10_000


def test_mlflow_holds_the_run_tree_and_the_registered_model(smoke):
    client = MlflowClient(f"sqlite:///{smoke.home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("toy2d")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") ==
                parents[0].info.run_id]
    assert sorted(r.data.tags["wsfm.stage"] for r in children) == sorted(STAGE_NAMES)
    assert all(r.info.status == "FINISHED" for r in children)
    by_stage = {r.data.tags["wsfm.stage"]: r for r in children}
    assert "reference_swd" in by_stage["fit_evaluator"].data.metrics
    assert client.get_metric_history(by_stage["train_refiner"].info.run_id, "train/loss")
    assert parents[0].data.params["flow.t0"] == "0.9"
    version = client.get_model_version_by_alias("wsfm-toy2d", "champion")
    assert str(version.version) == "1" and version.run_id == by_stage["register"].info.run_id


def test_sample_cli_loads_the_champion_through_mlflow(smoke, tmp_path):
    out = tmp_path / "samples.npy"
    proc = wsfm("sample", "--model", "models:/wsfm-toy2d@champion", "-n", "300",
                "--out", str(out), home=smoke.home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = np.load(out)
    assert samples.shape == (300, 2) and np.isfinite(samples).all()


def test_rerun_with_nothing_changed_skips_every_stage(smoke, tmp_path):
    smoke = smoke.copy(tmp_path)
    proc = wsfm("run", str(smoke.pipeline), "--profile", "smoke", home=smoke.home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stage_lines(proc.stdout) == {n: "cached" for n in STAGE_NAMES}
    client = MlflowClient(f"sqlite:///{smoke.home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("toy2d").experiment_id])
    cached = [r for r in runs if r.data.tags.get("wsfm.status") == "cached"]
    made = {r.info.run_id for r in runs if r.data.tags.get("wsfm.status") == "ran"}
    assert len(cached) == len(STAGE_NAMES)
    assert all(r.data.tags["wsfm.producer_run_id"] in made for r in cached)


def test_from_reruns_exactly_the_downstream_stages(smoke, tmp_path):
    smoke = smoke.copy(tmp_path)
    store = ArtifactStore(smoke.home / "artifacts", "toy2d")
    before = {p: p.stat().st_mtime_ns for p in store.root.rglob("_SUCCESS.json")}
    plan = wsfm("run", str(smoke.pipeline), "--profile", "smoke", "--dry-run",
                "--from", "train_refiner", home=smoke.home)
    planned = {line.split()[1]: line.split()[2] for line in plan.stdout.splitlines()
               if line.startswith("[plan]")}
    assert {s for s, a in planned.items() if a == "run"} == {
        "train_refiner", "evaluate", "register"}  # the refiner's rectified round: unused
    proc = wsfm("run", str(smoke.pipeline), "--profile", "smoke", "--from", "evaluate",
                home=smoke.home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = stage_lines(proc.stdout)
    assert {s for s, v in status.items() if v == "done"} == {"evaluate", "register"}
    assert {s for s, v in status.items() if v == "cached"} == set(STAGE_NAMES) - {
        "evaluate", "register"}
    after = {p: p.stat().st_mtime_ns for p in store.root.rglob("_SUCCESS.json")}
    untouched = [p for p in before if p.parts[-3] not in ("evaluate", "register")]
    assert all(after[p] == before[p] for p in untouched)


def test_a_damaged_shard_is_named_and_repaired_by_a_rerun_under_a_live_bar(smoke, tmp_path):
    smoke = smoke.copy(tmp_path)  # it rewrites the generate_drafts output in place
    store = ArtifactStore(smoke.home / "artifacts", "toy2d")
    [success] = (store.root / "toy2d" / "generate_drafts").glob("*/_SUCCESS.json")
    shards = success.parent
    bad = shards / "shard-000001.tar"
    good_sha = hashlib.sha256(bad.read_bytes()).hexdigest()
    bad.write_bytes(bad.read_bytes()[:3000])

    verify = wsfm("shards", "verify", str(shards), home=smoke.home)
    assert verify.returncode == 1 and "shard-000001.tar" in verify.stdout
    assert "shard-000000.tar" not in verify.stdout

    args = ("run", str(smoke.pipeline), "--profile", "smoke")
    try:
        code, text = wsfm_in_terminal(*args, home=smoke.home)
        terminal = True
    except OSError:  # no pseudo-terminals on this machine: the repair is still checked
        proc = wsfm(*args, home=smoke.home)
        code, text, terminal = proc.returncode, proc.stdout + proc.stderr, False
    assert code == 0, text[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)  # no colours or erase-line codes
    lines = plain.replace("\r", "\n").splitlines()
    status = stage_lines("\n".join(lines))
    assert status["generate_drafts"] == "done"
    assert {s for s, v in status.items() if v == "cached"} == set(STAGE_NAMES) - {
        "generate_drafts"}
    started = next(line for line in lines if "generate_drafts  started" in line)
    assert "shard-000001.tar has 3000 bytes" in started  # the rerun names the shard
    client = MlflowClient(f"sqlite:///{smoke.home / 'mlflow.db'}")
    [latest] = client.search_runs(
        [client.get_experiment_by_name("toy2d").experiment_id],
        "tags.`wsfm.stage` = 'generate_drafts' and tags.`wsfm.status` = 'ran'",
        order_by=["attributes.start_time DESC"], max_results=1)
    assert latest.data.tags["shards_repaired"] == "shard-000001.tar"
    assert latest.data.metrics["shards_written"] == 1  # shard 0 was kept
    if terminal:
        # The live bar: redrawn in place ("\r"), from the stage's snapshot, with rate and ETA.
        bars = [line for line in lines if line.startswith("[") and "generate_drafts" in line
                and "shards" in line]
        assert bars and "/2 shards" in bars[-1] and "drafts/s" in bars[-1], lines[-40:]
        # ... and the stage task printed no progress lines of its own (Ray would forward them).
        assert all(line.startswith("[") for line in lines if "/2 shards" in line)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == good_sha
    assert wsfm("shards", "verify", str(shards), home=smoke.home).returncode == 0
