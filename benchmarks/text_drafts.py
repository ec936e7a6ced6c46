"""Prose: the drafts alone, n-grams of every order against the character GRU. One run.

    .venv/bin/python -m benchmarks.text_drafts [--gru HIDDENxSTEPS ...] [--n N] [--seeds K]
                                               [--no-write]

The text pipeline's data (``pipelines/text.yaml``: 64-character windows of
``pydoc_data.topics``, split by topic) and judge (``ProseEvaluator``: bits per character under
a 7-gram fitted on held-out topics only, the entropy inside each sample, the share of words
that are dictionary words, copy32). Each draft is fitted on the training windows and sampled
alone, as the pipeline's ``draft`` row samples it: the window n-grams of orders 2 to 7
(``WindowNgramDraft``, counts, no smoothing) and the character GRU (``WindowGRUDraft``) at
the sizes and budgets given. For the GRU, its own likelihood of the real held-out windows is
reported too (bits per character; an unsmoothed n-gram gives unseen text probability 0, so it
has none). Real held-out windows are the floor. The question (issue 23, rivals): is a learned
draft a better start than the 4-gram the pipeline refined until then (it now refines the GRU),
and a stronger rival to beat?
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import markdown_table, write_section
from wsfm.components import make_evaluator
from wsfm.config import load_pipeline
from wsfm.data.base import Dataset
from wsfm.data.datasets import load_dataset
from wsfm.drafts import Draft, WindowGRUDraft, WindowNgramDraft
from wsfm.metrics.evaluators import Evaluator

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("nll", "entropy", "word_share", "copy32")
ORDERS = (2, 3, 4, 5, 6, 7)
GRUS = ("256x1000", "256x3000", "512x2000")


@dataclass
class Row:
    draft: str
    fit_s: float
    own_nll: float  # the draft's own bits/char on real held-out windows (nan: none)
    train_loss: float  # bits/char on the last training batch (nan: not trained by steps)
    scores: dict[str, tuple[float, float]]  # mean, sd over seeds
    sec_per_1k: float


def judge(evaluator, test: np.ndarray, draw: Callable[[int], np.ndarray],
          seeds: int) -> tuple[dict[str, tuple[float, float]], float]:
    per_seed, secs = [], 0.0
    for seed in range(seeds):
        t = time.perf_counter()
        x = draw(1000 + seed)
        secs += time.perf_counter() - t
        per_seed.append(evaluator.score(x, test))
    return ({k: (statistics.fmean(s[k] for s in per_seed),
                 statistics.stdev(s[k] for s in per_seed) if seeds > 1 else 0.0)
             for k in KEYS if k in per_seed[0]}, secs)


def add_sample_args(p: argparse.ArgumentParser) -> None:
    """The prose benchmarks' shared options: samples per seed, seeds, and ``--no-write``."""
    p.add_argument("--n", type=int, default=300, help="samples per seed")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--no-write", action="store_true")


def fitted_judge(cfg) -> tuple[Dataset, Evaluator]:
    """The text pipeline's data and its judge, fitted (2 torch threads for what follows)."""
    torch.set_num_threads(2)
    data = load_dataset(cfg.data)
    evaluator = make_evaluator(data, cfg.evaluate, cfg.seed)
    evaluator.fit(data)
    return data, evaluator


def real_windows(data: Dataset, n: int, seed: int) -> np.ndarray:
    """``n`` real held-out windows (the reference split), drawn by ``seed``."""
    return data.reference[np.random.default_rng(seed).permutation(len(data.reference))[:n]]


def gru_size(text: str) -> tuple[int, int]:
    hidden, _, steps = text.partition("x")
    if not (hidden.isdigit() and steps.isdigit()):
        raise argparse.ArgumentTypeError(f"expected HIDDENxSTEPS such as 256x1000, got {text!r}")
    return int(hidden), int(steps)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gru", nargs="*", type=gru_size, default=[gru_size(g) for g in GRUS],
                   help=f"GRU sizes as HIDDENxSTEPS (default: {' '.join(GRUS)})")
    add_sample_args(p)
    a = p.parse_args(argv)
    start = time.perf_counter()
    cfg = load_pipeline(ROOT / "pipelines" / "text.yaml")
    data, evaluator = fitted_judge(cfg)
    rows: list[Row] = []

    def add(name: str, fit_s: float, own: float, loss: float,
            draw: Callable[[int], np.ndarray]) -> None:
        scores, secs = judge(evaluator, data.test, draw, a.seeds)
        rows.append(Row(name, fit_s, own, loss, scores, 1000 * secs / (a.n * a.seeds)))
        print(f"  {name:<28} fit {fit_s:6.1f} s  nll {scores['nll'][0]:.3f} ± "
              f"{scores['nll'][1]:.3f}  entropy {scores['entropy'][0]:.2f}  own {own:.3f}",
              flush=True)

    add("real held-out windows", 0.0, float("nan"), float("nan"),
        lambda s: real_windows(data, a.n, s))
    for name, make in ([(f"{k}-gram", lambda k=k: WindowNgramDraft(order=k, seed=cfg.seed))
                        for k in ORDERS]
                       + [(f"GRU {h}, {s} steps", lambda h=h, s=s: WindowGRUDraft(
                           hidden=h, steps=s, seed=cfg.seed)) for h, s in a.gru]):
        t = time.perf_counter()
        draft: Draft = make().fit(data.train)
        fit_s = time.perf_counter() - t
        own = loss = float("nan")
        if isinstance(draft, WindowGRUDraft):
            own, loss = draft.nll(data.reference), draft.final_loss / np.log(2)
        add(name, fit_s, own, loss, lambda s, d=draft: d.sample(a.n, s))
    total = time.perf_counter() - start
    body = report(rows, len(data.train), total, a)
    print(body)
    if not a.no_write:
        write_section("text-drafts", "Prose: the drafts alone (n-grams and a character GRU)",
                      (".venv/bin/python -m benchmarks.text_drafts " + " ".join(argv or []))
                      .strip(), body)


def report(rows: list[Row], n_train: int, total: float,
           a: argparse.Namespace) -> str:
    def cell(r: Row, k: str) -> str:
        m, sd = r.scores.get(k, (float("nan"), 0.0))
        return f"{m:.3f} ± {sd:.3f}" if k == "nll" else f"{m:.3g}"

    table = markdown_table(
        ["draft", "fit s", "nll (bits/char)", "entropy", "word share", "copy32",
         "own bits/char on held-out", "s / 1k"],
        [[r.draft, f"{r.fit_s:.1f}", cell(r, "nll"), cell(r, "entropy"), cell(r, "word_share"),
          cell(r, "copy32"), "-" if np.isnan(r.own_nll) else f"{r.own_nll:.3f}",
          f"{r.sec_per_1k:.3g}"] for r in rows])
    best_ngram = min((r for r in rows if r.draft.endswith("-gram")),
                     key=lambda r: r.scores["nll"][0])
    four = next(r for r in rows if r.draft == "4-gram")
    lines = [f"- {r.draft}: {r.scores['nll'][0]:.3f} against the 4-gram's "
             f"{four.scores['nll'][0]:.3f} and the best n-gram's ({best_ngram.draft}) "
             f"{best_ngram.scores['nll'][0]:.3f}; last training batch "
             f"{r.train_loss:.3f} bits/char, held-out {r.own_nll:.3f}"
             for r in rows if r.draft.startswith("GRU")]
    return (f"Drafts fitted on the text pipeline's {n_train} training windows (64 characters, "
            f"stride 8), each sampled alone: {a.seeds} seeds x {a.n} windows per row (mean ± "
            f"sd over seeds), judged like the pipeline's rows. GRU: one layer, embedding 32, "
            f"batch 64, AdamW lr 3e-3 cosine, gradient norm clipped at 1, torch on 2 threads. "
            f"Whole run {total / 60:.1f} min.\n\n{table}\n\nThe GRU rows:\n\n"
            + "\n".join(lines))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
