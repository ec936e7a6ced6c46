"""The prose task: topics split whole, windows cut from their own topics, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from wsfm.config import DataConfig
from wsfm.data import prose
from wsfm.data.datasets import load_dataset


def test_clean_text_collapses_whitespace_and_keeps_printable_ascii():
    assert prose.clean_text("  a\n\n b\t\u201cc\u201d \u2014 d\u2026 \u00e9 ") == 'a b "c" -- d...'
    assert set(prose.ALPHABET) == {chr(c) for c in range(32, 127)}


def test_encode_decode_round_trip():
    text = "Hello, World! ~ 0-9"
    codes = prose.encode(text)
    assert codes.min() >= 1 and codes.max() <= len(prose.ALPHABET)
    assert prose.decode(codes[None]) == [text]


def test_topics_are_split_whole_and_deterministically():
    from pydoc_data.topics import topics

    a, b = prose.load_prose(seed=0), prose.load_prose(seed=0)
    assert a == b
    parts = (set(a.train), set(a.judge), set(a.real))
    assert all(not (x & y) for i, x in enumerate(parts) for y in parts[i + 1:])  # disjoint
    every = {prose.clean_text(t) for t in topics.values()}
    assert set().union(*parts) == every  # every distinct topic text on exactly one side
    assert len(a.train) + len(a.judge) + len(a.real) == len(every)
    held = sum(map(len, a.judge)) + sum(map(len, a.real))
    total = held + sum(map(len, a.train))
    assert 0.5 <= held / total < 0.7  # test_fraction 0.5, in whole topics
    assert prose.load_prose(seed=1).train != a.train


def test_dataset_windows_come_from_their_own_topics():
    data = load_dataset(DataConfig(kind="prose", max_len=64, stride=16, n_test=200))
    info = data.text
    assert info is not None and info.form == "windows" and info.vocab == 96
    assert data.train.shape[1] == data.test.shape[1] == 64 and len(data.test) == 1000
    split = prose.load_prose(0, 0.2)  # DataConfig's default test_fraction
    assert info.train_words == split.train and info.test_words == split.judge
    train_text, real_text = " | ".join(split.train), " | ".join(split.real)
    for row in info.decode(data.train[::500]):
        assert row in train_text
    for row in info.decode(data.test[:50]) + info.decode(data.reference[:50]):
        assert row in real_text
    again = load_dataset(DataConfig(kind="prose", max_len=64, stride=16, n_test=200))
    assert np.array_equal(again.test, data.test) and np.array_equal(again.train, data.train)


def test_a_window_longer_than_every_topic_is_refused():
    from wsfm.errors import DataError

    with pytest.raises(DataError, match="no .* topic holds a window of 100000"):
        prose.load_prose(width=100_000)
