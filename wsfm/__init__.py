"""Warm-Start Flow Matching: the method (``wsfm.flow``, ``wsfm.sampler``) and its pipeline."""

from wsfm.sampler import WarmStartSampler

__all__ = ["WarmStartSampler"]
__version__ = "0.1.0"
