"""Before a run on a multi-node cluster: does every node see the artifact root?

Stages run on whichever node has room, and each reads its upstream stages' outputs from the
artifact root: a root that some node cannot see (a local folder on the driver's machine, a
mount missing on one node) would fail much later, in the middle of the DAG, or worse, on one
node only. So the driver checks it for real before anything runs: it writes a marker with a
fresh random token under the root, then runs one tiny task pinned to each alive node
(``NodeAffinitySchedulingStrategy``, hard) that reads it back. A node that cannot read the
same token stops the run with a message naming the node (id and address) and the setting to
change. One node alone needs no check: everything runs where the driver's root is.

The marker is read and written through ``pyarrow.fs`` (``wsfm.orchestrate.storage.filesystem``
for a URI: the S3 endpoint and region from the environment): a local path and an
object-store URI (``s3://``, ``gs://``) are checked alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsfm.errors import UserError

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

__all__ = ["ArtifactRootNotShared", "NodeView", "alive_nodes", "check_artifact_root",
           "read_marker"]

MARKER_DIR = ".wsfm-visibility"

Probe = Callable[[str, str], str | None]  # (marker URI or path, expected token) -> problem


class ArtifactRootNotShared(UserError):
    """Some node of the cluster cannot see the artifact root (the message names it)."""


@dataclass(frozen=True)
class NodeView:
    """What one node saw: ``problem`` is None when it read the driver's token."""

    node_id: str
    address: str
    problem: str | None
    ran_on: str = ""  # the node id the probe task reported (affinity is hard: == node_id)


def _fs(root: str) -> tuple[FileSystem, str]:
    """``(filesystem, path)`` for a local path or a URI."""
    from pyarrow import fs

    from wsfm.orchestrate.storage import filesystem, is_uri

    if is_uri(root):
        return filesystem(root)  # the S3 endpoint and region from the environment
    return fs.LocalFileSystem(), root


def read_marker(marker: str, token: str) -> str | None:
    """The real per-node check: read ``marker`` and compare it with ``token``."""
    try:
        filesystem, path = _fs(marker)
        with filesystem.open_input_stream(path) as fh:
            seen = fh.read().decode()
    except (FileNotFoundError, OSError) as exc:
        return f"cannot read {marker}: {type(exc).__name__}: {exc}"
    return None if seen == token else f"{marker} holds another token ({seen[:16]!r})"


def _probe_on_node(probe: Probe, marker: str, token: str) -> tuple[str, str | None]:
    import ray

    return ray.get_runtime_context().get_node_id(), probe(marker, token)


def alive_nodes() -> list[tuple[str, str]]:
    """``(node id, address)`` of every alive node of the connected cluster."""
    import ray

    return [(n["NodeID"], n["NodeManagerAddress"]) for n in ray.nodes() if n["Alive"]]


def check_artifact_root(root: str, *, probe: Probe = read_marker, timeout: float = 300.0
                        ) -> list[NodeView]:
    """Check that every alive node reads the marker the driver wrote under ``root``.

    Returns one :class:`NodeView` per node (empty on a one-node cluster: nothing to check).
    ``probe`` runs on each node (default :func:`read_marker`). Raises
    :class:`ArtifactRootNotShared` naming each node that failed."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = alive_nodes()
    if len(nodes) < 2:
        return []
    token = uuid.uuid4().hex
    filesystem, base = _fs(root)
    folder = f"{base.rstrip('/')}/{MARKER_DIR}"
    filesystem.create_dir(folder, recursive=True)
    path = f"{folder}/{token}"
    marker = f"{root.rstrip('/')}/{MARKER_DIR}/{token}"
    with filesystem.open_output_stream(path) as fh:
        fh.write(token.encode())
    try:
        task = ray.remote(_probe_on_node)
        refs = [task.options(num_cpus=0, max_retries=0, name=f"wsfm:artifact-root:{addr}",
                             scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
                             ).remote(probe, marker, token) for node, addr in nodes]
        seen = ray.get(refs, timeout=timeout)
    finally:
        filesystem.delete_file(path)
    views = [NodeView(node, addr, problem, ran_on)
             for (node, addr), (ran_on, problem) in zip(nodes, seen)]
    bad = [v for v in views if v.problem is not None]
    if bad:
        lines = "\n".join(f"  node {v.node_id} ({v.address}): {v.problem}" for v in bad)
        raise ArtifactRootNotShared(
            f"the artifact root {root} is not visible from {len(bad)} of {len(views)} nodes:\n"
            f"{lines}\nset --home / WSFM_HOME to a folder that every node mounts at the same "
            "path (NFS, EFS, Lustre) or to an object-store URI (s3://..., gs://...)")
    return views
