import dataclasses

import pytest

from wsfm.orchestrate.dag import downstream, make_plan, topo_order
from wsfm.orchestrate.store import ArtifactStore
from wsfm.stages import STAGES, get_stage

NAMES = [s.name for s in STAGES]
RIVAL_STAGES = {"train_cold_ot", "generate_reflow", "train_reflow", "generate_warm_reflow",
                "train_warm_reflow", "train_refiner_budget"}
BENCH_METHODS = ["draft", "retrieval", "cold", "cold_ot", "reflow", "zero_shot", "warm",
                 "warm_reflow", "warm_budget"]


def with_methods(cfg, methods):
    return dataclasses.replace(cfg, evaluate=dataclasses.replace(cfg.evaluate, methods=methods))


@pytest.fixture
def bench_config(tiny_config):
    """tiny_config with every rival asked for: every stage is part of the job."""
    return with_methods(tiny_config, BENCH_METHODS)


def finish_all(store, plan):
    for item in (i for i in plan if i.action != "unused"):
        store.commit(store.begin(item.stage, item.fingerprint), item.stage, item.fingerprint,
                     {"mlflow_run_id": f"run-{item.stage}"})


def actions(plan):
    return {item.stage: item.action for item in plan}


def test_topological_order_puts_dependencies_first():
    order = [s.name for s in topo_order(STAGES)]
    for spec in STAGES:
        assert all(order.index(dep) < order.index(spec.name) for dep in spec.deps)


def test_downstream_of_train_refiner():
    assert downstream(STAGES, "train_refiner") == {"train_refiner", "generate_warm_reflow",
                                                   "train_warm_reflow", "evaluate", "register"}
    assert downstream(STAGES, "train_baseline") == {"train_baseline", "evaluate", "register"}


def test_fresh_store_runs_everything_then_everything_is_cached(tmp_path, bench_config):
    store = ArtifactStore(tmp_path, bench_config.name)
    plan = make_plan(STAGES, bench_config, store)
    assert set(actions(plan).values()) == {"run"}
    finish_all(store, plan)
    again = make_plan(STAGES, bench_config, store)
    assert set(actions(again).values()) == {"cached"}
    assert again[0].producer_run_id == f"run-{again[0].stage}"


def test_from_reruns_exactly_the_downstream_stages(tmp_path, bench_config):
    store = ArtifactStore(tmp_path, bench_config.name)
    finish_all(store, make_plan(STAGES, bench_config, store))
    plan = make_plan(STAGES, bench_config, store, from_stage="train_refiner")
    ran = {s for s, a in actions(plan).items() if a == "run"}
    assert ran == {"train_refiner", "generate_warm_reflow", "train_warm_reflow", "evaluate",
                   "register"}
    assert all(a == "cached" for s, a in actions(plan).items() if s not in ran)


def test_only_and_force(tmp_path, bench_config):
    tiny_config = bench_config
    store = ArtifactStore(tmp_path, tiny_config.name)
    blocked = actions(make_plan(STAGES, tiny_config, store, only="evaluate"))
    assert blocked["evaluate"] == "blocked" and blocked["pretrain_draft"] == "skip"
    # The stages --only leaves out are skipped, never blocked (blocked fails the run), even
    # when their own inputs are missing: `--only prepare_data` on an empty store succeeds;
    # a stage whose input is missing is blocked.
    first = actions(make_plan(STAGES, tiny_config, store, only="prepare_data"))
    assert first == {n: ("run" if n == "prepare_data" else "skip") for n in NAMES}
    assert actions(make_plan(STAGES, tiny_config, store, only="pretrain_draft"))[
        "pretrain_draft"] == "blocked"
    finish_all(store, make_plan(STAGES, tiny_config, store))
    only = actions(make_plan(STAGES, tiny_config, store, only="evaluate"))
    assert only == {n: ("run" if n == "evaluate" else "cached") for n in NAMES}
    assert set(actions(make_plan(STAGES, tiny_config, store, force=True)).values()) == {"run"}


def test_a_config_change_reruns_only_the_stages_that_read_it(tmp_path, bench_config):
    tiny_config = bench_config
    store = ArtifactStore(tmp_path, tiny_config.name)
    finish_all(store, make_plan(STAGES, tiny_config, store))
    changed = dataclasses.replace(tiny_config,
                                  flow=dataclasses.replace(tiny_config.flow, t0=0.8))
    plan = actions(make_plan(STAGES, changed, store))
    assert plan == {"prepare_data": "cached", "pretrain_draft": "cached",
                    "generate_drafts": "cached", "train_refiner": "run", "train_baseline": "cached",
                    "train_refiner_budget": "run",  # the refiner's objective reads t0
                    "fit_evaluator": "cached", "evaluate": "run", "register": "run",
                    # The rivals from noise do not read flow.t0.
                    "train_cold_ot": "cached", "generate_reflow": "cached",
                    "train_reflow": "cached",
                    # The refiner's rectified round follows the refiner.
                    "generate_warm_reflow": "run", "train_warm_reflow": "run"}


def test_unknown_stage_names_the_known_ones(tmp_path, tiny_config):
    store = ArtifactStore(tmp_path, tiny_config.name)
    with pytest.raises(ValueError, match="unknown stage 'train'.*pretrain_draft"):
        make_plan(STAGES, tiny_config, store, from_stage="train")


def test_the_job_leaves_the_rivals_out_and_evaluate_runs_without_them(tmp_path, tiny_config):
    """The lean job (no rival in evaluate.methods): the rivals are unused, not blocked, and
    evaluate and register run; asking for the rivals later adds them and reruns only what
    they feed."""
    store = ArtifactStore(tmp_path, tiny_config.name)
    plan = make_plan(STAGES, tiny_config, store)
    assert {s for s, a in actions(plan).items() if a == "unused"} == RIVAL_STAGES
    assert {s for s, a in actions(plan).items() if a == "run"} == set(NAMES) - RIVAL_STAGES
    assert all("not in evaluate.methods" in i.reason for i in plan if i.action == "unused")
    finish_all(store, plan)
    assert set(actions(make_plan(STAGES, tiny_config, store)).values()) == {"cached", "unused"}
    reflow = actions(make_plan(STAGES, with_methods(tiny_config, [
        *tiny_config.evaluate.methods, "cold_ot", "reflow"]), store))
    assert {s for s, a in reflow.items() if a == "run"} == {
        "train_cold_ot", "generate_reflow", "train_reflow", "evaluate", "register"}
    assert {s for s, a in reflow.items() if a == "unused"} == {
        "generate_warm_reflow", "train_warm_reflow", "train_refiner_budget"}


def test_the_rivals_from_noise_are_unused_on_text_whatever_the_methods_say(tiny_config):
    from wsfm.config import DataConfig

    words = dataclasses.replace(with_methods(tiny_config, BENCH_METHODS),
                                data=DataConfig(kind="words", top_n=200))
    for name in RIVAL_STAGES - {"train_refiner_budget"}:  # the refiner's objective: any data
        assert "does not apply to text" in get_stage(name).unused_by(words), name
    assert not get_stage("train_refiner_budget").unused_by(words)
    assert not get_stage("train_baseline").unused_by(words)
