#!/usr/bin/env bash
# Scale-out services on loopback: PostgreSQL (databases `mlflow` and `optuna`) and an MLflow
# tracking server backed by it. Idempotent; installs PostgreSQL with apt-get when missing.
#
#   scripts/services.sh start        # install if needed, init, start PostgreSQL, create DBs
#   scripts/services.sh mlflow       # also start `mlflow server` on PostgreSQL (port 5001)
#   scripts/services.sh env          # print the URLs as `export` lines
#   scripts/services.sh status | stop
#
# Settings (environment): PY_FINANCE_PG_PORT, PY_FINANCE_MLFLOW_PORT, PY_FINANCE_PGDATA,
# PY_FINANCE_SERVICES_DIR (outputs/services: MLflow artifacts, logs, pid file). The defaults
# are per checkout, so two checkouts on one machine never share a database or a port: ports
# 20000 + 2 n and 20001 + 2 n and data folder /var/tmp/py-finance-pg-$USER-<n> with n (0..4999)
# from a checksum of the checkout's path (`scripts/services.sh env` prints them).
# Role/password pyfinance/pyfinance: a loopback development setup; see docs/platform.md for a
# cluster. URLs name the psycopg2 driver (SQLAlchemy 2.1 defaults `postgresql://` to psycopg 3).
set -euo pipefail
# runuser, useradd and PostgreSQL helpers live in the sbin folders, which a minimal PATH (cron,
# `env -i`) leaves out.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# This checkout's slot: its ports and data folder unless the environment names them.
SLOT=$(( $(printf '%s' "$ROOT" | cksum | cut -d' ' -f1) % 5000 ))
PORT=${PY_FINANCE_PG_PORT:-$((20000 + 2 * SLOT))}
PGDATA=${PY_FINANCE_PGDATA:-/var/tmp/py-finance-pg-$(id -un)-$SLOT}
MLFLOW_PORT=${PY_FINANCE_MLFLOW_PORT:-$((20001 + 2 * SLOT))}
SERVICES=${PY_FINANCE_SERVICES_DIR:-$ROOT/outputs/services}
ROLE=pyfinance
PASSWORD=pyfinance
BIN=${PY_FINANCE_VENV_BIN:-$ROOT/.venv/bin}

log() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  return 1
}

install_postgres() {
  if pg_bindir >/dev/null; then return; fi
  log "PostgreSQL not found: installing it with apt-get"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "PostgreSQL is missing and installing it needs root (or sudo)"
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is missing and apt-get is not available: install PostgreSQL (>= 13) yourself"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || die "apt-get update failed"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
    || die "apt-get install postgresql failed"
  pg_bindir >/dev/null || die "PostgreSQL was installed but initdb is not found"
}

# Run a PostgreSQL server binary as the owner of the data directory (initdb refuses root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

psql_admin() {
  local bindir; bindir=$(pg_bindir)
  as_owner "$bindir/psql" -h "$PGDATA" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

start_postgres() {
  install_postgres
  local bindir; bindir=$(pg_bindir)
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    log "initialising $PGDATA"
    mkdir -p "$PGDATA"
    if [ "$(id -u)" -eq 0 ]; then as_owner true; chown postgres: "$PGDATA"; fi
    chmod 700 "$PGDATA"
    as_owner "$bindir/initdb" -D "$PGDATA" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >"$PGDATA.initdb.log" 2>&1 \
      || { cat "$PGDATA.initdb.log" >&2; die "initdb failed"; }
  fi
  if as_owner "$bindir/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    log "PostgreSQL already running on 127.0.0.1:$PORT"
  else
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    as_owner "$bindir/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDATA" start >/dev/null \
      || { tail -n 30 "$PGDATA/server.log" >&2 || true; die "PostgreSQL did not start"; }
  fi
  if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'")" != "1" ]; then
    psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >/dev/null
  fi
  for db in mlflow optuna; do
    if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$db'")" != "1" ]; then
      psql_admin -c "CREATE DATABASE $db OWNER $ROLE" >/dev/null
      log "created database $db"
    fi
  done
}

url() { echo "postgresql+psycopg2://$ROLE:$PASSWORD@127.0.0.1:$PORT/$1"; }

# Create Optuna's tables once: workers that start together on an empty database would race
# to create them (each study is then created with `optuna create-study`, see docs/platform.md).
init_optuna() {
  "$BIN/python" - "$(url optuna)" <<'PY' || die "cannot initialise the Optuna schema"
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
optuna.storages.RDBStorage(sys.argv[1])
PY
}

start_mlflow() {
  mkdir -p "$SERVICES"
  local pidfile="$SERVICES/mlflow.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "MLflow server already running (pid $(cat "$pidfile")) on http://127.0.0.1:$MLFLOW_PORT"
    return
  fi
  log "starting MLflow server on http://127.0.0.1:$MLFLOW_PORT (backend $(url mlflow))"
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup "$BIN/mlflow" server \
    --backend-store-uri "$(url mlflow)" \
    --serve-artifacts --artifacts-destination "$SERVICES/mlartifacts" \
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    >"$SERVICES/mlflow.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if "$BIN/python" - "$MLFLOW_PORT" <<'PY' 2>/dev/null; then return; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2).read()
PY
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -n 40 "$SERVICES/mlflow.log" >&2; die "MLflow server exited"; }
    sleep 1
  done
  tail -n 40 "$SERVICES/mlflow.log" >&2
  die "MLflow server did not answer within 120 s"
}

stop_all() {
  local pidfile="$SERVICES/mlflow.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    log "stopped MLflow server"
  fi
  local bindir
  if bindir=$(pg_bindir) && [ -s "$PGDATA/PG_VERSION" ]; then
    as_owner "$bindir/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 && log "stopped PostgreSQL" || true
  fi
}

print_env() {
  echo "export PY_FINANCE_MLFLOW_DB_URL=$(url mlflow)"
  echo "export PY_FINANCE_OPTUNA_STORAGE=$(url optuna)"
  echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT"
}

case "${1:-start}" in
  start) start_postgres; init_optuna; print_env ;;
  mlflow) start_postgres; init_optuna; start_mlflow; print_env ;;
  env) print_env ;;
  status)
    bindir=$(pg_bindir) || die "PostgreSQL is not installed"
    as_owner "$bindir/pg_ctl" -D "$PGDATA" status || true ;;
  stop) stop_all ;;
  *) die "usage: scripts/services.sh start|mlflow|env|status|stop" ;;
esac
