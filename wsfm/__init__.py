"""Warm-Start Flow Matching: the method (``wsfm.flow``, ``wsfm.sampler``) and its pipeline."""

from typing import Any

__all__ = ["WarmStartSampler"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``wsfm.WarmStartSampler`` is imported on first use: importing the sampler (torch, the
    # draft kinds) at ``import wsfm`` cost every ``wsfm`` command about 2 s before argparse.
    if name == "WarmStartSampler":
        from wsfm.sampler import WarmStartSampler

        return WarmStartSampler
    raise AttributeError(f"module 'wsfm' has no attribute {name!r}")
