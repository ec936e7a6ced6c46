"""What a process pays to get its data: the source read and decoded, or the prepared shards
read; written to the ``prepared-data`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.prepared [--rows 100000] [--images 2000] [--repeats 3]

Before the ``prepare_data`` stage every process that needed the samples (each stage's task,
each evaluation task, each training worker) ran the source's loader
(``wsfm.data.datasets.load_dataset``): a Parquet file parsed and checked, every PNG decoded
and resized, the glyphs rendered (or read from their cache). Now ``prepare_data`` runs the
loader once and the others read its shards (``wsfm.data.prepared.load_prepared``: each
shard's sha256 checked, then its blocks). Sources, made in a temporary folder:

- ``npy``: N rows of 64 float32 values;
- ``parquet``: the same N rows as a ``list<float>`` column in 4 files;
- ``image_folder``: M 32x32 RGB PNGs of noise;
- the built-in ``glyphs`` (32x32 renderings, per_glyph 16) and ``prose`` (64-character
  windows) tasks.

Each time is the median of ``--repeats`` runs in this process (the loaders' own caches, such
as the glyphs' rendering cache on disk, count as they would in a stage). The shards read are
checked to equal the loader's arrays, so the rows compare like with like.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from wsfm.benchmarks_md import markdown_table, median, write_section
from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset
from wsfm.data.prepared import SPLITS, load_prepared, write_prepared


def user_sources(folder: Path, rows: int, images: int, files: int = 4
                 ) -> list[tuple[str, DataConfig]]:
    """Users' sources written into ``folder``: ``rows`` 64-D float32 rows as one ``.npy``
    file and as ``files`` Parquet files, ``images`` 32x32 RGB PNGs of noise."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    x = np.random.default_rng(0).standard_normal((rows, 64)).astype(np.float32)
    np.save(folder / "rows.npy", x)
    (folder / "parquet").mkdir()
    for i, part in enumerate(np.array_split(x, files)):
        column = pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), 64)
        pq.write_table(pa.table({"x": column}), folder / "parquet" / f"part-{i}.parquet")
    (folder / "images").mkdir()
    rng = np.random.default_rng(1)
    for i in range(images):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / "images" / f"{i:06d}.png")
    return [(f"npy, {rows:,} x 64", DataConfig(kind="npy", path=str(folder / "rows.npy"))),
            (f"parquet, {rows:,} x 64, {files} files",
             DataConfig(kind="parquet", path=str(folder / "parquet"), column="x")),
            (f"image_folder, {images:,} 32x32 RGB PNGs",
             DataConfig(kind="image_folder", path=str(folder / "images"), image_size=[32, 32],
                        channels=3))]


def _sources(folder: Path, rows: int, images: int) -> list[tuple[str, DataConfig]]:
    return [*user_sources(folder, rows, images),
            ("glyphs (built-in, per_glyph 16)", DataConfig(kind="glyphs")),
            ("prose (built-in, 64-character windows)", DataConfig(kind="prose", max_len=64))]


def _timed(fn, repeats: int) -> tuple[float, object]:
    seconds, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return median(seconds), out


def measure(rows: int, images: int, repeats: int) -> list[list[str]]:
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, cfg in _sources(folder, rows, images):
            loader_s, data = _timed(lambda cfg=cfg: load_dataset(cfg), repeats)
            out = folder / f"prepared-{len(table)}"
            start = time.perf_counter()
            about = write_prepared(data, out)
            write_s = time.perf_counter() - start
            read_s, back = _timed(lambda out=out: load_prepared(out), repeats)
            for split in ("train", "test", "reference"):
                assert np.array_equal(getattr(back, split), getattr(data, split)), (name, split)
            size = sum(about["splits"][s]["bytes"] for s in SPLITS)
            table.append([name, f"{len(data.train) + len(data.test):,}", f"{size / 1e6:.1f}",
                          f"{loader_s:.2f}", f"{write_s:.2f}", f"{read_s:.2f}",
                          f"{loader_s / read_s:.1f}x"])
            print(f"[prepared] {table[-1]}", flush=True)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = measure(args.rows, args.images, args.repeats)
    body = "\n".join([
        "Seconds for one process to get the whole dataset (median of "
        f"{args.repeats}): the source's loader, as every stage task, evaluation task and "
        "training worker ran it before `prepare_data`; writing the shards, once per job in "
        "`prepare_data`; reading them back (every shard's sha256 checked), as each process "
        "does now. The arrays read back equal the loader's. MB: the shards of the three "
        "splits (train, held out, reference) on disk.",
        "",
        markdown_table(["source", "rows", "shards MB", "loader s", "write s", "read s",
                        "loader / read"], rows)])
    command = "python -m benchmarks.prepared" + "".join(
        f" --{k} {v}" for k, v, d in (("rows", args.rows, 100_000),
                                      ("images", args.images, 2000),
                                      ("repeats", args.repeats, 3)) if v != d)
    write_section("prepared-data", "Prepared data: the source's loader against the shards",
                  command, body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
