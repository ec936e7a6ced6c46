"""The evaluation report as a typed record, and the one rule that picks its key rows.

``evaluate`` builds an :class:`EvalReport` and writes ``metrics.json`` from it; ``register``
(the gates), ``wsfm bench`` and ``benchmarks/quality.py`` (BENCHMARKS.md) read it back with
:meth:`EvalReport.from_dict` and use the same rows:

- the **cold reference** (:func:`best_cold_row`): the best row at NFE ``cold_nfe`` over every
  cold method (``COLD_METHODS``: any coupling) and every solver. NFE counts network calls, so
  a heun row at NFE 100 took 50 steps;
- the **shipped warm row** (:func:`shipped_row`): the warm method the pipeline trains, at the
  configured ``t0``, sampled with the shipped solver;
- the **WS-FM rows** (:meth:`EvalReport.ws_fm_methods`) that the benchmark's targets judge:
  the refiner's rows and those of its rectified round (``WARM_ROUND``), which pays the same
  extra (one pair generation, one training) as the ``reflow`` rival.

``speedup_nfe`` is the cold reference's NFE over the shipped row's NFE, both in network calls.
Every comparison that decides something (what ``register`` ships, the champion alias, the
benchmark's parity targets and ``parity``) is :func:`no_worse`: a one-sided confidence bound on
the difference from the reference within a fixed margin, which a noisier measurement makes
harder to pass, never easier (docs/shipping.md). Pure: no Ray, no MLflow, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

__all__ = ["COLD_METHODS", "CONFIDENCE", "ENTROPY_SHARE", "FEW_STEP_RIVALS", "PARITY_MARGIN",
           "WARM_ROUND", "Comparison", "EvalReport", "Row", "best_at_nfe", "best_cold_row",
           "better", "diverse_enough", "no_worse", "no_worse_values", "parity", "shipped_row",
           "shown_better", "t0_key"]

COLD_METHODS = ("cold", "cold_ot")  # from noise at t = 0, trained with any coupling
FEW_STEP_RIVALS = ("cold", "cold_ot", "reflow")  # the equal-NFE target's rivals (no draft)
WARM_ROUND = "warm_reflow"  # WS-FM's rectified round (wsfm.stages.rivals)
# Parity: no worse than the cold reference by more than this share of it, shown at
# CONFIDENCE (the benchmark's targets; the default of gates.rel_tolerance).
PARITY_MARGIN = 0.10


@dataclass(frozen=True)
class Row:
    """One method at one start time, NFE and solver, over ``seeds`` sampling seeds.

    ``quality``: mean of the primary metric over seeds; ``spread``: its population std;
    ``sec_per_1k``: median wall seconds per 1,000 samples (draft included, scoring excluded);
    ``metrics``: every metric's seed mean (copying checks included); ``seconds``: what the
    row cost the evaluation (sampling and scoring, all seeds); ``per_seed``: the primary
    metric of each seed, in seed order (what :func:`no_worse` needs).
    """

    method: str
    t0: float
    nfe: int
    solver: str
    quality: float
    spread: float
    sec_per_1k: float
    metrics: dict[str, float] = field(default_factory=dict)
    seeds: int = 1
    seconds: float = 0.0
    per_seed: tuple[float, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        kwargs = _strict(cls, d, "row")
        kwargs["per_seed"] = tuple(kwargs.get("per_seed", ()))
        return cls(**kwargs)


@dataclass(frozen=True)
class EvalReport:
    """What ``metrics.json`` holds (module docstring for the row rule).

    ``reference``: the primary metric of real data against the held-out split on
    ``reference_n`` samples, ``reference_how`` says which data and why that size;
    ``reference_metrics``: every metric of that real data (copying checks included: the
    data's own values). ``seconds``: the whole evaluation's wall time. ``wall_speedups``: for
    each start time of the shipped method's rows (:func:`t0_key`), the cold reference's wall
    time over that row's, draft included, from interleaved draws (``speedup_wall`` is the
    configured t0's).
    """

    task: str
    metric: str
    lower_is_better: bool
    reference: float
    reference_how: str
    reference_n: int
    t0: float
    cold_nfe: int
    warm_method: str
    solver: str
    rows: tuple[Row, ...]
    speedup_nfe: float
    speedup_wall: float
    parity: bool
    reference_metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    wall_speedups: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, *, rows: Sequence[Row], speedup_wall: float, **fields_: Any) -> EvalReport:
        """A report whose ``speedup_nfe`` and ``parity`` follow the row rule."""
        draft = cls(rows=tuple(rows), speedup_wall=speedup_wall, speedup_nfe=math.nan,
                    parity=False, **fields_)
        cold, warm = draft.cold_reference(), draft.shipped()
        return cls(**{**draft._fields(), "speedup_nfe": cold.nfe / warm.nfe,
                      "parity": parity(warm, cold, lower_is_better=draft.lower_is_better)})

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def cold_reference(self) -> Row:
        return best_cold_row(self.rows, self.cold_nfe, self.lower_is_better)

    def shipped(self) -> Row:
        return shipped_row(self.rows, self.warm_method, self.t0, self.solver)

    def draft(self) -> Row | None:
        """The draft model's row (its samples alone, NFE 0); None where it was not asked for."""
        return next((r for r in self.rows if r.method == "draft"), None)

    def ws_fm_methods(self) -> tuple[str, ...]:
        """The rows' methods that are WS-FM: the refiner and its rectified round."""
        return (self.warm_method, WARM_ROUND)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        kwargs = _strict(cls, d, "metrics.json")
        kwargs["rows"] = tuple(Row.from_dict(r) for r in kwargs["rows"])
        return cls(**kwargs)


def _strict(cls: type, d: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls)
                if f.default is MISSING and f.default_factory is MISSING}
    unknown, missing = sorted(set(d) - names), sorted(required - set(d))
    if unknown or missing:
        raise ValueError(f"{what}: unknown keys {unknown}, missing keys {missing} "
                         f"(an evaluation from an older version: rerun evaluate)")
    return dict(d)


ENTROPY_SHARE = 0.95  # text windows: a row needs this share of real data's sample entropy


def diverse_enough(report: EvalReport, row: Row) -> bool:
    """Whether ``row`` keeps the sample entropy of real data (``ENTROPY_SHARE`` of it) where
    the metric comes with an entropy (prose: a sampler that collapses onto a few likely
    strings scores well on NLL alone); True where it does not."""
    real = report.reference_metrics.get("entropy")
    if real is None:
        return True
    return row.metrics.get("entropy", math.nan) >= ENTROPY_SHARE * real


def better(a: float, b: float, lower_is_better: bool) -> bool:
    """``a`` strictly better than ``b``."""
    return a < b if lower_is_better else a > b


def _best(rows: Iterable[Row], lower_is_better: bool) -> Row | None:
    rows = list(rows)
    if not rows:
        return None
    return (min if lower_is_better else max)(rows, key=lambda r: r.quality)


def best_cold_row(rows: Sequence[Row], cold_nfe: int, lower_is_better: bool) -> Row:
    """The best row at exactly ``cold_nfe`` network calls over ``COLD_METHODS`` and solvers."""
    found = _best((r for r in rows if r.method in COLD_METHODS and r.nfe == cold_nfe),
                  lower_is_better)
    if found is None:
        have = sorted({(r.method, r.solver, r.nfe) for r in rows if r.method in COLD_METHODS})
        raise ValueError(f"no cold row at NFE {cold_nfe} (cold rows: {have})")
    return found


def shipped_row(rows: Sequence[Row], warm_method: str, t0: float, solver: str) -> Row:
    """The warm row the pipeline ships: ``warm_method`` at ``t0`` with ``solver``."""
    for r in rows:
        if r.method == warm_method and math.isclose(r.t0, t0) and r.solver == solver:
            return r
    raise ValueError(f"no {warm_method} row at t0={t0} with solver {solver!r}")


def best_at_nfe(rows: Sequence[Row], methods: Iterable[str], nfe: int,
                lower_is_better: bool) -> Row | None:
    """The best row of ``methods`` at exactly ``nfe`` calls (any solver, any t0), or None."""
    wanted = set(methods)
    return _best((r for r in rows if r.method in wanted and r.nfe == nfe), lower_is_better)


def t0_key(t0: float) -> str:
    """How ``EvalReport.wall_speedups`` names a start time."""
    return f"{t0:.6g}"


# One-sided confidence of the shipping comparison (docs/shipping.md).
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    """Candidate against reference on one metric: the mean difference, oriented so that a
    positive value is worse (``worse_by``), its one-sided upper confidence bound, the margin
    it must stay within, and the verdict."""

    worse_by: float
    bound: float
    margin: float
    ok: bool
    strict: bool = False  # the bound must be below the margin (shown better), not at it
    paired: bool = False  # the bound is on per-seed differences (shown_better)

    def describe(self) -> str:
        sign = ("<" if self.ok else ">=") if self.strict else ("<=" if self.ok else ">")
        kind = " (paired by seed)" if self.paired else ""
        return (f"worse by {self.worse_by:+.4g}, {CONFIDENCE:.0%} upper bound{kind} "
                f"{self.bound:+.4g} {sign} margin {self.margin:.4g}")


def no_worse(candidate: Row, reference: Row, rel_margin: float,
             lower_is_better: bool = True, confidence: float = CONFIDENCE) -> Comparison:
    """Whether ``candidate`` is no worse than ``reference`` by more than ``rel_margin`` of the
    reference's quality, at one-sided ``confidence`` (a non-inferiority test on the rows'
    per-seed values, :func:`no_worse_values`)."""
    return no_worse_values(candidate.per_seed, reference.per_seed, rel_margin,
                           lower_is_better, confidence,
                           means=(candidate.quality, reference.quality))


def no_worse_values(candidate: Sequence[float], reference: Sequence[float], rel_margin: float,
                    lower_is_better: bool = True, confidence: float = CONFIDENCE,
                    means: tuple[float, float] | None = None) -> Comparison:
    """The non-inferiority test on per-seed values (``means``: the two means where they are
    known already, else those of the values).

    The difference of the seed means gets a Welch upper bound from the per-seed values
    (sample variances, Welch-Satterthwaite degrees of freedom, Student's t); the candidate
    passes when that bound is within the margin, ``rel_margin`` of the reference's mean. More
    noise, or fewer seeds, widen the bound: a noisier measurement is harder to pass, never
    easier. Fewer than two values on either side cannot show that their noise is small: the
    bound is infinite."""
    from scipy.stats import t as student_t

    a, b = tuple(candidate), tuple(reference)
    if means is None:
        means = (math.fsum(a) / len(a) if a else math.nan,
                 math.fsum(b) / len(b) if b else math.nan)
    sign = 1.0 if lower_is_better else -1.0
    worse_by = sign * (means[0] - means[1])
    margin = rel_margin * abs(means[1])
    if len(a) < 2 or len(b) < 2:
        return Comparison(worse_by, math.inf, margin, False)
    va, vb = _sample_var(a) / len(a), _sample_var(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        bound = worse_by
    else:
        df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1) or 1e-300)
        bound = worse_by + float(student_t.ppf(confidence, df)) * se
    return Comparison(worse_by, bound, margin, bound <= margin)


def shown_better(candidate: Row, reference: Row, lower_is_better: bool = True,
                 confidence: float = CONFIDENCE, paired: bool = False) -> Comparison:
    """Whether ``candidate`` is shown strictly better than ``reference``: a one-sided upper
    bound on ``candidate - reference`` must be below zero. Two rows of the same values (a
    sampler that returns its draft unchanged) are not shown better.

    The bound is Welch's (:func:`no_worse`), or with ``paired`` and as many seeds on both
    sides, Student's on the per-seed differences: ``mean(d) + t(confidence, n - 1) sd(d) /
    sqrt(n)``. Pairing is for rows whose seed ``s`` shares its random input: the refiner's
    seed ``s`` starts from the draft's draw of seed ``s``, which is the ``draft`` row's seed
    ``s`` (``wsfm.stages.eval_jobs``), and ``Row.per_seed`` is in seed order. Noise in the
    differences, or fewer seeds, still widen the bound."""
    a, b = candidate.per_seed, reference.per_seed
    if not (paired and len(a) == len(b) >= 2):
        c = no_worse(candidate, reference, 0.0, lower_is_better, confidence)
        return Comparison(c.worse_by, c.bound, 0.0, c.bound < 0.0, strict=True)
    from scipy.stats import t as student_t

    sign = 1.0 if lower_is_better else -1.0
    d = [sign * (x - y) for x, y in zip(a, b, strict=True)]
    worse_by = sign * (candidate.quality - reference.quality)
    bound = worse_by + float(student_t.ppf(confidence, len(d) - 1)) * math.sqrt(
        _sample_var(d) / len(d))
    return Comparison(worse_by, bound, 0.0, bound < 0.0, strict=True, paired=True)


def _sample_var(xs: Sequence[float]) -> float:
    mean = math.fsum(xs) / len(xs)
    return math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def parity(warm: Row, cold: Row, rel_margin: float = PARITY_MARGIN,
           lower_is_better: bool = True) -> bool:
    """Warm shown no worse than cold by more than ``rel_margin`` of it (:func:`no_worse`)."""
    return no_worse(warm, cold, rel_margin, lower_is_better).ok
