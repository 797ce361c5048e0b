#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks.
#
#   scripts/postgres.sh start     initialise (once) and start; prints the database URL
#   scripts/postgres.sh stop      stop it (the data directory is kept; delete it to start afresh)
#   scripts/postgres.sh status    print the URL if running, exit 1 if not
#   scripts/postgres.sh url       print the URL (whether or not it runs)
#
# Environment:
#   ROOMSCAN_PG_DIR    cluster directory (default /tmp/roomscan-pg)
#   ROOMSCAN_PG_PORT   port on 127.0.0.1 (default 54329)
#   ROOMSCAN_PG_BIN    directory holding initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
#
# Authentication is "trust" for loopback connections only: this cluster is for local tests, never for data.
# When run as root the server runs as the `postgres` OS user (initdb refuses root).
#
# CI usage:  export ROOMSCAN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
set -euo pipefail

PG_DIR="${ROOMSCAN_PG_DIR:-/tmp/roomscan-pg}"
PG_PORT="${ROOMSCAN_PG_PORT:-54329}"
PG_DB="roomscan"
DATA="$PG_DIR/data"
LOG="$PG_DIR/postgres.log"
URL="postgresql://postgres@127.0.0.1:${PG_PORT}/${PG_DB}"

die() { echo "postgres.sh: $*" >&2; exit 1; }
log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    if [[ -n "${ROOMSCAN_PG_BIN:-}" ]]; then
        [[ -x "$ROOMSCAN_PG_BIN/pg_ctl" ]] || die "no pg_ctl in ROOMSCAN_PG_BIN=$ROOMSCAN_PG_BIN"
        echo "$ROOMSCAN_PG_BIN"
        return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -z "$dir" ]] && command -v pg_ctl >/dev/null; then
        dir="$(dirname "$(command -v pg_ctl)")"
    fi
    [[ -n "$dir" && -x "$dir/pg_ctl" ]] \
        || die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin; install postgresql or set ROOMSCAN_PG_BIN"
    echo "$dir"
}

BIN="$(find_bin)"

# Run a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user to run the server"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

is_running() {
    [[ -f "$DATA/PG_VERSION" ]] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

is_ready() {
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d "$PG_DB" -U postgres
}

init_cluster() {
    mkdir -p "$PG_DIR"
    if [[ "$(id -u)" == 0 ]]; then chown postgres: "$PG_DIR"; fi
    log "initialising a cluster in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null \
        || as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
    # Loopback TCP only, trust auth, tuned for throwaway speed (data loss on crash is fine here).
    as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
# --- roomscan test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = '512MB'
work_mem = '32MB'
maintenance_work_mem = '512MB'
max_wal_size = '4GB'
EOF
    as_owner tee "$DATA/pg_hba.conf" >/dev/null <<EOF
local all all trust
host  all all 127.0.0.1/32 trust
EOF
}

start() {
    [[ -f "$DATA/PG_VERSION" ]] || init_cluster
    if ! is_running; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -o "-p $PG_PORT -k $PG_DIR" -w -t 60 start >/dev/null \
            || die "server did not start; see $LOG"
    fi
    for _ in $(seq 1 60); do
        is_ready && break
        sleep 0.5
    done
    is_ready || die "server on 127.0.0.1:$PG_PORT is not accepting connections; see $LOG"
    if ! "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
        "$BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$PG_DB"
    fi
    echo "$URL"
}

stop() {
    if is_running; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
        log "stopped"
    else
        log "not running"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if is_running; then echo "$URL"; else log "not running"; exit 1; fi ;;
    url) echo "$URL" ;;
    *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
