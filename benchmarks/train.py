"""Training throughput, written to the ``train`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.train [--steps 300] [--big-steps 80] [--batch 512]
    .venv/bin/python -m benchmarks.train --hot-path OTHER_TREE [--rounds 3] [--steps 300]

The second form writes the ``train-hot-path`` section instead: the pipelines' loop (1 worker
in-process, 2 under Ray Train) on this checkout and on another one (e.g. ``git worktree add``
of an older commit), alternated run by run, for a before/after of a change to the loop.

In one run, for two velocity MLPs (the toy2d net, 256 x 3, and a bigger 1024 x 4 one, whose
compute makes the fixed per-step overhead visible against real work), the same cold
objective (noise -> toy2d data), the same global batch and the same optimizer:

- the median step time of a plain single-process PyTorch loop (AdamW, gradient clipping,
  EMA; 1 thread, like a 1-CPU Ray worker) against the DeepSpeed engine (fp32), ZeRO-2 as in
  the pipelines and ZeRO-0: once interleaved step by step in one process (the robust ratio on
  a shared machine), once as the whole stack under Ray Train with 1 worker (target: at most
  1.3x);
- samples/s with 1 and with 2 CPU workers (ZeRO-2, same global batch);
- the peak RSS of each worker (and of the plain loop's process).

Step times are medians over the steps after the first tenth (at most 20 warm-up steps), from the
loop's own timing (which knows only each window of ``log_every`` steps between its host syncs:
each step counts as its window's mean; windows of 25 steps here); start-up (Ray, DeepSpeed,
worker group) and checkpoints are left out. The plain loop runs in a fresh subprocess so that
its thread count and RSS are its own, three times (before, between and after the Ray runs): this
machine's load drifts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import markdown_table, write_section
from wsfm.config import DataConfig, FlowConfig, ModelConfig, TrainConfig
from wsfm.train.spec import TrainSpec

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"toy2d MLP 256x3": ModelConfig(hidden=256, depth=3, time_dim=32),
          "MLP 1024x4": ModelConfig(hidden=1024, depth=4, time_dim=32)}


def _spec(model: ModelConfig, steps: int, batch: int, workers: int, out: str,
          zero_stage: int = 2) -> TrainSpec:
    train = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, warmup_steps=min(20, steps),
                        num_workers=workers, zero_stage=zero_stage, checkpoint_every=0,
                        log_every=min(25, steps), max_failures=0)
    return TrainSpec(mode="cold", data=DataConfig(n_train=50000, n_test=1000), flow=FlowConfig(),
                     model=model, train=train, dim=2, out_dir=out)


class _Stepper:
    """One training step of the loop's work (batch, loss, update, EMA): plain PyTorch, or a
    DeepSpeed engine when ``zero_stage`` is given (needs torch.distributed initialised)."""

    def __init__(self, spec: TrainSpec, zero_stage: int | None = None):
        import torch

        from wsfm.components import net_spec
        from wsfm.data.datasets import load_dataset
        from wsfm.models import build_model
        from wsfm.train.data import BatchStream, as_tensor
        from wsfm.train.ema import EMA
        from wsfm.train.engine import build_engine, lr_lambda
        from wsfm.train.objective import FlowObjective

        tc = spec.train
        data = load_dataset(spec.data)
        torch.manual_seed(tc.seed)
        kwargs = net_spec(spec.model, data)  # what the training loop builds
        net = build_model(kwargs.pop("kind"), dim=data.dim, **kwargs)
        self.params = sum(p.numel() for p in net.parameters())
        self.ema = EMA(dict(net.named_parameters()), tc.ema_decay)
        self.stream = BatchStream("cold", as_tensor(data.train), tc.batch_size, rank=0,
                                  world_size=1, seed=tc.seed)
        self.objective, self.clip = FlowObjective("cold", spec.flow), tc.grad_clip
        if zero_stage is None:
            self.net, self.engine = net, None
            self.opt = torch.optim.AdamW(net.parameters(), lr=tc.lr,
                                         weight_decay=tc.weight_decay)
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(tc))
        else:
            train = dataclasses.replace(tc, zero_stage=zero_stage, num_workers=1)
            self.engine, _ = build_engine(net, train, 1)
            self.net = self.engine.module

    def step(self) -> float:
        import torch

        tick = time.perf_counter()
        source, x1, gen = next(self.stream)
        model = self.engine if self.engine is not None else self.net
        loss = self.objective.loss(model, self.objective.make_batch(source, x1, gen), gen)
        if not torch.isfinite(loss):
            raise FloatingPointError("the benchmark loop diverged")
        if self.engine is not None:
            self.engine.backward(loss)
            self.engine.step()
        else:
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
            self.opt.step()
            self.sched.step()
        self.ema.update(dict(self.net.named_parameters()))
        return time.perf_counter() - tick


def _median_after_warmup(times: list[float]) -> float:
    return statistics.median(times[min(20, len(times) // 10):])


def plain_loop(spec: TrainSpec) -> dict[str, float]:
    """The loop's work in plain PyTorch on one thread: median step time and peak RSS."""
    import torch

    torch.set_num_threads(1)
    stepper = _Stepper(spec)
    times = [stepper.step() for _ in range(spec.train.steps)]
    return {"step_time_median_s": _median_after_warmup(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "params": stepper.params}


def interleaved(spec: TrainSpec) -> dict[str, float]:
    """Plain, DeepSpeed ZeRO-0 and DeepSpeed ZeRO-2 in one process (gloo, world size 1, one
    thread), one step of each in turn: load drift hits all three alike."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29400 + os.getpid() % 500),
                      RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    dist.init_process_group("gloo")
    steppers = {"plain": _Stepper(spec), "zero0": _Stepper(spec, 0), "zero2": _Stepper(spec, 2)}
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(spec.train.steps):
        for name, stepper in steppers.items():
            times[name].append(stepper.step())
    dist.destroy_process_group()
    return {name: _median_after_warmup(t) for name, t in times.items()}


def _in_subprocess(fn: str, spec: TrainSpec, cwd: str | Path = ROOT) -> dict[str, float]:
    """``fn(spec)`` from ``benchmarks.train`` in a fresh process on the code in ``cwd``."""
    import pickle

    code = (f"import json, pickle, sys; from benchmarks.train import {fn}; "
            f"print(json.dumps({fn}(pickle.loads(bytes.fromhex(sys.argv[1])))))")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(cwd)}
    done = subprocess.run([sys.executable, "-c", code, pickle.dumps(spec).hex()], cwd=cwd,
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{fn} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ray_train(spec: TrainSpec, storage: str, name: str) -> dict[str, float]:
    from wsfm.train.ray_train import fit

    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    return fit(spec, storage_path=storage, run_name=name)


def loop_timing(spec: TrainSpec) -> dict[str, float]:
    """The pipelines' loop on ``spec``: in this process (``fit_local``) for 1 worker, under
    Ray Train (a local 2-CPU Ray started here) for more. Rank 0's summary."""
    import torch

    if spec.train.num_workers == 1:
        from wsfm.train.local import fit_local

        torch.set_num_threads(1)
        return fit_local(spec)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
    try:
        return _ray_train(spec, f"{spec.out_dir}-ray", "bench-loop")
    finally:
        ray.shutdown()


def hot_path(other: str, rounds: int, steps: int, batch: int, accum: int) -> str:
    """The loop's step time in this tree and in ``other`` (another checkout of the project),
    alternated ``rounds`` times per setting (this machine's load drifts); a markdown table."""
    trees = {"this tree": str(ROOT), "other tree": str(Path(other).resolve())}
    model = MODELS["toy2d MLP 256x3"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="wsfm-bench-hot-") as tmp:
        for workers in (1, 2):
            got: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for r in range(rounds):
                for name, tree in trees.items():
                    spec = _spec(model, steps, batch, workers, f"{tmp}/{workers}-{r}-{name[0]}")
                    spec = dataclasses.replace(spec, train=dataclasses.replace(
                        spec.train, grad_accum=accum, log_every=50))
                    got[name].append(_in_subprocess("loop_timing", spec, cwd=tree))
                    print(workers, name, got[name][-1]["step_time_median_s"], flush=True)
            for name in trees:
                ms = [g["step_time_median_s"] * 1e3 for g in got[name]]
                wall = [g["samples_per_s_wall"] for g in got[name]]
                rows.append([name, workers, batch, accum, steps, statistics.median(ms),
                             f"{min(ms):.2f}-{max(ms):.2f}", statistics.median(wall)])
    return markdown_table(["code", "workers", "batch", "grad_accum", "steps",
                           "ms/step (median of runs)", "range", "wall samples/s"], rows)


def measure(model_name: str, model: ModelConfig, steps: int, batch: int,
            tmp: str) -> tuple[list, list]:
    """``(interleaved row, full-stack row)`` for one model."""
    def ray_run(workers: int, stage: int) -> dict[str, float]:
        tag = f"{model.hidden}-{workers}w-z{stage}"
        return _ray_train(_spec(model, steps, batch, workers, f"{tmp}/{tag}", stage),
                          f"{tmp}/ray", f"bench-{tag}")

    plain_spec = _spec(model, steps, batch, 1, f"{tmp}/plain")
    mixed = _in_subprocess("interleaved", plain_spec)
    # Plain runs before, between and after the Ray runs: this machine's load drifts.
    plains = [_in_subprocess("plain_loop", plain_spec)]
    z2 = ray_run(1, 2)
    plains.append(_in_subprocess("plain_loop", plain_spec))
    z0 = ray_run(1, 0)
    two = ray_run(2, 2)
    plains.append(_in_subprocess("plain_loop", plain_spec))
    plain_times = [p["step_time_median_s"] for p in plains]
    plain_s = statistics.median(plain_times)
    print(f"{model_name}: interleaved plain/ZeRO-0/ZeRO-2 "
          f"{[round(mixed[k] * 1e3, 2) for k in ('plain', 'zero0', 'zero2')]} ms; plain "
          f"{[round(t * 1e3, 2) for t in plain_times]} ms; DeepSpeed+Ray 1 worker ZeRO-2 "
          f"{z2['step_time_median_s'] * 1e3:.2f} ms, ZeRO-0 {z0['step_time_median_s'] * 1e3:.2f}"
          f" ms; 2 workers ZeRO-2 {two['step_time_median_s'] * 1e3:.2f} ms (torch threads per "
          f"worker: {z2['torch_threads']})", flush=True)
    head = [model_name, f"{plains[0]['params']:,}", batch, steps]
    interleaved_row = head + [mixed["plain"] * 1e3, mixed["zero0"] * 1e3,
                              mixed["zero0"] / mixed["plain"], mixed["zero2"] * 1e3,
                              mixed["zero2"] / mixed["plain"]]
    stack_row = head + [
        f"{plain_s * 1e3:.2f} ({min(plain_times) * 1e3:.2f}-{max(plain_times) * 1e3:.2f})",
        z2["step_time_median_s"] * 1e3, z2["step_time_median_s"] / plain_s,
        z0["step_time_median_s"] * 1e3, z0["step_time_median_s"] / plain_s,
        z2["samples_per_s"], two["samples_per_s"], two["samples_per_s"] / z2["samples_per_s"],
        f"{z2['samples_per_s_wall']:,.0f} / {two['samples_per_s_wall']:,.0f}",
        f"{max(p['peak_rss_mb'] for p in plains):.0f}", f"{z2['peak_rss_mb_rank0']:.0f}",
        f"{two['peak_rss_mb_rank0']:.0f} / {two['peak_rss_mb_rank1']:.0f}"]
    return interleaved_row, stack_row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps for the toy2d MLP")
    parser.add_argument("--big-steps", type=int, default=80, help="steps for the 1024x4 MLP")
    parser.add_argument("--batch", type=int, default=512, help="global batch (toy2d's)")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    parser.add_argument("--hot-path", metavar="OTHER_TREE",
                        help="only compare the loop's step time with another checkout's "
                             "(section train-hot-path)")
    parser.add_argument("--rounds", type=int, default=3, help="--hot-path: runs per tree")
    parser.add_argument("--grad-accum", type=int, default=1, help="--hot-path: micro-steps")
    args = parser.parse_args(argv)
    if args.hot_path:
        _hot_path_section(args, argv)
        return

    import ray

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
    rows = []
    with tempfile.TemporaryDirectory(prefix="wsfm-bench-train-") as tmp:
        for (name, model), steps in zip(MODELS.items(), (args.steps, args.big_steps)):
            rows.append(measure(name, model, steps, args.batch, tmp))
    ray.shutdown()
    mixed = markdown_table(["model", "params", "batch", "steps", "plain ms/step",
                            "DeepSpeed ZeRO-0 ms/step", "ratio", "DeepSpeed ZeRO-2 ms/step",
                            "ratio"], [r[0] for r in rows])
    stack = markdown_table(["model", "params", "batch", "steps",
                            "plain ms/step, median of 3 (range)", "DS+Ray 1w ZeRO-2 ms/step",
                            "ratio", "DS+Ray 1w ZeRO-0 ms/step", "ratio", "samples/s 1w",
                            "samples/s 2w", "2w / 1w", "wall samples/s 1w / 2w",
                            "RSS MB plain", "RSS MB 1w", "RSS MB 2w (rank 0 / 1)"],
                           [r[1] for r in rows])
    print(mixed + "\n\n" + stack)
    if args.no_write:
        return
    body = (
        "Every loop does the same work per step: the cold objective (noise -> toy2d data) on "
        "the same model and global batch, AdamW, gradient clipping (1.0), the LR schedule, "
        "the EMA and a finite-loss check; torch runs on 1 thread everywhere (a 1-CPU Ray "
        "worker runs torch on 1 thread). Step times are medians after warm-up; start-up and "
        "checkpoints are excluded.\n\n"
        "**DeepSpeed's per-step cost, interleaved.** One process (gloo, world size 1) holds a "
        "plain PyTorch loop and two DeepSpeed engines (ZeRO-0, ZeRO-2; fp32, torch AdamW) and "
        "runs one step of each in turn, so the machine's load drift hits all three alike: "
        "the most reliable ratio on this shared machine.\n\n" + mixed + "\n\n"
        "**The whole stack: DeepSpeed under Ray Train** (`wsfm.train.ray_train.fit`, the "
        "pipelines' code path) against the plain loop in its own process, run before, between "
        "and after the Ray runs (the range shows the load drift; the ratios use the median, "
        "and are only as good as that range). DS+Ray step time: rank 0's median per-step "
        "time. samples/s = global batch / median step time; *wall* samples/s divides by the "
        "whole training loop's wall time on rank 0 (start-up excluded). 2 workers split the "
        "same global batch over 2 one-CPU workers on this 2-core machine, which other jobs "
        "share. RSS: each process's peak (ru_maxrss).\n\n" + stack)
    write_section("train", "Training: DeepSpeed under Ray Train vs plain PyTorch",
                  "python -m benchmarks.train" + (" " + " ".join(argv) if argv else ""), body)


def _hot_path_section(args: argparse.Namespace, argv: list[str] | None) -> None:
    table = hot_path(args.hot_path, args.rounds, args.steps, args.batch, args.grad_accum)
    print(table)
    if args.no_write:
        return

    def commit(tree: str) -> str:
        done = subprocess.run(["git", "-C", tree, "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True)
        return done.stdout.strip()[:90] if done.returncode == 0 else tree  # an export: its path

    body = (
        "The pipelines' training loop (toy2d MLP 256x3, cold objective, ZeRO-2, fp32, 1 torch "
        "thread per worker) on two checkouts, alternated run by run: 1 worker in-process "
        "(`fit_local`), 2 workers under Ray Train. Each run is a fresh process; ms/step is "
        "the run's median step time (`train_summary.json`; since the loop syncs only every "
        "`log_every` steps, the median of per-window means), wall samples/s the whole loop's "
        "(start-up excluded).\n\n"
        f"- this tree: `{commit(str(ROOT))}`\n- other tree: `{commit(args.hot_path)}`\n\n"
        + table)
    write_section("train-hot-path", "Training loop: the loss check's host syncs",
                  "python -m benchmarks.train " + " ".join(argv or []), body)


if __name__ == "__main__":
    main(sys.argv[1:])
