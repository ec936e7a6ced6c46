"""End to end on an object store: the toy2d smoke pipeline through the real CLI with
``WSFM_HOME=s3://bucket/wsfm`` on moto's S3 server (127.0.0.1), MLflow in a local SQLite.
Artifacts, their ``_SUCCESS.json`` and Ray Train's checkpoints must land in the bucket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from tests.conftest import TOY2D
from tests.s3server import CREDENTIALS, make_bucket, moto_server
from tests.test_pipeline import stage_lines
from wsfm.orchestrate.remote_store import RemoteArtifactStore
from wsfm.stages import STAGES

pytestmark = [pytest.mark.pipeline]
STAGE_NAMES = [s.name for s in STAGES]
BUCKET = "wsfm-e2e"


def wsfm(*args: str, env: dict[str, str], cwd: Path,
         timeout: int = 1500) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "wsfm.cli", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, cwd=cwd)
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def small_smoke(root: Path, **evaluate) -> Path:
    """The toy2d pipeline whose smoke profile is smaller still (a few training steps, two
    checkpoints), written into ``root``; ``evaluate``: more settings of that section."""
    doc = yaml.safe_load(TOY2D.read_text())
    doc["profiles"]["smoke"] = {
        "data": {"n_train": 2000, "n_test": 500},
        "shards": {"num_shards": 2, "per_shard": 500},
        "train": {"steps": 40, "batch_size": 64, "warmup_steps": 5, "log_every": 10,
                  "checkpoint_every": 20},
        "evaluate": {"n_samples": 300, "seeds": 2, "nfe_grid": [1, 2], "warm_t0s": [0.9],
                     **evaluate},
        "gates": {"rel_tolerance": 100.0, "min_speedup": 5.0},
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


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory):
    """One smoke run (smaller still: a few training steps, two checkpoints) into the bucket,
    and a second, identical invocation."""
    root = tmp_path_factory.mktemp("e2e-s3")
    pipeline = small_smoke(root)
    with moto_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint,
               "WSFM_HOME": f"s3://{BUCKET}/wsfm", "WSFM_CACHE": str(root / "cache"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
               "PYTHONUNBUFFERED": "1"}
        env.pop("RAY_ADDRESS", None)
        args = ("run", str(pipeline), "--profile", "smoke")
        first = wsfm(*args, env=env, cwd=root)
        second = wsfm(*args, env=env, cwd=root) if first.returncode == 0 else None
        listing, successes = bucket_contents(endpoint, f"{BUCKET}/wsfm")
    return {"first": first, "second": second, "listing": listing, "successes": successes,
            "root": root}


def test_every_stage_ran_and_its_output_is_committed_in_the_bucket(s3_run):
    assert s3_run["first"].returncode == 0, s3_run["first"].stderr[-3000:]
    assert stage_lines(s3_run["first"].stdout) == {n: "done" for n in STAGE_NAMES}
    listing = s3_run["listing"]
    assert_committed(listing, s3_run["successes"], f"{BUCKET}/wsfm/artifacts/toy2d",
                     STAGE_NAMES)
    shards = [p for p in listing if "/generate_drafts/" in p and p.endswith(".tar")]
    assert len(shards) == 2


def test_training_checkpoints_are_in_the_bucket(s3_run):
    listing = s3_run["listing"]
    for stage in ("train_refiner", "train_baseline"):
        runs = {p.split("/")[3] for p in listing
                if p.startswith(f"{BUCKET}/wsfm/ray/toy2d-{stage}-")}
        assert len(runs) == 1, (stage, runs)
        [run] = runs
        steps = {p.split("/")[4] for p in listing
                 if p.startswith(f"{BUCKET}/wsfm/ray/{run}/step-")}
        assert steps == {"step-000020", "step-000040"}, (stage, steps)  # num_to_keep=2
        [success] = [r for p, r in s3_run["successes"].items() if f"/{stage}/" in p]
        pointer = [p for p in listing if p.startswith(f"{BUCKET}/wsfm/artifacts/toy2d/"
                                                      f"{stage}/") and p.endswith(
            "/checkpoints.json")]
        assert pointer and "checkpoints.json" in success["files"]


def test_the_cache_holds_verified_copies_and_a_rerun_skips_every_stage(s3_run):
    second = s3_run["second"]
    assert second is not None and second.returncode == 0, second.stderr[-3000:]
    assert stage_lines(second.stdout) == {n: "cached" for n in STAGE_NAMES}
    # The pointer a training stage left names a checkpoint in the bucket.
    store = RemoteArtifactStore(f"s3://{BUCKET}/wsfm/artifacts", "toy2d",
                                cache=s3_run["root"] / "cache")
    [refiner] = [p for p in s3_run["successes"] if "/train_refiner/" in p]
    fp = s3_run["successes"][refiner]["fingerprint"]
    pointer = json.loads((store.cached("train_refiner", fp) / "checkpoints.json").read_text())
    assert pointer["path"].startswith(f"s3://{BUCKET}/wsfm/ray/toy2d-train_refiner-")
    assert pointer["path"].rsplit("/", 1)[0][len("s3://"):] in {
        p.rsplit("/", 2)[0] for p in s3_run["listing"] if "/step-" in p}
