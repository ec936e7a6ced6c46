import itertools

import numpy as np
import pytest
import torch

from wsfm.flow import COUPLINGS, get_coupling, independent, minibatch_ot, nearest


def _cost(x0, x1):
    return float(((x0 - x1) ** 2).sum())


def _brute_force_min(x0, x1):
    n = x0.shape[0]
    return min(_cost(x0, x1[list(p)]) for p in itertools.permutations(range(n)))


def _rows(x):
    return sorted(map(tuple, x.reshape(x.shape[0], -1).tolist()))


@pytest.mark.parametrize("n,seed", [(1, 0), (2, 1), (5, 2), (6, 3), (7, 4), (7, 5)])
def test_minibatch_ot_matches_brute_force(n, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, 2, generator=g, dtype=torch.float64)  # rows are flattened
    x1 = torch.randn(n, 2, 2, generator=g, dtype=torch.float64) * 2
    y0, y1 = minibatch_ot(x0, x1)
    assert torch.equal(y0, x0)
    assert _rows(y1) == _rows(x1)  # a permutation: nothing dropped or duplicated
    assert _cost(y0, y1) == pytest.approx(_brute_force_min(x0, x1), rel=1e-12, abs=1e-12)


def test_minibatch_ot_per_class():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 1])
    x0 = torch.randn(8, 3, generator=g, dtype=torch.float64)
    # make cross-class pairs very attractive: x1 of class c sits at x0 of another class
    x1 = x0[torch.tensor([3, 2, 4, 0, 6, 1, 5, 7])] + 0.01
    y0, y1 = minibatch_ot(x0, x1, labels)
    assert _rows(y1) == _rows(x1)
    idx = [next(j for j in range(8) if torch.equal(x1[j], y1[i])) for i in range(8)]
    assert all(labels[i] == labels[j] for i, j in enumerate(idx))
    # optimal within each class (brute force per class)
    for c in labels.unique():
        m = labels == c
        assert _cost(y0[m], y1[m]) == pytest.approx(_brute_force_min(x0[m], x1[m]))


def test_minibatch_ot_label_pair_and_errors():
    x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
    l0, l1 = torch.tensor([0, 0, 1, 1]), torch.tensor([1, 0, 1, 0])
    _, y1 = minibatch_ot(x0, x1, (l0, l1))
    pick = [int(np.flatnonzero((x1 == r).all(1).numpy())[0]) for r in y1]
    assert [int(l1[j]) for j in pick] == l0.tolist()
    with pytest.raises(ValueError, match="class"):
        minibatch_ot(x0, x1, (l0, torch.tensor([0, 0, 0, 1])))
    with pytest.raises(ValueError):
        minibatch_ot(x0, x1[:3])


def test_nearest_matches_brute_force_argmin():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(9, 3, generator=g)
    x1 = torch.randn(25, 3, generator=g)
    y0, y1 = nearest(x0, x1)
    assert torch.equal(y0, x0) and y1.shape == x0.shape
    for i in range(9):
        j = min(range(25), key=lambda j: float(((x0[i] - x1[j]) ** 2).sum()))
        assert torch.equal(y1[i], x1[j])


def test_nearest_per_class():
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(10, 2, generator=g)
    l0 = torch.tensor([0, 1, 0, 1, 0, 1])
    l1 = torch.tensor([0, 0, 1, 1, 0, 1, 0, 1, 1, 0])
    _, y1 = nearest(x0, x1, (l0, l1))
    for i in range(6):
        same = [j for j in range(10) if l1[j] == l0[i]]
        j = min(same, key=lambda j: float(((x0[i] - x1[j]) ** 2).sum()))
        assert torch.equal(y1[i], x1[j])
    with pytest.raises(ValueError, match="class"):
        nearest(x0, x1, (l0 + 5, l1))


def test_independent_and_registry():
    x0, x1 = torch.randn(3, 2), torch.randn(3, 2)
    y0, y1 = independent(x0, x1)
    assert y0 is x0 and y1 is x1
    assert set(COUPLINGS) == {"independent", "minibatch_ot", "nearest"}
    assert get_coupling("nearest") is nearest
    with pytest.raises(ValueError, match="minibatch_ot"):
        get_coupling("sinkhorn")
