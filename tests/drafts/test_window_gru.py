"""The window GRU draft: what it learns against closed-form texts, teacher-forced substitutes,
determinism through save and load, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from wsfm.components import build_draft
from wsfm.config import DraftConfig
from wsfm.drafts import WindowGRUDraft, load_draft


def _periodic(n: int, width: int, period: int = 3) -> np.ndarray:
    """Windows of the text 1 2 3 1 2 3 ... at every offset."""
    text = np.arange(n + width + period) % period + 1
    return np.stack([text[i:i + width] for i in range(n)])


@pytest.fixture(scope="module")
def periodic() -> WindowGRUDraft:
    return WindowGRUDraft(hidden=32, steps=300, embed=8, batch_size=32, lr=1e-2,
                          seed=0).fit(_periodic(30, 10))


def test_on_a_periodic_text_the_chain_writes_the_period(periodic):
    x = periodic.sample(300, seed=0)
    assert x.shape == (300, 10) and x.dtype == np.int64
    # after the first character every step has one continuation: c -> c % 3 + 1
    assert (x[:, 1:] == x[:, :-1] % 3 + 1).mean() > 0.99
    # the first character has no context: each of the three starts a third of the windows
    assert set(x[:, 0]) == {1, 2, 3}
    assert periodic.nll(_periodic(30, 10)) < 0.05 * 9 / 10 + np.log2(3) / 10


def test_substitutes_follow_the_real_left_context(periodic):
    real = _periodic(6, 10)
    sub = periodic.substitutes(real, seed=0)
    assert sub.shape == real.shape
    assert (sub[:, 1:] == real[:, 1:]).mean() > 0.99  # a deterministic text: the same text


def test_on_independent_characters_the_nll_reaches_the_entropy():
    """i.i.d. characters: no model can beat the entropy H(p), and a fitted one comes close;
    the chain's character frequencies are p."""
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.2])
    entropy = float(-(p * np.log2(p)).sum())  # 1.485 bits
    train, held_out = (rng.choice([1, 2, 3], p=p, size=(n, 16)) for n in (2000, 2000))
    draft = WindowGRUDraft(hidden=16, steps=200, embed=8, batch_size=64, lr=1e-2,
                           seed=0).fit(train)
    nll = draft.nll(held_out)
    assert entropy - 0.02 < nll < entropy + 0.05
    x = draft.sample(4000, seed=1)
    assert np.abs(np.bincount(x.ravel(), minlength=4)[1:] / x.size - p).max() < 0.02


def test_drawing_is_deterministic_and_survives_save_and_load(tmp_path, periodic):
    rng = np.random.default_rng(0)
    data = rng.integers(1, 20, size=(200, 12))
    draft = WindowGRUDraft(hidden=16, steps=20, seed=3).fit(data)
    again = WindowGRUDraft(hidden=16, steps=20, seed=3).fit(data)
    assert np.array_equal(draft.sample(40, 1), again.sample(40, 1))  # the fit is seeded
    draft.save(tmp_path / "d.npz")
    loaded = load_draft(tmp_path / "d.npz")
    assert isinstance(loaded, WindowGRUDraft) and loaded.dim == 12 and loaded.vocab == 20
    assert np.array_equal(loaded.sample(50, 3), draft.sample(50, 3))
    assert not np.array_equal(draft.sample(50, 3), draft.sample(50, 4))
    assert np.array_equal(loaded.substitutes(data[:5], 1), draft.substitutes(data[:5], 1))
    assert loaded.cost_per_sample == draft.cost_per_sample > 0


def test_the_config_builds_it_from_hidden_and_steps():
    draft = build_draft(DraftConfig(kind="window_gru", hidden=24, steps=7), seed=5)
    assert isinstance(draft, WindowGRUDraft)
    assert (draft.hidden, draft.steps, draft.seed) == (24, 7, 5)


def test_bad_input_is_refused(periodic):
    with pytest.raises(ValueError, match="hidden"):
        WindowGRUDraft(hidden=0)
    with pytest.raises(ValueError, match=">= 1"):
        WindowGRUDraft(steps=1).fit(np.zeros((4, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="integer codes"):
        WindowGRUDraft(steps=1).fit(np.ones((4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="not fitted"):
        WindowGRUDraft().sample(2, 0)
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        periodic.substitutes(np.ones((2, 9), dtype=np.int64), 0)
    with pytest.raises(ValueError, match=r"in \[1, 3\]"):
        periodic.substitutes(np.full((2, 10), 7), 0)


def test_the_configs_substitute_kinds_are_the_drafts_that_draw_substitutes():
    from wsfm.config import SUBSTITUTE_DRAFTS
    from wsfm.drafts import DRAFTS, SubstituteDraft

    drawing = {kind for kind, cls in DRAFTS.items() if callable(getattr(cls, "substitutes", None))}
    assert drawing == set(SUBSTITUTE_DRAFTS)
    assert isinstance(WindowGRUDraft(hidden=4, steps=1), SubstituteDraft)
