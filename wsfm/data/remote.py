"""Users' data in an object store: ``s3://bucket/prefix`` (or any URI ``pyarrow.fs`` opens,
``gs://``, ``file://``) as the ``path`` of the Parquet kind or among the ``urls`` of the
WebDataset kind.

A URI names one object, a prefix (every object under it whose name ends in the kind's suffix,
like a folder), or a glob (``s3://bucket/data/part-*.parquet``: ``*`` may cross ``/``). The
store is reached exactly as an object-store home reaches it (``wsfm.orchestrate.storage``):
the endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, the region from
``AWS_REGION``, credentials from the default AWS chain on each node, so a stage task on any
node of a cluster reads the same objects without a shared mount. Objects are read, not
downloaded to disk: tars as a stream, Parquet by ranged reads (its footer, then each row
group).

A sample's key uses the object's file name (``part-0.parquet:17``), as it does for a local
file, so the same files split the same way whether they lie on a disk or in a bucket.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from wsfm.errors import DataError, InputNotFound
from wsfm.uri import is_uri

__all__ = ["open_remote", "remote_files", "source_name"]

_WILD = re.compile(r"[*?\[]")


def source_name(where: str | Path) -> str:
    """The file name of a local path or of an object's URI."""
    return Path(where).name if not is_uri(where) else PurePosixPath(
        urlsplit(str(where)).path).name


def _filesystem(uri: str) -> tuple[Any, str]:
    # Imported here: pyarrow.fs stays out of the start-up of every process that imports the
    # data kinds, and is loaded only where an object store is read.
    from wsfm.orchestrate.storage import filesystem

    return filesystem(uri)


def remote_files(uri: str, suffix: str) -> list[str]:
    """The objects ``uri`` names (module docstring), sorted, as URIs of the same scheme.

    Raises:
        InputNotFound: no such object, or nothing under the prefix or matching the glob.
        DataError: the store cannot be listed (unreachable, no credentials, no bucket).
    """
    import pyarrow.fs as pafs

    scheme = urlsplit(uri).scheme
    fs, inner = _filesystem(uri)
    if not _WILD.search(inner):
        info = _ask(uri, lambda: fs.get_file_info(inner))
        if info.type == pafs.FileType.File:
            return [uri]
        if info.type == pafs.FileType.NotFound:
            raise InputNotFound(f"data not found: {uri}")
        base, keep = inner, (lambda p: p.endswith(suffix))
        what = f"no {suffix} objects under {uri}"
    else:
        base = _WILD.split(inner, maxsplit=1)[0].rsplit("/", 1)[0]
        keep, what = (lambda p: fnmatchcase(p, inner)), f"no objects match {uri}"
    infos = _ask(uri, lambda: fs.get_file_info(pafs.FileSelector(base, recursive=True,
                                                                 allow_not_found=True)))
    found = sorted(i.path for i in infos if i.type == pafs.FileType.File and keep(i.path))
    if not found:
        raise InputNotFound(what)
    return [f"{scheme}://{p}" for p in found]


def _ask(uri: str, call: Callable[[], Any]) -> Any:
    """``call()``, with pyarrow's error for an unreachable store or a refused request
    (``OSError``) as one ``DataError`` naming ``uri``."""
    try:
        return call()
    except OSError as exc:
        raise DataError(f"{uri}: the object store cannot be read ({exc})") from exc


def open_remote(uri: str, *, seekable: bool) -> Any:
    """One object, open for reading: random access (``seekable``, what Parquet needs) or a
    stream (what a tar read in order needs). A file-like ``pyarrow`` NativeFile."""
    fs, inner = _filesystem(uri)
    return _ask(uri, lambda: fs.open_input_file(inner) if seekable
                else fs.open_input_stream(inner))
