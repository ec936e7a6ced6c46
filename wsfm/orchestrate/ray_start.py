"""Starting Ray for a run: join a running cluster, or start a local runtime.

Ray starts only when a stage has to run (``wsfm.orchestrate.dispatch``); the driver shuts
down a runtime it started itself, and leaves a joined cluster running.
"""

from __future__ import annotations

import os

from wsfm.config import PipelineConfig
from wsfm.orchestrate.storage import storage_env
from wsfm.train.faults import ENV as FAULT_ENV

__all__ = ["OOM_RETRIES", "init_ray"]

# Ray retries a task that its memory monitor killed forever by default (``task_oom_retries``
# -1, whatever ``max_retries`` says): a stage would hang, killed and restarted, with nothing
# on the console. A runtime that wsfm starts gives up after this many, and the stage fails
# with the monitor's numbers (``RAY_task_oom_retries`` in the environment overrides it).
OOM_RETRIES = 2


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
    address = address or os.environ.get("RAY_ADDRESS")
    system = (None if address or "RAY_task_oom_retries" in os.environ
              else {"task_oom_retries": OOM_RETRIES})
    ray.init(address=address, runtime_env={"env_vars": env}, include_dashboard=False,
             log_to_driver=True, _system_config=system)
    return True
