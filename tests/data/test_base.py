"""The key ledger (``wsfm.data.base.KeyLedger``): refuses a repeated key exactly when a set of
the key strings would, while holding hashes."""

import numpy as np
import pytest

from wsfm.data import base
from wsfm.data.base import KeyLedger
from wsfm.errors import DataError


def _stream(files, monkeypatch, merge_min=8):
    """Feed ``files`` (lists of keys) in batches of 3; what the ledger refused, or None."""
    monkeypatch.setattr(KeyLedger, "MERGE_MIN", merge_min)
    ledger = KeyLedger(lambda i: iter(files[i]), lambda key, a, b: f"{key}|{a}|{b}")
    try:
        for i, keys in enumerate(files):
            for s in range(0, len(keys), 3):
                ledger.add(keys[s:s + 3], i)
        ledger.close()
    except DataError as exc:
        return str(exc)
    assert ledger.count == sum(map(len, files))
    return None


def _first_repeat(files):
    """The first repeat a set of strings meets: (key, file of its first use, file of the
    second)."""
    seen = {}
    for i, keys in enumerate(files):
        for key in keys:
            if key in seen:
                return key, seen[key], i
            seen[key] = i
    return None


@pytest.mark.parametrize("coarse", [False, True], ids=["blake2b", "16-valued hash"])
def test_the_ledger_refuses_what_a_set_of_the_strings_refuses(monkeypatch, coarse):
    """Random streams of 1 to 6 files; with a hash of 16 values most keys share a hash with
    another, and only true repeats are refused, naming the key and both files."""
    if coarse:
        real = base._key_hashes
        monkeypatch.setattr(base, "_key_hashes", lambda keys: real(keys) % np.uint64(16))
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(200):
        files = [[f"k{v}" for v in rng.integers(0, 400, size=rng.integers(0, 30))]
                 for _ in range(rng.integers(1, 7))]
        expected = _first_repeat(files)
        got = _stream(files, monkeypatch)
        assert (got is None) == (expected is None), files
        if got is not None:
            key, a, b = got.split("|")
            refused += 1
            # the key named is repeated, in the files named (the first use's file first)
            hits = [i for i, keys in enumerate(files) for k in keys if k == key]
            assert len(hits) >= 2 and (int(a), int(b)) == (hits[0], hits[1])
    assert 20 < refused < 200  # both outcomes were exercised


def test_a_repeat_across_merged_batches_is_found_by_close_at_the_latest(monkeypatch):
    files = [[f"a{i}" for i in range(50)], [f"b{i}" for i in range(50)] + ["a7"]]
    assert _stream(files, monkeypatch, merge_min=1000) == "a7|0|1"
    assert _stream(files, monkeypatch, merge_min=4) == "a7|0|1"
