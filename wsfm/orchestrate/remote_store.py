"""The artifact store on an object store (``s3://``, ``gs://``; ``file://`` for tests).

Same layout and commit protocol as :class:`wsfm.orchestrate.store.ArtifactStore`:
``<root>/<pipeline>/<stage>/<fp>/`` holds a stage's files and, last, ``_SUCCESS.json``.
Stages keep working on local folders, so the store stages through a node-local cache,
``$WSFM_CACHE`` or else ``<system temp>/wsfm-cache``, one subfolder per root (a hash of the
URI)::

    <cache>/<pipeline>/<stage>/<fp>/             a verified copy of a finished output
    <cache>/<pipeline>/<stage>/.<fp>.partial/    where this node's stage builds its output

In. :meth:`RemoteArtifactStore.stage_in` brings a finished output to the node that runs the
reading stage: each file is checked against the remote ``_SUCCESS.json`` (size and sha256)
as it arrives, the copy is assembled in a private folder and renamed into place (two tasks of
one node may fetch the same input at once). A copy already in the cache is reused only when
its own record equals the remote one and its files verify: an output replaced since (``--force``
on another node) is fetched again.

Out. :meth:`RemoteArtifactStore.commit` removes an older output (its ``_SUCCESS.json`` first,
so that old and new files never count together), uploads every file and then
``_SUCCESS.json`` last. An object store has no rename, but one object's upload is atomic: a
reader (:meth:`~RemoteArtifactStore.inspect`) counts an output as done only when
``_SUCCESS.json`` is there and every file it lists is there with its size, so a half-uploaded
output never counts. Sizes come from one listing of the output's prefix: planning a run
downloads nothing. The local build folder then becomes the node's cached copy.

Resume. A resumable stage's partial state must outlive the node that made it (a rerun may run
on another node). :meth:`~RemoteArtifactStore.keep`, called when a resumable stage fails,
uploads the partial folder to ``<root>/<pipeline>/<stage>/.<fp>.partial/``;
``begin(resume=True)`` downloads it (else keeps this node's own partial folder, else pulls
back the intact files of a finished output that no longer verifies, as the local store moves
it back). Training checkpoints need no copy: Ray Train writes them to ``<home>/ray`` in the
same store, and the uploaded ``ray_run.json`` names the run to continue. Not covered: a node
that dies in the middle of a stage uploads nothing, so the rerun starts that stage afresh
(its checkpoints stay in the store, but no record names their run).

Fan-out. The tasks a stage fans out (shard tasks, evaluation jobs, Ray Train workers) may run
on nodes that see none of the stage's local folders. :meth:`RemoteArtifactStore.task_files`
gives the stage a :class:`StoreFiles` (``wsfm.taskfiles.TaskFiles``) to hand them: on the
stage's own node a task reads and writes the stage's folders directly; on another node
``input()`` stages the input in from the store into that node's cache (verified, as above),
``workspace()`` is a scratch folder, and ``publish()`` uploads each finished file (one atomic
object) to this attempt's outbox, ``<root>/<pipeline>/<stage>/.<fp>.outbox-<attempt>/``. Once
the tasks are done the stage's runtime calls ``collect()``, which downloads the outbox into
the stage's folder and deletes it; the stage then reads a complete folder and the commit
above uploads it, ``_SUCCESS.json`` last, unchanged. An outbox left by a stage task that died
is deleted by the next ``begin`` and by ``commit``. The price: a file made on another node
crosses the network three times (task -> store -> stage node -> store), where a server-side
copy would do (not done: the commit would then have to trust sizes and hashes it did not
compute).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from wsfm.orchestrate.storage import filesystem, join
from wsfm.orchestrate.store import SUCCESS, file_table, first_damage
from wsfm.shards import sha256_file

__all__ = ["CACHE_ENV", "RemoteArtifactStore", "StoreFiles", "cache_dir"]

CACHE_ENV = "WSFM_CACHE"
_CHUNK = 8 << 20
_THREADS = 8


def cache_dir() -> Path:
    """This node's cache folder: ``$WSFM_CACHE``, else ``<system temp>/wsfm-cache``."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "wsfm-cache")


class RemoteArtifactStore:
    """Args: ``root``, the store's URI; ``pipeline``; ``cache``, this node's cache folder
    (default :func:`cache_dir`)."""

    def __init__(self, root: str, pipeline: str, cache: str | Path | None = None):
        self.root = root.rstrip("/")
        self.pipeline = pipeline
        self.fs, self._base = filesystem(self.root)
        key = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        self.cache = Path(cache or cache_dir()).resolve() / key

    # -- where things are -------------------------------------------------------------------
    def path(self, stage: str, fp: str) -> str:
        """The finished output's URI."""
        return join(self.root, self.pipeline, stage, fp)

    def remote_partial(self, stage: str, fp: str) -> str:
        """The URI that a failed resumable attempt's partial folder is uploaded to."""
        return join(self.root, self.pipeline, stage, f".{fp}.partial")

    def partial(self, stage: str, fp: str) -> Path:
        """The local folder this node builds the stage's output in."""
        return self.cache / self.pipeline / stage / f".{fp}.partial"

    def cached(self, stage: str, fp: str) -> Path:
        """This node's copy of the finished output (valid only as :meth:`stage_in` says)."""
        return self.cache / self.pipeline / stage / fp

    def _key(self, *parts: str) -> str:
        return join(self._base, self.pipeline, *parts)

    # -- reading ----------------------------------------------------------------------------
    def load(self, stage: str, fp: str, *, deep: bool = False) -> dict[str, Any] | None:
        """The success record when the output is complete (sizes, and with ``deep`` sha256)."""
        record, _ = self.inspect(stage, fp, deep=deep)
        return record

    def success_records(self, stage: str) -> list[dict[str, Any]]:
        """The success records of ``stage``'s committed outputs (one listing, then one read
        per output; an unreadable one is passed over)."""
        base = self._key(stage)
        out = []
        for rel in sorted(self._sizes(base)):
            parts = rel.split("/")
            if len(parts) != 2 or parts[1] != SUCCESS or parts[0].startswith("."):
                continue
            try:
                out.append(json.loads(self._read(f"{base}/{rel}")))
            except (OSError, ValueError):
                continue
        return out

    def inspect(self, stage: str, fp: str, *,
                deep: bool = False) -> tuple[dict[str, Any] | None, str]:
        """``(record, "")`` for a complete output, else ``(None, why)``. One listing gives
        the sizes; only ``deep`` reads the files (to hash them)."""
        base = self._key(stage, fp)
        sizes = self._sizes(base)
        if SUCCESS not in sizes:
            return None, "no finished output"
        try:
            record = json.loads(self._read(f"{base}/{SUCCESS}"))
        except json.JSONDecodeError:
            return None, f"{SUCCESS} is unreadable"
        problem = first_damage(record, sizes)
        if problem:
            return None, problem
        if deep:
            for rel, meta in record["files"].items():
                if self._hash(f"{base}/{rel}") != meta["sha256"]:
                    return None, f"finished output damaged: {rel} fails its sha256"
        return record, ""

    def stage_in(self, stage: str, fp: str) -> Path:
        """A verified local copy of a finished output (downloaded unless already here).

        Raises:
            FileNotFoundError: the output is not complete in the store (names it and why).
            OSError: a file arrived with another sha256 than its record's.
        """
        record, why = self.inspect(stage, fp)
        if record is None:
            raise FileNotFoundError(f"{self.path(stage, fp)}: {why}")
        local = self.cached(stage, fp)
        if _verified_copy(local, record):
            return local
        fresh = local.with_name(f".{fp}.download-{uuid.uuid4().hex[:8]}")
        try:
            self._download_all(self._key(stage, fp), fresh, record["files"])
            (fresh / SUCCESS).write_text(json.dumps(record, indent=2, sort_keys=True))
            if not _verified_copy(local, record):  # another task may have made it meanwhile
                _replace_dir(fresh, local)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        return local

    # -- writing ----------------------------------------------------------------------------
    def begin(self, stage: str, fp: str, *, resume: bool = False) -> Path:
        """The local folder to build the stage's output in: emptied unless ``resume``, which
        starts from the uploaded partial state, else this node's, else the intact files of a
        finished output that no longer verifies (then removed from the store)."""
        tmp = self.partial(stage, fp)
        self._delete_outboxes(stage, fp)  # left by a stage task that died: nobody collects them
        uploaded = self._sizes(self._key(stage, f".{fp}.partial"))
        if not resume:
            shutil.rmtree(tmp, ignore_errors=True)
            self._delete(self._key(stage, f".{fp}.partial"))
        elif uploaded:
            shutil.rmtree(tmp, ignore_errors=True)
            self._download_all(self._key(stage, f".{fp}.partial"), tmp, uploaded)
        elif not tmp.exists():
            final = self._key(stage, fp)
            sizes = self._sizes(final)
            if sizes and self.load(stage, fp) is None:
                self._download_all(final, tmp, {r: s for r, s in sizes.items() if r != SUCCESS})
                self._delete(final)
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def commit(self, tmp: Path, stage: str, fp: str, record: dict[str, Any]) -> dict[str, Any]:
        """Upload ``tmp`` in place of an older output, then ``_SUCCESS.json`` last."""
        files = file_table(tmp)
        record = {**record, "stage": stage, "fingerprint": fp, "files": files,
                  "finished_at": time.time()}
        final = self._key(stage, fp)
        self._delete(f"{final}/{SUCCESS}")  # an older output stops counting first
        self._delete(final)
        self._upload_all(tmp, final, list(files))
        text = json.dumps(record, indent=2, sort_keys=True, default=str)
        self.fs.create_dir(final, recursive=True)  # an output of no files (none on S3)
        with self.fs.open_output_stream(f"{final}/{SUCCESS}") as out:
            out.write(text.encode())
        self._delete(self._key(stage, f".{fp}.partial"))
        self._delete_outboxes(stage, fp)
        (tmp / SUCCESS).write_text(text)
        _replace_dir(tmp, self.cached(stage, fp))
        return json.loads(text)

    def keep(self, tmp: Path, stage: str, fp: str) -> None:
        """Upload a failed resumable attempt's partial folder, for a rerun on any node. A
        failed upload is reported, not raised: the stage's own error is the one to see, and
        a rerun on this node still finds the local folder."""
        dest = self._key(stage, f".{fp}.partial")
        try:
            self._delete(dest)
            self._upload_all(tmp, dest, list(file_table(tmp)))
        except OSError as exc:
            print(f"wsfm: could not upload the partial state of {stage} to "
                  f"{self.remote_partial(stage, fp)}: {exc}", flush=True)

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    # -- fan-out ----------------------------------------------------------------------------
    def task_files(self, stage: str, fp: str, tmp: Path,
                   inputs: dict[str, tuple[str, Path]]) -> StoreFiles:
        """What the stage hands the tasks it fans out (called in the stage's task, on its
        node): ``tmp`` is its build folder, ``inputs`` ``{dep: (fingerprint, local folder)}``."""
        return StoreFiles(str(tmp), self.root, self.pipeline, stage, fp, _node_id(),
                          tuple((dep, dep_fp, str(folder))
                                for dep, (dep_fp, folder) in sorted(inputs.items())),
                          uuid.uuid4().hex[:12])

    def outbox(self, stage: str, fp: str, attempt: str) -> str:
        """The key that one attempt's tasks deliver their files under."""
        return self._key(stage, f".{fp}.outbox-{attempt}")

    def _delete_outboxes(self, stage: str, fp: str) -> None:
        folder = self._key(stage)
        for info in self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
            if info.base_name.startswith(f".{fp}.outbox-"):
                self._delete(info.path)

    def fetch(self, key: str, dest: Path) -> bool:
        """Download one object to ``dest`` if it is there (False if not)."""
        if self.fs.get_file_info(key).type != pafs.FileType.File:
            return False
        base, name = key.rsplit("/", 1)
        self._download_all(base, dest.parent, {name: None})  # renamed below when it differs
        if dest.name != name:
            os.replace(dest.parent / name, dest)
        return True

    # -- the filesystem ---------------------------------------------------------------------
    def _sizes(self, base: str) -> dict[str, int]:
        """``{relative path: bytes}`` of every file under ``base`` (empty: nothing there)."""
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True,
                                                        allow_not_found=True))
        return {info.path[len(base) + 1:]: info.size for info in infos
                if info.type == pafs.FileType.File}

    def _read(self, key: str) -> bytes:
        with self.fs.open_input_stream(key) as stream:
            return stream.read()

    def _hash(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(key) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def _delete(self, key: str) -> None:
        info = self.fs.get_file_info(key)
        if info.type == pafs.FileType.File:
            self.fs.delete_file(key)
        elif info.type == pafs.FileType.Directory:
            self.fs.delete_dir(key)

    def _upload_all(self, folder: Path, base: str, rels: list[str]) -> None:
        def upload(rel: str) -> None:
            with open(folder / rel, "rb") as src, \
                    self.fs.open_output_stream(f"{base}/{rel}") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)

        if self.fs.type_name == "local":  # an object store has no folders to make first
            for parent in sorted({f"{base}/{rel}".rsplit("/", 1)[0] for rel in rels}):
                self.fs.create_dir(parent, recursive=True)
        with ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(upload, rels))

    def _download_all(self, base: str, folder: Path, files: dict[str, Any]) -> None:
        """Download ``files`` (``{rel: record entry or size}``); an entry with a sha256 is
        checked as it arrives."""
        def download(rel: str) -> None:
            dest = folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with self.fs.open_input_stream(f"{base}/{rel}") as stream, open(dest, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            meta = files[rel]
            if isinstance(meta, dict) and digest.hexdigest() != meta["sha256"]:
                raise OSError(f"{self.root}: {base}/{rel} arrived with sha256 "
                              f"{digest.hexdigest()}, its record says {meta['sha256']}")

        folder.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(download, files))


def _verified_copy(local: Path, record: dict[str, Any]) -> bool:
    """Whether ``local`` holds this very output: the same record, every file's sha256."""
    try:
        if json.loads((local / SUCCESS).read_text()) != json.loads(json.dumps(record)):
            return False
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return all((local / rel).is_file() and (local / rel).stat().st_size == meta["bytes"]
               and sha256_file(local / rel) == meta["sha256"]
               for rel, meta in record["files"].items())


def _replace_dir(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest``, replacing what is there (another task's copy included)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(dest, old)
        except FileNotFoundError:  # another task moved it away meanwhile
            pass
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(src, dest)
    except OSError:  # another task put its copy there first: the same files, keep it
        if not dest.exists():
            raise


_INPUTS: dict[tuple[str, str, str, str], Path] = {}  # this process's staged-in inputs


def _node_id() -> str:
    """The Ray node this process runs on ("" outside Ray: one process sees everything)."""
    import ray  # lazy: the CLI's store commands start without Ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


@dataclass(frozen=True)
class StoreFiles:
    """:class:`wsfm.taskfiles.TaskFiles` for an object-store root; picklable, made by
    :meth:`RemoteArtifactStore.task_files` in the stage's task.

    ``folder``: the stage's build folder on its node (``node``, a Ray node id);
    ``inputs``: ``(dep, fingerprint, folder on the stage's node)`` of each upstream stage;
    ``attempt``: this attempt's outbox (a fresh one per attempt, so a task never fetches
    what an older attempt left)."""

    folder: str
    root: str
    pipeline: str
    stage: str
    fp: str
    node: str
    inputs: tuple[tuple[str, str, str], ...] = ()
    attempt: str = ""

    def here(self) -> bool:
        """Whether this process runs on the stage's node (and so sees its folders)."""
        return _node_id() == self.node

    def _store(self) -> RemoteArtifactStore:
        return RemoteArtifactStore(self.root, self.pipeline)

    def input(self, path: str | Path) -> Path:
        """``path`` under an input folder of the stage's node, as this node sees it: the same
        path here, else the same file in this node's verified copy of that input (staged in
        from the store once per process)."""
        if self.here():
            return Path(path)
        target = Path(path)
        for dep, dep_fp, folder in self.inputs:
            base = Path(folder)
            if target == base or base in target.parents:
                key = (self.root, self.pipeline, dep, dep_fp)
                if key not in _INPUTS:
                    _INPUTS[key] = self._store().stage_in(dep, dep_fp)
                return _INPUTS[key] / target.relative_to(base)
        raise ValueError(f"{path} is not under an input of {self.stage} "
                         f"({', '.join(f for _, _, f in self.inputs) or 'it has none'})")

    @contextmanager
    def workspace(self, fetch: Sequence[str] = ()) -> Iterator[Path]:
        """The stage's folder here; elsewhere a scratch folder under this node's cache with
        those of ``fetch`` that this attempt's tasks already delivered (a task restarted
        within the attempt: a divergence marker, the checkpoint pointer)."""
        if self.here():
            yield Path(self.folder)
            return
        parent = cache_dir() / ".tasks"
        parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{self.stage}-", dir=parent))
        try:
            if fetch:
                store = self._store()
                box = store.outbox(self.stage, self.fp, self.attempt)
                for name in fetch:
                    store.fetch(f"{box}/{name}", scratch / name)
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def publish(self, workspace: Path, *names: str) -> None:
        """Upload ``names`` (files under ``workspace``) to this attempt's outbox, each one
        whole; nothing to do when ``workspace`` is the stage's folder."""
        if Path(workspace).resolve() == Path(self.folder).resolve() or not names:
            return
        store = self._store()
        store._upload_all(Path(workspace), store.outbox(self.stage, self.fp, self.attempt),
                          list(names))

    def remove(self, name: str) -> None:
        (Path(self.folder) / name).unlink(missing_ok=True)
        store = self._store()
        store._delete(f"{store.outbox(self.stage, self.fp, self.attempt)}/{name}")

    def collect(self) -> list[str]:
        """Download this attempt's outbox into the stage's folder (each file replaced whole,
        its size checked), then delete the outbox. Called on the stage's node."""
        store = self._store()
        box = store.outbox(self.stage, self.fp, self.attempt)
        sizes = store._sizes(box)
        if not sizes:
            return []
        folder = Path(self.folder)
        incoming = folder / f".collect-{uuid.uuid4().hex[:8]}"
        try:
            store._download_all(box, incoming, dict(sizes))
            for rel, size in sizes.items():
                got = (incoming / rel).stat().st_size
                if got != size:
                    raise OSError(f"{box}/{rel}: {got} bytes arrived, the store lists {size}")
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(incoming / rel, folder / rel)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        store._delete(box)
        return sorted(sizes)
