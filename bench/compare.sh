#!/usr/bin/env bash
# Vigil vs Patroni, side by side in one run on one machine (issue 7).
#
#   ./bench/compare.sh [--quick] [-n N] [--out FILE] [--install-only]
#
# Installs what is missing (PostgreSQL 15, HAProxy, wrk and etcd from Debian; Patroni with psycopg 3 and
# its etcd3 extra from PyPI into a virtualenv under $VIGIL_BENCH_CACHE, default /var/cache/vigil-bench),
# builds Vigil in release mode, then runs `vigil-failover-bench --manager patroni,patroni-fast,vigil`:
# three 3-node PostgreSQL 15 clusters one after the other (Patroni with its default timings, Patroni with
# its most aggressive accepted timings, Vigil with its defaults) on the same ports behind the same
# HAProxy config, N runs (default 10) of each fault, then each manager's idle footprint and
# `GET /primary` throughput. The Markdown report goes to FILE (default target/bench/compare-<UTC time>.md)
# and, at the end, to stdout; progress to stderr. Next to FILE, FILE-without-.md-<scenario>.svg: the write
# timeline of run 1 of each scenario, every manager on one axis (the report shows them). Must run as root
# (PostgreSQL and Patroni run as the `postgres` user). Traffic stays on 127.0.0.1. Ctrl-C (or a timeout)
# stops the bench, which kills every process it started by PID.
#
# --quick (what scripts/test.sh runs: do the commands still work?) measures nothing worth quoting: the
# debug build (which the test suite has built already), Patroni at its default timing and Vigil (not
# patroni-fast: the same driver with other timing values), 1 run of each fault, 1 s of steady writes, a
# 5 s idle window and one 2 s wrk run; every scenario, report section and SVG is still made (most of the
# time goes to cluster starts and Patroni's 30 s ttl; see BENCHMARKS.md for how long it takes).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
. bench/options.sh

PATRONI_VERSION=4.1.5
CACHE="${VIGIL_BENCH_CACHE:-/var/cache/vigil-bench}"
VENV="$CACHE/patroni-$PATRONI_VERSION"
runs=10
quick=0
out=""
install_only=0
bench_options 2,22 "$@"

# --- installation (each step only when missing) -------------------------------------------------------
ensure_postgres
ensure_haproxy
command -v wrk >/dev/null 2>&1 || apt_install wrk "wrk"
# Debian 12's etcd-server is 3.4: Patroni's etcd3 module talks to its v3 gRPC gateway (/v3/...).
command -v etcd >/dev/null 2>&1 || apt_install etcd-server "etcd"
if [ ! -x "$VENV/bin/patroni" ]; then
  echo "Installing Patroni $PATRONI_VERSION into $VENV..."
  python3 -m venv "$VENV.tmp"
  "$VENV.tmp/bin/pip" install --quiet --disable-pip-version-check "patroni[etcd3,psycopg3]==$PATRONI_VERSION"
  rm -rf "$VENV"
  mv "$VENV.tmp" "$VENV"
  # The virtualenv's scripts name their interpreter by path: fix them up after the move.
  sed -i "1s|$VENV.tmp|$VENV|" "$VENV"/bin/*
fi
# Patroni runs as postgres: the virtualenv must be readable by it.
chmod -R a+rX "$CACHE"
chmod a+x "$(dirname "$CACHE")"
[ "$install_only" -eq 1 ] && exit 0

# --- build and run -----------------------------------------------------------------------------------
target_dir="${CARGO_TARGET_DIR:-target}"
if [ "$quick" -eq 1 ]; then
  cargo build --locked -p vigil-agent -p vigil-integration --bins >&2
  bench="$target_dir/debug/vigil-failover-bench"
  runs=1
  managers=patroni,vigil
  timing=(--idle-secs 5 --wrk-runs 1 --wrk-secs 2 --steady-secs 1 --confirm-secs 1)
else
  cargo build --release --locked -p vigil-agent -p vigil-integration --bins >&2
  bench="$target_dir/release/vigil-failover-bench"
  managers=patroni,patroni-fast,vigil
  timing=(--idle-secs 60 --wrk-runs 1 --wrk-secs 10)
fi
if [ -z "$out" ]; then
  out="target/bench/compare-$(date -u +%Y%m%dT%H%M%SZ).md"
fi
mkdir -p "$(dirname "$out")"
args=(--manager "$managers" --runs "$runs" --scenario compare "${timing[@]}"
  --patroni-bin "$VENV/bin" --etcd "$(command -v etcd)" --svg-prefix "${out%.md}")
# Generous: Patroni's default node-crash runs last about a minute each.
max_secs=$((1800 + runs * 600))
echo "$bench ${args[*]} --max-secs $max_secs > $out" >&2
"$bench" "${args[@]}" --max-secs "$max_secs" >"$out" &
pid=$!
# The bench stops everything it started when it gets SIGINT or SIGTERM; forward ours to it, by PID.
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
wait "$pid" || status=$?
if [ "$status" -gt 128 ]; then
  # wait returned because of the trapped signal: let the bench finish its clean-up.
  wait "$pid" || status=$?
fi
cat "$out"
echo "report: $out (exit status $status)" >&2
exit "$status"
