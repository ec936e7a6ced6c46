"""Nearest search in bounded memory (wsfm.flow.search) against brute force in float64."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from wsfm.flow import discrete, search
from wsfm.flow.search import NearestSearch, exact_nearest, ivf_lists, seeded_subset


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 7 query rows by 13 reference rows, so that a test of a few hundred rows
    crosses many block edges on both axes."""
    monkeypatch.setattr(search, "ROW_BLOCK", 7)
    monkeypatch.setattr(search, "REF_BLOCK", 13)
    monkeypatch.setattr(discrete, "_CHUNK", 7)
    monkeypatch.setattr(discrete, "_REF_CHUNK", 13)


def test_exact_nearest_equals_the_full_distance_matrix(small_blocks):
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((200, 5)).astype(np.float32)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    idx, sq = exact_nearest(x, ref)
    d = cdist(x.astype(np.float64), ref.astype(np.float64), "sqeuclidean")
    np.testing.assert_array_equal(idx, d.argmin(axis=1))
    np.testing.assert_allclose(sq, d.min(axis=1), rtol=1e-12)


def test_exact_copies_score_zero_and_ties_go_to_the_first_row(small_blocks):
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((40, 3))
    ref[30] = ref[4]  # the same row in a later block
    x = ref[[4, 17, 39]].copy()  # rows of images flattened the same way
    idx, sq = exact_nearest(x.reshape(3, 1, 3), ref.reshape(40, 1, 3))
    assert idx.tolist() == [4, 17, 39]
    assert sq.tolist() == [0.0, 0.0, 0.0]


def test_exact_nearest_refuses_what_it_cannot_search():
    with pytest.raises(ValueError, match="at least one reference row"):
        exact_nearest(np.zeros((2, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="rows of 3 values against reference rows of 4"):
        exact_nearest(np.zeros((2, 3)), np.zeros((5, 4)))


def test_blocked_hamming_search_equals_brute_force_with_ties_to_the_first(small_blocks):
    rng = np.random.default_rng(2)
    words = rng.integers(0, 4, size=(100, 6))  # many exact ties in Hamming distance
    drafts = rng.integers(0, 4, size=(30, 6))
    got = discrete.hamming_nearest_indices(torch.from_numpy(drafts), torch.from_numpy(words))
    hamming = (drafts[:, None, :] != words[None, :, :]).sum(-1)
    np.testing.assert_array_equal(got.numpy(), hamming.argmin(axis=1))  # argmin: the first


def test_seeded_subsets_are_sorted_and_fixed_by_the_seed():
    a, b = seeded_subset(1000, 100, [5, 1]), seeded_subset(1000, 100, [5, 1])
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 100 and (np.diff(a) > 0).all() and a.max() < 1000
    assert not np.array_equal(a, seeded_subset(1000, 100, [6, 1]))
    assert seeded_subset(1000, 0, 0) is None and seeded_subset(1000, 1000, 0) is None
    with pytest.raises(ValueError, match="pool must be >= 0"):
        seeded_subset(10, -1, 0)


def test_a_pooled_search_finds_the_nearest_row_of_its_pool(small_blocks):
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((300, 4))
    x = rng.standard_normal((50, 4))
    s = NearestSearch(ref, pool=40, seed=[9])
    pool = seeded_subset(300, 40, [9, 7])
    got = s.search(x)
    d = cdist(x, ref[pool], "sqeuclidean")
    np.testing.assert_array_equal(got, pool[d.argmin(axis=1)])  # indices into the full ref
    np.testing.assert_array_equal(s.candidates, ref[pool])


def test_ivf_probing_every_list_is_exact_and_a_rebuilt_index_gives_the_same_rows():
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((20, 8)) * 5
    ref = (centres[rng.integers(20, size=4000)] + rng.standard_normal((4000, 8))).astype(
        np.float32)
    x = (centres[rng.integers(20, size=300)] + rng.standard_normal((300, 8))).astype(np.float32)
    lists = ivf_lists(len(ref))
    exact = exact_nearest(x, ref)[0]
    every = NearestSearch(ref, index="ivf", nprobe=lists, seed=[1])
    np.testing.assert_array_equal(every.search(x), exact)
    few = NearestSearch(ref, index="ivf", nprobe=2, seed=[1]).search(x)
    again = NearestSearch(ref, index="ivf", nprobe=2, seed=[1]).search(x)
    np.testing.assert_array_equal(few, again)
    # What an approximate search returns is a real row, never nearer than the nearest.
    assert few.min() >= 0 and few.max() < len(ref)
    d = cdist(x.astype(np.float64), ref.astype(np.float64), "sqeuclidean")
    assert (d[np.arange(300), few] >= d.min(axis=1) - 1e-9).all()


def test_ivf_lists_follow_the_guideline_within_kmeans_limits():
    assert ivf_lists(10) == 1
    assert ivf_lists(10_000) == 100  # sqrt(N)
    assert ivf_lists(2_000) == 45  # sqrt(N), within 39 training rows per list (51)
    assert ivf_lists(1_000) == 25  # 39 training rows per list allow 25; sqrt(N) = 32


def test_nearest_search_refuses_bad_settings():
    with pytest.raises(ValueError, match="exact or ivf"):
        NearestSearch(np.zeros((3, 2)), index="hnsw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not text codes"):
        NearestSearch(np.zeros((3, 2), dtype=np.int64), index="ivf", hamming=True)
    with pytest.raises(ValueError, match="nprobe must be >= 1"):
        NearestSearch(np.zeros((3, 2)), nprobe=0)
