#!/usr/bin/env bash
# GPU check: train the digits refiner on one CUDA GPU with bf16 and ZeRO-2 (1 Ray Train worker,
# NCCL, DeepSpeed's fused Adam where it builds) for a few hundred steps, and print samples/s.
#
#   scripts/gpu_check.sh [PIPELINE] [STEPS] [PROFILE]   defaults: pipelines/digits.yaml, 300, none
#   scripts/gpu_check.sh pipelines/glyphs.yaml 300 gpu  the 32x32 glyphs at their GPU size
#                                                (the gpu profile's wider U-Net and batch)
#   RECORD=1 scripts/gpu_check.sh                 also writes the `train_gpu` section of BENCHMARKS.md
#
# It installs nothing: it needs the project's venv (PYTHON, default .venv/bin/python) with a
# CUDA build of torch, and stops with a message when there is no GPU or the torch is CPU-only.
# The draft and its shards are made first (small: 2 shards x 5,000 drafts); then the
# train_refiner stage runs exactly as in the pipeline, through Ray Train.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PIPELINE=${1:-pipelines/digits.yaml}
STEPS=${2:-300}
PROFILE=${3:-}
export DS_ACCELERATOR=cuda

exec "$PYTHON" - "$PIPELINE" "$STEPS" "$PROFILE" <<'PY'
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

pipeline, steps, profile = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: no CUDA GPU visible to torch {torch.__version__} "
             f"(CUDA build: {torch.version.cuda or 'none'}); nothing was run")
gpu = torch.cuda.get_device_name(0)

import ray

from wsfm.config import load_pipeline
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.stages import StageContext
from wsfm.stages.generate_drafts import generate_drafts
from wsfm.stages.pretrain_draft import pretrain_draft
from wsfm.stages.train import train_refiner

cfg = load_pipeline(pipeline, profile=profile)
cfg = dataclasses.replace(
    cfg,
    shards=dataclasses.replace(cfg.shards, num_shards=2, per_shard=5000),
    train=dataclasses.replace(cfg.train, steps=steps, warmup_steps=min(cfg.train.warmup_steps,
                              steps // 4), use_gpu=True, precision="bf16", zero_stage=2,
                              num_workers=1, micro_batch=0, grad_accum=1,
                              checkpoint_every=max(1, steps // 2), log_every=max(1, steps // 6)))
model = (f"unet {cfg.model.channels} channels" if cfg.model.kind == "unet"
         else f"{cfg.model.kind} {cfg.model.hidden}x{cfg.model.depth}")
print(f"gpu_check: {pipeline} ({cfg.name}), {gpu}, {steps} steps, batch "
      f"{cfg.train.batch_size}, model {model}",
      flush=True)

ray.init(include_dashboard=False, runtime_env={"env_vars": {"DS_ACCELERATOR": "cuda"}})
with tempfile.TemporaryDirectory(prefix="wsfm-gpu-check-") as tmp:
    tmp = Path(tmp)
    runtime = RayRuntime(storage_path=str(tmp / "ray"), run_name="gpu-check")

    def ctx(name, **inputs):
        (tmp / name).mkdir()
        return StageContext(cfg, inputs, tmp / name, runtime)

    pretrain_draft(ctx("pretrain_draft"))
    generate_drafts(ctx("generate_drafts", pretrain_draft=tmp / "pretrain_draft"))
    result = train_refiner(ctx("train_refiner", generate_drafts=tmp / "generate_drafts"))
    ds = json.loads((tmp / "train_refiner" / "deepspeed_config.json").read_text())
ray.shutdown()

m = result.metrics
print(f"gpu_check: {gpu}: {m['samples_per_s']:,.0f} samples/s "
      f"(median step {m['step_time_median_s'] * 1e3:.2f} ms, batch {cfg.train.batch_size}); "
      f"{m['samples_per_s_wall']:,.0f} samples/s over the whole loop incl. checkpoints; "
      f"final loss {m['final_loss']:.4f}; peak RSS {m['peak_rss_mb_max']:.0f} MB; "
      f"bf16 {ds['bf16']['enabled']}, ZeRO {ds['zero_optimization']['stage']}", flush=True)

if os.environ.get("RECORD") == "1":
    from benchmarks.report import markdown_table, write_section

    table = markdown_table(
        ["GPU", "pipeline", "model", "steps", "batch", "precision", "ZeRO", "samples/s",
         "median ms/step", "wall samples/s", "peak RSS MB"],
        [[gpu, cfg.name, model, steps,
          cfg.train.batch_size, "bf16", 2, m["samples_per_s"], m["step_time_median_s"] * 1e3,
          m["samples_per_s_wall"], m["peak_rss_mb_max"]]])
    section = "train_gpu" if cfg.task == "digits" else f"train_gpu_{cfg.task}"
    write_section(section, f"Training on a GPU: the {cfg.task} refiner, bf16, ZeRO-2",
                  f"scripts/gpu_check.sh {pipeline} {steps} {profile or ''}".rstrip(),
                  "One Ray Train worker on one GPU (NCCL), DeepSpeed bf16 with ZeRO-2; samples/s "
                  "= batch / median step time (steps after warm-up).\n\n" + table)
PY
