"""Stage locks held by another process for real: who holds one, what a waiter says, and what
is left when the holder dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import ROOT
from wsfm.orchestrate.locks import describe_holder, lock_holder, stage_lock, stage_lock_path

HOLD = r"""
import sys, time
from pathlib import Path
from wsfm.orchestrate.locks import stage_lock
root, release = sys.argv[1], Path(sys.argv[2])
with stage_lock(root, "toy2d", "train_refiner", "fp", holder={"mlflow_run_id": "run-1"}):
    print("held", flush=True)
    while not release.exists():
        time.sleep(0.05)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding ``train_refiner``'s lock under ``tmp_path / "root"`` until
    ``release`` exists: ``(process, release)``."""
    release = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "root"), str(release)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held"
    try:
        yield proc, release
    finally:
        release.touch()
        proc.wait(timeout=60)


def test_the_holder_is_named_while_it_holds_and_nobody_after(tmp_path, holder):
    proc, release = holder
    path = stage_lock_path(tmp_path / "root", "toy2d", "train_refiner", "fp")
    record = lock_holder(path)
    assert record is not None and record["mlflow_run_id"] == "run-1"
    assert record["pid"] == proc.pid and record["host"] == socket.gethostname()
    assert abs(record["since"] - time.time()) < 120
    assert describe_holder(record).startswith(f"MLflow run run-1, pid {proc.pid} on ")
    release.touch()
    assert proc.wait(timeout=60) == 0
    assert lock_holder(path) is None and path.read_text() == ""  # released: no record left


def test_a_waiter_says_once_whom_it_waits_for_then_takes_the_lock(tmp_path, holder, capfd):
    proc, release = holder
    waited = []

    def let_go():
        time.sleep(2.5)  # a few polls
        release.touch()

    threading.Thread(target=let_go, daemon=True).start()
    with stage_lock(tmp_path / "root", "toy2d", "train_refiner", "fp",
                    holder={"mlflow_run_id": "run-2"}) as w:
        waited.append(w)
        path = stage_lock_path(tmp_path / "root", "toy2d", "train_refiner", "fp")
        assert json.loads(path.read_text())["mlflow_run_id"] == "run-2"
    assert waited == [True]
    lines = [line for line in capfd.readouterr().err.splitlines() if "waiting for" in line]
    assert len(lines) == 1, lines
    assert (f"train_refiner is being made by another invocation (MLflow run run-1, pid "
            f"{proc.pid} on ") in lines[0]


def test_a_holder_killed_leaves_no_lock(tmp_path, holder):
    proc, _ = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    path = stage_lock_path(tmp_path / "root", "toy2d", "train_refiner", "fp")
    assert path.read_text()  # its record is still in the file...
    assert lock_holder(path) is None  # ...but nobody holds the lock: the kernel dropped it
    with stage_lock(tmp_path / "root", "toy2d", "train_refiner", "fp") as waited:
        assert not waited
