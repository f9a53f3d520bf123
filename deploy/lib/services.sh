# shellcheck shell=bash
# deploy/lib/services.sh — sourced by deploy/test.sh and deploy/quickstart.sh.
#
# Makes sure the local services and tools drover's tests need are present and running:
#   ensure_postgres      PostgreSQL on 127.0.0.1:5432, trust auth on localhost, db `test`
#   ensure_redis         Redis on 127.0.0.1:6379 (nothing kept on disk)
#   ensure_nats          NATS with JetStream on 127.0.0.1:4222
#   ensure_services      all three
#   ensure_rust_tools    cargo-nextest and cargo-fuzz (cargo install --locked if missing)
#   ensure_python_venv   .venv at the repo root with tests/interop/requirements.txt installed
#
# Every ensure_* is idempotent: a service that already answers on its port is left alone
# (never restarted); a missing binary is installed from Debian's packages with apt-get; a
# stopped service is started with the same command the rust-svc machine uses at boot; then
# we wait, bounded, until the port answers. Functions return non-zero (they never `exit`),
# so callers decide whether a failure is fatal. Nothing here reads stdin (safe under CI=true).
#
# Tunables (environment):
#   DROVER_SERVICE_TIMEOUT  seconds to wait for a port after a start (default 60)
#   DROVER_PG_VERSION       PostgreSQL major version to use when several are installed
#   DROVER_NATS_STORE       JetStream store directory (default /var/lib/nats-server)

if [[ -n "${_DROVER_SERVICES_SH:-}" ]]; then
    return 0
fi
_DROVER_SERVICES_SH=1

DROVER_ROOT="${DROVER_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
DROVER_SERVICE_TIMEOUT="${DROVER_SERVICE_TIMEOUT:-60}"

# ---------------------------------------------------------------------------- helpers

drover_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
drover_warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
drover_err() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Runs a command as root (directly when we are root, else through sudo -n).
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        drover_err "need root for: $*"
        return 1
    fi
}

# port_open HOST PORT: true when something accepts a TCP connection there.
port_open() {
    timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# wait_port NAME HOST PORT [TIMEOUT]: polls until the port answers or the timeout passes.
wait_port() {
    local name=$1 host=$2 port=$3 limit=${4:-$DROVER_SERVICE_TIMEOUT}
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if port_open "$host" "$port"; then
            return 0
        fi
        sleep 0.5
    done
    drover_err "$name did not answer on $host:$port within ${limit}s"
    return 1
}

_DROVER_APT_UPDATED=
# apt_install PKG...: installs Debian packages without prompts; `apt-get update` once per run.
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        drover_err "apt-get not found; install $* by hand"
        return 1
    fi
    if [[ -z $_DROVER_APT_UPDATED ]]; then
        drover_log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || return 1
        _DROVER_APT_UPDATED=1
    fi
    drover_log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null
}

# ---------------------------------------------------------------------------- PostgreSQL

_pg_version() {
    if [[ -n "${DROVER_PG_VERSION:-}" ]]; then
        echo "$DROVER_PG_VERSION"
        return
    fi
    # The machine has exactly one; if there are several, take the newest.
    # shellcheck disable=SC2012 # cluster versions are plain numbers
    ls /etc/postgresql 2>/dev/null | sort -V | tail -n1
}

# True when postgres@127.0.0.1 gets in without a password (trust auth).
_pg_trust_ok() {
    PGCONNECT_TIMEOUT=5 psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc 'select 1' \
        </dev/null >/dev/null 2>&1
}

# Puts trust rules for the local socket and loopback first in pg_hba.conf (first match wins),
# keeping the original file below them. Only used when trust auth does not already work.
_pg_configure_trust() {
    local ver=$1
    local hba="/etc/postgresql/$ver/main/pg_hba.conf"
    [[ -f $hba ]] || { drover_err "no $hba"; return 1; }
    if grep -q '^# drover: trust on localhost' "$hba"; then
        return 0
    fi
    drover_log "configuring trust auth on localhost in $hba"
    as_root cp "$hba" "$hba.drover-orig"
    {
        echo '# drover: trust on localhost (deploy/lib/services.sh); test machines only'
        echo 'local   all   all                 trust'
        echo 'host    all   all   127.0.0.1/32  trust'
        echo 'host    all   all   ::1/128       trust'
        cat "$hba.drover-orig"
    } | as_root tee "$hba" >/dev/null
}

# Creates the roles and databases the machine image has (root, test) when missing.
_pg_bootstrap() {
    local q='psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc'
    if [[ -z $($q "select 1 from pg_roles where rolname='root'" </dev/null 2>/dev/null) ]]; then
        $q "create role root superuser login" </dev/null >/dev/null || return 1
    fi
    local db
    for db in test root; do
        if [[ -z $($q "select 1 from pg_database where datname='$db'" </dev/null 2>/dev/null) ]]; then
            drover_log "creating database $db"
            $q "create database \"$db\"" </dev/null >/dev/null || return 1
        fi
    done
}

ensure_postgres() {
    local ver
    if port_open 127.0.0.1 5432 && pg_isready -q -h 127.0.0.1 -p 5432 -t 5 2>/dev/null; then
        if _pg_trust_ok; then
            drover_log "postgres: up on 127.0.0.1:5432 (trust auth ok)"
            return 0
        fi
        # Up but asks for a password: fix pg_hba and reload (a reload is not a restart).
        ver=$(_pg_version)
        _pg_configure_trust "$ver" || return 1
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || return 1
        sleep 1
        _pg_trust_ok || { drover_err "postgres: trust auth still refused"; return 1; }
        _pg_bootstrap
        drover_log "postgres: up on 127.0.0.1:5432 (trust auth configured)"
        return 0
    fi

    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z $(_pg_version) ]]; then
        apt_install postgresql postgresql-client || return 1
    fi
    ver=$(_pg_version)
    if [[ -z $ver ]]; then
        drover_err "postgres: no cluster under /etc/postgresql after install"
        return 1
    fi
    if [[ ! -d /etc/postgresql/$ver/main ]]; then
        drover_log "postgres: creating cluster $ver/main"
        as_root pg_createcluster "$ver" main || return 1
    fi
    _pg_configure_hba_if_fresh "$ver" || return 1
    drover_log "postgres: starting cluster $ver/main"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start </dev/null ||
        drover_warn "postgres: pg_ctlcluster start returned non-zero (maybe already starting)"
    wait_port postgres 127.0.0.1 5432 || return 1
    local deadline=$((SECONDS + DROVER_SERVICE_TIMEOUT))
    until pg_isready -q -h 127.0.0.1 -p 5432 -t 2; do
        ((SECONDS < deadline)) || { drover_err "postgres: not ready"; return 1; }
        sleep 0.5
    done
    _pg_trust_ok || { drover_err "postgres: trust auth refused on 127.0.0.1"; return 1; }
    _pg_bootstrap || return 1
    drover_log "postgres: up on 127.0.0.1:5432"
}

# Before a start: a fresh Debian cluster uses peer/scram auth; switch it to trust on localhost.
# A cluster whose pg_hba already trusts 127.0.0.1 (the machine image's) is left as it is.
_pg_configure_hba_if_fresh() {
    local ver=$1
    local hba="/etc/postgresql/$ver/main/pg_hba.conf"
    if grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba" 2>/dev/null; then
        return 0
    fi
    _pg_configure_trust "$ver"
}

# ---------------------------------------------------------------------------- Redis

ensure_redis() {
    if port_open 127.0.0.1 6379; then
        if command -v redis-cli >/dev/null 2>&1 &&
            [[ $(timeout 5 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) != PONG ]]; then
            drover_err "redis: port 6379 is open but PING does not answer PONG"
            return 1
        fi
        drover_log "redis: up on 127.0.0.1:6379"
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server || return 1
        # The package's own init script may have started it already.
        if wait_port redis 127.0.0.1 6379 5 2>/dev/null; then
            drover_log "redis: up on 127.0.0.1:6379 (started by the package)"
            return 0
        fi
    fi
    as_root mkdir -p /var/lib/redis /var/log/redis
    drover_log "redis: starting"
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log </dev/null || return 1
    wait_port redis 127.0.0.1 6379 || return 1
    drover_log "redis: up on 127.0.0.1:6379"
}

# ---------------------------------------------------------------------------- NATS

# Reads the INFO line a NATS server sends on connect and checks "jetstream":true.
_nats_jetstream_on() {
    local info
    info=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222; head -n1 <&3' 2>/dev/null) || true
    [[ $info == INFO* && $info == *'"jetstream":true'* ]]
}

ensure_nats() {
    if port_open 127.0.0.1 4222; then
        if _nats_jetstream_on; then
            drover_log "nats: up on 127.0.0.1:4222 (JetStream on)"
        else
            # Someone else's server; we do not restart it. Tests that need JetStream will say so.
            drover_warn "nats: up on 127.0.0.1:4222 but its INFO does not report JetStream"
        fi
        return 0
    fi
    if [[ ! -x /usr/sbin/nats-server ]]; then
        apt_install nats-server || return 1
        if wait_port nats 127.0.0.1 4222 5 2>/dev/null; then
            drover_warn "nats: the package started a server on 4222; leaving it as it is"
            _nats_jetstream_on || drover_warn "nats: that server does not report JetStream"
            return 0
        fi
    fi
    local store=${DROVER_NATS_STORE:-/var/lib/nats-server}
    as_root mkdir -p "$store"
    drover_log "nats: starting with JetStream"
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd "$store" -l /var/log/nats-server.log \
        </dev/null || return 1
    wait_port nats 127.0.0.1 4222 || {
        tail -n 20 /var/log/nats-server.log >&2 2>/dev/null
        return 1
    }
    _nats_jetstream_on || { drover_err "nats: started but JetStream is off"; return 1; }
    drover_log "nats: up on 127.0.0.1:4222 (JetStream on)"
}

# All three; reports every failure, returns non-zero if any failed.
ensure_services() {
    local rc=0
    ensure_postgres || rc=1
    ensure_redis || rc=1
    ensure_nats || rc=1
    return $rc
}

# ---------------------------------------------------------------------------- Rust tools

ensure_rust_tools() {
    local rc=0
    if ! command -v cargo >/dev/null 2>&1; then
        drover_err "cargo not found (the machine's Rust toolchain is missing from PATH)"
        return 1
    fi
    cargo fmt --version >/dev/null 2>&1 || { drover_err "rustfmt is missing"; rc=1; }
    cargo clippy --version >/dev/null 2>&1 || { drover_err "clippy is missing"; rc=1; }
    if ! cargo nextest --version >/dev/null 2>&1; then
        drover_log "installing cargo-nextest (cargo install --locked)"
        cargo install cargo-nextest --locked </dev/null || rc=1
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        drover_log "installing cargo-fuzz (cargo install --locked)"
        cargo install cargo-fuzz --locked </dev/null || rc=1
    fi
    if ((rc == 0)); then
        drover_log "rust tools: $(cargo --version), $(cargo nextest --version 2>/dev/null | head -n1), $(cargo fuzz --version 2>/dev/null)"
    fi
    return $rc
}

# ---------------------------------------------------------------------------- Python venv

# ensure_python_venv [EXTRA_PIP_SPEC...]
# Creates $DROVER_ROOT/.venv and installs tests/interop/requirements.txt (if present) plus any
# extra specs. Skips pip when a stamp (hash of the python version, requirements and extras)
# matches the last successful install.
ensure_python_venv() {
    local venv="$DROVER_ROOT/.venv"
    local req="$DROVER_ROOT/tests/interop/requirements.txt"
    local stamp_file="$venv/.drover-requirements.sha256"
    local py=python3

    if [[ ! -x $venv/bin/python ]]; then
        drover_log "python: creating $venv"
        if ! "$py" -m venv "$venv" </dev/null 2>/dev/null; then
            # Debian's own python3 needs python3-venv for ensurepip.
            rm -rf "$venv"
            apt_install python3-venv || return 1
            py=/usr/bin/python3
            "$py" -m venv "$venv" </dev/null || return 1
        fi
    fi

    local stamp
    stamp=$(
        {
            "$venv/bin/python" --version 2>&1
            [[ -f $req ]] && cat "$req"
            printf '%s\n' "$@"
        } | sha256sum | cut -d' ' -f1
    )
    if [[ -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
        drover_log "python: $venv up to date"
        return 0
    fi

    local args=()
    [[ -f $req ]] && args+=(-r "$req")
    args+=("$@")
    if ((${#args[@]} > 0)); then
        drover_log "python: pip install ${args[*]}"
        "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q "${args[@]}" \
            </dev/null || return 1
    fi
    echo "$stamp" >"$stamp_file"
    drover_log "python: $venv ready"
}
