"""Text datasets: the ``wordfreq`` words task and users' text files, as character codes.

A sequence is a word of lower-case letters ``a-z`` of at most ``max_len`` characters, encoded
as ``max_len`` codes (``0`` = pad, ``1..26`` = ``a..z``, see ``wsfm.data.words``) and carried
through the pipeline as a flat float32 vector of those codes: the discrete form, chosen by
measurement (BENCHMARKS.md, "words_form"). Users' ``text_lines`` files hold one sequence per
line; a line with anything but ``a-z`` (after lower-casing) is refused with its number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.words import VOCAB, decode, encode, load_words

__all__ = ["load_text_dataset", "read_text_lines"]


def read_text_lines(path: Path, max_len: int) -> list[str]:
    """The distinct sequences of a UTF-8 text file, one per line, in file order."""
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}: not UTF-8 text (line {line}, byte {exc.start})") from exc
    words, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.strip().lower()
        if not word:
            continue
        bad = next((c for c in word if not "a" <= c <= "z"), None)
        if bad is not None:
            raise ValueError(f"{path}:{number}: {bad!r} is not a letter a-z")
        if len(word) > max_len:
            raise ValueError(f"{path}:{number}: {len(word)} characters; max_len is {max_len}")
        if word not in seen:
            seen.add(word)
            words.append(word)
    if len(words) < 20:
        raise ValueError(f"{path}: {len(words)} distinct non-empty lines; need at least 20")
    return words


def load_text_dataset(cfg: DataConfig):
    from wsfm.data.datasets import Dataset

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
    codes = lambda ws: encode(ws, cfg.max_len).astype(np.float32)  # noqa: E731
    ref = np.random.default_rng(cfg.seed + 1).choice(len(train), size=min(len(test), len(train)),
                                                     replace=False)
    return Dataset(
        "text", codes(train), codes(test), codes([train[i] for i in ref]),
        shape=(cfg.max_len,),
        extra={"decode": decode,
               "words": {"train": train, "test": test, "valid": sorted(set(train) | set(test))},
               "net": {"seq_len": cfg.max_len, "vocab": VOCAB, "mode": "discrete"}})
