"""The default job's wall time against the smoke profile's, written to the ``job-PIPELINE``
section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.job [--pipeline pipelines/toy2d.yaml] [--rounds 1]

What a new user pays for ``make run``: ``wsfm run PIPELINE`` (the lean job: two flow models
trained, the evaluation that shipping needs) from an empty home, against ``wsfm run PIPELINE
--profile smoke`` from an empty home, run one after the other on the same machine (smoke
first, then the job, ``--rounds`` times; medians). Each run is the real command line in a
subprocess, Ray, DeepSpeed and MLflow started for real; nothing is cached between runs. The
target (issue "a lean default job"): the job takes at most 4x the smoke profile's wall time
and trains two flow models. The section also lists the stages each run ran and what
``register`` shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wsfm.benchmarks_md import markdown_table, median, write_section

ROOT = Path(__file__).resolve().parents[1]
TARGET = 4.0


def timed_run(pipeline: Path, profile: str | None, home: Path) -> tuple[float, list[str], dict]:
    """``wsfm run`` into a fresh ``home``: wall seconds, the stages it ran, register's
    gates.json."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "WSFM_FAULT")}
    args = [sys.executable, "-m", "wsfm.cli", "run", str(pipeline), "--home", str(home)]
    home.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(args + (["--profile", profile] if profile else []), env=env,
                          cwd=home.parent, text=True, capture_output=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    ran = [line.split()[1] for line in proc.stdout.splitlines()
           if line.startswith("[wsfm]") and len(line.split()) > 2 and line.split()[2] == "done"]
    [gates] = list((home / "artifacts").glob("*/register/*/gates.json"))
    return seconds, ran, json.loads(gates.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "toy2d.yaml")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    smoke, job = [], []
    with tempfile.TemporaryDirectory(prefix="wsfm-job-bench-") as tmp:
        for k in range(args.rounds):
            smoke.append(timed_run(args.pipeline, "smoke", Path(tmp) / f"smoke{k}" / "home"))
            job.append(timed_run(args.pipeline, None, Path(tmp) / f"job{k}" / "home"))
    s, j = median([r[0] for r in smoke]), median([r[0] for r in job])
    trained = [st for st in job[-1][1] if st.startswith("train_")]
    gates = job[-1][2]
    ratio = j / s
    body = "\n".join([
        f"Each run from an empty home, smoke first, {args.rounds} round(s); medians.", "",
        markdown_table(["run", "wall s", "stages ran"],
                       [["--profile smoke", f"{s:.0f}", ", ".join(smoke[-1][1])],
                        ["default job (make run)", f"{j:.0f}", ", ".join(job[-1][1])]]),
        "",
        f"Job / smoke: {ratio:.2f}x (target at most {TARGET:g}x: "
        f"{'met' if ratio <= TARGET else 'missed'}); flow models trained by the job: "
        f"{len(trained)} ({', '.join(trained)}; target 2: "
        f"{'met' if len(trained) == 2 else 'missed'}).", "",
        f"Shipped by the job's register: t0={gates['t0']:g}, {gates.get('nfe', '?')} NFE, "
        f"speed-up {gates['speedup_nfe']:.3g}x in NFE and "
        f"{gates.get('speedup_wall', float('nan')):.3g}x wall; {gates.get('vs_cold', '')}; "
        f"gates {'passed' if gates['passed'] else 'failed: ' + '; '.join(gates['failures'])}."])
    name = args.pipeline.stem
    write_section(f"job-{name}", f"The default job against smoke: {name}",
                  f"python -m benchmarks.job --pipeline pipelines/{args.pipeline.name}"
                  + (f" --rounds {args.rounds}" if args.rounds != 1 else ""), body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
