"""The invocation's log file: what the user sees and what only the log gets."""

import os
import subprocess
import sys
import textwrap

from tests.helpers import fill_disk
from wsfm.orchestrate.logfile import log_path

SCRIPT = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from wsfm.orchestrate.logfile import capture

    with capture(Path(sys.argv[1]), verbose=sys.argv[2] == "1") as cap:
        cap.echo("[wsfm] for the user")
        print("python print")
        print("python stderr", file=sys.stderr)
        logging.getLogger("ray").warning("a library's logging")
        warnings.warn("a FutureWarning", FutureWarning)
        os.write(2, b"C++ writes to fd 2\\n")
        subprocess.run([sys.executable, "-c", "print('a child process')"])
        for line in (1, 2):  # a warning from a wsfm module: for the user, once
            exec(compile("\\n" * line + "warnings.warn('use fewer ranks')",
                         "/site/wsfm/shard_reader.py", "exec"))
    print("after: back on stdout")
""")
NOISE = ["python print", "python stderr", "a library's logging", "a FutureWarning",
         "C++ writes to fd 2", "a child process"]


def run(tmp_path, verbose):
    log = tmp_path / f"run{verbose}.log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(log), str(int(verbose))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc, log.read_text()


def test_only_the_drivers_messages_reach_the_user_and_the_log_has_everything(tmp_path):
    proc, log = run(tmp_path, verbose=False)
    assert proc.stdout == ("[wsfm] for the user\n[wsfm] warning: use fewer ranks\n"
                           "after: back on stdout\n")
    assert proc.stderr == ""
    assert all(line in log for line in NOISE + ["[wsfm] for the user"])
    assert "after: back on stdout" not in log


def test_verbose_streams_the_log_as_well(tmp_path):
    proc, log = run(tmp_path, verbose=True)
    assert all(line in proc.stdout for line in NOISE + ["[wsfm] for the user"])
    assert all(line in log for line in NOISE)


def test_log_names_are_per_invocation(tmp_path):
    first = log_path(tmp_path / "logs", "toy2d", now=0.0)
    assert first.parent == tmp_path / "logs" and first.name.endswith("-toy2d.log")
    first.parent.mkdir()
    first.write_text("a run\n")
    assert log_path(tmp_path / "logs", "toy2d", now=0.0) != first  # same second: a new name


FULL = textwrap.dedent("""
    import sys
    from pathlib import Path
    from wsfm.orchestrate.logfile import capture

    path = Path(sys.argv[1])
    with capture(path) as cap:
        cap.echo("[wsfm] first")
        print("noise for the log", flush=True)
        # The raylet's line when its memory monitor killed a worker (Ray 2.60's words).
        print("(raylet) Task execute_stage failed due to oom. There are 2 oom retries "
              "remaining, so the task will be retried. Error: 1 worker(s) were killed due to "
              "the node running low on memory. Memory on the node (IP: 192.0.2.2, ID: 6e3b) "
              "was 4.81GB used / 23.54GB limit (0.204493)", file=sys.stderr, flush=True)
        cap.echo(f"[wsfm] full log: {path}")
""")


def run_full(tmp_path, log, tmpdir):
    return subprocess.run([sys.executable, "-c", FULL, str(log)], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "TMPDIR": str(tmpdir)})


def test_a_log_on_a_full_disk_moves_to_the_temporary_folder_and_the_lines_say_so(
        tmpfs, tmp_path):
    mnt, _ = tmpfs
    fill_disk(mnt)
    (tmp_path / "tmp").mkdir()
    log = mnt / "logs" / "run.log"
    proc = run_full(tmp_path, log, tmp_path / "tmp")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    moved = tmp_path / "tmp" / "wsfm-logs" / "run.log"
    lines = proc.stdout.splitlines()
    assert lines[0] == "[wsfm] first"  # shown, then the log failed to take it
    assert lines[1] == (f"[wsfm] warning: the log {log} cannot be written (No space left on "
                        f"device); it goes on in {moved}")
    assert f"[wsfm] full log: {moved}" in lines  # the line that names the log follows it
    assert ("[wsfm] warning: Ray's memory monitor killed a worker running execute_stage (the "
            "node used 4.81GB of 23.54GB); Ray retries it (2 retries left)") in lines
    assert len(lines) == 4
    text = moved.read_text()
    assert "[wsfm] first" in text and "noise for the log" in text


def test_a_log_that_fits_nowhere_is_dropped_with_one_warning(tmpfs, tmp_path):
    mnt, _ = tmpfs
    fill_disk(mnt)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "wsfm-logs").write_text("")  # a file where the fallback folder goes
    proc = run_full(tmp_path, mnt / "logs" / "run.log", tmp_path / "tmp")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    warned = [line for line in proc.stdout.splitlines() if "cannot be written" in line]
    assert len(warned) == 1 and "tracebacks are dropped (-v shows them)" in warned[0]
    assert "[wsfm] first" in proc.stdout and "noise for the log" not in proc.stdout
