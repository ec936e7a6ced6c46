"""Stage ``evaluate``: quality against NFE for draft, cold, zero-shot and warm sampling.

Writes ``metrics.json`` in the schema of the benchmark protocol (one row per method and NFE:
mean quality and spread over sampling seeds, wall seconds per 1,000 samples including the
draft) and ``samples.png``, a scatter plot of data, drafts, warm and cold samples.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wsfm.bundle import load_net
from wsfm.data.datasets import load_dataset
from wsfm.drafts import load_draft
from wsfm.metrics import sliced_wasserstein
from wsfm.sampler import WarmStartSampler
from wsfm.stages.base import StageContext, StageResult

__all__ = ["evaluate", "parity", "warm_method_name"]

SEED_BASE = 10_000  # sampling seeds, disjoint from training and shard seeds


def warm_method_name(coupling: str) -> str:
    return "warm" if coupling == "independent" else "warm_ot"


def parity(warm: dict, cold: dict, rel_tolerance: float = 0.0) -> bool:
    """Warm no worse than cold, within the seed spread (and a relative tolerance)."""
    slack = max(rel_tolerance * abs(cold["quality"]), cold["spread"] + warm["spread"])
    return warm["quality"] <= cold["quality"] + slack


def _measure(method: str, t0: float, n: int, seeds: int,
             draw: Callable[[int], tuple[np.ndarray, int]],
             score: Callable[[np.ndarray], float]) -> tuple[dict, np.ndarray]:
    qualities, seconds, nfe, x = [], [], 0, None
    for k in range(seeds):
        start = time.perf_counter()
        x, nfe = draw(SEED_BASE + k)
        seconds.append(time.perf_counter() - start)
        qualities.append(score(x))
    row = {"method": method, "t0": t0, "nfe": nfe,
           "quality": float(statistics.fmean(qualities)),
           "spread": float(statistics.pstdev(qualities)) if seeds > 1 else 0.0,
           "sec_per_1k": float(statistics.median(seconds)) / n * 1000}
    return row, x


def evaluate(ctx: StageContext) -> StageResult:
    cfg, ev = ctx.config, ctx.config.evaluate
    data = load_dataset(cfg.data)
    draft = load_draft(ctx.inputs["pretrain_draft"] / "draft.npz")
    refiner = load_net(cfg.model, data.dim, ctx.inputs["train_refiner"] / "model.pt")
    cold_net = load_net(cfg.model, data.dim, ctx.inputs["train_baseline"] / "model.pt")
    n, t0, h = ev.n_samples, cfg.flow.t0, 1.0 / ev.cold_nfe
    score = lambda x: sliced_wasserstein(x, data.test, ev.n_projections, seed=0)  # noqa: E731
    warm_name = warm_method_name(cfg.flow.coupling)

    def sampler(net, t0_, start="draft", draft_=draft, noise=cfg.flow.draft_noise):
        return WarmStartSampler(draft_, net, t0_, method=ev.method, step_size=h,
                                draft_noise=noise if start == "draft" else 0.0, start=start)

    cold = sampler(cold_net, 0.0, draft_=None, noise=0.0)
    warm = sampler(refiner, t0)
    zero_shot = sampler(cold_net, t0, start="noised_draft")
    rows, shown = [], {}
    row, shown["drafts"] = _measure("draft", t0, n, ev.seeds, lambda s: (draft.sample(n, s), 0),
                                    score)
    rows.append(row)
    for steps in sorted({ev.cold_nfe, *ev.nfe_grid}, reverse=True):
        row, x = _measure("cold", 0.0, n, ev.seeds, lambda s: cold.sample(n, s, steps=steps),
                          score)
        rows.append(row)
        shown.setdefault("cold", x)
    warm_nfe = warm.expected_nfe()
    for steps in [None, *sorted({s for s in ev.nfe_grid if s != warm_nfe}, reverse=True)]:
        row, x = _measure(warm_name, t0, n, ev.seeds, lambda s: warm.sample(n, s, steps=steps),
                          score)
        rows.append(row)
        shown.setdefault("warm", x)
    rows.append(_measure("zero_shot", t0, n, ev.seeds, lambda s: zero_shot.sample(n, s),
                         score)[0])

    cold_full = next(r for r in rows if r["method"] == "cold" and r["nfe"] == cold.expected_nfe())
    warm_main = next(r for r in rows if r["method"] == warm_name and r["nfe"] == warm_nfe)
    report = {
        "task": cfg.task, "metric": "swd", "lower_is_better": True,
        "reference": score(data.reference[:n]), "t0": t0, "rows": rows,
        "speedup_nfe": cold_full["nfe"] / warm_main["nfe"],
        "speedup_wall": cold_full["sec_per_1k"] / warm_main["sec_per_1k"],
        "parity": parity(warm_main, cold_full),
    }
    (ctx.out / "metrics.json").write_text(json.dumps(report, indent=2))
    _plot(ctx.out / "samples.png", data.test[:n], shown, warm_main, cold_full)
    assert math.isclose(report["speedup_nfe"], ev.cold_nfe / warm_nfe)
    return StageResult(metrics={
        "cold_quality": cold_full["quality"], "warm_quality": warm_main["quality"],
        "draft_quality": rows[0]["quality"], "reference": report["reference"],
        "speedup_nfe": report["speedup_nfe"], "speedup_wall": report["speedup_wall"],
        "parity": float(report["parity"])})


def _plot(path: Path, data: np.ndarray, shown: dict[str, np.ndarray], warm: dict,
          cold: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"data": "held-out data", "drafts": "drafts (NFE 0)",
              "warm": f"warm t0={warm['t0']} (NFE {warm['nfe']})",
              "cold": f"cold (NFE {cold['nfe']})"}
    clouds = {"data": data, **shown}
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), sharex=True, sharey=True)
    for ax, key in zip(axes, ("data", "drafts", "warm", "cold")):
        x = clouds[key]
        if x.shape[1] >= 2:
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        else:
            ax.hist(x[:, 0], bins=60)
        ax.set_title(titles[key])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
