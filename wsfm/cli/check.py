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
    """Check every row of the data of ``config``; what was found, in one line. A keyed source
    (npy, image folder, Parquet, WebDataset) is checked as ``prepare_data`` streams it, a
    batch at a time, so a source larger than memory is checked too; the other kinds are loaded
    (``wsfm.data.datasets.load_dataset``)."""
    from wsfm.data.datasets import keyed_source, load_dataset
    from wsfm.data.prepared import check_held_out, route_keyed

    cfg = config.data
    kind: str
    keyed = keyed_source(cfg)
    if keyed is None:
        data = load_dataset(cfg)
        kind, shape, n_train, n_test = data.kind, data.shape, len(data.train), len(data.test)
        dim, seq_len = data.dim, data.text.seq_len if data.text is not None else None
    else:
        blocks, kind_of = keyed
        n_train = n_test = dim = 0
        for train, test in route_keyed(blocks, cfg):
            n_train, n_test, dim = n_train + len(train), n_test + len(test), train.shape[1]
        check_held_out(cfg, n_train, n_test)
        (kind, shape), seq_len = kind_of(cfg, dim), None
    each = (f"{seq_len} characters" if seq_len is not None
            else "x".join(map(str, shape)) if kind == "image" else f"{dim} values")
    return (f"data ok: {cfg.kind}, {n_train:,} training rows and {n_test:,} held out "
            f"({each} each)")


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
