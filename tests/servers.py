"""Real servers for tests: a multi-node Ray cluster on loopback addresses, an MLflow server.

Each helper is a context manager that starts its processes, waits until they answer and, in
a ``finally``, stops exactly the processes it started (by their pid, never "all Ray on the
machine"), whatever happened in between.

Ray nodes run ``ray start --block`` in their own session (process group): every process of a
node (GCS, raylet, dashboard, workers) descends from that one ``ray start``, so stopping its
group stops the node. Each cluster has its own ``--temp-dir``: a ``ray.init()`` elsewhere on
the machine never joins it by accident (Ray looks up ``/tmp/ray/ray_current_cluster``).

Ray 2.60 turns token authentication on by default: the head writes its token to
``~/.ray/auth_token`` and every client (joining nodes, drivers, the Jobs API) must send it,
hence ``RAY_AUTH_MODE=token`` in :attr:`RayCluster.env`.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MlflowServer", "RayCluster", "can_mask", "free_port", "mlflow_server", "ray_cluster",
           "stop_process"]

BIN = Path(sys.executable).parent  # the venv's bin: ray, mlflow, wsfm


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on at ``host`` now (bind to 0, read, close)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Stop ``proc`` and its process group (it was started with ``start_new_session``):
    SIGTERM, then SIGKILL after ``timeout``. Only this group is touched."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader has gone; give its group a moment, then make sure nothing lingers.
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(proc.pid):
            time.sleep(0.2)
        if not _group_alive(proc.pid):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@dataclass
class RayCluster:
    """A running local cluster. ``address``: the GCS (``ip:port``) that nodes and drivers
    join; ``dashboard``: the Jobs API URL; ``env``: what a client's environment needs."""

    address: str
    dashboard: str
    temp_dir: Path
    node_ips: list[str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Token auth on, with this cluster's own token (see :func:`ray_cluster`)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.temp_dir / "auth_token")}

    def nodes(self) -> dict[str, str]:
        """``{node id: address}`` of the alive nodes (asked through a fresh driver)."""
        code = ("import json, ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                "print(json.dumps({n['NodeID']: n['NodeManagerAddress'] for n in ray.nodes() "
                "if n['Alive']}))")
        out = subprocess.run([sys.executable, "-c", code, self.address], text=True,
                             capture_output=True, timeout=300,
                             env={**os.environ, **self.env})
        if out.returncode != 0:
            raise RuntimeError(f"cannot list the nodes of {self.address}: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def _ray_ports(ip: str) -> list[str]:
    """Explicit free ports for every server a node opens: several clusters (other tests,
    other users) share this machine, and Ray's fixed defaults would collide."""
    low = free_port(ip)
    ports = {"--node-manager-port": free_port(ip), "--object-manager-port": free_port(ip),
             "--metrics-export-port": free_port(ip), "--runtime-env-agent-port": free_port(ip),
             "--dashboard-agent-grpc-port": free_port(ip),
             "--dashboard-agent-listen-port": free_port(ip)}
    args = [f"{k}={v}" for k, v in ports.items()]
    # Worker ports: a small range above a free port (workers bind lazily, one each).
    first = min(low, 60000)
    return args + [f"--min-worker-port={first}", f"--max-worker-port={first + 200}"]


def can_mask() -> bool:
    """Whether this process may start a node in its own mount namespace (root, or
    CAP_SYS_ADMIN): what :func:`ray_cluster`'s ``masks`` need."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs",
                            "none", "/mnt"], capture_output=True)
    return probe.returncode == 0


def _start_node(args: list[str], temp_dir: Path, log: Path, env: dict[str, str],
                masks: Sequence[Path] = ()) -> subprocess.Popen:
    """``ray start --block``; with ``masks``, in a private mount namespace where an empty
    tmpfs covers each of those folders: that node really does not see what is in them."""
    prefix: list[str] = []
    if masks:
        mounts = " && ".join(f"mount -t tmpfs none {shlex.quote(str(m))}" for m in masks)
        prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                  f'{mounts} && exec "$@"', "sh"]
    with open(log, "ab") as out:
        return subprocess.Popen([*prefix, str(BIN / "ray"), "start", "--block",
                                 "--disable-usage-stats", f"--temp-dir={temp_dir}", *args],
                                stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


def _wait_nodes(address: str, count: int, env: dict[str, str], temp_dir: Path,
                procs: list[subprocess.Popen], timeout: float) -> None:
    """Until ``count`` nodes are alive (asked through a fresh driver process)."""
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a ray node exited with {proc.returncode} (logs in "
                                   f"{temp_dir})")
        out = subprocess.run([sys.executable, "-c", probe, address], env=env, text=True,
                             capture_output=True, timeout=timeout)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(2)
    raise TimeoutError(f"{count} ray nodes did not come up at {address} within {timeout}s")


@contextmanager
def ray_cluster(root: Path, ips: tuple[str, ...] = ("127.0.0.2", "127.0.0.3"), *,
                num_cpus: int = 1, resource: str = "node", extra_env: dict[str, str] | None = None,
                masks: Mapping[int, Sequence[Path]] | None = None,
                timeout: float = 300.0) -> Iterator[RayCluster]:
    """A head on ``ips[0]`` and one worker node per further address, each with ``num_cpus``
    CPUs and ``{resource}_<i>: 1`` plus ``{resource}: 1`` as custom resources. The processes
    get ``PATH`` with this venv's ``bin`` first (a job's ``wsfm run`` entrypoint needs it).
    ``masks[i]``: folders that node ``i`` must not see (see :func:`_start_node`)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # Short: Ray's unix sockets live under it, and their paths may not exceed 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="wsfm-ray-", dir="/tmp"))
    # Its own token: `ray start` with token auth does not create one, and a fresh machine has
    # no ~/.ray/auth_token (256 random bits, as Ray's own generator makes them).
    token = temp_dir / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    head = ips[0]
    port, dash = free_port(head), free_port(head)
    cluster = RayCluster(f"{head}:{port}", f"http://{head}:{dash}", temp_dir, list(ips))
    env = {**os.environ, **cluster.env, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           **(extra_env or {})}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN", None)
    try:
        for i, ip in enumerate(ips):
            res = f'{{"{resource}": 1, "{resource}_{i}": 1}}'
            common = [f"--node-ip-address={ip}", f"--num-cpus={num_cpus}", "--num-gpus=0",
                      f"--object-store-memory={400 * 2**20}",  # small: shared 2-core box
                      f"--resources={res}", *_ray_ports(ip)]
            if i == 0:
                args = ["--head", f"--port={port}", f"--dashboard-host={head}",
                        f"--dashboard-port={dash}", "--include-dashboard=true",
                        f"--ray-client-server-port={free_port(head)}", *common]
            else:
                args = [f"--address={cluster.address}", *common]
            cluster.processes.append(_start_node(args, temp_dir, root / f"node-{i}.log", env,
                                                 (masks or {}).get(i, ())))
            if i == 0:
                _wait_nodes(cluster.address, 1, env, temp_dir, cluster.processes, timeout)
        _wait_nodes(cluster.address, len(ips), env, temp_dir, cluster.processes, timeout)
        _wait_http(f"{cluster.dashboard}/api/version", timeout)
        yield cluster
    finally:
        for proc in reversed(cluster.processes):  # workers first, then the head
            stop_process(proc)
        try:  # keep the logs with the test's files
            shutil.copytree(temp_dir, root / "ray-tmp", dirs_exist_ok=True, symlinks=True,
                            ignore=shutil.ignore_patterns("sockets", "runtime_resources",
                                                          "auth_token"))
        except (shutil.Error, OSError):
            pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_http(url: str, timeout: float) -> None:
    """Until ``url`` answers at all (any HTTP status: 401 means the server is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=10).close()
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass(frozen=True)
class MlflowServer:
    uri: str  # http://127.0.0.1:PORT
    backend: str  # sqlite:///...
    artifacts: Path


@contextmanager
def mlflow_server(root: Path, *, host: str = "127.0.0.1", timeout: float = 180.0
                  ) -> Iterator[MlflowServer]:
    """An MLflow tracking server (SQLite backend, artifacts proxied into a local folder)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    server = MlflowServer(f"http://{host}:{port}", f"sqlite:///{root / 'mlflow.db'}",
                          root / "mlartifacts")
    with ExitStack() as stack:
        log = stack.enter_context(open(root / "mlflow-server.log", "ab"))
        proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", host, "--port",
                                 str(port), "--backend-store-uri", server.backend,
                                 "--artifacts-destination", str(server.artifacts),
                                 "--workers", "1"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            _wait_http(f"{server.uri}/health", timeout)
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}: see "
                                   f"{root / 'mlflow-server.log'}")
            yield server
        finally:
            stop_process(proc)
