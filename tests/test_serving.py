"""The registered model outside this process: in a virtualenv that has only the package
installed (not this checkout), and behind ``mlflow models serve``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def dependency_closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``requirements`` pull in, as pip resolves them here:
    each requirement's distribution and, recursively, the ones it requires, with extras
    followed and environment markers evaluated. A requirement that is not installed raises
    ``PackageNotFoundError`` (``make setup`` installs them all)."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name, extras = canonicalize_name(req.name), frozenset(req.extras)
        if (name, extras) in done:
            continue
        done.add((name, extras))
        if name not in found:
            found[name] = metadata.distribution(req.name)
        for spec in found[name].requires or []:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in extras | {""}):
                todo.append(sub)
    return list(found.values())


def package_venv(root: Path) -> Path:
    """A virtualenv under ``root`` that holds the package's dependencies and the package
    installed from this checkout (not linked to it), and nothing else.

    The dependencies are those ``pyproject.toml`` declares, closed over what each requires,
    hard-linked from this interpreter's site-packages file by file (each distribution's own
    RECORD): the versions pip resolved for ``make setup``, without reinstalling torch (minutes)
    on every run. Only those distributions are there, so a module the package imports without
    declaring it (a test tool, say) is missing in this venv as it would be for a user."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    venv = root / "package-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   env=clean_env())
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    for dist in dependency_closure(declared):
        if dist.files is None:
            raise RuntimeError(f"{dist.metadata['Name']} has no RECORD: reinstall it with pip")
        for entry in dist.files:
            source = Path(str(dist.locate_file(entry))).resolve()
            if ".." in entry.parts or not source.is_file():  # scripts in bin/: not used here
                continue
            target = site / entry
            if target.exists():  # shared by two distributions (mlflow and mlflow-skinny)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another file system: a copy
                shutil.copy2(source, target)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "-q", "--no-deps", str(ROOT)], check=True, env=clean_env(),
                   timeout=900, cwd=venv)
    return venv


def test_the_model_loads_and_predicts_in_a_fresh_venv_with_only_the_package(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = Tracker(uri, "fresh", tmp_path / "mlartifacts").start_run("register")
    for kind in ("vector", "image", "text"):
        publish_model(uri, run_id, ModelRelease(make_bundle(kind, tmp_path / kind),
                                                f"wsfm-{kind}", True, Score("q", 1.0, 0.0)))
    start = time.perf_counter()
    venv = package_venv(tmp_path)
    env = clean_env()
    installed = time.perf_counter() - start
    script = textwrap.dedent(f"""
        import json, mlflow, numpy as np, wsfm
        from importlib.metadata import files
        assert "site-packages" in wsfm.__file__, wsfm.__file__
        # the package installs wsfm/ and its metadata, nothing else of the checkout
        tops = {{f.parts[0] for f in files("wsfm") if f.parts[0] != ".."}}
        assert {{t for t in tops if not t.endswith(".dist-info")}} == {{"wsfm"}}, tops
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
