"""The registered model outside this process: in a virtualenv that has only the package
installed (not this checkout), and behind ``mlflow models serve``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.bundles import make_bundle
from tests.helpers import ROOT
from wsfm.champion import Score
from wsfm.stages.base import ModelRelease
from wsfm.tracking import Tracker, publish_model

pytestmark = pytest.mark.pipeline


def clean_env(**extra: str) -> dict[str, str]:
    """This environment less anything that would make Python find this checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI")}
    return {**env, **extra}


def package_venv() -> Path:
    """A virtualenv that holds the package's dependencies (from ``pyproject.toml``, torch
    pinned first as ``make setup`` does) and nothing of this checkout.

    Installing torch and the rest takes minutes, so the venv is built once per
    ``pyproject.toml`` and Python version and kept under ``$XDG_CACHE_HOME/wsfm-tests``
    (built under a temporary name, then renamed: a half-built venv is never used); the
    package itself is reinstalled from this checkout on every run, so that what is tested is
    the current code installed as a user installs it."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()
                         + sys.version.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wsfm-tests"
    venv = cache / f"serving-venv-{key}"
    python = venv / "bin" / "python"
    env = clean_env(DS_BUILD_OPS="0")
    if not python.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob("serving-venv-*"):  # made for another pyproject.toml
            shutil.rmtree(old, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix="building-", dir=cache))
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, env=env)
        pip = [str(building / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True, env=env, timeout=1200)
        subprocess.run([*pip, str(ROOT)], check=True, env=env, timeout=1800, cwd=building)
        try:  # (only ``bin/python -m ...`` is used: the scripts name the temporary path)
            building.rename(venv)
        except OSError:  # another run finished first: use that one
            shutil.rmtree(building, ignore_errors=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--force-reinstall", str(ROOT)], check=True, env=env, timeout=900,
                   cwd=venv)
    return venv


def test_the_model_loads_and_predicts_in_a_fresh_venv_with_only_the_package(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = Tracker(uri, "fresh", tmp_path / "mlartifacts").start_run("register")
    for kind in ("vector", "image", "text"):
        publish_model(uri, run_id, ModelRelease(make_bundle(kind, tmp_path / kind),
                                                f"wsfm-{kind}", True, Score("q", 1.0, 0.0)))
    start = time.perf_counter()
    venv = package_venv()
    env = clean_env()
    installed = time.perf_counter() - start
    script = textwrap.dedent(f"""
        import json, mlflow, numpy as np, wsfm
        assert "site-packages" in wsfm.__file__, wsfm.__file__
        mlflow.set_tracking_uri({uri!r})
        out = {{}}
        for kind in ("vector", "image", "text"):
            model = mlflow.pyfunc.load_model(f"models:/wsfm-{{kind}}@champion")
            x = model.predict({{"n": 3, "seed": 0}})
            out[kind] = x if isinstance(x, list) else list(np.asarray(x).shape)
        print(json.dumps(out))
    """)
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["vector"] == [3, 2] and answer["image"] == [3, 1, 4, 4]
    assert len(answer["text"]) == 3 and all(isinstance(w, str) for w in answer["text"])
    print(f"package venv ready (package installed) in {installed:.0f} s")


@pytest.mark.parametrize("kind,shape", [("image", [6, 1, 4, 4])])
def test_mlflow_models_serve_answers_a_post_with_samples(tmp_path, kind, shape):
    """``mlflow models serve -m models:/NAME@champion --env-manager local`` on 127.0.0.1."""
    import requests

    from tests.servers import model_server

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = Tracker(uri, "serve", tmp_path / "mlartifacts").start_run("register")
    publish_model(uri, run_id, ModelRelease(make_bundle(kind, tmp_path / kind), f"wsfm-{kind}",
                                            True, Score("q", 1.0, 0.0)))
    env = {"MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)}
    with model_server(f"models:/wsfm-{kind}@champion", env, tmp_path / "serve.log") as url:
        reply = requests.post(url, json={"dataframe_records": [{"n": 6, "seed": 4}]},
                              timeout=120)
        assert reply.status_code == 200, reply.text[-2000:]
        samples = np.asarray(reply.json()["predictions"])
        assert list(samples.shape) == shape and np.isfinite(samples).all()
        override = requests.post(url, json={"dataframe_records": [
            {"n": 6, "seed": 4, "t0": 0.5, "steps": 2, "method": "heun"}]}, timeout=120)
        assert override.status_code == 200, override.text[-2000:]
        assert not np.allclose(np.asarray(override.json()["predictions"]), samples)
        bad = requests.post(url, json={"dataframe_records": [{"seed": 4}]}, timeout=120)
        assert bad.status_code >= 400  # n is required: the signature rejects the request
