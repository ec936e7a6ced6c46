"""Stage ``register``: bundle draft + refiner + sampler settings, check the gates, release.

The stage builds the bundle, decides whether the gates pass and hands the bundle to its
runtime (``ctx.runtime.publish``), which logs it as an MLflow pyfunc model in the stage's run,
registers it as ``wsfm-<task>`` and sets the ``champion`` alias when the gates pass.
"""

from __future__ import annotations

import json

from wsfm.bundle import SamplerSettings, write_bundle
from wsfm.components import net_spec
from wsfm.data.datasets import load_dataset
from wsfm.stages.base import ModelRelease, StageContext, StageResult
from wsfm.report import EvalReport, parity
from wsfm.stages.evaluate import warm_method_name

__all__ = ["check_gates", "register"]


def check_gates(report: EvalReport | dict, rel_tolerance: float,
                min_speedup: float) -> list[str]:
    """Reasons the shipped configuration fails the gates (empty: it passes). The rows are
    the report's own rule: the best cold row at ``cold_nfe``, the warm row shipped at t0."""
    if isinstance(report, dict):
        report = EvalReport.from_dict(report)
    cold, warm = report.cold_reference(), report.shipped()
    failures = []
    if not parity(warm, cold, rel_tolerance, report.lower_is_better):
        failures.append(f"quality: {warm.method} {warm.quality:.4g} at NFE {warm.nfe} is worse "
                        f"than {cold.method} {cold.quality:.4g} at NFE {cold.nfe} beyond "
                        "tolerance")
    if report.speedup_nfe < min_speedup:
        failures.append(f"speed-up {report.speedup_nfe:.2f}x is below {min_speedup}x")
    return failures


def register(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    report = json.loads((ctx.inputs["evaluate"] / "metrics.json").read_text())
    failures = check_gates(report, cfg.gates.rel_tolerance, cfg.gates.min_speedup)
    data = load_dataset(cfg.data)
    settings = SamplerSettings(t0=cfg.flow.t0, method=cfg.evaluate.method,
                               step_size=1.0 / cfg.evaluate.cold_nfe,
                               draft_noise=cfg.flow.draft_noise, dim=data.dim,
                               model=net_spec(cfg.model, data),
                               form="discrete" if data.kind == "text" else "continuous",
                               exponent=cfg.flow.kappa_exponent,
                               temperature=cfg.flow.temperature)
    write_bundle(ctx.out / "bundle", ctx.inputs["pretrain_draft"] / "draft.npz",
                 ctx.inputs["train_refiner"] / "model.pt", settings)
    (ctx.out / "gates.json").write_text(json.dumps({"passed": not failures,
                                                    "failures": failures}, indent=2))
    release = ctx.runtime.publish(ModelRelease(ctx.out / "bundle", f"wsfm-{cfg.task}",
                                               champion=not failures))
    return StageResult(
        metrics={"gates_passed": float(not failures), "speedup_nfe": report["speedup_nfe"]},
        tags={**release, "gates_passed": str(not failures).lower(),
              "method": warm_method_name(cfg.flow.coupling)},
    )

