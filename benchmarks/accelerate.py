"""Accelerating a user's model: quality against the fine-tuning budget, written to the
``accelerate`` section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.accelerate [--tasks toy2d digits] [--fractions 0.05 0.1 0.25 0.5]
    .venv/bin/python -m benchmarks.accelerate --tasks glyphs --section accelerate-glyphs

For each task, the user's model is ``examples/accelerate/my_flow.py``'s ``VelocityMLP`` trained
by that file's own loop (plain conditional flow matching from noise, independent pairs) on the
pipeline's training split for ``USERS`` steps. The task's pipeline YAML then takes it as
``model: {kind: python}`` with ``train.init_from`` its weights, and ``wsfm run`` (the real
command line, Ray, DeepSpeed and MLflow started for real) fine-tunes the refiner for each
fraction of those steps, at the user's batch size. One home per task, so the draft, the drafts'
shards and the user's cold model are built once and every budget reruns only the refiner, its
evaluation and ``register``.

Each evaluation has the user's model from noise at 100 and 10 steps (the cold rows), zero-shot
warm start from it at t0 = 0.9 (budget 0: the refiner before fine-tuning *is* that model), and
the fine-tuned refiner at t0 = 0.9, 10 NFE. The question the section answers: the smallest
budget at which warm at 10 NFE is no worse than the user's model at 100 steps, by the shipping
rule (``wsfm.report.no_worse``: 10% of the reference at 95% one-sided confidence over the
deciding seeds). Every run also says what ``register`` shipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from wsfm.benchmarks_md import BENCHMARKS, markdown_table, write_section
from wsfm.report import PARITY_MARGIN, EvalReport, Row, better, no_worse

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "accelerate" / "my_flow.py"
T0 = 0.9
# The user's own training: steps, batch, learning rate and network width per task (the
# pipeline's own cold baseline budget and batch, so that a fraction means the same thing).
USERS = {"toy2d": {"dim": 2, "steps": 3000, "batch": 512, "lr": 2e-3, "width": 256},
         "digits": {"dim": 64, "steps": 5000, "batch": 256, "lr": 1e-3, "width": 512},
         # 32x32 glyphs, flattened: a user's MLP, not the pipeline's U-Net
         "glyphs": {"dim": 1024, "steps": 2000, "batch": 128, "lr": 1e-3, "width": 1024}}
DEFAULT_TASKS = ("toy2d", "digits")
FRACTIONS = (0.05, 0.10, 0.25, 0.50)


@dataclass(frozen=True)
class Budget:
    """One fine-tuning budget's outcome: the refiner's row at 10 NFE, the user's rows, the
    shipping comparison, what register shipped and what the run cost."""

    steps: int
    warm: Row
    cold100: Row
    cold10: Row
    zero_shot: Row
    seconds: float  # the stages this budget makes: refiner, evaluation, register
    train_seconds: float
    shipped: str


def pipeline_doc(task: str, steps: int, user_pt: Path) -> dict:
    """The task's pipeline YAML with the user's network as the model, ``steps`` of
    fine-tuning, and the evaluation this benchmark reads."""
    doc = yaml.safe_load((ROOT / "pipelines" / f"{task}.yaml").read_text())
    for key in ("profiles", "bench"):
        doc.pop(key, None)
    user = USERS[task]
    doc["name"] = f"{task}-accelerate"
    doc["model"] = {"kind": "python", "target": "my_flow:VelocityMLP",
                    "kwargs": {"dim": user["dim"], "width": user["width"]}}
    doc["train"].update(init_from=str(user_pt), steps=steps, batch_size=user["batch"],
                        warmup_steps=min(doc["train"].get("warmup_steps", 0), steps // 10))
    doc["evaluate"].update(cold_nfe=100, nfe_grid=[10], warm_t0s=[T0], solvers=["euler"],
                           method="euler", methods=["draft", "cold", "zero_shot", "warm"])
    return doc


def train_users_model(task: str, folder: Path) -> tuple[Path, float]:
    """The user's side: ``my_flow.train`` (the copy in ``folder``, which the pipeline imports
    too) on the training split of the task's pipeline; its weights and the seconds it took."""
    import importlib.util

    import torch

    from wsfm.config import load_pipeline
    from wsfm.data.datasets import load_dataset

    spec = importlib.util.spec_from_file_location("my_flow", folder / "my_flow.py")
    assert spec is not None and spec.loader is not None
    my_flow = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(my_flow)
    # pipeline_doc leaves the data section as the task's pipeline has it
    data = load_dataset(load_pipeline(ROOT / "pipelines" / f"{task}.yaml").data)
    user = USERS[task]
    start = time.perf_counter()
    net = my_flow.train(user["steps"], batch=user["batch"], lr=user["lr"],
                        data=torch.from_numpy(data.train), width=user["width"])
    seconds = time.perf_counter() - start
    out = folder / "user.pt"
    torch.save(net.state_dict(), out)
    return out, seconds


def run_budget(folder: Path, doc: dict) -> tuple[EvalReport, dict, float, float]:
    """``wsfm run`` on ``doc`` into ``folder/home``: the evaluation, register's gates, and the
    seconds that the refiner and all three of the budget's own stages took when they ran
    (their stage records, so that a rerun that finds them finished reports the same). The
    outputs are found by the plan's fingerprints, as the runner finds them."""
    from wsfm.config import load_pipeline
    from wsfm.orchestrate.dag import make_plan
    from wsfm.orchestrate.store import ArtifactStore
    from wsfm.stages import STAGES

    yaml_path = folder / "accelerate.yaml"
    yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "WSFM_FAULT")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)])
    proc = subprocess.run([sys.executable, "-m", "wsfm.cli", "run", str(yaml_path),
                           "--home", str(folder / "home")],
                          cwd=folder, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"wsfm run {yaml_path} failed:\n{proc.stdout[-3000:]}"
                         f"{proc.stderr[-3000:]}")
    config = load_pipeline(yaml_path)
    store = ArtifactStore(folder / "home" / "artifacts", config.name)
    sys.path.insert(0, str(folder))  # the plan hashes the user's module where the run found it
    try:
        fps = {item.stage: item.fingerprint for item in make_plan(STAGES, config, store)}
    finally:
        sys.path.remove(str(folder))
    report = EvalReport.from_dict(json.loads(
        (store.path("evaluate", fps["evaluate"]) / "metrics.json").read_text()))
    gates = json.loads((store.path("register", fps["register"]) / "gates.json").read_text())
    took = {stage: float((store.load(stage, fps[stage]) or {}).get("seconds", math.nan))
            for stage in ("train_refiner", "evaluate", "register")}
    return report, gates, took["train_refiner"], math.fsum(took.values())


def pick(report: EvalReport, method: str, nfe: int, t0: float | None = None) -> Row:
    """The euler row of ``method`` at ``nfe`` calls (and start ``t0`` where given)."""
    for r in report.rows:
        if r.method == method and r.nfe == nfe and r.solver == "euler" and (
                t0 is None or abs(r.t0 - t0) < 1e-9):
            return r
    raise ValueError(f"no {method} row at NFE {nfe}: {[(r.method, r.nfe) for r in report.rows]}")


def smallest_matching(budgets: list[Budget], lower_is_better: bool) -> Budget | None:
    """The first budget (in increasing steps) whose refiner at 10 NFE is no worse than the
    user's model at 100 steps by the shipping rule."""
    for b in sorted(budgets, key=lambda b: b.steps):
        if no_worse(b.warm, b.cold100, PARITY_MARGIN, lower_is_better).ok:
            return b
    return None


def _q(r: Row) -> str:
    return f"{r.quality:.4g} ± {r.spread:.2g} (n={len(r.per_seed) or r.seeds})"


def task_body(task: str, metric: str, lower: bool, user_seconds: float,
              budgets: list[Budget]) -> str:
    user = USERS[task]
    first = budgets[0]
    rows = [["0 (zero-shot)", "0%", _q(first.zero_shot), "", "", ""]]
    for b in budgets:
        c = no_worse(b.warm, b.cold100, PARITY_MARGIN, lower)
        rows.append([str(b.steps), f"{b.steps / user['steps']:.0%}", _q(b.warm),
                     ("no worse: " if c.ok else "not shown: ") + c.describe(),
                     f"{b.train_seconds:.0f} / {b.seconds:.0f}", b.shipped])
    found = smallest_matching(budgets, lower)
    verdict = (f"smallest budget at which warm at 10 NFE matches the user's model at 100 steps: "
               f"**{found.steps} steps ({found.steps / user['steps']:.0%})**" if found else
               "warm at 10 NFE was **not shown** to match the user's model at 100 steps at any "
               f"budget up to {budgets[-1].steps} steps ({budgets[-1].steps / user['steps']:.0%})")
    in_mean = [b for b in budgets if not better(b.cold100.quality, b.warm.quality, lower)]
    verdict += ("; its seed mean is no worse from " + f"{in_mean[0].steps} steps "
                f"({in_mean[0].steps / user['steps']:.0%})" if in_mean else
                "; its seed mean is worse at every budget")
    return "\n".join([
        f"### {task} ({metric}, {'lower' if lower else 'higher'} is better)", "",
        f"The user's model: `VelocityMLP(width={user['width']})` trained by `my_flow.train` for "
        f"{user['steps']} steps of {user['batch']} ({user_seconds:.0f} s). From noise: "
        f"{_q(first.cold100)} at 100 steps, {_q(first.cold10)} at 10 steps "
        f"(the cold rows of the first run; every run's are the same model).", "",
        markdown_table(["fine-tuning steps", "of the user's", "warm t0 0.9, 10 NFE",
                        "against the user's model at 100 steps (shipping rule)",
                        "refiner train s / budget's stages s", "register"], rows), "",
        verdict + "."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), choices=list(USERS))
    parser.add_argument("--section", default="accelerate",
                        help="the BENCHMARKS.md section to write (glyphs: its own, "
                             "accelerate-glyphs, so that each section is one run)")
    parser.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    parser.add_argument("--work", type=Path, default=ROOT / "wsfm-runs" / "accelerate-bench",
                        help="where the user's models and the homes go (kept, so that a "
                             "rerun reuses finished stages)")
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS,
                        help="the BENCHMARKS.md to rewrite (default: the repository's)")
    args = parser.parse_args(argv)
    bodies = []
    start = time.perf_counter()
    for task in args.tasks:
        folder = args.work / task
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE, folder / "my_flow.py")
        user = USERS[task]
        user_pt, user_seconds = train_users_model(task, folder)
        budgets = []
        for fraction in sorted(args.fractions):
            steps = max(1, round(fraction * user["steps"]))
            report, gates, train_seconds, seconds = run_budget(folder,
                                                        pipeline_doc(task, steps, user_pt))
            warm_row = report.warm_method
            # The quality failure is the comparison column's; the others are said whole.
            why = ["quality" if f.startswith("quality") else f for f in gates["failures"]]
            shipped = (f"shipped (t0 {gates['t0']:g}, {gates.get('nfe', '?')} NFE)"
                       if gates.get("passed") else "refused: " + "; ".join(why))
            budgets.append(Budget(steps, pick(report, warm_row, 10, T0),
                                  pick(report, "cold", 100), pick(report, "cold", 10),
                                  pick(report, "zero_shot", 10, T0), seconds,
                                  train_seconds, shipped))
            print(f"[accelerate] {task} {steps} steps: warm@10 {budgets[-1].warm.quality:.4g} "
                  f"user@100 {budgets[-1].cold100.quality:.4g} ({seconds:.0f} s)", flush=True)
        bodies.append(task_body(task, report.metric, report.lower_is_better, user_seconds,
                                budgets))
    body = "\n\n".join([
        "Quality against the fine-tuning budget when the refiner starts from a user's model "
        "(issue: accelerate a model the user already has). Budgets are fractions of the steps "
        "the user's own loop trained with, at the same batch size. Warm rows start at t0 = 0.9 "
        "(10 Euler steps); the user's model is sampled with Euler from noise. Verdicts use the "
        f"shipping rule: no worse than the reference by more than {PARITY_MARGIN:.0%} of it, "
        "at 95% one-sided confidence over the deciding seeds. Seconds are the stages' own, "
        "from their records: the refiner's training, and the three stages each budget makes "
        "(refiner, evaluation, register); the draft, the drafts' shards and the user's cold "
        "model are made once per task.",
        *bodies,
        f"This invocation: {time.perf_counter() - start:.0f} s (the user's training included; "
        "stages found finished in the work folder are reused, not rerun)."])
    fractions = " ".join(f"{f:g}" for f in args.fractions)
    command = ("python -m benchmarks.accelerate"
               + (f" --tasks {' '.join(args.tasks)}" if args.tasks != list(DEFAULT_TASKS)
                  else "")
               + (f" --fractions {fractions}" if tuple(args.fractions) != FRACTIONS else "")
               + (f" --section {args.section}" if args.section != "accelerate" else ""))
    write_section(args.section, "Accelerating a user's model: quality against fine-tuning "
                  f"budget ({', '.join(args.tasks)})", command, body, path=args.benchmarks)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
