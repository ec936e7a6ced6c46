"""Stage leases on an object store: one invocation makes a stage output, across machines.

A stage's ``flock`` (``wsfm.orchestrate.locks``) is a node's: two invocations on two machines
that share an ``s3://`` artifact root would both make the same output. So a stage task on
such a root also holds a lease, one object per stage output::

    <root>/.locks/<pipeline>/<stage>-<fingerprint>.lease

holding who makes it (its MLflow run, pid, host, since when) and until when the lease holds
(``expires``, wall clock). It is taken with a conditional write (``If-None-Match: *``: only if
there is none), renewed by a thread every third of :data:`LEASE_SECONDS` (``If-Match`` on its
own ETag) and deleted at the end. Another invocation that finds a lease waits for it (saying
once whom it waits for), polling, then reuses the output the holder committed. A lease that
expired (its holder died, or lost its network longer than the lease) is taken over, with a
conditional write on the ETag it read, so two waiters never both take it; the holder that
lost it is told (a warning) and keeps going: the store's commit protocol keeps a half-made
output from counting, so at worst the work is done twice, as before leases.

Clocks: ``expires`` is compared with the reader's clock, so machines must agree on the time to
well within the lease (60 s by default; NTP keeps them within milliseconds).

Only ``s3://`` roots (and stores that speak its conditional writes: AWS S3 since 2024, moto,
MinIO); elsewhere, or where the store refuses a conditional write, the node's ``flock`` is the
only lock (said once).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from wsfm.orchestrate.locks import LOCKS, POLL, _idle, describe_holder

__all__ = ["LEASE_SECONDS", "lease_holder", "lease_uri", "object_lease"]

# How long a lease holds without renewal (WSFM_LEASE_SECONDS: the tests use a second or two).
LEASE_SECONDS = float(os.environ.get("WSFM_LEASE_SECONDS", "60"))
_TAKEN = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def lease_uri(root: str, pipeline: str, stage: str, fp: str) -> str:
    """The lease object of ``stage``'s output ``fp`` under the artifact root ``root``."""
    return f"{root.rstrip('/')}/{LOCKS}/{pipeline}/{stage}-{fp}.lease"


def _client() -> Any:
    import boto3  # only for an s3:// root

    return boto3.client("s3")  # endpoint, region, credentials: the AWS_* environment


def _split(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.netloc, parts.path.lstrip("/")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _read(client: Any, bucket: str, key: str) -> tuple[dict[str, Any], str] | None:
    """The lease's record and ETag, or None when there is none."""
    try:
        got = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey:
        return None
    try:
        record = json.loads(got["Body"].read() or b"{}")
    except ValueError:
        record = {}
    return (record if isinstance(record, dict) else {}), got["ETag"]


def lease_holder(uri: str) -> dict[str, Any] | None:
    """The record of the invocation that holds the lease at ``uri`` now, or None (no lease,
    or one that expired: its holder is gone)."""
    client = _client()
    found = _read(client, *_split(uri))
    if found is None or found[0].get("expires", 0.0) < time.time():
        return None
    return found[0]


@contextlib.contextmanager
def object_lease(uri: str, holder: dict[str, Any], *, note: str = "",
                 seconds: float | None = None) -> Iterator[bool]:
    """Hold the lease at ``uri`` (an ``s3://`` object) while the block runs; yields True when
    another invocation held it first and this one waited. ``holder``: what the lease says
    of its holder; ``note``: printed once when waiting, with whom it waits for."""
    seconds = LEASE_SECONDS if seconds is None else seconds
    if not uri.startswith("s3://"):
        yield False
        return
    client, (bucket, key) = _client(), _split(uri)
    mine = {**holder, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    etag, waited = _take(client, bucket, key, mine, seconds, note)
    if etag is None:  # the store cannot do conditional writes
        yield False
        return
    state = {"etag": etag}
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(client, bucket, key, mine, seconds, state,
                                                    stop), daemon=True, name="wsfm-lease")
    renewer.start()
    try:
        yield waited
    finally:
        stop.set()
        renewer.join()
        found = _read(client, bucket, key)
        if found is not None and found[1] == state["etag"]:  # still ours
            client.delete_object(Bucket=bucket, Key=key)


def _take(client: Any, bucket: str, key: str, mine: dict[str, Any], seconds: float,
          note: str) -> tuple[str | None, bool]:
    """Put the lease if there is none, take it over if it expired, else wait."""
    from botocore.exceptions import ClientError

    told, waited = False, False
    while True:
        body = json.dumps({**mine, "expires": time.time() + seconds})
        try:
            return client.put_object(Bucket=bucket, Key=key, Body=body,
                                     IfNoneMatch="*")["ETag"], waited
        except ClientError as exc:
            if _code(exc) in ("NotImplemented", "501"):
                warnings.warn(f"s3://{bucket}/{key}: the object store refuses conditional "
                              "writes, so the stage is locked on this node only", stacklevel=3)
                return None, waited
            if _code(exc) not in _TAKEN:
                raise
        found = _read(client, bucket, key)
        if found is None:  # released meanwhile
            continue
        record, etag = found
        if record.get("expires", 0.0) < time.time():  # its holder is gone: take it over
            try:
                new = client.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=etag)["ETag"]
            except ClientError as exc:
                if _code(exc) not in (*_TAKEN, "NoSuchKey"):
                    raise
                continue  # another waiter took it first, or it was released
            print(f"[wsfm] took over the lease s3://{bucket}/{key} of "
                  f"{describe_holder(record)}, which expired at "
                  f"{time.strftime('%H:%M:%S', time.localtime(record.get('expires', 0)))}",
                  file=sys.stderr, flush=True)
            return new, waited
        if note and not told:
            print(f"[wsfm] {note} ({describe_holder(record)}): waiting for s3://{bucket}/{key}",
                  file=sys.stderr, flush=True)
            told = True
        waited = True
        _idle(min(POLL, seconds / 3))


def _renew(client: Any, bucket: str, key: str, mine: dict[str, Any], seconds: float,
           state: dict[str, str], stop: threading.Event) -> None:
    """Every third of the lease, push ``expires`` on (``If-Match``: only while it is ours)."""
    from botocore.exceptions import ClientError

    while not stop.wait(seconds / 3):
        body = json.dumps({**mine, "expires": time.time() + seconds})
        try:
            state["etag"] = client.put_object(Bucket=bucket, Key=key, Body=body,
                                              IfMatch=state["etag"])["ETag"]
        except ClientError as exc:
            if _code(exc) in (*_TAKEN, "NoSuchKey"):
                warnings.warn(f"s3://{bucket}/{key}: this invocation lost its lease (it "
                              "expired and another took it over); its output may be made "
                              "twice", stacklevel=1)
                return
        except Exception:  # noqa: BLE001 - the network: try again while the lease holds
            continue
