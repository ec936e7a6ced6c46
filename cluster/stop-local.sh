#!/usr/bin/env bash
# Stop the cluster that cluster/start-local.sh started: exactly the `ray start --block`
# processes whose pids it recorded (each with its process group), worker nodes first, then
# the head. Never `ray stop`: that would stop every Ray on the machine.
set -euo pipefail
state="${WSFM_CLUSTER_STATE:-/tmp/wsfm-local-cluster}"
if [ ! -s "$state/pids" ]; then
    echo "no local cluster recorded in $state" >&2
    exit 0
fi
alive() { kill -0 -- "-$1" 2>/dev/null; }
tac "$state/pids" | while read -r ip pid; do
    if ! alive "$pid"; then
        echo "node $ip (pid $pid): already stopped"
        continue
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 60); do alive "$pid" || break; sleep 1; done
    if alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || true
        echo "node $ip (pid $pid): killed after 60 s"
    else
        echo "node $ip (pid $pid): stopped"
    fi
done
rm -f "$state/pids"
