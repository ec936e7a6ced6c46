"""The ``prose`` task: 64-character windows of English prose from ``pydoc_data.topics``, or
from users' own documents (``data.path``: :func:`read_documents`).

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

**Users' prose.** ``data.path`` names a folder of ``*.txt`` files (each file one document) or
one text file whose documents are separated by blank lines. Documents play the topics' part.
They are cleaned like the bundled text, but a character that stays outside printable ASCII
is refused, naming its file and line, not dropped. So are a corpus of fewer than three
distinct documents (the split needs a training, a judge and a real side) and a window longer
than the longest document. Each is one line, and the run checks all of them before any stage
starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsfm.errors import DataError, InputNotFound

__all__ = ["ALPHABET", "REAL_SHARE", "ProseData", "clean_text", "decode", "encode",
           "load_prose", "read_documents", "windows"]

ALPHABET = "".join(chr(c) for c in range(32, 127))  # the 95 printable ASCII characters
REAL_SHARE = 0.2  # of the held-out characters: the real windows (the rest fit the judge)
_ASCII = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
          "\u2014": "--", "\u2026": "...", "\u00df": "ss", "\u00b0": " degrees"}
_SPACE = re.compile(r"\s+")


def _to_ascii(text: str) -> str:
    """Whitespace runs -> one space; typographic characters -> their ASCII forms."""
    return "".join(_ASCII.get(c, c) for c in _SPACE.sub(" ", text))


def clean_text(text: str) -> str:
    """:func:`_to_ascii`, then every character outside printable ASCII dropped."""
    return _SPACE.sub(" ", "".join(c for c in _to_ascii(text) if " " <= c <= "~")).strip()


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


def read_documents(path: str | Path) -> tuple[str, ...]:
    """Users' documents (module docstring), cleaned, in file order.

    Raises:
        InputNotFound: ``path`` does not exist.
        DataError: a character outside printable ASCII (names the file and line), or no
            document holds text.
    """
    path = Path(path)
    if not path.exists():
        raise InputNotFound(f"{path}: no such file or folder (data.path)")
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"{path}: no *.txt documents in this folder")
        docs = [(f, 1, f.read_text(encoding="utf-8", errors="replace")) for f in files]
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
        docs = [(path, start, block) for start, block in _blocks(text)]
    texts = tuple(t for t in (_checked(*doc) for doc in docs) if t)
    if not texts:
        raise DataError(f"{path}: no document holds any text")
    return texts


def _blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, text)`` of each run of non-blank lines."""
    blocks: list[tuple[int, str]] = []
    lines: list[str] = []
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.strip():
            lines.append(line)
        elif lines:
            blocks.append((number - len(lines), "\n".join(lines)))
            lines = []
    return blocks


def _checked(path: Path, first_line: int, text: str) -> str:
    """``text`` cleaned; refused at the first character the cleaning would have to drop."""
    for offset, line in enumerate(text.splitlines()):
        bad = next((c for c in _to_ascii(line) if not " " <= c <= "~"), None)
        if bad is not None:
            raise DataError(f"{path}:{first_line + offset}: character {bad!r} is outside "
                            "the prose alphabet (printable ASCII)")
    return clean_text(text)


def load_prose(seed: int = 0, test_fraction: float = 0.5, width: int = 64,
               documents: tuple[str, ...] | None = None, source: str = "prose") -> ProseData:
    """The corpus split by topic (module docstring); deterministic in ``seed``.

    Args:
        documents: users' documents (:func:`read_documents`); default the bundled topics.
        source: what the errors name (the users' path).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if documents is None:
        from pydoc_data.topics import topics

        documents = tuple(clean_text(topics[name]) for name in sorted(topics))
    # Distinct texts only: two topic names can share one text ("if" and "else" do).
    texts = list(dict.fromkeys(documents))
    if len(texts) < 3:
        raise DataError(f"{source}: {len(texts)} distinct document(s); the split by document "
                        "needs at least 3 (training, judge, real)")
    longest = max(map(len, texts))
    if longest < width:
        raise DataError(f"{source}: the longest document has {longest} characters, fewer "
                        f"than a window of {width} (data.max_len)")
    order = np.random.default_rng(seed).permutation(len(texts))
    held, train = _fill([texts[i] for i in order], test_fraction)
    real, judge = _fill(held, REAL_SHARE)
    for name, part in (("training", train), ("judge", judge), ("real", real)):
        if not any(len(t) >= width for t in part):
            raise DataError(f"{source} (seed {seed}, test_fraction {test_fraction}): no "
                            f"{name} document holds a window of {width} characters "
                            "(data.max_len)")
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
