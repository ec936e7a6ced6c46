"""Benchmark: the pipeline on a real two-node Ray cluster on this machine.

1. Draft generation (the ``generate_drafts`` stage, through ``RayRuntime``): the same shards
   (same seeds, byte-identical tars) on a one-node cluster (1 CPU) and on a two-node cluster
   (1 CPU per node, loopback addresses).
2. ``wsfm submit`` latency: from starting ``wsfm submit --follow`` to the job's first stage
   starting (the ``[wsfm] pretrain_draft started`` line arriving), for a job that runs that
   stage alone; the first submission uploads the working_dir, the next ones find it cached.

    .venv/bin/python -m benchmarks.cluster [--repeats 3]

Both nodes share this machine's cores (and its other users), so the two-node number measures
the overheads of a cluster (scheduling across raylets, a second object store), not more
hardware. Writes the ``cluster`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Read by Ray once, before it is imported: token auth on, and one token file for both
# clusters this process drives (tests/servers.py uses the file RAY_AUTH_TOKEN_PATH names).
os.environ.setdefault("RAY_AUTH_MODE", "token")
if not os.path.isfile(os.environ.get("RAY_AUTH_TOKEN_PATH", "")):
    import secrets

    _token = Path(tempfile.mkdtemp(prefix="wsfm-bench-token-")) / "auth_token"
    _token.write_text(secrets.token_hex(32))
    _token.chmod(0o600)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(_token)

from benchmarks.report import markdown_table, median, write_section
from tests.servers import ray_cluster
from wsfm.config import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
TOY2D = ROOT / "pipelines" / "toy2d.yaml"


def generation(cfg, draft_dir: Path, address: str, out: Path) -> tuple[float, list[str], set]:
    """Seconds of ``generate_drafts`` on the cluster at ``address``; the shards' sha256 and
    the nodes that made them."""
    import ray

    from wsfm.orchestrate.runtime import RayRuntime
    from wsfm.shards import read_manifest
    from wsfm.stages.base import StageContext
    from wsfm.stages.generate_drafts import generate_drafts

    ray.init(address=address, log_to_driver=False,
             runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
    try:
        out.mkdir(parents=True)
        runtime = RayRuntime(storage_path=str(out.parent / "ray"), run_name="bench")
        start = time.perf_counter()
        generate_drafts(StageContext(cfg, {"pretrain_draft": draft_dir}, out, runtime))
        seconds = time.perf_counter() - start
    finally:
        ray.shutdown()
    records = read_manifest(out)
    return seconds, [r.sha256 for r in records], {r.node for r in records}


def submit_latency(dashboard: str, home: Path, repeat: int) -> tuple[float, float]:
    """(seconds to the first stage's start line, seconds to the job's end) of one
    ``wsfm submit --follow`` of the smoke pipeline's first stage alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "wsfm.cli", "submit", str(TOY2D), "--profile", "smoke",
           "--only", "pretrain_draft", "--address", dashboard, "--home", str(home),
           "--submission-id", f"bench-submit-{repeat}-{int(time.time())}", "--follow"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT)
    first, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        if first is None and "[wsfm] pretrain_draft" in line and "started" in line:
            first = time.perf_counter() - start
    code = proc.wait(timeout=900)
    if code != 0 or first is None:
        raise RuntimeError(f"wsfm submit exited {code} (first stage seen: {first}); its "
                           "output ends:\n" + "".join(lines[-60:]))
    return first, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from wsfm.stages.base import StageContext
    from wsfm.stages.pretrain_draft import pretrain_draft

    cfg = load_pipeline(TOY2D)
    cfg = dataclasses.replace(cfg, shards=dataclasses.replace(cfg.shards, num_shards=4))
    rows, latency = [], []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wsfm-bench-cluster-") as tmp:
        work = Path(tmp)
        draft_dir = work / "draft"
        draft_dir.mkdir()
        pretrain_draft(StageContext(cfg, {}, draft_dir, None))
        shas = {}
        for label, ips in (("1 node, 1 CPU", ("127.0.0.2",)),
                           ("2 nodes, 1 CPU each", ("127.0.0.2", "127.0.0.3"))):
            with ray_cluster(work / f"ray-{len(ips)}", ips) as cluster:
                seconds = []
                for r in range(args.repeats):
                    s, sha, nodes = generation(cfg, draft_dir, cluster.address,
                                               work / f"shards-{len(ips)}-{r}")
                    seconds.append(s)
                    shas.setdefault(label, sha)
                drafts = cfg.shards.num_shards * cfg.shards.per_shard
                rows.append([label, len(nodes), f"{median(seconds):.1f}",
                             f"{drafts / median(seconds):,.0f}"])
                if len(ips) == 2:
                    for r in range(args.repeats):
                        latency.append(submit_latency(cluster.dashboard, work / "home", r))
    same = len(set(map(tuple, shas.values()))) == 1
    body = _report(cfg, rows, latency, same, load_start, args.repeats)
    print(body)
    command = ".venv/bin/python -m benchmarks.cluster" + (
        f" --repeats {args.repeats}" if args.repeats != 3 else "")
    write_section("cluster", "A two-node Ray cluster on this machine", command, body)
    return 0


def _report(cfg, rows, latency, same, load_start, repeats) -> str:
    sh = cfg.shards
    lat = markdown_table(["submission", "to first stage start (s)", "to job end (s)"],
                         [[f"{i + 1}" + (" (uploads the working_dir)" if i == 0 else ""),
                           f"{a:.1f}", f"{b:.1f}"] for i, (a, b) in enumerate(latency)])
    return "\n\n".join([
        (f"`generate_drafts` of `{cfg.name}` ({sh.num_shards} shards x {sh.per_shard:,} drafts, "
        f"pair {sh.pair}), median of {repeats}, on Ray clusters started by `tests/servers.py` "
        "(`ray start --block` per node, loopback addresses 127.0.0.2/.3, token auth on). "
        f"Same shards on both: {'yes, identical sha256' if same else 'NO, they differ'}."),
        markdown_table(["cluster", "nodes that made shards", "seconds", "drafts/s"], rows),
        ("Both nodes share this machine's cores: the second node adds no hardware, so this "
        "measures what running across two raylets costs, not a speed-up."),
        ("`wsfm submit ... --only pretrain_draft --follow` on the two-node cluster: "
        "from starting the command to the job's `[wsfm] pretrain_draft started` line (the "
        "client's start, the working_dir upload, the job's driver start, `ray.init`, the "
        "visibility check, the MLflow runs), and to the job's end."),
        lat,
        f"Load average at the start: {load_start:.2f} (other users of the machine).",
    ])


if __name__ == "__main__":
    sys.exit(main())
