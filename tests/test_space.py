"""``wsfm.space``: the free-space check, against ``shutil.disk_usage`` of the same folder."""

from __future__ import annotations

import shutil

import pytest

from wsfm.errors import UserError
from wsfm.space import SpaceShort, free_bytes, human_bytes, require_space

GB = 10**9  # far more than the suite's own writes change the free space by


def test_free_bytes_is_the_filesystems_and_a_uri_has_none(tmp_path):
    assert abs(free_bytes(tmp_path) - shutil.disk_usage(tmp_path).free) < GB
    # A folder that does not exist yet: its nearest existing parent's filesystem.
    assert abs(free_bytes(tmp_path / "a" / "b") - shutil.disk_usage(tmp_path).free) < GB
    assert free_bytes("s3://bucket/wsfm/ray") is None


def test_a_destination_that_is_short_is_refused_with_both_numbers(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    require_space({str(tmp_path): 1}, "a small stage")  # fits
    with pytest.raises(SpaceShort) as info:
        require_space({str(tmp_path / "out"): free + 10 * GB}, "a big stage")
    message = str(info.value)
    assert message.startswith("a big stage needs ") and f"{free + 10 * GB:,} bytes" in message
    assert str(tmp_path / "out") in message and "it did not start" in message
    assert isinstance(info.value, UserError) and isinstance(info.value, OSError)


def test_destinations_on_one_filesystem_add_up_and_uris_are_not_checked(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    half = free // 2 + min(GB, free // 8)  # each fits alone, not both
    require_space({str(tmp_path / "a"): half}, "one")
    with pytest.raises(SpaceShort, match=f"{2 * half:,} bytes"):
        require_space({str(tmp_path / "a"): half, str(tmp_path / "b"): half}, "both")
    require_space({"s3://bucket/x": 10**30}, "an object store")


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 999, 1000, 123_456_789, 5 * 10**15)] == [
        "0 B", "999 B", "1.0 kB", "123.5 MB", "5000.0 TB"]
