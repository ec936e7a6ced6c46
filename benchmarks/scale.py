"""The lean job as the data grows: peak memory per process and wall time, written to the
``scale`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.scale [--sizes 100000,1000000] [--steps 3000]

Issue 28 asks that no process hold the whole dataset, so that peak memory stays flat as the
data grows 10x. This measures where the job stands: for each size N it writes N synthetic
64-D rows (the mixture of ``benchmarks.nearest``) as one ``.npy`` file, runs the lean job of
``pipelines/toy2d.yaml`` on it (``data: {kind: npy}``; the same draft, network and budget;
``--steps`` optimizer steps) with ``wsfm run`` in a subprocess from an empty home, and samples
every 0.5 s the resident memory of the driver and of each process under it (``psutil``),
grouped by what the process runs: Ray names a task's process after the task (``ray::stage:X``
for a stage, the function's name for a fan-out task, ``RayTrainWorker`` for training).
Reported: each group's peak RSS, the sum over all processes at its peak, the wall time, and
whether the job finished. One run per size.

``--source parquet`` writes the same rows as 4 Parquet files (``data: {kind: parquet}``), a
source that ``prepare_data`` streams and the driver checks by its first batch only; its
numbers go to the ``scale-parquet`` section. RSS counts the pages of memory-mapped files that
a process has touched (the training workers map the training shards), so it overstates what
the process holds on its own.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psutil
import yaml

from benchmarks.nearest import DIM, mixture
from wsfm.benchmarks_md import markdown_table, write_section

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("driver", "stage tasks", "fan-out tasks", "training workers", "Ray itself")


def write_rows(path: Path, n: int) -> None:
    """``n`` rows of the 64-D mixture as one float32 ``.npy`` file, a million at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM))
    for s in range(0, n, 1_000_000):
        m = min(1_000_000, n - s)
        out[s:s + m] = mixture(m, seed=10 + s // 1_000_000)
    out.flush()
    del out


def write_parquet(folder: Path, n: int) -> None:
    """The rows of :func:`write_rows` as 4 Parquet files of a fixed-size list column ``x``,
    a million rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    bounds = np.linspace(0, n, 5).astype(int)
    for f in range(4):
        with pq.ParquetWriter(folder / f"part-{f}.parquet",
                              pa.schema([("x", pa.list_(pa.float32(), DIM))])) as writer:
            for s in range(bounds[f], bounds[f + 1], 1_000_000):
                m = min(1_000_000, bounds[f + 1] - s)
                x = mixture(m, seed=10 + s // 1_000_000 + 1000 * f)
                writer.write_table(pa.table({"x": pa.FixedSizeListArray.from_arrays(
                    pa.array(x.reshape(-1)), DIM)}))


def pipeline(path: Path, data: Path, n: int, steps: int, source: str = "npy") -> None:
    cfg = yaml.safe_load((ROOT / "pipelines" / "toy2d.yaml").read_text())
    cfg.pop("profiles", None)
    cfg.pop("bench", None)
    cfg.update(name=f"scale-{n}", task="scale")
    cfg["data"] = ({"kind": "npy", "path": str(data)} if source == "npy"
                   else {"kind": "parquet", "path": str(data), "column": "x"})
    cfg["train"]["steps"] = steps
    path.write_text(yaml.safe_dump(cfg))


def group(proc: psutil.Process, driver: int) -> str:
    if proc.pid == driver:
        return "driver"
    title = " ".join(proc.cmdline()[:1])
    if title.startswith("ray::stage:"):
        return "stage tasks"
    if "RayTrainWorker" in title or "TrainController" in title:
        return "training workers"
    if title.startswith("ray::") and "IDLE" not in title:
        return "fan-out tasks"
    return "Ray itself"


class Sampler(threading.Thread):
    """Peak RSS (MB) per group and of the whole tree, sampled every 0.5 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak: dict[str, float] = defaultdict(float)
        self.where: dict[str, str] = {}
        self.total = 0.0

    def run(self) -> None:
        root = psutil.Process(self.pid)
        while not self.stop.wait(0.5):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            total = 0.0
            for p in procs:
                try:
                    rss, title = p.memory_info().rss / 1e6, " ".join(p.cmdline()[:1])
                    g = group(p, self.pid)
                except psutil.Error:
                    continue
                total += rss
                if rss > self.peak[g]:
                    self.peak[g], self.where[g] = rss, re.sub(r"\s+", " ", title)[:40]
            self.total = max(self.total, total)


def run_job(yaml_path: Path, home: Path) -> tuple[bool, float, Sampler, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "WSFM_FAULT")}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wsfm.cli", "run", str(yaml_path),
                             "--home", str(home)], env=env, cwd=home.parent, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sampler = Sampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop.set()
    sampler.join()
    return proc.returncode == 0, time.perf_counter() - start, sampler, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--source", choices=("npy", "parquet"), default="npy")
    args = parser.parse_args(argv)
    rows: list[list[str]] = []
    notes: list[str] = []
    body = ""
    with tempfile.TemporaryDirectory(prefix="wsfm-scale-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            cfg = Path(tmp) / f"scale-{n}.yaml"
            if args.source == "npy":
                data = Path(tmp) / f"rows-{n}.npy"
                write_rows(data, n)
            else:
                data = Path(tmp) / f"rows-{n}"
                write_parquet(data, n)
            size = sum(f.stat().st_size for f in ([data] if data.is_file()
                                                  else data.iterdir()))
            pipeline(cfg, data, n, args.steps, args.source)
            ok, seconds, s, out = run_job(cfg, Path(tmp) / f"home-{n}")
            if not ok:
                tail = [line for line in out.splitlines() if line.strip()][-3:]
                notes.append(f"- N = {n:,} failed: " + " / ".join(tail)[:600])
            rows.append([f"{n:,}", f"{size / 1e6:,.0f}",
                         "yes" if ok else "no", f"{seconds:.0f}",
                         *(f"{s.peak[g]:,.0f}" + (f" ({s.where[g]})" if g in (
                             "stage tasks", "fan-out tasks") and g in s.where else "")
                           for g in GROUPS), f"{s.total:,.0f}"])
            print(f"[scale] {rows[-1]}", flush=True)
            shutil.rmtree(data) if data.is_dir() else data.unlink()
            body = report(rows, notes, args)  # after every size: a later one may not finish
    print(body)
    return 0


def report(rows: list[list[str]], notes: list[str], args: argparse.Namespace) -> str:
    body = "\n".join([
        f"The lean job of `pipelines/toy2d.yaml` ({args.steps} steps) on N synthetic 64-D "
        f"rows (`data: {{kind: {args.source}}}`), from an empty home; peak resident memory "
        "in MB per "
        "process group, sampled every 0.5 s (the process that reached it in brackets), and "
        "the peak of the sum over every process of the job.", "",
        markdown_table(["N", "data MB", "finished", "wall s", *(f"{g} peak MB" for g in GROUPS),
                        "all processes peak MB"], rows), "", *notes])
    command = "python -m benchmarks.scale" + (
        f" --sizes {args.sizes}" if args.sizes != "100000,1000000" else "") + (
        f" --steps {args.steps}" if args.steps != 3000 else "") + (
        f" --source {args.source}" if args.source != "npy" else "")
    if args.source == "npy":
        write_section("scale", "The lean job as the data grows: memory per process", command,
                      body)
    else:
        write_section(f"scale-{args.source}", "The lean job as the data grows: memory per "
                      f"process ({args.source}, streamed)", command, body)
    return body


if __name__ == "__main__":
    raise SystemExit(main())
