#!/usr/bin/env bash
# deploy/quickstart.sh — drover's main job on one machine (README: `bash deploy/quickstart.sh`).
#
# What it does, in order (each a function below, so later stages can swap parts):
#   1. ensure_services   PostgreSQL, Redis, NATS+JetStream up (deploy/lib/services.sh)
#   2. build             cargo build --release -p routeros-sim   (and the poller, if present)
#   3. start_fleet       drover-sim --devices $DEVICES --ready-file <run dir>/sim-ready.json
#   4. wait_fleet_ready  until the simulator writes {"ready":true,...} (bounded)
#   5. poll_fleet        runs the fleet poller (routeros-client's example poll_fleet, given
#                        --first/--devices/--ca from the ready line) in the foreground; where
#                        that example does not exist, keeps the fleet up and says so
# Ctrl-C (or the end of --duration) stops everything; the simulator is always killed on exit.
#
# Usage: bash deploy/quickstart.sh [--devices N] [--duration SECS] [--no-build] [-- POLLER ARGS...]
#   POLLER ARGS go to poll_fleet after the derived ones (e.g. -- --interval 5).
# Environment:
#   DEVICES            simulated devices (default 200)
#   DURATION           stop after this many seconds (default: run until Ctrl-C; 60 when CI=true)
#   SIM_ARGS           extra arguments for drover-sim (e.g. "--seed 7 --plain")
#   DROVER_SIM_BIN     simulator binary (default $CARGO_TARGET_DIR/release/drover-sim)
#   DROVER_RUN_DIR     where the ready file, CA and logs go (default ~/.cache/drover/quickstart)
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
SIM_ARGS="${SIM_ARGS:-}"
RUN_DIR="${DROVER_RUN_DIR:-$HOME/.cache/drover/quickstart}"
READY_FILE="$RUN_DIR/sim-ready.json"
CA_FILE="$RUN_DIR/sim-ca.pem"
SIM_LOG="$RUN_DIR/sim.log"
SIM_BIN="${DROVER_SIM_BIN:-$CARGO_TARGET_DIR/release/drover-sim}"
BUILD=1
POLLER_SRC="$ROOT/actors/routeros-client/examples/poll_fleet.rs"
READY_TIMEOUT="${READY_TIMEOUT:-120}"
POLLER_ARGS=()
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
        --no-build) BUILD=; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; POLLER_ARGS=("$@"); break ;;
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
    say "building the simulator: cargo build --release -p routeros-sim"
    cargo build --release -p routeros-sim --bin drover-sim </dev/null
    if [[ -f $POLLER_SRC ]]; then
        say "building the fleet poller: cargo build --release -p routeros-client --example poll_fleet"
        cargo build --release -p routeros-client --example poll_fleet </dev/null
    fi
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

# Waits for the simulator (or the duration) when there is no poller yet.
hold_fleet() {
    if [[ -n $DURATION ]]; then
        echo "keeping the fleet up for ${DURATION}s"
        local deadline=$((SECONDS + DURATION))
        while ((SECONDS < deadline)) && kill -0 "$SIM_PID" 2>/dev/null; do
            sleep 1
        done
    else
        echo "keeping the fleet up until Ctrl-C"
        wait "$SIM_PID"
    fi
}

poll_fleet() {
    if [[ ! -f $POLLER_SRC ]]; then
        say "the fleet poller is not built yet (no actors/routeros-client/examples/poll_fleet.rs)"
        hold_fleet
        return 0
    fi
    # The poller learns the fleet from the simulator's ready line.
    local args=(--first "$(ready_field first)" --devices "$(ready_field devices)")
    local ca
    ca=$(ready_field ca)
    if [[ -n $ca && -f $ca ]]; then
        args+=(--ca "$ca")
    fi
    if [[ -n $DURATION ]]; then
        args+=(--duration "$DURATION")
    fi
    local cmd=(cargo run --release -p routeros-client --example poll_fleet -- "${args[@]}"
        "${POLLER_ARGS[@]}")
    say "polling the fleet (Ctrl-C stops): ${cmd[*]}"
    # No timeout around it: cargo may still compile first, and the poller stops itself after
    # --duration (or on Ctrl-C, which reaches it directly as it runs in the foreground).
    local rc=0
    "${cmd[@]}" </dev/null || rc=$?
    # Ctrl-C (130) is a normal way for the poller to end here.
    if ((rc == 130)); then
        rc=0
    fi
    return $rc
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
    start_fleet
    wait_fleet_ready
    poll_fleet
    say "done"
}

main "$@"
