"""Where a run's things live: a local folder, a folder every node mounts, or an object store.

``--home`` / ``$WSFM_HOME`` is either a local path (a shared mount such as NFS, EFS or Lustre
is just a local path on every node) or a URI that ``pyarrow.fs`` understands: ``s3://bucket/
prefix``, ``gs://bucket/prefix``, and ``file:///abs/path`` (the object-store code path on a
local folder, for tests). :func:`locate` turns it into a :class:`Location`:

    artifacts     <home>/artifacts   the artifact store root (``wsfm.orchestrate.store``)
    ray_storage   <home>/ray         Ray Train's storage: checkpoints live beside the artifacts
    mlflow_uri    ``$MLFLOW_TRACKING_URI``, else SQLite ``<home>/mlflow.db`` (local homes only)

A URI home has no SQLite store: a SQLite file under a bucket cannot be opened, and one on the
driver's disk is out of reach of the stage tasks that log to it from other nodes. So a URI
home requires ``MLFLOW_TRACKING_URI`` (a tracking server, or for a one-machine test a local
``sqlite:///...``, whose logged files then go to ``mlartifacts/`` beside the database).

S3 is configured from the usual environment, passed to ``pyarrow.fs.S3FileSystem``
explicitly: the endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (MinIO, Ceph,
a test server), the region from ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, credentials from
the default AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance
roles), which each worker resolves itself: no secret travels inside a pickled filesystem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from wsfm.errors import UserError
from wsfm.uri import is_uri

__all__ = ["STORAGE_ENV", "Location", "filesystem", "is_uri", "join", "locate", "ray_storage",
           "storage_env"]

# Where the object store is: what the driver hands its Ray workers (they open the store
# themselves). Credentials are not among them: each node resolves its own (instance role,
# profile, or a job's environment), and none is copied into Ray's job records.
STORAGE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a path or a URI."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of ``uri`` and the path inside it (``s3://b/p`` -> ``b/p``).

    Raises:
        ValueError: a query string in the URI (configure S3 through the environment), or a
            scheme that pyarrow does not know.
    """
    parts = urlsplit(uri)
    if parts.query:
        raise UserError(f"{uri}: options in the URI are not supported; set the endpoint in "
                         "AWS_ENDPOINT_URL and the region in AWS_REGION")
    if parts.scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        fs = pafs.S3FileSystem(endpoint_override=endpoint or None, region=region or None)
        return fs, f"{parts.netloc}{parts.path}".rstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:
        raise UserError(f"{uri}: not a filesystem that pyarrow can open ({exc})") from exc
    return fs, path.rstrip("/")


def storage_env() -> dict[str, str]:
    """The :data:`STORAGE_ENV` variables that are set, for the Ray workers' environment."""
    return {key: os.environ[key] for key in STORAGE_ENV if os.environ.get(key)}


def ray_storage(storage_path: str) -> tuple[pafs.FileSystem | None, str]:
    """``(storage_filesystem, storage_path)`` for Ray Train's ``RunConfig``: a local folder
    as it is; a URI through :func:`filesystem` (so that the S3 endpoint is honoured), with
    the path inside that filesystem, as Ray expects when it is given a filesystem."""
    if not is_uri(storage_path):
        return None, storage_path
    return filesystem(storage_path)


@dataclass(frozen=True)
class Location:
    """Where one working folder's artifacts, Ray Train runs and MLflow store live.

    ``home``, ``artifacts`` and ``ray_storage`` are absolute local paths or URIs (all of the
    same kind); ``mlflow_artifacts`` is the local folder for a SQLite store's logged files
    (None: the tracking server decides).
    """

    home: str
    artifacts: str
    ray_storage: str
    mlflow_uri: str
    mlflow_artifacts: Path | None

    @property
    def remote(self) -> bool:
        return is_uri(self.home)

    @property
    def logs(self) -> Path:
        """The local folder for this invocation's log file: ``<home>/logs``, or for a URI
        home ``$WSFM_LOG_DIR`` (default ``./wsfm-logs``)."""
        if self.remote:
            return Path(os.environ.get("WSFM_LOG_DIR") or "wsfm-logs").resolve()
        return Path(self.home) / "logs"


def locate(home: str | Path) -> Location:
    """The :class:`Location` of a working folder (a local path or a URI).

    Raises:
        ValueError: ``home`` is a URI and ``MLFLOW_TRACKING_URI`` is not set.
    """
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    if is_uri(str(home)):
        home = str(home).rstrip("/")
        filesystem(home)  # fail now on a URI that pyarrow cannot open
        if not tracking:
            raise UserError(f"the working folder {home} is a URI, where no SQLite MLflow store "
                             "can live: set MLFLOW_TRACKING_URI (a tracking server, e.g. "
                             "http://HOST:5000)")
        local_db = tracking.startswith("sqlite:///")
        beside = Path(tracking.removeprefix("sqlite:///")).resolve().parent / "mlartifacts"
        return Location(home, join(home, "artifacts"), join(home, "ray"), tracking,
                        beside if local_db else None)
    root = Path(home).resolve()
    uri = tracking or f"sqlite:///{root / 'mlflow.db'}"
    return Location(str(root), str(root / "artifacts"), str(root / "ray"), uri,
                    root / "mlartifacts")
