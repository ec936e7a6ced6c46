"""End to end on an object store: the toy2d smoke pipeline through the real CLI with
``WSFM_HOME=s3://bucket/wsfm`` on moto's S3 server (127.0.0.1), MLflow in a local SQLite.
Artifacts, their ``_SUCCESS.json`` and Ray Train's checkpoints must land in the bucket."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    STAGE_NAMES,
    assert_committed,
    bucket_contents,
    small_smoke,
    stage_lines,
    wsfm,
)
from tests.s3server import CREDENTIALS, make_bucket, moto_server
from wsfm.orchestrate.remote_store import RemoteArtifactStore

pytestmark = [pytest.mark.pipeline]
BUCKET = "wsfm-e2e"


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory):
    """One smoke run (smaller still: a few training steps, two checkpoints) into the bucket,
    and a second, identical invocation."""
    root = tmp_path_factory.mktemp("e2e-s3")
    pipeline = small_smoke(root)
    with moto_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "WSFM_CACHE": str(root / "cache"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        args = ("run", str(pipeline), "--profile", "smoke")
        home = f"s3://{BUCKET}/wsfm"
        first = wsfm(*args, home=home, env=env, cwd=root, timeout=1500)
        second = (wsfm(*args, home=home, env=env, cwd=root, timeout=1500)
                  if first.returncode == 0 else None)
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
