"""Stage ``evaluate``: quality against NFE for every method of ``evaluate.methods``.

The work fans out through ``ctx.runtime.map``, one task per method, solver and sampling seed
(``wsfm.stages.eval_jobs``); the rows it returns become an :class:`wsfm.report.EvalReport`,
which is written as ``metrics.json`` (one row per method, start time, NFE and solver: mean
quality and spread over seeds, wall seconds per 1,000 samples including the draft, every
metric with the copying checks, and what the row cost). ``speedup_nfe`` and ``parity`` follow
the report's row rule; ``speedup_wall`` comes from interleaved draws of the two rows it
compares. Beside it: ``quality_vs_nfe.png`` and ``samples.png`` (``samples.txt`` for text).

NFE counts network calls: a solver with ``k`` calls per step reaches NFE ``n`` in ``n / k``
steps (NFE the solver cannot reach exactly are left out), and a warm start at ``t0`` with the
cold step ``h`` costs ``ceil((1 - t0) / h) k``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from wsfm.config import PipelineConfig
from wsfm.data.prepared import describe_prepared
from wsfm.flow.solvers import nfe_per_step
from wsfm.report import EvalReport, Row, best_cold_row, parity, shipped_row, t0_key
from wsfm.stages.base import VECTOR_ONLY, StageContext, StageResult
from wsfm.stages.eval_jobs import NET_STAGE, EvalEnv, EvalJob, Point, SeedScore, run_eval_job
from wsfm.stages.eval_plots import plot_quality_vs_nfe, show_samples

__all__ = ["NGRAM_RIVALS", "SEED_BASE", "evaluate", "parity", "plan_jobs", "rows_from_scores",
           "wall_speedup", "wall_speedups", "warm_method_name", "warm_starts"]

SEED_BASE = 10_000  # sampling seeds, disjoint from training and shard seeds
# text: the character n-gram drafts alone, as rivals ("ngram"): every order below the prose
# judge's 7 (on prose the 6-gram alone scores better than real held-out text: BENCHMARKS.md,
# text-drafts)
NGRAM_RIVALS = (2, 3, 4, 5, 6)
FROM_ZERO = ("cold", "cold_ot", "reflow", "warm_reflow")  # the whole path
TEXT_ONLY = ("ngram",)
COLD_ROWS = ("cold", "cold_ot")  # wsfm.report.COLD_METHODS: where the cold reference comes from
COPYING_KEYS = ("copy_ratio", "near_copy_share", "train_share", "held_out_share",
                "distinct_share")
TEXT_SOLVER = "jump"  # the discrete sampler: one network call per jump step


def warm_method_name(coupling: str) -> str:
    """The refiner's row: named after the coupling it was trained with."""
    return {"independent": "warm", "minibatch_ot": "warm_ot",
            "nearest": "warm_nearest", "substitute": "warm_substitute"}[coupling]


def warm_starts(t0: float, t0s: list[float], nfe_grid: list[int], h: float) -> list[float]:
    """The start times to evaluate warm sampling at: the configured ``t0``, the benchmark's
    ``t0s``, and ``1 - n h`` for each small step count ``n`` of the grid down to the earliest
    start of those (late starts). A start at 0 is the refiner over the whole clock with the
    full step count (the flow from the widened draft at t = 0: docs/method.md); it does not
    pull every step count of the grid in as a start of its own."""
    floor = min([t0, *(t for t in t0s if t > 0)])
    late = [round(1.0 - n * h, 9) for n in nfe_grid if 1.0 - n * h >= floor - 1e-9]
    return sorted({t0, *t0s, *late})


def wall_speedup(cold: Callable[[int], object], warm: Callable[[int], object], repeats: int,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """Median over ``repeats`` of cold seconds / warm seconds (draft included), the two runs
    interleaved so that a load spike on a shared machine hits one pair, not one method."""
    return wall_speedups(cold, {0: warm}, repeats, clock)[0]


def wall_speedups(cold: Callable[[int], object], warms: dict[Any, Callable[[int], object]],
                  repeats: int, clock: Callable[[], float] = time.perf_counter
                  ) -> dict[Any, float]:
    """:func:`wall_speedup` for several warm draws at once: each round times the cold draw,
    then every warm draw, so one cold timing per round serves them all."""
    ratios: dict[Any, list[float]] = {key: [] for key in warms}
    for k in range(repeats):
        start = clock()
        cold(SEED_BASE + k)
        cold_seconds = clock() - start
        for key, draw in warms.items():
            start = clock()
            draw(SEED_BASE + k)
            ratios[key].append(cold_seconds / max(clock() - start, 1e-12))
    return {key: float(statistics.median(r)) for key, r in ratios.items()}


def _calls(solver: str) -> int:
    return 1 if solver == TEXT_SOLVER else nfe_per_step(solver)


def plan_jobs(cfg: PipelineConfig, inputs: dict[str, str], text: bool) -> list[EvalJob]:
    """One job per method (row), solver and seed (module docstring for the points)."""
    ev, t0 = cfg.evaluate, cfg.flow.t0
    for m in ev.methods:
        if m in (VECTOR_ONLY if text else TEXT_ONLY):
            kind = "vector and image" if text else "text"
            raise ValueError(f"evaluate.methods: {m!r} is for {kind} data only")
    solvers = [TEXT_SOLVER] if text else list(ev.solvers)
    grid = sorted({ev.cold_nfe, *ev.nfe_grid}, reverse=True)
    warm_t0s = warm_starts(t0, ev.warm_t0s, ev.nfe_grid, 1.0 / ev.cold_nfe)
    plans: list[tuple[str, str, str, tuple[Point, ...], int]] = []  # method, row, solver, ...
    for m in ev.methods:
        if m in ("draft", "retrieval"):
            plans.append((m, m, "none", (Point(t0),), 0))
        elif m == "ngram":
            plans += [("ngram", f"ngram{k}", "none", (Point(t0),), k)
                      for k in NGRAM_RIVALS]
        for solver in solvers if NET_STAGE[m] else ():
            k = _calls(solver)
            if m in FROM_ZERO:
                points = tuple(Point(0.0, n // k) for n in grid if n % k == 0)
            elif m in ("warm", "warm_budget"):
                points = tuple(Point(t) for t in warm_t0s)
            else:  # zero_shot (from t = 0 it would be cold from noise: left out)
                points = tuple(Point(t) for t in sorted({t0, *ev.warm_t0s}) if t > 0)
            row = warm_method_name(cfg.flow.coupling) if m == "warm" else m
            plans.append((m, row, solver, points, 0))
    frozen = tuple(sorted(inputs.items()))
    jobs = [EvalJob(cfg, frozen, m, row, solver, points, SEED_BASE + s, order)
            for m, row, solver, points, order in plans for s in range(ev.seeds)]
    # The rows that decide shipping get decide_seeds seeds: the cold rows at cold_nfe (any
    # solver: the reference is the best of them), the refiner's with the shipped solver, and
    # the draft alone (a start time ships only when shown better than it: docs/shipping.md).
    shipped = TEXT_SOLVER if text else ev.method
    for m, row, solver, points, _ in plans:
        deciding = tuple(p for p in points if (m in COLD_ROWS and p.steps is not None
                                               and p.steps * _calls(solver) == ev.cold_nfe)
                         or (m == "warm" and solver == shipped) or m == "draft")
        jobs += [EvalJob(cfg, frozen, m, row, solver, deciding, SEED_BASE + s)
                 for s in range(ev.seeds, ev.decide_seeds) if deciding]
    return jobs


def rows_from_scores(scores: Sequence[SeedScore], n: int, primary: str) -> list[Row]:
    """One row per (row name, t0, NFE, solver): seed means, the spread of the primary metric
    (and ``<key>_spread`` of the copying checks), the median draw time per 1,000 samples and
    the row's total cost."""
    groups: dict[tuple, list[SeedScore]] = {}
    for s in scores:
        groups.setdefault((s.row, s.t0, s.nfe, s.solver), []).append(s)
    rows = []
    for (name, t0, nfe, solver), group in groups.items():
        q = [g.scores[primary] for g in group]
        rows.append(Row(
            method=name, t0=t0, nfe=nfe, solver=solver, quality=float(statistics.fmean(q)),
            spread=float(statistics.pstdev(q)) if len(q) > 1 else 0.0,
            sec_per_1k=float(statistics.median(g.sample_seconds for g in group)) / n * 1000,
            metrics={**{k: float(statistics.fmean(g.scores[k] for g in group))
                        for k in group[0].scores},
                     # The copying checks' seed spread: their target allows it.
                     **{f"{k}_spread": float(statistics.pstdev(g.scores[k] for g in group))
                        for k in COPYING_KEYS if k in group[0].scores}},
            seeds=len(group), seconds=float(sum(g.seconds for g in group)),
            per_seed=tuple(g.scores[primary] for g in sorted(group, key=lambda g: g.seed))))
    return rows


def _draw(sampler: Any, n: int) -> Callable[[int], object]:
    return lambda seed: sampler.sample(n, seed)


def _panels(env: EvalEnv, cfg: PipelineConfig, warm: Row, cold: Row, warm_sampler,
            cold_sampler) -> dict[str, Any]:
    """``samples.png``'s panels: held-out data, drafts, the shipped row, the cold reference,
    and each other flow from t = 0 at the shipped row's NFE (what the same cost buys)."""
    n, seed = env.n, SEED_BASE
    panels = {"held-out data": env.held_out(n), "drafts (NFE 0)": env.draft.sample(n, seed),
              f"{warm.method} t0={warm.t0:g} (NFE {warm.nfe}, {warm.solver})":
                  warm_sampler.sample(n, seed)[0],
              f"{cold.method} (NFE {cold.nfe}, {cold.solver})":
                  cold_sampler.sample(n, seed, steps=cold.nfe // _calls(cold.solver))[0]}
    for m in (m for m in FROM_ZERO if m in cfg.evaluate.methods):
        steps = warm.nfe // _calls(warm.solver)
        panels[f"{m} (NFE {warm.nfe}, {warm.solver})"] = env.sampler(
            m, warm.solver, 0.0).sample(n, seed, steps=steps)[0]
    return panels


def evaluate(ctx: StageContext) -> StageResult:
    began = time.perf_counter()
    cfg, ev = ctx.config, ctx.config.evaluate
    data = describe_prepared(ctx.inputs["prepare_data"])  # the rows: EvalEnv's, loaded once
    text = data.text is not None
    inputs = {k: str(v) for k, v in ctx.inputs.items()}
    jobs = [dataclasses.replace(job, files=ctx.files) for job in plan_jobs(cfg, inputs, text)]
    results = ctx.runtime.map(run_eval_job, jobs, desc="evaluate", unit="jobs")
    env = EvalEnv(cfg, inputs)  # this process: the floor, the wall speed-up, the pictures
    primary, low = env.evaluator.primary, env.evaluator.lower_is_better
    rows = rows_from_scores([s for r in results for s in r], env.n, primary)
    solver = TEXT_SOLVER if text else ev.method
    warm_name = warm_method_name(cfg.flow.coupling)
    cold, warm = best_cold_row(rows, ev.cold_nfe, low), shipped_row(rows, warm_name,
                                                                      cfg.flow.t0, solver)
    cold_sampler = env.sampler(cold.method, cold.solver, 0.0)
    warm_sampler = env.sampler("warm", solver, cfg.flow.t0)
    cold_steps = cold.nfe // _calls(cold.solver)
    # Interleaved draws: the rows' own timings ran apart, under whatever load. Every start
    # time of the shipped rows is a shipping candidate (register), so each gets its own.
    starts = sorted({r.t0 for r in rows if r.method == warm_name and r.solver == solver})
    walls = wall_speedups(lambda s: cold_sampler.sample(env.n, s, steps=cold_steps),
                          {t0_key(t): _draw(env.sampler("warm", solver, t), env.n)
                           for t in starts}, ev.timing_repeats)
    real, how = env.real_data()
    real_scores = env.evaluator.score(real, env.test)
    report = EvalReport.build(
        task=cfg.task, metric=primary, lower_is_better=low, reference=real_scores[primary],
        reference_how=how, reference_n=len(real), t0=cfg.flow.t0, cold_nfe=ev.cold_nfe,
        warm_method=warm_name, solver=solver, rows=rows, speedup_wall=walls[t0_key(warm.t0)],
        reference_metrics={**real_scores, **env.real_copying()}, wall_speedups=walls,
        seconds=time.perf_counter() - began)
    (ctx.out / "metrics.json").write_text(json.dumps(report.to_dict(), indent=2))
    plot_quality_vs_nfe(ctx.out / "quality_vs_nfe.png", report)
    show_samples(ctx.out, data, _panels(env, cfg, warm, cold, warm_sampler, cold_sampler))
    draft = report.draft()
    return StageResult(params={"metric": primary}, metrics={
        "cold_quality": cold.quality, "warm_quality": warm.quality,
        **({"draft_quality": draft.quality} if draft else {}),
        "reference": report.reference, "speedup_nfe": report.speedup_nfe,
        "speedup_wall": report.speedup_wall, "parity": float(report.parity),
        "rows": float(len(rows)), "seconds": report.seconds,
        "row_seconds": float(sum(r.seconds for r in rows))})
