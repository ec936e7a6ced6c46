"""The operator's command line on the finished smoke pipeline (the session's shared home):
quiet output with a log file, ``status``, ``dag``, ``runs``, a failing stage and a stage too
big for the cluster. The tests that change something work on a copy of the home.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import STAGE_NAMES, stage_lines, write_pipeline, wsfm
from wsfm.stages import STAGES

pytestmark = pytest.mark.pipeline
EDGES = {(d, s.name) for s in STAGES for d in s.deps}
# What the driver used to show off a terminal: Ray's, DeepSpeed's, torch's and MLflow's own.
INTERNALS = re.compile(r"pid=|Ray|ray\.|DeepSpeed|deepspeed|Warning|Traceback|INFO|WARNING|"
                       r"controller|Downloading")


def log_of(out: str) -> Path:
    """The log file that the run's first line names."""
    first = out.splitlines()[0]
    assert first.startswith("[wsfm] log: "), first
    return Path(first.removeprefix("[wsfm] log: "))


def test_the_default_output_is_short_and_the_log_file_has_the_rest(smoke):
    out = smoke.first.stdout
    assert stage_lines(out) == {n: "done" for n in STAGE_NAMES}
    lines = out.splitlines()
    assert len(lines) < 60, out
    assert not [line for line in lines if INTERNALS.search(line)], out
    assert smoke.first.stderr == ""
    log = log_of(out)
    assert log.parent == smoke.home / "logs" and log.name.endswith("-toy2d.log")
    text = log.read_text()
    assert "pid=" in text and "[wsfm] register         done" in text  # both kinds of line
    # Training stages wait for their turn instead of timing out inside Ray Train. (Ray
    # Train's "Failed to query Ray Train Controller actor state" lines are another matter:
    # its placement-group cleaner asks the State API, which needs the dashboard we leave out;
    # they are harmless and stay in the log.)
    assert "controller error" not in text and "TrainingFailedError" not in text
    assert "\x1b[" not in text  # Ray's colour codes are left out of the file


def test_status_is_0_when_up_to_date_and_1_naming_the_changed_key(smoke, tmp_path):
    ok = wsfm("status", str(smoke.pipeline), "--profile", "smoke", home=smoke.home)
    assert ok.returncode == 0, ok.stdout
    n = len(STAGE_NAMES)
    assert ok.stdout.splitlines()[0] == f"toy2d (profile smoke): {n} of {n} stages up to date"
    changed = write_pipeline(tmp_path / "changed.yaml", smoke.pipeline, train={"lr": 0.0005})
    stale = wsfm("status", str(changed), "--profile", "smoke", home=smoke.home)
    assert stale.returncode == 1, stale.stdout
    rows = {line.split()[0]: line for line in stale.stdout.splitlines()[1:] if line[2] != " "}
    assert "stale" in rows["train_refiner"] and "config train.lr: 0.002 -> 0.0005" in rows[
        "train_refiner"]
    assert "upstream train_refiner changed" in stale.stdout
    assert "up to date" in rows["pretrain_draft"] and "up to date" in rows["fit_evaluator"]


def test_dag_lists_every_edge_and_marks_the_stages(smoke, tmp_path):
    proc = wsfm("dag", str(smoke.pipeline), "--profile", "smoke", home=smoke.home)
    assert proc.returncode == 0, proc.stderr
    found = re.findall(r"^  (\w+) -> (\w+)$", proc.stdout, re.MULTILINE)
    assert {tuple(e) for e in found} == EDGES
    marks = dict(re.findall(r"^  (\w+)\s+(cached|stale|missing) ", proc.stdout, re.MULTILINE))
    assert marks == {n: "cached" for n in STAGE_NAMES}
    changed = write_pipeline(tmp_path / "changed.yaml", smoke.pipeline, train={"lr": 0.0005})
    png, mmd = tmp_path / "dag.png", tmp_path / "dag.mmd"
    for out in (png, mmd):
        proc = wsfm("dag", str(changed), "--profile", "smoke", "-o", str(out),
                    home=smoke.home)
        assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert 'train_refiner["train_refiner<br/>stale"]' in mmd.read_text()
    arrows = re.findall(r"^  (\w+) --> (\w+)$", mmd.read_text(), re.MULTILINE)
    assert {tuple(e) for e in arrows} == EDGES


def test_runs_list_and_show_the_invocation(smoke):
    listed = wsfm("runs", "list", "toy2d", home=smoke.home)
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[-1]
    run_id = row.split()[0]
    assert "FINISHED" in row and f"{len(STAGE_NAMES)} ran" in row and "warm_quality=" in row
    shown = wsfm("runs", "show", run_id, home=smoke.home)
    assert shown.returncode == 0, shown.stderr
    stages = {line.split()[0]: line.split()[1] for line in shown.stdout.splitlines()
              if line.split() and line.split()[0] in STAGE_NAMES}
    assert stages == {n: "ran" for n in STAGE_NAMES}


def test_verbose_streams_what_the_log_gets(smoke, tmp_path):
    smoke = smoke.copy(tmp_path)
    proc = wsfm("run", str(smoke.pipeline), "--profile", "smoke", "--only", "fit_evaluator",
                "-v", home=smoke.home)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert stage_lines(proc.stdout)["fit_evaluator"] == "done"
    assert any(INTERNALS.search(line) for line in proc.stdout.splitlines()), proc.stdout
    log = log_of(proc.stdout).read_text()
    assert "Started a local Ray instance" in log and "Started a local Ray instance" in proc.stdout


def test_a_failing_stage_shows_its_own_error_and_the_log_path(smoke, tmp_path):
    # A fault drill (WSFM_FAULT, wsfm.train.faults): evaluate raises its own error after its
    # work, inside its Ray task. (Damaging an input no longer works: the store notices it.)
    smoke = smoke.copy(tmp_path)
    proc = wsfm("run", str(smoke.pipeline), "--profile", "smoke", "--only", "evaluate",
                home=smoke.home, env={"WSFM_FAULT": "raise:evaluate"})
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    (failed,) = [line for line in lines if line.startswith("[wsfm] evaluate         FAILED")]
    assert "InjectedFault: injected fault (WSFM_FAULT): evaluate raised" in failed  # its own
    assert "RayTaskError" not in failed
    assert "Traceback" not in proc.stdout and len(lines) < 60
    log = log_of(proc.stdout)
    assert f"[wsfm] full log: {log}" in lines
    assert "Traceback" in log.read_text()  # the whole trace is kept there
    assert stage_lines(proc.stdout)["register"] == "cached"


def test_a_stage_that_can_never_fit_is_refused_before_anything_runs(smoke, tmp_path):
    smoke = smoke.copy(tmp_path)
    huge = smoke.pipeline.with_name("huge.yaml")
    write_pipeline(huge, smoke.pipeline, resources={"train_baseline": {"num_cpus": 512}})
    proc = wsfm("run", str(huge), "--profile", "smoke", "--only", "train_baseline",
                home=smoke.home)
    assert proc.returncode == 2
    assert "train_baseline needs 512 CPUs at a time, but the cluster has" in proc.stderr
    assert "started" not in proc.stdout
