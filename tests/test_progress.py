import io

import pytest

from wsfm.progress import Progress, format_duration, format_line, format_rate, read_snapshot


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_formats():
    assert format_duration(0) == "0:00:00"
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(float("inf")) == "?"
    assert format_rate(85_234) == "85.2k"
    assert format_rate(2_500_000) == "2.5M"
    assert format_rate(12.0) == "12"


def test_log_lines_are_periodic_and_complete():
    clock, out = Clock(), io.StringIO()
    p = Progress(4, desc="gen", unit="shards", work_total=400, work_unit="drafts",
                 stream=out, interval=10, clock=clock)
    with p:
        clock.now += 2
        p.update(1, 100)  # 2 s after the first line: too soon for another
        clock.now += 9
        p.update(1, 100)  # 11 s: a line
        clock.now += 1
        p.update(1, 100)
        clock.now += 1
        p.update(1, 100)  # done: always shown
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("gen  0/4 shards") and "ETA ?" in lines[0]
    # 200 drafts in 11 s, 200 left at that rate: 11 s to go.
    assert "2/4 shards" in lines[1] and "200 drafts" in lines[1]
    assert "18.2 drafts/s" in lines[1] and "ETA 0:00:11" in lines[1]
    assert "4/4 shards" in lines[2] and "100.0%" in lines[2] and "in 0:00:13" in lines[2]


def test_rate_counts_items_without_work():
    clock, out = Clock(), io.StringIO()
    p = Progress(10, unit="steps", stream=out, interval=0, clock=clock)
    clock.now += 4
    p.update(2)
    assert p.rate() == pytest.approx(0.5) and p.eta() == pytest.approx(16.0)
    assert "0.5 steps/s" in out.getvalue()


def test_a_snapshot_file_carries_the_same_line_and_quiet_prints_nothing(tmp_path):
    clock, out = Clock(), io.StringIO()
    path = tmp_path / "progress.json"
    p = Progress(4, desc="gen", unit="shards", work_total=400, work_unit="drafts", stream=out,
                 interval=10, clock=clock, path=path, quiet=True)
    with p:
        clock.now += 0.5
        p.update(1, 100)  # under a second since the first snapshot: not saved yet
        assert read_snapshot(path)["done"] == 0
        clock.now += 1.5
        p.update(1, 100)
        snap = read_snapshot(path)
        assert snap["done"] == 2 and format_line(snap) == p.line()
        assert "2/4 shards" in format_line(snap) and "100 drafts/s" in format_line(snap)
    assert read_snapshot(path)["done"] == 2 and out.getvalue() == ""
    assert read_snapshot(path, newer_than=path.stat().st_mtime + 5) is None  # stale
    assert read_snapshot(tmp_path / "missing.json") is None


def test_quiet_prints_nothing_but_still_keeps_the_snapshot(tmp_path):
    out = io.StringIO()
    with Progress(2, stream=out, path=tmp_path / "p.json", quiet=True) as p:
        p.update(2)
    assert out.getvalue() == "" and read_snapshot(tmp_path / "p.json")["done"] == 2
    assert not Progress(1, stream=io.StringIO()).quiet  # by default it prints
