"""The README's worked example, end to end: a flow model defined and trained outside the
package (``examples/accelerate/my_flow.py``, its own loop), accelerated by a pipeline YAML
through ``wsfm run``, then sampled and served from the registry; and the refusals of a user's
network, one line each, before any work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import ROOT, USERS_NETS, cli_env, stage_lines, wsfm

pytestmark = pytest.mark.pipeline

EXAMPLE = ROOT / "examples" / "accelerate"


@pytest.fixture(scope="module")
def accelerated(tmp_path_factory):
    """The example copied, the user's model trained by its own loop (300 steps), then the
    smoke profile of ``accelerate.yaml``."""
    folder = tmp_path_factory.mktemp("accelerate")
    for name in ("my_flow.py", "accelerate.yaml"):
        shutil.copy(EXAMPLE / name, folder / name)
    subprocess.run([sys.executable, "my_flow.py", "--steps", "300", "--out", "my_flow.pt"],
                   cwd=folder, check=True, timeout=600, env=cli_env())
    home = folder / "home"
    proc = wsfm("run", str(folder / "accelerate.yaml"), "--profile", "smoke", home=home,
                env={"PYTHONPATH": f"{folder}:{ROOT}"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(stage_lines(proc.stdout).values()) == {"done"}
    return folder, home


def test_the_cold_rows_are_the_users_model_and_the_refiner_is_reported(accelerated):
    folder, home = accelerated
    root = home / "artifacts" / "toy2d-accelerated"
    (baseline,) = (root / "train_baseline").iterdir()
    shipped = torch.load(baseline / "model.pt", weights_only=True)
    theirs = torch.load(folder / "my_flow.pt", weights_only=True)
    assert shipped.keys() == {"net." + k for k in theirs}
    assert all(torch.equal(shipped["net." + k], v) for k, v in theirs.items())
    (evaluated,) = (root / "evaluate").iterdir()
    report = json.loads((evaluated / "metrics.json").read_text())
    methods = {r["method"] for r in report["rows"]}
    assert {"cold", "zero_shot", "warm_ot"} <= methods
    assert {r["nfe"] for r in report["rows"] if r["method"] == "cold"} == {1, 2, 100}


def test_the_accelerated_model_samples_and_serves_where_the_users_module_imports(
        accelerated, tmp_path):
    import requests

    from tests.servers import model_server

    folder, home = accelerated
    model = "models:/wsfm-toy2d-accelerated/1"
    out = tmp_path / "samples.npy"
    proc = wsfm("sample", "--model", model, "-n", "7", "--out", str(out), home=home,
                env={"PYTHONPATH": f"{folder}:{ROOT}"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.load(out).shape == (7, 2)
    # Where the user's module is not importable: one line that says what to do.
    proc = wsfm("sample", "--model", model, "-n", "7", "--out", str(out), home=home,
                cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "'my_flow:VelocityMLP' does not import" in \
        proc.stderr and "PYTHONPATH" in proc.stderr
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
           "PYTHONPATH": f"{folder}:{ROOT}"}
    with model_server(model, env, tmp_path / "serve.log") as url:
        reply = requests.post(url, json={"dataframe_records": [{"n": 5, "seed": 1}]},
                              timeout=120)
        assert reply.status_code == 200, reply.text[-2000:]
        assert np.asarray(reply.json()["predictions"]).shape == (5, 2)


def _refused(tmp_path: Path, model: dict, train: dict | None = None) -> str:
    doc = yaml.safe_load((EXAMPLE / "accelerate.yaml").read_text())
    doc["model"] = model
    doc["train"] = {**doc["train"], **(train or {})}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    home = tmp_path / "home"
    proc = wsfm("run", str(path), "--profile", "smoke", home=home,
                env={"PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("wsfm: error: ")
    assert "[wsfm]" not in proc.stdout and not (home / "artifacts").exists()
    return proc.stderr




@pytest.mark.parametrize("case", ["import", "kwargs", "signature", "weights", "registry"])
def test_a_users_network_that_cannot_be_used_is_refused_in_one_line(tmp_path, case):
    (tmp_path / "users_nets.py").write_text(USERS_NETS)
    torch.save({"net.0.weight": torch.zeros(2, 2)}, tmp_path / "short.pt")
    model = {"kind": "python", "target": "users_nets:VectorField", "kwargs": {"dim": 2}}
    train = {"init_from": str(tmp_path / "short.pt")}
    if case == "import":
        line = _refused(tmp_path, {**model, "target": "users_net:VectorField"},
                        {"init_from": ""})
        assert "'users_net:VectorField' does not import" in line
    elif case == "kwargs":
        line = _refused(tmp_path, {**model, "kwargs": {"dim": 2, "depth": 3}}, {"init_from": ""})
        assert "does not take kwargs" in line and "depth" in line
    elif case == "signature":
        line = _refused(tmp_path, {**model, "target": "users_nets:NoTime"}, {"init_from": ""})
        assert "forward(x, t)" in line and "TypeError" in line
    elif case == "weights":
        line = _refused(tmp_path, model, train)
        assert str(tmp_path / "short.pt") in line and "missing keys net.0.bias" in line
        assert "net.0.weight (2, 2) in the weights, (16, 3) in the network" in line
    else:
        line = _refused(tmp_path, model, {"init_from": "models:/nobody/1"})
        assert "models:/nobody/1" in line and "no such registered model version" in line
