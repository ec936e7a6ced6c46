"""Character n-gram draft over windows cut from running text (the prose task).

A window starts anywhere in a document, so its first characters have no left context inside
it. The model keeps a table for every context length ``k = 0 .. order - 1`` and predicts
position ``i`` of a window from the ``min(i, order - 1)`` characters before it: the table of
length ``k`` counts every position with at least ``k`` characters before it in a training
window. A context never seen in training backs off to the next shorter one (maximum
likelihood otherwise: no smoothing, so a free-running chain writes only continuations it has
seen). Codes are ``1 .. V - 1`` (``V`` = 1 + the largest training code).

Tables are sparse: the sorted keys ``context_id * V + symbol`` seen in training and their
counts; a context's distribution is a contiguous run of keys, found by binary search, so a
high order costs what its training text holds, not ``V ** order``.

Besides whole drafts (``sample``), the model draws **substitutes** (``substitutes``): at every
position of a real window, a character drawn given the real characters before it. These are
the refiner's training corruptions (``wsfm.flow.discrete.corrupt``): the mistakes an n-gram
makes where it has the right context.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from wsfm.drafts.base import Draft, read_arrays

__all__ = ["MAX_WINDOW_ORDER", "WindowNgramDraft", "check_windows", "context_ids"]

MAX_WINDOW_ORDER = 9  # 96 ** 8 * 96 < 2 ** 63 for the printable-ASCII vocabulary


def context_ids(x: np.ndarray, i: int, k: int, vocab: int) -> np.ndarray:
    """(N,) base-``vocab`` ids of the ``k`` characters before position ``i`` of each row of
    x (N, L), oldest first (shared with the judge, ``wsfm.metrics.prose``)."""
    ids = np.zeros(len(x), dtype=np.int64)
    for j in range(i - k, i):
        ids = ids * vocab + x[:, j]
    return ids


def check_windows(data: np.ndarray) -> np.ndarray:
    """``data`` as windows to fit a window draft on: (N, L) integer codes >= 1, N, L >= 1
    (code 0 is reserved: the pad of padded words, the GRU's start token)."""
    x = np.asarray(data)
    if x.ndim != 2 or min(x.shape) < 1 or x.dtype.kind not in "iu":
        raise ValueError(f"data must be (N, L) integer codes, got {x.dtype} {x.shape}")
    if x.min() < 1:
        raise ValueError("window codes must be >= 1 (0 is reserved: the pad of padded words, "
                         "the GRU's start token)")
    return x


class WindowNgramDraft(Draft):
    """See the module docstring.

    Args:
        order: n (1 = character frequencies; 5 = four characters of context).
        seed: unused by the fit (it is deterministic); kept for the common draft signature.
    """

    kind: ClassVar[str] = "window_ngram"

    def __init__(self, order: int = 4, seed: int = 0) -> None:
        if not 1 <= order <= MAX_WINDOW_ORDER:
            raise ValueError(f"order must be in [1, {MAX_WINDOW_ORDER}], got {order!r}")
        self.order, self.seed = int(order), int(seed)
        self.vocab = 0
        self.width = 0
        self.keys: list[np.ndarray] = []  # per context length k: sorted ctx_id * V + symbol
        self.cum: list[np.ndarray] = []  # per k: cumulative counts along keys (int64)

    def __repr__(self) -> str:
        return f"WindowNgramDraft(order={self.order})"

    def _fitted(self) -> None:
        if not self.keys:
            raise ValueError("WindowNgramDraft is not fitted: call fit() or load()")

    @property
    def dim(self) -> int:
        self._fitted()
        return self.width

    @property
    def cost_per_sample(self) -> float:
        """About ``2 log2(keys)`` comparisons per character (two binary searches)."""
        self._fitted()
        return float(self.width * 2 * np.log2(max(len(self.keys[-1]), 2)))

    def _context_ids(self, x: np.ndarray, i: int, k: int) -> np.ndarray:
        return context_ids(x, i, k, self.vocab)

    def fit(self, data: np.ndarray) -> Self:
        """Count every context length in ``data``: (N, L) windows of codes >= 1."""
        x = check_windows(data)
        self.vocab, self.width = int(x.max()) + 1, int(x.shape[1])
        self.keys, self.cum = [], []
        for k in range(self.order):
            keys = np.concatenate([self._context_ids(x, i, k) * self.vocab + x[:, i]
                                   for i in range(k, self.width)])
            uniq, counts = np.unique(keys, return_counts=True)
            self.keys.append(uniq)
            self.cum.append(np.cumsum(counts))
        return self

    def _next(self, x: np.ndarray, i: int, u: np.ndarray) -> np.ndarray:
        """(N,) characters for position ``i`` given ``x[:, :i]``, from uniforms ``u``: the
        longest context seen in training, backing off one character at a time."""
        out = np.zeros(len(x), dtype=np.int64)
        todo = np.ones(len(x), dtype=bool)
        for k in range(min(i, self.order - 1), -1, -1):
            keys, cum = self.keys[k], self.cum[k]
            ctx = self._context_ids(x[todo], i, k) * self.vocab
            lo = np.searchsorted(keys, ctx)
            hi = np.searchsorted(keys, ctx + self.vocab)
            seen = hi > lo
            base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0)
            total = cum[np.maximum(hi - 1, 0)] - base
            target = base + np.floor(u[todo] * total).astype(np.int64)
            at = np.searchsorted(cum, target, side="right").clip(max=len(cum) - 1)
            rows = np.flatnonzero(todo)
            out[rows[seen]] = keys[at[seen]] % self.vocab
            todo[rows[seen]] = False
            if not todo.any():
                break
        assert not todo.any(), "the empty context is always seen"
        return out

    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, width) int64 windows: the chain run from the start of a window."""
        self._fitted()
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        rng = np.random.default_rng(seed)
        u = rng.random((n, self.width))
        x = np.zeros((n, self.width), dtype=np.int64)
        for i in range(self.width):
            x[:, i] = self._next(x, i, u[:, i])
        return x

    def substitutes(self, x1: np.ndarray, seed: int) -> np.ndarray:
        """(N, L) int64: at each position, a character drawn given the real characters of
        ``x1`` (N, L) before it (teacher forcing)."""
        self._fitted()
        x1 = np.asarray(x1, dtype=np.int64)
        if x1.ndim != 2 or x1.shape[1] != self.width:
            raise ValueError(f"x1 must be (N, {self.width}) codes, got {x1.shape}")
        u = np.random.default_rng(seed).random(x1.shape)
        return np.stack([self._next(x1, i, u[:, i]) for i in range(self.width)], axis=1) \
            if len(x1) else np.zeros_like(x1)

    def save(self, path: str | Path) -> None:
        self._fitted()
        arrays: dict[str, np.ndarray] = {
            "kind": np.array(self.kind), "order": np.array(self.order),
            "seed": np.array(self.seed), "vocab": np.array(self.vocab),
            "width": np.array(self.width)}
        arrays.update({f"keys{k}": keys for k, keys in enumerate(self.keys)})
        arrays.update({f"cum{k}": cum for k, cum in enumerate(self.cum)})
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle

    @classmethod
    def load(cls, path: str | Path) -> Self:
        f = read_arrays(path, cls.kind)
        draft = cls(int(f["order"]), int(f["seed"]))
        draft.vocab, draft.width = int(f["vocab"]), int(f["width"])
        draft.keys = [f[f"keys{k}"].copy() for k in range(draft.order)]
        draft.cum = [f[f"cum{k}"].copy() for k in range(draft.order)]
        return draft
