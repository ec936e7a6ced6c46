"""Quality of generated prose windows: a held-out judge's NLL, the entropy beside it, copying.

**Generative NLL** (``nll``, bits per character, the primary metric, lower is better): the
mean of ``-log2 P(c_i | c_{i-n+1} .. c_{i-1})`` over every position of every sample under a
reference character model fitted on held-out text only (the judge documents of
``wsfm.data.prose``, never trained on and never scored as real). The reference is an
interpolated Kneser-Ney n-gram (default order 7, above any draft's) with one discount
``D = 0.75``: the longest context uses raw counts, shorter ones continuation counts (the
number of distinct characters seen before), and below the empty context the uniform
distribution over the vocabulary, so every character has mass. A position near the start of a
window has fewer characters before it and is scored with the context it has.

**Entropy** (``entropy``, bits): the entropy of the characters inside one sample, averaged
over samples. A sampler that collapses onto a few likely strings scores well on NLL alone and
badly here; report the two together, never NLL alone.

**Second judge** (``word_share``): the share of the samples' letter runs (lower-cased) that
are among the 50,000 most common English words of ``wordfreq``: a judge that is not an
n-gram, which leans towards n-gram text.

**Copying** (``copy32``): the share of samples that contain a run of ``COPY_RUN`` (32)
characters that occurs verbatim in the training documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from wsfm.drafts.window_ngram import context_ids

__all__ = ["COPY_RUN", "KneserNeyLM", "common_words", "copy_share", "prose_metrics",
           "sample_entropy", "training_runs", "word_share"]

COPY_RUN = 32
_WORD = re.compile(r"[a-z]+")
_COMMON = 50_000


class _Table:
    """Sorted ``ctx_id * V + symbol`` keys with counts, and per context its total and the
    number of distinct symbols that follow it."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, vocab: int) -> None:
        self.keys, self.counts = keys, counts
        ctx = keys // vocab
        self.ctx, start = np.unique(ctx, return_index=True)
        self.total = np.add.reduceat(counts, start) if len(keys) else counts
        self.types = np.diff(np.append(start, len(keys)))

    def lookup(self, ctx: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, ...]:
        """(count of key, total of ctx, types of ctx); zeros where unseen."""
        def find(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            at = np.searchsorted(sorted_ids, ids).clip(max=max(len(sorted_ids) - 1, 0))
            hit = (sorted_ids[at] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
            return at, hit

        at, hit = find(self.keys, key)
        count = np.where(hit, self.counts[at], 0)
        at, hit = find(self.ctx, ctx)
        return count, np.where(hit, self.total[at], 0), np.where(hit, self.types[at], 0)


class KneserNeyLM:
    """Interpolated Kneser-Ney character n-gram over codes ``1 .. vocab - 1`` (module
    docstring). Fitted on documents (code arrays); scores windows.

    Args:
        vocab: V, the codes' range ``0 .. V - 1`` (the uniform floor is ``1 / V``).
        order: n.
        discount: D in (0, 1].
    """

    def __init__(self, vocab: int, order: int = 7, discount: float = 0.75) -> None:
        if order < 1 or not 0.0 < discount <= 1.0 or vocab < 2:
            raise ValueError(f"need order >= 1, discount in (0, 1], vocab >= 2; got {order}, "
                             f"{discount}, {vocab}")
        self.vocab, self.order, self.discount = int(vocab), int(order), float(discount)
        self.raw: list[_Table] = []
        self.cont: list[_Table] = []

    def fit(self, documents: Sequence[np.ndarray]) -> KneserNeyLM:
        """Count every n-gram of length 1 .. n in each document (1-D code arrays)."""
        v = self.vocab
        grams: list[list[np.ndarray]] = [[] for _ in range(self.order + 1)]
        for doc in documents:
            doc = np.asarray(doc, dtype=np.int64)
            if doc.size and (doc.min() < 1 or doc.max() >= v):
                raise ValueError(f"document codes must lie in [1, {v - 1}]")
            for m in range(1, self.order + 1):  # m characters: context m - 1, then a symbol
                if len(doc) >= m:
                    ids = np.zeros(len(doc) - m + 1, dtype=np.int64)
                    for j in range(m):
                        ids = ids * v + doc[j:len(doc) - m + 1 + j]
                    grams[m].append(ids)
        self.raw, self.cont = [], []
        for m in range(1, self.order + 1):
            ids = np.concatenate(grams[m]) if grams[m] else np.zeros(0, np.int64)
            keys, counts = np.unique(ids, return_counts=True)
            self.raw.append(_Table(keys, counts, v))
            # continuation: distinct characters seen before each m-gram (the (m+1)-grams)
            longer = np.unique(np.concatenate(grams[m + 1])) if m < self.order and grams[m + 1] \
                else np.zeros(0, np.int64)
            ckeys, ccounts = np.unique(longer % v ** m, return_counts=True)
            self.cont.append(_Table(ckeys, ccounts, v))
        return self

    def log2_probs(self, x: np.ndarray) -> np.ndarray:
        """(N, L) float64 ``log2 P(x_i | the characters before i, at most n - 1)``."""
        if not self.raw:
            raise ValueError("KneserNeyLM is not fitted: call fit()")
        x = np.asarray(x, dtype=np.int64)
        if x.ndim != 2:
            raise ValueError(f"x must be (N, L) codes, got shape {x.shape}")
        v, d = self.vocab, self.discount
        out = np.zeros(x.shape, dtype=np.float64)
        for i in range(x.shape[1]):
            top = min(i, self.order - 1)
            p = np.full(len(x), 1.0 / v)
            for k in range(top + 1):  # context length k: the k characters before i
                ctx = context_ids(x, i, k, v)
                table = self.raw[k] if k == top else self.cont[k]
                count, total, types = table.lookup(ctx, ctx * v + x[:, i])
                seen = total > 0
                safe = np.maximum(total, 1)
                p = np.where(seen, (np.maximum(count - d, 0) + d * types * p) / safe, p)
            out[:, i] = np.log2(p)
        return out

    def nll(self, x: np.ndarray) -> float:
        """Mean ``-log2 P`` per character (bits) of windows x (N, L)."""
        return float(-self.log2_probs(x).mean())


def sample_entropy(x: np.ndarray) -> float:
    """Mean over rows of x (N, L) of the entropy (bits) of the codes inside the row."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be (N, L) codes with N >= 1, got shape {x.shape}")
    total = 0.0
    for row in x:
        p = np.bincount(row) / len(row)
        p = p[p > 0]
        total += float(-(p * np.log2(p)).sum())
    return total / len(x)


def copy_share(samples: Sequence[str], runs: frozenset[str] | set[str],
               run: int = COPY_RUN) -> float:
    """The share of ``samples`` holding a ``run``-character substring that is in ``runs``."""
    if not samples:
        raise ValueError("copy_share needs at least one sample")
    hit = sum(any(s[i:i + run] in runs for i in range(len(s) - run + 1)) for s in samples)
    return hit / len(samples)


def training_runs(documents: Sequence[str], run: int = COPY_RUN) -> frozenset[str]:
    """Every ``run``-character substring of the documents."""
    return frozenset(d[i:i + run] for d in documents for i in range(len(d) - run + 1))


def common_words(n: int = _COMMON) -> frozenset[str]:
    import wordfreq

    return frozenset(wordfreq.top_n_list("en", n))


def word_share(samples: Sequence[str], words: frozenset[str]) -> float:
    """The share of the samples' lower-cased letter runs that are in ``words`` (0 when the
    samples hold no letters)."""
    runs = [w for s in samples for w in _WORD.findall(s.lower())]
    return sum(w in words for w in runs) / len(runs) if runs else 0.0


def prose_metrics(codes: np.ndarray, texts: Sequence[str], lm: KneserNeyLM,
                  runs: frozenset[str], words: frozenset[str]) -> dict[str, float]:
    """``nll`` (bits/char), ``entropy`` (bits), ``word_share`` and ``copy32`` of windows
    ``codes`` (N, L) decoded as ``texts`` (module docstring)."""
    return {"nll": lm.nll(codes), "entropy": sample_entropy(codes),
            "word_share": word_share(texts, words), "copy32": copy_share(texts, runs)}
