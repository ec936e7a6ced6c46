"""Stage ``register``: pick t0, bundle draft + refiner + sampler settings, check the gates,
release.

The shipped t0 is automatic (:func:`choose_t0`): the largest evaluated start time whose warm
row (the shipped solver) is no worse than the cold reference (the best cold row at N =
``evaluate.cold_nfe``) by more than ``gates.rel_tolerance`` of it, at 95% one-sided confidence
(:func:`wsfm.report.no_worse`), whose wall speed-up, draft included, is at least
``gates.wall_share`` (default ``WALL_SHARE``) of its NFE speed-up, and which is shown better
than its draft alone (the refiner must add something to what it starts from:
:func:`wsfm.report.shown_better`); else the next smaller t0 (docs/shipping.md). The refiner
serves every t0 (it sees the rescaled time), so only the number of steps changes. The stage
hands the bundle, whether the gates pass and its :class:`wsfm.champion.Score` to its runtime
(``ctx.runtime.publish``), which logs it as an MLflow pyfunc model in the stage's run,
registers it as ``wsfm-<task>`` and moves the ``champion`` alias only when the new version
passes the gates and is shown at least as good as the current champion
(``wsfm.champion.decide``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from wsfm.bundle import SamplerSettings, write_bundle
from wsfm.champion import Score
from wsfm.components import net_spec, remask_of
from wsfm.data.prepared import describe_prepared
from wsfm.report import (
    ENTROPY_SHARE,
    Comparison,
    EvalReport,
    Row,
    diverse_enough,
    no_worse,
    shown_better,
    t0_key,
)
from wsfm.stages.base import ModelRelease, StageContext, StageResult

__all__ = ["WALL_SHARE", "T0Choice", "check_gates", "choose_t0", "register"]

# The guaranteed speed-up must hold in wall time, draft included, to this share of the NFE's.
WALL_SHARE = 0.9
NO_DRAFT = "no draft row"  # what a comparison with the draft says when the report has none


@dataclass(frozen=True)
class T0Choice:
    """The shipped start time, the evaluation rows behind it and the comparisons that chose
    it."""

    t0: float
    warm: Row  # the shipped method's row at t0 (with the shipped solver)
    cold: Row  # the cold reference it was held against (the report's rule)
    automatic: bool  # False: no warm row passed, the configured t0 is kept
    quality: Comparison  # warm against cold (wsfm.report.no_worse)
    wall: float  # wall speed-up at t0, draft included (nan: not measured)
    vs_draft: Comparison | None  # warm against the draft alone (None: no draft row)

    @property
    def speedup(self) -> float:
        return self.cold.nfe / self.warm.nfe

    def tags(self) -> dict[str, str]:
        return {"wsfm.t0": repr(self.t0), "wsfm.t0_automatic": str(self.automatic).lower(),
                "wsfm.nfe": str(self.warm.nfe), "wsfm.cold_nfe": str(self.cold.nfe),
                "wsfm.speedup_nfe": f"{self.speedup:.6g}", "wsfm.speedup_wall": f"{self.wall:.6g}",
                "wsfm.vs_cold": self.quality.describe(), "wsfm.vs_draft": self.draft_text()}

    @property
    def beats_draft(self) -> bool:
        return self.vs_draft is not None and self.vs_draft.ok

    def draft_text(self) -> str:
        return NO_DRAFT if self.vs_draft is None else self.vs_draft.describe()


def _as_report(report: EvalReport | dict) -> EvalReport:
    return EvalReport.from_dict(report) if isinstance(report, dict) else report


def _shipped_rows(report: EvalReport) -> list[Row]:
    """The shipped method's rows with the shipped solver, one per start time."""
    return [r for r in report.rows
            if r.method == report.warm_method and r.solver == report.solver]


def _candidate(report: EvalReport, warm: Row, rel_tolerance: float,
               automatic: bool) -> T0Choice:
    cold, draft = report.cold_reference(), report.draft()
    wall = report.wall_speedups.get(t0_key(warm.t0), math.nan)
    return T0Choice(float(warm.t0), warm, cold, automatic,
                    no_worse(warm, cold, rel_tolerance, report.lower_is_better), wall,
                    None if draft is None else shown_better(warm, draft, report.lower_is_better))


def _paired_text(report: EvalReport, warm: Row) -> str:
    draft = report.draft()
    if draft is None:
        return NO_DRAFT
    return shown_better(warm, draft, report.lower_is_better, paired=True).describe()


def _wall_ok(choice: T0Choice, wall_share: float) -> bool:
    if wall_share <= 0:  # not asked for (gates.wall_share: 0)
        return True
    return choice.wall >= wall_share * choice.speedup  # nan (not measured): not shown to hold


def choose_t0(report: EvalReport | dict, rel_tolerance: float,
              wall_share: float = WALL_SHARE) -> T0Choice:
    """The largest t0 whose shipped-method row is no worse than the cold reference (within
    ``rel_tolerance`` of it, :func:`wsfm.report.no_worse`), keeps ``wall_share`` of its
    NFE speed-up in wall time, is shown better than the draft alone and (prose) keeps the
    entropy of real data (:func:`wsfm.report.diverse_enough`); the configured t0 when none
    does."""
    report = _as_report(report)
    for warm in sorted(_shipped_rows(report), key=lambda r: -r.t0):
        choice = _candidate(report, warm, rel_tolerance, automatic=True)
        if (choice.quality.ok and _wall_ok(choice, wall_share) and choice.beats_draft
                and diverse_enough(report, warm)):
            return choice
    return _candidate(report, report.shipped(), rel_tolerance, automatic=False)


def check_gates(report: EvalReport | dict, rel_tolerance: float, min_speedup: float,
                t0: float | None = None, wall_share: float = WALL_SHARE) -> list[str]:
    """Reasons the configuration at ``t0`` (default: the configured one) fails the gates
    (empty: it passes): the shipping rule of :func:`choose_t0` and ``min_speedup``."""
    report = _as_report(report)
    t0 = report.t0 if t0 is None else t0
    warm = next((r for r in _shipped_rows(report) if math.isclose(r.t0, t0)), None)
    if warm is None:
        raise ValueError(f"metrics.json has no {report.warm_method} row at t0={t0}")
    choice = _candidate(report, warm, rel_tolerance, automatic=False)
    cold = choice.cold
    failures = []
    if not choice.quality.ok:
        failures.append(f"quality: {warm.method} {warm.quality:.4g} at NFE {warm.nfe} is not "
                        f"shown to be within {rel_tolerance:.0%} of {cold.method} "
                        f"{cold.quality:.4g} at NFE {cold.nfe} ({choice.quality.describe()})")
    if not choice.beats_draft:
        failures.append(f"draft: {warm.method} {warm.quality:.4g} at NFE {warm.nfe} is not shown "
                        f"better than its draft alone ({choice.draft_text()}"
                        f"{'; add draft to evaluate.methods' if choice.vs_draft is None else ''})")
    if not diverse_enough(report, warm):
        failures.append(f"entropy: {warm.method} writes {warm.metrics.get('entropy', math.nan):.3g}"
                        f" bits per sample, below {ENTROPY_SHARE} x real data's "
                        f"{report.reference_metrics['entropy']:.3g}")
    if choice.speedup < min_speedup:
        failures.append(f"speed-up {choice.speedup:.2f}x is below {min_speedup}x")
    if not _wall_ok(choice, wall_share):
        failures.append(f"wall speed-up {choice.wall:.3g}x (draft included) is below "
                        f"{wall_share} x the NFE speed-up {choice.speedup:.3g}x")
    return failures


def register(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    report = EvalReport.from_dict(json.loads((ctx.inputs["evaluate"] / "metrics.json")
                                             .read_text()))
    gates = cfg.gates
    choice = choose_t0(report, gates.rel_tolerance, gates.wall_share)
    failures = check_gates(report, gates.rel_tolerance, gates.min_speedup, choice.t0,
                           gates.wall_share)
    data = describe_prepared(ctx.inputs["prepare_data"])  # the bundle needs no sample
    settings = SamplerSettings(t0=choice.t0, method=cfg.evaluate.method,
                               step_size=1.0 / cfg.evaluate.cold_nfe,
                               draft_noise=cfg.flow.draft_noise, dim=data.dim,
                               model=net_spec(cfg.model, data),
                               form="discrete" if data.kind == "text" else "continuous",
                               exponent=cfg.flow.kappa_exponent,
                               temperature=cfg.flow.temperature, kind=data.kind,
                               shape=data.shape if data.kind == "image" else (),
                               alphabet=data.text.alphabet if data.text else "",
                               remask=remask_of(cfg.flow))
    write_bundle(ctx.out / "bundle", ctx.inputs["pretrain_draft"] / "draft.npz",
                 ctx.inputs["train_refiner"] / "model.pt", settings)
    (ctx.out / "gates.json").write_text(json.dumps({
        "passed": not failures, "failures": failures, "t0": choice.t0,
        "t0_automatic": choice.automatic, "nfe": choice.warm.nfe, "solver": choice.warm.solver,
        "quality": choice.warm.quality, "spread": choice.warm.spread,
        "speedup_nfe": choice.speedup, "speedup_wall": choice.wall,
        "vs_cold": choice.quality.describe(), "vs_draft": choice.draft_text(),
        # Information only, not a gate (docs/shipping.md, check 3): the same comparison
        # paired by seed.
        "vs_draft_paired": _paired_text(report, choice.warm)}, indent=2))
    score = Score(report.metric, float(choice.warm.quality), float(choice.warm.spread),
                  report.lower_is_better, tuple(float(v) for v in choice.warm.per_seed))
    shipped = {"shipped_quality": score.value, "shipped_spread": score.spread,
               "shipped_t0": choice.t0, "shipped_nfe": float(choice.warm.nfe),
               "shipped_speedup_nfe": choice.speedup, "shipped_speedup_wall": choice.wall}
    release = ctx.runtime.publish(ModelRelease(ctx.out / "bundle", f"wsfm-{cfg.task}",
                                               gates_passed=not failures, score=score,
                                               tags=choice.tags(), metrics=shipped))
    return StageResult(
        params={"t0_shipped": choice.t0},
        metrics={"gates_passed": float(not failures), "speedup_nfe": choice.speedup,
                 "speedup_wall": choice.wall, "t0_shipped": choice.t0,
                 "nfe_shipped": float(choice.warm.nfe), "quality_shipped": score.value},
        tags={**release, "gates_passed": str(not failures).lower(),
              "method": report.warm_method},
    )
