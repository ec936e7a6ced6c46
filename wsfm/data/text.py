"""Text datasets: the ``wordfreq`` words task and users' text files, as character codes.

A sequence is a word of lower-case letters ``a-z`` of at most ``max_len`` characters, encoded as
``max_len`` codes (``0`` = pad, ``1..26`` = ``a..z``, see ``wsfm.data.words``) and carried
through the pipeline as a flat int64 row of those codes: the discrete form, chosen by
measurement (BENCHMARKS.md, "words_form"). The dataset's :class:`~wsfm.data.base.TextInfo` says
what the codes mean (vocabulary, mask token, decoder) to everything downstream. Users'
``text_lines`` files hold one sequence per line; a line with anything but ``a-z`` (after
lower-casing) is refused with its number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.base import Dataset, TextInfo
from wsfm.data.words import ALPHABET, VOCAB, encode, load_words, one_hot
from wsfm.errors import DataError, InputNotFound

__all__ = ["load_prose_dataset", "load_text_dataset", "one_hot_dataset", "read_text_lines"]


def read_text_lines(path: Path, max_len: int) -> list[str]:
    """The distinct sequences of a UTF-8 text file, one per line, in file order."""
    if not path.is_file():
        raise InputNotFound(f"text file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (line {line}, byte {exc.start})") from exc
    words, seen = [], set()
    for number, raw_line in enumerate(text.splitlines(), start=1):
        word = raw_line.strip().lower()
        if not word:
            continue
        bad = next((c for c in word if not "a" <= c <= "z"), None)
        if bad is not None:
            raise DataError(f"{path}:{number}: {bad!r} is not a letter a-z")
        if len(word) > max_len:
            raise DataError(f"{path}:{number}: {len(word)} characters; max_len is {max_len}")
        if word not in seen:
            seen.add(word)
            words.append(word)
    if len(words) < 20:
        raise DataError(f"{path}: {len(words)} distinct non-empty lines; need at least 20")
    return words


def load_text_dataset(cfg: DataConfig) -> Dataset:
    if cfg.kind == "prose":
        return load_prose_dataset(cfg)
    if cfg.kind == "words":
        data = load_words(cfg.top_n, max_len=cfg.max_len, seed=cfg.seed,
                          test_fraction=cfg.test_fraction)
        train, test = data.train, data.test
    else:
        words = read_text_lines(Path(cfg.path), cfg.max_len)
        order = np.random.default_rng(cfg.seed).permutation(len(words))
        n_test = max(1, int(round(cfg.test_fraction * len(words))))
        test = [words[i] for i in sorted(order[:n_test])]
        train = [words[i] for i in sorted(order[n_test:])]
    # Real data (the evaluation's reference): as many words as the held-out split, drawn
    # uniformly from every word. Training words alone would hold no held-out word, which the
    # headline counts (wsfm.metrics.text); a language's real words include them.
    every = train + test
    ref = np.random.default_rng(cfg.seed).integers(len(every), size=len(test))
    info = TextInfo(seq_len=cfg.max_len, vocab=VOCAB, alphabet=ALPHABET,
                    train_words=tuple(train), test_words=tuple(test))
    return Dataset("text", encode(train, cfg.max_len), encode(test, cfg.max_len),
                   encode([every[i] for i in ref], cfg.max_len), shape=(cfg.max_len,),
                   text=info)


def load_prose_dataset(cfg: DataConfig) -> Dataset:
    """The prose task (``wsfm.data.prose``; users' documents when ``path`` is set): training
    windows every ``stride`` characters of the training topics; ``test`` and ``reference``
    are ``max(n_test, 1000)`` windows each at offsets drawn (seeds ``seed + 1``,
    ``seed + 2``) from the real held-out topics."""
    from wsfm.data import prose

    documents = prose.read_documents(cfg.path) if cfg.path else None
    split = prose.load_prose(cfg.seed, cfg.test_fraction, cfg.max_len, documents,
                             source=cfg.path or "prose")
    n_real = max(cfg.n_test, 1000)
    info = TextInfo(seq_len=cfg.max_len, vocab=len(prose.ALPHABET) + 1,
                    alphabet=prose.ALPHABET, train_words=split.train,
                    test_words=split.judge, form="windows")
    return Dataset("text", prose.topic_windows(split.train, cfg.max_len, cfg.stride),
                   prose.sampled_windows(split.real, cfg.max_len, n_real, cfg.seed + 1),
                   prose.sampled_windows(split.real, cfg.max_len, n_real, cfg.seed + 2),
                   shape=(cfg.max_len,), text=info)


def one_hot_dataset(data: Dataset) -> Dataset:
    """The continuous form of a text dataset: a ``vector`` dataset whose rows are the flat
    one-hot codes ``(L * vocab,)`` (``wsfm.data.words.one_hot``, position-major) and whose
    ``shape`` is ``(L, vocab)``, so that a ``transformer`` model reads one token per position
    (``wsfm.components.net_spec``). Samples go back to codes by the argmax at each position
    (``wsfm.data.words.from_one_hot``). The pipelines train the discrete form; this one is
    what ``benchmarks/words_form.py`` compares it with."""
    if data.text is None:
        raise ValueError(f"one_hot_dataset needs text data, got {data.kind!r} data")
    vocab = data.text.vocab
    return Dataset("vector", one_hot(data.train, vocab), one_hot(data.test, vocab),
                   one_hot(data.reference, vocab), shape=(data.text.seq_len, vocab))
