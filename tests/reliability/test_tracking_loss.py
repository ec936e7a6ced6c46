"""The MLflow tracking server stopped in the middle of a run, then started again.

A real ``mlflow server`` (SQLite store, artifacts proxied into a folder) on 127.0.0.1 and the
toy2d smoke pipeline through the command line, shortened as in ``test_faults.py`` (120
steps, a checkpoint and a logged step every 40). ``train_refiner``'s rank 0 is paused by the
fault drill after step 40 (its step-40 metrics reached the server); the server is stopped (by
its pid); the pause is released (its marker deleted). Then the server comes back on the same
store and port, and the same command runs again. The home is a copy of the session's smoke
home without the refiner and the stages after it (the others are reused).

MLflow's own client settings keep the test short: two HTTP retries, one second of backoff
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``..._BACKOFF_FACTOR``; the defaults retry for about
four minutes per call).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import ROOT, STAGE_NAMES, cli_env, committed, stage_lines, wait_for_pause, wsfm
from tests.servers import free_port, mlflow_server
from wsfm.orchestrate.runner import PENDING
from wsfm.orchestrate.store import SUCCESS, ArtifactStore
from wsfm.train.faults import ENV
from wsfm.train.monitor import STEP_METRICS, read_step_metrics

pytestmark = pytest.mark.reliability
PAUSE = 40
QUICK_CLIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def finished(home: Path) -> set[str]:
    base = home / "artifacts" / "toy2d"
    return {s for s in STAGE_NAMES if (base / s).is_dir() and list((base / s).glob(f"*/{SUCCESS}"))}


def wait_for_step(client: MlflowClient, stage: str, step: int, timeout: float = 120) -> None:
    """Until the server holds ``stage``'s ``train/loss`` at ``step`` (sent before the stop)."""
    exp = client.get_experiment_by_name("toy2d")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in client.search_runs([exp.experiment_id], f"tags.`wsfm.stage` = '{stage}'"):
            if step in {m.step for m in client.get_metric_history(run.info.run_id,
                                                                  "train/loss")}:
                return
        time.sleep(0.5)
    raise AssertionError(f"{stage}'s step {step} never reached the server")


def test_a_tracking_server_down_at_start_is_one_line_before_any_work(smoke_yaml, tmp_path):
    """Nothing listens at the URI: refused before Ray, a store or a stage is touched."""
    home, uri = tmp_path / "home", f"http://127.0.0.1:{free_port()}"
    proc = wsfm("run", str(smoke_yaml), "--profile", "smoke", home=home, timeout=300,
                env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"wsfm: error: MLflow tracking server {uri} (MLFLOW_TRACKING_URI) cannot "
                     "be reached: ConnectionError; start it, or unset MLFLOW_TRACKING_URI to "
                     "use the local store"]
    assert "[wsfm]" not in proc.stdout
    assert not any((home / name).exists() for name in ("artifacts", "mlflow.db", "ray"))


@pytest.mark.pipeline
def test_the_tracking_server_lost_mid_run_keeps_the_work_and_the_next_run_logs_it(
        smoke, tmp_path):
    # The session's smoke home without the refiner and what follows it: the stages before it
    # are reused (cached), the refiner trains from scratch into the server.
    made_here = ("train_refiner", "evaluate", "register")
    copy = smoke.copy(tmp_path / "smoke", without=made_here)
    smoke_yaml, home = copy.pipeline, copy.home
    server_root, port = tmp_path / "mlflow", free_port()
    out, err = tmp_path / "first.out", tmp_path / "first.err"
    with mlflow_server(server_root, port=port) as server:
        env = cli_env(home, MLFLOW_TRACKING_URI=server.uri, **{ENV: f"pause:train_refiner@{PAUSE}"},
                      **QUICK_CLIENT)
        with open(out, "w") as fo, open(err, "w") as fe:
            driver = subprocess.Popen([sys.executable, "-m", "wsfm.cli", "run", str(smoke_yaml),
                                       "--profile", "smoke"], env=env, cwd=ROOT, stdout=fo,
                                      stderr=fe, text=True)
        try:
            marker = wait_for_pause(home / "artifacts" / "toy2d" / "train_refiner",
                                    PAUSE, driver, out, timeout=900)
            before_stop = finished(home)
            wait_for_step(MlflowClient(server.uri), "train_refiner", PAUSE)
        except BaseException:
            driver.kill()
            raise
    # The server is down (stopped by its pid, the `with` above); now let training go on.
    partial = marker.parent
    marker.unlink()
    try:
        code = driver.wait(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
    stdout, stderr = out.read_text(), err.read_text()
    print(stdout[-4000:], stderr[-2000:])

    # One clear line naming the server, no traceback; exit 2 (a condition the user can fix).
    assert code == 2, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("wsfm: error: MLflow tracking server "
                                                   f"{server.uri} (MLFLOW_TRACKING_URI) "
                                                   "stopped answering"), lines
    assert "Start the server again" in lines[0]
    assert "Traceback" not in stdout + stderr

    # The work is kept: the stages finished before the stop and the interrupted one, whole.
    store = ArtifactStore(home / "artifacts", "toy2d")
    kept = finished(home)
    assert before_stop | {"train_refiner"} <= kept and not partial.exists()
    for stage in kept:
        assert store.load(stage, committed(home, stage).name, deep=True) is not None, stage
    refiner = committed(home, "train_refiner")
    summary = json.loads((refiner / "train_summary.json").read_text())
    assert summary["attempts"] == 1  # tracking did not fail training
    assert summary["metrics_sent"] == 1 and summary["metrics_unsent"] == 2  # 40 | 80, 120
    assert [r["step"] for r in read_step_metrics(refiner)] == [40, 80, 120]
    [journal] = (home / "artifacts" / PENDING).glob("*.json")
    record = json.loads((refiner / SUCCESS).read_text())
    assert record["mlflow_run_id"] in {r["run_id"] for r in json.loads(journal.read_text())[
        "runs"]}
    first_parent = json.loads(journal.read_text())["parent"]
    mtimes = {p: p.stat().st_mtime_ns for p in (home / "artifacts").rglob(SUCCESS)}

    # The server back, on the same store and port: the same command.
    with mlflow_server(server_root, port=port) as server:
        again = wsfm("run", str(smoke_yaml), "--profile", "smoke", home=home,
                     env={"MLFLOW_TRACKING_URI": server.uri, **QUICK_CLIENT})
        assert again.returncode == 0, again.stderr[-3000:]
        status = stage_lines(again.stdout)
        assert all(status[s] == "cached" for s in kept), status  # finished stages reused
        assert all(status[s] == "done" for s in set(STAGE_NAMES) - kept), status
        assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # not rewritten
        assert "train_refiner    logged" in again.stdout
        assert not list((home / "artifacts" / PENDING).glob("*.json"))

        client = MlflowClient(server.uri)
        exp = client.get_experiment_by_name("toy2d")
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        by_id = {r.info.run_id: r for r in runs}
        for stage in made_here:  # every stage made here has its run, logged, FINISHED
            made_by = json.loads((committed(home, stage) / SUCCESS).read_text())[
                "mlflow_run_id"]
            run = by_id[made_by]
            assert run.info.status == "FINISHED", stage
            assert run.data.tags["wsfm.stage"] == stage and run.data.tags["wsfm.status"] == "ran"
            assert run.data.metrics, stage
        interrupted = by_id[record["mlflow_run_id"]]
        assert interrupted.data.tags["wsfm.logged_late"] == "true"
        assert interrupted.data.metrics["steps"] == 120
        history = client.get_metric_history(interrupted.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == [40, 80, 120]  # step 40 once, 80, 120 late
        assert {a.path for a in client.list_artifacts(interrupted.info.run_id)} >= {
            "train_summary.json", STEP_METRICS}
        parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
        assert parents.pop(first_parent).info.status == "FAILED"
        [(_, second)] = parents.items()
        assert second.info.status == "FINISHED"
