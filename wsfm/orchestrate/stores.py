"""Which artifact store a root gets: a local folder or an object-store URI.

The factory lives apart from both stores so that neither imports the other in a circle:
``remote_store`` builds on ``store`` (the commit record, its checks), and this module picks
between them.
"""

from __future__ import annotations

from pathlib import Path

from wsfm.orchestrate.remote_store import RemoteArtifactStore
from wsfm.orchestrate.storage import is_uri
from wsfm.orchestrate.store import ArtifactStore

__all__ = ["lock_root", "open_store"]


def open_store(root: str | Path, pipeline: str):  # -> ArtifactStore or its remote twin
    """The store for ``root``: :class:`ArtifactStore` for a local folder, a
    :class:`~wsfm.orchestrate.remote_store.RemoteArtifactStore` for a URI (``s3://``,
    ``gs://``, ``file://``). Unannotated, as before: the planner and runner take either as an
    ``ArtifactStore`` (the remote store has the same methods; no shared protocol yet)."""
    if is_uri(str(root)):
        return RemoteArtifactStore(str(root), pipeline)
    return ArtifactStore(root, pipeline)


def lock_root(store) -> Path:  # store: ArtifactStore or its remote twin
    """Where the stage locks of ``store`` live (``wsfm.orchestrate.locks``): the store's own
    folder, or for an object store this node's cache of it (a lock is a node's)."""
    return store.root if isinstance(store, ArtifactStore) else store.cache
