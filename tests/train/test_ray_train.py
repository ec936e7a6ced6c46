"""``wsfm.train.ray_train.fit``: what it checks before Ray Train starts a worker."""

from __future__ import annotations

import json
import re

import pytest

from wsfm.components import net_spec
from wsfm.config import DataConfig, FlowConfig, ModelConfig, TrainConfig
from wsfm.data.datasets import load_dataset
from wsfm.models import build_model
from wsfm.space import SpaceShort
from wsfm.train.checkpoint import KEEP
from wsfm.train.ray_train import RAY_RUN, SNAPSHOT, fit, ray_run_name
from wsfm.train.spec import TrainSpec


def test_a_run_whose_checkpoints_and_models_do_not_fit_is_refused_before_any_worker(tmpfs):
    mnt, _ = tmpfs  # 128 KiB: checkpoints and models on one filesystem
    data, model = DataConfig(n_train=500, n_test=100), ModelConfig(hidden=64, depth=2,
                                                                   time_dim=16)
    spec = TrainSpec(mode="cold", data=data, flow=FlowConfig(), model=model,
                     train=TrainConfig(steps=10, warmup_steps=2, batch_size=16,
                                       num_workers=2), dim=2,
                     out_dir=str(mnt / "out"))
    with pytest.raises(SpaceShort) as info:
        fit(spec, storage_path=str(mnt / "ray"), run_name="t")  # no Ray: refused before it

    # Independently: the network's parameters as built for training, in fp32. A checkpoint
    # holds the weights, the optimizer's master copy and two Adam moments, and the EMA (five
    # copies); KEEP are kept and the next is written before the oldest goes; the stage folder
    # gets model.pt and model_raw.pt (two copies).
    ds = load_dataset(data)
    kwargs = net_spec(model, ds)
    params = sum(p.numel() for p in build_model(kwargs.pop("kind"), dim=ds.dim,
                                                **kwargs).parameters())
    need = (KEEP + 1) * 5 * 4 * params + 2 * 4 * params
    message = str(info.value)
    print(message)
    assert message.startswith(f"train_baseline ({params:,} parameters, {KEEP} checkpoints "
                              "kept) needs")
    assert f"({need:,} bytes) in {mnt / 'ray'}/t-" in message and str(mnt / "out") in message
    free = int(re.search(r"has .* \(([\d,]+) bytes\) free", message)[1].replace(",", ""))
    assert 0 < free <= 128 * 1024 < need  # the tmpfs's free space, not the machine's
    assert not (mnt / "ray").exists()  # no Ray run was started
    assert not list((mnt / "out").glob("*.pt"))


def test_a_run_whose_checkpoint_record_was_cut_short_is_not_continued(tmp_path):
    """A full disk cut Ray Train's snapshot short (an empty file, as measured): Ray Train
    would fail to start on it (CheckpointManagerInitializationError) on every rerun. The
    run is continued while its snapshot reads, and replaced, with a warning, when not."""
    out, storage = tmp_path / "stage", tmp_path / "ray"
    out.mkdir()
    first = ray_run_name(out, "toy2d-train_refiner-fp", str(storage))
    assert ray_run_name(out, "toy2d-train_refiner-fp", str(storage)) == first  # no snapshot yet
    snapshot = storage / first / SNAPSHOT
    snapshot.parent.mkdir(parents=True)
    snapshot.write_text(json.dumps({"checkpoints": []}))
    assert ray_run_name(out, "toy2d-train_refiner-fp", str(storage)) == first
    snapshot.write_text("")
    with pytest.warns(UserWarning, match=f"the checkpoint record of Ray run {first} cannot be "
                                         "read .*training starts over in a new run"):
        second = ray_run_name(out, "toy2d-train_refiner-fp", str(storage))
    assert second != first and second.startswith("toy2d-train_refiner-fp-")
    assert json.loads((out / RAY_RUN).read_text())["name"] == second
