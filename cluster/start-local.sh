#!/usr/bin/env bash
# Start a one-node Ray cluster on this machine (head only), for `wsfm run --address auto`.
# Stop it with `ray stop`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/.venv/bin/ray" start --head --num-cpus "${NUM_CPUS:-$(nproc)}" \
    --include-dashboard=false "$@"
echo "Ray is up: run pipelines with  .venv/bin/wsfm run pipelines/toy2d.yaml --address auto"
