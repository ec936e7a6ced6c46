"""Quality metrics (distances between sample sets; more kinds come with their tasks)."""

from wsfm.metrics.distances import energy_distance, mmd_rbf, sliced_wasserstein, wasserstein2_1d

__all__ = ["energy_distance", "mmd_rbf", "sliced_wasserstein", "wasserstein2_1d"]
