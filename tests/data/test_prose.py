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

    with pytest.raises(DataError, match="prose: the longest document has .* fewer than a "
                                        "window of 100000 \\(data.max_len\\)"):
        prose.load_prose(width=100_000)
    # As long as the longest topic: that topic is on one side only, the others hold none.
    longest = max(map(len, prose.load_prose().train + prose.load_prose().judge
                      + prose.load_prose().real))
    with pytest.raises(DataError, match=f"no (training|judge|real) document holds a window "
                                        f"of {longest} characters"):
        prose.load_prose(width=longest)


# -- users' documents --------------------------------------------------------------------

DOCS = [f"Document {i} says: " + " ".join(f"word{i}x{j}" for j in range(40)) for i in range(6)]


def test_users_documents_from_a_folder_or_one_file_split_by_document(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, doc in enumerate(DOCS):
        (folder / f"{i:02d}.txt").write_text(doc.replace(": ", ":\n  ", 1))  # a line break
    (folder / "notes.md").write_text("not a document")
    one = tmp_path / "corpus.txt"
    one.write_text("\n\n\n".join(DOCS) + "\n")
    from_folder, from_file = prose.read_documents(folder), prose.read_documents(one)
    assert from_folder == from_file == tuple(DOCS)  # whitespace runs collapsed
    data = load_dataset(DataConfig(kind="prose", path=str(folder), max_len=32, stride=8,
                                   n_test=50))
    info = data.text
    assert set(info.train_words) | set(info.test_words) <= set(DOCS)
    assert not set(info.train_words) & set(info.test_words)
    for row in info.decode(data.train[:100]):
        assert any(row in doc for doc in info.train_words)
    assert data.train.shape[1] == 32


def test_a_character_outside_the_alphabet_names_the_file_and_line(tmp_path):
    from wsfm.errors import DataError

    one = tmp_path / "corpus.txt"
    one.write_text("\n\n".join(DOCS[:3]) + "\n\nfine line\nna\u00efve line\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{one}:8: character '\u00ef' is outside"):
        prose.read_documents(one)
    # What the bundled corpus maps (typographic quotes and dashes) is kept, as ASCII.
    one.write_text("\n\n".join(DOCS[:3]) + "\n\n\u201cquoted\u201d \u2014 text\n")
    assert prose.read_documents(one)[-1] == '"quoted" -- text'


def test_a_corpus_too_small_or_too_short_is_refused(tmp_path):
    from wsfm.errors import DataError, InputNotFound

    one = tmp_path / "corpus.txt"
    one.write_text("\n\n".join(DOCS[:2]))
    with pytest.raises(DataError, match="2 distinct document.*at least 3"):
        prose.load_prose(documents=prose.read_documents(one), source=str(one))
    one.write_text("\n\n".join(DOCS))
    longest = max(map(len, DOCS))
    with pytest.raises(DataError, match=f"longest document has {longest} characters, fewer "
                                        "than a window of 5000"):
        prose.load_prose(width=5000, documents=prose.read_documents(one), source=str(one))
    one.write_text("\n \n")
    with pytest.raises(DataError, match="no document holds any text"):
        prose.read_documents(one)
    with pytest.raises(InputNotFound, match="absent"):
        prose.read_documents(tmp_path / "absent")
