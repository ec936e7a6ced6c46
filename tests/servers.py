"""Real servers for tests, one launcher per kind: a multi-node Ray cluster on loopback
addresses, an MLflow tracking server (the project's ``mlflow/start-server.sh``), an MLflow
model server. (The S3 server is ``tests/s3server.py``.)

Each helper is a context manager that starts its processes, waits until they answer and, in
a ``finally``, stops exactly the processes it started (by their pid, never "all Ray on the
machine"), whatever happened in between.

Ray nodes run ``ray start --block`` in their own session (process group): every process of a
node (GCS, raylet, dashboard, workers) descends from that one ``ray start``, so stopping its
group stops the node. Each cluster has its own ``--temp-dir``: a ``ray.init()`` elsewhere on
the machine never joins it by accident (Ray looks up ``/tmp/ray/ray_current_cluster``).

Ray 2.60 turns token authentication on by default: every client (joining nodes, drivers,
the Jobs API) must send the token, hence ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH``
in :attr:`RayCluster.env`. ``ray start`` does not create a token, so each cluster brings its
own file (see :func:`ray_cluster`).
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MlflowServer", "RayCluster", "can_mask", "free_port", "mlflow_server", "model_server",
           "ray_cluster", "stop_process"]

BIN = Path(sys.executable).parent  # the venv's bin: ray, mlflow, wsfm
ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on at ``host`` now (bind to 0, read, close)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# A head node given SIGTERM took 34 s to exit on its own (a worker node 1 s); a test cluster
# needs no graceful stop (its folders are copied for the logs and removed), so after this
# many seconds its process group gets SIGKILL.
NODE_GRACE = 5.0


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
    token_path: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    root: Path = Path(".")  # where the nodes' logs go
    node_args: list[str] = field(default_factory=list)  # what every node is started with
    start_env: dict[str, str] = field(default_factory=dict)  # the nodes' environment
    resource: str = "node"
    node_temp_dirs: list[Path] = field(default_factory=list)  # those of added nodes
    taken: set[int] = field(default_factory=set)  # ports given to this cluster's servers

    @property
    def env(self) -> dict[str, str]:
        """Token auth on, with this cluster's token file (see :func:`ray_cluster`)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}

    def add_node(self, ip: str, timeout: float = 300.0) -> subprocess.Popen:
        """Join one more worker node on ``ip`` (the same CPUs as the others, custom resources
        ``{resource}_<index>`` and ``{resource}``); returns once it is alive.

        It gets a ``--temp-dir`` of its own, as a separate machine has: nodes that share one
        also share ``runtime_resources/``, and a node that joins a running job evicts the
        job's ``working_dir`` from it once its own workers are done with it (seen: the
        other nodes' pooled workers then lost their current directory)."""
        i = len(self.node_ips)
        res = f'{{"{self.resource}": 1, "{self.resource}_{i}": 1}}'
        args = [f"--address={self.address}", f"--node-ip-address={ip}", *self.node_args,
                f"--resources={res}", *_ray_ports(self.taken)]
        temp_dir = Path(tempfile.mkdtemp(prefix="wsfm-ray-", dir="/tmp"))
        self.node_temp_dirs.append(temp_dir)
        proc = _start_node(args, temp_dir, self.root / f"node-{i}.log", self.start_env)
        self.processes.append(proc)
        self.node_ips.append(ip)
        deadline = time.monotonic() + timeout
        while ip not in self.nodes().values():
            if proc.poll() is not None:
                raise RuntimeError(f"the node on {ip} exited with {proc.returncode} (logs in "
                                   f"{self.root / f'node-{i}.log'})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the node on {ip} did not join {self.address} in {timeout}s")
            time.sleep(2)
        return proc

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (its ``ray start --block`` process group: raylet, workers,
        agents), as a machine that dies would; only that group is touched."""
        proc = self.processes[index]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(proc.pid):
            raise RuntimeError(f"node {index} (pgid {proc.pid}) still has processes")

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


def cluster_port(taken: set[int]) -> int:
    """A port free on every address of this machine (bound on all of them to pick it: a
    node's servers on 127.0.0.3 collided with a port the head held on 127.0.0.2) and not
    yet given to this cluster (two picks in a row returned the same port once the first
    was released, and Ray refused the node); added to ``taken``."""
    while True:
        port = free_port("")
        if port not in taken:
            taken.add(port)
            return port


def _ray_ports(taken: set[int]) -> list[str]:
    """Explicit free ports for every server a node opens: several clusters (other tests,
    other users) share this machine, and Ray's fixed defaults would collide. ``taken``: the
    ports already given to this cluster (Ray refuses a worker port range that holds one of
    them); the ones picked here are added to it."""
    names = ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--runtime-env-agent-port", "--dashboard-agent-grpc-port",
             "--dashboard-agent-listen-port")
    args = [f"{name}={cluster_port(taken)}" for name in names]
    # Worker ports: a small range above a free port (workers bind lazily, one each), clear of
    # every port this cluster's servers use.
    first = min(free_port(""), 60000)
    while any(first <= port <= first + 200 for port in taken):
        first = min(free_port(""), 60000)
    taken.update(range(first, first + 201))
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
        try:  # bounded: a probe of a head that died hangs; the node's exit is checked above
            out = subprocess.run([sys.executable, "-c", probe, address], env=env, text=True,
                                 capture_output=True, timeout=min(timeout, 60))
        except subprocess.TimeoutExpired:
            continue
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
    # A token file: `ray start` with token auth does not create one, and a fresh machine has
    # no ~/.ray/auth_token. The caller's RAY_AUTH_TOKEN_PATH when that file exists (a process
    # that drives several clusters: Ray reads the token once), else one of its own (256
    # random bits, as Ray's own generator makes them).
    given = (extra_env or {}).get("RAY_AUTH_TOKEN_PATH") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    token = Path(given) if given and Path(given).is_file() else temp_dir / "auth_token"
    if not token.is_file():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    head = ips[0]
    taken: set[int] = set()
    port, dash, client = cluster_port(taken), cluster_port(taken), cluster_port(taken)
    cluster = RayCluster(f"{head}:{port}", f"http://{head}:{dash}", temp_dir, list(ips), token,
                         root=root, resource=resource, taken=taken,
                         node_args=[f"--num-cpus={num_cpus}", "--num-gpus=0",
                                    f"--object-store-memory={400 * 2**20}"])  # small: 2 cores
    env = {**os.environ, **cluster.env, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           **(extra_env or {})}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN", None)
    cluster.start_env = env
    try:
        for i, ip in enumerate(ips):
            res = f'{{"{resource}": 1, "{resource}_{i}": 1}}'
            common = [f"--node-ip-address={ip}", *cluster.node_args,
                      f"--resources={res}", *_ray_ports(cluster.taken)]
            if i == 0:
                args = ["--head", f"--port={port}", f"--dashboard-host={head}",
                        f"--dashboard-port={dash}", "--include-dashboard=true",
                        f"--ray-client-server-port={client}", *common]
            else:
                args = [f"--address={cluster.address}", *common]
            # Each node its own temp dir, as separate machines have: nodes sharing one share
            # runtime_resources/, and one node's agent then deleted a job's working_dir that
            # another node's job driver was still importing from (ModuleNotFoundError).
            node_tmp = temp_dir
            if i > 0:
                node_tmp = Path(tempfile.mkdtemp(prefix="wsfm-ray-", dir="/tmp"))
                cluster.node_temp_dirs.append(node_tmp)
            cluster.processes.append(_start_node(args, node_tmp, root / f"node-{i}.log", env,
                                                 (masks or {}).get(i, ())))
            if i == 0:
                _wait_nodes(cluster.address, 1, env, temp_dir, cluster.processes, timeout)
        _wait_nodes(cluster.address, len(ips), env, temp_dir, cluster.processes, timeout)
        _wait_http(f"{cluster.dashboard}/api/version", timeout)
        yield cluster
    finally:
        for proc in reversed(cluster.processes):  # workers first (added ones too), head last
            stop_process(proc, timeout=NODE_GRACE)
        for folder, name in ((temp_dir, "ray-tmp"), *((d, f"ray-tmp-{d.name}")
                                                        for d in cluster.node_temp_dirs)):
            try:  # keep the logs with the test's files
                shutil.copytree(folder, root / name, dirs_exist_ok=True, symlinks=True,
                                ignore=shutil.ignore_patterns("sockets", "runtime_resources",
                                                              "auth_token"))
            except (shutil.Error, OSError):
                pass
            shutil.rmtree(folder, ignore_errors=True)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    """Until ``url`` answers at all (any HTTP status: 401 means the server is up); fails at
    once, with the tail of ``log``, when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {tail}")
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
    """A running tracking server: ``uri`` (http://127.0.0.1:PORT), its folder, and the admin
    account when it was started with basic auth (``username`` empty otherwise)."""

    uri: str
    home: Path
    log: Path
    username: str = ""
    password: str = ""

    def env(self, password: str | None = None) -> dict[str, str]:
        """A client's environment for this server (``password`` overrides the right one)."""
        env = {"MLFLOW_TRACKING_URI": self.uri}
        if self.username:
            env.update(MLFLOW_TRACKING_USERNAME=self.username,
                       MLFLOW_TRACKING_PASSWORD=self.password if password is None else password)
        return env


def _mlflow_env() -> dict[str, str]:
    """No MLflow settings of this process; this venv's scripts (uvicorn, gunicorn) first on
    PATH, as the servers start them by name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}


@contextmanager
def _serve(cmd: list[str], env: dict[str, str], log: Path, probe: str,
           timeout: float) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group, wait until ``probe`` answers, stop it after."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_http(probe, timeout, proc, log)
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def mlflow_server(root: Path, *, auth: bool = False, port: int | None = None,
                  timeout: float = 180.0) -> Iterator[MlflowServer]:
    """The project's own ``mlflow/start-server.sh`` on 127.0.0.1 (SQLite store and artifacts
    under ``root``; with ``auth``, basic auth and an admin password made here). The same
    ``root`` and ``port`` again: the same server back, its store and artifacts kept."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    password = "pw-" + secrets.token_urlsafe(18) if auth else ""
    server = MlflowServer(f"http://127.0.0.1:{port}", root, root / "mlflow-server.log",
                          "admin" if auth else "", password)
    env = {**_mlflow_env(), "PORT": str(port), "HOST": "127.0.0.1",
           "WSFM_SERVER_HOME": str(root), "MLFLOW_BIN": str(BIN / "mlflow"),
           **({"MLFLOW_AUTH_ADMIN_PASSWORD": password} if auth else {})}
    cmd = ["bash", str(ROOT / "mlflow" / "start-server.sh"), *(["--auth"] if auth else []),
           "--workers", "1"]
    with _serve(cmd, env, server.log, f"{server.uri}/health", timeout):
        yield server


@contextmanager
def model_server(model_uri: str, env: dict[str, str], log: Path,
                 timeout: float = 240.0) -> Iterator[str]:
    """``mlflow models serve`` for ``model_uri`` (``env`` names the tracking store); yields
    the invocations URL."""
    port = free_port()
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    url = f"http://127.0.0.1:{port}"
    with _serve(cmd, {**_mlflow_env(), **env}, log, f"{url}/ping", timeout):
        yield f"{url}/invocations"
