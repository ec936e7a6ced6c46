"""The ``wsfm`` command line, every command in this package.

- ``app.py``: the parser (:func:`build_parser`), :func:`main` (the ``wsfm`` console script
  and ``python -m wsfm.cli``) and the small commands (``run``, ``sample``, ``shards``,
  ``bench``'s dispatch).
- ``run.py``: ``wsfm run``'s output split between the user and the log file.
- ``dag.py``, ``status.py``, ``runs.py`` (with ``common.py``): the operator's commands.
- ``models.py``: ``wsfm sample`` and ``wsfm models list|promote``.
- ``submit.py``: ``wsfm submit`` and ``wsfm jobs`` (Ray jobs on a cluster).
- ``bench.py``: ``wsfm bench`` (a pipeline's BENCHMARKS.md section).

Importing the package imports only :mod:`wsfm.cli.app`, which imports the rest lazily (per
command), so start-up stays light.
"""

from wsfm.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
