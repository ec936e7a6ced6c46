"""The artifact store: ``<root>/<pipeline>/<stage>/<fingerprint>/``, committed atomically.

A stage writes into a partial sibling folder, ``.<fingerprint>.partial``;
:meth:`ArtifactStore.commit` renames it into place and then writes ``_SUCCESS.json``
(fingerprint, inputs, params, metrics, files with sizes, sha256 and mtimes) last. A folder
without a verified ``_SUCCESS.json`` does not count as done (a file missing, of another size,
or changed since: its mtime moved and its sha256 differs). A failed attempt's partial folder
is kept: a *resumable* stage (draft shards, training checkpoints) picks up what it finished,
every other stage starts it afresh.

The root may also be a URI (``s3://``, ``gs://``, ``file://``): ``open_store``
(``wsfm.orchestrate.stores``) then gives a
:class:`~wsfm.orchestrate.remote_store.RemoteArtifactStore`, the same layout and protocol
staged through a node-local cache (its module docstring tells how). Both give a stage's task
local folders: :meth:`ArtifactStore.stage_in` for an input, :meth:`ArtifactStore.begin` for
the output, and :meth:`ArtifactStore.keep` for a failed resumable attempt's partial folder;
and :meth:`ArtifactStore.task_files` gives what the stage hands the tasks it fans out
(``wsfm.taskfiles``): here every node sees the stage's folders, so they use them directly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from wsfm.shards import sha256_file
from wsfm.taskfiles import LocalFiles

__all__ = ["SUCCESS", "ArtifactStore", "file_table", "first_damage"]

SUCCESS = "_SUCCESS.json"


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"bytes", "sha256"}}`` of every file under ``folder``."""
    return {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(folder.rglob("*")) if p.is_file()}


def first_damage(record: dict[str, Any], sizes: dict[str, int]) -> str:
    """Why a finished output does not count, given its files' sizes (a missing file has
    none), or ``""`` when every file its record lists is there with its size."""
    for rel, meta in record.get("files", {}).items():
        if rel not in sizes:
            return f"finished output damaged: {rel} is missing"
        if sizes[rel] != meta["bytes"]:
            return (f"finished output damaged: {rel} has {sizes[rel]} bytes, expected "
                    f"{meta['bytes']}")
    return ""


class ArtifactStore:
    """The store on a local folder (or one that every node mounts at the same path)."""

    def __init__(self, root: str | Path, pipeline: str):
        self.root = Path(root).resolve()
        self.pipeline = pipeline

    def path(self, stage: str, fp: str) -> Path:
        return self.root / self.pipeline / stage / fp

    def partial(self, stage: str, fp: str) -> Path:
        return self.root / self.pipeline / stage / f".{fp}.partial"

    def begin(self, stage: str, fp: str, *, resume: bool = False) -> Path:
        """The folder to build the stage's output in: emptied unless ``resume``.

        With ``resume``, a finished output that no longer verifies (a truncated shard, say) is
        moved back to the partial folder, so that the stage repairs it instead of starting over.
        """
        tmp = self.partial(stage, fp)
        final = self.path(stage, fp)
        if resume and not tmp.exists() and final.exists() and self.load(stage, fp) is None:
            os.rename(final, tmp)
            (tmp / SUCCESS).unlink(missing_ok=True)
        if tmp.exists() and not resume:
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def commit(self, tmp: Path, stage: str, fp: str, record: dict[str, Any]) -> dict[str, Any]:
        """Move ``tmp`` into place, replacing an older output, then write ``_SUCCESS.json``."""
        files = file_table(tmp)
        for rel, meta in files.items():  # a rename keeps them: a later rewrite moves them
            meta["mtime_ns"] = (tmp / rel).stat().st_mtime_ns
        final = self.path(stage, fp)
        if final.exists():
            old = final.with_name(f".{fp}.old-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old)
        else:
            os.rename(tmp, final)
        record = {**record, "stage": stage, "fingerprint": fp, "files": files,
                  "finished_at": time.time()}
        tmp_success = final / f".{SUCCESS}.tmp"
        tmp_success.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        os.replace(tmp_success, final / SUCCESS)
        return record

    def load(self, stage: str, fp: str, *, deep: bool = False) -> dict[str, Any] | None:
        """The success record when the output is complete (sizes, and with ``deep`` sha256)."""
        record, _ = self.inspect(stage, fp, deep=deep)
        return record

    def success_records(self, stage: str) -> list[dict[str, Any]]:
        """The success records of ``stage``'s committed outputs (every fingerprint; an
        unreadable one is passed over)."""
        folder = self.root / self.pipeline / stage
        out = []
        for success in sorted(folder.glob(f"*/{SUCCESS}")) if folder.is_dir() else []:
            if success.parent.name.startswith("."):
                continue
            try:
                out.append(json.loads(success.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def inspect(self, stage: str, fp: str, *,
                deep: bool = False) -> tuple[dict[str, Any] | None, str]:
        """``(record, "")`` for a complete output, else ``(None, why)``: no output, or the
        first file that is missing or differs from its record."""
        final = self.path(stage, fp)
        try:
            record = json.loads((final / SUCCESS).read_text())
        except FileNotFoundError:
            return None, "no finished output"
        except json.JSONDecodeError:
            return None, f"{SUCCESS} is unreadable"
        sizes = {rel: (final / rel).stat().st_size for rel in record.get("files", {})
                 if (final / rel).is_file()}
        problem = first_damage(record, sizes)
        if problem:
            return None, problem
        for rel, meta in record["files"].items():
            path = final / rel
            # A file rewritten in place keeps its size but not its mtime: only then (or when
            # asked to be deep) is it hashed, so a plan stays cheap.
            touched = meta.get("mtime_ns", path.stat().st_mtime_ns) != path.stat().st_mtime_ns
            if (deep or touched) and sha256_file(path) != meta["sha256"]:
                return None, f"finished output damaged: {rel} fails its sha256"
        return record, ""

    def stage_in(self, stage: str, fp: str) -> Path:
        """The local folder of a finished output, for a stage that reads it (here: itself)."""
        return self.path(stage, fp)

    def task_files(self, stage: str, fp: str, tmp: Path,
                   inputs: dict[str, tuple[str, Path]]) -> LocalFiles:
        """For the stage's fan-out tasks: the folders themselves (every node sees them)."""
        return LocalFiles(str(tmp))

    def keep(self, tmp: Path, stage: str, fp: str) -> None:
        """Keep a failed resumable attempt's partial folder: here it stays where it is."""

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)
