#!/usr/bin/env bash
# Write latency and throughput per synchronous_mode (issue 5): starts `vigil demo` (3 PostgreSQL nodes with
# their agents on 127.0.0.1), then for each mode (off, on, quorum) switches it with `vigil edit-config`,
# waits until the primary reports it (GET /patroni vigil.sync_state), and runs pgbench for DURATION seconds
# with CLIENTS clients, each transaction one INSERT of a small row. Prints a Markdown table.
#
#   bench/sync_modes.sh [DURATION=30] [CLIENTS=4]
#
# Everything it starts (the demo, which stops its agents and servers) is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-30}
CLIENTS=${2:-4}
BASE=${VIGIL_BENCH_BASE_PORT:-17432}
PG_BIN=/usr/lib/postgresql/15/bin
. scripts/packages.sh
ensure_postgres
cargo build --release --locked -p vigil-agent >&2
VIGIL=target/release/vigil
WORK=$(mktemp -d /tmp/vigil-sync-bench-XXXXXX)
chmod 755 "$WORK"

"$VIGIL" demo --base-port "$BASE" >"$WORK/demo.log" 2>&1 &
DEMO=$!
cleanup() {
    kill -INT "$DEMO" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DEMO" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DEMO" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

api() { echo "http://127.0.0.1:$((BASE + 100 + $1))"; }

# The index of the node answering 200 on /primary, within 120 s.
primary=""
for _ in $(seq 1 600); do
    for i in 0 1 2; do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "$(api "$i")/primary")" = 200 ]; then primary=$i; fi
    done
    [ -n "$primary" ] && break
    sleep 0.2
done
[ -n "$primary" ] || { echo "no primary within 120 s; demo log: $WORK/demo.log" >&2; exit 1; }
PORT=$((BASE + primary))
export PGPASSWORD=vigil-demo # the demo's superuser password
DSN="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
"$PG_BIN/psql" -q "$DSN" -c "CREATE TABLE IF NOT EXISTS bench (id bigserial PRIMARY KEY, v text)" >&2
echo "INSERT INTO bench (v) VALUES ('x');" >"$WORK/insert.sql"

# Waits (60 s) until the primary's vigil.sync_state is $1.
wait_state() {
    for _ in $(seq 1 300); do
        if curl -s "$(api "$primary")/patroni" | grep -q "\"sync_state\":\"$1\""; then return 0; fi
        sleep 0.2
    done
    echo "the primary never reported sync_state $1" >&2
    return 1
}

echo "| synchronous_mode | transactions/s | latency avg (ms) | latency stddev (ms) |"
echo "|---|---:|---:|---:|"
for mode in off on quorum; do
    "$VIGIL" edit-config --api "$(api "$primary")" -s "synchronous_mode=$mode" --force >&2
    if [ "$mode" = off ]; then wait_state async; else wait_state sync; fi
    out=$("$PG_BIN/pgbench" -n -f "$WORK/insert.sql" -c "$CLIENTS" -j 2 -T "$DURATION" -P 10 "$DSN" 2>&1)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    avg=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    sd=$(echo "$out" | sed -n 's/^latency stddev = \([0-9.]*\) ms/\1/p')
    echo "| $mode | $tps | $avg | ${sd:-n/a} |"
done
