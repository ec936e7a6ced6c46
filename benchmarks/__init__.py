"""Benchmark commands: each writes its own section of BENCHMARKS.md (see report.py)."""
