"""Users' samples in WebDataset tars: ``data: {kind: webdataset, urls: URLS, key: MEMBER}``.

``urls`` names the tars: one file, a folder (every ``*.tar`` under it), a glob, or a brace
pattern as WebDataset writes them (``shards/data-{000000..000009}.tar``); several of these
separated by spaces. A sample is the run of consecutive members that share a key (the member's
path up to the first dot of its file name, WebDataset's ``__key__``); ``key`` names the member
that holds the sample, by its extension (WebDataset's field name):

- ``npy`` (then ``x.npy`` holds it too: an extension ending in the one named) or ``x.npy``: a
  1-D numeric array, a vector sample;
- an image (``png``, ``jpg``, ``jpeg``, ...): decoded, converted to ``channels`` and resized to
  ``image_size`` exactly as ``image_folder`` does, an image sample.

The tars are read one member at a time (``tarfile`` in stream mode), so a bad sample is found
without reading the files after it, and the error names the tar and the sample's key: a sample
without the member (its members are listed), an array that does not load or is not 1-D, an
image that does not decode, another length or image size than the first sample's, NaN or
infinity, a damaged tar, a key that repeats.

**The split is a hash of each sample's key** (``wsfm.data.base.hash_split``), as for Parquet:
a sample is held out or not whatever the order or the number of the tars.
``webdataset_blocks`` streams the checked samples a block at a time, as ``prepare_data`` writes
them into its shards (holding a block, and a hash of each key seen, to refuse a repeat);
``wsfm.data.datasets.load_dataset`` gathers them into one array.
"""

from __future__ import annotations

import functools
import glob
import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.base import KeyHashes, KeyLedger
from wsfm.data.images import IMAGE_SUFFIXES, image_row
from wsfm.data.remote import open_remote, remote_files
from wsfm.errors import DataError, InputNotFound
from wsfm.uri import is_uri

__all__ = ["read_samples", "tar_files", "webdataset_blocks", "webdataset_count",
           "webdataset_kind", "webdataset_ledger"]

IMAGE_EXTS = tuple(suffix[1:] for suffix in IMAGE_SUFFIXES)
BLOCK_SAMPLES = 1024  # samples per block streamed
_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # (key, extension), as WebDataset splits


def tar_files(urls: str) -> list[Path | str]:
    """The tars ``urls`` names (module docstring), in the order given, each once; an
    object-store URI (``s3://...``) names an object, a prefix or a glob (``wsfm.data.remote``)
    and its tars are URIs."""
    from braceexpand import braceexpand  # installed with webdataset, which brace-expands too

    out: list[Path | str] = []
    for url in urls.split():
        for one in braceexpand(url):
            p = Path(one)
            if is_uri(one):
                found: list[Path | str] = list(remote_files(one, ".tar"))
            elif p.is_file():
                found = [p]
            elif p.is_dir():
                found = sorted(f for f in p.rglob("*.tar") if f.is_file())
                if not found:
                    raise InputNotFound(f"no .tar files in folder {p}")
            else:
                found = sorted(Path(f) for f in glob.glob(one, recursive=True)
                               if Path(f).is_file())
                if not found:
                    raise InputNotFound(f"data file not found: {one}")
            out += [f for f in found if f not in out]
    if not out:
        raise InputNotFound(f"no tars in {urls!r}")
    return out


def _holds(ext: str, member: str) -> bool:
    """Whether a member with extension ``ext`` is the ``member`` asked for: the same
    extension, or one ending in it (``x.npy`` for ``npy``), case aside."""
    ext, member = ext.lower(), member.lower()
    return ext == member or ext.endswith("." + member)


def read_samples(path: Path | str, member: str) -> Iterator[tuple[str, bytes]]:
    """``(key, bytes)`` of the ``member`` of each sample of one tar, in order; a
    sample without it raises ``DataError`` naming the tar, the key and the members it has."""
    key: str | None = None
    exts: list[str] = []
    data = b""

    def done() -> tuple[str, bytes]:
        if not any(_holds(e, member) for e in exts):
            raise DataError(f"{path}: sample {key!r} has no member {member!r} (members: "
                            f"{', '.join(exts)})")
        return key, data  # type: ignore[return-value]  # key is set with exts

    try:
        with (tarfile.open(fileobj=open_remote(str(path), seekable=False), mode="r|*")
              if is_uri(path) else tarfile.open(path, "r|*")) as tar:
            for info in tar:
                match = _MEMBER.match(info.name)
                if not info.isfile() or match is None or Path(info.name).name.startswith("."):
                    continue
                k, ext = match.groups()
                if k != key:
                    if key is not None:
                        yield done()
                    key, exts = k, []
                exts.append(ext)
                if _holds(ext, member):
                    f = tar.extractfile(info)
                    data = f.read() if f is not None else b""
    except tarfile.TarError as exc:
        raise DataError(f"{path}: not a readable tar ({exc})") from exc
    if key is not None:
        yield done()


def _vector(path: Path | str, key: str, raw: bytes) -> np.ndarray:
    try:
        x = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: sample {key!r}: not a numeric .npy array ({exc})") from exc
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.number) or len(x) == 0:
        raise DataError(f"{path}: sample {key!r}: expected a non-empty 1-D numeric array, got "
                        f"{x.dtype} of shape {x.shape}")
    return x.astype(np.float32)


def _image(path: Path | str, key: str, raw: bytes, cfg: DataConfig) -> tuple[np.ndarray, tuple]:
    """The image as a row in [-1, 1] (``wsfm.data.images``) and its (mode, size)."""
    try:
        return image_row(io.BytesIO(raw), cfg.image_size, cfg.channels)
    except OSError as exc:
        raise DataError(f"{path}: sample {key!r}: not a readable image ({exc})") from exc


def webdataset_kind(cfg: DataConfig, dim: int) -> tuple[str, tuple[int, ...]]:
    """A WebDataset source's kind and sample shape, given its rows' width; refuses a ``key``
    that names neither an array nor an image."""
    member = cfg.key.lower()
    if member.rsplit(".", 1)[-1] in IMAGE_EXTS:
        return "image", (cfg.channels, *cfg.image_size)
    if not member.endswith("npy"):
        raise DataError(f"data.key {cfg.key!r}: the member holding each sample must be an "
                        f".npy array or an image ({', '.join(IMAGE_EXTS)})")
    return "vector", (dim,)


def webdataset_blocks(cfg: DataConfig, block: int = BLOCK_SAMPLES,
                      span: tuple[int, int] | None = None, state: dict | None = None,
                      keys: KeyLedger | KeyHashes | None = None
                      ) -> Iterator[tuple[np.ndarray, list[str]]]:
    """The samples of a WebDataset source's tars ``span`` (lo, hi; None: every tar), checked,
    ``block`` at a time: ``(rows (b, D) float32, keys)``, in the order of the tars (module
    docstring). Each sample is checked against ``state``, the source's first sample (its
    length or image mode and size); the keys go to ``keys`` (:func:`webdataset_ledger` or a
    part's hashes). Holds one block. The count and the repeated keys are checked over the
    whole source by its caller (``wsfm.data.partitioned``)."""
    image = webdataset_kind(cfg, 0)[0] == "image"
    state = {} if state is None else state
    rows: list[np.ndarray] = []
    names: list[str] = []
    files = tar_files(cfg.urls)
    lo, hi = span or (0, len(files))
    for i in range(lo, hi):
        path = files[i]
        file_keys: list[str] = []
        for key, raw in read_samples(path, cfg.key):
            file_keys.append(key)
            if image:
                x, what = _image(path, key, raw, cfg)
            else:
                x = _vector(path, key, raw)
                what = (len(x),)
                bad = ~np.isfinite(x)
                if bad.any():
                    raise DataError(f"{path}: sample {key!r}: NaN or infinite values")
            first = state.setdefault("first", (what, path, key))  # (what, path, key)
            if what != first[0]:
                label = "mode and size" if image else "length"
                raise DataError(f"{path}: sample {key!r} has {label} {what}, sample "
                                f"{first[2]!r} of {first[1]} has {first[0]} (every sample "
                                f"needs the same)")
            rows.append(x)
            names.append(key)
            if len(rows) == block:
                if keys is not None:
                    keys.add(file_keys, i)
                file_keys = []
                yield np.stack(rows), names
                rows, names = [], []
        if keys is not None:
            keys.add(file_keys, i)
    if rows:
        yield np.stack(rows), names


def webdataset_ledger(cfg: DataConfig) -> KeyLedger:
    """What refuses a repeated sample key across the tars (listed only to name a repeat)."""
    files = functools.cache(lambda: tar_files(cfg.urls))
    return KeyLedger(lambda i: (k for k, _ in read_samples(files()[i], cfg.key)),
                     lambda key, a, b: (f"{files()[b]}: sample key {key!r} repeats (also in "
                                        f"{files()[a]}): a sample's key decides its split, so "
                                        "keys must be unique"))


def webdataset_count(cfg: DataConfig, n: int) -> None:
    """Refuses a source of fewer than 10 samples."""
    if n < 10:
        raise DataError(f"{cfg.urls}: {n} samples; need at least 10")
