# deploy/lib/api-node.sh — start and stop a real drover node (HTTP API + web UI) on a fresh
# database with a simulated fleet, for the HTTP-level tests (tests/api, schemathesis) and the
# browser tests (web/e2e). Sourced by deploy/lib/test-steps.sh; needs deploy/lib/services.sh.
#
# start_api_node [DEVICES] [ROLES]
#   builds drover + drover-sim (debug, into $CARGO_TARGET_DIR), starts DEVICES simulated
#   routers (default 20; 0: none), creates database drover_apitest_<random>, seeds a "demo"
#   tenant with the fleet (poll every 5 s), and runs `drover run` with the HTTP API on a free
#   port and a bootstrap super_admin. ROLES is DROVER_ROLES (default both; `api` polls
#   nothing). Exports DROVER_API_URL, DROVER_API_ADMIN_EMAIL, DROVER_API_ADMIN_PASSWORD,
#   DROVER_API_DB_URL and API_NODE_LOG_DIR.
# stop_api_node
#   stops the node and the simulator and drops the database.

API_NODE_PID=
API_SIM_PID=

api_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_api_node() {
    local devices=${1:-20} roles=${2:-both}
    local target=${CARGO_TARGET_DIR:-$DROVER_ROOT/target}
    local drover="$target/debug/drover" sim="$target/debug/drover-sim"
    API_NODE_LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/drover-api-node.XXXXXX")
    export API_NODE_LOG_DIR
    cargo build -q -p drover-server --bin drover -p routeros-sim --bin drover-sim </dev/null || return 1

    local db="drover_apitest_$(date +%s)_$RANDOM"
    export DROVER_API_DB_URL="postgres://postgres@127.0.0.1:5432/$db"
    export CREDENTIAL_ENCRYPTION_KEY=${CREDENTIAL_ENCRYPTION_KEY:-$(head -c 32 /dev/urandom | base64)}
    export DROVER_API_ADMIN_EMAIL="admin-$RANDOM@example.com"
    export DROVER_API_ADMIN_PASSWORD="first-$(head -c 12 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
    DATABASE_URL=$DROVER_API_DB_URL "$drover" migrate </dev/null >"$API_NODE_LOG_DIR/migrate.log" 2>&1 || {
        cat "$API_NODE_LOG_DIR/migrate.log"
        return 1
    }

    if ((devices > 0)); then
        local ready="$API_NODE_LOG_DIR/sim-ready.json"
        "$sim" --devices "$devices" --ready-file "$ready" --ca-out "$API_NODE_LOG_DIR/sim-ca.pem" \
            </dev/null >"$API_NODE_LOG_DIR/sim.log" 2>&1 &
        API_SIM_PID=$!
        local i
        for i in $(seq 1 300); do
            [[ -s $ready ]] && grep -q '"ready": *true' "$ready" && break
            kill -0 "$API_SIM_PID" 2>/dev/null || { tail -n 20 "$API_NODE_LOG_DIR/sim.log"; return 1; }
            sleep 0.2
        done
        local field
        field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ready" "$1"; }
        DATABASE_URL=$DROVER_API_DB_URL "$drover" demo seed --tenant demo --devices "$(field devices)" \
            --first "$(field first)" --port "$(field tls_port)" --interval 5 \
            </dev/null >"$API_NODE_LOG_DIR/seed.log" 2>&1 || {
            cat "$API_NODE_LOG_DIR/seed.log"
            return 1
        }
    fi

    local http metrics
    http=$(api_free_port)
    metrics=$(api_free_port)
    export DROVER_API_URL="http://127.0.0.1:$http"
    local web_dir="$DROVER_ROOT/web/dist"
    DATABASE_URL=$DROVER_API_DB_URL \
        DROVER_CREATE_DATABASE=false \
        DROVER_HTTP_ADDR="127.0.0.1:$http" \
        DROVER_METRICS_ADDR="127.0.0.1:$metrics" \
        DROVER_WEB_DIR="$web_dir" \
        DROVER_ROLES="$roles" \
        DROVER_REDIS_PREFIX="$db:" \
        DROVER_AUTH_RATE_PER_MINUTE="${DROVER_AUTH_RATE_PER_MINUTE:-10000}" \
        DROVER_CLUSTER_NAME="$db" \
        FIRST_ADMIN_EMAIL=$DROVER_API_ADMIN_EMAIL \
        FIRST_ADMIN_PASSWORD=$DROVER_API_ADMIN_PASSWORD \
        DROVER_LOG=${DROVER_LOG:-info} \
        setsid "$drover" run --status-every-secs 0 </dev/null >"$API_NODE_LOG_DIR/drover.log" 2>&1 &
    API_NODE_PID=$!
    for i in $(seq 1 300); do
        if curl -fsS "$DROVER_API_URL/health/ready" >/dev/null 2>&1; then
            drover_log "drover node ready at $DROVER_API_URL (logs: $API_NODE_LOG_DIR)"
            return 0
        fi
        kill -0 "$API_NODE_PID" 2>/dev/null || break
        sleep 0.2
    done
    echo "the drover node did not become ready; last lines of its log:"
    tail -n 40 "$API_NODE_LOG_DIR/drover.log"
    return 1
}

stop_api_node() {
    local pid
    for pid in $API_NODE_PID $API_SIM_PID; do
        [[ -n $pid ]] || continue
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    API_NODE_PID=
    API_SIM_PID=
    if [[ -n ${DROVER_API_DB_URL:-} ]]; then
        psql "postgres://postgres@127.0.0.1:5432/postgres" -q -c \
            "DROP DATABASE IF EXISTS \"${DROVER_API_DB_URL##*/}\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
