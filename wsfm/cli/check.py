"""``wsfm check PIPELINE``: the pipeline file and its data, checked as ``wsfm run`` checks
them before any work, and nothing else (no Ray, no MLflow, no artifact).

Prints one line on success, e.g.::

    vectors (profile default): data ok: parquet, 7,993 training rows and 2,007 held out
    (5 values each)

and, like every command, one ``wsfm: error: ...`` line (exit 2) on a bad key, a missing file or
a bad row (``wsfm.data``: the file and the row).
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "summary"]


def summary(config) -> str:
    """Load and check the data of ``config`` (``wsfm.data.datasets.load_dataset``); what was
    found, in one line."""
    from wsfm.data.datasets import load_dataset

    data = load_dataset(config.data)
    each = (f"{data.text.seq_len} characters" if data.text is not None
            else "x".join(map(str, data.shape)) if data.kind == "image"
            else f"{data.dim} values")
    return (f"data ok: {config.data.kind}, {len(data.train):,} training rows and "
            f"{len(data.test):,} held out ({each} each)")


def _cmd_check(args: argparse.Namespace) -> int:
    from wsfm.config import load_pipeline

    config = load_pipeline(args.pipeline, profile=args.profile)
    print(f"{config.name} (profile {args.profile or 'default'}): {summary(config)}")
    return 0


def add_parser(sub, piped: argparse.ArgumentParser) -> None:
    """The subcommand; ``piped``: the parent parser with --home, the pipeline and --profile."""
    check = sub.add_parser(
        "check", parents=[piped], help="check the pipeline file and its data, and stop",
        description="Reads the pipeline YAML (every key, as wsfm run does) and its data, "
        "checking every row: users' data fails with one line naming the file and the row. "
        "Starts neither Ray nor MLflow and writes nothing. Exit 0 when both are good, 2 "
        "otherwise.")
    check.set_defaults(func=_cmd_check)
