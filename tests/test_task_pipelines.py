"""The digits, words and text pipelines' smoke profiles, end to end through the CLI."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, job_stages, stage_lines, wsfm
from wsfm.config import load_pipeline
from wsfm.orchestrate.store import ArtifactStore

pytestmark = pytest.mark.pipeline


@pytest.mark.parametrize("task,metric,lower", [("digits", "fd", True),
                                               ("words", "novel_valid_rate", False),
                                               ("text", "nll", True)])
def test_task_smoke_pipeline(tmp_path, task, metric, lower):
    home = tmp_path / "home"
    pipeline = ROOT / "pipelines" / f"{task}.yaml"
    proc = wsfm("run", str(pipeline), "--profile", "smoke", home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = job_stages(load_pipeline(pipeline, profile="smoke"))
    assert stage_lines(proc.stdout) == {name: "done" for name in job}
    store = ArtifactStore(home / "artifacts", task)
    (evaluated,) = (store.root / task / "evaluate").iterdir()
    report = json.loads((evaluated / "metrics.json").read_text())
    assert report["task"] == task and report["metric"] == metric
    assert report["lower_is_better"] is lower
    methods = {r["method"] for r in report["rows"]}
    assert {"draft", "cold", "zero_shot"} <= methods
    # warm_ot; warm_nearest for words; warm_substitute for text
    assert any(m.startswith("warm") for m in methods)
    assert report["speedup_nfe"] == 10.0
    # The reference (real held-out data) beats the draft on the task's own metric.
    draft = next(r for r in report["rows"] if r["method"] == "draft")
    assert (report["reference"] < draft["quality"]) if lower else (
        report["reference"] > draft["quality"])
