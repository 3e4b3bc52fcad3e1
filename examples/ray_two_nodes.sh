#!/usr/bin/env bash
# A two-node Ray cluster on one machine, bound to loopback, and an IMPALA run on it.
#
#   bash examples/ray_two_nodes.sh                      # cartpole-impala, 2 actors
#   bash examples/ray_two_nodes.sh --set algo.num_workers=4 --set run.total_steps=100000
#
# Both nodes are `ray start --block` processes in the background of this script. At the end
# (or on Ctrl-C) the script sends them SIGTERM, and each stops exactly the Ray processes it
# started; other Ray clusters on the machine are left alone (unlike `ray stop`).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}              # the environment with actorcritic[ray] installed
PORT=${PORT:-6390}                 # GCS port of the head node
RUN_DIR=${RUN_DIR:-runs/ray-two-nodes}
HEAD="127.0.0.1:${PORT}"

export RAY_USAGE_STATS_ENABLED=0   # nothing leaves the machine
export RAY_AUTH_MODE=token         # every request needs the token (Ray >= 2.52)
if ! "$BIN/ray" get-auth-token >/dev/null 2>&1; then
    "$BIN/ray" get-auth-token --generate >/dev/null   # written to ~/.ray/auth_token
fi
chmod 600 ~/.ray/auth_token 2>/dev/null || true

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Forget this cluster as "the last one started" (what `--ray-address auto` would find).
    local last=/tmp/ray/ray_current_cluster
    if [[ -f $last && $(cat "$last") == *":${PORT}" ]]; then rm -f "$last"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_nodes() {  # wait until the cluster has $1 alive nodes
    for _ in $(seq 120); do
        if "$BIN/python" - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, ray
ray.init(address="auto", logging_level="error")
alive = sum(1 for n in ray.nodes() if n["Alive"])
sys.exit(0 if alive >= int(sys.argv[1]) else 1)
PY
        sleep 1
    done
    echo "the Ray cluster did not come up with $1 nodes" >&2
    return 1
}

# Head node: GCS on 127.0.0.1:$PORT, no dashboard, one CPU for one actor.
"$BIN/ray" start --head --block --node-ip-address=127.0.0.1 --port="$PORT" \
    --num-cpus=1 --include-dashboard=false --disable-usage-stats &
pids+=($!)
wait_for_nodes 1

# Worker node: joins the head over loopback; its CPU slot takes the second actor.
"$BIN/ray" start --block --address="$HEAD" --node-ip-address=127.0.0.1 --num-cpus=1 &
pids+=($!)
wait_for_nodes 2

# The driver (learner) joins the cluster; the actors are placed on both nodes.
"$BIN/actorcritic" train cartpole-impala --set run.backend=ray --ray-address auto \
    --run-dir "$RUN_DIR" --overwrite "$@"
