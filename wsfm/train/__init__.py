"""DeepSpeed training inside Ray Train: the one place that imports both.

- ``ray_train.fit``: launch a run (resume, failures, divergence);
- ``loop``: the per-worker loop; ``engine``: DeepSpeed wiring; ``checkpoint``: save/restore;
- ``objective``, ``data``, ``ema``, ``monitor``, ``faults``: the loop's parts.

Importing this package imports neither Ray nor DeepSpeed: import the modules you need.
"""
