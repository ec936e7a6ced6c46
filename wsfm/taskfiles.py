"""How a stage's fan-out tasks reach the stage's files, on whatever node they run.

A stage builds its output in one local folder (``ctx.out``) on the node that runs the stage's
task, and reads its inputs from local folders there (``ctx.inputs``). The work it fans out (a
shard task of ``generate_drafts`` or a reflow pair stage, an evaluation job, the Ray Train
workers) may run on another node. With a local or shared artifact root every node sees those
folders and nothing has to move: :class:`LocalFiles`. With an object-store root on several
nodes without a shared mount the other node sees none of them: the stage hands its tasks
``wsfm.orchestrate.remote_store.StoreFiles`` instead, which stages inputs in from the store on
the task's node and delivers the task's files through the store. A task uses the same three
calls in both cases::

    def make_part(job):
        files = job.files
        model = files.input(job.model_path)           # an input file, as this node sees it
        with files.workspace(fetch=["part-0.bin"]) as out:  # where to write (the stage's
            ...write out / "part-0.bin"...            # folder itself, or a scratch folder)
            files.publish(out, "part-0.bin")          # deliver it into the stage's output

and the stage's own runtime calls :meth:`TaskFiles.collect` once its tasks are done (the
Ray runtime does it after a map and after training), so that the stage reads and commits a
complete folder. Nothing here touches ``_SUCCESS.json``: the stage's commit still writes it
last, over the whole folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["LocalFiles", "TaskFiles"]


class TaskFiles(Protocol):
    """What a fan-out task uses to read the stage's inputs and deliver its outputs;
    picklable. ``folder``: the stage's build folder on the stage's node."""

    @property
    def folder(self) -> str:  # read-only: the implementations are frozen dataclasses
        ...

    def input(self, path: str | Path) -> Path:
        """``path`` (a file or folder under one of the stage's input folders, as the stage's
        node names it) as this node sees it."""
        ...

    def workspace(self, fetch: Sequence[str] = ()) -> contextlib.AbstractContextManager[Path]:
        """A local folder to write the task's files into: the stage's folder where this node
        sees it, else a fresh scratch folder (removed afterwards) holding those of ``fetch``
        (names relative to the stage's folder) that an earlier attempt delivered."""
        ...

    def publish(self, workspace: Path, *names: str) -> None:
        """Deliver finished files (``names`` relative to ``workspace``) into the stage's
        output: nothing to do where ``workspace`` is the stage's folder; else each is
        uploaded whole (one atomic object) for :meth:`collect` to bring in."""
        ...

    def remove(self, name: str) -> None:
        """Remove ``name`` from the stage's output and from what tasks may fetch (a marker
        that an earlier attempt left and the new one must not see)."""
        ...

    def collect(self) -> list[str]:
        """On the stage's node, once the tasks are done: bring every delivered file into the
        stage's folder. Returns their names."""
        ...


@dataclass(frozen=True)
class LocalFiles:
    """The stage's folders are visible wherever its tasks run (a local or shared root, or
    one process): tasks read and write them directly."""

    folder: str

    def input(self, path: str | Path) -> Path:
        return Path(path)

    @contextlib.contextmanager
    def workspace(self, fetch: Sequence[str] = ()) -> Iterator[Path]:
        yield Path(self.folder)

    def publish(self, workspace: Path, *names: str) -> None:
        pass

    def remove(self, name: str) -> None:
        (Path(self.folder) / name).unlink(missing_ok=True)

    def collect(self) -> list[str]:
        return []
