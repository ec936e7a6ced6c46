import numpy as np
import pytest

from wsfm.data.words import VOCAB, encode, from_one_hot, one_hot
from wsfm.drafts import DRAFTS, CharNgramDraft, OneHotDraft, load_draft, read_kind

WORDS = ["cat", "dog", "bird", "horse", "mouse", "cattle"]


def test_samples_are_the_wrapped_drafts_words_as_one_hot_rows():
    codes = CharNgramDraft(order=2).fit(encode(WORDS, 8))
    draft = OneHotDraft(codes)
    x = draft.sample(50, seed=3)
    assert x.shape == (50, 8 * VOCAB) == (50, draft.dim) and x.dtype == np.float32
    assert np.array_equal(x.reshape(50, 8, VOCAB).sum(axis=2), np.ones((50, 8)))
    assert np.array_equal(from_one_hot(x), codes.sample(50, seed=3))
    assert draft.cost_per_sample == codes.cost_per_sample


def test_fit_reads_one_hot_rows_and_save_load_round_trips(tmp_path):
    draft = OneHotDraft(CharNgramDraft(order=3)).fit(one_hot(encode(WORDS, 8)))
    path = tmp_path / "draft.npz"
    draft.save(path)
    assert path.is_file() and read_kind(path) == "one_hot" and DRAFTS["one_hot"] is OneHotDraft
    loaded = load_draft(path)
    assert isinstance(loaded, OneHotDraft) and isinstance(loaded.inner, CharNgramDraft)
    assert loaded.inner.order == 3 and loaded.dim == 8 * VOCAB
    assert np.array_equal(loaded.sample(20, seed=1), draft.sample(20, seed=1))


def test_a_one_hot_draft_cannot_wrap_itself(tmp_path):
    inner = OneHotDraft(CharNgramDraft(order=2).fit(encode(WORDS, 8)))
    OneHotDraft(inner).save(tmp_path / "twice.npz")
    with pytest.raises(ValueError, match="must wrap a code draft"):
        load_draft(tmp_path / "twice.npz")
