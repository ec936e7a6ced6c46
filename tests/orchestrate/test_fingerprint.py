"""Fingerprints cover every config field a stage reads, and its code (not its comments)."""

from __future__ import annotations

import ast
import dataclasses
import json
import textwrap
import typing
from pathlib import Path

import pytest

import wsfm.stages.rivals as rivals
import wsfm.stages.train as train_stages
from tests.helpers import context, prepared_data, save_untrained
from wsfm.config import (
    DataConfig,
    EvalConfig,
    FlowConfig,
    ModelConfig,
    PipelineConfig,
    ResourceConfig,
    to_dict,
)
from wsfm.data.datasets import load_dataset
from wsfm.orchestrate.dag import downstream, make_plan
from wsfm.orchestrate.fingerprint import (
    code_closure,
    code_hash,
    fingerprint,
    read_field,
    stage_code_hash,
    user_inputs,
)
from wsfm.orchestrate.local import LocalRuntime
from wsfm.orchestrate.store import ArtifactStore
from wsfm.report import EvalReport, Row
from wsfm.stages import STAGES, get_stage
from wsfm.stages.evaluate import evaluate
from wsfm.stages.fit_evaluator import fit_evaluator
from wsfm.stages.generate_drafts import generate_drafts
from wsfm.stages.prepare_data import prepare_data
from wsfm.stages.pretrain_draft import pretrain_draft
from wsfm.stages.register import register
from wsfm.stages.rivals import (
    generate_reflow,
    generate_warm_reflow,
    train_cold_ot,
    train_reflow,
    train_warm_reflow,
)
from wsfm.stages.train import train_baseline, train_refiner, train_refiner_budget
from wsfm.tracking import Tracker
from wsfm.train.discrete_objective import make_objective
from wsfm.train.loop import training_data

# --- every leaf field of the config -------------------------------------------------------


def leaves(obj, prefix: str = "") -> list[tuple[str, typing.Any, typing.Any]]:
    """(dotted path, type, value) of every non-dataclass field, lists and dicts whole."""
    hints = typing.get_type_hints(type(obj))
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += leaves(value, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, hints[f.name], value))
    return out


def candidates(tp, value) -> list:
    """Other values of type ``tp``, in order of preference (validators pick among them)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return list(typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        if item is str or typing.get_origin(item) is typing.Literal:  # names: drop the last
            return [value[:-1], value[1:]]
        return [[x + 1 for x in value], [x / 2 for x in value], [*value, value[-1]]]
    if origin is dict:
        return [{"evaluate": ResourceConfig(num_cpus=2.0)}]
    if tp is bool:
        return [not value]
    if tp is int:
        return [value + 1, 2 * value, value - 1, value + 2, 128]
    if tp is float:
        return [value / 2, value + 0.05]
    assert tp is str, tp
    return [value + "x"]


def with_field(obj, dotted: str, value):
    """``obj`` with the field at ``dotted`` replaced (``dataclasses.replace`` validates)."""
    head, _, rest = dotted.partition(".")
    new = with_field(getattr(obj, head), rest, value) if rest else value
    return dataclasses.replace(obj, **{head: new})


def changed(config: PipelineConfig, dotted: str, tp, value) -> PipelineConfig:
    for candidate in candidates(tp, value):
        if candidate == value:
            continue
        try:
            return with_field(config, dotted, candidate)
        except ValueError:
            continue
    raise AssertionError(f"no other valid value found for {dotted} (= {value!r})")


def fingerprints(config: PipelineConfig, tmp_path: Path) -> dict[str, str]:
    plan = make_plan(STAGES, config, ArtifactStore(tmp_path, config.name))
    return {item.stage: item.fingerprint for item in plan}


def declares(stage: str, dotted: str) -> bool:
    return any(dotted == r or dotted.startswith(r + ".") for r in get_stage(stage).reads)


# The benchmark's config: every rival asked for (so every stage is part of the job and has a
# fingerprint of its own), every solver.
BASE = PipelineConfig(name="fp", evaluate=EvalConfig(methods=[
    "draft", "retrieval", "cold", "cold_ot", "reflow", "zero_shot", "warm", "warm_reflow",
    "warm_budget"],
    solvers=["euler", "midpoint", "heun"]))
LEAVES = leaves(BASE)


def test_the_walk_finds_every_section_and_field():
    paths = {path for path, _, _ in LEAVES}
    assert {"name", "task", "seed", "resources", "flow.kappa_exponent", "train.use_gpu",
            "evaluate.nfe_grid", "data.image_size", "gates.min_speedup"} <= paths
    for section in dataclasses.fields(BASE):
        value = getattr(BASE, section.name)
        if dataclasses.is_dataclass(value):
            assert {f"{section.name}.{f.name}" for f in dataclasses.fields(value)} <= paths


# train.init_from initialises a user's network only: its variations need model.kind python
# (and a job without the refiner's rectified round, which a user's network does not offer).
BASE_PYTHON = dataclasses.replace(
    BASE, model=ModelConfig(kind="python", target="json:JSONDecoder"),
    evaluate=dataclasses.replace(BASE.evaluate, methods=[
        m for m in BASE.evaluate.methods if m != "warm_reflow"]))


@pytest.mark.parametrize("path,tp,value", LEAVES, ids=[p for p, _, _ in LEAVES])
def test_a_field_changes_exactly_the_stages_that_read_it_and_their_downstream(
        tmp_path, path, tp, value):
    base = BASE_PYTHON if path == "train.init_from" else BASE
    other = changed(base, path, tp, value)
    assert read_field(other, path) != read_field(base, path)
    before, after = fingerprints(base, tmp_path), fingerprints(other, tmp_path)
    expected = set()
    for spec in STAGES:
        # A stage that joins or leaves the job (evaluate.methods) changes with what it feeds.
        if declares(spec.name, path) or bool(spec.unused_by(base)) != bool(
                spec.unused_by(other)):
            expected |= downstream(STAGES, spec.name)
    # A stage out of both jobs has no fingerprint to change (BASE_PYTHON's warm_reflow).
    expected -= {s.name for s in STAGES if s.unused_by(base) and s.unused_by(other)}
    assert {s for s in before if before[s] != after[s]} == expected


def test_the_text_baseline_reads_the_mixture_exponent():
    assert declares("train_baseline", "flow.kappa_exponent")
    assert not declares("train_baseline", "flow.t0")  # cold: t0 = 0 whatever flow.t0 says


def test_every_declared_field_exists():
    for spec in STAGES:
        for dotted in spec.reads:
            read_field(BASE, dotted)
    with pytest.raises(ValueError, match="no field 'flow.kappa'"):
        read_field(BASE, "flow.kappa")


def test_the_users_network_and_weights_enter_by_content(tmp_path, monkeypatch):
    """A user's module edited, or weights retrained under the same file name, rerun the
    stages that read them; a registered version is immutable, so its name is enough."""
    (tmp_path / "users_field.py").write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"one")
    config = dataclasses.replace(
        BASE_PYTHON, model=ModelConfig(kind="python", target="users_field:Field"),
        train=dataclasses.replace(BASE.train, init_from=str(weights)))
    refiner, draft = get_stage("train_refiner"), get_stage("pretrain_draft")
    ups = {d: "0" * 16 for d in refiner.deps}
    first = fingerprint(refiner, config, ups)
    assert set(user_inputs(refiner, config)) == {"model.target", "train.init_from"}
    assert user_inputs(draft, config) == {}  # the draft reads neither
    weights.write_bytes(b"two")
    second = fingerprint(refiner, config, ups)
    (tmp_path / "users_field.py").write_text("A = 2\n")
    third = fingerprint(refiner, config, ups)
    assert len({first, second, third}) == 3
    registered = dataclasses.replace(config, train=dataclasses.replace(
        config.train, init_from="models:/field/3"))
    assert set(user_inputs(refiner, registered)) == {"model.target"}


def test_fingerprint_depends_on_upstream_fingerprints():
    spec = get_stage("evaluate")
    ups = {d: "0" * 16 for d in spec.deps}
    assert fingerprint(spec, BASE, ups) != fingerprint(spec, BASE, {**ups, "train_refiner": "1"})


# --- code hashes --------------------------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A package ``fpkg`` under ``root``: ``{relative path: source}``."""
    for rel, source in files.items():
        path = root / "fpkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / "fpkg"


PACKAGE = {
    "__init__.py": "import fpkg.unused\n",
    "unused.py": "X = 1\n",
    "stage.py": '''\
        """The stage."""
        import numpy as np
        from fpkg.helpers import helper


        def run():
            from fpkg.sub import late  # imported only when it runs
            return helper() + late.VALUE
        ''',
    "helpers.py": "from . import deep\n\n\ndef helper():\n    return deep.f(1)\n",
    "deep.py": '''\
        def f(x):
            """Doubles x."""
            return 2 * x  # the factor
        ''',
    "sub/__init__.py": "",
    "sub/late.py": "VALUE = 3\n",
}


def closure_hash(pkg: Path) -> str:
    return json.dumps(code_closure(("fpkg.stage",), "fpkg", pkg), sort_keys=True)


def test_closure_follows_imports_transitively_and_inside_functions(tmp_path):
    pkg = write_package(tmp_path, PACKAGE)
    names = set(code_closure(("fpkg.stage",), "fpkg", pkg))
    # helpers -> deep by a relative import; sub.late inside a function; the parent packages
    # (fpkg, fpkg.sub) and numpy are not part of the stage's code.
    assert names == {"fpkg.stage", "fpkg.helpers", "fpkg.deep", "fpkg.sub.late"}
    with pytest.raises(ValueError, match="fpkg.missing"):
        code_closure(("fpkg.missing",), "fpkg", pkg)


def test_docstrings_comments_and_layout_do_not_change_the_hash(tmp_path):
    pkg = write_package(tmp_path, PACKAGE)
    before = closure_hash(pkg)
    (pkg / "deep.py").write_text('def f(x):\n    """Twice x, documented anew."""\n\n'
                                 '    # a new comment\n    return 2*x\n')
    (pkg / "stage.py").write_text((pkg / "stage.py").read_text().replace('"""The stage."""',
                                                                         '"""Renamed."""'))
    assert closure_hash(pkg) == before


@pytest.mark.parametrize("module,edit", [
    ("deep.py", ("2 * x", "3 * x")),  # two imports away
    ("sub/late.py", ("3", "4")),  # reached only from inside a function
    ("stage.py", ("helper() +", "helper() -")),
])
def test_a_code_change_anywhere_in_the_closure_changes_the_hash(tmp_path, module, edit):
    pkg = write_package(tmp_path, PACKAGE)
    before = closure_hash(pkg)
    path = pkg / module
    path.write_text(path.read_text().replace(*edit))
    assert closure_hash(pkg) != before


def test_a_module_outside_the_closure_does_not_count(tmp_path):
    pkg = write_package(tmp_path, PACKAGE)
    before = closure_hash(pkg)
    (pkg / "unused.py").write_text("X = 2\n")
    assert closure_hash(pkg) == before


def test_stage_code_hashes_reach_the_code_behind_the_runtime():
    train = get_stage("train_refiner")
    closure = code_closure((train.fn.__module__, *train.code))
    assert {"wsfm.train.loop", "wsfm.train.objective", "wsfm.train.discrete_objective",
            "wsfm.models.mlp", "wsfm.data.datasets"} <= set(closure)
    evaluate_closure = code_closure((get_stage("evaluate").fn.__module__,))
    assert "wsfm.sampler" in evaluate_closure  # imported inside components.make_sampler
    assert "wsfm.train.loop" not in evaluate_closure
    assert stage_code_hash(train) == stage_code_hash(train)
    hits = code_hash.cache_info().hits
    stage_code_hash(train)
    assert code_hash.cache_info().hits == hits + 1  # computed once per process


# --- what the cheap stages actually read ----------------------------------------------------


class Recorder:
    """A config (section) that records the dotted path of every field read through it."""

    def __init__(self, obj, reads: set[str], prefix: str = "", own: frozenset[str] = frozenset()):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_reads", reads)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_own", own)  # fields the stage set itself: not config reads

    def __getattr__(self, name: str):
        obj, reads, prefix = self._obj, self._reads, self._prefix
        if name in self._own:
            return getattr(obj, name)
        attr = getattr(type(obj), name, None)
        if isinstance(attr, property):  # e.g. DataConfig.is_text: record what it reads
            return attr.fget(self)
        if callable(attr):
            return attr.__get__(self)
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value):
            return Recorder(value, reads, f"{prefix}{name}.")
        reads.add(prefix + name)
        return value


class RecordingDataclasses:
    """``dataclasses`` for a stage module, whose ``replace`` of a recorded section gives a
    recorded section again: the fields it sets are the stage's own values, not config reads,
    the others still record."""

    def __getattr__(self, name: str):
        return getattr(dataclasses, name)

    @staticmethod
    def replace(obj, **changes):
        if not isinstance(obj, Recorder):
            return dataclasses.replace(obj, **changes)
        return Recorder(dataclasses.replace(obj._obj, **changes), obj._reads, obj._prefix,
                        frozenset(changes))


def undeclared(stage: str, reads: set[str]) -> set[str]:
    assert reads, f"{stage}: nothing recorded"
    return {path for path in reads if not declares(stage, path)}


@pytest.fixture
def stage_inputs(tmp_path, tiny_config, draft_dir):
    evaluated = tmp_path / "evaluate-in"
    evaluated.mkdir()
    rows = [Row("cold", 0.0, 100, "euler", 1.0, 0.0, 1.0),
            Row("warm_ot", tiny_config.flow.t0, 10, "euler", 1.0, 0.0, 1.0)]
    report = EvalReport.build(task="toy2d", metric="swd", lower_is_better=True, reference=0.1,
                              reference_how="test", reference_n=10, t0=tiny_config.flow.t0,
                              cold_nfe=100, warm_method="warm_ot", solver="euler",
                              speedup_wall=10.0, rows=rows)
    (evaluated / "metrics.json").write_text(json.dumps(report.to_dict()))
    fitted = tmp_path / "fit_evaluator-in"
    fit_evaluator(context(tiny_config, fitted))
    # The rivals are not in the methods: the plan leaves them out, evaluate gets no input.
    return {"prepare_data": prepared_data(tiny_config, tmp_path),
            "pretrain_draft": draft_dir, "fit_evaluator": fitted, "evaluate": evaluated,
            "train_refiner": save_untrained(tiny_config, tmp_path / "refiner", 1),
            "train_baseline": save_untrained(tiny_config, tmp_path / "cold", 2)}


@pytest.mark.parametrize("stage,fn,runtime", [
    ("prepare_data", prepare_data, None),
    ("pretrain_draft", pretrain_draft, None),
    ("fit_evaluator", fit_evaluator, None),
    ("generate_drafts", generate_drafts, LocalRuntime()),
    ("generate_reflow", generate_reflow, LocalRuntime()),
    ("generate_warm_reflow", generate_warm_reflow, LocalRuntime()),
    ("evaluate", evaluate, LocalRuntime()),  # it fans its rows out through runtime.map
    ("register", register, "local-with-tracking"),
])
def test_the_stages_read_only_what_they_declare(tmp_path, tiny_config, stage_inputs, stage, fn,
                                                runtime, monkeypatch):
    import wsfm.stages.eval_jobs as eval_jobs

    # The evaluation jobs cache their set-up per process under a key made of the whole config:
    # a key, not a read that shapes the output, so it looks through the recorder.
    monkeypatch.setattr(eval_jobs, "to_dict", lambda c: to_dict(getattr(c, "_obj", c)))
    config = tiny_config
    if stage == "generate_drafts":  # pairing reads the data config too
        config = dataclasses.replace(
            config, flow=dataclasses.replace(config.flow, coupling="nearest"),
            shards=dataclasses.replace(config.shards, pair="nearest", per_shard=100))
    if stage in ("generate_reflow", "generate_warm_reflow"):  # asked for: it makes pairs
        config = dataclasses.replace(
            config, evaluate=dataclasses.replace(config.evaluate, methods=ALL_METHODS),
            shards=dataclasses.replace(config.shards, per_shard=100))
    if runtime == "local-with-tracking":  # register releases its model into an MLflow run
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        run_id = Tracker(uri, "audit", tmp_path / "mlartifacts").start_run("register")
        runtime = LocalRuntime(tracking={"uri": uri, "run_id": run_id})
    reads: set[str] = set()
    inputs = {d: stage_inputs[d] for d in get_stage(stage).deps if d in stage_inputs}
    inputs["prepare_data"] = stage_inputs["prepare_data"]  # the head's own: not an input
    if stage == "generate_reflow":  # its teacher: a cold_ot model
        inputs["train_cold_ot"] = save_untrained(config, tmp_path / "cold_ot", 3)
    fn(context(Recorder(config, reads), tmp_path / stage, runtime, **inputs))
    assert undeclared(stage, reads) == set()


# --- what the training stages actually read -------------------------------------------------

ALL_METHODS = ["draft", "retrieval", "cold", "cold_ot", "reflow", "zero_shot", "warm",
               "warm_reflow", "warm_budget"]  # every rival asked for: all part of the job
TRAINING = {"train_refiner": train_refiner, "train_baseline": train_baseline,
            "train_cold_ot": train_cold_ot, "train_reflow": train_reflow,
            "train_warm_reflow": train_warm_reflow,
            "train_refiner_budget": train_refiner_budget}


class TrainingAudit:
    """A runtime whose ``train`` does with the spec's config what the training loop does:
    it loads the spec's data (``training_data``: the prepared dataset) and makes the
    objective from ``spec.flow``, the flow settings' only way into the loop
    (``test_the_training_code_reads_the_flow_only_through_...``). ``data``, ``model`` and
    ``train`` go to the loop whole (recorded as reads of the whole section), and every
    training stage declares them whole."""

    def __init__(self) -> None:
        self.trained: list[typing.Any] = []

    def map(self, fn, items, **kwargs):
        raise AssertionError("a training stage should not use runtime.map")

    def node_id(self) -> str:
        return ""

    def train(self, spec) -> dict[str, float]:
        self.trained.append(spec)
        for name in ("data", "model", "train"):  # handed to the loop whole: a read of each
            section = getattr(spec, name)
            if isinstance(section, Recorder):
                section._reads.add(section._prefix.rstrip("."))
        make_objective(spec.mode, spec.flow, training_data(spec), paired=spec.paired)
        return {"steps": 1.0}


def test_the_training_code_reads_the_flow_only_through_make_objective():
    """What :class:`TrainingAudit` relies on: in the code behind ``runtime.train``, a
    ``TrainSpec``'s ``flow`` goes nowhere but into ``make_objective``."""
    import importlib.util

    closure = code_closure(get_stage("train_refiner").code)
    assert "wsfm.train.loop" in closure
    elsewhere = []
    for module in (m for m in closure if m.startswith("wsfm.train.")):  # what gets the spec
        tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
        handed = {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and getattr(node.func, "id", None) == "make_objective" for arg in node.args}
        elsewhere += [f"{module}: {ast.unparse(node)}" for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr == "flow"
                      and id(node) not in handed]
    assert elsewhere == []


@pytest.fixture
def training_inputs(tmp_path, tiny_config, draft_dir) -> dict[str, Path]:
    """The upstream outputs the training stages read: draft shards and both reflow pairs."""
    config = dataclasses.replace(tiny_config, evaluate=dataclasses.replace(
        tiny_config.evaluate, methods=ALL_METHODS), shards=dataclasses.replace(
        tiny_config.shards, per_shard=100))
    made = {name: tmp_path / f"{name}-in" for name in
            ("generate_drafts", "generate_reflow", "generate_warm_reflow")}
    generate_drafts(context(config, made["generate_drafts"], LocalRuntime(),
                            pretrain_draft=draft_dir))
    generate_reflow(context(config, made["generate_reflow"], LocalRuntime(),
                            train_cold_ot=save_untrained(config, tmp_path / "cold_ot", 3)))
    generate_warm_reflow(context(config, made["generate_warm_reflow"], LocalRuntime(),
                                 pretrain_draft=draft_dir,
                                 train_refiner=save_untrained(config, tmp_path / "warm", 5)))
    return {**made, "prepare_data": prepared_data(tiny_config, tmp_path)}


@pytest.mark.parametrize("coupling", ["nearest", "minibatch_ot"])
@pytest.mark.parametrize("stage", list(TRAINING))
def test_the_training_stages_read_only_what_they_declare(tmp_path, tiny_config, training_inputs,
                                                         stage, coupling, monkeypatch):
    monkeypatch.setattr(rivals, "dataclasses", RecordingDataclasses())
    monkeypatch.setattr(train_stages, "dataclasses", RecordingDataclasses())
    config = dataclasses.replace(
        tiny_config, flow=dataclasses.replace(tiny_config.flow, coupling=coupling),
        evaluate=dataclasses.replace(tiny_config.evaluate, methods=ALL_METHODS))
    reads: set[str] = set()
    runtime = TrainingAudit()
    inputs = {d: training_inputs[d] for d in get_stage(stage).deps}
    TRAINING[stage](context(Recorder(config, reads), tmp_path / stage, runtime, **inputs))
    assert len(runtime.trained) == 1  # it trained
    assert undeclared(stage, reads) == set()
    if stage in ("train_refiner", "train_refiner_budget"):  # the objective saw the recorder
        assert "flow.draft_noise" in reads


def test_the_baseline_reads_only_what_it_declares_on_text_and_the_rivals_are_unused(
        tmp_path, monkeypatch):
    """Words: the baseline trains the discrete objective (the refiner's text objective is
    audited below); the rivals that start from noise do not apply to text, so the plan
    leaves them out of a words job even when evaluate.methods names them."""
    monkeypatch.setattr(rivals, "dataclasses", RecordingDataclasses())
    config = PipelineConfig(name="words", data=DataConfig(kind="words", top_n=200))
    reads: set[str] = set()
    runtime = TrainingAudit()
    train_baseline(context(Recorder(config, reads), tmp_path / "train_baseline", runtime,
                           prepare_data=prepared_data(config, tmp_path)))
    assert len(runtime.trained) == 1
    assert undeclared("train_baseline", reads) == set() and "flow.kappa_exponent" in reads
    asked = dataclasses.replace(config, evaluate=dataclasses.replace(
        config.evaluate, methods=ALL_METHODS))
    for stage in ("train_cold_ot", "generate_reflow", "train_reflow", "generate_warm_reflow",
                  "train_warm_reflow"):
        assert "does not apply to text" in get_stage(stage).unused_by(asked), stage


def test_every_stage_is_audited_for_what_it_reads():
    """Each stage's reads are recorded above (the leaf walk checks the other direction for
    every stage: a field outside ``reads`` changes no fingerprint)."""
    cheap = {"prepare_data", "pretrain_draft", "fit_evaluator", "generate_drafts",
             "generate_reflow", "generate_warm_reflow", "evaluate", "register"}
    assert cheap | set(TRAINING) == {spec.name for spec in STAGES}


@pytest.mark.parametrize("kind", ["toy2d", "words"])
@pytest.mark.parametrize("stage,mode,paired", [
    ("train_refiner", "warm", False), ("train_refiner", "warm", True),
    ("train_baseline", "cold", False)])
@pytest.mark.parametrize("coupling", ["nearest", "minibatch_ot", "independent"])
def test_the_training_objective_reads_only_declared_flow_fields(kind, stage, mode, paired,
                                                                 coupling):
    """The training stages run on Ray Train; their flow settings reach the loop only through
    ``make_objective`` (data, model and train are declared whole)."""
    reads: set[str] = set()
    flow = Recorder(FlowConfig(coupling=coupling), reads, "flow.")
    data = load_dataset(Recorder(DataConfig(kind=kind, top_n=200), reads, "data."))
    make_objective(mode, flow, data, paired=paired)
    assert undeclared(stage, reads) == set()
    if mode == "cold" and kind == "words":
        assert reads & {f"flow.{f}" for f in ("t0", "coupling")} == set()
        assert "flow.kappa_exponent" in reads
