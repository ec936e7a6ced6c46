import dataclasses
import io
import json
import tarfile

import numpy as np
import torch

from tests.stages.conftest import context, save_untrained
from wsfm.bundle import load_net
from wsfm.components import net_spec
from wsfm.data.datasets import load_dataset
from wsfm.flow.solvers import integrate
from wsfm.orchestrate.local import LocalRuntime
from wsfm.shards import read_manifest
from wsfm.stages.rivals import REFLOW_STEPS, generate_reflow, train_cold_ot, train_reflow


def with_methods(config, methods):
    return dataclasses.replace(config, evaluate=dataclasses.replace(config.evaluate,
                                                                    methods=methods))


def test_reflow_pairs_are_noise_and_the_cold_ot_flow_from_it(tmp_path, tiny_config):
    config = with_methods(tiny_config, ["cold", "cold_ot", "reflow", "warm"])
    model = save_untrained(config, tmp_path / "train_cold_ot", 3)
    out = tmp_path / "pairs"
    result = generate_reflow(context(config, out, LocalRuntime(), train_cold_ot=model))
    records = read_manifest(out)
    assert len(records) == config.shards.num_shards
    assert result.metrics["pairs"] == sum(r.count for r in records)
    with tarfile.open(out / records[0].shard) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".x.npy"))
        rows = np.load(io.BytesIO(tar.extractfile(member).read()))
    assert rows.shape[1] == 4  # [z | x1] for 2-d data
    data = load_dataset(config.data)
    net = load_net(net_spec(config.model, data), 2, model / "model.pt")
    z = torch.from_numpy(rows[:, :2])
    with torch.no_grad():
        x1 = integrate(lambda x, t: net(x, t), z, 0.0, 1.0, steps=REFLOW_STEPS).x
    assert np.allclose(rows[:, 2:], x1.numpy(), atol=1e-5)
    # A second attempt finds every shard complete and makes the same manifest.
    again = tmp_path / "again"
    generate_reflow(context(config, again, LocalRuntime(), train_cold_ot=model))
    assert [(r.sha256, r.count) for r in read_manifest(again)] == [
        (r.sha256, r.count) for r in records]


def test_rivals_not_asked_for_are_skipped_without_training(tmp_path, tiny_config):
    config = with_methods(tiny_config, ["draft", "cold", "warm"])  # NoRuntime: no training
    for stage, name in ((train_cold_ot, "cold_ot"), (generate_reflow, "reflow"),
                        (train_reflow, "reflow")):
        out = tmp_path / stage.__name__
        result = stage(context(config, out))
        assert result.metrics == {"skipped": 1.0}
        assert name in json.loads((out / "skipped.json").read_text())["reason"]
