"""A failed stage reaches the operator as one line: the stage's own exception found inside
Ray's and Ray Train's wrappers, what to do, and the log file."""

from __future__ import annotations

import errno
from pathlib import Path

import ray.exceptions
from ray.train import WorkerGroupError

from wsfm.orchestrate.console import failure_line, remedy, root_cause, short_error
from wsfm.space import SpaceShort

LOG = Path("/home/logs/20261206-070000-toy2d.log")


def remote(exc: BaseException, name: str = "stage:train_refiner") -> BaseException:
    """``exc`` as ``ray.get`` raises it in the driver (a Ray task's error)."""
    return ray.exceptions.RayTaskError(name, "Traceback (most recent call last): ...", exc)


def test_a_training_worker_out_of_space_is_named_inside_ray_trains_wrappers():
    full = OSError(errno.ENOSPC, "No space left on device")
    group = WorkerGroupError("[Rank 0 Error Snippet]:\nOSError: ...\n... (Output truncated)",
                             {1: ValueError("rank 1 saw rank 0 go"), 0: full})
    exc = remote(group)
    assert root_cause(exc) is full  # the lowest rank's failure, not the wrapper's text
    line = failure_line("train_refiner", 12.0, exc, LOG)
    assert "\n" not in line and line.startswith("[wsfm] train_refiner    FAILED")
    assert "OSError: [Errno 28] No space left on device" in line
    assert "free some space and run again" in line and line.endswith(f"(log: {LOG})")
    assert "Truncated" not in line and "RayTaskError" not in line


def test_a_worker_killed_by_the_memory_monitor_is_said_in_words_with_its_numbers():
    # The text of Ray 2.60's OutOfMemoryError, as a stage task killed by the monitor raised it.
    text = ("1 worker(s) were killed due to the node running low on memory. Memory on the node "
            "(IP: 192.0.2.2, ID: 368a) was 4.20GB used / 23.54GB limit (0.178462)\n"
            "OOM kill reason: Memory usage 4510842880B exceeded threshold of 252761904B "
            "(1.0% of 25276190720B limit)\nObject store memory usage: ...\nRefer to the "
            "documentation on how to address the out of memory issue: https://docs.ray.io/")
    exc = ray.exceptions.OutOfMemoryError(text)
    assert short_error(exc) == ("a Ray worker of this stage was killed by Ray's memory "
                                "monitor (the node used 4.20GB of 23.54GB; its threshold is "
                                "1.0% of the limit)")
    todo = remedy(exc, "fit_evaluator")
    assert "resources.fit_evaluator.memory" in todo and "RAY_memory_usage_threshold" in todo


def test_what_to_do_follows_the_cause():
    short = SpaceShort("train_baseline needs 9.6 MB ...: it did not start; free some space "
                       "(or move the home, WSFM_HOME) and run again")
    assert remedy(remote(short), "train_baseline") == ""  # its message says it already
    assert "wsfm.space.SpaceShort: train_baseline needs 9.6 MB" in short_error(remote(short))
    assert remedy(remote(ValueError("a bad row")), "evaluate").startswith(
        "the traceback is in the log")
    died = ray.exceptions.WorkerCrashedError()
    assert "died" in short_error(died) and "resumes from its checkpoint" in remedy(died, "x")
    # A message over several lines becomes one line, its first words kept.
    assert short_error(remote(RuntimeError("first\n  second"))) == "RuntimeError: first second"
