"""Quality against speed for one pipeline, written to its section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.quality pipelines/digits.yaml [--profile P] [--home DIR]

The same as ``wsfm bench`` (``wsfm.cli.bench``): the rows, the targets and the time all come from
the evaluation's typed report (``wsfm.report.EvalReport``) and its one row rule.
"""

from __future__ import annotations

from wsfm.cli.bench import main as _main

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    return _main(argv, prog=".venv/bin/python -m benchmarks.quality")


if __name__ == "__main__":
    raise SystemExit(main())
