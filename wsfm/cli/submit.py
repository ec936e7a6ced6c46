"""``wsfm submit`` and ``wsfm jobs``: run a pipeline as a Ray job through the Jobs API.

``wsfm submit PIPELINE --address http://HEAD:8265`` sends ``wsfm run PIPELINE ...`` to the
cluster's head (``JobSubmissionClient``). The job's ``working_dir`` is the project folder less
what never belongs in an upload (:data:`EXCLUDES`: the venv, run folders, MLflow stores,
shards, checkpoints, ``.git``, caches); Ray also honours ``.gitignore`` / ``.rayignore``. What
is left is measured the way Ray walks it before anything is sent, and refused, naming the
biggest paths, when it is over Ray's package limit.

The job's environment carries what every stage needs on every node: ``WSFM_HOME`` (the
artifact root, which every node must see: a shared mount or an object-store URI),
``MLFLOW_TRACKING_URI`` and its credentials (passed to the job, never printed nor put in the
job's metadata), ``DS_ACCELERATOR=cpu`` unless ``--gpu``, and any ``--env KEY=VALUE``. The
job's metadata names the pipeline and profile, which ``wsfm jobs`` shows.

Ray 2.60 clusters use token authentication by default: the client sends the token from
``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``. Ray reads
``RAY_AUTH_MODE`` once per process, so :func:`connect` sets it (to ``token``) before Ray is
imported when a token is at hand and the user has not chosen a mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsfm.errors import InputNotFound, UserError

__all__ = ["EXCLUDES", "JobRow", "Submission", "Upload", "build_submission", "check_upload",
           "cmd_jobs", "cmd_submit", "connect", "exit_code", "follow", "format_rows", "job_env",
           "job_rows", "measure_upload",
           "project_root", "resolve_address", "run_args", "use_token_if_any"]

# gitignore-style patterns, relative to the working_dir (Ray's runtime-env ``excludes``).
EXCLUDES = [".venv/", "venv/", ".git/", "wsfm-runs/", "mlruns/", "mlartifacts/", "*.db",
            "*.tar", "*.npy", "*.pt", "checkpoints/", "checkpoint_*/", "ray_results/",
            "__pycache__/", "*.pyc", ".pytest_cache/", ".ruff_cache/", ".mypy_cache/",
            "*.egg-info/", "build/", "dist/", ".whl/"]
SECRET_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
PASSED_ENV = ("MLFLOW_TRACKING_URI", *SECRET_ENV)
# The entrypoint's ``ray.init(runtime_env=...)`` sets DS_ACCELERATOR too: without this Ray
# refuses two runtime envs that name the same variable (the driver's value wins, and agrees).
MERGE_ENV = {"RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"}
_QUIET = logging.getLogger("wsfm.cli.submit")  # Ray's walk logs each ignore file at INFO
STATUS_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 130}


def project_root() -> Path:
    """The folder that holds ``wsfm/`` and ``pipelines/``: what a job uploads."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Upload:
    """What ``working_dir`` would send: total bytes and files, the biggest top-level entries
    and files as ``(bytes, path relative to the root)``, largest first."""

    root: Path
    bytes: int
    files: int
    top: list[tuple[int, str]]
    biggest_files: list[tuple[int, str]]
    paths: frozenset[str] = field(default=frozenset(), repr=False)


def measure_upload(root: Path, excludes: Sequence[str] = EXCLUDES) -> Upload:
    """Walk ``root`` exactly as Ray packs a ``working_dir`` (its own traversal, with these
    ``excludes`` and the ``.gitignore`` / ``.rayignore`` files it honours)."""
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    root = Path(root).resolve()
    sizes: dict[str, int] = {}

    def add(path: Path) -> None:
        if path.is_file():
            sizes[str(path.relative_to(root))] = path.stat().st_size

    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    _dir_travel(root, [_get_excludes(root, list(excludes))], add,
                include_gitignore=include_gitignore, logger=_QUIET)
    top: dict[str, int] = {}
    for rel, size in sizes.items():
        head = rel.split(os.sep, 1)[0]
        top[head] = top.get(head, 0) + size
    by_size = sorted(((s, p) for p, s in sizes.items()), reverse=True)
    return Upload(root, sum(sizes.values()), len(sizes),
                  sorted(((s, p) for p, s in top.items()), reverse=True)[:5], by_size[:5],
                  frozenset(sizes))


def upload_limit() -> int:
    """Ray's limit on a ``working_dir`` package (bytes; the gRPC message size)."""
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

    return GCS_STORAGE_MAX_SIZE


def check_upload(upload: Upload, limit: int | None = None) -> None:
    """Raise ``ValueError`` with the size and the biggest paths when ``upload`` is over
    ``limit`` (default: Ray's). Uncompressed bytes are compared: a package that passes here
    passes Ray's check on the zip."""
    limit = upload_limit() if limit is None else limit
    if upload.bytes < limit:
        return
    lines = [f"{_mib(s)}  {p}" for s, p in upload.top] + ["biggest files:"] + [
        f"{_mib(s)}  {p}" for s, p in upload.biggest_files]
    raise UserError(f"the job's working_dir {upload.root} would upload {_mib(upload.bytes)} "
                     f"in {upload.files} files, over Ray's limit of {_mib(limit)}; biggest "
                     "entries:\n  " + "\n  ".join(lines) + "\nmove them out of the project, "
                     "or list them in .rayignore")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def run_args(pipeline: str, *, profile: str | None = None, from_stage: str | None = None,
             only: str | None = None, force: bool = False, workers: int | None = None,
             gpu: bool | None = None, dry_run: bool = False, bench: bool = False) -> list[str]:
    """The command line (argv) that the job runs: ``wsfm run``, or with ``bench`` the full
    comparison, ``wsfm bench`` (which takes the profile and --dry-run only)."""
    if bench:
        given = [flag for flag, value in (("--from", from_stage), ("--only", only),
                                          ("--force", force), ("--workers", workers),
                                          ("--gpu", gpu)) if value not in (None, False)]
        if given:
            raise UserError(f"--bench runs the whole comparison: {', '.join(given)} cannot "
                             "be combined with it")
        return (["wsfm", "bench", pipeline] + (["--profile", profile] if profile else [])
                + ["--dry-run"] * dry_run)
    argv = ["wsfm", "run", pipeline]
    for flag, value in (("--profile", profile), ("--from", from_stage), ("--only", only),
                        ("--workers", workers)):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--force"] * force + ["--dry-run"] * dry_run
    if gpu is not None:
        argv.append("--gpu" if gpu else "--no-gpu")
    return argv


def job_env(home: str | None, *, gpu: bool | None, extra: Sequence[str] = (),
            environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The job's ``env_vars``: the artifact root, MLflow settings, the accelerator, extras.

    ``home`` (else ``$WSFM_HOME``) must be an absolute path or a URI: the job runs on another
    machine, where a relative path would mean a folder inside its temporary working_dir."""
    home = home or environ.get("WSFM_HOME")
    if not home:
        raise UserError("wsfm submit needs the artifact root: --home or WSFM_HOME, a path "
                         "every node mounts or an object-store URI (s3://...)")
    if "://" not in home and not os.path.isabs(home):
        raise UserError(f"--home / WSFM_HOME {home!r} is relative: give a path that every "
                         "node of the cluster sees (absolute) or an object-store URI")
    env = {"WSFM_HOME": home, **{k: environ[k] for k in PASSED_ENV if environ.get(k)}}
    if not gpu:
        env["DS_ACCELERATOR"] = "cpu"
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return {**env, **MERGE_ENV}


@dataclass(frozen=True)
class Submission:
    """What :func:`submit` sends. ``runtime_env["env_vars"]`` may hold secrets: print
    :meth:`describe`, never the object."""

    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]
    upload: Upload

    def describe(self) -> str:
        env = self.runtime_env["env_vars"]
        shown = ", ".join(f"{k}={'***' if k in SECRET_ENV else v}" for k, v in env.items())
        return (f"entrypoint: {self.entrypoint}\nworking_dir: {self.upload.root} "
                f"({_mib(self.upload.bytes)}, {self.upload.files} files)\nenv: {shown}")


def build_submission(pipeline: str, *, home: str | None, profile: str | None = None,
                     from_stage: str | None = None, only: str | None = None,
                     force: bool = False, workers: int | None = None, gpu: bool | None = None,
                     dry_run: bool = False, env: Sequence[str] = (),
                     working_dir: Path | None = None, environ: Mapping[str, str] = os.environ,
                     bench: bool = False) -> Submission:
    """Check and assemble a submission. ``pipeline`` must lie inside ``working_dir``
    (default: the project): the job sees only what is uploaded."""
    root = Path(working_dir or project_root()).resolve()
    path = Path(pipeline)
    path = path.resolve() if path.is_absolute() else (Path.cwd() / path).resolve()
    if not path.is_file():
        raise InputNotFound(f"pipeline file {path} not found")
    if not path.is_relative_to(root):
        raise UserError(f"pipeline file {path} is outside the job's working_dir {root}: "
                         "only that folder is uploaded")
    upload = measure_upload(root)
    check_upload(upload)
    rel = str(path.relative_to(root))
    if rel not in upload.paths:
        raise UserError(f"pipeline file {rel} is excluded from the upload (EXCLUDES, "
                         ".gitignore or .rayignore)")
    argv = run_args(rel, profile=profile, from_stage=from_stage, only=only, force=force,
                    workers=workers, gpu=gpu, dry_run=dry_run, bench=bench)
    runtime_env = {"working_dir": str(root), "excludes": list(EXCLUDES),
                   "env_vars": job_env(home, gpu=gpu, extra=env, environ=environ)}
    metadata = {"wsfm.pipeline": rel, "wsfm.profile": profile or "default"}
    return Submission(shlex.join(argv), runtime_env, metadata, upload)


def resolve_address(address: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """``--address``, else ``$RAY_API_SERVER_ADDRESS``, else ``$RAY_ADDRESS``."""
    found = address or environ.get("RAY_API_SERVER_ADDRESS") or environ.get("RAY_ADDRESS")
    if not found:
        raise UserError("no cluster: give --address http://HEAD:8265 (the head's dashboard) "
                         "or set RAY_API_SERVER_ADDRESS / RAY_ADDRESS")
    return found


def _token_at_hand(environ: Mapping[str, str]) -> bool:
    path = environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def use_token_if_any() -> None:
    """Set ``RAY_AUTH_MODE=token`` when a token is at hand and no mode was chosen. Ray reads
    the mode once, when it is first imported: call this before anything imports Ray."""
    if ("RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules
            and _token_at_hand(os.environ)):
        os.environ["RAY_AUTH_MODE"] = "token"


def connect(address: str | None):
    """A ``JobSubmissionClient`` for the cluster, sending the auth token when there is one.
    Ray's own errors (unreachable head, refused token) are raised as ``ValueError`` with the
    address in the message."""
    use_token_if_any()
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    url = resolve_address(address)
    try:
        return JobSubmissionClient(url)
    except AuthenticationError as exc:
        raise UserError(f"the Ray Jobs API at {url} refused this client: {exc}") from exc
    except (ConnectionError, RuntimeError) as exc:
        raise UserError(f"cannot reach the Ray Jobs API at {url}: {exc}") from exc


def submit(client, submission: Submission, submission_id: str | None = None) -> str:
    """Send ``submission``; returns the submission id."""
    return client.submit_job(entrypoint=submission.entrypoint,
                             runtime_env=submission.runtime_env,
                             metadata=submission.metadata, submission_id=submission_id)


def follow(client, job_id: str, write: Callable[[str], Any] = sys.stdout.write,
           poll: float = 1.0) -> str:
    """Write the job's logs as they come until it ends; returns its final status name."""
    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)
            if hasattr(sys.stdout, "flush"):
                sys.stdout.flush()

    asyncio.run(tail())
    while True:  # the log stream closes as the job ends; its status may lag a moment
        status = str(client.get_job_status(job_id).value)
        if status in STATUS_CODES:
            return status
        time.sleep(poll)


def exit_code(status: str) -> int:
    """0 for SUCCEEDED, 1 for FAILED, 130 for STOPPED (as if interrupted)."""
    return STATUS_CODES.get(status, 1)


@dataclass(frozen=True)
class JobRow:
    """One submitted job, as ``wsfm jobs list`` shows it."""

    submission_id: str
    status: str
    pipeline: str
    profile: str
    start: str  # UTC, "YYYY-mm-dd HH:MM:SS"
    seconds: float | None  # wall time so far, or to its end
    message: str = ""
    entrypoint: str = field(default="", repr=False)


def job_rows(details: Sequence[Any], now: float | None = None) -> list[JobRow]:
    """Submitted jobs (not drivers that merely connected), newest first."""
    now = time.time() if now is None else now
    rows = []
    for job in details:
        if job.submission_id is None:
            continue
        meta = job.metadata or {}
        start = (job.start_time or 0) / 1000
        end = (job.end_time / 1000) if job.end_time else now
        rows.append(JobRow(job.submission_id, str(job.status.value),
                           meta.get("wsfm.pipeline", "-"), meta.get("wsfm.profile", "-"),
                           time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start)) if start
                           else "-", end - start if start else None, job.message or "",
                           job.entrypoint or ""))
    return sorted(rows, key=lambda r: r.start, reverse=True)


def format_rows(rows: Sequence[JobRow]) -> list[str]:
    lines = [(f"{'submission id':<28} {'status':<10} {'pipeline':<26} {'profile':<10} "
              f"{'started (UTC)':<19} {'seconds':>8}")]
    for r in rows:
        secs = f"{r.seconds:8.0f}" if r.seconds is not None else f"{'-':>8}"
        lines.append(f"{r.submission_id:<28} {r.status:<10} {r.pipeline:<26} {r.profile:<10} "
                     f"{r.start:<19} {secs}")
    return lines


def cmd_submit(args: Any) -> int:
    """``wsfm submit``: check, submit, print how to follow; with ``--follow`` wait for the
    end and return the job's exit code."""
    use_token_if_any()
    submission = build_submission(args.pipeline, home=args.home, profile=args.profile,
                                  from_stage=args.from_stage, only=args.only, force=args.force,
                                  workers=args.workers, gpu=args.gpu, dry_run=args.dry_run,
                                  env=args.env or (), working_dir=args.working_dir,
                                  bench=args.bench)
    client = connect(args.address)
    job_id = submit(client, submission, args.submission_id)
    address = resolve_address(args.address)
    print(f"submitted {submission.metadata['wsfm.pipeline']} "
          f"(profile {submission.metadata['wsfm.profile']}) as job {job_id}\n"
          f"{submission.describe()}\n"
          f"follow it: wsfm jobs logs {job_id} --follow --address {address}\n"
          f"stop it:   wsfm jobs stop {job_id} --address {address}", flush=True)
    if not args.follow:
        return 0
    status = follow(client, job_id)
    print(f"job {job_id}: {status}", flush=True)
    return exit_code(status)


def cmd_jobs(args: Any) -> int:
    """``wsfm jobs list | status ID | logs ID [--follow] | stop ID``."""
    use_token_if_any()
    client = connect(args.address)
    if args.jobs_command == "list":
        for line in format_rows(job_rows(client.list_jobs())):
            print(line)
        return 0
    if args.jobs_command == "logs":
        if args.follow:
            return exit_code(follow(client, args.id))
        print(client.get_job_logs(args.id), end="")
        return 0
    if args.jobs_command == "stop":
        stopped = client.stop_job(args.id)
        print(f"job {args.id}: {'stop requested' if stopped else 'not running'}")
        return 0
    rows = job_rows([client.get_job_info(args.id)])
    if not rows:
        raise UserError(f"{args.id} is a driver that connected, not a submitted job")
    row = rows[0]
    print(f"job {row.submission_id}: {row.status}\n  pipeline {row.pipeline}, profile "
          f"{row.profile}\n  started {row.start} UTC, {row.seconds or 0:.0f} s\n"
          f"  entrypoint: {row.entrypoint}" + (f"\n  {row.message}" if row.message else ""))
    return 0
