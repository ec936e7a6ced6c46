from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wsfm.models import build_model
from wsfm.stages import StageContext
from wsfm.stages.pretrain_draft import pretrain_draft


class NoRuntime:
    """For stages that must not fan out or train: any use is a test failure."""

    def map(self, fn, items):
        raise AssertionError("this stage should not use runtime.map")

    def train(self, spec):
        raise AssertionError("this stage should not use runtime.train")


def context(config, out: Path, runtime=None, **inputs: Path) -> StageContext:
    out.mkdir(parents=True, exist_ok=True)
    return StageContext(config, dict(inputs), out, runtime or NoRuntime())


@pytest.fixture
def draft_dir(tmp_path, tiny_config) -> Path:
    out = tmp_path / "pretrain_draft"
    pretrain_draft(context(tiny_config, out))
    return out


def save_untrained(config, folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    m = config.model
    net = build_model(m.kind, dim=2, hidden=m.hidden, depth=m.depth, time_dim=m.time_dim)
    torch.save(net.state_dict(), folder / "model.pt")
    return folder
