"""DeepSpeed training inside Ray Train: the one place that imports both.

- ``ray_train.fit``: launch a run (resume, failures, divergence); ``local.fit_local``: the
  same loop in this process (world size 1), for tests, benchmarks and notebooks;
- ``loop``: the loop; ``session``: what differs between a Ray Train worker and one process;
  ``engine``: DeepSpeed wiring; ``checkpoint``: save/restore;
- ``objective``, ``data``, ``ema``, ``monitor``, ``faults``: the loop's parts.

Importing this package imports neither Ray nor DeepSpeed: import the modules you need.
"""
