"""The pipeline's stages, as pure functions, and the DAG that links them."""

from wsfm.stages.base import Runtime, StageContext, StageResult, StageSpec, TrainSpec
from wsfm.stages.evaluate import evaluate
from wsfm.stages.fit_evaluator import fit_evaluator
from wsfm.stages.generate_drafts import generate_drafts
from wsfm.stages.prepare_data import prepare_data
from wsfm.stages.pretrain_draft import pretrain_draft
from wsfm.stages.register import register
from wsfm.stages.rivals import (
    generate_reflow,
    generate_warm_reflow,
    train_cold_ot,
    train_reflow,
    train_warm_reflow,
)
from wsfm.stages.train import train_baseline, train_refiner, train_refiner_budget

__all__ = ["STAGES", "Runtime", "StageContext", "StageResult", "StageSpec", "TrainSpec",
           "get_stage"]

# What each stage reads, found by reading the stage and everything it calls (directly or
# through components, load_dataset, the training loop); tests/orchestrate/test_fingerprint.py
# records the reads of the cheap stages. Sections are listed whole where the stage reads
# whatever fields the configured kind needs (``data``, ``draft``, ``model``) or all of them.
_SAMPLER = ("flow.t0", "flow.draft_noise", "flow.kappa_exponent", "flow.temperature",
            "flow.coupling", "flow.remask")  # make_sampler's settings, the warm method's name
_TRAIN = ("data", "model", "train")
_TRAIN_CODE = ("wsfm.train.ray_train",)  # runtime.train runs it, and it the loop
_DATA = "prepare_data"  # every stage that reads samples reads them from its shards
STAGES: tuple[StageSpec, ...] = (
    # The head: the task's source read once, its splits written as data shards.
    StageSpec("prepare_data", prepare_data, reads=("data",)),
    StageSpec("pretrain_draft", pretrain_draft, (_DATA,), reads=("seed", "data", "draft")),
    StageSpec("generate_drafts", generate_drafts, (_DATA, "pretrain_draft"),
              reads=("seed", "data", "shards"), resumable=True, fans_out=True),
    # Warm: the widened draft at t0, the coupling, sigma_min; text: the mixture path's kappa.
    StageSpec("train_refiner", train_refiner, (_DATA, "generate_drafts"),
              reads=(*_TRAIN, "flow.t0", "flow.draft_noise", "flow.sigma_min", "flow.coupling",
                     "flow.kappa_exponent", "flow.substitute_max"), code=_TRAIN_CODE,
              resumable=True),
    # Cold: t0 = 0 and no widening or coupling, but text still follows kappa(s) = s ** k.
    StageSpec("train_baseline", train_baseline, (_DATA,),
              reads=(*_TRAIN, "flow.kappa_exponent"), code=_TRAIN_CODE, resumable=True),
    # The evaluation's trained rivals (wsfm.stages.rivals), one stage each, with the same
    # network and budget. Each serves the methods it names: where evaluate.methods asks for
    # none of them, the plan leaves it out of the job (StageSpec.unused_by).
    StageSpec("train_cold_ot", train_cold_ot, (_DATA,), reads=_TRAIN, code=_TRAIN_CODE,
              resumable=True, methods=("cold_ot", "reflow")),
    StageSpec("generate_reflow", generate_reflow, (_DATA, "train_cold_ot"),
              reads=("seed", "data", "model", "shards"), resumable=True, fans_out=True,
              methods=("reflow",)),
    StageSpec("train_reflow", train_reflow, (_DATA, "generate_reflow"), reads=_TRAIN,
              code=_TRAIN_CODE, resumable=True, methods=("reflow",)),
    # WS-FM's own rectified round: the refiner's pairs from the widened draft at t0 (so the
    # sampler's settings), then the same training as reflow.
    StageSpec("generate_warm_reflow", generate_warm_reflow,
              (_DATA, "pretrain_draft", "train_refiner"),
              reads=("seed", "data", "model", "shards", "flow.t0", "flow.draft_noise"),
              resumable=True, fans_out=True, methods=("warm_reflow",)),
    StageSpec("train_warm_reflow", train_warm_reflow, (_DATA, "generate_warm_reflow"),
              reads=_TRAIN, code=_TRAIN_CODE, resumable=True, methods=("warm_reflow",)),
    # The equal-budget line beside warm_reflow: the refiner with that chain's optimizer steps.
    StageSpec("train_refiner_budget", train_refiner_budget, (_DATA, "generate_drafts"),
              reads=(*_TRAIN, "flow.t0", "flow.draft_noise", "flow.sigma_min", "flow.coupling",
                     "flow.kappa_exponent", "flow.substitute_max"), code=_TRAIN_CODE,
              resumable=True, methods=("warm_budget",)),
    StageSpec("fit_evaluator", fit_evaluator, (_DATA,),
              reads=("seed", "data", "evaluate.n_projections", "evaluate.test_rows")),
    StageSpec("evaluate", evaluate,
              (_DATA, "pretrain_draft", "train_refiner", "train_baseline", "fit_evaluator",
               "train_cold_ot", "train_reflow", "train_warm_reflow", "train_refiner_budget"),
              reads=("seed", "task", "data", "model", *_SAMPLER, "evaluate.n_samples",
                     "evaluate.seeds", "evaluate.decide_seeds", "evaluate.cold_nfe",
                     "evaluate.nfe_grid",
                     "evaluate.warm_t0s", "evaluate.method", "evaluate.timing_repeats",
                     "evaluate.methods", "evaluate.solvers", "evaluate.pool_rows",
                     "evaluate.test_rows")),
    StageSpec("register", register, (_DATA, "pretrain_draft", "train_refiner", "evaluate"),
              reads=("task", "data", "model", *_SAMPLER, "evaluate.method", "evaluate.cold_nfe",
                     "gates")),
)

def get_stage(name: str) -> StageSpec:
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown stage {name!r} (stages: {[s.name for s in STAGES]})")
