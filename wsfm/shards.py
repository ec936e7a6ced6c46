"""Draft shards: WebDataset tar files, one stats record per shard, one Parquet manifest.

Layout of a shard folder::

    shard-000000.tar     records keyed ``s000000x000000042`` (unique across shards, dot-free);
                         each holds ``x.npy``, a block of drafts, (rows, D) float32 (int64
                         character codes for text), and with a
                         precomputed coupling ``idx.npy``, their partners' rows in the training
                         split, int64 (rows,)
    shard-000000.json    the shard's stats record (a :class:`ShardRecord`), written last
    manifest.parquet     one row per shard, assembled from the stats records

A tar is written under a temporary name, fsynced and renamed into place, and only then is its
stats record written (also atomically): a shard with a record whose size and sha256 match is
complete, anything else is redone. Tars are byte-reproducible (fixed mtime), so a resumed run
writes exactly the shards an uninterrupted one does. The shards are plain WebDataset tars:
``webdataset.WebDataset`` reads them without this module. Drafts are stored in blocks of rows:
a tar member costs at least 1 KiB of headers and padding, far more than one small vector.

Reading for training is :mod:`wsfm.shard_reader`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "BLOCK",
    "MANIFEST",
    "ShardRecord",
    "ShardWriter",
    "ShardsDamaged",
    "check_members",
    "shard_bytes",
    "check_shard",
    "member_problem",
    "read_manifest",
    "read_stats",
    "shard_key",
    "shard_name",
    "sha256_file",
    "stats_name",
    "verify_shards",
    "write_manifest",
    "write_stats",
]

MANIFEST = "manifest.parquet"
BLOCK = 256  # drafts per tar record (default)


@dataclass(frozen=True)
class ShardRecord:
    """One shard's stats record and manifest row."""

    shard: str  # file name, e.g. shard-000003.tar
    count: int  # drafts
    bytes: int
    sha256: str
    seed: int
    seconds: float = 0.0  # wall time to make it (not reproducible, nor is node)
    draft_sha256: str = ""  # sha256 of the draft model file the shard was sampled from
    pair: str = "none"  # precomputed coupling: none, nearest, minibatch_ot (idx.npy present)
    node: str = ""  # Ray node id of the task that wrote it ("" outside Ray; not reproducible)


_SCHEMA = pa.schema([("shard", pa.string()), ("count", pa.int64()), ("bytes", pa.int64()),
                     ("sha256", pa.string()), ("seed", pa.int64()), ("seconds", pa.float64()),
                     ("draft_sha256", pa.string()), ("pair", pa.string()),
                     ("node", pa.string())])


class ShardsDamaged(RuntimeError):
    """Shards differ from their manifest or hold something refused; the message names each."""


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def stats_name(index: int) -> str:
    return f"shard-{index:06d}.json"


def shard_key(shard: int, index: int) -> str:
    return f"s{shard:06d}x{index:09d}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """Writes shard ``index`` block by block under a temporary name; :meth:`commit` renames
    it into place. Used as a context manager, an exception removes the temporary file.

    The tar is written member by member (what ``webdataset.TarWriter`` writes, at a fraction
    of its per-record cost), hashed as it goes."""

    def __init__(self, folder: Path, index: int):
        self.index = index
        self.final = Path(folder) / shard_name(index)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}")
        self._fh = open(self.tmp, "wb")
        self._sha = hashlib.sha256()
        self.size = 0
        self.count = 0
        self._blocks = 0

    def write(self, x: np.ndarray, idx: np.ndarray | None = None,
              y: np.ndarray | None = None) -> None:
        """One record: drafts ``x`` (rows, D) and optionally partner indices ``idx`` (rows,);
        data shards (``wsfm.data.prepared``) hold rows ``x`` and their labels ``y`` (rows,)."""
        key = shard_key(self.index, self._blocks)
        for name, column in (("idx", idx), ("y", y)):
            if column is not None:
                assert column.shape == (len(x),), (name, column.shape, x.shape)
                self._member(f"{key}.{name}.npy",
                             _npy(np.ascontiguousarray(column, dtype=np.int64)))
        dtype = np.int64 if x.dtype.kind in "iu" else np.float32
        self._member(f"{key}.x.npy", _npy(np.ascontiguousarray(x, dtype=dtype)))
        self._blocks += 1
        self.count += len(x)

    def _member(self, name: str, payload: bytes) -> None:
        pad = b"\0" * _padding(len(payload))
        self._emit(_tar_header(name, len(payload)) + payload + pad)

    def _emit(self, data: bytes) -> None:
        self._sha.update(data)
        self._fh.write(data)
        self.size += len(data)

    def commit(self) -> tuple[int, str]:
        """Finish the tar, fsync it, rename it into place; returns its (bytes, sha256)."""
        self._emit(b"\0" * (_tar_end(self.size) - self.size))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.final)
        return self.size, self._sha.hexdigest()

    def abort(self) -> None:
        self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            self.abort()


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uname, info.gname = size, 0o444, "bigdata", "bigdata"
    info.mtime = 0  # fixed: the bytes, hence the sha256, are a function of the drafts alone
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> int:
    """Zero bytes after a member of ``size`` bytes, to the next whole tar block."""
    return -size % tarfile.BLOCKSIZE


def _tar_end(size: int) -> int:
    """The archive's size once two zero blocks end it and it is padded to a whole record."""
    end = size + 2 * tarfile.BLOCKSIZE
    return end + (-end % tarfile.RECORDSIZE)


def shard_bytes(count: int, dim: int, *, dtype: np.dtype | type = np.float32,
                paired: bool = False, block: int = BLOCK, index: int = 0) -> int:
    """The size of the tar :class:`ShardWriter` writes for ``count`` drafts of ``dim``
    values (``dtype``: float32, or int64 codes for text) in records of ``block`` rows, with
    partner indices when ``paired``: known before a draft is sampled, so a stage can check
    the free space first (``wsfm.space``)."""
    dtype = np.dtype(np.int64 if np.dtype(dtype).kind in "iu" else np.float32)

    def member(name: str, shape: tuple[int, ...], kind: np.dtype) -> int:
        size = len(_npy_header(kind, shape)) + int(np.prod(shape)) * kind.itemsize
        return len(_tar_header(name, size)) + size + _padding(size)

    def record(rows: int, number: int) -> int:
        key = shard_key(index, number)
        idx = member(f"{key}.idx.npy", (rows,), np.dtype(np.int64)) if paired else 0
        return idx + member(f"{key}.x.npy", (rows, dim), dtype)

    full, rest = divmod(count, block)
    size = full * record(block, 0) + (record(rest, full) if rest else 0)
    return _tar_end(size)


_NPY_HEADERS_OUT: dict[tuple[str, tuple[int, ...]], bytes] = {}


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """``np.save``'s header for a C-contiguous array, made once per shape."""
    key = (dtype.str, shape)
    header = _NPY_HEADERS_OUT.get(key)
    if header is None:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {
            "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
            "shape": shape})
        header = buf.getvalue()
        if len(_NPY_HEADERS_OUT) > 256:
            _NPY_HEADERS_OUT.clear()
        _NPY_HEADERS_OUT[key] = header
    return header


def _npy(a: np.ndarray) -> bytes:
    """``np.save`` of a C-contiguous array as bytes."""
    return _npy_header(a.dtype, a.shape) + a.tobytes()


def write_stats(folder: Path, index: int, record: ShardRecord) -> Path:
    """Write ``shard-%06d.json`` atomically (after the tar is in place)."""
    path = Path(folder) / stats_name(index)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(asdict(record), indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_stats(folder: Path, index: int) -> ShardRecord | None:
    """Shard ``index``'s stats record, or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(folder) / stats_name(index)).read_text())
        return ShardRecord(**data)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def check_shard(folder: Path, record: ShardRecord) -> str | None:
    """What is wrong with ``record``'s tar in ``folder`` (size, then sha256), or None."""
    path = Path(folder) / record.shard
    if not path.is_file():
        return f"{path}: missing"
    if path.stat().st_size != record.bytes:
        return f"{path}: {path.stat().st_size} bytes, expected {record.bytes}"
    if sha256_file(path) != record.sha256:
        return f"{path}: sha256 differs from its record"
    return None


def member_problem(name: str) -> str | None:
    """Why a tar member name is refused, or None. Shards hold flat names (``<key>.x.npy``):
    an absolute path, a ``..`` or a folder could land outside the folder of anyone who
    extracts the tar, so none is accepted, whatever the manifest says."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "a '..' path"
    if "/" in name or "\\" in name:
        return "a path with folders"
    return None


def check_members(path: Path) -> str | None:
    """What is wrong inside tar ``path``: a member that is not a plain file, has an unsafe
    name (:func:`member_problem`) or is an ``.npy`` of objects (loading one would unpickle);
    None when every member is fine. Reads the headers, not the data."""
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                why = member_problem(member.name)
                if why is None and not member.isreg():
                    why = "not a regular file"
                if why is None and member.name.endswith(".npy"):
                    why = _npy_problem(tar.extractfile(member))
                if why is not None:
                    return f"{path}: member {member.name!r} is {why}"
    except tarfile.TarError as exc:
        return f"{path}: not a readable tar ({exc})"
    return None


def _npy_problem(fh) -> str | None:
    try:
        version = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        _, _, dtype = read(fh)
    except ValueError as exc:
        return f"not a valid .npy ({exc})"
    return f"an .npy of dtype {dtype} (objects are pickles)" if dtype.hasobject else None


def write_manifest(folder: Path, records: Sequence[ShardRecord]) -> Path:
    """Write ``manifest.parquet`` (rows sorted by shard name) atomically."""
    rows = sorted((asdict(r) for r in records), key=lambda r: r["shard"])
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA), tmp)
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path) -> list[ShardRecord]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        from wsfm.errors import InputNotFound

        raise InputNotFound(f"no shard manifest at {path}")
    known = {f.name for f in fields(ShardRecord)}
    return [ShardRecord(**{k: v for k, v in row.items() if k in known})
            for row in pq.read_table(path).to_pylist()]


def verify_shards(folder: Path) -> list[str]:
    """Check each shard against the manifest, then its members (:func:`check_members`); one
    message per bad shard (empty: all good). A tar the manifest does not list is reported too."""
    records = read_manifest(folder)
    problems = [p for p in (check_shard(folder, r) or check_members(Path(folder) / r.shard)
                            for r in records) if p]
    listed = {r.shard for r in records}
    problems += [f"{p}: not in the manifest" for p in sorted(Path(folder).glob("shard-*.tar"))
                 if p.name not in listed]
    return problems

