import json

import numpy as np
import pytest

from mlflow.tracking import MlflowClient

from wsfm.bundle import load_bundle
from wsfm.orchestrate.local import LocalRuntime
from wsfm.stages.register import check_gates, register
from wsfm.tracking import Tracker

from tests.stages.conftest import context, save_untrained


def report(warm_q, cold_q=1.0, speedup=10.0):
    return {"t0": 0.9, "speedup_nfe": speedup, "rows": [
        {"method": "cold", "t0": 0.0, "nfe": 100, "quality": cold_q, "spread": 0.0},
        {"method": "cold", "t0": 0.0, "nfe": 10, "quality": 9.0, "spread": 0.0},
        {"method": "warm_ot", "t0": 0.9, "nfe": int(100 / speedup), "quality": warm_q,
         "spread": 0.0}]}


@pytest.mark.parametrize("warm_q,speedup,passes", [(1.05, 10.0, True), (1.2, 10.0, False),
                                                   (1.0, 2.0, False)])
def test_gates(warm_q, speedup, passes):
    assert (check_gates(report(warm_q, speedup=speedup), 0.1, 5.0) == []) is passes


def test_bundle_loads_into_a_sampler_that_matches_the_settings(tmp_path, tiny_config,
                                                              draft_dir):
    refiner = save_untrained(tiny_config, tmp_path / "refiner", 1)
    evaluated = tmp_path / "evaluate"
    evaluated.mkdir()
    (evaluated / "metrics.json").write_text(json.dumps(report(1.5)))
    out = tmp_path / "register"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = Tracker(uri, "register-test", tmp_path / "mlartifacts").start_run("register")
    runtime = LocalRuntime(tracking={"uri": uri, "run_id": run_id})
    result = register(context(tiny_config, out, runtime, pretrain_draft=draft_dir,
                              train_refiner=refiner, evaluate=evaluated))
    assert result.tags["gates_passed"] == "false"
    # Released through the runtime: registered, but not made the champion (the gates failed).
    version = MlflowClient(uri).get_model_version(result.tags["model_name"],
                                                  result.tags["model_version"])
    assert version.run_id == run_id and not version.aliases
    assert result.tags["model_alias"] == ""
    assert json.loads((out / "gates.json").read_text())["failures"]
    sampler = load_bundle(out / "bundle")
    samples, nfe = sampler.sample(50, seed=3)
    assert samples.shape == (50, 2) and np.isfinite(samples).all()
    assert nfe == 10 and sampler.t0 == tiny_config.flow.t0
