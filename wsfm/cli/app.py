"""``wsfm``: run pipelines and sample from registered models."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _home(arg: str | None) -> str:
    """The working folder: an absolute local path, or a URI (``s3://bucket/prefix``) as given."""
    from wsfm.orchestrate.storage import is_uri

    home = arg or os.environ.get("WSFM_HOME") or "wsfm-runs"
    return home if is_uri(home) else str(Path(home).resolve())


def _cmd_run(args: argparse.Namespace) -> int:
    from wsfm.cli.run import run_logged
    from wsfm.config import load_pipeline

    config = load_pipeline(args.pipeline, profile=args.profile)
    config = _train_overrides(config, workers=args.workers, gpu=args.gpu)
    summary = run_logged(config, home=_home(args.home), verbose=args.verbose,
                         pipeline_file=str(args.pipeline), profile=args.profile,
                         force=args.force, from_stage=args.from_stage, only=args.only,
                         dry_run=args.dry_run, address=args.address)
    return 0 if summary.ok else 1


def _train_overrides(config, *, workers: int | None, gpu: bool | None):
    """``--workers`` / ``--gpu`` replace ``train.num_workers`` / ``train.use_gpu``: the
    changed config is validated again and enters the training stages' fingerprints."""
    import dataclasses

    changes = {k: v for k, v in (("num_workers", workers), ("use_gpu", gpu)) if v is not None}
    if not changes:
        return config
    try:
        train = dataclasses.replace(config.train, **changes)
    except ValueError as exc:
        from wsfm.config import ConfigError

        given = ", ".join(f"train.{k}={v}" for k, v in changes.items())
        raise ConfigError(f"{given} (from the command line): {exc}") from exc
    return dataclasses.replace(config, train=train)


def _cmd_sample(args: argparse.Namespace) -> int:
    from wsfm.cli.models import cmd_sample

    return cmd_sample(args, Path(_home(args.home)))


def _cmd_shards_verify(args: argparse.Namespace) -> int:
    from wsfm.shards import read_manifest, verify_shards

    records = read_manifest(args.dir)
    problems = verify_shards(args.dir)
    for problem in problems:
        print(f"BAD {problem}")
    if problems:
        print(f"{len(problems)} problem(s) in {args.dir} ({len(records)} shards in the manifest)")
        return 1
    print(f"ok: {len(records)} shards, {sum(r.count for r in records):,} drafts match the manifest")
    return 0


def _cmd_shards_stats(args: argparse.Namespace) -> int:
    import numpy as np

    from wsfm.shards import read_manifest

    records = read_manifest(args.dir)
    counts = np.array([r.count for r in records])
    sizes = np.array([r.bytes for r in records])
    print(f"{args.dir}: {len(records)} shards, {counts.sum():,} drafts, "
          f"{sizes.sum() / 1e6:.2f} MB, pair={','.join(sorted({r.pair for r in records}))}")
    print(f"  drafts per shard: min {counts.min():,}  median {int(np.median(counts)):,}  "
          f"max {counts.max():,}")
    print(f"  MB per shard:     min {sizes.min() / 1e6:.3f}  median {np.median(sizes) / 1e6:.3f}"
          f"  max {sizes.max() / 1e6:.3f}")
    seconds = sum(r.seconds for r in records)
    if seconds > 0:
        print(f"  generation: {seconds:.1f} task-seconds, {counts.sum() / seconds:,.0f} drafts/s "
              "per task")
    if args.per_shard:
        for r in records:
            print(f"  {r.shard}  {r.count:>9,} drafts  {r.bytes:>12,} bytes  seed {r.seed}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from wsfm.cli.bench import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from wsfm import __version__

    parser = argparse.ArgumentParser(prog="wsfm", description="Warm-Start Flow Matching: run "
                                     "pipelines and sample from registered models.")
    parser.add_argument("--version", action="version", version=f"wsfm {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="working folder for artifacts, the MLflow store and Ray "
                        "results: a folder or a URI such as s3://bucket/prefix (then "
                        "MLFLOW_TRACKING_URI is required) (default: $WSFM_HOME or ./wsfm-runs)")
    # What every command that reads a pipeline takes first.
    piped = argparse.ArgumentParser(add_help=False, parents=[common])
    piped.add_argument("pipeline", help="pipeline YAML, e.g. pipelines/toy2d.yaml")
    piped.add_argument("--profile", help="a named profile from the YAML, e.g. smoke")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[piped], help="run a pipeline's DAG of stages on Ray",
                         description="Run what is not up to date. Reads the pipeline YAML and "
                         "<home>/artifacts; writes each stage's output under "
                         "<home>/artifacts/<pipeline>/<stage>/<fingerprint>/, MLflow runs to "
                         "<home>/mlflow.db (or $MLFLOW_TRACKING_URI), Ray Train folders to "
                         "<home>/ray and everything but the stage lines to "
                         "<home>/logs/<timestamp>-<pipeline>.log.")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--from", dest="from_stage", metavar="STAGE",
                       help="rerun STAGE and everything downstream of it")
    group.add_argument("--only", metavar="STAGE", help="rerun STAGE alone (upstream must exist)")
    group.add_argument("--force", action="store_true", help="rerun every stage")
    run.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="Ray Train workers per training stage (overrides train.num_workers)")
    run.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                     help="train on GPUs (bf16 needs train.precision: bf16); overrides "
                     "train.use_gpu")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="stream the log (Ray, DeepSpeed, MLflow, worker output) as well")
    run.set_defaults(func=_cmd_run)

    sample = sub.add_parser("sample", parents=[common], help="draw samples from a registered model",
                            description="Reads a registered model from the MLflow store "
                            "(<home>/mlflow.db or $MLFLOW_TRACKING_URI); writes --out (.npy).")
    sample.add_argument("--model", required=True, help="e.g. models:/wsfm-toy2d@champion")
    sample.add_argument("-n", type=int, default=1000, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, help="solver steps (default: the model's t0 and h)")
    sample.add_argument("--t0", type=float, help="start time (default: the model's)")
    sample.add_argument("--method", help="ODE method, e.g. heun (default: the model's)")
    sample.add_argument("--out", required=True, help="vectors: .npy; images: .npy and a .png "
                        "grid beside it; text: a text file, one sample per line")
    sample.set_defaults(func=_cmd_sample)

    _add_cluster_commands(sub, common)

    from wsfm.cli.models import add_models_command

    add_models_command(sub, common, _home)

    bench = sub.add_parser("bench", parents=[piped], help="run the full comparison (the job "
                           "plus the YAML's bench: section) and rewrite its BENCHMARKS.md "
                           "section (rows, costs, targets, where the time went)")
    bench.add_argument("--dry-run", action="store_true",
                       help="print the comparison's plan and write nothing")
    bench.add_argument("--benchmarks", help="the BENCHMARKS.md to rewrite (default: the "
                       "repository's)")
    bench.set_defaults(func=_cmd_bench)

    shards = sub.add_parser("shards", help="check or summarise a folder of draft shards")
    shards_sub = shards.add_subparsers(dest="shards_command", required=True, metavar="ACTION")
    verify = shards_sub.add_parser("verify", help="check every shard's size and sha256 "
                                   "against the manifest; exit 1 naming any bad shard",
                                   description="Reads DIR's manifest.parquet and shards; "
                                   "writes nothing.")
    verify.add_argument("dir", type=Path, help="a generate_drafts output folder")
    verify.set_defaults(func=_cmd_shards_verify)
    stats = shards_sub.add_parser("stats", help="print shard counts and sizes",
                                  description="Reads DIR's manifest.parquet; writes nothing.")
    stats.add_argument("dir", type=Path, help="a generate_drafts output folder")
    stats.add_argument("--per-shard", action="store_true", help="one line per shard too")
    stats.set_defaults(func=_cmd_shards_stats)
    _add_operator_commands(sub, common, piped)
    return parser


def _add_operator_commands(sub, common: argparse.ArgumentParser,
                           piped: argparse.ArgumentParser) -> None:
    """``wsfm check``, ``wsfm dag``, ``wsfm status`` and ``wsfm runs``: each module adds its
    own subcommand (``add_parser``)."""
    from wsfm.cli import check, dag, runs, status

    check.add_parser(sub, piped)
    dag.add_parser(sub, piped)
    status.add_parser(sub, piped)
    runs.add_parser(sub, common)


def _add_cluster_commands(sub, common: argparse.ArgumentParser) -> None:
    """``wsfm submit`` and ``wsfm jobs`` (the logic is in :mod:`wsfm.cli.submit`)."""
    from wsfm.cli.submit import cmd_jobs, cmd_submit

    address = argparse.ArgumentParser(add_help=False)
    address.add_argument("--address", help="the head's Jobs API, http://HEAD:8265 (default: "
                         "$RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS)")
    submit = sub.add_parser("submit", parents=[common, address],
                            help="run a pipeline as a Ray job on a cluster")
    submit.add_argument("pipeline", help="pipeline YAML inside the project, e.g. "
                        "pipelines/digits.yaml")
    submit.add_argument("--profile", help="a named profile from the YAML")
    group = submit.add_mutually_exclusive_group()
    group.add_argument("--from", dest="from_stage", metavar="STAGE")
    group.add_argument("--only", metavar="STAGE")
    group.add_argument("--force", action="store_true")
    submit.add_argument("--dry-run", action="store_true", help="the job prints the plan")
    submit.add_argument("--bench", action="store_true", help="the job runs the full comparison "
                        "(wsfm bench: the rivals, every solver) instead of the lean job")
    submit.add_argument("--workers", type=int, metavar="N")
    submit.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None)
    submit.add_argument("--env", action="append", metavar="KEY=VALUE",
                        help="another environment variable for the job (repeatable)")
    submit.add_argument("--submission-id", help="the job's id (default: Ray makes one)")
    submit.add_argument("--working-dir", type=Path, help="the folder uploaded as the job's "
                        "working_dir, holding the pipeline file (default: this project)")
    submit.add_argument("--follow", action="store_true", help="print the job's logs until "
                        "it ends; exit 0 if it SUCCEEDED, 1 if it FAILED, 130 if STOPPED")
    submit.set_defaults(func=cmd_submit)

    jobs = sub.add_parser("jobs", help="list, inspect, follow or stop submitted jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    jobs_sub.add_parser("list", parents=[address], help="every submitted job, with its "
                        "pipeline and profile").set_defaults(func=cmd_jobs)
    for action, text in (("status", "a job's status"), ("logs", "a job's logs"),
                         ("stop", "stop a job")):
        cmd = jobs_sub.add_parser(action, parents=[address], help=text)
        cmd.add_argument("id", help="the submission id")
        if action == "logs":
            cmd.add_argument("--follow", action="store_true", help="until the job ends")
        cmd.set_defaults(func=cmd_jobs)


def main(argv: list[str] | None = None) -> int:
    """Run a command. The project's own user-facing errors (``wsfm.errors.UserError``: the
    pipeline file, its data, an input path, a flag) print as one line and exit 2; a run that
    a failure of the machinery stopped (``wsfm.errors.RunFailed``: its traceback is in the
    run's log) prints one line and exits 1; anything else keeps its traceback."""
    from wsfm.errors import RunFailed, UserError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        # One line whatever the message (a YAML parser's, say, spans several): the contract
        # that scripts and the reliability tests rely on.
        print("wsfm: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    except RunFailed as exc:
        print("wsfm: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1
