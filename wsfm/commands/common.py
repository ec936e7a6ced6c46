"""What the operator commands share: the working folder and the pipeline's store."""

from __future__ import annotations

import os
from pathlib import Path

from wsfm.config import PipelineConfig, load_pipeline
from wsfm.orchestrate.staleness import StageState, pipeline_status
from wsfm.orchestrate.store import ArtifactStore
from wsfm.stages import STAGES

__all__ = ["home_of", "load_states"]


def home_of(arg: str | None) -> Path:
    """``--home``, else ``$WSFM_HOME``, else ``./wsfm-runs`` (as ``wsfm run``)."""
    return Path(arg or os.environ.get("WSFM_HOME") or "wsfm-runs").resolve()


def load_states(pipeline: str, profile: str | None,
                home: Path) -> tuple[PipelineConfig, list[StageState]]:
    """The pipeline's config and every stage's standing in ``home``'s artifact store."""
    config = load_pipeline(pipeline, profile=profile)
    store = ArtifactStore(home / "artifacts", config.name)
    return config, pipeline_status(STAGES, config, store)
