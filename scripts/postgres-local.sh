#!/usr/bin/env bash
# A private PostgreSQL server on 127.0.0.1 for tests (Debian's postgresql package).
#
#   scripts/postgres-local.sh start   install (as root, first time), initdb and start; prints the URL
#   scripts/postgres-local.sh stop    stop the server this script started
#   scripts/postgres-local.sh url     the SQLAlchemy URL of its database
#
# Data lives in $RISKWATCH_PG_DIR (default: .pg-local/ in the checkout), port
# $RISKWATCH_PG_PORT (default 54329); trust authentication on loopback only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${RISKWATCH_PG_DIR:-$root/.pg-local}"
port="${RISKWATCH_PG_PORT:-54329}"
db=riskwatch
url="postgresql+psycopg://postgres@127.0.0.1:$port/$db"

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
    [ -n "$(bindir)" ] && return
    if [ "$(id -u)" != 0 ]; then
        echo "PostgreSQL is not installed: run 'apt-get install postgresql' as root" >&2
        exit 1
    fi
    echo "installing Debian's postgresql" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

start() {
    install
    local bin; bin="$(bindir)"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! as_postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    fi
    if ! as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
        as_postgres "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    fi
    echo "$url"
}

stop() {
    local bin; bin="$(bindir)"
    [ -n "$bin" ] && [ -f "$dir/data/PG_VERSION" ] || { echo "postgres not set up"; return; }
    as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 && echo "postgres stopped" || echo "postgres not running"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) echo "$url" ;;
    *) echo "usage: $0 start | stop | url" >&2; exit 2 ;;
esac
