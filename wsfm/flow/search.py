"""Nearest-neighbour search against a large reference set, in bounded memory.

Three callers ask which reference row is nearest to each of their rows: nearest pairing
(``generate_drafts``, ``shards.pair: nearest``), the retrieval rival and the copying checks
(``evaluate``). The reference is the training split, which may hold millions of rows, so no
caller may hold a (rows, N) distance matrix: at N = 10^7 one block of 128 rows is 10 GB.

- :func:`exact_nearest`: blocks of ``ROW_BLOCK`` query rows by ``REF_BLOCK`` reference rows
  with a running minimum, so the working memory is a few ``ROW_BLOCK x REF_BLOCK`` float64
  blocks (32 MB each; 76 MB measured at the peak) whatever N. The answer is the full
  matrix's (ties to the first index).
- text (integer codes, Hamming distance): ``wsfm.flow.discrete.hamming_nearest_indices``,
  blocked the same way.
- :class:`NearestSearch`: what pairing builds once per shard task, from
  ``shards.nearest_pool`` (a candidate pool of that many reference rows drawn by the task's
  seed, 0 = all of them) and ``shards.nearest_index`` (``exact``, or ``ivf``: faiss's
  inverted-file index, approximate; ``shards.nearest_nprobe`` lists searched). Both
  approximations trade recall for time and memory; ``benchmarks/nearest.py`` measures their
  recall against exact search and the distance they give up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from wsfm.flow.discrete import hamming_nearest_indices

__all__ = ["REF_BLOCK", "ROW_BLOCK", "NearestSearch", "exact_nearest", "ivf_lists",
           "nearest_pool_rows", "seeded_subset"]

ROW_BLOCK = 256  # query rows per distance block
REF_BLOCK = 16_384  # reference rows per distance block: 256 x 16,384 float64 = 32 MB
IVF_TRAIN_PER_LIST = 64  # k-means training rows per inverted list, drawn by the seed


def _rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(len(a), int(np.prod(a.shape[1:])))


def exact_nearest(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest row of ``ref`` (N >= 1, ...) for each row of ``x`` (n, ...), by squared
    Euclidean distance of the flattened rows: ``(idx (n,) int64, sq (n,) float64)``.

    Distances are taken as ``|a|^2 + |b|^2 - 2 a.b`` in float64 to pick the index, then the
    picked pair's squared distance is recomputed directly, so an exact copy scores 0.
    """
    x, ref = _rows(x), _rows(ref)
    if len(ref) == 0:
        raise ValueError("nearest search needs at least one reference row")
    if x.shape[1] != ref.shape[1]:
        raise ValueError(f"rows of {x.shape[1]} values against reference rows of "
                         f"{ref.shape[1]}")
    n = len(x)
    best = np.full(n, np.inf)
    idx = np.zeros(n, dtype=np.int64)
    for r0 in range(0, len(ref), REF_BLOCK):
        rb = ref[r0:r0 + REF_BLOCK].astype(np.float64)
        rn = np.einsum("ij,ij->i", rb, rb)
        for q0 in range(0, n, ROW_BLOCK):
            qb = x[q0:q0 + ROW_BLOCK].astype(np.float64)
            d = qb @ rb.T  # (rows, block), in place from here: one block in memory
            d *= -2.0
            d += rn[None, :]  # |a - b|^2 less the rows' own |a|^2, which argmin ignores
            j = d.argmin(axis=1)
            dj = d[np.arange(len(j)), j]
            better = dj < best[q0:q0 + ROW_BLOCK]  # strict: ties keep the earlier block
            best[q0:q0 + ROW_BLOCK][better] = dj[better]
            idx[q0:q0 + ROW_BLOCK][better] = r0 + j[better]
    diff = x.astype(np.float64) - ref[idx].astype(np.float64) if n else np.zeros((0, 1))
    return idx, np.einsum("ij,ij->i", diff, diff)


def seeded_subset(n_ref: int, pool: int, seed: int | list[int]) -> np.ndarray | None:
    """Sorted indices of ``pool`` of ``n_ref`` rows, drawn without replacement by ``seed``
    (a search's candidate pool, the rows a draft is fitted on, ...); None where ``pool`` is 0
    or covers them all."""
    if pool < 0:
        raise ValueError(f"pool must be >= 0, got {pool}")
    if pool == 0 or pool >= n_ref:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_ref, size=pool, replace=False))


def nearest_pool_rows(n_ref: int, pool: int, seed: int | list[int]) -> np.ndarray | None:
    """The candidate pool of a :class:`NearestSearch` over ``n_ref`` rows with ``pool`` and
    ``seed`` (sorted; None: every row), so that a caller can read only those rows and search
    them with ``pool=0``: the same pairs."""
    return seeded_subset(n_ref, pool, [*np.atleast_1d(seed), 7])


def ivf_lists(n_ref: int) -> int:
    """How many inverted lists an IVF index over ``n_ref`` rows gets: about sqrt(N), the low
    end of faiss's guideline (its k-means, on ``IVF_TRAIN_PER_LIST`` rows per list, must stay
    cheap on a CPU), with at least 39 training rows per list (what faiss's k-means wants)."""
    return max(1, min(int(round(math.sqrt(n_ref))), n_ref // 39))


@dataclass
class NearestSearch:
    """Nearest search against ``ref`` (N, D) (vectors, squared Euclidean) or (N, L) codes
    (``hamming``), restricted to a candidate pool and exact or through an IVF index.

    ``search(x)`` returns each row's reference index (into the full ``ref``). The IVF index
    is built on first use: k-means lists trained on at most ``IVF_TRAIN_PER_LIST`` rows per
    list drawn by ``seed``, faiss seeded, one thread, so the same inputs give the same pairs.
    """

    ref: np.ndarray
    index: Literal["exact", "ivf"] = "exact"
    pool: int = 0
    nprobe: int = 8
    seed: int | list[int] = 0
    hamming: bool = False
    _rows: np.ndarray | None = field(default=None, init=False, repr=False)
    _candidates: Any = field(default=None, init=False, repr=False)  # set in __post_init__
    _ivf: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.index not in ("exact", "ivf"):
            raise ValueError(f"index must be exact or ivf, got {self.index!r}")
        if self.index == "ivf" and self.hamming:
            raise ValueError("an IVF index searches Euclidean vectors, not text codes")
        if self.nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {self.nprobe}")
        self._rows = nearest_pool_rows(len(self.ref), self.pool, self.seed)
        self._candidates = self.ref if self._rows is None else self.ref[self._rows]

    @property
    def candidates(self) -> np.ndarray:
        """The rows searched: the pool (a copy of at most ``pool`` rows), or ``ref`` itself."""
        return self._candidates

    def search(self, x: np.ndarray) -> np.ndarray:
        """(n,) int64 index into ``ref`` of the row found for each row of ``x``."""
        if self.hamming:
            found = hamming_nearest_indices(torch.from_numpy(np.asarray(x)),
                                            torch.from_numpy(self.candidates)).numpy()
        elif self.index == "exact":
            found = exact_nearest(x, self.candidates)[0]
        else:
            found = self._ivf_search(_rows(x))
        return found if self._rows is None else self._rows[found]

    def _ivf_search(self, x: np.ndarray) -> np.ndarray:
        # faiss is imported here only: most jobs never build an index.
        import faiss

        cands = np.ascontiguousarray(_rows(self.candidates), dtype=np.float32)
        if self._ivf is None:
            faiss.omp_set_num_threads(1)
            n_lists = ivf_lists(len(cands))
            rng = np.random.default_rng([*np.atleast_1d(self.seed), 11])
            most = IVF_TRAIN_PER_LIST * n_lists
            train = cands if len(cands) <= most else \
                cands[np.sort(rng.choice(len(cands), most, replace=False))]
            quantizer = faiss.IndexFlatL2(cands.shape[1])
            ivf = faiss.IndexIVFFlat(quantizer, cands.shape[1], n_lists)
            ivf.cp.seed = int(rng.integers(2 ** 31))
            ivf.train(train)
            ivf.add(cands)
            self._ivf = (ivf, quantizer)  # the quantizer must outlive the index
        ivf = self._ivf[0]
        ivf.nprobe = min(self.nprobe, ivf.nlist)  # read at each search: a built index can widen
        _, found = ivf.search(np.ascontiguousarray(x, dtype=np.float32), 1)
        found = found[:, 0].astype(np.int64)
        if (found < 0).any():  # the probed lists were all empty for a row: search it exactly
            miss = found < 0
            found[miss] = exact_nearest(x[miss], cands)[0]
        return found
