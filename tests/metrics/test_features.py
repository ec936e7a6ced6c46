import numpy as np
import pytest

from wsfm.metrics.features import frechet_distance, knn_precision_recall, train_classifier


def test_frechet_distance_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    # Two exactly specified empirical Gaussians: whiten samples, then set mean and covariance.
    def exact(mean, cov, n=4000):
        z = rng.normal(size=(n, len(mean)))
        z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
        return z @ np.linalg.cholesky(cov).T + mean

    a = exact(np.array([0.0, 1.0]), np.diag([1.0, 4.0]))
    b = exact(np.array([3.0, 1.0]), np.diag([9.0, 1.0]))
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2 = 9 + 4 + 1
    assert frechet_distance(a, b) == pytest.approx(14.0, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_precision_and_recall_separate_fidelity_from_coverage():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(500, 2))
    collapsed = real[:1] + 1e-3 * rng.normal(size=(50, 2))  # mode collapse onto one point
    far = rng.normal(size=(500, 2)) + 20.0
    p, r = knn_precision_recall(real, collapsed)
    assert p == 1.0 and r < 0.05
    p_far, r_far = knn_precision_recall(real, far)
    assert p_far == 0.0 and r_far == 0.0
    p_same, r_same = knn_precision_recall(real, real)
    assert p_same == 1.0 and r_same == 1.0


def test_classifier_learns_separable_classes():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-2, 0.5, (200, 4)), rng.normal(2, 0.5, (200, 4))])
    y = np.repeat([0, 1], 200)
    net = train_classifier(x.astype(np.float32), y, steps=200)
    import torch

    with torch.no_grad():
        pred = net(torch.from_numpy(x.astype(np.float32))).argmax(1).numpy()
    assert (pred == y).mean() > 0.98
