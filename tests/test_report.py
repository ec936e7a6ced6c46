import dataclasses
import json

import pytest

from wsfm.report import (
    EvalReport,
    Row,
    best_at_nfe,
    best_cold_row,
    parity,
    shipped_row,
    t0_key,
)
from wsfm.stages.register import check_gates


def row(method, nfe, quality, solver="euler", t0=0.0, spread=0.0):
    """A row over three seeds that each scored ``quality``."""
    return Row(method, t0, nfe, solver, quality, spread, sec_per_1k=1.0, seeds=3,
               per_seed=(quality,) * 3)


def report(rows, cold_nfe=100, solver="euler", lower=True):
    walls = {t0_key(r.t0): cold_nfe / r.nfe for r in rows if r.method == "warm_ot"}
    return EvalReport.build(task="toy2d", metric="swd", lower_is_better=lower, reference=0.1,
                            reference_how="test", reference_n=100, t0=0.9, cold_nfe=cold_nfe,
                            warm_method="warm_ot", solver=solver, rows=rows, speedup_wall=9.0,
                            wall_speedups=walls)


def test_cold_reference_is_the_best_cold_row_at_cold_nfe_over_couplings_and_solvers():
    rows = [row("cold", 100, 0.30), row("cold", 100, 0.25, "heun"), row("cold_ot", 100, 0.22),
            row("cold_ot", 128, 0.01),  # more calls than cold_nfe: not the reference
            row("reflow", 100, 0.05),  # not a cold method (the equal-NFE rival)
            row("cold", 10, 0.5), row("warm_ot", 10, 0.2, t0=0.9)]
    assert best_cold_row(rows, 100, True) == row("cold_ot", 100, 0.22)
    assert best_cold_row(rows, 100, False) == row("cold", 100, 0.30)
    with pytest.raises(ValueError, match="no cold row at NFE 64"):
        best_cold_row(rows, 64, True)


def test_speedup_counts_network_calls_for_every_solver():
    # heun: 2 calls a step. The shipped warm row at t0 = 0.9 with h = 1/100: 10 steps, 20
    # calls; the cold reference at 100 calls took 50 steps. 100 / 20 = 5, not 100 / 10.
    rows = [row("cold", 100, 0.3, "heun"), row("warm_ot", 20, 0.28, "heun", t0=0.9),
            row("warm_ot", 10, 0.1, "euler", t0=0.9)]
    r = report(rows, solver="heun")
    assert r.shipped() == rows[1] and r.speedup_nfe == 5.0 and r.parity


def test_gates_use_the_cold_row_at_cold_nfe_even_with_a_larger_grid_entry():
    # An nfe_grid entry above cold_nfe used to become the gate's cold row (and then no warm
    # row matched the speed-up: StopIteration).
    draft = row("draft", 0, 3.0, "none", t0=0.9)
    rows = [row("cold", 128, 0.20), row("cold", 100, 1.0), row("warm_ot", 10, 1.05, t0=0.9),
            draft]
    r = report(rows)
    assert r.cold_reference().nfe == 100 and r.speedup_nfe == 10.0
    assert check_gates(r, 0.1, 5.0) == []
    assert check_gates(json.loads(json.dumps(r.to_dict())), 0.1, 5.0) == []  # from metrics.json
    worse = report([row("cold", 128, 0.2), row("cold", 100, 1.0), row("warm_ot", 10, 1.2, t0=0.9),
                    draft])
    assert len(check_gates(worse, 0.1, 5.0)) == 1


def test_round_trip_and_strict_keys():
    r = report([row("cold", 100, 1.0), row("warm_ot", 10, 1.0, t0=0.9)])
    again = EvalReport.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r
    bad = r.to_dict()
    del bad["cold_nfe"]
    with pytest.raises(ValueError, match="missing keys \\['cold_nfe'\\]"):
        EvalReport.from_dict(bad)
    bad = {**r.to_dict(), "extra": 1}
    with pytest.raises(ValueError, match="unknown keys \\['extra'\\]"):
        EvalReport.from_dict(bad)


def test_shipped_row_and_best_at_nfe():
    rows = [row("warm_ot", 10, 0.3, t0=0.9), row("warm_ot", 20, 0.2, "heun", t0=0.9),
            row("cold", 2, 0.9), row("cold_ot", 2, 0.5, "midpoint"), row("reflow", 2, 0.4)]
    assert shipped_row(rows, "warm_ot", 0.9, "euler").nfe == 10
    with pytest.raises(ValueError):
        shipped_row(rows, "warm", 0.9, "euler")
    assert best_at_nfe(rows, ("cold", "cold_ot"), 2, True).method == "cold_ot"
    assert best_at_nfe(rows, ("cold", "cold_ot", "reflow"), 2, True).method == "reflow"
    assert best_at_nfe(rows, ("cold",), 4, True) is None


def test_parity_is_the_margin_shown_at_95_percent_and_noise_never_helps():
    cold = row("cold", 100, 1.0)  # three seeds that agree: the bound is the difference
    assert parity(row("w", 10, 1.09), cold)
    assert not parity(row("w", 10, 1.11), cold)
    assert parity(row("w", 10, 1.15), cold, rel_margin=0.2)
    assert parity(row("w", 10, 0.91), cold, lower_is_better=False)
    assert not parity(row("w", 10, 0.89), cold, lower_is_better=False)
    # The same mean 1.05 with seeds that disagree: mean difference 0.05 + t(0.95, 2 df) x
    # 0.05 / sqrt(3) = 0.05 + 2.92 x 0.0289 = 0.134 > 0.1. The spread does not excuse it.
    noisy = dataclasses.replace(row("w", 10, 1.05, spread=0.04), per_seed=(1.0, 1.05, 1.1))
    assert parity(row("w", 10, 1.05), cold) and not parity(noisy, cold)


def test_no_worse_bound_is_scipys_welch_interval_and_a_noisier_row_fails_sooner():
    """The one-sided 95% bound equals the upper end of scipy's two-sided 90% Welch interval
    on the difference of means (an independent implementation)."""
    from scipy.stats import ttest_ind

    from wsfm.report import no_worse

    warm_seeds, cold_seeds = (0.094, 0.101, 0.089, 0.097), (0.105, 0.103, 0.108)
    warm = dataclasses.replace(row("warm_ot", 10, sum(warm_seeds) / 4), per_seed=warm_seeds)
    cold = dataclasses.replace(row("cold", 100, sum(cold_seeds) / 3), per_seed=cold_seeds)
    got = no_worse(warm, cold, rel_margin=0.1)
    want = ttest_ind(warm_seeds, cold_seeds, equal_var=False).confidence_interval(0.90).high
    assert got.bound == pytest.approx(want, rel=1e-9) and got.ok
    assert got.margin == pytest.approx(0.1 * cold.quality)
    # Higher is better: the orientation flips, the bound is the same comparison mirrored.
    up = no_worse(cold, warm, rel_margin=0.1, lower_is_better=False)
    assert up.worse_by == pytest.approx(got.worse_by)
    # One seed shows nothing about its noise: never shipped on it.
    one_seed = dataclasses.replace(row("w", 10, 0.0), seeds=1, per_seed=(0.0,))
    assert not no_worse(one_seed, cold, rel_margin=10.0).ok


def test_shown_better_paired_is_scipys_paired_interval_and_noise_still_widens_it():
    """Paired by seed (the refiner's seed s starts from the draft row's seed s), the bound is
    the upper end of scipy's two-sided 90% interval of the paired t-test, an independent
    implementation. Seeds that move both rows together (a shared draw) cancel; noise in the
    differences widens the bound; unequal seed counts fall back to Welch's unpaired bound."""
    from scipy.stats import ttest_rel

    from wsfm.report import no_worse, shown_better

    draft_seeds = (60.0, 66.0, 63.0, 70.0, 64.0)  # the draw's own scatter, shared by both rows
    warm_seeds = (57.5, 62.8, 60.1, 66.9, 61.2)   # about 3 better on every seed
    draft = dataclasses.replace(row("draft", 0, sum(draft_seeds) / 5, t0=0.9),
                                per_seed=draft_seeds, seeds=5)
    warm = dataclasses.replace(row("warm_ot", 10, sum(warm_seeds) / 5, t0=0.9),
                               per_seed=warm_seeds, seeds=5)
    paired = shown_better(warm, draft, paired=True)
    want = ttest_rel(warm_seeds, draft_seeds).confidence_interval(0.90).high
    assert paired.bound == pytest.approx(want, rel=1e-9) and paired.ok and paired.paired
    assert "paired by seed" in paired.describe()
    # Unpaired, the shared scatter stays in the bound: not shown.
    unpaired = shown_better(warm, draft)
    assert not unpaired.ok and unpaired.bound == no_worse(warm, draft, 0.0).bound
    # Higher is better: the same comparison mirrored.
    up = shown_better(draft, warm, lower_is_better=False, paired=True)
    assert up.bound == pytest.approx(paired.bound) and up.ok
    # The same means with noisier differences: the bound grows until it is not shown.
    bounds = []
    for noise in (0.0, 1.0, 3.0):
        jitter = (noise, -noise, noise, -noise, 0.0)
        noisy = dataclasses.replace(warm, per_seed=tuple(
            w + j for w, j in zip(warm_seeds, jitter, strict=True)))
        bounds.append(shown_better(noisy, draft, paired=True))
    assert bounds[0].bound < bounds[1].bound < bounds[2].bound
    assert bounds[0].ok and not bounds[2].ok
    # The draft unchanged is never shown better, paired or not.
    assert not shown_better(dataclasses.replace(warm, per_seed=draft_seeds,
                                                quality=draft.quality), draft, paired=True).ok
    # Unequal seed counts cannot be paired: Welch's bound.
    short = dataclasses.replace(draft, per_seed=draft_seeds[:3], seeds=3)
    assert shown_better(warm, short, paired=True) == shown_better(warm, short)
