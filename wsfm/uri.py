"""Whether a place is a URI or a local path: one test for the artifact home
(``wsfm.orchestrate.storage``) and users' data (``wsfm.data.remote``), kept free of pyarrow so
that telling the two apart loads nothing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["is_uri"]


def is_uri(where: str | Path) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: anything with a scheme (not a plain path)."""
    return isinstance(where, str) and "://" in where and bool(urlsplit(where).scheme)
