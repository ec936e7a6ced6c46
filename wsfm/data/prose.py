"""The ``prose`` task: 64-character windows of English prose from ``pydoc_data.topics``.

The corpus is the reference text that Python's standard library ships for ``help()``
(``pydoc_data.topics.topics``: 79 topics, 78 distinct texts, about 430,000 characters
once whitespace runs are collapsed to one space), so nothing is downloaded. Characters are
the 95 printable ASCII characters (space to ``~``); the few typographic ones the text holds
(curly quotes, dashes, an ellipsis) are written as their ASCII forms and any other character
is dropped.

**Split by topic, not by line.** The topics are shuffled with ``seed`` and taken in that order
into the held-out side until it holds ``test_fraction`` of the characters; the rest train. The
held-out topics are split again, by topic: the first ``REAL_SHARE`` of their characters give
the real windows (``Dataset.test`` and ``Dataset.reference``: the metric's floor), the others
fit the judge (``wsfm.metrics.prose``), so the judge never saw the windows it scores as real.
Held-out text is new text: no window of it overlaps a training topic.

**Windows.** A sample is ``window`` consecutive characters as codes ``1 .. 95`` (``0`` is the
pad of the text codes and never occurs here). Training windows start every ``stride``
characters of each training topic; real windows start at offsets drawn with the seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from wsfm.errors import DataError

__all__ = ["ALPHABET", "REAL_SHARE", "ProseData", "clean_text", "decode", "encode",
           "load_prose", "windows"]

ALPHABET = "".join(chr(c) for c in range(32, 127))  # the 95 printable ASCII characters
REAL_SHARE = 0.2  # of the held-out characters: the real windows (the rest fit the judge)
_ASCII = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
          "\u2014": "--", "\u2026": "...", "\u00df": "ss", "\u00b0": " degrees"}
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Whitespace runs -> one space; typographic characters -> ASCII; others dropped."""
    text = "".join(_ASCII.get(c, c) for c in _SPACE.sub(" ", text))
    return _SPACE.sub(" ", "".join(c for c in text if " " <= c <= "~")).strip()


def encode(text: str) -> np.ndarray:
    """A string of printable ASCII -> (len,) int64 codes ``1 .. 95``."""
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int64) - 31
    if codes.size and (codes.min() < 1 or codes.max() > len(ALPHABET)):
        raise ValueError("text holds characters outside printable ASCII")
    return codes


def decode(codes: np.ndarray) -> list[str]:
    """(N, L) codes -> strings (code ``k`` is ``ALPHABET[k - 1]``; each stops at a pad)."""
    from wsfm.data.words import decode_with

    return decode_with(codes, ALPHABET)


def windows(text: str, width: int, starts: np.ndarray) -> np.ndarray:
    """(len(starts), width) int64 codes of ``text[s:s + width]`` for each start."""
    codes = encode(text)
    if len(codes) < width:
        raise ValueError(f"text of {len(codes)} characters holds no window of {width}")
    return codes[np.asarray(starts, dtype=np.int64)[:, None] + np.arange(width)[None, :]]


@dataclass(frozen=True)
class ProseData:
    """The topics split for the prose task (each a cleaned string).

    Attributes:
        train: training topics.
        judge: held-out topics the judge (reference LM) is fitted on.
        real: held-out topics the real windows are cut from.
    """

    train: tuple[str, ...]
    judge: tuple[str, ...]
    real: tuple[str, ...]


def load_prose(seed: int = 0, test_fraction: float = 0.5, width: int = 64) -> ProseData:
    """The corpus split by topic (module docstring); deterministic in ``seed``."""
    from pydoc_data.topics import topics

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    # Distinct texts only: two topic names can share one text ("if" and "else" do).
    texts = list(dict.fromkeys(clean_text(topics[name]) for name in sorted(topics)))
    order = np.random.default_rng(seed).permutation(len(texts))
    held, train = _fill([texts[i] for i in order], test_fraction)
    real, judge = _fill(held, REAL_SHARE)
    for name, part in (("training", train), ("judge", judge), ("real", real)):
        if not any(len(t) >= width for t in part):
            raise DataError(f"prose (seed {seed}, test_fraction {test_fraction}): no {name} "
                            f"topic holds a window of {width} characters")
    return ProseData(tuple(train), tuple(judge), tuple(real))


def _fill(texts: list[str], share: float) -> tuple[list[str], list[str]]:
    """Texts taken in order into the first list until it holds ``share`` of the
    characters; the rest into the second."""
    total, taken = sum(map(len, texts)), 0
    first: list[str] = []
    rest: list[str] = []
    for text in texts:
        if taken < share * total:
            first.append(text)
            taken += len(text)
        else:
            rest.append(text)
    return first, rest


def topic_windows(texts: tuple[str, ...], width: int, stride: int) -> np.ndarray:
    """Every window starting at a multiple of ``stride`` in each text long enough."""
    parts = [windows(t, width, np.arange(0, len(t) - width + 1, stride))
             for t in texts if len(t) >= width]
    return np.concatenate(parts)


def sampled_windows(texts: tuple[str, ...], width: int, n: int, seed: int) -> np.ndarray:
    """``n`` windows at offsets drawn with ``seed`` (a text chosen in proportion to the
    windows it holds)."""
    usable = [t for t in texts if len(t) >= width]
    sizes = np.array([len(t) - width + 1 for t in usable], dtype=np.int64)
    rng = np.random.default_rng(seed)
    flat = rng.integers(int(sizes.sum()), size=n)
    bounds = np.cumsum(sizes)
    which = np.searchsorted(bounds, flat, side="right")
    offsets = flat - np.concatenate([[0], bounds[:-1]])[which]
    rows = np.empty((n, width), dtype=np.int64)
    for k, text in enumerate(usable):
        sel = which == k
        if sel.any():
            rows[sel] = windows(text, width, offsets[sel])
    return rows
