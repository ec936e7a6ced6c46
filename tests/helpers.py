"""Helpers that only tests use, in one place: the ``wsfm`` command as a subprocess, pipeline
files derived from the toy2d YAML, copies of a finished home, stage contexts, shards.

Fixtures live in ``tests/conftest.py``; servers (Ray clusters, MLflow, S3) in
``tests/servers.py`` and ``tests/s3server.py``. No test module imports from another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
import yaml

from wsfm.config import PipelineConfig, load_pipeline
from wsfm.models import build_model
from wsfm.shards import (
    BLOCK,
    MANIFEST,
    ShardRecord,
    ShardWriter,
    read_manifest,
    write_manifest,
)
from wsfm.stages import STAGES, StageContext

__all__ = ["ALL_STAGES", "DETERMINISTIC", "ROOT", "SMOKE_EVERY", "SMOKE_STEPS", "STAGE_NAMES",
           "TOY2D", "NoRuntime", "SmokeHome", "WrappingRuntime", "assert_committed",
           "batches_per_epoch", "bucket_contents", "cli_env", "committed", "context", "copy_home",
           "job_stages", "loose_gates", "make_shards", "manifest_rows", "prepared_data",
           "project_copy", "save_untrained", "small_smoke", "spread_shards", "stage_lines",
           "urls_of", "wait_for_pause", "with_shards", "write_pipeline", "write_shard", "wsfm"]

ROOT = Path(__file__).resolve().parents[1]
TOY2D = ROOT / "pipelines" / "toy2d.yaml"
# The session's shared smoke run (tests/conftest.py): the smoke profile shortened to 120
# training steps with a checkpoint every 40 (the fault drills stop and resume between them).
SMOKE_STEPS, SMOKE_EVERY = 120, 40
ALL_STAGES = [s.name for s in STAGES]


def job_stages(config: PipelineConfig) -> list[str]:
    """The stages that ``config``'s job runs (the others are unused: ``StageSpec.unused_by``)."""
    return [s.name for s in STAGES if not s.unused_by(config)]


STAGE_NAMES = job_stages(load_pipeline(TOY2D, profile="smoke"))  # a toy2d smoke job's stages
# Settings of the calling process that would point a child ``wsfm`` at another store, cluster,
# home or fault drill; a test that wants one passes it in ``env``.
CLEARED = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
           "RAY_ADDRESS", "RAY_AUTH_MODE", "WSFM_HOME", "WSFM_FAULT")


# -- the command line ------------------------------------------------------------------------


def cli_env(home: Path | str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a child ``wsfm``: ``CLEARED`` removed, this checkout on
    ``PYTHONPATH``, ``WSFM_HOME`` = ``home`` when given, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    if home is not None:
        env["WSFM_HOME"] = str(home)
    return {**env, **extra}


def wsfm(*args: str, home: Path | str | None = None, env: Mapping[str, str] | None = None,
         cwd: Path | None = None, timeout: float = 1200) -> subprocess.CompletedProcess:
    """``python -m wsfm.cli ARGS`` with :func:`cli_env`; prints the tails of its output (pytest
    shows them when the test fails). ``cwd``: the home's parent for a local home, else ROOT."""
    if cwd is None:
        local = home is not None and "://" not in str(home)
        cwd = Path(home).parent if local else ROOT
        cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "wsfm.cli", *args],
                          env=cli_env(home, **(env or {})), text=True, capture_output=True,
                          timeout=timeout, cwd=cwd)
    print(proc.stdout[-6000:], proc.stderr[-4000:])
    return proc


def stage_lines(out: str) -> dict[str, str]:
    """The last status that the progress lines give each stage."""
    status = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "[wsfm]" and parts[1] in ALL_STAGES:
            status[parts[1]] = parts[2]
    return status


# -- pipelines and homes -----------------------------------------------------------------------


LOOSE_GATES = {"rel_tolerance": 100.0, "min_speedup": 5.0, "wall_share": 0.0}


def loose_gates(doc: dict) -> None:
    """Gates that any smoke model passes, so that the champion path is exercised: a short
    smoke model is not meant to reach parity (the full profile is), and its wall speed-up is
    a timing on a loaded machine (8.5x for 10x NFE was seen: not shipped), not asked for."""
    doc["profiles"]["smoke"]["gates"] = LOOSE_GATES


def write_pipeline(path: Path, base: Path = TOY2D, edit: Callable[[dict], None] | None = None,
                   **smoke: Mapping[str, Any]) -> Path:
    """``base`` with its smoke profile's sections updated by ``smoke`` (and the parsed YAML
    changed by ``edit`` first), written to ``path``."""
    doc = yaml.safe_load(Path(base).read_text())
    if edit is not None:
        edit(doc)
    for section, values in smoke.items():
        doc["profiles"]["smoke"].setdefault(section, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def committed(home: Path, stage: str, task: str = "toy2d") -> Path:
    """The one committed output folder of ``stage`` under ``home``."""
    [folder] = [p for p in (home / "artifacts" / task / stage).iterdir()
                if not p.name.startswith(".")]
    return folder


def copy_home(src: Path, dest: Path) -> Path:
    """A working copy of the finished home ``src`` at ``dest``, for a test that changes it.

    Files keep their bytes and mtimes (the store checks both against ``_SUCCESS.json``);
    the MLflow store's absolute paths (artifact locations, model sources) are moved to
    ``dest``, so that runs logged in the copy land in the copy."""
    shutil.copytree(src, dest, symlinks=True)
    db = dest / "mlflow.db"
    if db.is_file():
        old, new = str(src), str(dest)
        with sqlite3.connect(db) as con:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for _, col, kind, *_ in con.execute(f'PRAGMA table_info("{table}")'):
                    if any(t in kind.upper() for t in ("CHAR", "TEXT", "CLOB")):
                        con.execute(f'UPDATE "{table}" SET "{col}" = replace("{col}", ?, ?) '
                                    f'WHERE instr("{col}", ?) > 0', (old, new, old))
        con.close()
    return dest


@dataclass(frozen=True)
class SmokeHome:
    """A finished run of ``pipeline``'s smoke profile in ``home``; ``first``: that run's
    output. Shared by many tests: read it, never change it (:meth:`copy` for that)."""

    pipeline: Path
    home: Path
    first: subprocess.CompletedProcess
    config: PipelineConfig

    @property
    def root(self) -> Path:
        return self.pipeline.parent

    def copy(self, dest: Path, without: Sequence[str] = ()) -> SmokeHome:
        """A private copy, the pipeline file beside it; ``without``: stages whose committed
        outputs the copy drops (a run of it makes them again, the rest are cached)."""
        dest.mkdir(parents=True, exist_ok=True)
        pipeline = Path(shutil.copy(self.pipeline, dest / self.pipeline.name))
        home = copy_home(self.home, dest / "home")
        for stage in without:
            shutil.rmtree(committed(home, stage, self.config.name))
        return SmokeHome(pipeline, home, self.first, self.config)


def run_smoke(root: Path, pipeline: Path) -> SmokeHome:
    """Run ``pipeline``'s smoke profile into ``root/home``; fails the caller if it fails."""
    home = root / "home"
    first = wsfm("run", str(pipeline), "--profile", "smoke", home=home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return SmokeHome(pipeline, home, first, load_pipeline(pipeline, profile="smoke"))


def spread_shards(doc: dict) -> None:
    """Shard tasks on both nodes of a two-node, one-CPU-a-node cluster: SPREAD places tasks on
    nodes with a free CPU, and the generate_drafts task itself (1 CPU) left only the other
    node free (all six shards ran there once). Its task only waits on the shard tasks: 0
    CPUs."""
    doc["profiles"]["smoke"]["shards"] = {"num_shards": 6, "per_shard": 700}
    doc.setdefault("resources", {})["generate_drafts"] = {"num_cpus": 0}


def project_copy(dest: Path, name: str = "toy2d-cluster",
                 edit: Callable[[dict], None] | None = None) -> Path:
    """The sources a Ray job needs (package, pipelines), and a smoke pipeline with loose
    gates saved as ``pipelines/<name>.yaml`` (``edit`` changes the parsed YAML; by default
    :func:`spread_shards`)."""
    for folder in ("wsfm", "pipelines"):
        shutil.copytree(ROOT / folder, dest / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dest)

    def both(doc: dict) -> None:
        loose_gates(doc)
        (edit or spread_shards)(doc)

    return write_pipeline(dest / "pipelines" / f"{name}.yaml", edit=both)


# -- object stores -------------------------------------------------------------------------


def small_smoke(root: Path, **evaluate) -> Path:
    """The toy2d pipeline whose smoke profile is smaller still (a few training steps, two
    checkpoints), written into ``root``; ``evaluate``: more settings of that section."""
    doc = yaml.safe_load(TOY2D.read_text())
    doc["profiles"]["smoke"] = {
        "data": {"n_train": 2000, "n_test": 500},
        "shards": {"num_shards": 2, "per_shard": 500},
        "train": {"steps": 40, "batch_size": 64, "warmup_steps": 5, "log_every": 10,
                  "checkpoint_every": 20},
        "evaluate": {"n_samples": 300, "seeds": 2, "decide_seeds": 2, "timing_repeats": 2,
                     "nfe_grid": [1, 2], "warm_t0s": [0.9], **evaluate},
        "gates": LOOSE_GATES,
    }
    pipeline = root / "toy2d.yaml"
    pipeline.write_text(yaml.safe_dump(doc))
    return pipeline


def bucket_contents(endpoint: str, prefix: str) -> tuple[dict[str, int], dict[str, dict]]:
    """``({path: bytes}, {path of each _SUCCESS.json: its record})`` under ``prefix``."""
    fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1",
                           access_key="testing", secret_key="testing")
    listing = {info.path: info.size for info in fs.get_file_info(
        pafs.FileSelector(prefix, recursive=True)) if info.type == pafs.FileType.File}
    successes = {path: json.loads(fs.open_input_stream(path).read())
                 for path in listing if path.endswith("/_SUCCESS.json")}
    return listing, successes


def assert_committed(listing: dict[str, int], successes: dict[str, dict], prefix: str,
                     stages: list[str]) -> None:
    """Each stage has one finished output under ``prefix``: every file its record lists is
    there with its size, and no partial folder or undelivered outbox is left."""
    for name in stages:
        [success] = [p for p in successes if p.startswith(f"{prefix}/{name}/")]
        record = successes[success]
        folder = success.rsplit("/", 1)[0]
        assert record["files"], name
        for rel, meta in record["files"].items():  # every listed file, with its size
            assert listing[f"{folder}/{rel}"] == meta["bytes"], (name, rel)
        assert not any(f"/.{record['fingerprint']}.partial/" in p for p in listing)
        assert not any(f"/.{record['fingerprint']}.outbox-" in p for p in listing)


# -- stages ----------------------------------------------------------------------------------


class NoRuntime:
    """For stages that must not fan out or train: any use is a test failure."""

    def map(self, fn, items, **progress):
        raise AssertionError("this stage should not use runtime.map")

    def train(self, spec):
        raise AssertionError("this stage should not use runtime.train")


def context(config: PipelineConfig, out: Path, runtime: Any = None,
            **inputs: Path) -> StageContext:
    """A stage's context: ``out`` made, ``inputs`` by stage name, no runtime unless given.
    Every stage but the head reads the prepared dataset: unless ``inputs`` names one,
    ``prepare_data`` is written beside ``out`` for ``config.data`` (:func:`prepared_data`)."""
    out.mkdir(parents=True, exist_ok=True)
    if "prepare_data" not in inputs:
        inputs["prepare_data"] = prepared_data(config, out.parent)
    return StageContext(config, dict(inputs), out, runtime or NoRuntime())


def prepared_data(config: PipelineConfig, folder: Path) -> Path:
    """``folder/prepare_data``: what the ``prepare_data`` stage writes for ``config.data``
    (written once per data config in that folder)."""
    from wsfm.config import to_dict
    from wsfm.data.datasets import load_dataset
    from wsfm.data.partitioned import KEYED, prepare_keyed
    from wsfm.data.prepared import DESCRIPTION, write_prepared

    tag = hashlib.sha256(json.dumps(to_dict(config)["data"], sort_keys=True).encode())
    out = Path(folder) / f"prepare_data-{tag.hexdigest()[:12]}"
    if (out / DESCRIPTION).is_file():
        return out
    if config.data.kind in KEYED:  # the stage writes users' keyed sources by parts
        prepare_keyed(config.data, out)
    else:
        write_prepared(load_dataset(config.data), out)
    return out


def save_untrained(config: PipelineConfig, folder: Path, seed: int) -> Path:
    """An untrained network of ``config.model`` (2-D), saved as ``folder/model.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    m = config.model
    net = build_model(m.kind, dim=2, hidden=m.hidden, depth=m.depth, time_dim=m.time_dim)
    torch.save(net.state_dict(), folder / "model.pt")
    return folder


# -- shards ----------------------------------------------------------------------------------


# The manifest columns that do not depend on timing or on the node a shard was made on.
DETERMINISTIC = ["shard", "count", "bytes", "sha256", "seed", "draft_sha256", "pair"]


class WrappingRuntime:
    """A real RayRuntime whose map runs ``wrap(fn)``: fault injection from outside the stage."""

    def __init__(self, runtime: Any, wrap: Callable[[Callable], Callable]) -> None:
        self.runtime, self.wrap = runtime, wrap

    def map(self, fn, items, **progress):
        return self.runtime.map(self.wrap(fn), items, **progress)

    def node_id(self):
        return self.runtime.node_id()


def with_shards(config: PipelineConfig, **changes: Any) -> PipelineConfig:
    """``config`` with new shard settings (and, for a stored pairing, the same coupling)."""
    flow = config.flow
    if changes.get("pair", "none") != "none":
        flow = dataclasses.replace(flow, coupling=changes["pair"])
    return dataclasses.replace(config, flow=flow,
                               shards=dataclasses.replace(config.shards, **changes))


def manifest_rows(folder: Path, columns: Sequence[str] = DETERMINISTIC) -> list[dict]:
    """The manifest's rows, ``columns`` only."""
    return pq.read_table(folder / MANIFEST).select(columns).to_pylist()



def write_shard(folder: Path, index: int, x: np.ndarray, seed: int, block: int = BLOCK, *,
                idx: np.ndarray | None = None, pair: str = "none") -> ShardRecord:
    """Write drafts ``x`` (N, D), paired by ``pair`` with rows ``idx`` (N,), as shard ``index``."""
    if (idx is None) != (pair == "none"):
        raise ValueError(f"pair {pair!r} and idx {'absent' if idx is None else 'given'} disagree")
    with ShardWriter(folder, index) as writer:
        for start in range(0, len(x), block):
            writer.write(x[start:start + block], None if idx is None else idx[start:start + block])
        size, sha = writer.commit()
    return ShardRecord(writer.final.name, writer.count, size, sha, seed, pair=pair)


def batches_per_epoch(records: Sequence[ShardRecord], batch_size: int, world_size: int) -> int:
    """Batches per rank in one pass over the drafts (at least 1): the usual ``epoch_batches``."""
    return max(1, sum(r.count for r in records) // (batch_size * world_size))


def wait_for_pause(stage: Path, step: int, proc: subprocess.Popen, log: Path,
                   timeout: float) -> Path:
    """The pause marker (``WSFM_FAULT=pause:STAGE@step``) in ``stage``'s partial folder once
    rank 0 stalls there; fails with the log's tail if ``proc`` exits first."""
    from wsfm.train.faults import pause_marker

    deadline = time.monotonic() + timeout
    while True:
        for partial in stage.glob(".*.partial") if stage.is_dir() else []:
            marker = pause_marker(partial, step)
            if marker.is_file() and json.loads(marker.read_text())["state"] == "paused":
                return marker
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{stage.name} did not reach the pause in time"
        time.sleep(0.2)


def make_shards(folder: Path, sizes: Sequence[int], dim: int = 3,
                with_index: bool = False) -> list[np.ndarray]:
    """Shards of seeded normal rows (``sizes`` rows each) and their manifest in ``folder``."""
    arrays = [np.random.default_rng(i).normal(size=(n, dim)).astype(np.float32)
              for i, n in enumerate(sizes)]
    records = []
    for i, x in enumerate(arrays):
        # The partner index is readable off the draft itself: an independent check of alignment.
        idx = np.rint(x[:, 0] * 1000).astype(np.int64) if with_index else None
        records.append(write_shard(folder, i, x, seed=i, block=16, idx=idx,
                                   pair="nearest" if with_index else "none"))
    write_manifest(folder, records)
    return arrays


def urls_of(folder: Path) -> list[str]:
    """The shard paths that ``folder``'s manifest lists, in order."""
    return [str(folder / r.shard) for r in read_manifest(folder)]


def fill_disk(folder: Path, leave: int = 0) -> Path:
    """Fill ``folder``'s filesystem until at most ``leave`` bytes are free (to the last page
    with 0): another writer taking the space. Returns the filler file (delete it to free)."""
    filler = Path(folder) / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while shutil.disk_usage(folder).free > leave:
            os.write(fd, b"\0" * 4096)
    except OSError:  # full
        pass
    finally:
        os.close(fd)
    return filler


# A user's module of flow networks (``model.kind: python``), written as ``users_nets.py``:
# networks of the TorchCFM convention and two that break it.
USERS_NETS = textwrap.dedent('''
    import torch
    from torch import nn


    class VectorField(nn.Module):
        """forward(x (B, D), t (B,)) -> (B, D), as TorchCFM's examples."""

        def __init__(self, dim, width=16):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.Tanh(), nn.Linear(width, dim))

        def forward(self, x, t):
            return self.net(torch.cat([x, t[:, None]], dim=1))


    class ImageField(nn.Module):
        """forward(x (B, C, H, W), t (B,)) -> (B, C, H, W)."""

        def __init__(self, channels=1):
            super().__init__()
            self.conv = nn.Conv2d(channels + 1, channels, 3, padding=1)

        def forward(self, x, t):
            tt = t[:, None, None, None].expand(-1, 1, *x.shape[2:])
            return self.conv(torch.cat([x, tt], dim=1))


    class NoTime(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.lin = nn.Linear(dim, dim)

        def forward(self, x):
            return self.lin(x)


    class Flattening(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.lin = nn.Linear(dim, 1)

        def forward(self, x, t):
            return self.lin(x)


    def not_a_module(x, t):
        return x
''')


def row_set(a: np.ndarray) -> set[bytes]:
    """The rows of ``a`` as a set (their bytes): equal data whatever the order."""
    return {r.tobytes() for r in a}


def png_bytes(arr: np.ndarray, mode: str) -> bytes:
    """``arr`` (H, W) or (H, W, 3) uint8 encoded as a PNG file's bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def png_folder(folder: Path, n: int, channels: int, height: int,
               width: int) -> tuple[np.ndarray, str]:
    """``n`` random images written as ``folder/000.png ...`` (an ``image_folder`` source):
    the uint8 arrays and their PIL mode (``L`` or ``RGB``)."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    shape = (height, width) if channels == 1 else (height, width, 3)
    images = np.random.default_rng(0).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img, mode).save(folder / f"{i:03d}.png")
    return images, mode
