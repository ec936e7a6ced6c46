"""Nearest search at scale (``wsfm.flow.search``): exact in bounded memory, a candidate pool,
an IVF index; written to the ``nearest-search`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.nearest [--sizes 100000,1000000,10000000] [--queries 2000]

Reference sets of N synthetic 64-D rows (a mixture of 256 Gaussian clusters, unit spread,
centres at spread 1, so that clusters overlap) stand in for a training split; the queries
are drafts of the same mixture at 1.5x the spread (off the data, as drafts are). For each N:

- ``exact`` (:func:`wsfm.flow.search.exact_nearest`): the truth for the other rows; its
  working memory is the peak of numpy's allocations during the search (``tracemalloc``),
  beside what the blocks of 128 queries x N of the code before it took (computed: 128 N
  float64).
- ``pool P``: each query searched among P rows drawn by a seed (``shards.nearest_pool``).
- ``ivf, nprobe K``: faiss's IVF index over all N rows with about sqrt(N) lists, built once
  (its k-means and the adding of every row; one thread, as a shard task has one CPU),
  K lists searched per query (``shards.nearest_index: ivf``). Its memory is faiss's own
  (a float32 copy of the rows, not traced here).

recall@1: the share of queries whose row found is the exact nearest row. distance ratio: the
median over queries of the found row's distance over the exact nearest distance (1 = as
near; what pairing gives up). Times are one run each, on the same machine in one process.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from wsfm.benchmarks_md import markdown_table, write_section
from wsfm.flow.search import NearestSearch, exact_nearest, ivf_lists

DIM, CLUSTERS = 64, 256
POOLS = (10_000, 100_000)
NPROBES = (1, 8, 32)


def mixture(n: int, seed: int, spread: float = 1.0) -> np.ndarray:
    """(n, 64) float32 rows of the fixed 256-cluster mixture, made in chunks."""
    centres = np.random.default_rng(0).standard_normal((CLUSTERS, DIM))
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 1_000_000):
        m = min(1_000_000, n - s)
        out[s:s + m] = centres[rng.integers(CLUSTERS, size=m)] + \
            spread * rng.standard_normal((m, DIM))
    return out


def _timed_peak(fn):
    """``fn()``, its wall seconds and numpy's peak allocation during it (MB)."""
    tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return out, seconds, peak


def _quality(ref: np.ndarray, x: np.ndarray, found: np.ndarray, exact: np.ndarray,
             exact_sq: np.ndarray) -> tuple[str, str]:
    d = ref[found].astype(np.float64) - x.astype(np.float64)
    ratio = np.sqrt(np.einsum("ij,ij->i", d, d) / exact_sq)
    return f"{np.mean(found == exact):.3f}", f"{np.median(ratio):.3f}"


def measure(n: int, queries: int) -> list[list[str]]:
    ref = mixture(n, seed=1)
    x = mixture(queries, seed=2, spread=1.5)
    (exact, exact_sq), seconds, peak = _timed_peak(lambda: exact_nearest(x, ref))
    rows = [[f"{n:,}", "exact", "-", f"{seconds:.1f}", "1.000", "1.000", f"{peak:.0f}",
             f"{128 * n * 8 / 1e6:,.0f}"]]
    print(f"[nearest] {rows[-1]}", flush=True)
    for pool in POOLS:
        if pool >= n:
            continue
        pooled = NearestSearch(ref, pool=pool, seed=[5])
        found, seconds, peak = _timed_peak(lambda: pooled.search(x))  # noqa: B023 (called now)
        rows.append([f"{n:,}", f"pool {pool:,}", "-", f"{seconds:.1f}",
                     *_quality(ref, x, found, exact, exact_sq), f"{peak:.0f}", "-"])
        print(f"[nearest] {rows[-1]}", flush=True)
    search = NearestSearch(ref, index="ivf", nprobe=1, seed=[5])
    start = time.perf_counter()
    search.search(x[:1])  # builds the index
    build = time.perf_counter() - start
    for nprobe in NPROBES:
        search.nprobe = nprobe  # the built index, searched wider
        start = time.perf_counter()
        found = search.search(x)
        seconds = time.perf_counter() - start
        rows.append([f"{n:,}", f"ivf ({ivf_lists(n):,} lists), nprobe {nprobe}",
                     f"{build:.1f}", f"{seconds:.2f}",
                     *_quality(ref, x, found, exact, exact_sq), "faiss's", "-"])
        print(f"[nearest] {rows[-1]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [row for n in sizes for row in measure(n, args.queries)]
    body = "\n".join([
        f"{args.queries:,} queries (drafts at 1.5x the data's spread) against N reference rows "
        f"of a 64-D mixture of {CLUSTERS} clusters; exact search is the truth. build s: the "
        "index's k-means and adding every row (one thread); search s: all queries. Peak MB: "
        "numpy's allocations during the search (tracemalloc; the reference rows themselves "
        "excluded), beside the 128 x N float64 blocks that the search before this one held.",
        "",
        markdown_table(["N", "search", "build s", "search s", "recall@1", "distance ratio",
                        "peak MB", "before: 128 x N blocks MB"], rows)])
    command = "python -m benchmarks.nearest" + (
        f" --sizes {args.sizes}" if args.sizes != "100000,1000000,10000000" else "") + (
        f" --queries {args.queries}" if args.queries != 2000 else "")
    write_section("nearest-search", "Nearest search at scale: exact, a pool, an IVF index",
                  command, body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
