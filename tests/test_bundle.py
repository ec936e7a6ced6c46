import numpy as np
import pytest

from tests.bundles import make_bundle
from wsfm.bundle import BundleModel, SamplerSettings, decode_text, read_settings
from wsfm.components import make_sampler
from wsfm.data.base import Dataset, TextInfo
from wsfm.data.words import ALPHABET


@pytest.mark.parametrize("kind", ["vector", "image", "text"])
def test_a_bundle_samples_in_the_natural_form_of_its_kind(tmp_path, kind):
    model = BundleModel(make_bundle(kind, tmp_path / "bundle"))
    x = model.sample(5, seed=1)
    if kind == "vector":
        assert x.shape == (5, 2) and x.dtype == np.float32
    elif kind == "image":
        assert x.shape == (5, 1, 4, 4) and np.isfinite(x).all()
    else:
        letters = set("abcdefghijklmnopqrstuvwxyz")
        assert len(x) == 5 and all(isinstance(w, str) and set(w) <= letters
                                   for w in x)
    again = model.sample(5, seed=1)
    assert (np.array_equal(x, again) if kind != "text" else x == again)  # seeded


def test_overrides_change_the_solver_and_its_cost(tmp_path):
    model = BundleModel(make_bundle("vector", tmp_path / "bundle"))
    base = model.sample(64, seed=0)
    at_one_minus = model.sample(64, seed=0, t0=0.8, steps=2, method="heun")
    assert not np.allclose(base, at_one_minus)
    assert model.sampler.t0 == 0.8  # the loaded sampler is untouched by an override
    with pytest.raises(ValueError, match="unknown"):
        model.sample(2, seed=0, method="nope")


def test_text_rejects_an_ode_method(tmp_path):
    model = BundleModel(make_bundle("text", tmp_path / "bundle"))
    with pytest.raises(ValueError, match="jumps"):
        model.sample(2, seed=0, method="heun")


def test_decode_text_stops_at_the_first_pad():
    codes = np.array([[3, 1, 20, 0, 5], [4, 15, 7, 0, 0]])
    assert decode_text(codes, "abcdefghijklmnopqrstuvwxyz") == ["cat", "dog"]
    with pytest.raises(ValueError, match="alphabet"):
        decode_text(np.array([[30]]), "abc")


def test_settings_check_the_image_shape_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="does not hold"):
        SamplerSettings(t0=0.5, method="euler", step_size=0.1, draft_noise=0.0, dim=10,
                        model={}, kind="image", shape=(1, 3, 3))
    folder = make_bundle("image", tmp_path / "bundle")
    assert read_settings(folder).shape == (1, 4, 4)


def _data_like(settings: SamplerSettings) -> Dataset:
    """A dataset whose samples have the form the bundle's settings describe (rows unused)."""
    rows = np.zeros((4, settings.dim), dtype=np.float32)
    text = (TextInfo(seq_len=settings.model["seq_len"], vocab=len(ALPHABET) + 1,
                     alphabet=ALPHABET, train_words=(), test_words=())
            if settings.kind == "text" else None)
    return Dataset(settings.kind, rows, rows, rows, shape=settings.shape, text=text)


@pytest.mark.parametrize("kind", ["vector", "image", "text"])
def test_the_shipped_sampler_is_the_one_evaluation_measures(tmp_path, kind):
    """What is measured is what is shipped: from the same draft, network and settings, the
    bundle's sampler and evaluation's (``make_sampler``) are one build and draw the same."""
    model = BundleModel(make_bundle(kind, tmp_path / "bundle"))
    s = model.settings
    measured = make_sampler(_data_like(s), model.sampler.draft, model.sampler.refiner, s.t0,
                            step_size=s.step_size, method=s.method, draft_noise=s.draft_noise,
                            exponent=s.exponent, temperature=s.temperature)
    assert type(measured) is type(model.sampler)
    assert vars(measured).keys() == vars(model.sampler).keys()
    for seed in (0, 7):
        shipped_x, shipped_nfe = model.sampler.sample(16, seed)
        measured_x, measured_nfe = measured.sample(16, seed)
        assert shipped_nfe == measured_nfe
        assert np.array_equal(shipped_x, measured_x)
