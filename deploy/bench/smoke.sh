#!/usr/bin/env bash
# deploy/bench/smoke.sh — the benchmark harness's smoke runs, one after the other, so that no
# part of `drover-bench` can rot: fleet (simulator + in-process node + baseline), idle (a real
# `drover run` with no devices), api (the fleet list under load), sse (event fan-out to SSE
# clients in two processes) and cluster (two clustered `drover run` nodes). Each checks that
# the harness works, never the targets (benches/RESULTS.md has the real figures).
#
# Uses the debug binaries of the test command's build step ($CARGO_TARGET_DIR/debug, or
# DROVER_BENCH_BIN_DIR) and the PostgreSQL, Redis and NATS already running on their standard
# ports. Runs every smoke even when one fails; exits 1 if any failed.
set -uo pipefail

ROOT=${DROVER_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BIN_DIR=${DROVER_BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}
BENCH="$BIN_DIR/drover-bench"
export DROVER_BIN="$BIN_DIR/drover" DROVER_SIM_BIN="$BIN_DIR/drover-sim"

for bin in "$BENCH" "$DROVER_BIN" "$DROVER_SIM_BIN"; do
    if [[ ! -x $bin ]]; then
        echo "missing $bin: build the workspace first (cargo build --workspace --all-targets)"
        exit 1
    fi
done

names=() results=() secs=()
smoke() { # smoke NAME ARGS...: runs drover-bench ARGS --smoke, records the outcome
    local name=$1
    shift
    printf '\n--- bench smoke: %s\n+ drover-bench %s --smoke\n' "$name" "$*"
    local start=$SECONDS rc=0
    "$BENCH" "$@" --smoke >/dev/null || rc=$?
    names+=("$name")
    secs+=($((SECONDS - start)))
    if ((rc == 0)); then results+=(PASS); else results+=("FAIL (exit $rc)"); fi
}

smoke fleet fleet --devices 1000 --interval 5s --duration 20s --base 127.41.0.1
smoke idle idle --duration 5s
smoke api api --devices 2000 --connections 64 --duration 10s --warmup 2s
smoke sse sse --clients 200 --clients-per-process 100 --devices 2 --interval 5s \
    --flap-period 12s --changes 3 --max-duration 90s --base 127.43.0.1
smoke cluster cluster --nodes 2 --devices 300 --interval 5s --duration 15s \
    --online-timeout 120s --test-timing --base 127.44.0.1

failed=0
printf '\n--- bench smoke summary\n'
for i in "${!names[@]}"; do
    printf '%-8s %-16s %4ss\n' "${names[$i]}" "${results[$i]}" "${secs[$i]}"
    [[ ${results[$i]} == PASS ]] || failed=1
done
exit "$failed"
