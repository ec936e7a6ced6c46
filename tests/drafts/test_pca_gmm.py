import numpy as np
import pytest
from sklearn.decomposition import PCA

from wsfm.drafts import DRAFTS, PCAGMMDraft, get_draft, load_draft


def _data(n=1200, d=12, seed=0):
    """Two clusters on a 3-dim affine subspace of R^d, plus a little isotropic noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, 3)))[0].T  # (3, d) orthonormal rows
    centres = np.array([[-3.0, 0.0, 1.0], [2.0, 1.0, -1.0]])
    z = centres[rng.integers(0, 2, n)] + rng.normal(0, [1.0, 0.6, 0.3], (n, 3))
    return 5.0 + z @ basis + 0.01 * rng.standard_normal((n, d))


def test_samples_lie_on_the_pca_subspace():
    data = _data()
    draft = PCAGMMDraft(n_pca=3, n_components=2, seed=0).fit(data)
    x = draft.sample(2000, seed=1).astype(np.float64)
    assert x.shape == (2000, 12) and x.dtype == np.float64
    centred = x - draft.mean
    sv = np.linalg.svd(centred, compute_uv=False)
    assert sv[3] < 1e-4 * sv[0]  # rank 3: an affine subspace of dimension n_pca
    # ...and it is the data's principal subspace, as found by scikit-learn independently
    ref = PCA(n_components=3).fit(data)
    proj = ref.components_.T @ ref.components_  # (D, D) projector
    np.testing.assert_allclose(centred @ proj, centred, atol=1e-4)
    np.testing.assert_allclose(draft.mean, ref.mean_, atol=1e-9)


def test_moments_follow_the_data():
    data = _data(n=4000)
    draft = PCAGMMDraft(n_pca=3, n_components=2).fit(data)
    x = draft.sample(40_000, seed=2).astype(np.float64)
    np.testing.assert_allclose(x.mean(0), data.mean(0), atol=0.05)
    np.testing.assert_allclose(np.cov(x.T), np.cov(data.T), atol=0.06)


@pytest.mark.parametrize("clip", [None, (-1.0, 1.0)])
def test_save_load_round_trip(tmp_path, clip):
    draft = PCAGMMDraft(n_pca=4, n_components=3, covariance_type="diag", seed=3,
                        clip=clip).fit(_data())
    path = tmp_path / "draft.bin"  # written under exactly this name
    draft.save(path)
    loaded = load_draft(path)
    assert isinstance(loaded, PCAGMMDraft)
    assert (loaded.n_pca, loaded.n_components, loaded.covariance_type, loaded.seed,
            loaded.clip) == (4, 3, "diag", 3, clip)
    assert np.array_equal(loaded.sample(500, seed=7), draft.sample(500, seed=7))
    with np.load(path, allow_pickle=False) as f:
        assert str(f["kind"]) == "pca_gmm"
        assert all(f[k].dtype != object for k in f.files)


def test_clip_and_determinism():
    draft = PCAGMMDraft(n_pca=2, n_components=2, clip=(4.0, 6.0)).fit(_data())
    x = draft.sample(3000, seed=5)
    assert x.dtype == np.float32 and x.min() >= 4.0 and x.max() <= 6.0
    assert (x == 4.0).any() and (x == 6.0).any()  # the range really cuts
    assert np.array_equal(x, draft.sample(3000, seed=5))
    assert not np.array_equal(x, draft.sample(3000, seed=6))
    assert draft.sample(0, seed=0).shape == (0, 12)
    assert draft.dim == 12
    gmm_cost = 2 + 2 * 2 + 4
    assert draft.cost_per_sample == gmm_cost + 2 * 2 * 12 + 12 + 2 * 12


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="n_pca"):
        PCAGMMDraft(n_pca=0)
    with pytest.raises(ValueError, match="clip"):
        PCAGMMDraft(clip=(1.0, -1.0))
    with pytest.raises(ValueError, match="covariance_type"):
        PCAGMMDraft(covariance_type="banded")
    with pytest.raises(ValueError, match="n_pca"):
        PCAGMMDraft(n_pca=20).fit(_data())
    with pytest.raises(ValueError, match="fit"):
        PCAGMMDraft().sample(3, 0)
    np.savez(tmp_path / "other.npz", kind=np.array("gmm"))
    with pytest.raises(ValueError, match="pca_gmm"):
        PCAGMMDraft.load(tmp_path / "other.npz")
    assert get_draft("pca_gmm") is PCAGMMDraft and DRAFTS["pca_gmm"] is PCAGMMDraft
