"""What the operator sees when a run fails for real: one line per failed stage (the stage,
the cause in words, what to do, the log file), no traceback on the console, a non-zero exit,
and a rerun that resumes. Each fault is the real one: a filesystem that fills up during
training (checkpoints, the progress files and the SQLite tracking store all on it), and
Ray's memory monitor killing the stage's worker."""

from __future__ import annotations

import glob
import shutil
import threading
import time

import pytest

from tests.helpers import copy_home, fill_disk, small_smoke, stage_lines, wsfm

pytestmark = [pytest.mark.reliability, pytest.mark.pipeline]


def console(proc) -> list[str]:
    """What the operator read: stdout and stderr, without the periodic progress lines."""
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and not line.startswith("[progress]")]


def fill_when(pattern: str, folder, leave: int, stop: threading.Event) -> threading.Thread:
    """A thread that, once ``pattern`` matches a path, fills ``folder``'s filesystem to
    ``leave`` bytes (another writer taking the space after the stage's own check)."""
    def fill():
        while not glob.glob(pattern):
            if stop.wait(0.05):
                return
        fill_disk(folder, leave)

    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    return thread


def test_a_disk_that_fills_during_training_is_one_line_each_and_a_rerun_resumes(
        smoke, tmpfs, tmp_path):
    disk, remount = tmpfs
    remount("24m")  # the finished stages fit, with room for one training stage
    # The session's smoke home without the refiner and what follows it, moved onto the small
    # disk (its Ray folder left behind): the refiner is the stage that trains there.
    copy = smoke.copy(tmp_path / "smoke", without=("train_refiner", "evaluate", "register"))
    shutil.rmtree(copy.home / "ray", ignore_errors=True)
    home, pipeline = copy_home(copy.home, disk / "home"), copy.pipeline
    stop = threading.Event()
    filler = fill_when(f"{home}/ray/*-train_refiner-*/step-*", home, 200_000, stop)
    try:
        proc = wsfm("run", str(pipeline), "--profile", "smoke", home=home, timeout=1500)
    finally:
        stop.set()
        filler.join()
    assert (home / "filler").is_file(), "the disk was not filled during training"
    lines = console(proc)
    assert proc.returncode != 0
    assert not [line for line in lines if "Traceback" in line or line.startswith(" ")], lines
    assert len(lines) < 30, lines
    [failed] = [line for line in lines if "FAILED" in line and line.startswith("[wsfm]")]
    assert failed.startswith("[wsfm] train_refiner    FAILED")
    assert "No space left on device" in failed and "run again" in failed
    assert "(log: " in failed
    errors = proc.stderr.strip().splitlines()
    assert len(errors) <= 1, errors  # the tracking store's loss, in one line, if it came
    if errors:
        assert "cannot be written, its disk is full" in errors[0]
        assert "Free some space on its disk and run the same command" in errors[0]

    (home / "filler").unlink()
    again = wsfm("run", str(pipeline), "--profile", "smoke", "--only", "train_refiner",
                 home=home, timeout=1500)
    assert again.returncode == 0, console(again)
    status = stage_lines(again.stdout)
    assert status["train_refiner"] == "done"
    assert status["pretrain_draft"] == status["generate_drafts"] == "cached"


def test_a_worker_killed_by_the_memory_monitor_is_one_line_not_a_hang(tmp_path):
    pipeline = small_smoke(tmp_path)
    home = tmp_path / "home"
    began = time.perf_counter()
    proc = wsfm("run", str(pipeline), "--profile", "smoke", "--only", "prepare_data",
                home=home, timeout=900,
                env={"RAY_memory_usage_threshold": "0.01",  # every worker is over it
                     "RAY_memory_monitor_refresh_ms": "100"})
    print(f"failed after {time.perf_counter() - began:.0f} s")
    lines = console(proc)
    assert proc.returncode == 1
    assert not [line for line in lines if "Traceback" in line], lines
    kills = [line for line in lines if "Ray's memory monitor killed a worker" in line]
    assert kills and all("Ray retries it" in line for line in kills)  # said as it happens
    [failed] = [line for line in lines if "FAILED" in line and line.startswith("[wsfm]")]
    assert failed.startswith("[wsfm] prepare_data     FAILED")
    assert "killed by Ray's memory monitor (the node used" in failed
    assert "resources.prepare_data.memory" in failed and "(log: " in failed

    again = wsfm("run", str(pipeline), "--profile", "smoke", "--only", "prepare_data",
                 home=home, timeout=900)
    assert again.returncode == 0 and stage_lines(again.stdout)["prepare_data"] == "done"
