"""The driver's live bar, drawn from the snapshots that stages keep."""

import io
import time

from wsfm.orchestrate.board import StageBoard
from wsfm.progress import SNAPSHOT, Progress
from wsfm.train.monitor import RankZeroMonitor


def test_the_bar_shows_every_running_stage_from_its_snapshot(tmp_path):
    shards, train = tmp_path / "gen", tmp_path / "train"
    shards.mkdir()
    train.mkdir()
    out = io.StringIO()
    board = StageBoard(out, live=True, width=400)
    board.watch("generate_drafts", shards)
    board.watch("train_refiner", train)
    board.refresh()
    assert out.getvalue() == "\rgenerate_drafts  starting  |  train_refiner  starting\x1b[K"

    # The writers the stages use: a map's Progress and the rank-0 training monitor.
    with Progress(8, desc="generate_drafts", unit="shards", work_total=800, work_unit="drafts",
                  path=shards / SNAPSHOT, quiet=True) as p:
        p.update(2, 200)
    monitor = RankZeroMonitor(None, rank=0, every=50, total=300, start=0, batch=64,
                              desc="train_refiner", out_dir=train)
    for step in range(1, 11):
        monitor.step(step, loss=0.5, lr=1e-3, seconds=0.01)
    board.refresh()
    line = out.getvalue().rsplit("\r", 1)[1]
    assert "[######..................] generate_drafts  2/8 shards   25.0%  200 drafts" in line
    assert "|  [" in line and "train_refiner  1/300 steps" in line  # saved at step 1
    assert "loss 0.5000  lr 1.00e-03" in line and "6.4k samples/s" in line and "ETA" in line

    board.unwatch("generate_drafts")
    board.clear()
    assert out.getvalue().endswith("\r\x1b[K")
    narrow = StageBoard(io.StringIO(), live=True, width=40)
    narrow.watch("train_refiner", train)
    narrow.refresh()
    assert len(narrow.stream.getvalue()) == len("\r") + 39 + len("\x1b[K")  # never wraps


def test_a_snapshot_from_an_earlier_attempt_is_not_shown(tmp_path):
    with Progress(4, desc="generate_drafts", path=tmp_path / SNAPSHOT, quiet=True) as p:
        p.update(3)
    time.sleep(1.1)
    board = StageBoard(io.StringIO(), live=True, width=200)
    board.watch("generate_drafts", tmp_path)
    assert board.line() == "generate_drafts  starting"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_off_a_terminal_the_board_prints_periodic_lines_when_a_stage_moved(tmp_path):
    out, clock = io.StringIO(), Clock()
    board = StageBoard(out, every=20.0, clock=clock)
    assert not board.live
    board.watch("generate_drafts", tmp_path)
    with Progress(8, desc="map", unit="shards", path=tmp_path / SNAPSHOT, quiet=True) as p:
        p.update(2)
    board.refresh()
    assert out.getvalue() == ""  # the first line comes ``every`` seconds after the start
    clock.now += 20.0
    board.refresh()
    board.refresh()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[progress] generate_drafts  2/8 shards")
    clock.now += 40.0
    board.refresh()  # due, but the snapshot has not moved: nothing new to say
    assert out.getvalue().count("\n") == 1
    time.sleep(1.05)  # snapshots are written at most once a second
    with Progress(8, desc="map", unit="shards", path=tmp_path / SNAPSHOT, quiet=True) as p:
        p.update(5)
    board.refresh()
    assert out.getvalue().splitlines()[-1].startswith("[progress] generate_drafts  5/8 shards")
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    board.unwatch("generate_drafts")
    clock.now += 100.0
    board.refresh()
    board.echo(out.write)("[wsfm] x done\n")
    assert out.getvalue().count("\n") == 3 and out.getvalue().endswith("[wsfm] x done\n")
