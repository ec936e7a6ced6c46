"""The dataset record every task produces, and the held-out split they share.

Every sample is a flat row, whatever its kind:

- ``vector`` (toy2d, ``npy``): (D,) float32 as is;
- ``image`` (digits, glyphs, ``image_folder``): (C*H*W,) float32 in [-1, 1], ``shape`` = (C, H, W);
- ``text`` (words, ``text_lines``): (L,) int64 character codes, described by ``text``
  (:class:`TextInfo`: the vocabulary, the mask token, the word lists, the decoder).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from wsfm.config import DataConfig

__all__ = ["Dataset", "KeyHashes", "KeyLedger", "TextInfo", "gather_keyed", "hash_split",
           "held_out", "keyed_split", "split"]


@dataclass(frozen=True)
class TextInfo:
    """What the text pipeline needs to know about its codes.

    Two forms (``form``): ``"words"`` (each sample is a whole sequence, padded: words,
    ``text_lines``) and ``"windows"`` (each sample is a window cut from longer documents:
    prose). For windows, ``train_words`` are the training documents and ``test_words`` the
    held-out documents that the judge is fitted on (``wsfm.data.prose``).

    Attributes:
        seq_len: L, characters per sequence (padded).
        vocab: codes ``0 .. vocab - 1`` (``0`` = pad, then the alphabet).
        alphabet: the characters of codes ``1 .. vocab - 1``, in order.
        train_words, test_words: the training and held-out sequences (documents for
            windows), decoded.
        form: ``"words"`` or ``"windows"``.
    """

    seq_len: int
    vocab: int
    alphabet: str
    train_words: tuple[str, ...]
    test_words: tuple[str, ...]
    form: Literal["words", "windows"] = "words"

    def __post_init__(self) -> None:
        if self.vocab != len(self.alphabet) + 1:
            raise ValueError(f"vocab {self.vocab} != 1 + {len(self.alphabet)} characters")

    @property
    def mask_id(self) -> int:
        """The mask token of the discrete path: one past the vocabulary."""
        return self.vocab

    @property
    def valid_words(self) -> frozenset[str]:
        """Every sequence that counts as valid (train and held out)."""
        return frozenset(self.train_words) | frozenset(self.test_words)

    def decode(self, codes: np.ndarray) -> list[str]:
        """(N, L) integer codes -> strings; each stops at its first pad."""
        from wsfm.data.words import decode_with

        if np.asarray(codes).dtype.kind not in "iu":
            raise ValueError(f"codes must be integers, got dtype {np.asarray(codes).dtype}")
        return decode_with(codes, self.alphabet)

    def net_spec(self) -> dict[str, int | str]:
        """What a sequence network needs: positions, symbols and the (discrete) form."""
        return {"seq_len": self.seq_len, "vocab": self.vocab, "mode": "discrete"}


@dataclass(frozen=True)
class Dataset:
    """``train`` (N, D) for fitting; ``test`` (M, D) held out for evaluation; ``reference``
    (R, D) real data not in ``test``, so that data-against-data gives the metric's floor.
    ``labels`` (N,) are the train labels where the data has classes, ``test_labels`` (M,) the
    held-out ones where the evaluator is fitted on the held-out split (glyphs); ``text``
    describes the codes of text data (None otherwise)."""

    kind: Literal["vector", "image", "text"]
    train: np.ndarray
    test: np.ndarray
    reference: np.ndarray
    shape: tuple[int, ...] = ()  # one sample's natural shape, e.g. (1, 8, 8)
    labels: np.ndarray | None = None
    text: TextInfo | None = None
    test_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.kind == "text") != (self.text is not None):
            raise ValueError(f"a {self.kind} dataset {'needs' if self.kind == 'text' else 'has no'}"
                             " TextInfo")

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


def split(x: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random (train, test) index split of ``len(x)`` rows, fixed by ``seed``."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    if n_test >= len(x):
        from wsfm.errors import DataError

        raise DataError(f"{len(x)} samples are too few to hold out {test_fraction:.0%}")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def held_out(n_train: int, n_test: int, seed: int) -> np.ndarray:
    """Indices of the reference rows: ``min(n_test, n_train)`` training rows drawn with
    ``seed + 1``, real samples the metric has not been computed against (what a perfect model
    would score)."""
    return np.random.default_rng(seed + 1).choice(n_train, size=min(n_test, n_train),
                                                  replace=False)


def hash_split(keys: list[str], test_fraction: float, seed: int) -> np.ndarray:
    """Whether each row is held out (bool (N,)): the row's key hashed with ``seed``
    (BLAKE2b, 8 bytes, as a fraction of 2^64) falls below ``test_fraction``. Deterministic
    and decided by the key alone (users' Parquet and WebDataset sources)."""
    salt = str(seed).encode()
    limit = int(test_fraction * 2 ** 64)
    return np.fromiter((int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8,
                                                       salt=salt[:16]).digest(), "big") < limit
                        for k in keys), dtype=bool, count=len(keys))


def keyed_split(x: np.ndarray, keys: list[str], cfg: DataConfig,
                kind: Literal["vector", "image"], shape: tuple[int, ...]) -> Dataset:
    """The dataset of rows ``x`` (N, D) whose split :func:`hash_split` decides by ``keys``,
    with the reference drawn from the training rows (:func:`held_out`)."""
    from wsfm.errors import DataError

    source = cfg.path or cfg.urls
    test = hash_split(keys, cfg.test_fraction, cfg.seed)
    if test.all() or not test.any():
        raise DataError(f"{source}: {len(keys)} samples are too few to hold out "
                        f"{cfg.test_fraction:.0%}")
    train = x[~test]
    return Dataset(kind, train, x[test], train[held_out(len(train), int(test.sum()), cfg.seed)],
                   shape=shape)


def gather_keyed(blocks: Iterable[tuple[np.ndarray, list[str]]], cfg: DataConfig,
                 kind_of: Callable[[DataConfig, int], tuple[str, tuple[int, ...]]]) -> Dataset:
    """A keyed source's streamed ``(rows, keys)`` blocks gathered into one dataset in memory
    (:func:`keyed_split`); ``kind_of(cfg, D)`` gives its kind and sample shape."""
    rows: list[np.ndarray] = []
    keys: list[str] = []
    for x, k in blocks:
        rows.append(x)
        keys += k
    x = np.concatenate(rows)  # the sources refuse fewer than 10 rows
    kind, shape = kind_of(cfg, x.shape[1])
    return keyed_split(x, keys, cfg, kind, shape)  # type: ignore[arg-type]


def _key_hashes(keys: Sequence[str]) -> np.ndarray:
    """Each key's BLAKE2b digest of 8 bytes, as uint64."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(),
                                       "big") for k in keys), dtype=np.uint64, count=len(keys))


class KeyLedger:
    """The keys of a stream, kept to refuse a repeated one (a row's key decides its split, so
    keys must be unique), in 12 bytes a key: its 8-byte hash and the index of the file it came
    from, not the key's string (a Python string in a set costs 60 bytes and more).

    Keys are checked within each call of :meth:`add`'s batch at once and against earlier
    batches when the batches waiting reach the size of those merged (a sorted array), so a
    repeat is found by :meth:`close` at the latest, before the stream is taken as good. Two
    keys with the same hash are told apart by reading the keys of the files involved again
    (``keys_of(file index)``): a repeat is refused with ``refuse(key, first file, second
    file)``'s message, naming the key and both files; different keys that share a hash (a
    chance of about n^2 / 2^65) are let through."""

    MERGE_MIN = 1 << 16  # keys waiting before a merge, at least

    def __init__(self, keys_of: Callable[[int], Iterable[str]],
                 refuse: Callable[[str, int, int], str]):
        self._keys_of, self._refuse = keys_of, refuse
        self._hashes = np.zeros(0, np.uint64)  # sorted
        self._files = np.zeros(0, np.uint32)  # the file of each hash
        self._waiting: list[tuple[np.ndarray, int]] = []
        self._n_waiting = 0
        self._shared: dict[int, int] = {}  # hash -> how many distinct keys share it
        self.count = 0

    def add(self, keys: Sequence[str], file: int) -> None:
        """The keys of a batch read from file ``file``; refuses a repeat found so far."""
        self.add_hashes(_key_hashes(keys), file)

    def add_hashes(self, hashes: np.ndarray, file: int) -> None:
        """The keys of a batch read from file ``file``, hashed (:class:`KeyHashes`)."""
        self._waiting.append((hashes, file))
        self._n_waiting += len(hashes)
        self.count += len(hashes)
        if len(np.unique(hashes)) != len(hashes) or \
                self._n_waiting >= max(self.MERGE_MIN, len(self._hashes)):
            self._merge()

    def close(self) -> None:
        """Checks the keys still waiting; refuses a repeat."""
        self._merge()

    def _merge(self) -> None:
        if not self._waiting:
            return
        hashes = np.concatenate([self._hashes] + [h for h, _ in self._waiting])
        files = np.concatenate([self._files] + [np.full(len(h), f, np.uint32)
                                                for h, f in self._waiting])
        self._waiting, self._n_waiting = [], 0
        order = np.argsort(hashes, kind="stable")  # equal hashes keep the order they came in
        hashes, files = hashes[order], files[order]
        for hashed in np.unique(hashes[np.flatnonzero(hashes[1:] == hashes[:-1])]):
            lo = int(np.searchsorted(hashes, hashed, side="left"))
            hi = int(np.searchsorted(hashes, hashed, side="right"))
            if self._shared.get(int(hashed)) != hi - lo:  # not yet told apart at this count
                self._check(int(hashed), files[lo:hi])
                self._shared[int(hashed)] = hi - lo
        self._hashes, self._files = hashes, files

    def _check(self, hashed: int, files: np.ndarray) -> None:
        """Reads the keys of ``files`` (which hold a key of hash ``hashed``) in the order they
        came in; refuses the first key that repeats."""
        found: dict[str, int] = {}
        for file in dict.fromkeys(int(f) for f in files):
            for key in self._keys_of(file):
                if int(_key_hashes([key])[0]) != hashed:
                    continue
                if key in found:
                    from wsfm.errors import DataError

                    raise DataError(self._refuse(key, found[key], file))
                found[key] = file


class KeyHashes:
    """The keys of one part of a source, hashed as :class:`KeyLedger` hashes them, for the
    ledger of the whole source to check (``wsfm.data.partitioned``): ``(file, hashes)`` per
    batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, np.ndarray]] = []

    def add(self, keys: Sequence[str], file: int) -> None:
        self.batches.append((file, _key_hashes(keys)))

    def close(self) -> None:
        """Nothing to check here: the whole source's ledger checks every part's hashes."""
