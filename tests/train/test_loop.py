import math

import pytest

from wsfm.config import TrainConfig
from wsfm.train.loop import deepspeed_config, lr_lambda


def test_learning_rate_warms_up_linearly_then_decays_on_a_cosine():
    cfg = TrainConfig(steps=1100, warmup_steps=100)
    f = lr_lambda(cfg)
    assert f(0) == pytest.approx(0.01) and f(49) == pytest.approx(0.5)
    assert f(100) == pytest.approx(1.0)
    mid = 100 + 500  # halfway through the decay: cos(pi/2) = 0
    assert f(mid) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(1100) == pytest.approx(0.1)
    decay = [f(s) for s in range(100, 1101)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert f(700) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.6)))


def test_deepspeed_batch_arithmetic():
    cfg = TrainConfig(batch_size=512, num_workers=4, zero_stage=1)
    ds = deepspeed_config(cfg, world_size=4)
    assert ds["train_batch_size"] == 512
    assert ds["train_micro_batch_size_per_gpu"] * 4 * ds["gradient_accumulation_steps"] == 512
    assert ds["zero_optimization"]["stage"] == 1
    assert not ds["fp16"]["enabled"] and not ds["bf16"]["enabled"]
