"""Checkpoints, resume and divergence with real Ray Train + DeepSpeed on 2 CPU workers.

One uninterrupted warm run is the reference. A run whose worker is SIGKILLed, and a run whose
driver is SIGKILLed and then started again, must both continue from their last checkpoint
(not from step 0) and end with the reference's weights: same steps, same batches, same
optimizer and EMA state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.helpers import write_shard
from wsfm.components import net_spec
from wsfm.config import DataConfig, FlowConfig, ModelConfig, TrainConfig
from wsfm.data.datasets import load_dataset
from wsfm.tracking import Tracker
from wsfm.train.checkpoint import KEEP, checkpoint_bytes, model_bytes, read_pointer
from wsfm.train.faults import KillAt
from wsfm.train.monitor import Divergence
from wsfm.train.spec import TrainSpec

ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY = 16, 5  # checkpoints at steps 5, 10, 15 and 16


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[str, ...]:
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    return tuple(str(folder / write_shard(folder, i, rng.normal(size=(400, 2)), seed=i).shard)
                 for i in range(2))


def _spec(out: Path, shards, **train) -> TrainSpec:
    tc = TrainConfig(steps=STEPS, batch_size=32, lr=3e-3, warmup_steps=3, num_workers=2,
                     zero_stage=2, ema_decay=0.9, checkpoint_every=EVERY, max_failures=1,
                     log_every=4, shuffle_buffer=128)
    return TrainSpec(mode="warm", data=DataConfig(n_train=2000, n_test=200),
                     flow=FlowConfig(t0=0.8, draft_noise=0.1, coupling="minibatch_ot"),
                     model=ModelConfig(hidden=64, depth=2, time_dim=16),
                     train=dataclasses.replace(tc, **train), dim=2, out_dir=str(out),
                     shard_urls=tuple(shards))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shards, ray_local):
    """An uninterrupted run, logged to MLflow: ``(out_dir, summary, mlflow uri, run id)``."""
    from wsfm.train.ray_train import fit

    tmp = tmp_path_factory.mktemp("reference")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    run_id = Tracker(uri, "t", tmp / "mlartifacts").start_run("train_refiner")
    summary = fit(_spec(tmp / "out", shards), storage_path=str(tmp / "ray"), run_name="ref",
                  tracking={"uri": uri, "run_id": run_id})
    return tmp / "out", summary, uri, run_id


def _assert_same_weights(out: Path, ref: Path) -> None:
    for name in ("model.pt", "model_raw.pt"):
        got = torch.load(out / name, weights_only=True)
        want = torch.load(ref / name, weights_only=True)
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)


def test_uninterrupted_run_writes_ema_and_raw_weights_and_logs_from_rank_0(reference):
    out, summary, uri, run_id = reference
    assert summary["steps"] == STEPS and summary["resumed_from_step"] == 0
    assert summary["world_size"] == 2 and summary["peak_rss_mb_rank1"] > 0
    assert read_pointer(out)["step"] == STEPS
    ds = json.loads((out / "deepspeed_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == 2 and ds["train_batch_size"] == 32
    ema = torch.load(out / "model.pt", weights_only=True)
    raw = torch.load(out / "model_raw.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in ema.values())
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # the average is not the iterate
    # model.pt is the EMA that the final checkpoint carries.
    final = Path(read_pointer(out)["path"])
    shadow = torch.load(final / "ema.pt", weights_only=True)["shadow"]
    assert all(torch.equal(ema[k], shadow[k]) for k in shadow)
    # Rank 0 alone logged each metric, once per log_every steps.
    client = MlflowClient(uri)
    for metric in ("train/loss", "train/lr", "train/samples_per_s", "train/step_time_s"):
        history = client.get_metric_history(run_id, metric)
        assert sorted(m.step for m in history) == [4, 8, 12, 16], metric
        assert all(np.isfinite(m.value) and m.value > 0 for m in history)


def test_state_dict_loads_into_the_plain_network_without_deepspeed(reference, shards):
    out = reference[0]
    spec = _spec(out, shards)
    net = net_spec(spec.model, load_dataset(spec.data))
    code = (
        "import sys; sys.modules['deepspeed'] = None\n"  # any import of deepspeed now fails
        "import torch\n"
        "from wsfm.bundle import load_net\n"
        f"net = load_net({net!r}, 2, {str(out / 'model.pt')!r})\n"
        "print(net(torch.zeros(3, 2), torch.full((3,), 0.5)).shape)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "torch.Size([3, 2])" in done.stdout


def test_a_killed_worker_restarts_from_the_last_checkpoint(tmp_path, shards, reference,
                                                         ray_local):
    from wsfm.train.ray_train import fit

    marker = tmp_path / "killed"
    summary = fit(_spec(tmp_path / "out", shards), storage_path=str(tmp_path / "ray"),
                  run_name="kill", hooks=[KillAt(rank=1, step=12, marker=str(marker))])
    assert marker.is_file()  # rank 1 was SIGKILLed after step 12...
    assert summary["resumed_from_step"] == 10  # ...and the new group resumed at step 10
    assert summary["steps"] == STEPS
    _assert_same_weights(tmp_path / "out", reference[0])


DRIVER = """
import pickle, sys
import ray
from wsfm.train.faults import PauseAt
from wsfm.train.ray_train import fit
spec, storage = pickle.load(open(sys.argv[1], "rb"))
ray.init(address=sys.argv[2], runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
fit(spec, storage_path=storage, run_name="driver", hooks=[PauseAt(rank=0, step=11)])
"""


def test_rerun_after_the_driver_is_killed_continues_from_the_checkpoint(
        tmp_path, shards, reference, ray_local):
    from wsfm.train.ray_train import fit

    out, storage = tmp_path / "out", str(tmp_path / "ray")
    spec = _spec(out, shards)
    (tmp_path / "job.pkl").write_bytes(pickle.dumps((spec, storage)))
    address = ray_local.get_runtime_context().gcs_address
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "job.pkl"), address],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "DS_ACCELERATOR": "cpu"})
    try:
        deadline = time.monotonic() + 240
        while (read_pointer(out) or {}).get("step") != 10:  # rank 0 then stalls after step 11
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint at step 10 in time"
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        log.close()
    assert not (out / "model.pt").exists()

    summary = fit(spec, storage_path=storage, run_name="driver")  # the pipeline's rerun
    assert summary["resumed_from_step"] == 10 and summary["steps"] == STEPS
    _assert_same_weights(out, reference[0])


def test_a_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, shards,
                                                                           ray_local):
    from wsfm.train.ray_train import fit

    out = tmp_path / "out"
    # Adam moves every weight by about lr/warmup on step 1; the next forward overflows.
    # (max_failures=0: a restarted group would only find diverged.json and stop, see
    # test_loop.py; the restart costs a worker-group start-up.)
    spec = _spec(out, shards, lr=1e30, checkpoint_every=1, max_failures=0)
    with pytest.raises(Divergence, match=r"warm training diverged: the loss is (nan|inf) at "
                                         r"step 2 .*last good checkpoint \(step 1, "):
        fit(spec, storage_path=str(tmp_path / "ray"), run_name="nan")
    assert read_pointer(out)["step"] == 1
    run_dir = Path(json.loads((out / "ray_run.json").read_text())["name"])
    checkpoints = sorted(p.name for p in (tmp_path / "ray" / run_dir).glob("step-*"))
    assert checkpoints == ["step-000001"]  # nothing was saved after the bad step
    assert not (out / "model.pt").exists()


def test_the_space_check_is_a_close_lower_bound_of_what_training_wrote(reference):
    """``wsfm.space`` refuses a run on these estimates: they must never exceed what a run
    writes (a run that fits is never refused), and not be far below it either."""
    out, _, _, _ = reference
    params = sum(t.numel() for t in torch.load(out / "model.pt", weights_only=True).values())
    steps = sorted((out.parent / "ray").glob("ref-*/step-*"))
    assert len(steps) == KEEP  # Ray Train keeps KEEP checkpoints
    for folder in steps:
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        # DeepSpeed's scripts (about 40 kB) and pickling add a fixed amount per checkpoint.
        assert checkpoint_bytes(params) <= size <= 1.1 * checkpoint_bytes(params) + 100_000
    models = sum((out / name).stat().st_size for name in ("model.pt", "model_raw.pt"))
    assert model_bytes(params) <= models <= 1.1 * model_bytes(params) + 20_000
