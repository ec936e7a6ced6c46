"""Real MLflow servers for tests, each on 127.0.0.1 at a free port and stopped (its whole
process group, by its own pid) when the block ends.

- :func:`tracking_server`: ``mlflow/start-server.sh`` (optionally ``--auth``: basic auth
  with an admin account whose password is made here) on a fresh folder.
- :func:`model_server`: ``mlflow models serve -m MODEL --env-manager local``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import ROOT

__all__ = ["TrackingServer", "free_port", "model_server", "tracking_server"]


@dataclass(frozen=True)
class TrackingServer:
    url: str
    home: Path
    username: str
    password: str
    log: Path

    def env(self, password: str | None = None) -> dict[str, str]:
        """Client environment for this server (``password`` overrides the right one)."""
        return {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_USERNAME": self.username,
                "MLFLOW_TRACKING_PASSWORD": self.password if password is None else password}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: "
                               f"{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"no answer from {url} in {timeout:.0f} s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and its workers: the process group that ``proc`` leads."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _clean_env() -> dict[str, str]:
    """No MLflow settings of this process; this venv's scripts (uvicorn, gunicorn) first on
    PATH, as the servers start them by name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}


@contextmanager
def tracking_server(home: Path, *, auth: bool = True,
                    timeout: float = 180) -> Iterator[TrackingServer]:
    home.mkdir(parents=True, exist_ok=True)
    port, password = free_port(), "pw-" + secrets.token_urlsafe(18)
    log = home / "server.log"
    env = {**_clean_env(), "PORT": str(port), "HOST": "127.0.0.1",
           "WSFM_SERVER_HOME": str(home), "MLFLOW_BIN": str(Path(sys.executable).parent / "mlflow"),
           "MLFLOW_AUTH_ADMIN_PASSWORD": password}
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", str(ROOT / "mlflow" / "start-server.sh"),
                                 *(["--auth"] if auth else []), "--workers", "1"],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/health", proc, log, timeout)
        yield TrackingServer(url, home, "admin", password, log)
    finally:
        _stop(proc)


@contextmanager
def model_server(model_uri: str, env: dict[str, str], log: Path,
                 timeout: float = 240) -> Iterator[str]:
    """``mlflow models serve`` for ``model_uri`` (``env`` names the tracking store); yields
    the invocations URL."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            env={**_clean_env(), **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/ping", proc, log, timeout)
        yield f"{url}/invocations"
    finally:
        _stop(proc)
