"""``prepare_data``'s throughput, its parts read on 1 and on 2 Ray workers; written to the
``prepare-parallel`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.prepare_parallel [--rows 1000000] [--images 20000]
                                                     [--repeats 3]

A keyed source is written into the prepared dataset by parts, one Ray task per part
(``wsfm.data.partitioned.prepare_keyed`` with ``RayRuntime.map``, as the stage runs it):
a Parquet file each, 64 MB of an ``npy`` array's rows, 4,096 images of a folder. Sources,
made in a temporary folder: ``npy`` (N rows of 64 float32 values), ``parquet`` (the same rows
in 8 files) and ``image_folder`` (M 32x32 RGB PNGs of noise). For each number of workers a
local Ray runtime is started with that many CPUs, warmed up with one map, and each source is
prepared ``--repeats`` times; the time is the median, from the call to the written
``dataset.json`` (the first block read by the stage, the parts, the manifests, the reference
read back). The files written on 1 and on 2 workers are checked to be the same, byte for
byte.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.prepared import user_sources
from wsfm.benchmarks_md import markdown_table, median, write_section
from wsfm.config import DataConfig
from wsfm.data.partitioned import PARTS, prepare_keyed, source_parts
from wsfm.data.prepared import SPLITS

WORKERS = (1, 2)


def _digest(folder: Path) -> str:
    """One sha256 over every file written but the parts' timings (``parts.json``)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != PARTS:
            h.update(str(p.relative_to(folder)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _noop(item: int) -> int:
    return item


def _on_workers(workers: int, sources: list[tuple[str, DataConfig]], folder: Path,
                repeats: int) -> dict[str, tuple[float, int, float, str]]:
    """Per source: (median seconds, rows, MB written, digest of the files)."""
    import ray

    from wsfm.orchestrate.runtime import RayRuntime

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        runtime = RayRuntime(storage_path=str(folder / "ray"), run_name="prepare-parallel")
        runtime.map(_noop, list(range(2 * workers)))  # start the workers before timing
        out: dict[str, tuple[float, int, float, str]] = {}
        for name, cfg in sources:
            seconds, digest, about = [], "", {}
            for r in range(repeats):
                target = folder / f"out-{workers}-{r}"
                start = time.perf_counter()
                about = prepare_keyed(cfg, target, run=runtime.map)
                seconds.append(time.perf_counter() - start)
                digest = _digest(target)
                shutil.rmtree(target)
            rows = about["splits"]["train"]["rows"] + about["splits"]["test"]["rows"]
            size = sum(about["splits"][s]["bytes"] for s in SPLITS) / 1e6
            out[name] = (median(seconds), rows, size, digest)
            print(f"[prepare_parallel] {workers} worker(s), {name}: {seconds}", flush=True)
        return out
    finally:
        ray.shutdown()


def measure(rows: int, images: int, repeats: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = user_sources(folder, rows, images, files=8)
        parts = {name: len(source_parts(cfg)) for name, cfg in sources}
        runs = {w: _on_workers(w, sources, folder, repeats) for w in WORKERS}
    table = []
    for name, _ in sources:
        (one, n, size, a), (two, _, _, b) = runs[1][name], runs[2][name]
        assert a == b, f"{name}: the files differ between 1 and 2 workers"
        table.append([name, str(parts[name]), f"{n:,}", f"{size:.0f}", f"{one:.2f}",
                      f"{two:.2f}", f"{n / one:,.0f}", f"{n / two:,.0f}",
                      f"{size / one:.0f}", f"{size / two:.0f}", f"{one / two:.2f}x"])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = measure(args.rows, args.images, args.repeats)
    body = "\n".join([
        f"Seconds to prepare each source (median of {args.repeats}), its parts read by one "
        "Ray task each on a local runtime of 1 and of 2 CPUs; rows/s counts the rows read "
        "(training and held out), MB/s the shards written (the three splits). The files "
        "written on 1 and on 2 workers are the same, byte for byte.",
        "",
        markdown_table(["source", "parts", "rows", "shards MB", "1 worker s", "2 workers s",
                        "rows/s (1)", "rows/s (2)", "MB/s (1)", "MB/s (2)", "speed-up"],
                       rows)])
    command = "python -m benchmarks.prepare_parallel" + "".join(
        f" --{k} {v}" for k, v, d in (("rows", args.rows, 1_000_000),
                                      ("images", args.images, 20_000),
                                      ("repeats", args.repeats, 3)) if v != d)
    write_section("prepare-parallel", "prepare_data by parts: 1 against 2 workers", command,
                  body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
