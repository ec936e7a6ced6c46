"""Rank 0's step metrics when the tracking server is away, and the pause drill's marker."""

from __future__ import annotations

import json
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.servers import free_port
from wsfm.tracking import Tracker
from wsfm.train.faults import PauseAt, pause_marker, step_hooks
from wsfm.train.monitor import STEP_METRICS, RankZeroMonitor, read_step_metrics


def test_a_tracking_server_that_is_not_there_neither_stalls_nor_fails_training(
        tmp_path, monkeypatch):
    """Nothing listens on the port: every send fails, the steps stay in the file, and the
    driver's tracker logs them later into a real store with their own timestamps."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    dead = f"http://127.0.0.1:{free_port()}"
    monitor = RankZeroMonitor({"uri": dead, "run_id": "0" * 32}, rank=0, every=10, total=50,
                              start=0, batch=64, desc="train_refiner", out_dir=tmp_path)
    began = time.perf_counter()
    for step in range(1, 51):
        monitor.step(step, loss=1.0 / step, lr=1e-3, seconds=0.001)
    assert time.perf_counter() - began < 5  # sends are off the training thread
    account = monitor.close(timeout=60)
    assert account["metrics_sent"] == 0 and account["metrics_unsent"] == 5
    assert "tracking_error" in account
    records = read_step_metrics(tmp_path)
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50]

    with open(tmp_path / STEP_METRICS, "a") as fh:
        fh.write('{"step": 60, "timest')  # a line cut short by a killed worker is skipped
    assert len(read_step_metrics(tmp_path)) == 5

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "toy2d", tmp_path / "art")
    run_id = tracker.start_run("train_refiner")
    assert tracker.log_step_history(run_id, tmp_path) == 5
    assert tracker.log_step_history(run_id, tmp_path) == 5  # again: duplicates are ignored
    history = MlflowClient(tracker.uri).get_metric_history(run_id, "train/loss")
    assert [(m.step, m.timestamp) for m in sorted(history, key=lambda m: m.step)] == [
        (r["step"], r["timestamp"]) for r in records]


def test_a_pause_fires_once_and_goes_on_when_its_marker_is_deleted(tmp_path):
    [hook] = step_hooks("train_refiner", {"WSFM_FAULT": "pause:train_refiner@7"},
                        out_dir=tmp_path)
    assert isinstance(hook, PauseAt) and hook.marker == str(pause_marker(tmp_path, 7))
    hook(0, 6)  # another step, another rank: nothing
    hook(1, 7)
    assert not pause_marker(tmp_path, 7).exists()

    done = threading.Event()
    thread = threading.Thread(target=lambda: (hook(0, 7), done.set()))
    thread.start()
    marker = pause_marker(tmp_path, 7)
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert json.loads(marker.read_text())["state"] == "paused"
    assert not done.wait(1.0)  # stalled
    marker.unlink()  # go on
    assert done.wait(10)
    thread.join()
    assert json.loads(marker.read_text())["state"] == "released"
    began = time.monotonic()
    hook(0, 7)  # a restarted worker group: the marker is there, it runs on
    assert time.monotonic() - began < 1


@pytest.mark.parametrize("state", ["paused", "released"])
def test_a_restarted_worker_finds_the_marker_and_runs_on(tmp_path, state):
    marker = pause_marker(tmp_path, 3)
    marker.write_text(json.dumps({"state": state}))  # left by a killed or released pause
    hook = PauseAt(rank=0, step=3, seconds=30, marker=str(marker))
    began = time.monotonic()
    hook(0, 3)
    assert time.monotonic() - began < 1
