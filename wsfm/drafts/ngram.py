"""Character n-gram draft: a Markov chain over letters that writes whole words.

Symbols: ``0`` = end (it doubles as the pad code of ``wsfm.data.words``), ``1..26`` =
``a..z``; contexts are the ``order - 1`` previous symbols, with ``27`` (start) before the
first letter, numbered ``sum_j s_j 28 ** (k - 1 - j)`` (oldest first). The table of
next-symbol counts is sparse: one row per context seen in training (sorted ids), plus the
uniform row that smoothing gives a context never seen. Its size follows the data, not
``28 ** (order - 1)``, so high orders cost no more than the words they count; ``MAX_ORDER``
keeps the context ids inside int64.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from wsfm.data.words import VOCAB, decode, encode
from wsfm.drafts.base import Draft, read_arrays

__all__ = ["CharNgramDraft", "MAX_ORDER", "WordDraft", "fit_lengths", "words_from_data"]

MAX_ORDER = 12  # 28 ** 11 < 2 ** 63: context ids fit int64
_START = VOCAB  # 27: the start symbol, only ever a context
_CTX = VOCAB + 1  # context alphabet: end/pad, 26 letters, start
_MAX_ROUNDS = 1000


def words_from_data(data: np.ndarray | Sequence[str]) -> tuple[list[str], int]:
    """Training words and their padded length from ``data``: (N, L) codes or a word list
    (then the padded length is the longest word's)."""
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise ValueError(f"data must be (N, L) codes, got shape {data.shape}")
        return decode(data), int(data.shape[1])
    words = list(data)
    return words, max((len(w) for w in words), default=0)


def fit_lengths(words: Sequence[str], max_len: int) -> tuple[int, int]:
    """(shortest, longest) training word, checked against ``max_len``; drafts are kept to
    this range by resampling."""
    if not words:
        raise ValueError("need at least one training word")
    lengths = [len(w) for w in words]
    if min(lengths) < 1 or max(lengths) > max_len:
        raise ValueError(f"word lengths must lie in [1, {max_len}], got "
                         f"[{min(lengths)}, {max(lengths)}]")
    return min(lengths), max(lengths)


def _pick(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The symbol each uniform ``u`` (...) picks from its cumulative distribution ``cum``
    (..., 27): inverse-CDF sampling, clipped against rounding at the top."""
    return (cum < u[..., None]).sum(axis=-1).clip(max=VOCAB - 1)


class WordDraft(Draft):
    """What the word drafts share: the padded width, the training length range, and sampling
    that throws away a word outside that range and draws it again.

    A subclass sets ``model`` (its fitted state, None before ``fit``), ``what`` (how errors
    name its generator) and ``_drawer(seed)``: a function ``m -> ((m, max_len) codes,
    (m,) lengths, -1 where no end came)`` whose draws continue one stream per ``seed``.
    """

    what: ClassVar[str]

    def __init__(self) -> None:
        self.model: Any = None
        self.width = 0  # D: the padded length of a sample
        self.min_len = self.max_len = 0  # the training length range
        self.mean_len = 0.0

    def _fitted(self):
        if self.model is None:
            name = type(self).__name__
            raise ValueError(f"{name} is not fitted: call fit() or {name}.load()")
        return self.model

    @property
    def dim(self) -> int:
        self._fitted()
        return self.width

    @abstractmethod
    def _drawer(self, seed: int) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
        """The draw function for ``seed`` (see the class docstring)."""

    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, width) int64 codes (pad after the word) of words of length in
        ``[min_len, max_len]``, the training range."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        draw = self._drawer(seed)
        out = np.zeros((n, self.width), dtype=np.int64)
        todo = np.arange(n)
        for _ in range(_MAX_ROUNDS):
            if len(todo) == 0:
                return out
            codes, lengths = draw(len(todo))
            ok = (lengths >= self.min_len) & (lengths <= self.max_len)
            out[todo[ok], :self.max_len] = codes[ok]
            todo = todo[~ok]
        raise RuntimeError(f"{self.what} rarely ends within [{self.min_len}, {self.max_len}] "
                           f"letters: {len(todo)} drafts left after {_MAX_ROUNDS} rounds")


class CharNgramDraft(WordDraft):
    """Character n-gram language model (bigram by default) used as a draft.

    ``P(c | h) = (n(h, c) + alpha) / (n(h) + 27 alpha)``, maximum likelihood for
    ``alpha = 0`` (every context the chain can reach was seen in training, so no row is
    empty). A word ends when the chain emits the end symbol. **Length**: a word shorter than
    the shortest or longer than the longest training word (at most ``max_len``) is thrown
    away and drawn again, so drafts follow the chain conditioned on the training length
    range; nothing is truncated.

    Args:
        order: n (1 = letter frequencies only, 2 = bigram, ...), at most ``MAX_ORDER``.
        alpha: add-alpha smoothing (>= 0).
        seed: unused by the fit (it is deterministic); kept for the common draft signature.
    """

    kind: ClassVar[str] = "ngram"
    what: ClassVar[str] = "the chain"

    def __init__(self, order: int = 2, alpha: float = 0.0, seed: int = 0) -> None:
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be in [1, {MAX_ORDER}], got {order!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        super().__init__()
        self.order, self.alpha, self.seed = int(order), float(alpha), int(seed)

    @property
    def contexts(self) -> np.ndarray:
        """(U,) int64 sorted ids of the contexts seen in training."""
        return self._fitted()[0]

    @property
    def counts(self) -> np.ndarray:
        """(U, 27) int64 next-symbol counts, row i for context ``contexts[i]``."""
        return self._fitted()[1]

    def rows(self, ctx: np.ndarray) -> np.ndarray:
        """Row of each context id in ``counts``; ``U`` (one past the last) for a context
        never seen in training."""
        contexts = self.contexts
        idx = np.searchsorted(contexts, ctx).clip(max=max(len(contexts) - 1, 0))
        found = contexts[idx] == ctx if len(contexts) else np.zeros(np.shape(ctx), bool)
        return np.where(found, idx, len(contexts))

    def __repr__(self) -> str:
        return f"CharNgramDraft(order={self.order}, alpha={self.alpha})"

    def _context_ids(self, codes: np.ndarray) -> np.ndarray:
        """(N, L) codes -> (N, L + 1) context id before each symbol (letters + end)."""
        n, length = codes.shape
        k = self.order - 1
        seq = np.concatenate([np.full((n, k), _START, dtype=np.int64), codes], axis=1)
        ids = np.zeros((n, length + 1), dtype=np.int64)
        for j in range(k):  # oldest symbol first: id = sum_j seq[i + j] * 28 ** (k - 1 - j)
            ids = ids * _CTX + seq[:, j:j + length + 1]
        return ids

    def fit(self, data: np.ndarray | Sequence[str]) -> Self:
        """Count n-grams in ``data``: (N, L) codes (``wsfm.data.words.encode``) or words."""
        words, self.width = words_from_data(data)
        self.min_len, self.max_len = fit_lengths(words, self.width)
        codes = encode(words, self.max_len + 1)  # at least one pad column: every word has an end
        lengths = np.array([len(w) for w in words])
        ctx = self._context_ids(codes)[:, :self.max_len + 1]
        nxt = codes[:, :self.max_len + 1]
        used = np.arange(self.max_len + 1)[None, :] <= lengths[:, None]  # letters and the end
        contexts, row = np.unique(ctx[used], return_inverse=True)
        counts = np.zeros((len(contexts), VOCAB), dtype=np.int64)
        np.add.at(counts, (row, nxt[used]), 1)
        self.model, self.mean_len = (contexts, counts), float(lengths.mean())
        return self

    @property
    def cost_per_sample(self) -> float:
        """About 2 x 27 operations (cumulative sum, compare) per symbol drawn, letters and
        end, at the training mean length; resampling of out-of-range lengths is ignored."""
        self._fitted()
        return float(2 * VOCAB * (self.mean_len + 1))

    def probabilities(self) -> np.ndarray:
        """(U + 1, 27) float64 next-symbol distributions: row i for context ``contexts[i]``,
        the last row (uniform) for any context never seen in training."""
        counts = np.concatenate([self.counts, np.zeros((1, VOCAB), np.int64)])
        counts = counts.astype(np.float64) + self.alpha
        totals = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, totals, out=np.full_like(counts, 1.0 / VOCAB),
                         where=totals > 0)

    def _draw(self, n: int, rng: np.random.Generator, cum: np.ndarray) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
        """n chains of up to ``max_len + 1`` symbols: ((n, max_len) codes, (n,) lengths, -1
        where no end came)."""
        codes = np.zeros((n, self.max_len + 1), dtype=np.int64)
        ctx = np.full(n, 0, dtype=np.int64)
        for _ in range(self.order - 1):
            ctx = ctx * _CTX + _START
        alive = np.ones(n, dtype=bool)
        lengths = np.full(n, -1, dtype=np.int64)
        keep = _CTX ** max(self.order - 2, 0)  # ids of the newest order - 2 symbols
        u = rng.random((n, self.max_len + 1))
        for i in range(self.max_len + 1):
            sym = _pick(cum[self.rows(ctx)], u[:, i])
            sym = np.where(alive, sym, 0)
            lengths[alive & (sym == 0)] = i
            alive &= sym != 0
            codes[:, i] = sym
            if self.order > 1:
                ctx = (ctx % keep) * _CTX + sym
        return codes[:, :self.max_len], lengths

    def substitutes(self, x1: np.ndarray, seed: int) -> np.ndarray:
        """(N, width) int64: at each position up to a word's end, a symbol drawn from the
        chain given the real symbols of ``x1`` before it (teacher forcing), so a letter where
        the chain would have ended, or an end inside the word, are among the mistakes drawn;
        the pad after the end stays pad. What ``flow.coupling: substitute`` trains on."""
        self._fitted()
        x1 = np.asarray(x1, dtype=np.int64)
        if x1.ndim != 2 or x1.shape[1] != self.width:
            raise ValueError(f"x1 must be (N, {self.width}) codes, got {x1.shape}")
        if len(x1) and (x1.min() < 0 or x1.max() >= VOCAB):
            raise ValueError(f"x1 codes must lie in [0, {VOCAB - 1}] (0 = end/pad)")
        ctx = self._context_ids(x1)[:, :self.width]  # (N, width): the context before each
        u = np.random.default_rng(seed).random(x1.shape)
        sym = _pick(self._cumulative()[self.rows(ctx)], u)
        ended = np.cumsum(x1 == 0, axis=1) - (x1 == 0)  # ends strictly before the position
        return np.where(ended > 0, 0, sym).astype(np.int64)

    def _cumulative(self) -> np.ndarray:
        """(U + 1, 27) cumulative next-symbol distributions (:meth:`probabilities`)."""
        return np.cumsum(self.probabilities(), axis=1)

    def _drawer(self, seed: int) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
        cum = self._cumulative()
        rng = np.random.default_rng(seed)
        return lambda m: self._draw(m, rng, cum)

    def save(self, path: str | Path) -> None:
        contexts, counts = self._fitted()
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, kind=np.array(self.kind), order=np.array(self.order),
                     alpha=np.array(self.alpha), seed=np.array(self.seed), counts=counts,
                     contexts=contexts,
                     width=np.array(self.width), max_len=np.array(self.max_len),
                     min_len=np.array(self.min_len),
                     mean_len=np.array(self.mean_len))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        f = read_arrays(path, cls.kind)
        draft = cls(int(f["order"]), float(f["alpha"]), int(f["seed"]))
        draft.model = (f["contexts"].copy(), f["counts"].copy())
        draft.width, draft.max_len = int(f["width"]), int(f["max_len"])
        draft.min_len = int(f["min_len"])
        draft.mean_len = float(f["mean_len"])
        return draft
