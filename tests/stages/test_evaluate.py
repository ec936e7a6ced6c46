import dataclasses
import json
import math

import numpy as np
import pytest

from tests.helpers import context, prepared_data, save_untrained
from wsfm.orchestrate.local import LocalRuntime
from wsfm.report import EvalReport
from wsfm.stages.eval_jobs import Point
from wsfm.stages.evaluate import (
    NGRAM_RIVALS,
    SEED_BASE,
    evaluate,
    plan_jobs,
    wall_speedup,
    wall_speedups,
)
from wsfm.stages.fit_evaluator import fit_evaluator


def run_evaluate(tmp_path, config, draft_dir):
    refiner = save_untrained(config, tmp_path / "refiner", 1)
    cold = save_untrained(config, tmp_path / "cold", 2)
    evaluator = tmp_path / "fit_evaluator"
    fit_evaluator(context(config, evaluator))
    out = tmp_path / "eval"
    evaluate(context(config, out, LocalRuntime(), pretrain_draft=draft_dir,
                     train_refiner=refiner, train_baseline=cold, fit_evaluator=evaluator))
    return out, json.loads((out / "metrics.json").read_text())


def test_metrics_follow_the_benchmark_schema(tmp_path, tiny_config, draft_dir):
    config = dataclasses.replace(tiny_config, evaluate=dataclasses.replace(
        tiny_config.evaluate, methods=["draft", "retrieval", "cold", "zero_shot", "warm"],
        solvers=["euler"]))
    out, report = run_evaluate(tmp_path, config, draft_dir)
    parsed = EvalReport.from_dict(report)  # the typed record, strictly
    assert (out / "samples.png").stat().st_size > 0
    assert (out / "quality_vs_nfe.png").stat().st_size > 10_000
    ev, t0 = config.evaluate, config.flow.t0
    by = {(r["method"], r["nfe"]) for r in report["rows"]}
    warm_nfe = math.ceil(round((1 - t0) * ev.cold_nfe, 9))
    assert ("draft", 0) in by and ("retrieval", 0) in by and ("cold", ev.cold_nfe) in by
    assert ("warm_ot", warm_nfe) in by
    assert all(("cold", n) in by and ("warm_ot", n) in by for n in ev.nfe_grid)
    assert any(r["method"] == "zero_shot" for r in report["rows"])
    # Late starts: NFE n from t0' = 1 - n h with the cold step h.
    warm_t0 = {r["nfe"]: r["t0"] for r in report["rows"] if r["method"] == "warm_ot"}
    assert warm_t0[1] == 0.99 and warm_t0[2] == 0.98 and warm_t0[warm_nfe] == t0
    assert report["speedup_nfe"] == ev.cold_nfe / warm_nfe == 10.0
    assert parsed.cold_reference().nfe == ev.cold_nfe and parsed.shipped().nfe == warm_nfe
    draft_row = next(r for r in report["rows"] if r["method"] == "draft")
    assert report["reference"] < draft_row["quality"]  # held-out data beats the draft
    assert all(r["spread"] >= 0 and r["sec_per_1k"] > 0 and r["seconds"] > 0
               for r in report["rows"])
    # The rows that decide shipping (cold at cold_nfe, the refiner with the shipped solver,
    # the draft alone) get decide_seeds seeds, each seed's score kept; the others get seeds.
    for r in report["rows"]:
        deciding = ((r["method"] == "cold" and r["nfe"] == ev.cold_nfe)
                    or r["method"] in ("warm_ot", "draft"))
        assert r["seeds"] == (ev.decide_seeds if deciding else ev.seeds), r
        assert len(r["per_seed"]) == r["seeds"]
        assert abs(sum(r["per_seed"]) / r["seeds"] - r["quality"]) < 1e-9
    # Copying checks on every row; retrieval returns training rows: ratio 0, all near-copies.
    assert all({"copy_ratio", "near_copy_share"} <= set(r["metrics"]) for r in report["rows"])
    retrieval = next(r for r in report["rows"] if r["method"] == "retrieval")
    assert retrieval["metrics"]["copy_ratio"] == 0.0
    assert retrieval["metrics"]["near_copy_share"] == 1.0
    # Real data's own values: held-out rows are as far from the training set as themselves.
    assert report["reference_metrics"]["real_copy_ratio"] == pytest.approx(1.0)
    assert report["reference_n"] == ev.n_samples  # toy2d: the reference split is big enough
    assert report["seconds"] >= sum(r["seconds"] for r in report["rows"]) * 0.5


def test_heun_counts_two_calls_a_step_and_does_not_crash(tmp_path, tiny_config, draft_dir):
    # Used to assert speedup_nfe == cold_nfe / warm_nfe with steps on one side and calls on
    # the other: heun, midpoint and rk4 crashed the stage.
    config = dataclasses.replace(tiny_config, evaluate=dataclasses.replace(
        tiny_config.evaluate, methods=["cold", "warm"], solvers=["euler", "heun"],
        method="heun", seeds=1))
    _, report = run_evaluate(tmp_path, config, draft_dir)
    heun = {(r["method"], r["t0"], r["nfe"]) for r in report["rows"] if r["solver"] == "heun"}
    assert ("cold", 0.0, 100) in heun and ("cold", 0.0, 2) in heun
    assert ("cold", 0.0, 1) not in heun  # one call is half a heun step: left out
    assert ("warm_ot", 0.9, 20) in heun  # 10 steps from t0 = 0.9, 2 calls each
    assert report["speedup_nfe"] == 100 / 20


def test_plan_has_one_job_per_method_solver_and_seed(tiny_config):
    config = dataclasses.replace(tiny_config, evaluate=dataclasses.replace(
        tiny_config.evaluate, methods=["draft", "cold", "warm", "zero_shot"],
        solvers=["euler", "midpoint"], seeds=2, decide_seeds=5, nfe_grid=[1, 2, 4]))
    jobs = plan_jobs(config, {}, text=False)
    keys = [(j.row, j.solver, j.seed) for j in jobs]
    # 2 seeds of each (method, solver) row, then 3 more of the rows that decide shipping:
    # cold at NFE 100 with each solver, the refiner with the shipped solver (euler), the draft.
    assert len(keys) == len(set(keys)) == 2 * (1 + 2 + 2 + 2) + 3 * (2 + 1 + 1)
    midpoint_cold = next(j for j in jobs if j.row == "cold" and j.solver == "midpoint")
    assert midpoint_cold.points == (Point(0.0, 50), Point(0.0, 2), Point(0.0, 1))  # NFE 100, 4, 2
    extra = [j for j in jobs if j.seed >= SEED_BASE + 2]
    assert {(j.row, j.solver, j.points) for j in extra} == {
        ("cold", "euler", (Point(0.0, 100),)), ("cold", "midpoint", (Point(0.0, 50),)),
        ("warm_ot", "euler", next(j.points for j in jobs if j.row == "warm_ot")),
        ("draft", "none", (Point(config.flow.t0),))}
    with pytest.raises(ValueError, match="'ngram' is for text"):
        plan_jobs(dataclasses.replace(config, evaluate=dataclasses.replace(
            config.evaluate, methods=["cold", "warm", "ngram"])), {}, text=False)


def test_wall_speedup_pairs_cold_and_warm_runs_and_takes_the_median():
    now = [0.0]
    cold_costs = iter([10.0, 10.0, 60.0, 10.0, 10.0])  # a load spike in the third pair
    seeds = []

    def cold(seed):
        seeds.append(("cold", seed))
        now[0] += next(cold_costs)

    def warm(seed):
        seeds.append(("warm", seed))
        now[0] += 1.0

    assert wall_speedup(cold, warm, 5, clock=lambda: now[0]) == 10.0
    assert [m for m, _ in seeds] == ["cold", "warm"] * 5  # interleaved
    assert seeds[0][1] == seeds[1][1] != seeds[2][1]  # a pair shares its seed


def test_wall_speedups_time_every_start_against_one_cold_draw_per_round():
    now, order = [0.0], []

    def draw(name, cost):
        def run(seed):
            order.append((name, seed))
            now[0] += cost
        return run

    got = wall_speedups(draw("cold", 12.0), {0.9: draw("warm0.9", 1.2),
                                             0.96: draw("warm0.96", 0.6)}, 3,
                        clock=lambda: now[0])
    assert got == {0.9: pytest.approx(10.0), 0.96: pytest.approx(20.0)}
    assert [n for n, _ in order] == ["cold", "warm0.9", "warm0.96"] * 3
    assert len({s for n, s in order[:3]}) == 1  # a round shares its seed


def test_text_rows_carry_copying_shares_entropy_and_the_ngram_rivals(tmp_path):
    import torch

    from tests.helpers import ROOT
    from wsfm.components import net_spec
    from wsfm.config import load_pipeline
    from wsfm.data.datasets import load_dataset
    from wsfm.models import build_model
    from wsfm.stages.pretrain_draft import pretrain_draft

    cfg = load_pipeline(ROOT / "pipelines" / "words.yaml", profile="smoke")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, top_n=400),
                              evaluate=dataclasses.replace(
                                  cfg.evaluate, n_samples=200, seeds=2, nfe_grid=[2],
                                  methods=["draft", "retrieval", "ngram", "cold", "warm"]))
    data = load_dataset(cfg.data)
    spec = net_spec(cfg.model, data)
    folders = {}
    for name, seed in (("train_refiner", 1), ("train_baseline", 2)):
        torch.manual_seed(seed)
        kwargs = dict(spec)
        net = build_model(kwargs.pop("kind"), dim=data.dim, **kwargs)
        folders[name] = tmp_path / name
        folders[name].mkdir()
        torch.save(net.state_dict(), folders[name] / "model.pt")
    for name, stage in (("pretrain_draft", pretrain_draft), ("fit_evaluator", fit_evaluator)):
        folders[name] = tmp_path / name
        stage(context(cfg, folders[name]))
    out = tmp_path / "eval"
    evaluate(context(cfg, out, LocalRuntime(), **folders))
    report = EvalReport.from_dict(json.loads((out / "metrics.json").read_text()))
    rows = {r.method: r for r in report.rows}
    assert {f"ngram{k}" for k in NGRAM_RIVALS} == {m for m in rows if m.startswith("ngram")}
    assert report.warm_method == "warm_substitute" and report.solver == "jump"
    for r in report.rows:
        assert {"train_share", "held_out_share", "distinct_share", "nll_per_char",
                "sample_entropy"} <= set(r.metrics)
    # Retrieval gives back training words only; real data's own shares are reported.
    assert rows["retrieval"].metrics["train_share"] == 1.0
    assert rows["retrieval"].metrics["held_out_share"] == 0.0
    real = report.reference_metrics
    assert 0.0 < real["real_held_out_share"] < real["real_train_share"] < 1.0
    assert (out / "samples.txt").is_file()


def test_text_sample_panels_draw_dollar_signs_as_text(tmp_path):
    """Prose holds "$": matplotlib would read "$...$" as mathtext and fail on it."""
    from wsfm.data.base import Dataset, TextInfo
    from wsfm.data.prose import ALPHABET, encode
    from wsfm.stages.eval_plots import show_samples

    rows = np.stack([encode("cost $x^{2 and $$ y_1$ {{ $^ ".ljust(32, "$"))] * 3)
    info = TextInfo(seq_len=32, vocab=len(ALPHABET) + 1, alphabet=ALPHABET, train_words=(),
                    test_words=(), form="windows")
    show_samples(tmp_path, Dataset("text", rows, rows, rows, shape=(32,), text=info),
                 {"cold": rows, "warm": rows})
    assert (tmp_path / "samples.png").stat().st_size > 1000
    assert "cost $x^{2" in (tmp_path / "samples.txt").read_text()


def test_retrieval_and_the_copying_checks_search_a_seeded_pool_of_pool_rows(tmp_path, tiny_config,
                                                                            draft_dir, monkeypatch):
    from wsfm.data.datasets import load_dataset
    from wsfm.metrics.copying import CopyingReference, copying_metrics
    from wsfm.stages import eval_jobs
    from wsfm.stages.eval_jobs import EvalEnv

    monkeypatch.setattr(eval_jobs, "COPY_HELD_OUT", 200)  # of the 500 held-out rows

    evaluator = tmp_path / "fit_evaluator"
    fit_evaluator(context(tiny_config, evaluator))
    inputs = {"fit_evaluator": str(evaluator), "pretrain_draft": str(draft_dir),
              "prepare_data": str(prepared_data(tiny_config, tmp_path))}
    config = dataclasses.replace(tiny_config, evaluate=dataclasses.replace(
        tiny_config.evaluate, pool_rows=100))
    env = EvalEnv(config, inputs)
    data = load_dataset(config.data)
    train = {tuple(r) for r in data.train.tolist()}
    pool = {tuple(r) for r in env.pool.tolist()}
    assert len(pool) == 100 and pool <= train
    x = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    got = env.retrieve(x)
    d = ((x[:, None, :].astype(np.float64) - env.pool[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(got, env.pool[d.argmin(axis=1)])
    test = {tuple(r) for r in data.test.tolist()}
    held = {tuple(r) for r in env.copy_test.tolist()}
    assert len(held) == 200 and held <= test
    ref = CopyingReference.fit(env.pool, env.copy_test)
    assert env.copying(x) == copying_metrics(x, env.pool, ref)
    assert env.real_copying() == {f"real_{k}": v for k, v in
                                  copying_metrics(env.copy_test, env.pool, ref).items()}
    how = env.real_data()[1]
    assert "search 100 of the 2,000 training rows" in how
    assert "reference is 200 of the 500 held-out rows" in how
    monkeypatch.undo()
    whole = EvalEnv(tiny_config, inputs)  # the defaults cover these splits
    assert len(whole.pool) == 2000 and "search all 2,000 training rows" in whole.real_data()[1]
    assert len(whole.copy_test) == 500 and "held-out rows" not in whole.real_data()[1]


def test_rows_and_the_floor_are_scored_against_a_seeded_sample_of_test_rows(tmp_path, tiny_config,
                                                                           draft_dir):
    from wsfm.components import judged
    from wsfm.data.datasets import load_dataset
    from wsfm.data.prepared import PreparedData
    from wsfm.stages.eval_jobs import EvalEnv

    config = dataclasses.replace(tiny_config, evaluate=dataclasses.replace(
        tiny_config.evaluate, test_rows=100))  # of the 500 held-out rows
    evaluator = tmp_path / "fit_evaluator"
    fitted = fit_evaluator(context(config, evaluator))
    assert fitted.params["judged_rows"] == 100
    inputs = {"fit_evaluator": str(evaluator), "pretrain_draft": str(draft_dir),
              "prepare_data": str(prepared_data(config, tmp_path))}
    env = EvalEnv(config, inputs)
    data = load_dataset(config.data)
    np.testing.assert_array_equal(env.test, judged(PreparedData(inputs["prepare_data"]),
                                                   config).test)
    assert len(env.test) == 100 and {tuple(r) for r in env.test.tolist()} <= {
        tuple(r) for r in data.test.tolist()}
    x = env.draft.sample(200, 0)
    primary = env.evaluator.primary
    assert env.score(x)[primary] == env.evaluator.score(x, env.test)[primary]
    assert env.score(x)[primary] != env.evaluator.score(x, data.test)[primary]
    assert "every row is scored against 100 of the 500 held-out rows" in env.real_data()[1]
    whole = EvalEnv(tiny_config, inputs)
    assert len(whole.test) == 500 and "scored against" not in whole.real_data()[1]
