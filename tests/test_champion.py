import pytest

from wsfm.champion import Score, decide


def score(value, spread=0.0, metric="swd", lower=True, per_seed=None):
    """Three seeds around ``value`` with population std ``spread``."""
    step = spread * 1.5 ** 0.5
    return Score(metric, value, spread, lower,
                 per_seed if per_seed is not None else (value - step, value, value + step))


@pytest.mark.parametrize("new,old,promote", [
    (score(1.0), score(1.2), True),                 # better
    (score(1.2), score(1.2), True),                 # as good, no noise
    (score(1.3), score(1.2), False),                # worse
    (score(1.0, 0.05), score(1.2, 0.05), True),     # better by more than the noise
    # Worse by exactly the two spreads: the rule this replaced promoted it; the bound says
    # 0.1 + t(0.95, 4 df) x 0.05 > 0.
    (score(1.3, 0.05), score(1.2, 0.05), False),
    (score(1.2, 0.05), score(1.2, 0.05), False),    # as good, but noise could hide worse
    (score(0.8, lower=False), score(0.9, lower=False), False),  # higher is better
    (score(0.95, lower=False), score(0.9, lower=False), True),
])
def test_the_champion_moves_only_to_a_model_shown_at_least_as_good(new, old, promote):
    assert decide(new, True, old, "3").promote is promote


def test_noise_makes_replacing_the_champion_harder_never_easier():
    """Means fixed (new better by 0.05); the seed noise grows until it is not shown."""
    verdicts = [decide(score(1.15, s), True, score(1.2, s), "1").promote
                for s in (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)]
    assert verdicts[0] and not verdicts[-1]
    assert verdicts == sorted(verdicts, reverse=True)  # once lost, never regained


def test_a_champion_without_per_seed_values_is_kept():
    decision = decide(score(0.1), True, score(1.0, per_seed=()), "2")
    assert not decision.promote and "no per-seed" in decision.reason


def test_failed_gates_never_promote_even_without_a_champion():
    assert decide(score(0.1), False, None, None).promote is False
    assert decide(score(0.1), True, None, None).promote is True


def test_a_champion_on_another_metric_or_without_a_score_is_kept():
    assert not decide(score(0.1), True, score(9.0, metric="fd"), "2").promote
    assert not decide(score(0.1), True, None, "2").promote


def test_scores_round_trip_through_tags():
    s = score(0.123456789, 0.01, lower=False)
    assert Score.from_tags(s.tags()) == s and len(s.per_seed) == 3
    old = {k: v for k, v in s.tags().items() if k != "wsfm.per_seed"}  # before per_seed
    assert Score.from_tags(old) == Score("swd", s.value, s.spread, False)
    assert Score.from_tags(s.tags("wsfm.previous_"), "wsfm.previous_") == s
    assert Score.from_tags({"wsfm.metric": "swd"}) is None
