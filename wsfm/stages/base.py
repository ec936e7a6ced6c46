"""The stage contract: a stage is a function of its config and its upstream artifacts.

A stage reads ``ctx.inputs[upstream]`` (finished artifact folders), writes files into
``ctx.out`` and returns a :class:`StageResult`. It never reads the environment, picks a path or
talks to Ray or MLflow: work that fans out or trains across workers goes through
``ctx.runtime``, which the orchestrator provides. A task it fans out may run on a node that
does not see those folders: it reaches them through ``ctx.files`` (``wsfm.taskfiles``: an
input as its node sees it, a folder to write in, ``publish`` to deliver a finished file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wsfm.champion import Score
from wsfm.config import PipelineConfig
from wsfm.taskfiles import LocalFiles, TaskFiles
from wsfm.train.spec import TrainSpec

__all__ = ["VECTOR_ONLY", "ModelRelease", "Runtime", "StageContext", "StageResult", "StageSpec",
           "TrainSpec"]


@dataclass(frozen=True)
class ModelRelease:
    """A model bundle for the registry: ``bundle`` (a folder, ``wsfm.bundle``) registered as
    ``name``. It may take the ``champion`` alias only if ``gates_passed``; then the runtime
    compares ``score`` with the current champion's by ``wsfm.champion.decide``. ``tags``
    (the t0 choice, say) go on the new version; ``metrics`` (the shipped quality, t0, NFE)
    on the logged model."""

    bundle: Path
    name: str
    gates_passed: bool
    score: Score | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class Runtime(Protocol):
    """What the orchestrator lends a stage for work beyond one process."""

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "",
            unit: str = "items", work: Callable[[Any], float] | None = None,
            work_unit: str = "") -> list[Any]:
        """``[fn(item) for item in items]``, run in parallel with retries; results in order.

        Shows progress as items finish (``desc``, done/total ``unit``; ``work(item)`` drafts
        or samples per item give the rate in ``work_unit``/s). An item that still fails after
        its retries does not stop the others; then the map raises an error that names every
        failed item (``str(item)``) and its error.
        """
        ...

    def train(self, spec: TrainSpec) -> dict[str, float]:
        """Run distributed training; returns the summary metrics."""
        ...

    def registered_weights(self, uri: str) -> dict[str, Any]:
        """The state dict of ``models:/NAME/VERSION`` in the run's tracking store
        (``train.init_from``; ``wsfm.tracking.registered_weights``)."""
        ...

    def node_id(self) -> str:
        """The cluster node that the calling process runs on ("" where there is none): what a
        fan-out task records as where it ran. Callable inside the tasks of ``map``, where it
        names the task's own node: a stage hands its tasks this bound method, so that no
        stage imports the cluster's library."""
        ...

    def publish(self, release: ModelRelease) -> dict[str, str]:
        """Log the bundle as a model in the stage's tracking run, register it, and move the
        ``champion`` alias to it when ``wsfm.champion.decide`` says so (against the current
        champion's recorded score). Returns tags for the stage: ``model_name``,
        ``model_version``, ``model_alias`` ("champion" or "") and ``champion_decision``."""
        ...


@dataclass
class StageContext:
    """``files``: how the stage's fan-out tasks reach ``inputs`` and ``out`` (default: the
    folders themselves, which every task sees)."""

    config: PipelineConfig
    inputs: dict[str, Path]
    out: Path
    runtime: Runtime
    files: TaskFiles = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.files is None:
            self.files = LocalFiles(str(self.out))


@dataclass
class StageResult:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSpec:
    """A node of the DAG.

    ``reads`` names every config field the stage reads, directly or through what it calls:
    dotted paths (``"flow.kappa_exponent"``) or whole sections (``"data"``). Those values,
    the stage's code (its function's module and the ``wsfm`` modules it imports, plus the
    extra roots in ``code`` for code it reaches only through the runtime) and the upstream
    fingerprints make its fingerprint (``wsfm.orchestrate.fingerprint``). A ``resumable``
    stage finds in ``ctx.out`` whatever a failed attempt at the same fingerprint left there,
    and must reuse only what it can verify.

    ``fans_out``: the stage's own task only hands work to the tasks it maps and waits for
    them, so by default it holds no CPU of its own (``resources.<stage>.num_cpus`` says
    otherwise).

    ``methods``: for a stage that only feeds the evaluation's rivals, the methods of
    ``evaluate.methods`` it serves. Where none of them is asked for (or none applies to the
    data), the stage is not part of the job: the plan leaves it out (:meth:`unused_by`), it
    starts nothing and logs nothing, and its dependents run without it.
    """

    name: str
    fn: Callable[[StageContext], StageResult]
    deps: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    code: tuple[str, ...] = ()  # extra module roots, e.g. ("wsfm.train.ray_train",)
    resumable: bool = False
    fans_out: bool = False
    methods: tuple[str, ...] = ()

    def unused_by(self, config: PipelineConfig) -> str:
        """Why ``config``'s job does not need this stage ("" when it does)."""
        if not self.methods:
            return ""
        asked = [m for m in self.methods if m in config.evaluate.methods]
        if not asked:
            return f"{' / '.join(self.methods)} not in evaluate.methods"
        if config.data.is_text and all(m in VECTOR_ONLY for m in asked):
            return f"{' / '.join(asked)} does not apply to text (an all-mask source)"
        return ""


# The rivals that start from Gaussian noise or pair it: not defined for text.
VECTOR_ONLY = ("cold_ot", "reflow", "warm_reflow")
