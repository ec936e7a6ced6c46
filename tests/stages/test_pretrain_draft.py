from tests.helpers import context
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
