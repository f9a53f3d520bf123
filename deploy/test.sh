#!/usr/bin/env bash
# deploy/test.sh — THE test command for drover (CI runs it through .ci/run).
#
#   bash deploy/test.sh            # everything, as CI does
#   bash deploy/test.sh --help     # this text
#   bash deploy/test.sh --no-fuzz --skip=interop --fuzz-seconds=N   # narrower runs
#
# Steps, each timed and reported in a summary table at the end:
#   services   PostgreSQL, Redis, NATS+JetStream up on their standard ports (deploy/lib/services.sh)
#   tools      cargo-nextest and cargo-fuzz present (installed with cargo install if missing)
#   fmt        cargo fmt --all --check
#   build      cargo build --workspace --all-targets   (if this fails, clippy/nextest/doctest skip)
#   clippy     cargo clippy --workspace --all-targets -- -D warnings
#   nextest    cargo nextest run --workspace --no-fail-fast (the cluster tests last, alone)
#   doctest    cargo test --workspace --doc             (nextest does not run doctests)
#   fuzz       cargo fuzz run decode_sentence for $DROVER_FUZZ_SECONDS (default 60 s)
#   interop    .venv/bin/pytest tests/interop against target/debug/drover-sim
#   api        a real drover node + 10 simulated routers: srptools logs in over HTTP (tests/api),
#              schemathesis fuzzes every operation of /api/openapi.json
#   web        web/build.sh (npm ci, typed client from api/openapi.json, vite build, size budget),
#              Vitest, then web/e2e/run.mjs in headless Chromium against a real node
#   bench      deploy/bench/smoke.sh: smokes of drover-bench fleet, idle, api, sse and cluster, ~2 min (checks the harnesses, not targets)
#
# A failing step does not stop the run: every step runs and every failure is listed, except
# that a broken build skips the steps that need it. The last line is exactly
# `N passed, M failed` (steps, not tests); the exit status is non-zero if any step failed.
# Safe with CI=true and no stdin: nothing prompts, every step reads /dev/null.
#
# Environment:
#   CARGO_TARGET_DIR        default ~/.cache/drover/target (kept between runs on one machine)
#   DROVER_FUZZ_SECONDS     fuzz smoke duration, default 60; 0 skips the fuzz step
#   DROVER_SKIP             comma-separated step names to skip, e.g. DROVER_SKIP=fuzz,interop
#   DROVER_LOG_DIR          where step logs go (default ~/.cache/drover/logs/test-<time>)
set -uo pipefail # no -e: failures are collected per step

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
export DROVER_ROOT="$ROOT"
# shellcheck source=deploy/lib/services.sh
source "$ROOT/deploy/lib/services.sh"

usage() {
    sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# The whole script body is one function, read in full before it runs, so editing this file
# during a run cannot change what the run does.
main() {

    for arg in "$@"; do
        case $arg in
        -h | --help)
            usage
            exit 0
            ;;
        --no-fuzz) DROVER_SKIP="${DROVER_SKIP:-},fuzz" ;;
        --fuzz-seconds=*) DROVER_FUZZ_SECONDS=${arg#*=} ;;
        --skip=*) DROVER_SKIP="${DROVER_SKIP:-},${arg#*=}" ;;
        *)
            echo "deploy/test.sh: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
        esac
    done

    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/drover/target}"
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-$([[ -t 1 ]] && echo auto || echo never)}"
    FUZZ_SECONDS="${DROVER_FUZZ_SECONDS:-60}"
    FUZZ_DIR="$ROOT/actors/routeros-proto/fuzz"
    FUZZ_TARGET_DIR="${DROVER_FUZZ_TARGET_DIR:-$(dirname "$CARGO_TARGET_DIR")/fuzz-target}"
    SKIP=",${DROVER_SKIP:-},"
    LOG_DIR="${DROVER_LOG_DIR:-$HOME/.cache/drover/logs/test-$(date +%Y%m%d-%H%M%S)}"
    mkdir -p "$CARGO_TARGET_DIR" "$LOG_DIR"

    # ---------------------------------------------------------------------------- step runner

    STEP_NAMES=()
    STEP_STATUS=()
    STEP_SECS=()
    STEP_NOTE=()
    CURRENT_PID=
    INTERRUPTED=

    # shellcheck disable=SC2317 # called by the trap
    on_signal() {
        INTERRUPTED=1
        if [[ -n $CURRENT_PID ]]; then
            kill -TERM -- "-$CURRENT_PID" 2>/dev/null || kill -TERM "$CURRENT_PID" 2>/dev/null
        fi
    }
    trap on_signal INT TERM

    fmt_secs() {
        local ms=$1
        if ((ms >= 60000)); then
            printf '%dm%02ds' $((ms / 60000)) $((ms % 60000 / 1000))
        else
            printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
        fi
    }

    now_ms() { date +%s%3N; }

    record() { # record NAME STATUS MS NOTE
        STEP_NAMES+=("$1")
        STEP_STATUS+=("$2")
        STEP_SECS+=("$3")
        STEP_NOTE+=("${4:-}")
    }

    skip_step() { # skip_step NAME WHY
        printf '\n=== %s: SKIPPED (%s)\n' "$1" "$2"
        record "$1" SKIP 0 "$2"
    }

    # run_step NAME TIMEOUT_SECS CMD...: runs CMD (a command or a step_* function from
    # deploy/lib/test-steps.sh) in a child bash, in its
    # own process group with stdin from /dev/null, bounded by TIMEOUT_SECS. Sets STEP_RC.
    # Exit status 75 from CMD means "nothing to do": recorded as SKIP, not as a failure.
    STEP_RC=0
    run_step() {
        local name=$1 limit=$2
        shift 2
        if [[ $SKIP == *",$name,"* ]]; then
            skip_step "$name" "DROVER_SKIP"
            STEP_RC=0
            return 0
        fi
        if [[ -n $INTERRUPTED ]]; then
            skip_step "$name" "interrupted"
            STEP_RC=130
            return 0
        fi
        printf '\n=== %s\n' "$name"
        local start end rc
        start=$(now_ms)
        # setsid gives the step its own process group, so a timeout or Ctrl-C ends all of it.
        # shellcheck disable=SC2016 # expanded by the child bash
        setsid timeout --kill-after=30 "$limit" bash -c '
            source "$DROVER_ROOT/deploy/lib/services.sh"
            source "$DROVER_ROOT/deploy/lib/test-steps.sh"
            "$@"
        ' "step-$name" "$@" </dev/null &
        CURRENT_PID=$!
        wait "$CURRENT_PID"
        rc=$?
        # A signal interrupts `wait`; wait again for the step to finish its cleanup.
        while kill -0 "$CURRENT_PID" 2>/dev/null; do
            wait "$CURRENT_PID"
            rc=$?
        done
        CURRENT_PID=
        end=$(now_ms)
        local ms=$((end - start)) status note=
        case $rc in
        0) status=PASS ;;
        75) status=SKIP note="nothing to run" ;;
        124 | 137) status=FAIL note="timed out after ${limit}s" ;;
        *) status=FAIL note="exit $rc" ;;
        esac
        [[ -n $INTERRUPTED && $rc != 0 ]] && status=FAIL note="interrupted"
        printf '=== %s: %s in %s%s\n' "$name" "$status" "$(fmt_secs "$ms")" "${note:+ ($note)}"
        record "$name" "$status" "$ms" "$note"
        STEP_RC=$rc
    }

    # ---------------------------------------------------------------------------- main

    export DROVER_LOG_DIR_STEP="$LOG_DIR"
    RUN_START=$(now_ms)

    echo "drover test run: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(nproc) cores)"
    echo "  repo:        $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit'))"
    echo "  target dir:  $CARGO_TARGET_DIR"
    echo "  fuzz dir:    $FUZZ_TARGET_DIR (${FUZZ_SECONDS}s smoke)"
    echo "  logs:        $LOG_DIR"
    echo "  CI:          ${CI:-false}"
    echo "  toolchain:   $(rustc --version 2>/dev/null || echo 'rustc not found')"

    run_step services 900 step_services
    run_step tools 1800 step_tools
    TOOLS_OK=$STEP_RC
    run_step fmt 300 step_fmt
    run_step build 2400 step_build
    BUILD_OK=$STEP_RC

    if ((BUILD_OK != 0)); then
        skip_step clippy "build broken"
        skip_step nextest "build broken"
        skip_step doctest "build broken"
    else
        run_step clippy 1800 step_clippy
        run_step nextest 1800 step_nextest
        run_step doctest 900 step_doctest
    fi

    # The fuzz crate builds routeros-proto on its own, so it still runs when another crate broke.
    if ((FUZZ_SECONDS <= 0)); then
        skip_step fuzz "DROVER_FUZZ_SECONDS=0"
    elif ((TOOLS_OK != 0)) && ! cargo fuzz --version >/dev/null 2>&1; then
        printf '\n=== fuzz: FAIL (cargo-fuzz missing)\n'
        record fuzz FAIL 0 "cargo-fuzz missing"
    else
        run_step fuzz $((FUZZ_SECONDS + 900)) step_fuzz "$FUZZ_SECONDS" "$FUZZ_DIR" "$FUZZ_TARGET_DIR"
    fi

    # interop builds only drover-sim, so like fuzz it still runs when another crate broke.
    run_step interop 1200 step_interop

    # The HTTP contract against a real node: srptools over HTTP and schemathesis.
    if ((BUILD_OK != 0)); then
        skip_step api "build broken"
    else
        run_step api 1200 step_api
    fi

    # The web UI: build (typed against api/openapi.json), unit tests, and headless Chromium
    # against a real node with a simulated fleet.
    if ((BUILD_OK != 0)); then
        skip_step web "build broken"
    else
        run_step web 2400 step_web
    fi

    # The benchmark harnesses' smoke runs (debug binaries from the build step): they must keep working.
    if ((BUILD_OK != 0)); then
        skip_step bench "build broken"
    else
        run_step bench 600 bash "$DROVER_ROOT/deploy/bench/smoke.sh"
    fi

    # ---------------------------------------------------------------------------- summary

    passed=0 failed=0 skipped=0
    echo
    echo "==================== drover test summary ===================="
    printf '%-10s %-6s %9s  %s\n' STEP RESULT TIME NOTE
    for i in "${!STEP_NAMES[@]}"; do
        case ${STEP_STATUS[$i]} in
        PASS) passed=$((passed + 1)) ;;
        FAIL) failed=$((failed + 1)) ;;
        SKIP) skipped=$((skipped + 1)) ;;
        esac
        printf '%-10s %-6s %9s  %s\n' "${STEP_NAMES[$i]}" "${STEP_STATUS[$i]}" \
            "$(fmt_secs "${STEP_SECS[$i]}")" "${STEP_NOTE[$i]}"
    done
    printf '%-10s %-6s %9s  %s\n' total "" "$(fmt_secs $(($(now_ms) - RUN_START)))" \
        "$skipped skipped; logs in $LOG_DIR"
    echo "============================================================="
    if ((failed > 0)); then
        failed_names=()
        for i in "${!STEP_NAMES[@]}"; do
            [[ ${STEP_STATUS[$i]} == FAIL ]] && failed_names+=("${STEP_NAMES[$i]}")
        done
        echo "failed steps: ${failed_names[*]} (scroll up to '=== <step>:' for each one's output)"
    fi
    echo "$passed passed, $failed failed"
    if [[ -n $INTERRUPTED ]]; then
        exit 130
    fi
    ((failed == 0))
}

main "$@"
exit $?
