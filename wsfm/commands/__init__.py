"""Operator commands beside ``wsfm run``: ``dag``, ``status``, ``runs``; and ``run``'s log file.

Each module adds its subcommand to the parser (``add_parser``); ``wsfm.cli`` wires them with
:func:`add_commands`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_commands"]


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    """Add ``dag``, ``status`` and ``runs`` to the ``wsfm`` subparsers ``sub``."""
    from wsfm.commands import dag, runs, status

    dag.add_parser(sub, common)
    status.add_parser(sub, common)
    runs.add_parser(sub, common)
