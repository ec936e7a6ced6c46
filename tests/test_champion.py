import pytest

from wsfm.champion import Score, decide


def score(value, spread=0.0, metric="swd", lower=True):
    return Score(metric, value, spread, lower)


@pytest.mark.parametrize("new,old,promote", [
    (score(1.0), score(1.2), True),                 # better
    (score(1.2), score(1.2), True),                 # as good
    (score(1.3), score(1.2), False),                # worse, no spread to excuse it
    (score(1.3, 0.05), score(1.2, 0.05), True),     # worse by exactly the two spreads
    (score(1.31, 0.05), score(1.2, 0.05), False),   # beyond them
    (score(0.8, lower=False), score(0.9, lower=False), False),  # higher is better
    (score(0.95, lower=False), score(0.9, lower=False), True),
])
def test_the_champion_moves_only_to_an_at_least_as_good_model(new, old, promote):
    assert decide(new, True, old, "3").promote is promote


def test_failed_gates_never_promote_even_without_a_champion():
    assert decide(score(0.1), False, None, None).promote is False
    assert decide(score(0.1), True, None, None).promote is True


def test_a_champion_on_another_metric_or_without_a_score_is_kept():
    assert not decide(score(0.1), True, score(9.0, metric="fd"), "2").promote
    assert not decide(score(0.1), True, None, "2").promote


def test_scores_round_trip_through_tags():
    s = score(0.123456789, 0.01, lower=False)
    assert Score.from_tags(s.tags()) == s
    assert Score.from_tags(s.tags("wsfm.previous_"), "wsfm.previous_") == s
    assert Score.from_tags({"wsfm.metric": "swd"}) is None
