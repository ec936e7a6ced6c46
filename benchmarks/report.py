"""Kept for the benchmark scripts: the section writer lives in :mod:`wsfm.benchmarks_md` (the
``wsfm bench`` command imports it from the package)."""

from wsfm.benchmarks_md import BENCHMARKS, machine, markdown_table, median, write_section

__all__ = ["BENCHMARKS", "machine", "markdown_table", "median", "write_section"]
