#!/usr/bin/env bash
# A multi-node Ray cluster on this machine, for development: a head on 127.0.0.2 and N worker
# nodes on 127.0.0.3, 127.0.0.4, ... (loopback addresses: Ray keeps them, unlike 127.0.0.1,
# which it replaces with the interface address). Each node has its own CPUs and the custom
# resources {"wsfm_node": 1, "wsfm_node_<i>": 1}.
#
#   cluster/start-local.sh [--workers N] [--cpus C] [--dashboard-port P]    (defaults 1, 1, 8265)
#   cluster/stop-local.sh                                                   stops exactly these
#
# Each node is one `ray start --block` in its own process group, started in the background;
# its pid goes to $WSFM_CLUSTER_STATE/pids (default /tmp/wsfm-local-cluster), and the cluster
# has its own --temp-dir there, so a plain `ray.init()` elsewhere never joins it by accident.
# Token authentication (Ray's default) stays on: clients need RAY_AUTH_MODE=token, and read
# the token from RAY_AUTH_TOKEN, or the file RAY_AUTH_TOKEN_PATH (default ~/.ray/auth_token).
# `ray start` does not create that file: this script does when there is no token yet.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.venv/bin"
state="${WSFM_CLUSTER_STATE:-/tmp/wsfm-local-cluster}"
workers=1 cpus=1 dash=8265
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) workers="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --dashboard-port) dash="$2"; shift 2 ;;
        *) echo "usage: $0 [--workers N] [--cpus C] [--dashboard-port P]" >&2; exit 2 ;;
    esac
done
if [ -s "$state/pids" ]; then
    while read -r ip pid; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "a local cluster is already running (node $ip, pid $pid): cluster/stop-local.sh" >&2
            exit 1
        fi
    done < "$state/pids"
fi
# Ray's unix sockets live under $state/ray-<i>/session_<date>_<time>_<pid>/sockets/, and a
# socket path may not exceed 107 bytes: refuse a state folder that would break that, first.
if [ "${#state}" -gt 36 ]; then
    echo "WSFM_CLUSTER_STATE=$state is too long (${#state} characters, at most 36): Ray's socket paths under it would exceed 107 bytes; use a short folder such as /tmp/wsfm-cluster" >&2
    exit 2
fi
rm -rf "$state" && mkdir -p "$state"
export RAY_AUTH_MODE=token PATH="$bin:$PATH"  # the nodes run jobs' `wsfm run` entrypoints
token_file="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"
if [ -z "${RAY_AUTH_TOKEN:-}" ] && [ ! -s "$token_file" ]; then
    mkdir -p "$(dirname "$token_file")"
    # 256 random bits, as `ray get-auth-token --generate` makes them; readable by this user only
    (umask 077 && "$bin/python" -c 'import secrets; print(secrets.token_hex(32), end="")' > "$token_file")
    echo "generated a Ray auth token in $token_file"
fi

free_port() {  # a port nothing listens on at address $1
    "$bin/python" -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
ports() {  # ports IP [RESERVED...]: a free port for every server a node opens (Ray's fixed
    # defaults collide between nodes), and a worker range that holds none of them nor RESERVED
    "$bin/python" - "$@" <<'PY'
import socket, sys
ip, reserved = sys.argv[1], {int(p) for p in sys.argv[2:]}
def free():
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]
while True:
    first = min(free(), 60000)
    workers = range(first, first + 201)
    if not reserved & set(workers):
        break
names = ["node-manager", "object-manager", "metrics-export", "runtime-env-agent",
         "dashboard-agent-grpc", "dashboard-agent-listen"]
ports = []
for name in names:
    while (port := free()) in workers:
        pass
    ports.append(f"--{name}-port={port}")
print(" ".join(ports), f"--min-worker-port={first} --max-worker-port={first + 200}")
PY
}
start_node() {  # start_node INDEX IP ARGS...: one `ray start --block` in its own session
    local i=$1 ip=$2; shift 2
    # shellcheck disable=SC2046
    # Each node its own --temp-dir, as separate machines have: nodes sharing one also share
    # runtime_resources/, and one node's agent then deletes a job's working_dir that another
    # node's job driver is still importing from (seen: ModuleNotFoundError mid-run).
    setsid "$bin/ray" start --block --disable-usage-stats --temp-dir="$state/ray-$i" \
        --node-ip-address="$ip" --num-cpus="$cpus" --num-gpus=0 \
        --resources="{\"wsfm_node\": 1, \"wsfm_node_$i\": 1}" $(ports "$ip" $reserved) "$@" \
        > "$state/node-$i.log" 2>&1 < /dev/null &
    echo "$ip $!" >> "$state/pids"
}
wait_nodes() {  # wait_nodes COUNT: until COUNT nodes are alive (or 300 s)
    local probe='import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print(sum(n["Alive"] for n in ray.nodes()))'
    for _ in $(seq 150); do
        if [ "$("$bin/python" -c "$probe" "$address" 2>/dev/null | tail -1)" = "$1" ]; then
            return 0
        fi
        sleep 2
    done
    echo "the cluster did not reach $1 nodes: see $state/node-*.log; cluster/stop-local.sh" >&2
    exit 1
}

head=127.0.0.2
port=$(free_port $head)
address="$head:$port"
echo "$address" > "$state/address"
echo "http://$head:$dash" > "$state/dashboard"
client=$(free_port $head)
reserved="$port $dash $client"  # the head's own ports: its worker range must not hold them
start_node 0 $head --head --port="$port" --dashboard-host=$head --dashboard-port="$dash" \
    --include-dashboard=true --ray-client-server-port="$client"
reserved=""
wait_nodes 1
for i in $(seq "$workers"); do
    start_node "$i" "127.0.0.$((2 + i))" --address="$address"
done
wait_nodes $((workers + 1))

cat <<MSG
Ray is up: $((workers + 1)) nodes ($cpus CPU each), GCS $address, Jobs API http://$head:$dash
State, logs and pids: $state

  export RAY_AUTH_MODE=token     # every client sends the token in $token_file
  # submit a pipeline as a job (the artifact root must be a folder every node sees):
  .venv/bin/wsfm submit pipelines/toy2d.yaml --profile smoke --address http://$head:$dash \\
      --home "$here/wsfm-runs" --follow
  .venv/bin/wsfm jobs list --address http://$head:$dash
  # or drive it from here:
  .venv/bin/wsfm run pipelines/toy2d.yaml --profile smoke --address $address

Stop it with: cluster/stop-local.sh
MSG
