import dataclasses

import numpy as np

from tests.helpers import context
from wsfm.components import build_draft
from wsfm.data.datasets import load_dataset
from wsfm.data.toy2d import make_toy2d
from wsfm.drafts import load_draft
from wsfm.metrics import sliced_wasserstein
from wsfm.stages.pretrain_draft import pretrain_draft


def test_draft_is_fitted_saved_and_visibly_imperfect(tmp_path, tiny_config):
    result = pretrain_draft(context(tiny_config, tmp_path))
    draft = load_draft(tmp_path / "draft.npz")
    assert draft.dim == 2 and result.metrics["cost_per_sample"] > 0
    held_out = make_toy2d("checkerboard", 5000, seed=101)
    floor = sliced_wasserstein(make_toy2d("checkerboard", 5000, seed=102), held_out, seed=0)
    # A 4-component GMM cannot draw a checkerboard: far above data against data.
    assert sliced_wasserstein(draft.sample(5000, seed=7), held_out, seed=0) > 2 * floor


def test_a_large_split_is_fitted_on_a_seeded_sample_of_fit_rows(tmp_path, tiny_config):
    cfg = dataclasses.replace(tiny_config,
                              draft=dataclasses.replace(tiny_config.draft, fit_rows=300))
    result = pretrain_draft(context(cfg, tmp_path / "a"))
    pretrain_draft(context(cfg, tmp_path / "b"))
    assert result.params["n_fit"] == 300 and result.params["n_train"] == 2000
    a, b = np.load(tmp_path / "a" / "draft.npz"), np.load(tmp_path / "b" / "draft.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)  # the same sample, the same fit
    # 300 distinct training rows: the fit is that of a GMM on some 300 of them, not all 2000
    train = load_dataset(cfg.data).train
    whole = build_draft(cfg.draft, seed=cfg.seed).fit(train)
    whole.save(tmp_path / "whole.npz")
    w = np.load(tmp_path / "whole.npz")
    assert not all(np.allclose(a[k], w[k]) for k in a.files if a[k].dtype.kind == "f")
    # a split smaller than fit_rows is fitted whole
    assert pretrain_draft(context(tiny_config, tmp_path / "c")).params["n_fit"] == 2000
