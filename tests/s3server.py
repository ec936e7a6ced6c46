"""A real S3-compatible server on 127.0.0.1 for tests: moto's standalone server, in its own
process, stopped by its pid whatever happens."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.servers import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_server(timeout: float = 60.0) -> Iterator[str]:
    """Yields the endpoint URL of a fresh, empty server."""
    pytest.importorskip("moto.server", reason='needs moto[server] (pip install "moto[server]")')
    port = free_port()
    log = tempfile.TemporaryFile()  # its request log: a pipe would fill up and stall it
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(
                        f"moto server did not start: {log.read()[-2000:]!r}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def make_bucket(endpoint: str, bucket: str) -> None:
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", access_key="testing",
                      secret_key="testing", allow_bucket_creation=True).create_dir(bucket)
