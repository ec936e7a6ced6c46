import numpy as np
import pytest
import torch

from wsfm.data.words import decode, encode
from wsfm.drafts import DRAFTS, GRUDraft, load_draft, read_kind

WORDS = ["cab", "dogs", "emu", "fish", "gnat"]  # the first letter decides the word



def _fit(seed=0, steps=150):
    return GRUDraft(hidden=16, embed=8, steps=steps, batch_size=16, lr=3e-2,
                    seed=seed).fit(encode(WORDS, 6))


def test_learns_a_tiny_corpus():
    draft = _fit()
    got = decode(draft.sample(400, seed=0))
    assert np.mean([w in WORDS for w in got]) > 0.9
    assert all(3 <= len(w) <= 4 for w in got)  # the training length range


def test_fit_and_sample_deterministic():
    a, b, c = _fit(seed=1, steps=20), _fit(seed=1, steps=20), _fit(seed=2, steps=20)
    for (k, v), w in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(v, w), k
    assert not torch.equal(a.net.head.weight, c.net.head.weight)
    x = a.sample(100, seed=3)
    assert x.shape == (100, 6) and x.dtype == np.int64
    assert np.array_equal(x, b.sample(100, seed=3))
    assert not np.array_equal(x, a.sample(100, seed=4))


def test_save_load_round_trip(tmp_path):
    draft = _fit(steps=20)
    path = tmp_path / "gru.npz"
    draft.save(path)
    assert read_kind(path) == "gru" and DRAFTS["gru"] is GRUDraft
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
    loaded = load_draft(path)
    assert isinstance(loaded, GRUDraft) and loaded.dim == 6
    assert np.array_equal(loaded.sample(200, 7), draft.sample(200, 7))
    # per symbol: 6 (8 + 16) 16 + 2 16 27 + 2 27 = 3222 flops; mean length 3.6 + end
    assert loaded.cost_per_sample == pytest.approx(3222 * 4.6)


def test_errors():
    with pytest.raises(ValueError):
        GRUDraft(hidden=0)
    with pytest.raises(ValueError):
        GRUDraft().sample(2, 0)
