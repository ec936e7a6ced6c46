"""Prose metrics against independent references: a dictionary Kneser-Ney written from its
definition, closed-form entropies, exact copy and word counts."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from wsfm.metrics.prose import (
    KneserNeyLM,
    copy_share,
    sample_entropy,
    training_runs,
    word_share,
)

V, D = 6, 0.75


def _reference_kn(docs: list[list[int]], order: int):
    """P(c | h) by interpolated Kneser-Ney, from counted tuples (float64, no arrays)."""
    raw: dict[tuple, Counter] = defaultdict(Counter)
    before: dict[tuple, set] = defaultdict(set)  # (h, c) -> characters seen before it
    for doc in docs:
        for m in range(1, order + 1):
            for i in range(len(doc) - m + 1):
                gram = tuple(doc[i:i + m])
                raw[gram[:-1]][gram[-1]] += 1
                if i > 0 and m < order:
                    before[gram].add(doc[i - 1])
    cont: dict[tuple, Counter] = defaultdict(Counter)
    for gram, prev in before.items():
        cont[gram[:-1]][gram[-1]] = len(prev)

    def prob(c: int, h: tuple) -> float:
        p = 1.0 / V
        for k in range(len(h) + 1):
            ctx = h[len(h) - k:]
            table = raw if k == len(h) else cont
            counts = table.get(ctx)
            if not counts:
                continue
            total = sum(counts.values())
            p = (max(counts.get(c, 0) - D, 0) + D * len(counts) * p) / total
        return p

    return prob


def test_kneser_ney_matches_its_definition_and_sums_to_one():
    rng = np.random.default_rng(0)
    docs = [list(rng.choice([1, 2, 3, 4], p=[0.4, 0.3, 0.2, 0.1], size=n)) for n in (80, 50)]
    docs.append([5, 5, 1, 2])
    lm = KneserNeyLM(V, order=3, discount=D).fit([np.array(d) for d in docs])
    ref = _reference_kn(docs, 3)
    x = rng.integers(1, V, size=(20, 7))
    got = lm.log2_probs(x)
    for r in range(len(x)):
        for i in range(x.shape[1]):
            h = tuple(int(c) for c in x[r, max(0, i - 2):i])
            assert got[r, i] == pytest.approx(math.log2(ref(int(x[r, i]), h)), abs=1e-9)
    # every context's distribution over 1 .. V-1 sums to 1 minus the floor's share of code 0
    for h in ((1, 2), (4, 4), (5, 3), ()):
        total = sum(ref(c, h) for c in range(1, V))
        assert sum(2 ** lm.log2_probs(np.array([[*h, c]]))[0, -1] for c in range(1, V)) \
            == pytest.approx(total, abs=1e-12)
        assert 0.97 < total <= 1.0


def test_the_judge_prefers_its_own_kind_of_text():
    rng = np.random.default_rng(1)
    text = np.tile([1, 2, 3, 4, 5], 200)
    lm = KneserNeyLM(V, order=4).fit([text])
    same = np.stack([text[i:i + 20] for i in range(0, 100, 7)])
    noise = rng.integers(1, V, size=same.shape)
    assert lm.nll(same) < 0.5 < 2.0 < lm.nll(noise)


def test_sample_entropy_closed_forms():
    assert sample_entropy(np.full((3, 64), 7)) == 0.0
    assert sample_entropy(np.arange(1, 65)[None]) == pytest.approx(6.0)  # 64 distinct: log2 64
    two = np.array([[1, 2] * 8, [3] * 16])
    assert sample_entropy(two) == pytest.approx(0.5)  # mean of 1 bit and 0 bits


def test_copy_share_and_word_share_count_exactly():
    runs = training_runs(["abcdefgh"], run=4)
    assert runs == {"abcd", "bcde", "cdef", "defg", "efgh"}
    assert copy_share(["xxcdefxx", "xxxxxxxx", "efgh"], runs, run=4) == pytest.approx(2 / 3)
    words = frozenset({"the", "cat"})
    assert word_share(["The cat, the dog.", "42"], words) == pytest.approx(3 / 4)
    assert word_share(["42 !!"], words) == 0.0
