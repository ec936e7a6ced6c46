"""The registry's rules, free of MLflow: a model's score and when it replaces the champion.

A :class:`Score` is the evaluation's primary metric for the shipped configuration: the mean
over sampling seeds (``value``), its spread (population std over the seeds) and the value of
each seed (``per_seed``).

The champion rule (:func:`decide`): a new version becomes the ``champion`` only when

1. it passes the gates, and
2. there is no champion, or the champion's score is on the same metric and the new version is
   *shown* at least as good: the one-sided 95% upper bound on ``new - old`` (oriented so that
   positive is worse; Welch, over the per-seed values: ``wsfm.report.no_worse_values``) is
   at most 0. Noise widens the bound, so a noisier pair replaces the champion less easily,
   never more (the rule this replaced allowed ``new <= old + new.spread + old.spread``, which
   a noisier model passed more easily).

A champion without a score on the same metric, or without per-seed values (another metric,
promoted by hand, or registered before per-seed values were recorded) is kept: the two cannot
be compared, and a person can promote by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from wsfm.report import Comparison, no_worse_values

__all__ = ["Decision", "Score", "decide"]


@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    spread: float
    lower_is_better: bool = True
    per_seed: tuple[float, ...] = ()

    def versus(self, other: Score) -> Comparison:
        """``self`` against ``other``: shown no worse with a zero margin (same metric
        required; module docstring)."""
        if self.metric != other.metric or self.lower_is_better != other.lower_is_better:
            raise ValueError(f"cannot compare {self.metric} with {other.metric}")
        return no_worse_values(self.per_seed, other.per_seed, 0.0, self.lower_is_better,
                               means=(self.value, other.value))

    def tags(self, prefix: str = "wsfm.") -> dict[str, str]:
        return {f"{prefix}metric": self.metric, f"{prefix}quality": repr(self.value),
                f"{prefix}spread": repr(self.spread),
                f"{prefix}lower_is_better": str(self.lower_is_better).lower(),
                f"{prefix}per_seed": json.dumps(list(self.per_seed))}

    @classmethod
    def from_tags(cls, tags: dict[str, str], prefix: str = "wsfm.") -> Score | None:
        """The score recorded by :meth:`tags`, or None where it is not (fully) recorded
        (``per_seed`` may be missing: a version registered before it was recorded)."""
        try:
            per_seed = tuple(float(v) for v in json.loads(tags.get(f"{prefix}per_seed", "[]")))
            return cls(tags[f"{prefix}metric"], float(tags[f"{prefix}quality"]),
                       float(tags[f"{prefix}spread"]),
                       tags[f"{prefix}lower_is_better"] == "true", per_seed)
        except (KeyError, ValueError, TypeError):
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
    if len(champion.per_seed) < 2:
        return Decision(False, f"champion v{champion_version} has no per-seed {new.metric} "
                        "values to compare with; kept")
    verdict = new.versus(champion)
    shown = "shown" if verdict.ok else "not shown to be"
    return Decision(verdict.ok, f"{new.metric} {new.value:.6g}±{new.spread:.2g} {shown} at "
                    f"least as good as champion v{champion_version} {champion.value:.6g}±"
                    f"{champion.spread:.2g} ({verdict.describe()})")
