"""The pyfunc model through a real MLflow store: logged as code, no warnings, each kind."""

import logging
import warnings
from string import ascii_lowercase
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from wsfm.registry import Score
from wsfm.stages.base import ModelRelease
from wsfm.tracking import Tracker, publish_model

from tests.bundles import make_bundle


def publish(tmp_path, kind: str, caplog=None) -> tuple[str, dict]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = Tracker(uri, "models", tmp_path / "mlartifacts").start_run("register")
    release = ModelRelease(make_bundle(kind, tmp_path / f"bundle-{kind}"), f"wsfm-{kind}",
                           gates_passed=True, score=Score("q", 1.0, 0.1))
    return uri, publish_model(uri, run_id, release)


def test_logging_the_model_warns_nothing_and_pickles_nothing(tmp_path, caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        uri, tags = publish(tmp_path, "vector")
    ours = [w for w in caught if "sqlalchemy" not in w.filename]  # the SQLite store's own
    assert not ours, [f"{w.filename}:{w.lineno} {w.message}" for w in ours]
    assert not [r for r in caplog.records if r.name.startswith("mlflow")
                and r.levelno >= logging.WARNING], caplog.text
    client = MlflowClient(uri)
    version = client.get_model_version(tags["model_name"], tags["model_version"])
    local = mlflow.artifacts.download_artifacts(version.source, tracking_uri=uri)
    meta = yaml.safe_load(open(f"{local}/MLmodel"))
    pyfunc = meta["flavors"]["python_function"]
    assert pyfunc["model_code_path"].endswith("serving.py") and "python_model" not in pyfunc
    assert not list(Path(local).rglob("*.pkl"))  # MLflow notes its cloudpickle version anyway
    assert "signature" in meta and meta["saved_input_example_info"]


@pytest.mark.parametrize("kind,shape", [("vector", (7, 2)), ("image", (7, 1, 4, 4)),
                                        ("text", None)])
def test_the_registered_model_predicts_in_the_form_of_its_kind(tmp_path, kind, shape):
    uri, tags = publish(tmp_path, kind)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{tags['model_name']}@champion")
    out = model.predict(pd.DataFrame({"n": [7], "seed": [3]}))
    if shape is None:
        assert len(out) == 7 and all(isinstance(w, str) and set(w) <= set(ascii_lowercase) for w in out)
    else:
        assert np.asarray(out).shape == shape and np.isfinite(out).all()
        again = model.predict({"n": 7, "seed": 3})
        assert np.array_equal(out, again)
        other = model.predict({"n": 7, "seed": 3, "t0": 0.5, "steps": 3, "method": "heun"})
        assert np.asarray(other).shape == shape and not np.allclose(out, other)
    with pytest.raises(Exception, match="n"):
        model.predict(pd.DataFrame({"seed": [1]}))
