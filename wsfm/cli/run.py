"""``wsfm run``'s output: the user sees stage lines, progress and the summary; the rest
(Ray, DeepSpeed, MLflow, worker output, tracebacks) goes to
``<home>/logs/<timestamp>-<pipeline>.log``, whose path is printed first and again on failure.
``verbose`` streams the log as well. A failure of the driver itself (not of a stage, which
the runner reports) ends as one line (``wsfm.errors.RunFailed``) with its traceback in the
log."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from wsfm.config import PipelineConfig
from wsfm.errors import RunFailed, UserError
from wsfm.orchestrate.board import StageBoard
from wsfm.orchestrate.console import remedy, short_error
from wsfm.orchestrate.logfile import capture, log_path
from wsfm.orchestrate.runner import RunSummary, run_pipeline
from wsfm.orchestrate.storage import locate

__all__ = ["run_logged"]


def run_logged(config: PipelineConfig, *, home: str | Path, verbose: bool = False,
               **kwargs: Any) -> RunSummary:
    """:func:`run_pipeline` with its output split between the user and the log file.
    ``kwargs`` go to :func:`run_pipeline` (``pipeline_file``, ``force``, ``dry_run``...)."""
    if kwargs.get("dry_run"):
        return run_pipeline(config, home=home, **kwargs)
    path = log_path(locate(home).logs, config.name)
    with capture(path, verbose=verbose) as cap:  # run_pipeline prints the path first
        # With -v the log streams too: a redrawn bar would be torn by it, so print lines.
        board = StageBoard(cap.user, live=False if verbose else None)
        try:
            return run_pipeline(config, home=home, echo=cap.echo, board=board, log_path=path,
                                **kwargs)
        except UserError:
            raise
        except Exception as exc:
            traceback.print_exc()  # fd 2: into the log only
            raise RunFailed(f"the run stopped: {short_error(exc)}; {remedy(exc, 'the run')} "
                            f"(log: {cap.path})") from None
