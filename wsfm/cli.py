"""``wsfm``: run pipelines and sample from registered models."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _home(arg: str | None) -> Path:
    return Path(arg or os.environ.get("WSFM_HOME") or "wsfm-runs").resolve()


def _cmd_run(args: argparse.Namespace) -> int:
    from wsfm.config import load_pipeline
    from wsfm.orchestrate.runner import run_pipeline

    config = load_pipeline(args.pipeline, profile=args.profile)
    config = _train_overrides(config, workers=args.workers, gpu=args.gpu)
    summary = run_pipeline(config, home=_home(args.home), pipeline_file=str(args.pipeline),
                           profile=args.profile, force=args.force, from_stage=args.from_stage,
                           only=args.only, dry_run=args.dry_run, address=args.address)
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
    import mlflow
    import numpy as np

    from wsfm.tracking import tracking_uri

    from mlflow.exceptions import MlflowException

    from wsfm.errors import InputNotFound

    mlflow.set_tracking_uri(tracking_uri(_home(args.home)))
    try:
        model = mlflow.pyfunc.load_model(args.model)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise InputNotFound(f"no model {args.model} in {mlflow.get_tracking_uri()}: "
                            f"{exc.message}") from exc
    samples = model.predict({"n": args.n, "seed": args.seed, "steps": args.steps})
    np.save(args.out, np.asarray(samples))
    print(f"wrote {len(samples)} samples of shape {tuple(np.asarray(samples).shape[1:])} "
          f"to {args.out}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsfm", description="Warm-Start Flow Matching: run "
                                     "pipelines and sample from registered models.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="working folder for artifacts, the MLflow store and Ray "
                        "results (default: $WSFM_HOME or ./wsfm-runs)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run a pipeline's DAG of stages on Ray")
    run.add_argument("pipeline", help="pipeline YAML, e.g. pipelines/toy2d.yaml")
    run.add_argument("--profile", help="a named profile from the YAML, e.g. smoke")
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
    run.set_defaults(func=_cmd_run)

    sample = sub.add_parser("sample", parents=[common], help="draw samples from a registered model")
    sample.add_argument("--model", required=True, help="e.g. models:/wsfm-toy2d@champion")
    sample.add_argument("-n", type=int, default=1000, help="number of samples")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--steps", type=int, help="solver steps (default: the model's t0 and h)")
    sample.add_argument("--out", required=True, help="output .npy file")
    sample.set_defaults(func=_cmd_sample)

    shards = sub.add_parser("shards", help="check or summarise a folder of draft shards")
    shards_sub = shards.add_subparsers(dest="shards_command", required=True, metavar="ACTION")
    verify = shards_sub.add_parser("verify", help="check every shard's size and sha256 "
                                   "against the manifest; exit 1 naming any bad shard")
    verify.add_argument("dir", type=Path, help="a generate_drafts output folder")
    verify.set_defaults(func=_cmd_shards_verify)
    stats = shards_sub.add_parser("stats", help="print shard counts and sizes")
    stats.add_argument("dir", type=Path, help="a generate_drafts output folder")
    stats.add_argument("--per-shard", action="store_true", help="one line per shard too")
    stats.set_defaults(func=_cmd_shards_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command. The project's own user-facing errors (``wsfm.errors.UserError``: the
    pipeline file, its data, an input path, a flag) print as one line and exit 2; anything
    else is a bug or a failure of the machinery and keeps its traceback."""
    from wsfm.errors import UserError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        # One line whatever the message (a YAML parser's, say, spans several): the contract
        # that scripts and the reliability tests rely on.
        print("wsfm: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
