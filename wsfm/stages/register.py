"""Stage ``register``: pick t0, bundle draft + refiner + sampler settings, check the gates,
release.

The shipped t0 is automatic (:func:`choose_t0`): the largest evaluated start time whose warm
row meets the tolerance against the cold row at N = ``evaluate.cold_nfe``; the refiner serves
every t0 (it sees the rescaled time), so only the number of steps changes. The stage hands
the bundle, whether the gates pass and its :class:`wsfm.champion.Score` to its runtime
(``ctx.runtime.publish``), which logs it as an MLflow pyfunc model in the stage's run,
registers it as ``wsfm-<task>`` and moves the ``champion`` alias only when the new version
passes the gates and is at least as good as the current champion (``wsfm.champion.decide``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from wsfm.bundle import SamplerSettings, write_bundle
from wsfm.champion import Score
from wsfm.components import net_spec
from wsfm.data.datasets import load_dataset
from wsfm.report import EvalReport, Row, parity
from wsfm.stages.base import ModelRelease, StageContext, StageResult

__all__ = ["T0Choice", "check_gates", "choose_t0", "register"]


@dataclass(frozen=True)
class T0Choice:
    """The shipped start time and the evaluation rows behind it."""

    t0: float
    warm: Row  # the shipped method's row at t0 (with the shipped solver)
    cold: Row  # the cold reference it was held against (the report's rule)
    automatic: bool  # False: no warm row met the tolerance, the configured t0 is kept

    @property
    def speedup(self) -> float:
        return self.cold.nfe / self.warm.nfe

    def tags(self) -> dict[str, str]:
        return {"wsfm.t0": repr(self.t0), "wsfm.t0_automatic": str(self.automatic).lower(),
                "wsfm.nfe": str(self.warm.nfe), "wsfm.cold_nfe": str(self.cold.nfe),
                "wsfm.speedup_nfe": f"{self.speedup:.6g}"}


def _as_report(report: EvalReport | dict) -> EvalReport:
    return EvalReport.from_dict(report) if isinstance(report, dict) else report


def _shipped_rows(report: EvalReport) -> list[Row]:
    """The shipped method's rows with the shipped solver, one per start time."""
    return [r for r in report.rows
            if r.method == report.warm_method and r.solver == report.solver]


def choose_t0(report: EvalReport | dict, rel_tolerance: float) -> T0Choice:
    """The largest t0 whose shipped-method row meets ``rel_tolerance`` against the cold
    reference (the report's rule: the best cold row at ``cold_nfe``); the configured t0 when
    none does."""
    report = _as_report(report)
    cold = report.cold_reference()
    passing = [r for r in _shipped_rows(report)
               if parity(r, cold, rel_tolerance, report.lower_is_better)]
    if passing:
        best = max(passing, key=lambda r: r.t0)
        return T0Choice(float(best.t0), best, cold, automatic=True)
    return T0Choice(float(report.t0), report.shipped(), cold, automatic=False)


def check_gates(report: EvalReport | dict, rel_tolerance: float, min_speedup: float,
                t0: float | None = None) -> list[str]:
    """Reasons the configuration at ``t0`` (default: the configured one) fails the gates
    (empty: it passes). The rows follow the report's rule: the best cold row at
    ``cold_nfe``, the shipped method's row at ``t0``."""
    report = _as_report(report)
    cold = report.cold_reference()
    t0 = report.t0 if t0 is None else t0
    warm = next((r for r in _shipped_rows(report) if math.isclose(r.t0, t0)), None)
    if warm is None:
        raise ValueError(f"metrics.json has no {report.warm_method} row at t0={t0}")
    speedup = cold.nfe / warm.nfe
    failures = []
    if not parity(warm, cold, rel_tolerance, report.lower_is_better):
        failures.append(f"quality: {warm.method} {warm.quality:.4g} at NFE {warm.nfe} is worse "
                        f"than {cold.method} {cold.quality:.4g} at NFE {cold.nfe} beyond "
                        "tolerance")
    if speedup < min_speedup:
        failures.append(f"speed-up {speedup:.2f}x is below {min_speedup}x")
    return failures


def register(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    report = EvalReport.from_dict(json.loads((ctx.inputs["evaluate"] / "metrics.json")
                                             .read_text()))
    choice = choose_t0(report, cfg.gates.rel_tolerance)
    failures = check_gates(report, cfg.gates.rel_tolerance, cfg.gates.min_speedup, choice.t0)
    data = load_dataset(cfg.data)
    settings = SamplerSettings(t0=choice.t0, method=cfg.evaluate.method,
                               step_size=1.0 / cfg.evaluate.cold_nfe,
                               draft_noise=cfg.flow.draft_noise, dim=data.dim,
                               model=net_spec(cfg.model, data),
                               form="discrete" if data.kind == "text" else "continuous",
                               exponent=cfg.flow.kappa_exponent,
                               temperature=cfg.flow.temperature, kind=data.kind,
                               shape=data.shape if data.kind == "image" else (),
                               alphabet=data.text.alphabet if data.text else "")
    write_bundle(ctx.out / "bundle", ctx.inputs["pretrain_draft"] / "draft.npz",
                 ctx.inputs["train_refiner"] / "model.pt", settings)
    (ctx.out / "gates.json").write_text(json.dumps({
        "passed": not failures, "failures": failures, "t0": choice.t0,
        "t0_automatic": choice.automatic, "speedup_nfe": choice.speedup}, indent=2))
    score = Score(report.metric, float(choice.warm.quality), float(choice.warm.spread),
                  report.lower_is_better)
    release = ctx.runtime.publish(ModelRelease(ctx.out / "bundle", f"wsfm-{cfg.task}",
                                               gates_passed=not failures, score=score,
                                               tags=choice.tags()))
    return StageResult(
        params={"t0_shipped": choice.t0},
        metrics={"gates_passed": float(not failures), "speedup_nfe": choice.speedup,
                 "t0_shipped": choice.t0, "quality_shipped": score.value},
        tags={**release, "gates_passed": str(not failures).lower(),
              "method": report.warm_method},
    )
