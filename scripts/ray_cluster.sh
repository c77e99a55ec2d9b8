#!/usr/bin/env bash
# A two-node Ray cluster on loopback, for trying the cluster flows on one machine (and for
# the tests that CI runs): a head node and a worker node, each its own `ray start` with its
# own temp folder, CPUs and a custom resource naming it.
#
#   scripts/ray_cluster.sh start         # head + worker; prints `export RAY_ADDRESS=...`
#   scripts/ray_cluster.sh env           # the address again
#   scripts/ray_cluster.sh status        # nodes, CPUs, resources
#   scripts/ray_cluster.sh kill-worker   # SIGKILL the worker node (a fault drill)
#   scripts/ray_cluster.sh stop
#
# Settings (environment): PY_FINANCE_RAY_PORT (the head's port; default per checkout:
# 30000 + 10 n, n from a checksum of the checkout's path, as scripts/services.sh),
# PY_FINANCE_RAY_CPUS (CPUs per node, 1), PY_FINANCE_RAY_DIR (state: pid files, logs and the
# nodes' temp folders; short, as Ray's socket paths must stay under 107 characters:
# /tmp/pf-ray-<n>). Each node runs as a process group of its own, so stopping this cluster
# leaves any other Ray on the machine alone (`ray stop` would stop them all).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SLOT=$(( $(printf '%s' "$ROOT" | cksum | cut -d' ' -f1) % 3000 ))
PORT=${PY_FINANCE_RAY_PORT:-$((30000 + 10 * SLOT))}
CPUS=${PY_FINANCE_RAY_CPUS:-1}
DIR=${PY_FINANCE_RAY_DIR:-/tmp/pf-ray-$SLOT}
BIN=${PY_FINANCE_VENV_BIN:-$ROOT/.venv/bin}
ADDRESS=127.0.0.1:$PORT

log() { echo "ray_cluster: $*" >&2; }
die() { echo "ray_cluster: error: $*" >&2; exit 1; }

alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

# Start one node in a new session (its own process group), blocking in the background.
start_node() {
  local name=$1; shift
  if alive "$name"; then log "$name node already running (pid $(cat "$DIR/$name.pid"))"; return; fi
  mkdir -p "$DIR/$name"
  RAY_USAGE_STATS_ENABLED=0 setsid "$BIN/ray" start --block --disable-usage-stats \
    --node-ip-address=127.0.0.1 --num-cpus="$CPUS" --temp-dir="$DIR/$name" \
    --resources="{\"node_$name\": 1}" "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

nodes_alive() {
  "$BIN/python" - "$ADDRESS" <<'PY' 2>/dev/null
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
}

wait_nodes() {
  local want=$1
  for _ in $(seq 1 90); do
    if [ "$(nodes_alive || echo 0)" -ge "$want" ]; then return; fi
    for name in head worker; do
      if [ -f "$DIR/$name.pid" ] && ! alive "$name"; then
        tail -n 30 "$DIR/$name.log" >&2 || true; die "the $name node exited"
      fi
    done
    sleep 1
  done
  tail -n 30 "$DIR/head.log" "$DIR/worker.log" >&2 || true
  die "the cluster did not reach $want nodes within 90 s"
}

start() {
  mkdir -p "$DIR"
  log "head node on $ADDRESS ($CPUS CPU, temp $DIR/head)"
  start_node head --head --port="$PORT" --include-dashboard=false \
    --ray-client-server-port=$((PORT + 1))
  wait_nodes 1
  log "worker node ($CPUS CPU, temp $DIR/worker)"
  start_node worker --address="$ADDRESS" --dashboard-agent-listen-port=$((PORT + 2)) \
    --metrics-export-port=$((PORT + 3)) --runtime-env-agent-port=$((PORT + 4))
  wait_nodes 2
  print_env
}

# SIGTERM a node's process group, then SIGKILL what is left.
stop_node() {
  local name=$1 signal=${2:-TERM}
  [ -f "$DIR/$name.pid" ] || return 0
  local pid; pid=$(cat "$DIR/$name.pid")
  kill "-$signal" -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$DIR/$name.pid"
  log "stopped the $name node"
}

print_env() { echo "export RAY_ADDRESS=$ADDRESS"; }

case "${1:-start}" in
  start) start ;;
  env) print_env ;;
  status)
    "$BIN/python" - "$ADDRESS" <<'PY'
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
for n in ray.nodes():
    print(n["NodeID"][:12], "alive" if n["Alive"] else "dead", n["Resources"])
PY
    ;;
  kill-worker) stop_node worker KILL ;;
  stop) stop_node worker; stop_node head ;;
  *) die "usage: scripts/ray_cluster.sh start|env|status|kill-worker|stop" ;;
esac
