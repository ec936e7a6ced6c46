"""Prose: which sampler levers let the refiner improve on its draft? Measured in one run.

    .venv/bin/python -m benchmarks.text_levers [--steps N] [--source gru] [--n N] [--seeds K]
                                               [--no-write]

The text pipeline's own code and settings (``pipelines/text.yaml``): its data (64-character
windows of ``pydoc_data.topics``, split by topic), the 4-gram draft it had before the GRU
(``WindowNgramDraft(4)``, by default), its
shards (real windows with the draft's substitutes, ``generate_drafts``'s ``make_shard``), its
network (the Transformer of the YAML), its training loop (``wsfm.train.local.fit_local``: the
pipelines' DeepSpeed loop at world size 1, the EMA that ``model.pt`` holds) and its sampler
(``make_sampler``: remasking from a whole draft). One refiner is trained; every row samples it
(or a draft) and is judged like the pipeline's rows (``ProseEvaluator``: bits per character
under a 7-gram fitted on held-out topics only, the entropy inside each sample, copy32).

The levers are the sampler's only: the share remasked after the first call (``remask``), the
softmax temperature of the redrawn positions, and the source (the 4-gram draft the refiner
trained against, or the 5-gram, the best n-gram rival, with the same refiner). No cold model is
trained here: the question is warm against its own draft (issue 23, target 4's second half);
cold's rows are in the section ``quality-text-quick``.

``--source gru``: the refiner trains on the substitutes of the character GRU over windows
(``WindowGRUDraft``, the YAML's draft now: hidden 256, 3,000 steps) instead, and the
rows sample it from the GRU (and, with the same refiner, from the 4- and 5-gram).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import markdown_table, write_section
from benchmarks.text_drafts import add_sample_args, fitted_judge
from benchmarks.words_form import one_process
from wsfm.bundle import load_net
from wsfm.components import make_sampler, net_spec
from wsfm.config import PipelineConfig, load_pipeline
from wsfm.drafts import WindowGRUDraft, WindowNgramDraft
from wsfm.stages.generate_drafts import ShardJob, make_shard
from wsfm.train.local import fit_local
from wsfm.train.spec import TrainSpec

ROOT = Path(__file__).resolve().parents[1]
H = 0.01  # the cold run's step: t0 0.8 is 20 calls, 0.9 is 10
KEYS = ("nll", "entropy", "word_share", "copy32")
# (name, source, t0, remask, temperature): the sampler the pipeline had when the levers
# were first measured (remask 0.2) first; text.yaml now remasks 0.5.
LEVERS = (("remask 0.2", "4-gram", 0.8, 0.2, 1.0), ("remask 0.2", "4-gram", 0.9, 0.2, 1.0),
          ("remask 0.5", "4-gram", 0.8, 0.5, 1.0), ("remask 0.05", "4-gram", 0.8, 0.05, 1.0),
          ("temperature 0.8", "4-gram", 0.8, 0.2, 0.8),
          ("temperature 0.6", "4-gram", 0.8, 0.2, 0.6),
          ("from the 5-gram", "5-gram", 0.8, 0.2, 1.0),
          ("from the 5-gram", "5-gram", 0.8, 0.05, 1.0))
# --source gru: the refiner trained on the GRU's substitutes, sampled from each source.
GRU_LEVERS = (("remask 0.5", "GRU", 0.8, 0.5, 1.0), ("remask 0.5", "GRU", 0.9, 0.5, 1.0),
              ("remask 0.2", "GRU", 0.8, 0.2, 1.0),
              ("from the 4-gram", "4-gram", 0.8, 0.5, 1.0),
              ("from the 5-gram", "5-gram", 0.8, 0.5, 1.0))
GRU = {"hidden": 256, "steps": 3000}  # pipelines/text.yaml's draft


@dataclass
class Row:
    method: str
    source: str  # the draft it samples from (its own draft, for a draft alone)
    t0: float
    remask: float
    temperature: float
    nfe: int
    scores: dict[str, tuple[float, float]]  # mean, sd over seeds
    sec_per_1k: float


def pipeline(steps: int | None) -> PipelineConfig:
    """text's pipeline config, trained in one process (as words_form trains words')."""
    return one_process(load_pipeline(ROOT / "pipelines" / "text.yaml"), steps)


def judge(evaluator, data, draw, seeds: int) -> tuple[dict[str, tuple[float, float]], float]:
    per_seed, secs = [], 0.0
    for seed in range(seeds):
        t = time.perf_counter()
        x = draw(1000 + seed)
        secs += time.perf_counter() - t
        per_seed.append(evaluator.score(x, data.test))
    scores = {k: (statistics.fmean(s[k] for s in per_seed),
                  statistics.stdev(s[k] for s in per_seed) if seeds > 1 else 0.0)
              for k in KEYS if k in per_seed[0]}
    return scores, secs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, help="training steps (default: the YAML's)")
    p.add_argument("--source", choices=("ngram4", "gru"), default="ngram4",
                   help="the draft whose substitutes the refiner trains on")
    add_sample_args(p)
    a = p.parse_args(argv)
    start = time.perf_counter()
    cfg = pipeline(a.steps)
    data, evaluator = fitted_judge(cfg)
    drafts = {"4-gram": WindowNgramDraft(order=4, seed=cfg.seed).fit(data.train),
              "5-gram": WindowNgramDraft(order=5, seed=cfg.seed).fit(data.train)}
    source, levers = "4-gram", LEVERS
    if a.source == "gru":
        source, levers = "GRU", GRU_LEVERS
        t = time.perf_counter()
        drafts["GRU"] = WindowGRUDraft(**GRU, seed=cfg.seed).fit(data.train)
        print(f"  GRU draft: fitted in {time.perf_counter() - t:.0f} s", flush=True)
    rows: list[Row] = []

    def add(method, src, t0, remask, temperature, nfe, draw) -> None:
        scores, secs = judge(evaluator, data, draw, a.seeds)
        rows.append(Row(method, src, t0, remask, temperature, nfe, scores,
                        1000 * secs / (a.n * a.seeds)))
        nll = scores["nll"]
        print(f"  {method:<18} t0 {t0:<4} remask {remask:<4} T {temperature:<4} NFE {nfe:<3} "
              f"nll {nll[0]:.3f} ± {nll[1]:.3f} entropy {scores['entropy'][0]:.2f}", flush=True)

    for name, draft in drafts.items():
        add(f"{name} alone", name, 0.0, 0.0, 1.0, 0, lambda s, d=draft: d.sample(a.n, s))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        drafts[source].save(folder / "draft.npz")
        sh = cfg.shards
        shards = tuple(str(folder / make_shard(ShardJob(
            str(folder / "draft.npz"), str(folder), i, sh.per_shard,
            seed=cfg.seed * 1_000_003 + 1_000 + i, block=sh.block, pair=sh.pair,
            data=cfg.data)).record.shard) for i in range(sh.num_shards))
        spec = TrainSpec(mode="warm", data=cfg.data, flow=cfg.flow, model=cfg.model,
                         train=cfg.train, dim=data.dim, out_dir=str(folder / "refiner"),
                         shard_urls=shards, paired=True)
        summary = fit_local(spec, dataset=data)
        train_s = summary["seconds"]
        print(f"  refiner: {cfg.train.steps} steps in {train_s:.0f} s, final loss "
              f"{summary['final_loss']:.3f}", flush=True)
        net = load_net(net_spec(cfg.model, data), data.dim, folder / "refiner" / "model.pt")
    net.eval()
    for name, src, t0, remask, temperature in levers:
        sampler = make_sampler(data, drafts[src], net, t0, step_size=H,
                               temperature=temperature, remask=remask)
        add(name, src, t0, remask, temperature, sampler.expected_nfe(None),
            lambda s, smp=sampler: smp.sample(a.n, s)[0])
    total = time.perf_counter() - start
    body = report(cfg, rows, train_s, summary["final_loss"], total, a, source)
    print(body)
    if not a.no_write:
        name = ("text-levers" + ("-gru" if a.source == "gru" else "")
                + (f"-{a.steps}" if a.steps else ""))
        write_section(name, f"Prose: the refiner's sampler levers against its draft"
                      f"{' (trained on the GRU draft)' if a.source == 'gru' else ''}"
                      f"{f' ({a.steps} training steps)' if a.steps else ''}",
                      (".venv/bin/python -m benchmarks.text_levers " + " ".join(argv or []))
                      .strip(), body)


def report(cfg: PipelineConfig, rows: list[Row], train_s: float, final_loss: float,
           total: float, a: argparse.Namespace, source: str) -> str:
    def cell(r: Row, k: str) -> str:
        m, sd = r.scores.get(k, (float("nan"), 0.0))
        return f"{m:.3f} ± {sd:.3f}" if k == "nll" else f"{m:.3g}"

    table = markdown_table(
        ["rows", "t0", "remask", "temperature", "NFE", "nll (bits/char)", "entropy",
         "word share", "copy32", "s / 1k"],
        [[r.method, f"{r.t0:g}", f"{r.remask:g}", f"{r.temperature:g}", str(r.nfe),
          cell(r, "nll"), cell(r, "entropy"), cell(r, "word_share"), cell(r, "copy32"),
          f"{r.sec_per_1k:.3g}"] for r in rows])
    alone = {r.source: r.scores["nll"][0] for r in rows if r.nfe == 0}
    lines = []
    for r in rows:
        if r.nfe == 0:
            continue
        gap = r.scores["nll"][0] - alone[r.source]
        lines.append(f"- {r.method} (t0 {r.t0:g}, remask {r.remask:g}, temperature "
                     f"{r.temperature:g}): {r.scores['nll'][0]:.3f} against its source, the "
                     f"{r.source} alone, {alone[r.source]:.3f}: "
                     f"{'better' if gap < 0 else 'worse'} by {abs(gap):.3f} bits/char")
    m, tc = cfg.model, cfg.train
    return (f"One refiner ({m.kind}, d_model {m.d_model}, {m.n_layers} layers, {m.n_heads} "
            f"heads), trained by `fit_local` (the pipelines' loop, 1 process) for {tc.steps} "
            f"steps at batch {tc.batch_size} on the {source}'s substitutes ({train_s:.0f} s, "
            f"final loss {final_loss:.3f}), sampled from its EMA weights by `make_sampler`. "
            f"{a.seeds} sampling seeds x {a.n} windows per row (mean ± sd over seeds); whole "
            f"run {total / 60:.1f} min.\n\n{table}\n\nEach refiner row against the draft it "
            f"started from:\n\n" + "\n".join(lines))

if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
