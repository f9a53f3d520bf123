#!/usr/bin/env bash
# deploy/quickstart.sh — drover's main job on one machine (README: `bash deploy/quickstart.sh`).
#
# What it does, in order (each a function below):
#   1. ensure_services   PostgreSQL, Redis, NATS+JetStream up (deploy/lib/services.sh)
#   2. build             cargo build --release -p drover-server -p routeros-sim, and the web UI
#                        (web/build.sh: npm ci from the lock, typed client, vite build)
#   3. start_fleet       drover-sim --devices $DEVICES --ready-file <run dir>/sim-ready.json
#   4. wait_fleet_ready  until the simulator writes {"ready":true,...} (bounded)
#   5. seed_tenant       drover demo seed: a "demo" tenant whose devices are the simulated
#                        routers (credentials stored encrypted, like any device's)
#   6. run_node          drover run in the foreground: migrations, the device actors (one
#                        persistent TLS session per router), events to NATS JetStream,
#                        samples to PostgreSQL, Prometheus metrics on 127.0.0.1:9464/metrics,
#                        and the web UI + API on http://127.0.0.1:8080 (HTTP_ADDR). It prints
#                        the URL and the first admin's one-time password.
#   7. report            device counts by status, from PostgreSQL
# Ctrl-C (or the end of --duration) stops everything; the simulator is always killed on exit.
#
# Usage: bash deploy/quickstart.sh [--devices N] [--duration SECS] [--interval SECS] [--no-build]
# Environment:
#   DEVICES            simulated devices (default 200)
#   DURATION           stop after this many seconds (default: run until Ctrl-C; 60 when CI=true)
#   INTERVAL           poll interval in seconds (default 10; the schema's minimum is 5)
#   SIM_ARGS           extra arguments for drover-sim (e.g. "--seed 7 --plain")
#   DATABASE_URL       default postgres://postgres@127.0.0.1:5432/drover
#   CREDENTIAL_ENCRYPTION_KEY  default: a key generated once into the run dir (demo only)
#   DROVER_RUN_DIR     where the ready file, CA, key and logs go (default ~/.cache/drover/quickstart)
#   HTTP_ADDR          where the web UI and API listen (default 127.0.0.1:8080)
#   ADMIN_EMAIL        the first super_admin (default admin@example.com); its one-time password
#                      is generated into the run dir and printed
#   CARGO_TARGET_DIR   default ~/.cache/drover/target (shared with deploy/test.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export DROVER_ROOT="$ROOT"
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}"
DEVICES="${DEVICES:-200}"
DURATION="${DURATION:-}"
INTERVAL="${INTERVAL:-10}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/drover}"
SIM_ARGS="${SIM_ARGS:-}"
RUN_DIR="${DROVER_RUN_DIR:-$HOME/.cache/drover/quickstart}"
READY_FILE="$RUN_DIR/sim-ready.json"
CA_FILE="$RUN_DIR/sim-ca.pem"
SIM_LOG="$RUN_DIR/sim.log"
SIM_BIN="${DROVER_SIM_BIN:-$CARGO_TARGET_DIR/release/drover-sim}"
DROVER_BIN="$CARGO_TARGET_DIR/release/drover"
BUILD=1
READY_TIMEOUT="${READY_TIMEOUT:-120}"
SIM_PID=

say() { printf '\n==> %s\n' "$*"; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

parse_args() {
    while (($# > 0)); do
        case $1 in
        --devices) DEVICES=$2; shift 2 ;;
        --devices=*) DEVICES=${1#*=}; shift ;;
        --duration) DURATION=$2; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --interval) INTERVAL=$2; shift 2 ;;
        --interval=*) INTERVAL=${1#*=}; shift ;;
        --no-build) BUILD=; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "quickstart: unknown argument '$1' (try --help)" >&2; exit 2 ;;
        esac
    done
    if [[ -z $DURATION && ${CI:-} == true ]]; then
        DURATION=60 # no one is there to press Ctrl-C
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $SIM_PID ]] && kill -0 "$SIM_PID" 2>/dev/null; then
        say "stopping the simulator (pid $SIM_PID)"
        kill -TERM "$SIM_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SIM_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    exit "$rc"
}

build() {
    say "building drover and the simulator: cargo build --release -p drover-server -p routeros-sim"
    cargo build --release -p drover-server --bin drover -p routeros-sim --bin drover-sim </dev/null
    say "building the web UI: web/build.sh"
    if ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    bash "$ROOT/web/build.sh" </dev/null
}

# The node's secrets, made once into the run dir (a demo; production sets them itself).
node_secrets() {
    local token_file="$RUN_DIR/token.key" admin_file="$RUN_DIR/first-admin-password"
    if [[ ! -s $token_file ]]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")
    fi
    if [[ ! -s $admin_file ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9' >"$admin_file")
    fi
    export DROVER_TOKEN_KEY
    DROVER_TOKEN_KEY=$(cat "$token_file")
    export FIRST_ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.com}"
    export FIRST_ADMIN_PASSWORD
    FIRST_ADMIN_PASSWORD=$(cat "$admin_file")
    export DROVER_HTTP_ADDR="${HTTP_ADDR:-127.0.0.1:8080}"
    export DROVER_WEB_DIR="$ROOT/web/dist"
}

announce_ui() {
    local url="http://$DROVER_HTTP_ADDR"
    (
        for _ in $(seq 1 300); do
            if curl -fsS "$url/health" >/dev/null 2>&1; then
                say "drover is up: open $url"
                echo "    sign in as $FIRST_ADMIN_EMAIL with the one-time password $FIRST_ADMIN_PASSWORD"
                echo "    (first sign-in: choose your password; the browser makes your Secret Key and Emergency Kit)"
                echo "    API: $url/api/docs (Swagger UI), $url/api/openapi.json"
                exit 0
            fi
            sleep 0.5
        done
    ) &
}

start_fleet() {
    mkdir -p "$RUN_DIR"
    rm -f "$READY_FILE"
    local args=(--devices "$DEVICES" --ready-file "$READY_FILE" --ca-out "$CA_FILE")
    # shellcheck disable=SC2206 # SIM_ARGS is a plain word list on purpose
    args+=($SIM_ARGS)
    say "starting $DEVICES simulated devices: drover-sim ${args[*]} (log: $SIM_LOG)"
    "$SIM_BIN" "${args[@]}" </dev/null >"$SIM_LOG" 2>&1 &
    SIM_PID=$!
}

# A field of the one-line JSON the simulator writes, e.g. ready_field control.
ready_field() {
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else str(v).lower() if isinstance(v,bool) else v)' \
        "$READY_FILE" "$1" 2>/dev/null
}

wait_fleet_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    until [[ -s $READY_FILE && $(ready_field ready) == true ]]; do
        if ! kill -0 "$SIM_PID" 2>/dev/null; then
            drover_err "the simulator exited before it was ready; last lines of $SIM_LOG:"
            tail -n 30 "$SIM_LOG" >&2 || true
            SIM_PID=
            return 1
        fi
        if ((SECONDS >= deadline)); then
            drover_err "the simulator was not ready within ${READY_TIMEOUT}s (see $SIM_LOG)"
            return 1
        fi
        sleep 0.2
    done
    say "fleet ready: $(ready_field devices) devices from $(ready_field first), control at $(ready_field control), CA $(ready_field ca)"
}

# A demo key, made once and kept with the run files; production sets its own.
credential_key() {
    if [[ -z ${CREDENTIAL_ENCRYPTION_KEY:-} ]]; then
        local key_file="$RUN_DIR/credential.key"
        if [[ ! -s $key_file ]]; then
            (umask 077 && head -c 32 /dev/urandom | base64 >"$key_file")
        fi
        CREDENTIAL_ENCRYPTION_KEY=$(cat "$key_file")
    fi
    export CREDENTIAL_ENCRYPTION_KEY
}

seed_tenant() {
    say "seeding the demo tenant with $(ready_field devices) devices (poll every ${INTERVAL}s)"
    "$DROVER_BIN" demo seed --tenant demo --devices "$(ready_field devices)" \
        --first "$(ready_field first)" --port "$(ready_field tls_port)" --interval "$INTERVAL" </dev/null
}

run_node() {
    local args=(run)
    say "running the drover node (Ctrl-C stops): metrics at http://127.0.0.1:9464/metrics," \
        "events on NATS subjects device.status.> and metrics.sample.>, fleet in PostgreSQL ($DATABASE_URL)"
    local rc=0
    if [[ -n $DURATION ]]; then
        timeout --signal=TERM --kill-after=60 "$DURATION" "$DROVER_BIN" "${args[@]}" </dev/null || rc=$?
        # timeout's 124 is the planned end of the run.
        if ((rc == 124)); then rc=0; fi
    else
        "$DROVER_BIN" "${args[@]}" </dev/null || rc=$?
    fi
    if ((rc == 130)); then rc=0; fi
    return $rc
}

report() {
    say "devices by status in PostgreSQL"
    psql "$DATABASE_URL" -At -c "SELECT status, count(*) FROM devices GROUP BY status ORDER BY status" \
        2>/dev/null || echo "(psql not available)"
}

main() {
    parse_args "$@"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    say "checking services"
    ensure_services
    if [[ -n $BUILD ]]; then
        build
    fi
    mkdir -p "$RUN_DIR"
    credential_key
    node_secrets
    start_fleet
    wait_fleet_ready
    seed_tenant
    announce_ui
    run_node
    report
    say "done"
}

main "$@"
