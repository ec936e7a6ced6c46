"""Which cheap draft for 32x32 glyphs: PCA-GMM against the small VAE, quality per unit of
cost, written to the ``glyphs-drafts`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.glyph_drafts [--seeds 3]

Every candidate is fitted on the training split of ``pipelines/glyphs.yaml`` (its seed), then
draws ``evaluate.n_samples`` samples for each of ``--seeds`` seeds, scored by the pipeline's
own judge (the image evaluator: a classifier fitted on the held-out glyphs; Frechet distance
in its features, precision, recall) against the held-out split. The real-data floor is the
reference split against the held-out one, as in the report. Cost: the fit's wall seconds, the
median wall seconds per 1,000 samples, and the draft's own estimate of floating-point
operations per sample (``Draft.cost_per_sample``). The drafts are scored as they are fitted,
before the pipeline widens them (``flow.draft_noise``): that is the draft the refiner improves.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from wsfm.benchmarks_md import markdown_table, median, write_section

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "glyphs.yaml"
# (kind, hyper-parameters): the shipped PCA-32 + GMM-16, a smaller and a bigger one, and the
# VAE at two sizes and budgets.
CANDIDATES: tuple[tuple[str, dict], ...] = (
    ("pca_gmm", {"n_pca": 16, "n_components": 8}),
    ("pca_gmm", {"n_pca": 32, "n_components": 16}),
    ("pca_gmm", {"n_pca": 64, "n_components": 32}),
    ("vae", {"latent": 16, "hidden": 512, "steps": 2000}),
    ("vae", {"latent": 32, "hidden": 512, "steps": 5000}),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    from wsfm.components import build_draft
    from wsfm.config import DraftConfig, load_pipeline
    from wsfm.data.datasets import load_dataset
    from wsfm.metrics.evaluators import ImageEvaluator

    torch.set_num_threads(2)
    cfg = load_pipeline(PIPELINE)
    data = load_dataset(cfg.data)
    judge = ImageEvaluator(seed=cfg.seed)
    judge.fit(data)
    n = cfg.evaluate.n_samples
    floor = judge.score(data.reference[:n], data.test)["fd"]
    rows = []
    for kind, params in CANDIDATES:
        draft = build_draft(DraftConfig(**{"kind": kind, **params}), cfg.seed)
        start = time.perf_counter()
        draft.fit(data.train)
        fit_s = time.perf_counter() - start
        scores, per_1k = [], []
        for s in range(args.seeds):
            start = time.perf_counter()
            x = draft.sample(n, seed=1000 + s)
            per_1k.append((time.perf_counter() - start) * 1000 / n)
            scores.append(judge.score(np.asarray(x, np.float32), data.test))
        fd = [sc["fd"] for sc in scores]
        label = f"{kind} " + ", ".join(f"{k} {v}" for k, v in params.items())
        rows.append([label, f"{statistics.fmean(fd):.1f} ± {statistics.pstdev(fd):.1f}",
                     f"{statistics.fmean(sc['precision'] for sc in scores):.3f}",
                     f"{statistics.fmean(sc['recall'] for sc in scores):.3f}",
                     f"{fit_s:.1f}", f"{median(per_1k):.3f}",
                     f"{draft.cost_per_sample / 1e6:.2f}"])
        print(f"[glyph-drafts] {rows[-1]}", flush=True)
    body = "\n".join([
        f"Training split: {len(data.train)} renderings; judged on {len(data.test)} held-out "
        f"ones with {n} samples per seed, {args.seeds} seeds (mean ± population std). "
        f"Real-data floor (reference split against held-out): FD {floor:.1f}.", "",
        markdown_table(["draft", "FD", "precision", "recall", "fit s", "s per 1k samples",
                        "MFLOP per sample"], rows)])
    write_section("glyphs-drafts", "Glyphs: which cheap draft (PCA-GMM or VAE)",
                  "python -m benchmarks.glyph_drafts"
                  + (f" --seeds {args.seeds}" if args.seeds != 3 else ""), body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
