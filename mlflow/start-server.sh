#!/usr/bin/env bash
# An MLflow tracking server on the same SQLite store and artifact folder that `wsfm run` uses
# by default, to browse runs and models: http://127.0.0.1:${PORT:-5000}
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
home="$(realpath "${WSFM_HOME:-$here/wsfm-runs}")"
mkdir -p "$home/mlartifacts"
exec "$here/.venv/bin/mlflow" server --host 127.0.0.1 --port "${PORT:-5000}" \
    --backend-store-uri "sqlite:///$home/mlflow.db" \
    --default-artifact-root "$home/mlartifacts" "$@"
