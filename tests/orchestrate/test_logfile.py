"""The invocation's log file: what the user sees and what only the log gets."""

import subprocess
import sys
import textwrap

from wsfm.orchestrate.logfile import log_path, stage_tail

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


def test_log_names_are_per_invocation_and_stage_tail_picks_the_stages_lines(tmp_path):
    first = log_path(tmp_path / "logs", "toy2d", now=0.0)
    assert first.parent == tmp_path / "logs" and first.name.endswith("-toy2d.log")
    first.parent.mkdir()
    first.write_text("".join(
        f"(stage:evaluate pid=7) line {i}\n(RayTrainWorker pid=9) other {i}\n"
        for i in range(15)) + "\n")
    assert log_path(tmp_path / "logs", "toy2d", now=0.0) != first  # same second: a new name
    tail = stage_tail(first, "evaluate", lines=3)
    assert tail == [f"(stage:evaluate pid=7) line {i}" for i in (12, 13, 14)]
    assert stage_tail(first, "register", lines=2) == []
    assert stage_tail(tmp_path / "none.log", "evaluate") == []
