"""The registry's rules, free of MLflow: a model's score and when it replaces the champion.

A :class:`Score` is the evaluation's primary metric for the shipped configuration: the mean
over sampling seeds (``value``) and its spread (population std over the seeds).

The champion rule (:func:`decide`): a new version becomes the ``champion`` only when

1. it passes the gates, and
2. there is no champion, or the champion's score is on the same metric and the new value is
   at least as good within the two spreads: ``new <= old + new.spread + old.spread`` when
   lower is better (``>=`` with ``-`` otherwise), the same seed-noise allowance as the
   evaluation's parity test.

A champion without a score on the same metric (another metric, or promoted by hand before
scores were recorded) is kept: the two cannot be compared, and a person can promote by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision", "Score", "decide"]


@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    spread: float
    lower_is_better: bool = True

    def at_least_as_good(self, other: Score) -> bool:
        """``self`` no worse than ``other`` within both spreads (same metric required)."""
        if self.metric != other.metric or self.lower_is_better != other.lower_is_better:
            raise ValueError(f"cannot compare {self.metric} with {other.metric}")
        slack = self.spread + other.spread
        if self.lower_is_better:
            return self.value <= other.value + slack
        return self.value >= other.value - slack

    def tags(self, prefix: str = "wsfm.") -> dict[str, str]:
        return {f"{prefix}metric": self.metric, f"{prefix}quality": repr(self.value),
                f"{prefix}spread": repr(self.spread),
                f"{prefix}lower_is_better": str(self.lower_is_better).lower()}

    @classmethod
    def from_tags(cls, tags: dict[str, str], prefix: str = "wsfm.") -> Score | None:
        """The score recorded by :meth:`tags`, or None where it is not (fully) recorded."""
        try:
            return cls(tags[f"{prefix}metric"], float(tags[f"{prefix}quality"]),
                       float(tags[f"{prefix}spread"]),
                       tags[f"{prefix}lower_is_better"] == "true")
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(new: Score | None, gates_passed: bool, champion: Score | None,
           champion_version: str | None) -> Decision:
    """Whether the new version takes the ``champion`` alias (module docstring)."""
    if not gates_passed:
        return Decision(False, "the gates failed")
    if champion_version is None:
        return Decision(True, "no champion yet")
    if new is None or champion is None or champion.metric != new.metric:
        return Decision(False, f"champion v{champion_version} has no "
                        f"{new.metric if new else 'score'} to compare with; kept")
    verdict = new.at_least_as_good(champion)
    return Decision(verdict, f"{new.metric} {new.value:.6g}±{new.spread:.2g} "
                    f"{'at least as good as' if verdict else 'worse than'} champion "
                    f"v{champion_version} {champion.value:.6g}±{champion.spread:.2g}")
