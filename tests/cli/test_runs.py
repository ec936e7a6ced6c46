"""``wsfm runs``: invocations read back from a real MLflow store written by the Tracker."""

import pytest
from mlflow.tracking import MlflowClient

from wsfm.cli import main
from wsfm.cli.runs import invocations
from wsfm.tracking import Tracker, tracking_uri


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Two invocations of toy2d: one failed at train_refiner, a later one that finished."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = Tracker(tracking_uri(tmp_path), "toy2d", tmp_path / "mlartifacts")
    ids = []
    for outcome in ("failed", "ok"):
        parent = tracker.start_run("toy2d", tags={"wsfm.profile": "smoke"})
        for stage, status, ok, metrics in (
                ("pretrain_draft", "cached" if outcome == "ok" else "ran", True, {"nll": 1.5}),
                ("train_refiner", "ran", outcome == "ok", {}),
                ("evaluate", "ran", True, {"warm_quality": 0.0312, "speedup_nfe": 10.0})):
            if outcome == "failed" and stage == "evaluate":
                continue  # blocked: no child run
            child = tracker.start_run(stage, parent, tags={"wsfm.stage": stage,
                                                           "wsfm.status": status})
            tracker.log(child, metrics=metrics)
            tracker.finish(child, ok)
        tracker.finish(parent, outcome == "ok")
        ids.append(parent)
    return tmp_path, ids


def test_invocations_pair_parents_with_their_stage_outcomes(store):
    home, (failed, ok) = store
    client = MlflowClient(tracking_uri(home))
    exp = client.get_experiment_by_name("toy2d")
    found = invocations(client.search_runs([exp.experiment_id]), {exp.experiment_id: "toy2d"})
    assert [i.run_id for i in found] == [ok, failed]  # newest first
    latest, first = found
    assert latest.status == "FINISHED" and first.status == "FAILED"
    assert [(s.stage, s.status) for s in latest.stages] == [
        ("pretrain_draft", "cached"), ("train_refiner", "ran"), ("evaluate", "ran")]
    assert first.outcomes() == "1 failed, 1 ran" and latest.outcomes() == "1 cached, 2 ran"
    assert latest.headline() == "warm_quality=0.0312  speedup_nfe=10" and first.headline() == ""
    assert latest.seconds is not None and latest.seconds >= 0 and latest.profile == "smoke"


def test_list_and_show_print_them(store, capsys):
    home, (failed, ok) = store
    assert main(["runs", "list", "toy2d", "--home", str(home)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("run id") and len(rows) == 3
    assert rows[1].startswith(ok) and "FINISHED" in rows[1] and "warm_quality=0.0312" in rows[1]
    assert rows[2].startswith(failed) and "FAILED" in rows[2] and "1 failed, 1 ran" in rows[2]
    assert main(["runs", "show", failed[:10], "--home", str(home)]) == 1  # a failed run
    shown = capsys.readouterr().out
    assert f"run {failed}: pipeline toy2d, profile smoke, FAILED" in shown
    assert any(line.split()[:2] == ["train_refiner", "failed"] for line in shown.splitlines())
    assert main(["runs", "show", "nope", "--home", str(home)]) == 2
    assert main(["runs", "list", "words", "--home", str(home)]) == 2
    assert "no runs of pipeline 'words'" in capsys.readouterr().err
