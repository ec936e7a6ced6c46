"""``wsfm status PIPELINE``: is each stage up to date, and if not, why (like ``dvc status``).

Reads the pipeline YAML and ``<home>/artifacts/<pipeline>/*/*/_SUCCESS.json``; writes
nothing; exits 1 when any stage is stale or missing, so that CI can use it::

    toy2d (profile smoke): 3 of 7 stages up to date
      pretrain_draft   up to date
      train_refiner    stale      config train.lr: 0.002 -> 0.001
      train_baseline   running    being made by MLflow run 3f2a..., pid 4242 on node-1 since ...
      evaluate         stale      upstream train_refiner changed (stale)
"""

from __future__ import annotations

import argparse

from wsfm.orchestrate.staleness import StageState

__all__ = ["add_parser", "format_status"]


def format_status(states: list[StageState], title: str) -> list[str]:
    """The report's lines: a headline (over the stages of the job: an unused stage is not
    part of it), then one line per stage and one per further reason."""
    used = [s for s in states if s.state != "unused"]
    fresh = sum(s.up_to_date for s in used)
    lines = [f"{title}: {fresh} of {len(used)} stages up to date"]
    for s in states:
        label = "up to date" if s.up_to_date else "not used" if s.state == "unused" else s.state
        reasons = s.reasons or [""]
        lines.append(f"  {s.stage:<16} {label:<10} {reasons[0]}".rstrip())
        lines += [f"  {'':<16} {'':<10} {reason}" for reason in reasons[1:]]
    return lines


def _cmd_status(args: argparse.Namespace) -> int:
    from wsfm.cli.common import home_of, load_states

    config, states = load_states(args.pipeline, args.profile, home_of(args.home))
    title = f"{config.name} (profile {args.profile or 'default'})"
    for line in format_status(states, title):
        print(line)
    return 0 if all(s.up_to_date for s in states if s.state != "unused") else 1


def add_parser(sub, piped: argparse.ArgumentParser) -> None:
    """The subcommand; ``piped``: the parent parser with --home, the pipeline and --profile."""
    status = sub.add_parser(
        "status", parents=[piped], help="is each stage up to date? exit 1 if not",
        description="Per stage: up to date, or stale (which config keys, code version or "
        "upstream output changed since its newest finished output), missing, running (an "
        "invocation holds its lock and is making it: its MLflow run, pid, host, since when), "
        "or not used (not part of this config's job, not counted). Reads the "
        "pipeline YAML and the _SUCCESS.json records under <home>/artifacts/<pipeline>/; "
        "writes nothing; starts neither Ray nor MLflow. Exit 0 when every stage is up to "
        "date, 1 otherwise.")
    status.set_defaults(func=_cmd_status)
