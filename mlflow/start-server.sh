#!/usr/bin/env bash
# An MLflow tracking server for WS-FM: the runs, the model registry and the artifacts (served
# through the server: clients need no access to the artifact folder).
#
#   mlflow/start-server.sh                 browse the local store that `wsfm run` writes
#   mlflow/start-server.sh --auth          a team server with basic auth (see README.md)
#
# Settings (environment):
#   HOST, PORT                     where to listen (127.0.0.1:5000; give HOST=0.0.0.0 only
#                                  behind a firewall or a TLS proxy: basic auth sends the
#                                  password in every request)
#   WSFM_SERVER_HOME               the server's folder (default: $WSFM_HOME or ./wsfm-runs)
#   MLFLOW_BACKEND_STORE_URI       runs and registry (default: sqlite:///$home/mlflow.db;
#                                  e.g. postgresql://wsfm@dbhost/mlflow, password in ~/.pgpass)
#   MLFLOW_ARTIFACTS_DESTINATION   where the server keeps artifacts (default: $home/mlartifacts;
#                                  a folder, s3://..., gs://...)
#   --auth only:
#   MLFLOW_AUTH_ADMIN_USERNAME     the admin account (default: admin)
#   MLFLOW_AUTH_ADMIN_PASSWORD     its password, read only on the first start (an empty user
#                                  store); never written to a file by this script
#   MLFLOW_AUTH_DATABASE_URI       the user store (default: sqlite:///$home/basic_auth.db)
#   MLFLOW_FLASK_SERVER_SECRET_KEY CSRF key (default: made once, kept in $home/flask_secret_key)
# Any further arguments go to `mlflow server`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mlflow_bin="${MLFLOW_BIN:-$here/.venv/bin/mlflow}"
home="${WSFM_SERVER_HOME:-${WSFM_HOME:-$here/wsfm-runs}}"
mkdir -p "$home"
home="$(realpath "$home")"
backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$home/mlflow.db}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$home/mlartifacts}"
case "$artifacts" in *://*) ;; *) mkdir -p "$artifacts" ;; esac

args=()
if [[ "${1:-}" == "--auth" ]]; then
    shift
    umask 077
    if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
        [[ -s "$home/flask_secret_key" ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' \
            > "$home/flask_secret_key"
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$home/flask_secret_key")"
        export MLFLOW_FLASK_SERVER_SECRET_KEY
    fi
    # The auth app reads its settings from this file; the admin password stays in the
    # environment (MLFLOW_AUTH_ADMIN_PASSWORD), which MLflow reads on the first start only.
    cat > "$home/basic_auth.ini" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-NO_PERMISSIONS}
database_uri = ${MLFLOW_AUTH_DATABASE_URI:-sqlite:///$home/basic_auth.db}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
    export MLFLOW_AUTH_CONFIG_PATH="$home/basic_auth.ini"
    args+=(--app-name basic-auth)
fi

exec "$mlflow_bin" server --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" \
    --backend-store-uri "$backend" --artifacts-destination "$artifacts" \
    "${args[@]}" "$@"
