"""Stored pairs against in-loop pairing, written to the ``pairing`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.pairing [--steps 300]

``shards.pair`` moves the coupling out of the training loop into ``generate_drafts``. This
measures both sides of that trade in one process (1 torch thread, like a 1-CPU Ray worker),
for the toy2d pipeline (minibatch OT) and the words pipeline (nearest training word, Hamming),
each with its default profile's draft, model and micro batch (global batch / 2 workers):

- the data cost of one micro-batch (``BatchStream`` + the objective's ``make_batch``), with
  the coupling in the loop and with the stored partners, interleaved step by step so that the
  machine's load drift hits both alike, and beside it one forward + backward + AdamW step of
  the pipeline's network on that micro-batch (what the data cost is a share of);
- generation throughput (drafts/s, one process, no Ray) without and with pairing: where the
  cost goes instead, paid once per draft rather than once per use.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.report import markdown_table, write_section
from wsfm.components import net_spec
from wsfm.config import load_pipeline
from wsfm.data.datasets import load_dataset
from wsfm.models import build_model
from wsfm.orchestrate.local import LocalRuntime
from wsfm.shards import read_manifest
from wsfm.stages.base import StageContext
from wsfm.stages.generate_drafts import generate_drafts
from wsfm.stages.pretrain_draft import pretrain_draft
from wsfm.train.data import BatchStream, as_tensor
from wsfm.train.discrete_objective import make_objective

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"toy2d": "minibatch_ot", "words": "nearest"}
SHARDS, PER_SHARD = 2, 10_000


def _shards(cfg, draft: Path, out: Path, pair: str) -> tuple[list[str], float]:
    """Generate ``SHARDS`` x ``PER_SHARD`` drafts with ``pair``: shard urls and drafts/s."""
    cfg = dataclasses.replace(cfg, shards=dataclasses.replace(
        cfg.shards, num_shards=SHARDS, per_shard=PER_SHARD, pair=pair))
    out.mkdir(parents=True)
    start = time.perf_counter()
    generate_drafts(StageContext(cfg, {"pretrain_draft": draft}, out, LocalRuntime()))
    rate = SHARDS * PER_SHARD / (time.perf_counter() - start)
    return [str(out / r.shard) for r in read_manifest(out)], rate


def measure(task: str, steps: int, work: Path) -> list[list]:
    cfg = load_pipeline(ROOT / "pipelines" / f"{task}.yaml")
    coupling = TASKS[task]
    cfg = dataclasses.replace(cfg, flow=dataclasses.replace(cfg.flow, coupling=coupling))
    draft = work / task / "draft"
    draft.mkdir(parents=True)
    pretrain_draft(StageContext(cfg, {}, draft, LocalRuntime()))
    loose, rate_loose = _shards(cfg, draft, work / task / "none", "none")
    stored, rate_stored = _shards(cfg, draft, work / task / coupling, coupling)

    data = load_dataset(cfg.data)
    train = as_tensor(data.train)
    micro = cfg.train.batch_size // cfg.train.num_workers
    common = dict(rank=0, world_size=1, seed=0, shuffle_buffer=cfg.train.shuffle_buffer)
    ways = {"in the loop": (BatchStream("warm", train, micro, shard_urls=loose, **common),
                            make_objective("warm", cfg.flow, data)),
            "stored (shards.pair)": (BatchStream("warm", train, micro, shard_urls=stored,
                                                 paired=True, **common),
                                     make_objective("warm", cfg.flow, data, paired=True))}
    kwargs = net_spec(cfg.model, data)
    net = build_model(kwargs.pop("kind"), dim=data.dim, **kwargs)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr)
    times: dict[str, list[float]] = {k: [] for k in [*ways, "network step"]}
    for i in range(steps + 20):
        for label, (stream, objective) in ways.items():
            tick = time.perf_counter()
            source, x1, gen = next(stream)
            batch = objective.make_batch(source, x1, gen)
            if i >= 20:  # warm-up left out
                times[label].append(time.perf_counter() - tick)
        tick = time.perf_counter()
        loss = objective.loss(net, batch, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 20:
            times["network step"].append(time.perf_counter() - tick)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    net_ms = ms["network step"]
    rows = []
    for label, rate in (("in the loop", rate_loose), ("stored (shards.pair)", rate_stored)):
        rows.append([task, coupling, micro, label, ms[label], net_ms,
                     100 * ms[label] / (ms[label] + net_ms), rate])
    return rows


def _reading(rows: list[list]) -> str:
    """One sentence per task, from the rows (in-loop row, then stored row)."""
    lines = []
    for loop, stored in zip(rows[::2], rows[1::2]):
        task, coupling, _, _, loop_ms, net_ms, _, loop_rate = loop
        stored_ms, stored_rate = stored[4], stored[7]
        lines.append(
            f"- {task} ({coupling}): a training step (data + network) takes "
            f"{(stored_ms + net_ms) / (loop_ms + net_ms):.2f}x the time with stored pairs; "
            f"generation runs at {stored_rate / loop_rate:.3f}x the drafts/s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for task in TASKS for row in measure(task, args.steps, Path(tmp))]
    table = markdown_table(["task", "coupling", "micro batch", "pairing", "data ms / micro-batch",
                            "network step ms", "data share of a step %", "generation drafts/s"],
                           rows)
    body = (f"Medians over {args.steps} micro-batches after 20 warm-up ones, the two pairings "
            "interleaved step by step in one process (1 torch thread). *data*: drawing the "
            "micro-batch and pairing it (`BatchStream` + `make_batch`); *network step*: "
            "forward, backward and AdamW of the pipeline's network on it; *generation*: "
            f"{SHARDS} x {PER_SHARD:,} drafts through `generate_drafts` in one process, without "
            "Ray. Stored pairs are fixed per draft (each draft keeps its partner across epochs; "
            "in the loop minibatch OT re-pairs it with fresh data rows each time; nearest is "
            "the same either way), and they are computed before the widening noise "
            "(`flow.draft_noise`) is added.\n\n" + table + "\n\n" + _reading(rows)
            + f"\n\nWhole run: {time.perf_counter() - began:.0f} s.")
    write_section("pairing", "Pairing: stored in the shards or computed in the training loop",
                  "python -m benchmarks.pairing", body)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
