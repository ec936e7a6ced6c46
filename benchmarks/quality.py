"""Quality against speed for one pipeline, written to its section of BENCHMARKS.md.

    .venv/bin/python -m benchmarks.quality pipelines/digits.yaml [--profile P] [--home DIR]

Runs the pipeline (finished stages are reused from the artifact store), then reads the
evaluation's ``metrics.json`` and the stages' success records, and reports every row of the
benchmark protocol, the targets (parity at 10x and 25x, the equal-NFE win, the guaranteed
speed-up) and where the pipeline's time went.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

from benchmarks.report import markdown_table, write_section
from wsfm.config import load_pipeline
from wsfm.orchestrate.runner import run_pipeline
from wsfm.orchestrate.store import ArtifactStore
from wsfm.stages.evaluate import parity


def _row(rows: list[dict], method: str, t0: float | None = None, nfe: int | None = None):
    for r in rows:
        if r["method"] == method and (t0 is None or math.isclose(r["t0"], t0)) and (
                nfe is None or r["nfe"] == nfe):
            return r
    return None


def targets(report: dict, cold_nfe: int) -> list[tuple[str, str, str]]:
    rows, low = report["rows"], report["lower_is_better"]
    cold = _row(rows, "cold", nfe=cold_nfe)
    warm_methods = sorted({r["method"] for r in rows if r["method"].startswith("warm")})
    out = []
    for label, t0 in (("parity at 10x (t0=0.9, 10 NFE)", 0.9),
                      ("parity at 25x (t0=0.96, 4 NFE)", 0.96)):
        for m in warm_methods:
            w = _row(rows, m, t0=t0)
            if w:
                ok = parity(w, cold, lower_is_better=low)
                out.append((f"{label}, {m}", "met" if ok else "missed",
                            f"{w['quality']:.4g} ± {w['spread']:.2g} vs cold@{cold_nfe} "
                            f"{cold['quality']:.4g} ± {cold['spread']:.2g}"))
    better = (lambda a, b: a < b) if low else (lambda a, b: a > b)
    for n in (1, 2, 4, 8):
        c = _row(rows, "cold", nfe=n)
        ws = [r for r in rows if r["method"].startswith("warm") and r["nfe"] == n]
        if c and ws:
            best = min(ws, key=lambda r: r["quality"]) if low else max(ws,
                                                                        key=lambda r: r["quality"])
            out.append((f"equal-NFE win at NFE {n}", "met" if better(best["quality"],
                                                                      c["quality"]) else "missed",
                        f"warm {best['quality']:.4g} vs cold {c['quality']:.4g}"))
    draft = _row(rows, "draft")
    w = _row(rows, warm_methods[0], t0=report["t0"]) if warm_methods else None
    if draft and w:
        out.append(("warm beats the draft", "met" if better(w["quality"], draft["quality"])
                    else "missed", f"warm {w['quality']:.4g} vs draft {draft['quality']:.4g}"))
    out.append(("guaranteed speed-up (NFE ratio; wall ratio incl. draft >= 0.9 of it)",
                "met" if report["speedup_wall"] >= 0.9 * report["speedup_nfe"] else "missed",
                f"NFE {report['speedup_nfe']:.2f}x, wall {report['speedup_wall']:.2f}x"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline")
    parser.add_argument("--profile")
    parser.add_argument("--home", default=os.environ.get("WSFM_HOME", "wsfm-runs"))
    args = parser.parse_args(argv)
    config = load_pipeline(args.pipeline, profile=args.profile)
    start = time.perf_counter()
    summary = run_pipeline(config, home=Path(args.home), pipeline_file=args.pipeline,
                           profile=args.profile)
    wall = time.perf_counter() - start
    ran = [o.stage for o in summary.outcomes if o.status == "ran"]
    if not summary.ok:
        return 1
    store = ArtifactStore(Path(args.home) / "artifacts", config.name)
    fps = {item.stage: item.fingerprint for item in summary.plan}
    report = json.loads((store.path("evaluate", fps["evaluate"]) / "metrics.json").read_text())
    records = {s: store.load(s, fp) for s, fp in fps.items()}

    rows = [[r["method"], r["t0"], r["nfe"], f"{r['quality']:.4g} ± {r['spread']:.2g}",
             r["sec_per_1k"], ", ".join(f"{k} {v:.3g}" for k, v in r.get("metrics", {}).items()
                                        if k != report["metric"])]
            for r in report["rows"]]
    direction = "lower" if report["lower_is_better"] else "higher"
    body = [f"Metric: `{report['metric']}` ({direction} is better); real held-out data scores "
            f"{report['reference']:.4g} (the floor). Quality is the mean ± spread over "
            f"{config.evaluate.seeds} sampling seeds of {config.evaluate.n_samples} samples; "
            f"seconds per 1,000 samples include the draft.", "",
            markdown_table(["method", "t0", "NFE", "quality", "s / 1k", "other metrics"], rows),
            "", "Targets:", "",
            markdown_table(["target", "result", "numbers"], targets(report,
                                                                     config.evaluate.cold_nfe)),
            "", "Where the time goes (seconds per stage, from the run that made each output):",
            "", markdown_table(["stage", "seconds"],
                               [[s, float(r.get("seconds", 0.0))] for s, r in records.items()
                                if r]),
            "", f"Total stage time: {sum(float(r.get('seconds', 0)) for r in records.values() if r):.0f} s "
                "(stages on separate branches overlap, so wall time is lower).",
            f"This invocation: {wall:.0f} s wall, {len(ran)} of {len(summary.outcomes)} stages "
            f"ran ({', '.join(ran) or 'all cached'})."]
    profile = f" --profile {args.profile}" if args.profile else ""
    write_section(f"quality-{config.name}{'-' + args.profile if args.profile else ''}",
                  f"Quality against speed: {config.name}{profile}",
                  f".venv/bin/python -m benchmarks.quality {args.pipeline}{profile}",
                  "\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
