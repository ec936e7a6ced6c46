import numpy as np
import webdataset as wds

from wsfm.drafts import load_draft
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.shards import read_manifest, verify_shards
from wsfm.stages.generate_drafts import generate_drafts

from tests.stages.conftest import context


def test_shards_hold_the_drafts_of_each_seed(tmp_path, tiny_config, draft_dir, ray_local):
    out = tmp_path / "shards"
    runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="t")
    result = generate_drafts(context(tiny_config, out, runtime, pretrain_draft=draft_dir))

    records = read_manifest(out)
    n, per = tiny_config.shards.num_shards, tiny_config.shards.per_shard
    assert len(records) == n and result.metrics["drafts"] == n * per
    assert len({r.seed for r in records}) == n
    assert verify_shards(out) == []
    draft = load_draft(draft_dir / "draft.npz")
    for rec in records:  # each shard is exactly its seed's draws, in order
        blocks = [s["x.npy"] for s in wds.WebDataset(str(out / rec.shard),
                                                      shardshuffle=False).decode()]
        np.testing.assert_array_equal(np.concatenate(blocks), draft.sample(per, rec.seed))
