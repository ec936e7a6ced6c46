"""English words from the ``wordfreq`` package, and their fixed-length encodings.

A word is a sequence of at most ``max_len`` lower-case letters. It travels through the
pipeline as a flat float32 vector in one of two forms:

- codes (discrete form): ``(max_len,)`` integers, ``0`` = pad, ``1..26`` = ``a..z``, padded
  at the end (``encode`` / ``decode``);
- one-hot (continuous form): ``(max_len * VOCAB,)``, position-major: entry ``i * VOCAB + c``
  is 1 when position ``i`` holds code ``c`` (``one_hot`` / ``from_one_hot``).

Nothing is downloaded: ``wordfreq`` ships its English frequency lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ALPHABET", "PAD", "VOCAB", "WordsData", "decode", "decode_with", "encode",
           "from_one_hot", "load_words", "one_hot"]

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
PAD = 0
VOCAB = len(ALPHABET) + 1  # pad + 26 letters
_LETTERS = re.compile(r"[a-z]+")
_MAX_LIST = 400_000  # beyond the size of wordfreq's English list: stop asking for more


@dataclass(frozen=True)
class WordsData:
    """The top-N word list split by word.

    Attributes:
        train: training words (90%), in frequency order.
        test: held-out words (10%, fixed by ``seed``), in frequency order.
        valid: every word of the list (train and test): a sample is valid if it is in here.
        max_len: the padded length of an encoded word.
    """

    train: list[str]
    test: list[str]
    valid: frozenset[str]
    max_len: int

    @property
    def train_codes(self) -> np.ndarray:
        """(N_train, max_len) int64 codes of the training words."""
        return encode(self.train, self.max_len)

    @property
    def test_codes(self) -> np.ndarray:
        """(N_test, max_len) int64 codes of the held-out words."""
        return encode(self.test, self.max_len)


def top_words(top_n: int, min_len: int = 3, max_len: int = 12) -> list[str]:
    """The ``top_n`` most frequent English words that are lower-case ``a-z`` only with
    ``min_len <= len <= max_len``, in frequency order (filtered first, then cut)."""
    import wordfreq

    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n!r}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len!r}, {max_len!r}")
    ask = 2 * top_n + 1000
    while True:
        raw = wordfreq.top_n_list("en", ask)
        kept = [w for w in raw if min_len <= len(w) <= max_len and _LETTERS.fullmatch(w)]
        if len(kept) >= top_n or len(raw) < ask or ask >= _MAX_LIST:
            break
        ask *= 2
    if len(kept) < top_n:
        from wsfm.errors import DataError

        raise DataError(f"wordfreq has only {len(kept)} English words of length "
                         f"{min_len}-{max_len}, asked for top_n={top_n}")
    return kept[:top_n]


def load_words(top_n: int = 5000, min_len: int = 3, max_len: int = 12, seed: int = 0,
               test_fraction: float = 0.1) -> WordsData:
    """The ``top_n`` words (``top_words``), split by word: ``round(test_fraction * N)`` words
    chosen by a permutation seeded with ``seed`` are held out. Each word is equally likely
    (frequencies only choose which words are in the list)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    words = top_words(top_n, min_len, max_len)
    n_test = int(round(test_fraction * len(words)))
    held = np.zeros(len(words), dtype=bool)
    held[np.random.default_rng(seed).permutation(len(words))[:n_test]] = True
    return WordsData(train=[w for w, h in zip(words, held) if not h],
                     test=[w for w, h in zip(words, held) if h],
                     valid=frozenset(words), max_len=max_len)


def encode(words: Sequence[str], max_len: int = 12) -> np.ndarray:
    """Words -> (N, max_len) int64 codes (``a`` = 1 ... ``z`` = 26, then ``PAD`` = 0)."""
    codes = np.zeros((len(words), max_len), dtype=np.int64)
    for i, w in enumerate(words):
        if len(w) > max_len or not (w == "" or _LETTERS.fullmatch(w)):
            raise ValueError(f"cannot encode {w!r}: need at most {max_len} letters a-z")
        codes[i, :len(w)] = np.frombuffer(w.encode("ascii"), dtype=np.uint8) - (ord("a") - 1)
    return codes


def decode(codes: np.ndarray) -> list[str]:
    """(N, L) codes (integers, or floats holding integers) -> words; each word stops at its
    first ``PAD``, so anything after a pad is ignored."""
    return decode_with(codes, ALPHABET)


def decode_with(codes: np.ndarray, alphabet: str) -> list[str]:
    """(N, L) codes -> strings over ``alphabet`` (code ``k >= 1`` is ``alphabet[k - 1]``);
    each string stops at its first ``PAD``. Floats must hold integers."""
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must have shape (N, L), got {arr.shape}")
    if arr.dtype.kind == "f":
        rounded = np.rint(arr)
        if not np.array_equal(rounded, arr):
            raise ValueError("float codes must hold integers (round or argmax them first)")
        arr = rounded
    arr = arr.astype(np.int64)
    vocab = len(alphabet) + 1
    if arr.size and (arr.min() < 0 or arr.max() >= vocab):
        raise ValueError(f"codes must lie in [0, {vocab - 1}], got [{arr.min()}, {arr.max()}]")
    table = np.array(list(" " + alphabet))  # index 0 never read: rows stop at the pad
    out = []
    for row in arr:
        stop = np.flatnonzero(row == PAD)
        row = row[:stop[0]] if len(stop) else row
        out.append("".join(table[row]))
    return out


def one_hot(codes: np.ndarray, vocab: int = VOCAB) -> np.ndarray:
    """(N, L) integer codes -> (N, L * vocab) float32 one-hot, position-major."""
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must have shape (N, L), got {arr.shape}")
    arr = np.rint(arr).astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab):
        raise ValueError(f"codes must lie in [0, {vocab - 1}]")
    out = np.zeros((*arr.shape, vocab), dtype=np.float32)
    np.put_along_axis(out, arr[..., None], 1.0, axis=-1)
    return out.reshape(arr.shape[0], -1)


def from_one_hot(x: np.ndarray, vocab: int = VOCAB) -> np.ndarray:
    """(N, L * vocab) scores -> (N, L) int64 codes, the argmax at each position (ties go to
    the lowest code)."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] % vocab:
        raise ValueError(f"x must have shape (N, L * {vocab}), got {arr.shape}")
    return arr.reshape(arr.shape[0], -1, vocab).argmax(axis=-1).astype(np.int64)
