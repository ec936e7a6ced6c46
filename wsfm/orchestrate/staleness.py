"""Why a stage is not up to date: the comparison behind ``wsfm status`` and ``wsfm dag``.

Each committed output records, in its ``_SUCCESS.json``, the stage's code ``version``, its
upstream fingerprints (``inputs``) and the flattened config values that entered its
fingerprint (``config``, written by the runner: :func:`recorded_params`). A stage whose current
fingerprint has no finished output is compared with the newest output it does have::

    train_refiner  stale    config train.lr: 0.002 -> 0.001
    evaluate       stale    upstream train_refiner changed
    register       missing  never run

Pure bookkeeping over the store, like ``make_plan``: nothing starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from wsfm.config import PipelineConfig, flatten, to_dict
from wsfm.orchestrate.dag import UNUSED, make_plan
from wsfm.orchestrate.fingerprint import stage_code_hash, stage_params
from wsfm.orchestrate.leases import lease_holder, lease_uri
from wsfm.orchestrate.locks import describe_holder, lock_holder, stage_lock_path
from wsfm.orchestrate.store import ArtifactStore
from wsfm.orchestrate.stores import lock_root
from wsfm.stages.base import StageSpec

__all__ = ["StageState", "diff_params", "newest_output", "pipeline_status", "recorded_params"]

State = Literal["cached", "stale", "missing", "running", "unused"]


@dataclass
class StageState:
    """One stage's standing: ``cached`` (up to date), ``stale`` (an older or damaged output
    exists; ``reasons`` say what changed), ``missing`` (never finished), ``running`` (an
    invocation holds the output's lock and is making it: ``reasons`` name it) or ``unused``
    (not part of this config's job: ``reasons`` say why)."""

    stage: str
    fingerprint: str
    state: State
    deps: tuple[str, ...] = ()
    reasons: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.state == "cached"


def recorded_params(spec: StageSpec, config: PipelineConfig) -> dict[str, Any]:
    """The config values that enter ``spec``'s fingerprint (``stage_params``), flattened to
    leaves (``train.lr``) and JSON-normalised (tuples become lists), as ``_SUCCESS.json``
    stores them."""
    tree = {name: to_dict(value) for name, value in stage_params(spec, config).items()}
    return json.loads(json.dumps(flatten(tree), sort_keys=True, default=str))


def diff_params(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every key whose value differs, added or removed; sorted."""
    missing = object()
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a != b:
            out.append(f"{key}: {'(none)' if a is missing else json.dumps(a)} -> "
                       f"{'(none)' if b is missing else json.dumps(b)}")
    return out


def newest_output(store: ArtifactStore, stage: str) -> dict[str, Any] | None:
    """The newest committed success record of ``stage`` (any fingerprint), or None."""
    return max(store.success_records(stage), key=lambda r: r.get("finished_at", 0),
               default=None)


def _reasons(spec: StageSpec, config: PipelineConfig, old: dict[str, Any],
             current: dict[str, str], states: dict[str, StageState]) -> list[str]:
    """What differs between ``old`` (a success record) and the stage now."""
    reasons = []
    code = stage_code_hash(spec)
    if old.get("code") != code:
        reasons.append(f"code changed: {old.get('code', '(not recorded)')} -> {code}")
    if "config" in old:
        reasons += [f"config {line}" for line in diff_params(old["config"],
                                                             recorded_params(spec, config))]
    for dep in spec.deps:
        if old.get("inputs", {}).get(dep, UNUSED) != current[dep]:
            note = "" if states[dep].up_to_date else f" ({states[dep].state})"
            reasons.append(f"upstream {dep} changed{note}")
    if not reasons:
        reasons.append("config or fingerprint rule changed (the output "
                       + ("predates recorded params)" if "config" not in old else
                          "records no difference)"))
    return reasons


def pipeline_status(specs: Sequence[StageSpec], config: PipelineConfig,
                    store: ArtifactStore) -> list[StageState]:
    """Every stage's :class:`StageState`, in topological order."""
    plan = make_plan(specs, config, store)
    by_name = {s.name: s for s in specs}
    current = {item.stage: item.fingerprint for item in plan}
    states: dict[str, StageState] = {}
    for item in plan:
        spec = by_name[item.stage]
        state = StageState(item.stage, item.fingerprint, "cached", spec.deps)
        if item.action == "unused":
            state.state, state.reasons = "unused", [item.reason]
        elif item.action != "cached":
            damaged = store.inspect(item.stage, item.fingerprint)[1] != "no finished output"
            old = newest_output(store, item.stage)
            if damaged:
                state.state, state.reasons = "stale", [item.reason]
            elif old is None:
                state.state, state.reasons = "missing", ["never run"]
            else:
                state.state = "stale"
                state.reasons = _reasons(spec, config, old, current, states)
            holder = lock_holder(stage_lock_path(lock_root(store), config.name, item.stage,
                                                 item.fingerprint))
            if holder is None and str(store.root).startswith("s3://"):  # another machine's
                holder = lease_holder(lease_uri(str(store.root), config.name, item.stage,
                                                item.fingerprint))
            if holder is not None:
                state.state, state.reasons = "running", [f"being made by "
                                                         f"{describe_holder(holder)}"]
        states[item.stage] = state
    return list(states.values())
