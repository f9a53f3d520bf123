# shellcheck shell=bash
# deploy/lib/test-steps.sh — the steps of deploy/test.sh, one function each.
#
# Sourced (after deploy/lib/services.sh) by the child bash that deploy/test.sh's run_step
# starts for every step, with the repo root as the working directory and CARGO_TARGET_DIR,
# DROVER_ROOT and DROVER_LOG_DIR_STEP exported. A step returns 0 (pass), 75 (nothing to run:
# reported as SKIP) or anything else (fail).

# Prints a command, then runs it.
show() {
    printf '+ %s\n' "$*"
    "$@"
}

step_services() { ensure_services; }

step_tools() { ensure_rust_tools; }

step_fmt() {
    local color=auto
    [[ ${CARGO_TERM_COLOR:-} == never ]] && color=never
    local log="$DROVER_LOG_DIR_STEP/fmt.log" rc
    show cargo fmt --all --check -- --color="$color" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if ((rc != 0)); then
        echo "--- files rustfmt would change (fix with: cargo fmt --all):"
        sed -n 's/^Diff in \(.*\):[0-9]*:$/\1/p' "$log" | sed "s|^$DROVER_ROOT/||" | sort | uniq -c
    fi
    return "$rc"
}

# cargo_logged NAME CMD...: runs a cargo command, keeping its output in a log too; on failure,
# repeats just the error headlines and their locations so they are not lost in the scroll.
cargo_logged() {
    local log="$DROVER_LOG_DIR_STEP/$1.log" rc
    shift
    show "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if ((rc != 0)); then
        echo "--- errors (full output: $log):"
        grep -E '^error(\[[A-Za-z0-9_]+\])?: |^ *--> ' "$log" |
            grep -A1 '^error' | grep -v '^--$' | head -n 60
    fi
    return "$rc"
}

step_build() { cargo_logged build cargo build --workspace --all-targets; }

step_clippy() { cargo_logged clippy cargo clippy --workspace --all-targets -- -D warnings; }

# The multi-process cluster tests run after everything else and one at a time, with the
# machine to themselves: their timing assertions (failure detection, take-over, poll
# spacing) measure drover, not the other test binaries competing for two cores.
step_nextest() {
    local cfg=(--tool-config-file "drover:$DROVER_ROOT/deploy/nextest.toml") rc=0
    show cargo nextest run --workspace --no-fail-fast --no-tests=warn "${cfg[@]}" \
        -E 'not binary(cluster)' || rc=$?
    echo "--- the cluster tests, alone"
    # --workspace like the first run (one feature set, nothing rebuilt), filtered to them.
    show cargo nextest run --workspace -E 'binary(cluster)' --no-fail-fast --test-threads 1 \
        --no-tests=warn "${cfg[@]}" || rc=$?
    return "$rc"
}

step_doctest() { show cargo test --workspace --doc; }

step_fuzz() {
    local seconds=$1 dir=$2 target_dir=$3
    cd "$dir" || return 1
    mkdir -p corpus/decode_sentence
    local log="$DROVER_LOG_DIR_STEP/fuzz-decode_sentence.log"
    echo "building and fuzzing for ${seconds}s; full log: $log"
    local rc=0
    echo "+ (cd $dir && RUSTC_BOOTSTRAP=1 cargo fuzz run --target-dir $target_dir decode_sentence corpus/decode_sentence seeds/decode_sentence -- -max_total_time=$seconds -print_final_stats=1)"
    RUSTC_BOOTSTRAP=1 cargo fuzz run --target-dir "$target_dir" decode_sentence \
        corpus/decode_sentence seeds/decode_sentence -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    if ((rc == 0)); then
        # The last status line and the final stats: executions, exec/s, coverage.
        grep -E '^#[0-9]+' "$log" | tail -n 1
        grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log"
    else
        echo "--- fuzz failed (exit $rc); last 80 lines of $log:"
        tail -n 80 "$log"
    fi
    return $rc
}

step_interop() {
    if [[ ! -d tests/interop ]] || ! find tests/interop -name 'test_*.py' -o -name '*_test.py' |
        grep -q .; then
        echo "no Python tests under tests/interop"
        return 75
    fi
    show cargo build -p routeros-sim --bin drover-sim || return 1
    export DROVER_SIM_BIN="$CARGO_TARGET_DIR/debug/drover-sim"
    [[ -x $DROVER_SIM_BIN ]] || { echo "missing $DROVER_SIM_BIN"; return 1; }
    ensure_python_venv pytest || return 1
    local rc=0
    show .venv/bin/pytest -p no:cacheprovider -q tests/interop || rc=$?
    # pytest exits 5 when it collected no test: nothing to run, not a failure.
    ((rc == 5)) && return 75
    return $rc
}


# ---------------------------------------------------------------------------- HTTP API

# step_api: a real drover node (deploy/lib/api-node.sh) with 10 simulated routers; Python
# srptools logs in over HTTP (tests/api), then schemathesis fuzzes every operation of
# /api/openapi.json as the super_admin and must find no server error and no response that
# breaks the spec.
step_api() {
    # shellcheck source=deploy/lib/api-node.sh
    source "$DROVER_ROOT/deploy/lib/api-node.sh"
    ensure_python_venv || return 1
    trap stop_api_node EXIT
    start_api_node 10 || return 1
    local login rc=0
    login=$(.venv/bin/python tests/api/login.py) || { echo "login with srptools failed"; return 1; }
    DROVER_API_ADMIN_SRP_PASSWORD=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["password"])' "$login")
    export DROVER_API_ADMIN_SRP_PASSWORD
    local token
    token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$login")
    show .venv/bin/pytest -p no:cacheprovider -q tests/api || rc=1
    # Operations that end the caller's own session or stream forever are tested elsewhere.
    # Not through `show`: the logged command line must not carry the bearer token.
    echo "+ .venv/bin/schemathesis run $DROVER_API_URL/api/openapi.json --header 'Authorization: Bearer ***' …"
    .venv/bin/schemathesis run "$DROVER_API_URL/api/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
        --exclude-operation-id logout --exclude-operation-id change_password \
        --exclude-operation-id sse_subscribe \
        --phases examples,fuzzing,stateful \
        --max-examples "${DROVER_SCHEMATHESIS_EXAMPLES:-25}" --workers 2 --seed 7 \
        --max-time "${DROVER_SCHEMATHESIS_SECONDS:-240}" \
        --report-dir "$API_NODE_LOG_DIR/schemathesis" || rc=1
    if ((rc != 0)); then
        echo "--- last lines of the node's log ($API_NODE_LOG_DIR/drover.log)"
        tail -n 40 "$API_NODE_LOG_DIR/drover.log"
    fi
    return $rc
}

# ---------------------------------------------------------------------------- web UI

# ensure_web_tools: Node.js + npm and Debian's Chromium (browser downloads do not work here).
ensure_web_tools() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm || return 1
    fi
    if [[ ! -x ${CHROMIUM:-/usr/bin/chromium} ]]; then
        apt_install chromium || return 1
    fi
}

# step_web: build the UI (typed client from api/openapi.json; the build fails on a breaking
# spec change and on an initial bundle over 300 KB gzipped), run its unit tests, then drive it
# in headless Chromium against a real node with 20 simulated routers (web/e2e/run.mjs).
step_web() {
    ensure_web_tools || return 1
    show bash web/build.sh --test || return 1
    # shellcheck source=deploy/lib/api-node.sh
    source "$DROVER_ROOT/deploy/lib/api-node.sh"
    trap stop_api_node EXIT
    start_api_node 20 || return 1
    ensure_python_venv || return 1
    # A real tenant of 10,000 devices (offline: closed loopback ports) for the fleet table's
    # performance check, made through the API by a second super_admin.
    local perf_email="perf-$RANDOM@example.com" perf_password="perf-temporary-password" perf_tenant
    DATABASE_URL=$DROVER_API_DB_URL FIRST_ADMIN_PASSWORD=$perf_password \
        "${CARGO_TARGET_DIR:-$DROVER_ROOT/target}/debug/drover" admin create --email "$perf_email" \
        </dev/null || return 1
    perf_tenant=$(PERF_ADMIN_EMAIL=$perf_email PERF_ADMIN_PASSWORD=$perf_password \
        .venv/bin/python tests/api/make_perf_tenant.py) || { echo "cannot make the perf tenant"; return 1; }
    drover_log "perf tenant $perf_tenant with ${PERF_ROWS:-10000} devices"
    local rc=0
    DROVER_URL=$DROVER_API_URL \
        PERF_TENANT_ID=$perf_tenant \
        FIRST_ADMIN_EMAIL=$DROVER_API_ADMIN_EMAIL \
        FIRST_ADMIN_PASSWORD=$DROVER_API_ADMIN_PASSWORD \
        E2E_ARTIFACTS="$API_NODE_LOG_DIR/web-e2e" \
        show node web/e2e/run.mjs || rc=$?
    if ((rc != 0)); then
        echo "--- screenshots and figures in $API_NODE_LOG_DIR/web-e2e; last lines of the node's log:"
        tail -n 30 "$API_NODE_LOG_DIR/drover.log"
    fi
    return $rc
}
