"""``wsfm submit`` / ``wsfm jobs``: the upload, the job's environment, the command line, and
(marked ``cluster``) real jobs on the session's two-node loopback Ray cluster with token
authentication."""

from __future__ import annotations

import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, wsfm
from wsfm.cli import build_parser
from wsfm.cli.submit import (
    EXCLUDES,
    build_submission,
    check_upload,
    job_env,
    measure_upload,
    run_args,
)


def make_project(root: Path) -> dict[str, int]:
    """A project tree with files that belong in an upload and files that do not; returns
    the sizes of those that belong, by relative path."""
    keep = {"wsfm/__init__.py": 10, "wsfm/stages/a.py": 2000, "pipelines/p.yaml": 30,
            "README.md": 400, "notes/big.bin": 5000}
    drop = [".venv/lib/x.py", ".git/objects/ab", "wsfm-runs/artifacts/s.json", "mlflow.db",
            "mlruns/0/meta.yaml", "mlartifacts/1/m.pt", "out/shard-000000.tar",
            "wsfm/__pycache__/a.cpython-311.pyc", "ckpt/checkpoints/c.bin", "secret/key.txt"]
    for rel, size in keep.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * size)
    for rel in drop:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"y" * 777)
    (root / ".rayignore").write_text("secret/\n")
    keep[".rayignore"] = len("secret/\n")
    return keep


def test_the_measured_upload_is_what_ray_packs(tmp_path):
    from ray._private.runtime_env.packaging import create_package

    keep = make_project(tmp_path / "proj")
    upload = measure_upload(tmp_path / "proj")
    assert upload.paths == set(keep) and upload.bytes == sum(keep.values())
    assert upload.files == len(keep)
    assert upload.top[0] == (5000, "notes") and upload.biggest_files[0] == (5000, "notes/big.bin")
    # Ray's own packer, with the same excludes, puts exactly these files in the zip.
    target = tmp_path / "pkg.zip"
    create_package(str(tmp_path / "proj"), target, include_gitignore=True,
                   excludes=list(EXCLUDES))
    with zipfile.ZipFile(target) as zf:
        packed = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
    assert packed == keep


def test_an_upload_over_the_limit_is_refused_naming_the_biggest_paths(tmp_path):
    make_project(tmp_path / "proj")
    upload = measure_upload(tmp_path / "proj")
    check_upload(upload, limit=upload.bytes + 1)
    with pytest.raises(ValueError, match="over Ray's limit") as err:
        check_upload(upload, limit=4096)
    assert "notes/big.bin" in str(err.value) and f"{upload.files} files" in str(err.value)


def test_the_project_itself_fits_under_rays_limit():
    from wsfm.cli.submit import upload_limit

    upload = measure_upload(ROOT)
    check_upload(upload)
    assert upload.bytes < upload_limit() / 20  # sources only: far below 512 MiB
    assert not any(p.startswith((".venv", ".git/", "wsfm-runs")) for p in upload.paths)


def test_every_package_folder_is_a_regular_package():
    """A job's working_dir copy of ``wsfm`` must shadow the installed one whole: a folder
    without ``__init__.py`` is a namespace package, which an editable install maps back to
    its own tree, and a job then imported modules from two copies (seen: a module missing)."""
    folders = {p.parent for p in (ROOT / "wsfm").rglob("*.py")}
    assert [f for f in folders if not (f / "__init__.py").is_file()] == []


def test_the_jobs_environment():
    environ = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_TRACKING_PASSWORD": "pw",
               "WSFM_HOME": "/shared/runs", "HOME": "/root"}
    env = job_env(None, gpu=None, extra=["A=1", "B=x=y"], environ=environ)
    assert env["WSFM_HOME"] == "/shared/runs" and env["DS_ACCELERATOR"] == "cpu"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["MLFLOW_TRACKING_PASSWORD"] == "pw" and "HOME" not in env
    assert env["A"] == "1" and env["B"] == "x=y"
    gpu = job_env("s3://bucket/runs", gpu=True, environ=environ)
    assert gpu["WSFM_HOME"] == "s3://bucket/runs" and "DS_ACCELERATOR" not in gpu
    with pytest.raises(ValueError, match="relative"):
        job_env("wsfm-runs", gpu=None, environ={})
    with pytest.raises(ValueError, match="--home or WSFM_HOME"):
        job_env(None, gpu=None, environ={})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        job_env("/x", gpu=None, extra=["NOVALUE"], environ={})


def test_a_submission_runs_a_real_wsfm_command_and_hides_the_credentials(tmp_path):
    environ = {"MLFLOW_TRACKING_URI": "http://mlflow:5000",
               "MLFLOW_TRACKING_USERNAME": "me", "MLFLOW_TRACKING_PASSWORD": "s3cr3t-pw"}
    sub = build_submission(str(ROOT / "pipelines" / "toy2d.yaml"), home="/shared/runs",
                           profile="smoke", from_stage="train_refiner", workers=2, gpu=False,
                           env=["X=1"], environ=environ)
    args = build_parser().parse_args(__import__("shlex").split(sub.entrypoint)[1:])
    assert (args.command, args.pipeline, args.profile, args.from_stage, args.workers,
            args.gpu) == ("run", "pipelines/toy2d.yaml", "smoke", "train_refiner", 2, False)
    assert sub.metadata == {"wsfm.pipeline": "pipelines/toy2d.yaml", "wsfm.profile": "smoke"}
    assert sub.runtime_env["working_dir"] == str(ROOT)
    assert sub.runtime_env["env_vars"]["MLFLOW_TRACKING_PASSWORD"] == "s3cr3t-pw"
    assert "s3cr3t-pw" not in sub.describe() and "s3cr3t-pw" not in str(sub.metadata)
    assert "MLFLOW_TRACKING_PASSWORD=***" in sub.describe()


def test_a_pipeline_outside_the_project_is_refused(tmp_path):
    outside = tmp_path / "p.yaml"
    outside.write_text((ROOT / "pipelines" / "toy2d.yaml").read_text())
    with pytest.raises(ValueError, match="outside the job's working_dir"):
        build_submission(str(outside), home="/shared")
    with pytest.raises(FileNotFoundError):
        build_submission("pipelines/nope.yaml", home="/shared")


def test_run_args_round_trip_through_the_cli():
    argv = run_args("pipelines/digits.yaml", only="evaluate", gpu=True, dry_run=True)
    args = build_parser().parse_args(argv[1:])
    assert args.only == "evaluate" and args.gpu is True and args.dry_run and not args.force


def test_submit_bench_runs_the_comparison_and_refuses_what_bench_does_not_take():
    argv = run_args("pipelines/toy2d.yaml", profile="smoke", dry_run=True, bench=True)
    assert argv == ["wsfm", "bench", "pipelines/toy2d.yaml", "--profile", "smoke", "--dry-run"]
    args = build_parser().parse_args(argv[1:])
    assert args.command == "bench" and args.profile == "smoke" and args.dry_run
    with pytest.raises(ValueError, match="--only, --workers cannot be combined"):
        run_args("pipelines/toy2d.yaml", only="evaluate", workers=4, bench=True)
    submitted = build_parser().parse_args(["submit", "pipelines/toy2d.yaml", "--bench"])
    assert submitted.bench


# ---- real jobs on the shared loopback cluster (token authentication on, as Ray 2.60
# defaults; tests/conftest.py) ----

@pytest.fixture(scope="module")
def head(loopback_cluster, tmp_path_factory):
    """The shared two-node cluster, and a folder of this module's own for the jobs' home."""
    return loopback_cluster.cluster, tmp_path_factory.mktemp("submit")


def token(cluster) -> dict[str, str]:
    """Where a client finds this cluster's token; no ``RAY_AUTH_MODE``: it finds it itself."""
    return {"RAY_AUTH_TOKEN_PATH": cluster.env["RAY_AUTH_TOKEN_PATH"]}


@pytest.mark.cluster
def test_a_request_without_the_token_is_refused(head):
    cluster, _ = head
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{cluster.dashboard}/api/jobs/", timeout=30)
    assert err.value.code == 401
    request = urllib.request.Request(f"{cluster.dashboard}/api/jobs/",
                                     headers={"Authorization": "Bearer not-the-token"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 403
    wrong = wsfm("jobs", "list", "--address", cluster.dashboard,
                 env={"RAY_AUTH_TOKEN": "0" * 64})
    assert wrong.returncode == 2 and "refused this client" in wrong.stderr
    # No RAY_AUTH_MODE given: the client finds the token file and sends it.
    right = wsfm("jobs", "list", "--address", cluster.dashboard, env=token(cluster))
    assert right.returncode == 0 and "submission id" in right.stdout


@pytest.mark.cluster
def test_submit_follow_list_status_and_logs(head):
    cluster, root = head
    home = str(root / "home")
    done = wsfm("submit", "pipelines/toy2d.yaml", "--profile", "smoke", "--dry-run",
                "--address", cluster.dashboard, "--home", home, "--submission-id",
                "wsfm-dry-1", "--follow", env=token(cluster))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[plan] pretrain_draft" in done.stdout and "job wsfm-dry-1: SUCCEEDED" in done.stdout
    failed = wsfm("submit", "pipelines/toy2d.yaml", "--only", "no_such_stage", "--address",
                  cluster.dashboard, "--home", home, "--submission-id", "wsfm-bad-1",
                  "--follow", env=token(cluster))
    assert failed.returncode == 1 and "job wsfm-bad-1: FAILED" in failed.stdout
    listed = wsfm("jobs", "list", "--address", cluster.dashboard, env=token(cluster))
    rows = {line.split()[0]: line.split()[1:4] for line in listed.stdout.splitlines()[1:]}
    assert rows["wsfm-dry-1"] == ["SUCCEEDED", "pipelines/toy2d.yaml", "smoke"]
    assert rows["wsfm-bad-1"] == ["FAILED", "pipelines/toy2d.yaml", "default"]
    status = wsfm("jobs", "status", "wsfm-dry-1", "--address", cluster.dashboard,
                  env=token(cluster))
    assert "SUCCEEDED" in status.stdout and "profile smoke" in status.stdout
    logs = wsfm("jobs", "logs", "wsfm-dry-1", "--address", cluster.dashboard, env=token(cluster))
    assert "[plan] register" in logs.stdout
