import json
import math

from wsfm.stages.evaluate import evaluate, parity, wall_speedup
from wsfm.stages.fit_evaluator import fit_evaluator

from tests.stages.conftest import context, save_untrained


def test_metrics_follow_the_benchmark_schema(tmp_path, tiny_config, draft_dir):
    refiner = save_untrained(tiny_config, tmp_path / "refiner", 1)
    cold = save_untrained(tiny_config, tmp_path / "cold", 2)
    evaluator = tmp_path / "fit_evaluator"
    fit_evaluator(context(tiny_config, evaluator))
    out = tmp_path / "eval"
    evaluate(context(tiny_config, out, pretrain_draft=draft_dir, train_refiner=refiner,
                     train_baseline=cold, fit_evaluator=evaluator))
    report = json.loads((out / "metrics.json").read_text())
    assert (out / "samples.png").stat().st_size > 0
    assert {"task", "metric", "lower_is_better", "reference", "t0", "rows", "speedup_nfe",
            "speedup_wall", "parity"} <= set(report)
    ev, t0 = tiny_config.evaluate, tiny_config.flow.t0
    by = {(r["method"], r["nfe"]) for r in report["rows"]}
    warm_nfe = math.ceil(round((1 - t0) * ev.cold_nfe, 9))
    assert ("draft", 0) in by and ("cold", ev.cold_nfe) in by and ("warm_ot", warm_nfe) in by
    assert all(("cold", n) in by and ("warm_ot", n) in by for n in ev.nfe_grid)
    assert any(r["method"] == "zero_shot" for r in report["rows"])
    # Late starts: NFE n from t0' = 1 - n h with the cold step h.
    warm_t0 = {r["nfe"]: r["t0"] for r in report["rows"] if r["method"] == "warm_ot"}
    assert warm_t0[1] == 0.99 and warm_t0[2] == 0.98 and warm_t0[warm_nfe] == t0
    assert report["speedup_nfe"] == ev.cold_nfe / warm_nfe == 10.0
    draft_row = next(r for r in report["rows"] if r["method"] == "draft")
    assert report["reference"] < draft_row["quality"]  # held-out data beats the draft
    assert all(r["spread"] >= 0 and r["sec_per_1k"] > 0 for r in report["rows"])


def test_parity_allows_the_seed_spread_and_no_more():
    cold = {"quality": 1.0, "spread": 0.05}
    assert parity({"quality": 1.09, "spread": 0.05}, cold)
    assert not parity({"quality": 1.11, "spread": 0.05}, cold)
    assert parity({"quality": 1.15, "spread": 0.0}, cold, rel_tolerance=0.2)
    # Higher is better (valid-word rates): the slack points the other way.
    assert parity({"quality": 0.91, "spread": 0.05}, cold, lower_is_better=False)
    assert not parity({"quality": 0.89, "spread": 0.05}, cold, lower_is_better=False)


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
