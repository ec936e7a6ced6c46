"""The artifact store: ``<root>/<pipeline>/<stage>/<fingerprint>/``, committed atomically.

A stage writes into a partial sibling folder, ``.<fingerprint>.partial``;
:meth:`ArtifactStore.commit` renames it into place and then writes ``_SUCCESS.json``
(fingerprint, inputs, params, metrics, files with sizes, sha256 and mtimes) last. A folder
without a verified ``_SUCCESS.json`` does not count as done (a file missing, of another size,
or changed since: its mtime moved and its sha256 differs). A failed attempt's partial folder
is kept: a *resumable* stage (draft shards, training checkpoints) picks up what it finished,
every other stage starts it afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from wsfm.config import PipelineConfig, to_dict
from wsfm.shards import sha256_file
from wsfm.stages.base import StageSpec

__all__ = ["SUCCESS", "ArtifactStore", "fingerprint"]

SUCCESS = "_SUCCESS.json"


def fingerprint(spec: StageSpec, config: PipelineConfig, upstream: dict[str, str]) -> str:
    """Hash of stage name, version, the config sections it reads and upstream fingerprints."""
    payload = {
        "stage": spec.name,
        "version": spec.version,
        "params": {name: to_dict(getattr(config, name)) for name in spec.sections},
        "upstream": dict(sorted(upstream.items())),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class ArtifactStore:
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
        files = {
            str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": sha256_file(p),
                                      "mtime_ns": p.stat().st_mtime_ns}
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
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
        for rel, meta in record.get("files", {}).items():
            path = final / rel
            if not path.is_file():
                return None, f"finished output damaged: {rel} is missing"
            if path.stat().st_size != meta["bytes"]:
                return None, (f"finished output damaged: {rel} has {path.stat().st_size} "
                              f"bytes, expected {meta['bytes']}")
            # A file rewritten in place keeps its size but not its mtime: only then (or when
            # asked to be deep) is it hashed, so a plan stays cheap.
            touched = meta.get("mtime_ns", path.stat().st_mtime_ns) != path.stat().st_mtime_ns
            if (deep or touched) and sha256_file(path) != meta["sha256"]:
                return None, f"finished output damaged: {rel} fails its sha256"
        return record, ""

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)
