"""fit_local: the pipelines' training loop in this process, against Ray Train with 1 worker.

The independent check is the Ray Train path itself (``wsfm.train.ray_train.fit``, tested in
test_resume.py): at world size 1 both must end with the same weights, and a local run broken
off after a checkpoint and called again must end where an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import write_shard
from wsfm.config import DataConfig, FlowConfig, ModelConfig, TrainConfig
from wsfm.train.checkpoint import read_pointer
from wsfm.train.local import CHECKPOINTS, fit_local
from wsfm.train.monitor import DIVERGED, Divergence
from wsfm.train.objective import FlowObjective
from wsfm.train.spec import TrainSpec

STEPS, EVERY = 12, 5  # checkpoints at steps 5, 10 and 12


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[str, ...]:
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    return tuple(str(folder / write_shard(folder, i, rng.normal(size=(300, 2)), seed=i).shard)
                 for i in range(2))


def _spec(out: Path, shards, **train) -> TrainSpec:
    tc = TrainConfig(steps=STEPS, batch_size=32, lr=3e-3, warmup_steps=3, num_workers=1,
                     zero_stage=2, ema_decay=0.9, checkpoint_every=EVERY, max_failures=0,
                     log_every=4, shuffle_buffer=128)
    return TrainSpec(mode="warm", data=DataConfig(n_train=1000, n_test=100),
                     flow=FlowConfig(t0=0.8, draft_noise=0.1, coupling="minibatch_ot"),
                     model=ModelConfig(hidden=32, depth=2, time_dim=16),
                     train=dataclasses.replace(tc, **train), dim=2, out_dir=str(out),
                     shard_urls=tuple(shards))


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, shards) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("local") / "out"
    return out, fit_local(_spec(out, shards))


def _assert_same_weights(out: Path, ref: Path) -> None:
    for name in ("model.pt", "model_raw.pt"):
        got = torch.load(out / name, weights_only=True)
        want = torch.load(ref / name, weights_only=True)
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)


def test_fit_local_trains_to_the_weights_of_ray_train_with_one_worker(local_run, shards,
                                                                      tmp_path, ray_local):
    from wsfm.train.ray_train import fit

    out, summary = local_run
    assert summary["steps"] == STEPS and summary["world_size"] == 1
    assert summary["resumed_from_step"] == 0 and np.isfinite(summary["final_loss"])
    ray_summary = fit(_spec(tmp_path / "out", shards), storage_path=str(tmp_path / "ray"),
                      run_name="one")
    assert ray_summary["final_loss"] == pytest.approx(summary["final_loss"], rel=1e-6)
    _assert_same_weights(out, tmp_path / "out")
    # The local checkpoints: the newest two, named like Ray Train's, and the pointer.
    kept = sorted(p.name for p in (out / CHECKPOINTS).iterdir())
    assert kept == ["step-000010", "step-000012"]
    assert read_pointer(out) == {"step": STEPS, "path": str(out / CHECKPOINTS / "step-000012")}


class _Interrupt(RuntimeError):
    pass


def _interrupt_at(step: int):
    def hook(rank: int, at: int) -> None:
        if at == step:
            raise _Interrupt(f"stopped after step {at}")
    return hook


def test_fit_local_resumes_from_its_last_checkpoint_to_the_same_weights(local_run, shards,
                                                                       tmp_path):
    out = tmp_path / "out"
    spec = _spec(out, shards)
    with pytest.raises(_Interrupt):
        fit_local(spec, hooks=[_interrupt_at(8)])  # after the checkpoint at step 5
    assert read_pointer(out)["step"] == 5 and not (out / "model.pt").exists()
    summary = fit_local(spec)  # the process group was torn down: a second call works
    assert summary["resumed_from_step"] == 5 and summary["steps"] == STEPS
    _assert_same_weights(out, local_run[0])
    saved = json.loads((out / CHECKPOINTS / "step-000012" / "trainer.json").read_text())
    assert saved["step"] == STEPS and saved["samples"] == STEPS * 32


class _NanFrom:
    """The warm objective, whose loss becomes NaN from optimizer step ``step`` on (a fault
    injected into the loss: the weights then become NaN too, as in a real divergence)."""

    def __init__(self, spec: TrainSpec, step: int):
        self.inner = FlowObjective("warm", spec.flow)
        self.calls, self.step = 0, step

    def make_batch(self, source, data, gen):
        return self.inner.make_batch(source, data, gen)

    def loss(self, net, batch, gen, **kwargs):
        self.calls += 1  # one call per step (grad_accum 1)
        loss = self.inner.loss(net, batch, gen, **kwargs)
        return loss * float("nan") if self.calls >= self.step else loss


@pytest.mark.parametrize("bad, checked", [(7, 8), (9, 10)])
def test_a_nan_loss_is_caught_at_the_log_interval_or_before_the_next_checkpoint(
        tmp_path, shards, bad, checked):
    """log_every 4, checkpoints every 5: NaN from step 7 shows at the log check of step 8;
    NaN from step 9 is caught before the checkpoint of step 10, which is never written."""
    out = tmp_path / "out"
    spec = _spec(out, shards)
    first = {8: 6, 10: 9}[checked]  # the steps since the previous check
    with pytest.raises(Divergence, match=rf"warm training diverged: the loss is nan at step "
                                         rf"{bad} \(the first non-finite loss of steps "
                                         rf"{first}-{checked}, checked at step {checked}; "
                                         rf".*the last good checkpoint \(step 5, "):
        fit_local(spec, objective=_NanFrom(spec, bad))
    assert sorted(p.name for p in (out / CHECKPOINTS).iterdir()) == ["step-000005"]
    assert read_pointer(out)["step"] == 5
    assert json.loads((out / DIVERGED).read_text())["step"] == bad
    assert not (out / "model.pt").exists()


def test_fit_local_wants_one_worker(tmp_path):
    spec = _spec(tmp_path, (), num_workers=2)
    with pytest.raises(ValueError, match="train.num_workers is 2"):
        fit_local(spec)


def test_a_dataset_that_no_config_describes_trains_in_the_same_loop(tmp_path):
    """The continuous form of words (benchmarks/words_form.py): one-hot rows, which no
    DataConfig loads, passed to fit_local; the transformer reads them one token a position
    and the flow objective is the one make_objective picks for vector data."""
    from wsfm.bundle import load_net
    from wsfm.components import net_spec
    from wsfm.data.datasets import load_dataset
    from wsfm.data.text import one_hot_dataset

    words = DataConfig(kind="words", top_n=200, max_len=12)
    data = one_hot_dataset(load_dataset(words))
    model = ModelConfig(kind="transformer", d_model=16, n_layers=1, n_heads=2, time_dim=8)
    tc = TrainConfig(steps=4, batch_size=16, warmup_steps=1, num_workers=1, zero_stage=2,
                     checkpoint_every=0, log_every=2)
    spec = TrainSpec(mode="cold", data=words, flow=FlowConfig(), model=model, train=tc,
                     dim=data.dim, out_dir=str(tmp_path / "out"))
    summary = fit_local(spec, dataset=data)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    net = load_net(net_spec(model, data), data.dim, tmp_path / "out" / "model.pt")
    assert net.mode == "continuous" and net.dim == 12 * 27
