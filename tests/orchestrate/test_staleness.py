"""``wsfm status``'s comparison: a real artifact store, committed the way the runner does."""

import dataclasses
import os

from wsfm.cli.status import format_status
from wsfm.orchestrate.dag import make_plan
from wsfm.orchestrate.fingerprint import stage_code_hash
from wsfm.orchestrate.locks import stage_lock
from wsfm.orchestrate.staleness import (
    diff_params,
    newest_output,
    pipeline_status,
    recorded_params,
)
from wsfm.orchestrate.store import ArtifactStore
from wsfm.stages import STAGES


def commit_all(store, config, specs=STAGES):
    """Commit every stage of the job as the runner does (version, upstream fingerprints of
    the inputs it had, params)."""
    plan = {item.stage: item for item in make_plan(specs, config, store)}
    for spec in (s for s in specs if plan[s.name].action != "unused"):
        fp = plan[spec.name].fingerprint
        tmp = store.begin(spec.name, fp)
        (tmp / "out.txt").write_text(spec.name)
        store.commit(tmp, spec.name, fp, {
            "code": stage_code_hash(spec), "inputs": {d: plan[d].fingerprint for d in spec.deps
                                                      if plan[d].action != "unused"},
            "config": recorded_params(spec, config)})


def by_stage(states):
    return {s.stage: s for s in states}


def test_diff_params_names_changed_added_and_removed_keys():
    old = {"train.lr": 0.002, "train.steps": 300, "data.n": 5, "x.list": [1, 2]}
    new = {"train.lr": 0.001, "train.steps": 300, "model.depth": 3, "x.list": [1, 2]}
    assert diff_params(old, new) == ["data.n: 5 -> (none)", "model.depth: (none) -> 3",
                                     "train.lr: 0.002 -> 0.001"]
    assert diff_params(new, new) == []


def with_every_rival(config):
    return dataclasses.replace(config, evaluate=dataclasses.replace(config.evaluate, methods=[
        "draft", "retrieval", "cold", "cold_ot", "reflow", "zero_shot", "warm", "warm_reflow",
        "warm_budget"]))


def test_up_to_date_then_a_config_change_names_the_key_and_what_it_makes_stale(
        tmp_path, tiny_config):
    tiny_config = with_every_rival(tiny_config)  # every stage part of the job
    store = ArtifactStore(tmp_path, tiny_config.name)
    states = pipeline_status(STAGES, tiny_config, store)
    assert {s.state for s in states} == {"missing"}
    commit_all(store, tiny_config)
    assert all(s.up_to_date for s in pipeline_status(STAGES, tiny_config, store))

    changed = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train,
                                                                          lr=0.0005))
    states = by_stage(pipeline_status(STAGES, changed, store))
    old_lr = tiny_config.train.lr
    assert states["train_refiner"].state == "stale"
    assert states["train_refiner"].reasons == [f"config train.lr: {old_lr} -> 0.0005"]
    assert states["train_baseline"].reasons == [f"config train.lr: {old_lr} -> 0.0005"]
    trained = ("train_refiner", "train_baseline", "train_cold_ot", "train_reflow",
               "train_warm_reflow", "train_refiner_budget")  # all read train
    assert states["evaluate"].reasons == [f"upstream {name} changed (stale)" for name in trained]
    assert states["register"].reasons == ["upstream train_refiner changed (stale)",
                                          "upstream evaluate changed (stale)"]
    untouched = {"prepare_data", "pretrain_draft", "generate_drafts", "fit_evaluator"}
    assert {n for n, s in states.items() if s.up_to_date} == untouched


def test_a_code_version_bump_and_a_damaged_output_are_named(tmp_path, tiny_config):
    store = ArtifactStore(tmp_path, tiny_config.name)
    commit_all(store, tiny_config)
    # More code reached by the stage: its code hash moves.
    changed = tuple(dataclasses.replace(s, code=("wsfm.orchestrate.dag",))
                    if s.name == "fit_evaluator" else s for s in STAGES)
    states = by_stage(pipeline_status(changed, tiny_config, store))
    [reason] = states["fit_evaluator"].reasons
    assert reason.startswith("code changed: ") and reason.count(" -> ") == 1
    assert states["evaluate"].reasons == ["upstream fit_evaluator changed (stale)"]

    (folder,) = (store.root / tiny_config.name / "pretrain_draft").iterdir()
    (folder / "out.txt").write_text("truncated!!!!!!!!")
    states = by_stage(pipeline_status(STAGES, tiny_config, store))
    assert states["pretrain_draft"].state == "stale"
    assert "out.txt has 17 bytes" in states["pretrain_draft"].reasons[0]
    assert newest_output(store, "pretrain_draft")["fingerprint"] == folder.name


def test_the_rivals_of_a_lean_job_are_unused_and_the_job_is_up_to_date(tmp_path, tiny_config):
    store = ArtifactStore(tmp_path, tiny_config.name)
    commit_all(store, tiny_config)  # the job: no rival asked for
    states = by_stage(pipeline_status(STAGES, tiny_config, store))
    unused = {n for n, s in states.items() if s.state == "unused"}
    assert unused == {"train_cold_ot", "generate_reflow", "train_reflow",
                      "generate_warm_reflow", "train_warm_reflow", "train_refiner_budget"}
    assert all(s.up_to_date for n, s in states.items() if n not in unused)
    assert "not in evaluate.methods" in states["train_cold_ot"].reasons[0]
    # Asking for the rivals: they are missing, and evaluate is stale for their sake.
    asked = by_stage(pipeline_status(STAGES, with_every_rival(tiny_config), store))
    assert {n for n in unused if asked[n].state == "missing"} == unused
    assert "upstream train_cold_ot changed (missing)" in asked["evaluate"].reasons


def test_a_stage_being_made_is_running_and_names_its_run(tmp_path, tiny_config):
    """An invocation holding a stage's lock (another open file: flock locks are per open
    file, so this process counts as another) shows as ``running``, named; released, the
    stage is back to ``missing``."""
    store = ArtifactStore(tmp_path, tiny_config.name)
    plan = {item.stage: item for item in make_plan(STAGES, tiny_config, store)}
    fp = plan["train_refiner"].fingerprint
    with stage_lock(store.root, tiny_config.name, "train_refiner", fp,
                    holder={"mlflow_run_id": "abc123"}):
        states = by_stage(pipeline_status(STAGES, tiny_config, store))
        assert states["train_refiner"].state == "running"
        assert not states["train_refiner"].up_to_date
        [reason] = states["train_refiner"].reasons
        assert reason.startswith(f"being made by MLflow run abc123, pid {os.getpid()} on ")
        assert states["train_baseline"].state == "missing"
        line = [x for x in format_status(list(states.values()), "t")
                if "train_refiner" in x][0]
        assert line.split()[1] == "running"
    assert by_stage(pipeline_status(STAGES, tiny_config, store))["train_refiner"].state == \
        "missing"
