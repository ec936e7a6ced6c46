"""Stage ``evaluate``: quality against NFE for draft, cold, zero-shot and warm sampling.

Writes ``metrics.json`` in the schema of the benchmark protocol (one row per method and NFE:
mean quality and spread over sampling seeds, wall seconds per 1,000 samples including the
draft; ``speedup_wall`` from interleaved cold/warm pairs) and ``samples.png``, a scatter plot of data, drafts, warm and cold samples.
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
from wsfm.components import make_sampler, net_spec
from wsfm.data.datasets import Dataset, load_dataset
from wsfm.drafts import load_draft
from wsfm.metrics.evaluators import load_evaluator
from wsfm.stages.base import StageContext, StageResult

__all__ = ["evaluate", "parity", "wall_speedup", "warm_method_name"]

SEED_BASE = 10_000  # sampling seeds, disjoint from training and shard seeds


def warm_method_name(coupling: str) -> str:
    return "warm" if coupling == "independent" else "warm_ot"


def parity(warm: dict, cold: dict, rel_tolerance: float = 0.0,
           lower_is_better: bool = True) -> bool:
    """Warm no worse than cold, within the seed spread (and a relative tolerance)."""
    slack = max(rel_tolerance * abs(cold["quality"]), cold["spread"] + warm["spread"])
    if lower_is_better:
        return warm["quality"] <= cold["quality"] + slack
    return warm["quality"] >= cold["quality"] - slack


def warm_starts(t0: float, t0s: list[float], nfe_grid: list[int], h: float) -> list[float]:
    """The start times to evaluate warm sampling at: the configured ``t0``, the benchmark's
    ``t0s``, and ``1 - n h`` for each small NFE ``n`` of the grid (late starts)."""
    late = [round(1.0 - n * h, 9) for n in nfe_grid if 1.0 - n * h >= min([t0, *t0s]) - 1e-9]
    return sorted({t0, *t0s, *late})


def wall_speedup(cold: Callable[[int], object], warm: Callable[[int], object], repeats: int,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """Median over ``repeats`` of cold seconds / warm seconds (draft included), the two runs
    interleaved so that a load spike on a shared machine hits one pair, not one method."""
    ratios = []
    for k in range(repeats):
        seconds = []
        for draw in (cold, warm):
            start = clock()
            draw(SEED_BASE + k)
            seconds.append(clock() - start)
        ratios.append(seconds[0] / max(seconds[1], 1e-12))
    return float(statistics.median(ratios))


def _measure(method: str, t0: float, n: int, seeds: int,
             draw: Callable[[int], tuple[np.ndarray, int]],
             score: Callable[[np.ndarray], dict[str, float]],
             primary: str) -> tuple[dict, np.ndarray]:
    scores, seconds, nfe, x = [], [], 0, None
    for k in range(seeds):
        start = time.perf_counter()
        x, nfe = draw(SEED_BASE + k)
        seconds.append(time.perf_counter() - start)
        scores.append(score(x))
    qualities = [s[primary] for s in scores]
    row = {"method": method, "t0": t0, "nfe": nfe,
           "quality": float(statistics.fmean(qualities)),
           "spread": float(statistics.pstdev(qualities)) if seeds > 1 else 0.0,
           "sec_per_1k": float(statistics.median(seconds)) / n * 1000,
           "metrics": {k: float(statistics.fmean(s[k] for s in scores)) for k in scores[0]}}
    return row, x


def evaluate(ctx: StageContext) -> StageResult:
    cfg, ev = ctx.config, ctx.config.evaluate
    data = load_dataset(cfg.data)
    evaluator = load_evaluator(ctx.inputs["fit_evaluator"])
    spec = net_spec(cfg.model, data)
    draft = load_draft(ctx.inputs["pretrain_draft"] / "draft.npz")
    refiner = load_net(spec, data.dim, ctx.inputs["train_refiner"] / "model.pt")
    cold_net = load_net(spec, data.dim, ctx.inputs["train_baseline"] / "model.pt")
    n, t0, h = ev.n_samples, cfg.flow.t0, 1.0 / ev.cold_nfe
    score = lambda x: evaluator.score(x, data.test)  # noqa: E731
    primary = evaluator.primary
    warm_name = warm_method_name(cfg.flow.coupling)

    def sampler(net, t0_, start="draft", draft_=draft):
        return make_sampler(data, draft_, net, t0_, step_size=h, method=ev.method,
                            draft_noise=cfg.flow.draft_noise, start=start,
                            exponent=cfg.flow.kappa_exponent, temperature=cfg.flow.temperature)

    cold = sampler(cold_net, 0.0, draft_=None)
    rows, shown = [], {}
    row, shown["drafts"] = _measure("draft", t0, n, ev.seeds, lambda s: (draft.sample(n, s), 0),
                                    score, primary)
    rows.append(row)
    for steps in sorted({ev.cold_nfe, *ev.nfe_grid}, reverse=True):
        row, x = _measure("cold", 0.0, n, ev.seeds, lambda s: cold.sample(n, s, steps=steps),
                          score, primary)
        rows.append(row)
        shown.setdefault("cold", x)
    # Warm rows start a fresh draft at t0' and take the cold run's step h. The refiner sees the
    # rescaled time s, so one refiner serves every t0': only the NFE changes.
    for t0_ in warm_starts(t0, ev.warm_t0s, ev.nfe_grid, h):
        warm = sampler(refiner, t0_)
        row, x = _measure(warm_name, t0_, n, ev.seeds, lambda s: warm.sample(n, s), score,
                          primary)
        rows.append(row)
        if t0_ == t0:
            shown["warm"] = x
    for t0_ in sorted({t0, *ev.warm_t0s}):
        zero_shot = sampler(cold_net, t0_, start="noised_draft")
        rows.append(_measure("zero_shot", t0_, n, ev.seeds, lambda s: zero_shot.sample(n, s),
                             score, primary)[0])

    warm_sampler = sampler(refiner, t0)
    warm_nfe = warm_sampler.expected_nfe()
    cold_full = next(r for r in rows if r["method"] == "cold" and r["nfe"] == cold.expected_nfe())
    warm_main = next(r for r in rows if r["method"] == warm_name and r["t0"] == t0)
    report = {
        "task": cfg.task, "metric": primary, "lower_is_better": evaluator.lower_is_better,
        "reference": score(data.reference[:n])[primary], "t0": t0, "rows": rows,
        "speedup_nfe": cold_full["nfe"] / warm_main["nfe"],
        # Interleaved pairs: the rows' own timings ran minutes apart, under whatever load.
        "speedup_wall": wall_speedup(lambda s: cold.sample(n, s, steps=ev.cold_nfe),
                                     lambda s: warm_sampler.sample(n, s),
                                     ev.timing_repeats),
        "parity": parity(warm_main, cold_full, lower_is_better=evaluator.lower_is_better),
    }
    (ctx.out / "metrics.json").write_text(json.dumps(report, indent=2))
    _show(ctx.out, data, data.test[:n], shown, warm_main, cold_full)
    assert math.isclose(report["speedup_nfe"], ev.cold_nfe / warm_nfe)
    return StageResult(params={"metric": primary}, metrics={
        "cold_quality": cold_full["quality"], "warm_quality": warm_main["quality"],
        "draft_quality": rows[0]["quality"], "reference": report["reference"],
        "speedup_nfe": report["speedup_nfe"], "speedup_wall": report["speedup_wall"],
        "parity": float(report["parity"])})


def _show(out: Path, data: Dataset, held_out: np.ndarray, shown: dict[str, np.ndarray],
          warm: dict, cold: dict) -> None:
    """``samples.png`` (scatter or image grids); for text, ``samples.txt`` as well."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"data": "held-out data", "drafts": "drafts (NFE 0)",
              "warm": f"warm t0={warm['t0']} (NFE {warm['nfe']})",
              "cold": f"cold (NFE {cold['nfe']})"}
    clouds = {"data": held_out, **shown}
    keys = ("data", "drafts", "warm", "cold")
    if data.text is not None:
        decode = data.text.decode
        lines = [f"## {titles[k]}\n" + "\n".join(decode(clouds[k][:40])) for k in keys]
        (out / "samples.txt").write_text("\n\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), sharex=data.kind == "vector",
                             sharey=data.kind == "vector")
    for ax, key in zip(axes, keys):
        x = clouds[key]
        if data.kind == "image":
            ax.imshow(_grid(x[:64], data.shape), cmap="gray" if data.shape[0] == 1 else None)
            ax.axis("off")
        elif data.text is not None:
            ax.text(0, 1, "\n".join(data.text.decode(x[:24])), va="top", family="monospace")
            ax.axis("off")
        elif x.shape[1] >= 2:
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        else:
            ax.hist(x[:, 0], bins=60)
        ax.set_title(titles[key])
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=80)
    plt.close(fig)


def _grid(x: np.ndarray, shape: tuple[int, ...], cols: int = 8) -> np.ndarray:
    """(n, C*H*W) in [-1, 1] -> one (rows*H, cols*W[, C]) image in [0, 1]."""
    c, h, w = shape
    n = len(x)
    rows = -(-n // cols)
    imgs = np.clip((x.reshape(n, c, h, w) + 1) / 2, 0, 1)
    canvas = np.ones((rows * h, cols * w, c))
    for i, img in enumerate(imgs):
        r, k = divmod(i, cols)
        canvas[r * h:(r + 1) * h, k * w:(k + 1) * w] = img.transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas
