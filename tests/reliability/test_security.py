"""Security: nothing unpickles what a file carries, configs are data, shards stay inside.

Every payload here is live: a ``__reduce__`` that writes a marker file. Each test first shows
that an ordinary unpickler runs it (so the payload is real), then that the project's loader
refuses the file and the marker is never written.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import ROOT, TOY2D, write_shard
from wsfm.bundle import SamplerSettings, load_bundle, write_bundle
from wsfm.cli import main
from wsfm.config import load_pipeline
from wsfm.models import build_model
from wsfm.shard_reader import ShardRefused, shard_batches
from wsfm.shards import ShardRecord, sha256_file, verify_shards, write_manifest

pytestmark = pytest.mark.reliability

WSFM = ROOT / "wsfm"


class Payload:
    """Unpickling this writes ``marker``: what an attacker's checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('payload ran')",)


def _prove_live(path: Path, marker: Path) -> None:
    """An unrestricted ``torch.load`` runs the payload: the file is a real attack."""
    torch.load(path, weights_only=False)
    assert marker.read_text() == "payload ran"
    marker.unlink()


# -- checkpoints, state dicts, bundles -------------------------------------------------


def test_every_torch_load_in_the_package_is_weights_only():
    """Audit: each ``torch.load(...)`` call in wsfm/ passes ``weights_only=True``, and nothing
    calls ``pickle.load(s)`` or ``np.load(..., allow_pickle=True)``."""
    calls = []
    for path in WSFM.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if name == "torch.load":
                calls.append(path.name)
                assert kw.get("weights_only") == "True", f"{path}:{node.lineno}: {name}"
            assert name not in ("pickle.load", "pickle.loads", "cloudpickle.load",
                                "torch.serialization.load"), f"{path}:{node.lineno}: {name}"
            if name == "np.load":
                assert kw.get("allow_pickle") != "True", f"{path}:{node.lineno}"
    assert {"bundle.py", "checkpoint.py", "evaluators.py"} <= set(calls)


def test_a_bundle_carrying_a_pickle_payload_is_refused(tmp_path, draft_dir):
    marker = tmp_path / "pwned"
    spec = {"kind": "mlp", "hidden": 8, "depth": 1, "time_dim": 4}
    weights = tmp_path / "evil.pt"
    state = build_model("mlp", dim=2, hidden=8, depth=1, time_dim=4).state_dict()
    torch.save({**state, "extra": Payload(marker)}, weights)
    _prove_live(weights, marker)
    settings = SamplerSettings(t0=0.9, method="euler", step_size=0.1, draft_noise=0.0, dim=2,
                               model=spec)
    bundle = write_bundle(tmp_path / "bundle", draft_dir / "draft.npz", weights, settings)

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_bundle(bundle)
    assert not marker.exists()
    # The same bundle with honest weights loads: the refusal is the payload's alone.
    torch.save(state, bundle / "refiner.pt")
    assert load_bundle(bundle).t0 == 0.9


DEEPSPEED_SCRIPT = r"""
import os, sys, pickle
import torch, torch.distributed as dist
sys.path.insert(0, sys.argv[2])
from tests.reliability.test_security import Payload
from wsfm.config import TrainConfig
from wsfm.models import build_model
from wsfm.train.checkpoint import load_engine
from wsfm.train.engine import TAG, build_engine, consolidated_state_dict

out, marker = sys.argv[1], sys.argv[3]
dist.init_process_group("gloo", init_method=f"file://{out}/rdzv", rank=0, world_size=1)
train = TrainConfig(steps=2, batch_size=4, num_workers=1, zero_stage=2, warmup_steps=0)
torch.manual_seed(0)
engine, _ = build_engine(build_model("mlp", dim=2, hidden=8, depth=1, time_dim=4), train, 1)
loss = engine(torch.randn(4, 2), torch.rand(4)).pow(2).mean()
engine.backward(loss)
engine.step()
folder = os.path.join(out, "deepspeed")
engine.save_checkpoint(folder, tag=TAG)
load_engine(engine, folder)                           # an honest checkpoint loads
assert consolidated_state_dict(engine, train, folder)
optim = [f for f in os.listdir(os.path.join(folder, TAG)) if "optim_states" in f][0]
path = os.path.join(folder, TAG, optim)
state = torch.load(path, weights_only=False)
state["optimizer_state_dict"]["extra"] = Payload(marker)
torch.save(state, path)
for name, call in (("load_engine", lambda: load_engine(engine, folder)),
                   ("zero_to_fp32", lambda: consolidated_state_dict(engine, train, folder))):
    try:
        call()
        print(name, "LOADED")
    except pickle.UnpicklingError as exc:
        print(name, "REFUSED", str(exc).splitlines()[0])
print("marker after the loaders:", os.path.exists(marker))
torch.load(path, weights_only=False)                    # the payload is live
print("marker after a plain torch.load:", os.path.exists(marker))
"""


def test_a_deepspeed_checkpoint_carrying_a_pickle_payload_is_refused(tmp_path):
    """A real DeepSpeed ZeRO-2 engine (one gloo process) saves a checkpoint; the resume path
    (``load_engine``, what ``restore`` calls) and the fp32 export (``zero_to_fp32``) load it,
    then refuse it once its optimizer state carries a payload."""
    marker = tmp_path / "pwned"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT), "LOCAL_RANK": "0",
           "RANK": "0", "WORLD_SIZE": "1"}
    proc = subprocess.run([sys.executable, "-c", DEEPSPEED_SCRIPT, str(tmp_path), str(ROOT),
                           str(marker)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "load_engine REFUSED" in proc.stdout and "zero_to_fp32 REFUSED" in proc.stdout
    assert "marker after the loaders: False" in proc.stdout
    assert "marker after a plain torch.load: True" in proc.stdout


# -- shards ------------------------------------------------------------------------------


def _tar(path: Path, members: list[tuple[str, bytes]]) -> ShardRecord:
    with tarfile.open(path, "w") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return ShardRecord(path.name, 10, path.stat().st_size, sha256_file(path), seed=0)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def test_a_shard_whose_npy_holds_objects_is_refused_by_name(tmp_path):
    marker = tmp_path / "pwned"
    objects = np.array([Payload(marker)] * 4, dtype=object)
    blob = _npy(objects)
    np.load(io.BytesIO(blob), allow_pickle=True)  # the payload is live...
    assert marker.exists()
    marker.unlink()

    folder = tmp_path / "shards"
    folder.mkdir()
    good = write_shard(folder, 0, np.zeros((20, 2), np.float32), seed=0)
    bad = _tar(folder / "shard-000001.tar", [("s000001x000000000.x.npy", blob)])
    write_manifest(folder, [good, bad])

    [problem] = verify_shards(folder)
    assert "shard-000001.tar" in problem and "s000001x000000000.x.npy" in problem
    assert "object" in problem
    with pytest.raises(ShardRefused, match=r"shard-000001\.tar: record s000001x000000000: .*"
                                           r"dtype object"):
        next(shard_batches([str(folder / bad.shard)], batch_size=2, shuffle_buffer=2))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../escaped.x.npy", "/tmp/wsfm-absolute.x.npy",
                                  "sub/../../escaped.x.npy"])
def test_a_shard_member_outside_the_folder_is_refused_by_reader_and_verify(tmp_path, name):
    folder = tmp_path / "a" / "b" / "shards"
    folder.mkdir(parents=True)
    rows = np.ones((8, 2), np.float32)
    bad = _tar(folder / "shard-000000.tar", [("s000000x000000000.x.npy", _npy(rows)),
                                             (name, _npy(rows))])
    write_manifest(folder, [bad])

    [problem] = verify_shards(folder)
    assert "shard-000000.tar" in problem and repr(name) in problem
    with pytest.raises(ShardRefused) as info:
        next(shard_batches([str(folder / bad.shard)], batch_size=2, shuffle_buffer=2))
    assert "shard-000000.tar" in str(info.value) and repr(name) in str(info.value)
    assert not (tmp_path / "a" / "escaped.x.npy").exists()
    assert not (tmp_path / "escaped.x.npy").exists()


def test_shards_verify_cli_names_the_unsafe_member(tmp_path, capsys):
    folder = tmp_path / "shards"
    folder.mkdir()
    bad = _tar(folder / "shard-000000.tar", [("../../x.x.npy", _npy(np.ones((4, 2))))])
    write_manifest(folder, [bad])
    assert main(["shards", "verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "BAD" in out and "shard-000000.tar" in out and "'../../x.x.npy'" in out


# -- configs -----------------------------------------------------------------------------


def test_a_yaml_with_a_python_tag_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    doc = yaml.safe_load(TOY2D.read_text())
    text = yaml.safe_dump(doc).replace(
        "name: toy2d", f"name: !!python/object/apply:os.system ['touch {marker}']")
    assert "!!python/object/apply:os.system" in text
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    home = tmp_path / "home"
    assert main(["run", str(path), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsfm: error: ") and str(path) in err
    assert not marker.exists() and not home.exists()
    with pytest.raises(ValueError):
        load_pipeline(path)


def test_configs_are_read_with_safe_load_only():
    """Audit: no YAML read in wsfm/ can build Python objects: no ``yaml.unsafe_load`` or
    ``full_load``, and ``yaml.load``/``load_all`` only with an explicit safe ``Loader``
    (the behaviour itself is the test above)."""
    unsafe_loaders = {"yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader", "Loader",
                      "UnsafeLoader", "FullLoader"}
    for path in WSFM.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name, where = ast.unparse(node.func), f"{path}:{node.lineno}"
            assert name not in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all",
                                "yaml.full_load_all"), where
            if name in ("yaml.load", "yaml.load_all"):
                loader = [ast.unparse(k.value) for k in node.keywords if k.arg == "Loader"]
                loader += [ast.unparse(a) for a in node.args[1:2]]
                assert loader and loader[0] not in unsafe_loaders, where


# -- servers -----------------------------------------------------------------------------


def test_the_mlflow_server_script_binds_loopback_by_default():
    """Read the script's ``mlflow server`` command line: its ``--host`` (or a ``${VAR:-x}``
    default) must be loopback; without ``--host``, MLflow's own default is 127.0.0.1."""
    script = (ROOT / "mlflow" / "start-server.sh").read_text()
    command = re.sub(r"\\\n\s*", " ", script)  # join continuation lines
    [server] = [line for line in command.splitlines()
                if "mlflow" in line and " server" in line and not line.lstrip().startswith("#")]
    host = re.search(r"--host[= ]+\"?(\$\{\w+:-([^}]+)\}|[^\s\"]+)", server)
    if host is None:
        return  # mlflow server's default --host is 127.0.0.1
    value = host.group(2) or host.group(1)
    if value.startswith("$"):  # a variable with no default: must be set by the script
        name = value.strip("${}")
        default = re.search(rf"^\s*{name}=\"?\$\{{\w+:-([^}}]+)\}}|^\s*{name}=\"?([^\s\"]+)",
                            script, re.M)
        assert default, f"--host {value}: no default for {name} in the script"
        value = default.group(1) or default.group(2)
    assert value in ("127.0.0.1", "localhost", "::1"), f"default bind is {value}"


def test_settings_json_roundtrip_is_plain_data(tmp_path):
    """``sampler.json`` is plain JSON: nothing in a bundle but arrays and JSON is read."""
    s = SamplerSettings(t0=0.9, method="euler", step_size=0.1, draft_noise=0.0, dim=2,
                        model={"kind": "mlp"})
    assert json.loads(json.dumps(asdict(s)))["t0"] == 0.9
