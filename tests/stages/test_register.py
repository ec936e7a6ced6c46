import json

import numpy as np
import pytest

from mlflow.tracking import MlflowClient

from wsfm.bundle import load_bundle
from wsfm.orchestrate.local import LocalRuntime
from wsfm.report import EvalReport, Row
from wsfm.stages.register import check_gates, register
from wsfm.tracking import Tracker

from tests.stages.conftest import context, save_untrained


def report(warm_q, cold_q=1.0, speedup=10.0):
    def row(method, t0, nfe, quality):
        return Row(method, t0, nfe, "euler", quality, 0.0, sec_per_1k=1.0)

    return EvalReport.build(
        task="toy2d", metric="swd", lower_is_better=True, reference=0.1, reference_how="test",
        reference_n=100, t0=0.9, cold_nfe=100, warm_method="warm_ot", solver="euler",
        speedup_wall=speedup, rows=[row("cold", 0.0, 100, cold_q), row("cold", 0.0, 10, 9.0),
                                    row("warm_ot", 0.9, int(100 / speedup), warm_q)]).to_dict()


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
