import numpy as np
import pytest

from wsfm.data import TOY2D, make_toy2d


@pytest.mark.parametrize("name", sorted(TOY2D))
def test_shapes_range_determinism(name):
    x = make_toy2d(name, 5000, seed=3)
    assert x.shape == (5000, 2) and x.dtype == np.float32
    assert np.array_equal(x, make_toy2d(name, 5000, seed=3))
    assert not np.array_equal(x, make_toy2d(name, 5000, seed=4))
    assert np.quantile(np.abs(x), 0.99) < 4.5  # roughly within [-4, 4]
    assert np.abs(x).max() > 2.0  # and not squashed to the centre
    assert make_toy2d(name, 0, seed=0).shape == (0, 2)


def test_checkerboard_black_squares():
    x = make_toy2d("checkerboard", 20000, seed=0).astype(np.float64)
    assert np.all(np.abs(x) <= 4.0)
    cell = np.floor(x / 2.0)  # 2x2 squares, indices -2..1 on each axis
    on_edge = np.any(np.abs(x / 2.0 - np.round(x / 2.0)) < 1e-6, axis=1)
    black = (cell.sum(axis=1) % 2) == 0
    assert np.all(black | on_edge)
    # all 8 black squares are used, about equally
    counts = np.unique(cell[black], axis=0, return_counts=True)[1]
    assert len(counts) == 8 and counts.min() > 0.8 * counts.mean()


def test_eight_gaussians_modes():
    x = make_toy2d("8gaussians", 8000, seed=0)
    angle = np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi)
    mode = np.round(angle / (np.pi / 4)).astype(int) % 8
    assert np.bincount(mode, minlength=8).min() > 800
    assert np.median(np.linalg.norm(x, axis=1)) == pytest.approx(4 / np.sqrt(2), rel=0.05)


def test_rings_radii():
    r = np.linalg.norm(make_toy2d("rings", 8000, seed=0), axis=1)
    assert np.all(np.abs(r - np.round(r)) < 0.5)
    assert set(np.unique(np.round(r)).astype(int)) == {1, 2, 3, 4}


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="checkerboard"):
        make_toy2d("spirals", 10, seed=0)
