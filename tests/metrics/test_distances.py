import numpy as np
import pytest
from scipy import stats

from wsfm.metrics import energy_distance, mmd_rbf, sliced_wasserstein, wasserstein2_1d


def _cloud(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_zero_for_identical_sets():
    a = _cloud(300, 3, 0)
    assert sliced_wasserstein(a, a.copy()) == 0.0
    assert energy_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-6)
    assert mmd_rbf(a, a.copy(), bandwidth=1.0) == pytest.approx(0.0, abs=1e-6)
    # a permuted copy is the same empirical measure
    assert sliced_wasserstein(a, a[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_one_dimensional_case_is_exact_w2():
    a, b = _cloud(400, 1, 1), _cloud(400, 1, 2) * 2 + 1
    w2 = np.sqrt(np.mean((np.sort(a[:, 0]) - np.sort(b[:, 0])) ** 2))
    assert sliced_wasserstein(a, b, n_projections=7) == pytest.approx(w2, rel=1e-12)


def test_unequal_sizes_match_replicated_reference():
    a, b = _cloud(6, 1, 3), _cloud(4, 1, 4)
    # replicate each set to N*M equal-weight points: then W2^2 is the sorted mean square
    ra, rb = np.repeat(a[:, 0], 4), np.repeat(b[:, 0], 6)
    ref = np.mean((np.sort(ra) - np.sort(rb)) ** 2)
    assert wasserstein2_1d(a, b)[0] == pytest.approx(ref, rel=1e-12)
    a, b = _cloud(9, 1, 5), _cloud(6, 1, 6)  # common divisor 3
    ref = np.mean((np.sort(np.repeat(a[:, 0], 6)) - np.sort(np.repeat(b[:, 0], 9))) ** 2)
    assert sliced_wasserstein(a, b) == pytest.approx(np.sqrt(ref), rel=1e-12)


@pytest.mark.parametrize("d", [2, 5])
def test_shift_gives_norm_over_sqrt_d(d):
    a = _cloud(500, d, 7)
    c = np.linspace(1.0, 2.0, d)
    # SW2^2 = E_theta[(theta . c)^2] = |c|^2 / d for theta uniform on the sphere
    sw = sliced_wasserstein(a, a + c, n_projections=4096, seed=1)
    assert sw**2 == pytest.approx(np.dot(c, c) / d, rel=0.05)


def test_energy_distance_matches_scipy_in_1d():
    a, b = _cloud(200, 1, 8), _cloud(150, 1, 9) + 0.5
    assert energy_distance(a, b) == pytest.approx(stats.energy_distance(a[:, 0], b[:, 0]),
                                                  rel=1e-10)


def test_energy_and_mmd_against_loops():
    a, b = _cloud(12, 3, 10), _cloud(9, 3, 11) + 0.3
    dist = lambda x, y: np.sqrt(((x - y) ** 2).sum())  # noqa: E731
    mean = lambda xs, ys, f: np.mean([f(x, y) for x in xs for y in ys])  # noqa: E731
    e2 = 2 * mean(a, b, dist) - mean(a, a, dist) - mean(b, b, dist)
    assert energy_distance(a, b) == pytest.approx(np.sqrt(e2), rel=1e-10)
    k = lambda x, y: np.exp(-((x - y) ** 2).sum() / (2 * 0.7**2))  # noqa: E731
    m2 = mean(a, a, k) + mean(b, b, k) - 2 * mean(a, b, k)
    assert mmd_rbf(a, b, bandwidth=0.7) == pytest.approx(np.sqrt(m2), rel=1e-10)
    # two single points: MMD^2 = 2 - 2 k(x, y)
    x, y = np.zeros((1, 2)), np.array([[1.0, 1.0]])
    assert mmd_rbf(x, y, 1.0) == pytest.approx(np.sqrt(2 - 2 * np.exp(-1.0)))


def test_distances_grow_with_separation():
    a = _cloud(300, 2, 12)
    near, far = a + 0.5, a + 2.0
    for f in (sliced_wasserstein, energy_distance, lambda x, y: mmd_rbf(x, y, 1.0)):
        assert f(a, near) < f(a, far)


def test_argument_errors():
    with pytest.raises(ValueError):
        sliced_wasserstein(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        mmd_rbf(np.zeros((3, 2)), np.zeros((3, 2)), bandwidth=0.0)
    with pytest.raises(ValueError):
        energy_distance(np.zeros((0, 2)), np.zeros((3, 2)))
