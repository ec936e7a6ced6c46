import numpy as np
import pytest

from wsfm.drafts import DRAFTS, GMMDraft, get_draft, load_draft


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal([-3.0, 0.0, 1.0], [0.5, 1.0, 0.2], size=(n // 2, 3))
    b = rng.normal([2.0, 2.0, -1.0], [1.0, 0.3, 0.6], size=(n - n // 2, 3))
    return np.concatenate([a, b])


def _mixture_moments(d: GMMDraft):
    """Closed-form mean and covariance of the mixture from its (full) parameters."""
    w, mu, cov = d.weights, d.means, d.covariances
    mean = (w[:, None] * mu).sum(0)
    second = sum(w[k] * (cov[k] + np.outer(mu[k], mu[k])) for k in range(len(w)))
    return mean, second - np.outer(mean, mean)


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_save_load_round_trip(tmp_path, cov_type):
    draft = GMMDraft(n_components=3, covariance_type=cov_type, seed=1).fit(_data())
    path = tmp_path / "draft.bin"  # no .npz suffix: the file is written under this name
    draft.save(path)
    assert path.is_file()
    loaded = GMMDraft.load(path)
    for name in ("weights", "means", "covariances"):
        assert np.array_equal(getattr(loaded, name), getattr(draft, name))
        assert getattr(loaded, name).dtype == np.float64
    assert (loaded.n_components, loaded.covariance_type) == (3, cov_type)
    assert np.array_equal(loaded.sample(500, seed=7), draft.sample(500, seed=7))
    via_registry = load_draft(path)
    assert isinstance(via_registry, GMMDraft)
    assert np.array_equal(via_registry.sample(50, 3), draft.sample(50, 3))


def test_file_has_no_pickle(tmp_path):
    draft = GMMDraft(2).fit(_data())
    draft.save(tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz", allow_pickle=False) as f:
        assert str(f["kind"]) == "gmm"
        assert all(f[k].dtype != object for k in f.files)


def test_sampling_deterministic_and_typed():
    draft = GMMDraft(3, seed=0).fit(_data())
    x = draft.sample(1000, seed=5)
    assert x.shape == (1000, 3) and x.dtype == np.float32
    assert np.array_equal(x, draft.sample(1000, seed=5))
    assert not np.array_equal(x, draft.sample(1000, seed=6))
    assert draft.dim == 3
    assert draft.sample(0, seed=0).shape == (0, 3)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_sample_moments_match_mixture(cov_type):
    draft = GMMDraft(2, covariance_type=cov_type, seed=0).fit(_data())
    if cov_type == "diag":  # expand to full matrices for the closed form
        draft_full = GMMDraft(2)
        draft_full.weights, draft_full.means = draft.weights, draft.means
        draft_full.covariances = np.stack([np.diag(c) for c in draft.covariances])
        mean, cov = _mixture_moments(draft_full)
    else:
        mean, cov = _mixture_moments(draft)
    n = 200_000
    x = draft.sample(n, seed=11).astype(np.float64)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se)
    assert np.allclose(np.cov(x.T), cov, atol=0.03 * np.abs(cov).max())
    # the fit itself recovers the data's two clusters
    assert np.allclose(mean, _data().mean(0), atol=0.05)


def test_cost_per_sample():
    full = GMMDraft(4).fit(_data())
    diag = GMMDraft(4, covariance_type="diag").fit(_data())
    assert full.cost_per_sample == 4 + 2 * 3 + 9
    assert diag.cost_per_sample == 4 + 2 * 3 + 3


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="full"):
        GMMDraft(covariance_type="banded")
    with pytest.raises(ValueError):
        GMMDraft(n_components=0)
    with pytest.raises(ValueError, match="fit"):
        GMMDraft().sample(3, 0)
    with pytest.raises(ValueError):
        GMMDraft(5).fit(np.zeros((3, 2)))
    with pytest.raises(FileNotFoundError):
        load_draft(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", kind=np.array("diffusion"))
    with pytest.raises(ValueError, match="gmm"):
        load_draft(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="gmm"):
        get_draft("diffusion")
    assert get_draft("gmm") is GMMDraft and DRAFTS["gmm"] is GMMDraft
