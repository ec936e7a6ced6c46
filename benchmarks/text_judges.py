"""Prose: does the judge rank real text first? The 7-gram judge against a character GRU judge.

    .venv/bin/python -m benchmarks.text_judges [--judge HIDDENxSTEPS] [--draft HIDDENxSTEPS]
                                               [--n N] [--seeds K] [--no-write]

``benchmarks.text_drafts`` found that the text pipeline's judge (bits per character under an
interpolated Kneser-Ney 7-gram fitted on held-out topics) scores the 6- and 7-gram drafts'
text below real held-out text: a judge of the same family as the look-up drafts rewards them.
This fits a second judge on the same held-out judge documents, a character GRU
(``WindowGRUDraft`` on their windows, its ``nll``), and scores the same samples under both:
real held-out windows (which neither judge was fitted on), the window n-grams of orders 2 to
7 and the GRU draft that ``pipelines/text.yaml`` refines, each fitted on the training topics.
A judge that a look-up cannot win ranks real text first. One run, ``--seeds`` seeds of ``--n``
samples per source (mean ± sd over seeds); entropy inside each sample beside them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.report import markdown_table, write_section
from benchmarks.text_drafts import add_sample_args, fitted_judge, gru_size, real_windows
from wsfm.config import load_pipeline
from wsfm.data.prose import topic_windows
from wsfm.drafts import WindowGRUDraft, WindowNgramDraft

ROOT = Path(__file__).resolve().parents[1]
ORDERS = (2, 3, 4, 5, 6, 7)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--judge", type=gru_size, default=gru_size("256x3000"),
                   help="the GRU judge's size, HIDDENxSTEPS (default 256x3000)")
    p.add_argument("--draft", type=gru_size, default=gru_size("256x3000"),
                   help="the GRU draft's size (default: pipelines/text.yaml's, 256x3000)")
    add_sample_args(p)
    a = p.parse_args(argv)
    start = time.perf_counter()
    cfg = load_pipeline(ROOT / "pipelines" / "text.yaml")
    data, ngram_judge = fitted_judge(cfg)
    assert data.text is not None
    judge_windows = topic_windows(data.text.test_words, cfg.data.max_len, cfg.data.stride)
    t = time.perf_counter()
    gru_judge = WindowGRUDraft(hidden=a.judge[0], steps=a.judge[1], seed=cfg.seed + 1)
    gru_judge.fit(judge_windows)
    judge_s = time.perf_counter() - t
    print(f"GRU judge {a.judge[0]}x{a.judge[1]} on {len(judge_windows)} judge windows: "
          f"{judge_s:.0f} s", flush=True)

    sources = [("real held-out windows", lambda s: real_windows(data, a.n, s))]
    for k in ORDERS:
        ngram = WindowNgramDraft(order=k, seed=cfg.seed).fit(data.train)
        sources.append((f"{k}-gram", lambda s, d=ngram: d.sample(a.n, s)))
    gru = WindowGRUDraft(hidden=a.draft[0], steps=a.draft[1], seed=cfg.seed).fit(data.train)
    sources.append((f"GRU draft {a.draft[0]}x{a.draft[1]}", lambda s: gru.sample(a.n, s)))

    rows = []
    for name, draw in sources:
        per = {"ngram": [], "gru": [], "entropy": []}
        for seed in range(a.seeds):
            x = draw(1000 + seed)
            scores = ngram_judge.score(x, data.test)
            per["ngram"].append(scores["nll"])
            per["entropy"].append(scores["entropy"])
            per["gru"].append(gru_judge.nll(x))
        rows.append((name, {k: (statistics.fmean(v), statistics.stdev(v) if a.seeds > 1 else 0.0)
                            for k, v in per.items()}))
        print(f"  {name:<28} 7-gram judge {rows[-1][1]['ngram'][0]:.3f}  GRU judge "
              f"{rows[-1][1]['gru'][0]:.3f}", flush=True)
    body = report(rows, a, len(judge_windows), judge_s, time.perf_counter() - start)
    print(body)
    if not a.no_write:
        write_section("text-judges", "Prose: the 7-gram judge against a character GRU judge",
                      (".venv/bin/python -m benchmarks.text_judges " + " ".join(argv or []))
                      .strip(), body)


def report(rows: list[tuple[str, dict]], a: argparse.Namespace, n_judge: int, judge_s: float,
           total: float) -> str:
    def rank(key: str) -> dict[str, int]:
        order = sorted(rows, key=lambda r: r[1][key][0])
        return {name: i + 1 for i, (name, _) in enumerate(order)}

    ranks = {k: rank(k) for k in ("ngram", "gru")}
    table = markdown_table(
        ["source", "7-gram judge bits/char", "rank", "GRU judge bits/char", "rank", "entropy"],
        [[name, f"{m['ngram'][0]:.3f} ± {m['ngram'][1]:.3f}", ranks["ngram"][name],
          f"{m['gru'][0]:.3f} ± {m['gru'][1]:.3f}", ranks["gru"][name],
          f"{m['entropy'][0]:.2f}"] for name, m in rows])
    real = "real held-out windows"
    return "\n".join([
        f"Both judges fitted on the held-out judge topics only ({n_judge} windows of "
        f"64 characters for the GRU judge, {a.judge[0]} hidden, {a.judge[1]} steps, "
        f"{judge_s:.0f} s); every source scored on {a.seeds} seeds x {a.n} samples "
        f"(mean ± sd). Rank 1 = lowest bits/char. Whole run {total / 60:.1f} min.", "",
        table, "",
        f"Real held-out text ranks {ranks['ngram'][real]} under the 7-gram judge and "
        f"{ranks['gru'][real]} under the GRU judge."])


if __name__ == "__main__":
    main()
