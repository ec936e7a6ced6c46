"""Starting Ray for a run: join a running cluster, or start a local runtime.

Ray starts only when a stage has to run (``wsfm.orchestrate.dispatch``); the driver shuts
down a runtime it started itself, and leaves a joined cluster running.
"""

from __future__ import annotations

import os

from wsfm.config import PipelineConfig
from wsfm.orchestrate.storage import storage_env
from wsfm.train.faults import ENV as FAULT_ENV

__all__ = ["init_ray"]


def init_ray(config: PipelineConfig, address: str | None) -> bool:
    """Join ``address`` / ``RAY_ADDRESS``, or start a local runtime. True if we started it.
    Workers' output is forwarded to the driver (``log_to_driver``), whose stdout and stderr
    the CLI sends into the invocation's log file."""
    import ray

    if ray.is_initialized():
        return False
    env = {**({} if config.train.use_gpu else {"DS_ACCELERATOR": "cpu"}),
           **storage_env(),  # a joined cluster's workers open an object-store home too
           **{k: os.environ[k] for k in (FAULT_ENV,) if k in os.environ}}  # a fault drill
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), runtime_env={"env_vars": env},
             include_dashboard=False, log_to_driver=True)
    return True
