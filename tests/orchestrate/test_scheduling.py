"""Resource accounting: what each stage holds, when it may start, and what is refused."""

import dataclasses

import pytest

from wsfm.config import ResourceConfig
from wsfm.orchestrate.scheduling import Demand, Ledger, check_fits, stage_cpus, stage_demand
from wsfm.stages import get_stage


def with_train(cfg, **changes):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def test_a_training_stage_holds_its_workers_and_its_task_only_outside_fit(tiny_config):
    cfg = with_train(tiny_config, num_workers=2)
    refiner = get_stage("train_refiner")
    # The task's 1 CPU is lent back while it waits in fit(): 2 workers x 1 CPU at a time.
    assert stage_demand(refiner, cfg) == Demand(2.0, 0.0)
    assert stage_demand(refiner, with_train(cfg, num_workers=4)) == Demand(4.0, 0.0)
    big_task = dataclasses.replace(cfg, resources={"train_refiner": ResourceConfig(num_cpus=6)})
    assert stage_demand(refiner, big_task) == Demand(6.0, 0.0)
    gpu = dataclasses.replace(with_train(cfg, use_gpu=True), resources={
        "train_refiner": ResourceConfig(num_cpus=1, num_gpus=0.5)})
    assert stage_demand(refiner, gpu) == Demand(2.0, 2.5)  # workers' GPUs + the task's
    # Not a training stage: its task's resources, whatever train says.
    assert stage_demand(get_stage("evaluate"), with_train(cfg, num_workers=8)) == Demand(1, 0)


def test_two_training_stages_that_do_not_fit_together_run_in_turn():
    ledger = Ledger(Demand(2, 0))
    train = Demand(2, 0)
    assert ledger.can_start(train)
    ledger.start("train_refiner", train)
    # Ray may show the task's lent CPU as free: the driver's own accounting still says no.
    assert not ledger.can_start(train, available=Demand(1, 0))
    assert not ledger.can_start(Demand(1, 0), available=Demand(2, 0))
    assert ledger.committed == Demand(2, 0) and list(ledger.holding()) == ["train_refiner"]
    ledger.finish("train_refiner")
    # With nothing of ours running, Ray's lagging figure does not hold a stage back.
    assert ledger.can_start(train, available=Demand(0, 0))


def test_room_is_the_smaller_of_what_is_uncommitted_and_what_ray_has_free():
    ledger = Ledger(Demand(8, 2))
    ledger.start("a", Demand(3, 1))
    ledger.start("b", Demand(0.5, 0))
    assert ledger.room() == Demand(4.5, 1)
    assert ledger.room(available=Demand(2, 2)) == Demand(2, 1)  # another job uses 2.5 CPUs
    assert ledger.can_start(Demand(2, 1), available=Demand(2, 2))
    assert not ledger.can_start(Demand(2, 1), available=Demand(1.5, 2))
    # Fractions that add up exactly still fit despite rounding.
    tenths = Ledger(Demand(1.0, 0))
    for i in range(7):
        tenths.start(str(i), Demand(0.1, 0))
    assert tenths.can_start(Demand(0.3, 0))


def test_a_stage_that_can_never_fit_is_refused_naming_both_sides():
    check_fits({"train_refiner": Demand(2, 0), "evaluate": Demand(1, 0)}, Demand(2, 0))
    with pytest.raises(ValueError) as err:
        check_fits({"train_refiner": Demand(5, 0), "evaluate": Demand(1, 0),
                    "train_baseline": Demand(2, 1)}, Demand(2, 0))
    message = str(err.value)
    assert "train_refiner needs 5 CPUs" in message
    assert "train_baseline needs 2 CPUs and 1 GPU" in message
    assert "cluster has 2 CPUs in all" in message and "evaluate" not in message


def test_a_stage_that_only_fans_out_holds_no_cpu_unless_told(tiny_config):
    fan_out = ("generate_drafts", "generate_reflow", "generate_warm_reflow")
    for name in fan_out:
        assert stage_cpus(get_stage(name), tiny_config) == 0.0, name
        assert stage_demand(get_stage(name), tiny_config) == Demand(0.0, 0.0), name
    for name in ("pretrain_draft", "fit_evaluator", "evaluate", "register"):
        assert stage_cpus(get_stage(name), tiny_config) == 1.0, name
    told = dataclasses.replace(tiny_config, resources={
        "generate_drafts": ResourceConfig(num_cpus=2), "evaluate": ResourceConfig(num_cpus=0)})
    assert stage_cpus(get_stage("generate_drafts"), told) == 2.0
    assert stage_cpus(get_stage("evaluate"), told) == 0.0
