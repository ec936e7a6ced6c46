import numpy as np
import pytest
import torch

from wsfm.drafts import DRAFTS, VAEDraft, get_draft, load_draft


def _data(n=1000, d=16, seed=0):
    """A noisy circle of radius 2 in a fixed plane of R^d (a curved 1-dim set), offset by 3;
    ``seed`` draws the points, the plane is the same for every seed."""
    basis = np.linalg.qr(np.random.default_rng(123).standard_normal((d, 2)))[0].T  # (2, d)
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    circle = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return 3.0 + circle @ basis + 0.05 * rng.standard_normal((n, d))


def _small(steps=250, **kw):
    return VAEDraft(latent=2, hidden=64, steps=steps, batch_size=128, lr=3e-3, **kw)


@pytest.fixture(scope="module")
def fitted():
    return _small(seed=0).fit(_data(n=600))


def test_training_improves_the_elbo(fitted):
    held_out = _data(seed=1)
    untrained = _small(steps=1, seed=0).fit(_data(n=600))
    assert fitted.neg_elbo(held_out) < untrained.neg_elbo(held_out) - 5.0  # nats per sample
    h = fitted.history
    assert len(h) == 250 and np.mean(h[-50:]) < np.mean(h[:50])


def test_samples_resemble_the_data(fitted):
    data = _data(n=4000, seed=2)
    x = fitted.sample(4000, seed=0).astype(np.float64)
    assert x.shape == (4000, 16) and x.dtype == np.float64
    np.testing.assert_allclose(x.mean(0), data.mean(0), atol=0.25)
    # the samples lie near the circle of radius 2 around the offset
    radius = np.linalg.norm(x - 3.0, axis=1)
    assert abs(np.median(radius) - 2.0) < 0.3


def test_save_load_round_trip(tmp_path, fitted):
    path = tmp_path / "vae.bin"
    fitted.save(path)
    loaded = load_draft(path)
    assert isinstance(loaded, VAEDraft)
    assert repr(loaded) == repr(fitted)
    assert np.array_equal(loaded.sample(300, seed=4), fitted.sample(300, seed=4))
    assert loaded.dim == 16 and loaded.cost_per_sample == fitted.cost_per_sample
    with np.load(path, allow_pickle=False) as f:
        assert str(f["kind"]) == "vae"
        assert all(f[k].dtype != object for k in f.files)


def test_deterministic_fit_and_sampling():
    state = torch.random.get_rng_state()
    a = _small(steps=20, seed=5).fit(_data(n=200))
    b = _small(steps=20, seed=5).fit(_data(n=200))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert np.array_equal(a.sample(50, seed=1), b.sample(50, seed=1))
    assert not np.array_equal(a.sample(50, seed=1), a.sample(50, seed=2))
    assert a.sample(0, seed=0).shape == (0, 16)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="latent"):
        VAEDraft(latent=0)
    with pytest.raises(ValueError, match="lr"):
        VAEDraft(lr=0.0)
    with pytest.raises(ValueError, match="fit"):
        VAEDraft().sample(3, 0)
    with pytest.raises(ValueError):
        VAEDraft().fit(np.zeros(5))
    np.savez(tmp_path / "other.npz", kind=np.array("gmm"))
    with pytest.raises(ValueError, match="vae"):
        VAEDraft.load(tmp_path / "other.npz")
    assert get_draft("vae") is VAEDraft and DRAFTS["vae"] is VAEDraft
