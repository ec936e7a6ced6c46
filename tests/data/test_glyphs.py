import numpy as np
import pytest

from wsfm.config import DataConfig
from wsfm.data import glyphs as g
from wsfm.data.datasets import load_dataset


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("glyph-cache")


@pytest.fixture
def rendered(cache, monkeypatch):
    monkeypatch.setenv("WSFM_CACHE", str(cache))
    return g.render_glyphs(2, seed=0)


def test_every_face_and_character_is_rendered_in_range(rendered):
    faces = g.glyph_faces()
    assert len(faces) == 22 == sum(len(f) for f in g.FAMILIES.values())
    assert rendered.images.shape == (22 * 62 * 2, 32 * 32)
    assert rendered.images.dtype == np.float32
    assert rendered.images.min() >= -1.0 and rendered.images.max() <= 1.0
    assert np.array_equal(np.bincount(rendered.labels), np.full(62, 22 * 2))
    assert np.array_equal(np.bincount(rendered.faces), np.full(22, 62 * 2))
    # Glyphs are ink (+1) on a background (-1): the one-pixel border is background nearly
    # everywhere, and every glyph has some ink.
    img = rendered.images.reshape(-1, 32, 32)
    border = np.concatenate([img[:, 0], img[:, -1], img[:, :, 0], img[:, :, -1]], axis=1)
    assert (border < -0.9).mean() > 0.99
    assert (img.max(axis=(1, 2)) > 0.5).all()


def test_rendering_is_deterministic_and_the_cache_holds_the_same_arrays(rendered, cache,
                                                                        monkeypatch):
    assert len(list(cache.glob("glyphs-*.npz"))) == 1
    cached = g.render_glyphs(2, seed=0)  # from the cache file
    monkeypatch.setenv("WSFM_CACHE", str(cache / "elsewhere"))
    fresh = g.render_glyphs(2, seed=0)  # drawn again
    assert np.array_equal(cached.images, rendered.images)
    assert np.array_equal(fresh.images, rendered.images)
    other = g.render_glyphs(1, seed=1)
    assert not np.array_equal(other.images, rendered.images[::2])


def test_labels_name_what_is_drawn(rendered):
    """Independent of the renderer's bookkeeping: a 1-nearest-neighbour classifier fitted on
    some faces names the characters of other faces far above chance (1/62)."""
    train = rendered.faces % 2 == 0
    x, y = rendered.images, rendered.labels
    a, b = x[train], x[~train]
    d = (b**2).sum(1)[:, None] - 2 * b @ a.T + (a**2).sum(1)[None]
    accuracy = (y[train][d.argmin(1)] == y[~train]).mean()
    assert accuracy > 0.4


def test_split_holds_one_face_per_family_out_whole(rendered):
    train, test, held = g.split_glyphs(rendered, test_fraction=0.2, seed=0)
    assert len(held) == len(g.FAMILIES)
    assert all(face in files for face, files in zip(held, g.FAMILIES.values(), strict=True))
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(rendered.labels)
    held_ids = [rendered.face_names.index(f) for f in held]
    assert not np.isin(rendered.faces[train], held_ids).any()
    unseen = np.isin(rendered.faces[test], held_ids)
    assert unseen.sum() == 5 * 62 * 2
    known = 17 * 62 * 2
    assert (~unseen).sum() == round(0.2 * known)
    again = g.split_glyphs(rendered, test_fraction=0.2, seed=0)
    assert np.array_equal(again[1], test)
    assert g.split_glyphs(rendered, test_fraction=0.2, seed=1)[2] != held or \
        g.split_glyphs(rendered, test_fraction=0.2, seed=2)[2] != held


def test_glyphs_dataset(cache, monkeypatch):
    monkeypatch.setenv("WSFM_CACHE", str(cache))
    data = load_dataset(DataConfig(kind="glyphs", per_glyph=2, seed=0))
    assert data.kind == "image" and data.shape == (1, 32, 32) and data.dim == 1024
    assert len(data.labels) == len(data.train) and len(data.test_labels) == len(data.test)
    train_rows = {r.tobytes() for r in data.train}
    assert all(r.tobytes() in train_rows for r in data.reference)
    assert len(data.reference) == min(len(data.train), len(data.test))
