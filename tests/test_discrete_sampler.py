import numpy as np
import pytest
import torch
from torch import nn

from wsfm.data.words import encode
from wsfm.drafts import CharNgramDraft
from wsfm.sampler import DiscreteWarmStartSampler

TARGET = torch.from_numpy(encode(["hello"], 12))[0]  # (12,)


class Oracle(nn.Module):
    """Logits that put all mass on TARGET at every position, whatever the input."""

    def forward(self, x, s):
        logits = torch.full((x.shape[0], 12, 27), -1e4)
        logits[:, torch.arange(12), TARGET] = 1e4
        return logits.reshape(x.shape[0], -1)


def draft():
    return CharNgramDraft(order=2).fit(encode(["cat", "dog", "bird", "horse"], 12))


def test_warm_and_cold_reach_the_oracle_target_with_exact_nfe():
    for kwargs, nfe in [({"draft": draft(), "t0": 0.9}, 10), ({"draft": None, "t0": 0.0}, 100)]:
        sampler = DiscreteWarmStartSampler(refiner=Oracle(), step_size=0.01, seq_len=12,
                                           mask_id=27, **kwargs)
        x, spent = sampler.sample(16, seed=0)
        assert spent == nfe == sampler.expected_nfe()
        assert x.dtype == np.int64 and x.shape == (16, 12)
        assert (x == TARGET.numpy()).all()


def test_zero_shot_fills_exactly_the_masked_positions():
    sampler = DiscreteWarmStartSampler(draft(), Oracle(), 0.8, 0.01, "noised_draft",
                                       seq_len=12, mask_id=27)
    start = sampler.initial(64, seed=0).numpy()
    masked = start == 27
    assert 0.05 < masked.mean() < 0.4  # 1 - kappa(0.8) = 0.2 of the positions
    x, nfe = sampler.sample(64, seed=0)
    assert nfe == 20
    target = np.broadcast_to(TARGET.numpy(), x.shape)
    assert (x[masked] == target[masked]).all() and (x[~masked] == start[~masked]).all()


def test_steps_override_and_determinism():
    sampler = DiscreteWarmStartSampler(draft(), Oracle(), 0.9, 0.01, seq_len=12, mask_id=27)
    x, nfe = sampler.sample(8, seed=3, steps=2)
    assert nfe == 2
    y, _ = sampler.sample(8, seed=3, steps=2)
    assert np.array_equal(x, y)


class Leaning(nn.Module):
    """Logits that favour TARGET at every position (probability about 0.5), not certainty."""

    def forward(self, x, s):
        logits = torch.zeros((x.shape[0], 12, 27))
        logits[:, torch.arange(12), TARGET] = 3.3  # e^3.3 / (e^3.3 + 26) ~ 0.51
        return logits.reshape(x.shape[0], -1)


def test_final_argmax_takes_the_most_likely_character_at_the_last_step():
    kwargs = {"refiner": Leaning(), "step_size": 0.01, "seq_len": 12, "mask_id": 27}
    drawn, _ = DiscreteWarmStartSampler(draft(), t0=0.9, **kwargs).sample(64, seed=0)
    argmax, nfe = DiscreteWarmStartSampler(draft(), t0=0.9, final="argmax",
                                           **kwargs).sample(64, seed=0)
    assert nfe == 10 and (argmax == TARGET.numpy()).all()  # every position jumps at s = 1
    assert 0.3 < (drawn == TARGET.numpy()).mean() < 0.7  # a draw: about half on target
    # Cold (masked source): what is still masked at the last step takes the argmax.
    cold, _ = DiscreteWarmStartSampler(None, t0=0.0, final="argmax", **kwargs).sample(8, 0)
    assert (cold != 27).all()
    with pytest.raises(ValueError, match="final must be"):
        DiscreteWarmStartSampler(draft(), t0=0.8, start="noised_draft", final="argmax",
                                 **kwargs)


def test_remask_from_the_draft_reaches_the_oracle_and_spends_the_step_count():
    sampler = DiscreteWarmStartSampler(draft(), Oracle(), 0.8, 0.01, seq_len=12, mask_id=27,
                                       remask=1.0)
    x, nfe = sampler.sample(16, seed=0)
    assert nfe == 20 == sampler.expected_nfe()
    assert (x == TARGET.numpy()).all()
    start = sampler.initial(16, seed=0).numpy()
    x1, nfe1 = sampler.sample(16, seed=0, steps=1)  # one call reads the draft, changes nothing
    assert nfe1 == 1 and np.array_equal(x1, start)
    with pytest.raises(ValueError, match="remask"):
        DiscreteWarmStartSampler(draft(), Oracle(), 0.8, seq_len=12, mask_id=27, remask=1.5)
