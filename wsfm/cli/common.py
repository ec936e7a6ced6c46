"""What the operator commands share: the working folder and the pipeline's store."""

from __future__ import annotations

import os
from pathlib import Path

from wsfm.config import PipelineConfig, load_pipeline
from wsfm.orchestrate.staleness import StageState, pipeline_status
from wsfm.orchestrate.storage import is_uri, locate
from wsfm.orchestrate.stores import open_store
from wsfm.stages import STAGES

__all__ = ["home_of", "load_states"]


def home_of(arg: str | None) -> str:
    """``--home``, else ``$WSFM_HOME``, else ``./wsfm-runs`` (as ``wsfm run``): a resolved
    local path, or a URI as given."""
    home = arg or os.environ.get("WSFM_HOME") or "wsfm-runs"
    return home if is_uri(home) else str(Path(home).resolve())


def load_states(pipeline: str, profile: str | None,
                home: str) -> tuple[PipelineConfig, list[StageState]]:
    """The pipeline's config and every stage's standing in ``home``'s artifact store."""
    config = load_pipeline(pipeline, profile=profile)
    store = open_store(locate(home).artifacts, config.name)
    return config, pipeline_status(STAGES, config, store)
