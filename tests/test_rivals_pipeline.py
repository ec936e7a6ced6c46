"""The evaluation's trained rivals in the real pipeline: the shared toy2d smoke run (a copy of
its home) with cold_ot, reflow and warm_reflow added to evaluate.methods, and the refiner
sampled from t0 = 0 (Ray, DeepSpeed, shards, MLflow). Every stage is part of that job; the
stages the smoke job already made are reused, not trained again."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import STAGE_NAMES, job_stages, stage_lines, wsfm
from wsfm.config import load_pipeline
from wsfm.orchestrate.store import ArtifactStore
from wsfm.report import EvalReport
from wsfm.shards import read_manifest
from wsfm.stages import STAGES

pytestmark = [pytest.mark.pipeline]


def test_smoke_pipeline_reports_the_rivals(smoke, tmp_path):
    copy = smoke.copy(tmp_path)
    pipeline, home = copy.pipeline, copy.home
    doc = yaml.safe_load(pipeline.read_text())
    doc["profiles"]["smoke"]["evaluate"].update(
        methods=["draft", "cold", "cold_ot", "reflow", "warm", "warm_reflow"],
        solvers=["euler", "heun"], n_samples=300, warm_t0s=[0.0, 0.9])
    pipeline.write_text(yaml.safe_dump(doc))
    proc = wsfm("run", str(pipeline), "--profile", "smoke", home=home, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Every stage its methods need (the equal-budget refiner is not asked for: unused); what
    # the smoke job made upstream of the evaluation is reused (its inputs did not change).
    job = job_stages(load_pipeline(pipeline, profile="smoke"))
    assert set(job) == {s.name for s in STAGES} - {"train_refiner_budget"}
    reused = set(STAGE_NAMES) - {"evaluate", "register"}
    assert stage_lines(proc.stdout) == {name: "cached" if name in reused else "done"
                                        for name in job}
    store = ArtifactStore(home / "artifacts", "toy2d")
    (evaluated,) = (p for p in (store.root / "toy2d" / "evaluate").iterdir()  # this run's
                    if not (smoke.home / "artifacts" / "toy2d" / "evaluate" / p.name).exists())
    report = EvalReport.from_dict(json.loads((evaluated / "metrics.json").read_text()))
    rows = {(r.method, r.solver, r.nfe) for r in report.rows}
    for method in ("cold", "cold_ot", "reflow", "warm_reflow"):
        assert (method, "euler", 100) in rows and (method, "heun", 2) in rows, method
    # The refiner from t0 = 0 with all 100 steps: the flow from the widened drafts over the
    # whole clock (what a separate "draft_source" network used to train again).
    assert ("warm_ot", "euler", 100) in rows
    assert (report.cold_reference().method in ("cold", "cold_ot")
            and report.cold_reference().nfe == 100)
    (pairs,) = (store.root / "toy2d" / "generate_reflow").iterdir()
    drafts = copy.config.shards.num_shards * copy.config.shards.per_shard
    assert sum(r.count for r in read_manifest(pairs)) == drafts  # [z | x1] pairs
    (warm_pairs,) = (store.root / "toy2d" / "generate_warm_reflow").iterdir()
    assert sum(r.count for r in read_manifest(warm_pairs)) == drafts  # [x(t0) | x1] pairs
    assert (evaluated / "quality_vs_nfe.png").stat().st_size > 10_000
