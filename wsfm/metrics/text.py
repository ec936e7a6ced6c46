"""Quality of generated words: validity rates, a reference character LM, length histograms.

**Held-out valid rate** (``novel_valid_rate``, the primary metric): the share of samples that
are valid words the training split does not hold, i.e. held-out words. A look-up (each draft
replaced by its nearest training word) scores 0 on it, and a generator that memorises the
training words scores 0 too: it counts only what generalises. Real words drawn uniformly
from every word score about ``test_fraction`` (the evaluation's real-data reference).

**Length-standardised valid rate** (the former headline). Short words are valid more often
than long ones, so a generator that favours short words looks good on the raw rate. The
standardised rate is the valid rate within each word length ``L``, averaged with the
reference data's length weights ``w_L``:

    valid_rate_std = sum_L w_L * (valid samples of length L) / (samples of length L)

A length with reference weight but no samples counts as rate 0 (the generator never makes
such words); samples whose length has no reference weight (e.g. empty strings) do not enter
it; they do count in ``valid_rate`` and ``length_tv``.

**NLL with entropy.** ``nll_per_char`` under a reference LM fitted on held-out words rewards
likely characters, so a generator that repeats a few common words scores well on it; the
``sample_entropy`` (nats per symbol of the samples' own character distribution, letters and
end) falls when it does. Report the two together (as the field does), never NLL alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["CharNgramLM", "length_histogram", "sample_entropy", "text_metrics"]

_END = "$"  # end-of-word symbol, predicted after the last letter
_BOS = "^"  # start padding of the first contexts (never predicted)
_SYMBOLS = 27  # 26 letters + end


class CharNgramLM:
    """Character n-gram LM over 26 letters + end, with interpolated absolute discounting.

    The context of a symbol is the ``order - 1`` symbols before it, padded with a start
    symbol. With counts ``n(h, c)``, ``n(h) = sum_c n(h, c)`` and ``T(h)`` the number of
    distinct ``c`` seen after ``h``:

        P(c | h) = (max(n(h, c) - D, 0) + D T(h) P(c | h')) / n(h)   if n(h) > 0
                 = P(c | h')                                         otherwise

    where ``h'`` drops the oldest symbol of ``h``; below the empty context is the uniform
    distribution 1/27. This is Kneser-Ney's interpolation without its continuation counts
    ("KN-lite"); every distribution sums to 1 for ``0 < D <= 1``.
    """

    def __init__(self, order: int = 5, discount: float = 0.75) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order!r}")
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        self.order, self.discount = int(order), float(discount)
        self._counts: dict[str, Counter[str]] = {}
        self._totals: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"CharNgramLM(order={self.order}, discount={self.discount})"

    def _events(self, word: str) -> Iterable[tuple[str, str]]:
        """(full context, symbol) for every predicted symbol of ``word`` (letters + end)."""
        padded = _BOS * (self.order - 1) + word + _END
        for i in range(self.order - 1, len(padded)):
            yield padded[i - self.order + 1:i], padded[i]

    def fit(self, words: Iterable[str]) -> CharNgramLM:
        """Count every context suffix (orders 0 .. order-1) in ``words``; returns ``self``."""
        counts: dict[str, Counter[str]] = {}
        for w in words:
            if not w.isascii() or not (w == "" or w.isalpha()) or w != w.lower():
                raise ValueError(f"words must be lower-case letters a-z, got {w!r}")
            for ctx, sym in self._events(w):
                for k in range(len(ctx) + 1):
                    counts.setdefault(ctx[k:], Counter())[sym] += 1
        self._counts = counts
        self._totals = {h: sum(c.values()) for h, c in counts.items()}
        return self

    def prob(self, symbol: str, context: str) -> float:
        """P(symbol | context): ``symbol`` a letter or ``"$"`` (end); the last ``order - 1``
        characters of ``context`` are used, left-padded with ``"^"`` (start)."""
        if not self._counts:
            raise ValueError("CharNgramLM is not fitted: call fit()")
        ctx = (_BOS * (self.order - 1) + context)[len(context):] if self.order > 1 else ""
        p = 1.0 / _SYMBOLS
        for k in range(len(ctx), -1, -1):  # empty context first, then longer ones
            c = self._counts.get(ctx[k:])
            if not c:
                continue
            p = ((max(c.get(symbol, 0) - self.discount, 0.0) + self.discount * len(c) * p)
                 / self._totals[ctx[k:]])
        return p

    def word_nll(self, word: str) -> float:
        """-log P(word, end) in nats."""
        return -sum(math.log(self.prob(sym, ctx)) for ctx, sym in self._events(word))

    def nll_per_char(self, words: Sequence[str]) -> float:
        """Total NLL (nats) of ``words`` divided by the number of predicted symbols, each
        word's letters plus its end symbol."""
        if len(words) == 0:
            raise ValueError("nll_per_char needs at least one word")
        return sum(self.word_nll(w) for w in words) / sum(len(w) + 1 for w in words)


def length_histogram(lengths: Iterable[int], max_len: int) -> np.ndarray:
    """(max_len + 1,) float64 fractions of lengths 0 .. max_len."""
    arr = np.asarray(list(lengths), dtype=np.int64)
    if arr.size == 0:
        raise ValueError("need at least one length")
    if arr.min() < 0 or arr.max() > max_len:
        raise ValueError(f"lengths must lie in [0, {max_len}]")
    return np.bincount(arr, minlength=max_len + 1) / arr.size


def sample_entropy(samples: Sequence[str]) -> float:
    """Entropy (nats) of the symbol distribution pooled over ``samples``: every letter of
    every word and one end symbol per word (the symbols that ``nll_per_char`` scores)."""
    counts: Counter[str] = Counter()
    for w in samples:
        counts.update(w)
        counts[_END] += 1
    total = sum(counts.values())
    if total == 0:
        raise ValueError("sample_entropy needs at least one sample")
    p = np.array(list(counts.values()), dtype=np.float64) / total
    return float(-(p * np.log(p)).sum())


def text_metrics(samples: Sequence[str], train: set[str] | frozenset[str],
                 valid: set[str] | frozenset[str], ref_lengths: Sequence[int],
                 lm: CharNgramLM) -> dict[str, float]:
    """Metrics of generated words (see the module docstring).

    Args:
        samples: generated words (decoded, lower-case letters).
        train: the training words (a valid sample outside it is novel).
        valid: every word that counts as valid.
        ref_lengths: lengths of the reference words (their histogram gives ``w_L``).
        lm: the reference LM (fitted on held-out words) for ``nll_per_char``.

    Returns:
        ``valid_rate_std``, ``valid_rate``, ``novel_valid_rate`` (share of samples valid and
        not in ``train``), ``nll_per_char`` (nats), ``length_tv`` (total variation between
        the sample and reference length histograms, in [0, 1]), ``sample_entropy`` (nats).
    """
    if len(samples) == 0:
        raise ValueError("text_metrics needs at least one sample")
    max_len = max(max(len(w) for w in samples), max(ref_lengths))
    lengths = np.array([len(w) for w in samples], dtype=np.int64)
    ok = np.array([w in valid for w in samples], dtype=bool)
    novel = np.array([w not in train for w in samples], dtype=bool)
    weights = length_histogram(ref_lengths, max_len)
    hist = length_histogram(lengths, max_len)
    n_len = np.bincount(lengths, minlength=max_len + 1)
    ok_len = np.bincount(lengths, weights=ok.astype(np.float64), minlength=max_len + 1)
    rate_len = np.divide(ok_len, n_len, out=np.zeros(max_len + 1), where=n_len > 0)
    return {
        "valid_rate_std": float(weights @ rate_len),
        "valid_rate": float(ok.mean()),
        "novel_valid_rate": float((ok & novel).mean()),
        "nll_per_char": lm.nll_per_char(samples),
        "length_tv": float(0.5 * np.abs(hist - weights).sum()),
        "sample_entropy": sample_entropy(samples),
    }
