"""Recovery from a lost tracking store: what a run could not log, written down, and logged
by the next invocation.

When the tracking server stops answering mid-run, or a local store's disk fills up
(:class:`wsfm.tracking.TrackingLost`), no
further stage starts and the running ones finish and commit; :class:`PendingRuns` then
writes down in ``<lock root>/.tracking-pending/<parent run>.json`` the runs that could not
be logged, and makes the one-line error the command fails with. The next invocation, with
the server back, logs those runs first (:func:`settle_pending`: into the same run ids:
params, metrics, files, step history) and then finds the finished stages cached.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wsfm.orchestrate.console import Echo
from wsfm.orchestrate.storage import Location

if TYPE_CHECKING:
    from wsfm.orchestrate.stage_task import Store
    from wsfm.tracking import Tracker, TrackingLost

__all__ = ["PENDING", "PendingRuns", "settle_pending"]

PENDING = ".tracking-pending"  # under the lock root: runs an invocation could not log


@dataclass
class PendingRuns:
    """The runs of this invocation that are not logged yet (written down only when the
    tracking server is lost): the parent, and ``(stage, run id, fingerprint)`` per stage."""

    folder: Path
    pipeline: str
    parent: str = ""
    runs: list[dict[str, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # stages finished and committed, unlogged

    def add(self, stage: str, run_id: str, fingerprint: str, committed: bool) -> None:
        self.runs.append({"stage": stage, "run_id": run_id, "fingerprint": fingerprint})
        if committed:
            self.kept.append(stage)

    def fail(self, lost: TrackingLost, where: Location, echo: Echo,
             log_path: Path | None) -> TrackingLost:
        """Write the record down and return the one-line error (a ``TrackingLost``). On a
        full disk the record may not fit either: the error then says which runs stay
        unlogged."""
        from wsfm.tracking import TrackingLost

        path = self.folder / f"{self.parent or 'no-parent'}.json"
        tmp = path.with_name(path.name + ".tmp")
        unwritten = ""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"pipeline": self.pipeline, "parent": self.parent,
                                       "uri": lost.uri, "runs": self.runs}, indent=2))
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            unwritten = (f" (the list of runs to log later could not be written either: "
                         f"{exc.strerror or exc}; the stage runs "
                         f"{', '.join(r['run_id'] for r in self.runs) or '(none)'} stay "
                         "unlogged, their outputs are kept)")
        if log_path is not None:
            echo(f"[wsfm] full log: {log_path}")
        kept = (f"{', '.join(self.kept)} finished and {'is' if len(self.kept) == 1 else 'are'}"
                " kept" if self.kept else "every finished stage is kept")
        again = ("Free some space on its disk" if lost.full else "Start the server again")
        return TrackingLost(lost.uri, f"{lost.what}. Nothing done was lost: {kept} under "
                            f"{where.artifacts}, and no further stage was started. {again} "
                            "and run the same command: finished stages are reused, and the "
                            f"runs not logged now are logged then{unwritten}", full=lost.full)


def settle_pending(tracker: Tracker, store: Store, folder: Path, echo: Echo) -> list[str]:
    """Log the runs that an earlier invocation could not (``<folder>/<parent>.json``, written
    when it lost the tracking server): a stage whose output was committed by that run gets
    its record, files and step history logged into that same run, which then ends FINISHED
    (tagged ``wsfm.logged_late``); a stage that did not commit, and the earlier parent run,
    end FAILED. Returns the stages logged. A run the store does not know (the tracking URI
    changed) is passed over with a line saying so."""
    from mlflow.exceptions import MlflowException

    logged: list[str] = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        pending = json.loads(path.read_text())
        if pending.get("pipeline") != store.pipeline:
            continue
        for entry in pending["runs"]:
            if _settle_run(tracker, store, entry, echo):
                logged.append(entry["stage"])
        if pending.get("parent"):
            try:
                tracker.log(pending["parent"], tags={"wsfm.error": "the tracking store was "
                                                     "lost during this invocation"})
                tracker.finish(pending["parent"], False)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        path.unlink()
    return logged


def _settle_run(tracker: Tracker, store: Store, entry: dict[str, str], echo: Echo) -> bool:
    """Log one stage's run (True), or end it FAILED when its output was not committed."""
    from mlflow.exceptions import MlflowException

    stage, run_id, fp = entry["stage"], entry["run_id"], entry["fingerprint"]
    record = store.load(stage, fp)
    try:
        if record is not None and record.get("mlflow_run_id") == run_id:
            tracker.log_stage(run_id, record, store.stage_in(stage, fp))
            tracker.log(run_id, tags={"wsfm.logged_late": "true"})
            tracker.finish(run_id, True)
            echo(f"[wsfm] {stage:<16} logged   (run {run_id}, made when the tracking "
                 "store was lost)")
            return True
        tracker.log(run_id, tags={"wsfm.error": "the tracking store was lost "
                                  "before this stage committed its output"})
        tracker.finish(run_id, False)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        echo(f"[wsfm] {stage:<16} run {run_id} is not in {tracker.uri}: not logged")
    return False

