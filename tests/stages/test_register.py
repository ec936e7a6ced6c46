import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import context, save_untrained
from wsfm.bundle import load_bundle, read_settings
from wsfm.orchestrate.local import LocalRuntime
from wsfm.report import EvalReport, Row, t0_key
from wsfm.stages.register import WALL_SHARE, check_gates, choose_t0, register
from wsfm.tracking import Tracker


def _row(method, t0, nfe, quality, spread=0.0, per_seed=None):
    """A row over three seeds; by default every seed scored ``quality`` (no noise)."""
    return Row(method, t0, nfe, "euler", quality, spread, sec_per_1k=1.0, seeds=3,
               per_seed=per_seed or (quality,) * 3)


def _report(rows, warm_method="warm_ot", lower_is_better=True, walls=None) -> dict:
    """metrics.json as ``evaluate`` writes it, from the typed report; the wall speed-up of
    every warm row is its NFE speed-up unless ``walls`` ({t0: x}) says otherwise."""
    walls = {t0_key(r.t0): 100 / r.nfe for r in rows if r.method == warm_method} | {
        t0_key(t): x for t, x in (walls or {}).items()}
    return EvalReport.build(
        task="toy2d", metric="swd", lower_is_better=lower_is_better, reference=0.1,
        reference_how="test", reference_n=100, t0=0.9, cold_nfe=100, warm_method=warm_method,
        solver="euler", speedup_wall=1.0, rows=rows, wall_speedups=walls).to_dict()


def report(warm_q, cold_q=1.0, speedup=10.0, spread=0.0):
    return _report([_row("cold", 0.0, 100, cold_q), _row("cold", 0.0, 10, 9.0),
                    _row("warm_ot", 0.9, int(100 / speedup), warm_q, spread),
                    _row("draft", 0.9, 0, 9.0)])


def sweep(qualities: dict[float, float], cold_q=1.0, lower_is_better=True, walls=None,
          draft_q=None) -> dict:
    """Warm rows at each t0 (NFE = ceil((1 - t0) 100)) with the given qualities, beside a
    draft worse than all of them unless ``draft_q`` says otherwise."""
    draft_q = (10.0 if lower_is_better else 0.0) if draft_q is None else draft_q
    rows = [_row("cold", 0.0, 100, cold_q), _row("cold", 0.0, 5, 0.1),
            _row("draft", 0.9, 0, draft_q)]
    rows += [_row("warm", t0, round((1 - t0) * 100), q) for t0, q in qualities.items()]
    return _report(rows, warm_method="warm", lower_is_better=lower_is_better, walls=walls)


@pytest.mark.parametrize("warm_q,speedup,passes", [(1.05, 10.0, True), (1.2, 10.0, False),
                                                   (1.0, 2.0, False)])
def test_gates(warm_q, speedup, passes):
    assert (check_gates(report(warm_q, speedup=speedup), 0.1, 5.0) == []) is passes


def test_the_shipped_t0_is_the_largest_that_meets_the_tolerance_against_cold_at_100():
    # Quality worsens as t0 grows; the tolerance (10% of cold = 0.1) admits up to 1.1.
    rep = sweep({0.5: 0.95, 0.8: 1.05, 0.9: 1.3, 0.95: 2.0})
    choice = choose_t0(rep, 0.1)
    assert choice.t0 == 0.8 and choice.automatic and choice.speedup == 100 / 20
    assert choice.cold.nfe == 100  # not the better-looking cold row at NFE 5
    # Not monotone: the largest passing t0 wins even past a failing one.
    assert choose_t0(sweep({0.5: 0.9, 0.8: 1.5, 0.9: 1.08}), 0.1).t0 == 0.9
    # Higher is better: the rule flips.
    up = sweep({0.5: 0.9, 0.9: 0.7}, cold_q=0.95, lower_is_better=False)
    assert choose_t0(up, 0.1).t0 == 0.5
    # None meets it: the configured t0 is kept (and the gates will fail on it).
    fallback = choose_t0(sweep({0.5: 3.0, 0.9: 4.0}), 0.1)
    assert fallback.t0 == 0.9 and not fallback.automatic
    assert check_gates(sweep({0.5: 3.0, 0.9: 4.0}), 0.1, 5.0, fallback.t0)


def test_a_t0_whose_wall_speedup_falls_short_gives_way_to_the_next_smaller():
    # t0 0.95 meets the quality margin, but its wall speed-up is 12x for 20x in NFE (< 0.9):
    # the next smaller t0 that keeps both ships.
    rep = sweep({0.8: 1.0, 0.9: 1.02, 0.95: 1.04}, walls={0.95: 12.0})
    choice = choose_t0(rep, 0.1)
    assert choice.t0 == 0.9 and choice.wall >= WALL_SHARE * choice.speedup
    assert any("wall speed-up 12x" in f for f in check_gates(rep, 0.1, 5.0, 0.95))
    # A start time whose wall time was never measured is not shown to keep its promise.
    unmeasured = EvalReport.from_dict(sweep({0.9: 1.0}))
    unmeasured = EvalReport(**{**unmeasured._fields(), "wall_speedups": {}})
    assert not choose_t0(unmeasured, 0.1).automatic


def test_noise_makes_shipping_harder_never_easier():
    """The same means (warm 1.05, cold 1.0: within the 10% margin), measured with more and
    more seed noise: once the bound on the difference leaves the margin, the t0 no longer
    ships, where a spread-widened tolerance would have let it pass more easily."""
    passed = []
    for noise in (0.0, 0.01, 0.05, 0.2):
        warm = _row("warm", 0.9, 10, 1.05, per_seed=(1.05 - noise, 1.05, 1.05 + noise))
        cold = _row("cold", 0.0, 100, 1.0, per_seed=(1.0 - noise, 1.0, 1.0 + noise))
        rep = _report([cold, warm, _row("draft", 0.9, 0, 3.0)], warm_method="warm")
        passed.append(check_gates(rep, 0.1, 5.0) == [])
    assert passed == [True, True, False, False]


def test_a_refiner_not_shown_better_than_its_draft_does_not_ship():
    """The text run that shipped its own draft: at one call the remasking sampler returns the
    draft unchanged, so that row scores exactly what the draft scores; it beat a weak cold
    model, and the rule shipped a "100x" sampler that was the draft alone. A row must be
    shown better than the draft (the same one-sided bound, below zero)."""
    draft_seeds = (0.88, 0.9, 0.92)
    rows = [_row("cold", 0.0, 100, 1.0), _row("draft", 0.9, 0, 0.9, per_seed=draft_seeds),
            _row("warm", 0.99, 1, 0.9, per_seed=draft_seeds),  # the draft, unchanged
            _row("warm", 0.9, 10, 0.7, per_seed=(0.69, 0.7, 0.71))]
    rep = _report(rows, warm_method="warm")
    choice = choose_t0(rep, 0.1)
    assert choice.t0 == 0.9 and choice.beats_draft and choice.vs_draft.bound < 0
    (failure,) = check_gates(rep, 0.1, 5.0, t0=0.99)
    assert failure.startswith("draft: warm 0.9 at NFE 1 is not shown better than its draft")
    # Better on average but within the noise: not shown, so not shipped; less noise, shipped.
    for noise, ships in ((0.2, False), (0.01, True)):
        warm = _row("warm", 0.9, 10, 0.85, per_seed=(0.85 - noise, 0.85, 0.85 + noise))
        noisy = _report([rows[0], rows[1], warm], warm_method="warm")
        assert (check_gates(noisy, 0.5, 5.0) == []) is ships
    # No draft row: nothing shows that the refiner improves on it.
    (failure,) = check_gates(_report([rows[0], rows[3]], warm_method="warm"), 0.1, 5.0)
    assert "no draft row; add draft to evaluate.methods" in failure


@pytest.fixture
def registry(tmp_path, tiny_config, draft_dir):
    """Runs ``register`` against a real SQLite store with a given evaluation report."""
    refiner = save_untrained(tiny_config, tmp_path / "refiner", 1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "register-test", tmp_path / "mlartifacts")

    def run(rep: dict, k: int):
        evaluated = tmp_path / f"evaluate{k}"
        evaluated.mkdir()
        (evaluated / "metrics.json").write_text(json.dumps(rep))
        runtime = LocalRuntime(tracking={"uri": uri, "run_id": tracker.start_run("register")})
        return register(context(tiny_config, tmp_path / f"register{k}", runtime,
                                pretrain_draft=draft_dir, train_refiner=refiner,
                                evaluate=evaluated))

    return run, MlflowClient(uri)


def test_failed_gates_register_without_the_alias(registry, tmp_path, tiny_config):
    run, client = registry
    result = run(report(1.5), 0)
    assert result.tags["gates_passed"] == "false" and result.tags["model_alias"] == ""
    version = client.get_model_version(result.tags["model_name"], result.tags["model_version"])
    assert not version.aliases and version.tags["wsfm.decision"] == "kept"
    gates = json.loads((tmp_path / "register0" / "gates.json").read_text())
    assert gates["failures"]
    # The bound paired by seed is written beside the verdict, as information only.
    assert "upper bound (paired by seed)" in gates["vs_draft_paired"]
    sampler = load_bundle(tmp_path / "register0" / "bundle")
    samples, nfe = sampler.sample(50, seed=3)
    assert samples.shape == (50, 2) and np.isfinite(samples).all()
    assert nfe == 10 and sampler.t0 == tiny_config.flow.t0
    assert read_settings(tmp_path / "register0" / "bundle").kind == "vector"


def test_the_champion_moves_only_to_a_model_at_least_as_good(registry):
    run, client = registry
    name = "wsfm-toy2d"
    first = run(sweep({0.5: 1.0, 0.9: 1.05}), 0)  # ships t0 = 0.9
    assert first.tags["model_alias"] == "champion"
    v1 = client.get_model_version(name, "1")
    assert v1.tags["wsfm.t0"] == "0.9" and v1.tags["wsfm.speedup_nfe"] == "10"
    assert v1.tags["wsfm.quality"] == "1.05" and v1.tags["wsfm.decision"] == "promoted"

    worse = run(sweep({0.5: 1.08, 0.9: 1.09}), 1)  # passes the gates, but worse than v1
    assert worse.tags["model_alias"] == "" and worse.tags["gates_passed"] == "true"
    v2 = client.get_model_version(name, "2")
    assert v2.tags["wsfm.decision"] == "kept" and v2.tags["wsfm.previous_champion"] == "1"
    assert v2.tags["wsfm.previous_quality"] == "1.05" and "not shown to be at least" in \
        v2.tags["wsfm.decision_reason"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"

    better = run(sweep({0.5: 0.9, 0.9: 0.95}), 2)
    assert better.tags["model_alias"] == "champion"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "3"


def test_gates_wall_share_sets_the_wall_rule_and_zero_drops_it():
    rep = sweep({0.9: 1.0}, walls={0.9: 8.5})  # 10x in NFE, 8.5x in wall time
    assert any("below 0.9 x the NFE speed-up" in f for f in check_gates(rep, 0.1, 5.0))
    assert check_gates(rep, 0.1, 5.0, wall_share=0.8) == []
    assert check_gates(rep, 0.1, 5.0, wall_share=0.0) == []
    assert choose_t0(rep, 0.1, wall_share=0.0).automatic
    assert not choose_t0(rep, 0.1).automatic  # no t0 keeps 0.9 of 10x: the configured one


def test_a_row_below_real_datas_entropy_does_not_ship():
    """Prose: NLL alone rewards a sampler that collapses onto a few likely strings, so a row
    must keep 0.95 of real data's sample entropy to ship (wsfm.report.diverse_enough)."""
    def prose_row(method, t0, nfe, nll, entropy):
        return Row(method, t0, nfe, "euler", nll, 0.0, sec_per_1k=1.0, seeds=3,
                   per_seed=(nll,) * 3, metrics={"entropy": entropy})

    rows = [prose_row("cold", 0.0, 100, 3.9, 3.7), prose_row("draft", 0.8, 0, 3.0, 3.7),
            prose_row("warm", 0.8, 20, 2.5, 3.6),
            prose_row("warm", 0.9, 10, 2.4, 3.0)]  # better NLL at 10x, but collapsed
    rep = EvalReport.build(
        task="text", metric="nll", lower_is_better=True, reference=2.0, reference_how="test",
        reference_n=100, t0=0.9, cold_nfe=100, warm_method="warm", solver="euler",
        speedup_wall=1.0, rows=rows, wall_speedups={t0_key(0.8): 5.0, t0_key(0.9): 10.0},
        reference_metrics={"entropy": 3.72}).to_dict()
    assert choose_t0(rep, 0.1).t0 == 0.8  # 3.6 >= 0.95 x 3.72 = 3.53; 3.0 is not
    (failure,) = check_gates(rep, 0.1, 5.0, t0=0.9)
    assert failure.startswith("entropy: warm writes 3 bits per sample, below 0.95")
    assert check_gates(rep, 0.1, 5.0, t0=0.8) == []
