#!/usr/bin/env bash
# How Vigil's cost grows (issue 20, "Scale"), in one run on one machine:
#
#   ./bench/scale.sh [--quick] [-n N] [--out FILE] [--install-only]
#
# 1. `vigil-failover-bench --scenario scale --members 3,5,7,9 --runs N`: for each cluster size, N node
#    crashes (kill -9 of the primary's agent and postmaster, direct writer; default N=5), then one idle
#    cluster: the primary's lease renewals (its `vigil_lease_renewal_duration_seconds` histogram) and every
#    member's CPU and RSS over 30 s.
# 2. `vigil-failover-bench --scenario scale-idle --clusters 10,25,50`: tiny 3-member clusters (PostgreSQL
#    with shared_buffers 16MB) started in batches of 5 as a hosting provider would run them; at each count,
#    CPU and memory (PSS) per cluster over 30 s, the agents and PostgreSQL apart.
#
# Release build; the Markdown report goes to FILE (default target/bench/scale-<UTC time>.md) and to stdout,
# progress to stderr. Must run as root (PostgreSQL runs as the `postgres` user); traffic stays on
# 127.0.0.1; every process the bench starts is killed by PID when it ends, fails or gets Ctrl-C.
#
# --quick (what scripts/test.sh runs: does every path still work?) measures nothing worth quoting: the
# debug build, sizes 3 and 5 with one crash each, 2 and 4 clusters, 3 s idle windows.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
. bench/options.sh

runs=5
quick=0
out=""
install_only=0
bench_options 2,19 "$@"
ensure_postgres
[ "$install_only" -eq 1 ] && exit 0

target_dir="${CARGO_TARGET_DIR:-target}"
if [ "$quick" -eq 1 ]; then
  cargo build --locked -p vigil-agent -p vigil-integration --bins >&2
  bench="$target_dir/debug/vigil-failover-bench"
  members=(--members 3,5 --runs 1 --idle-secs 3 --steady-secs 1)
  clusters=(--clusters 2,4 --idle-secs 3)
else
  cargo build --release --locked -p vigil-agent -p vigil-integration --bins >&2
  bench="$target_dir/release/vigil-failover-bench"
  members=(--members 3,5,7,9 --runs "$runs" --idle-secs 30)
  clusters=(--clusters 10,25,50 --idle-secs 30)
fi
if [ -z "$out" ]; then
  out="target/bench/scale-$(date -u +%Y%m%dT%H%M%SZ).md"
fi
mkdir -p "$(dirname "$out")"

pid=""
# The bench stops everything it started when it gets SIGINT or SIGTERM; forward ours to it, by PID.
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
: >"$out"
for part in "--scenario scale ${members[*]}" "--scenario scale-idle ${clusters[*]}"; do
  # shellcheck disable=SC2086 # the words of $part are the bench's arguments
  echo "$bench $part --max-secs 5400 >> $out" >&2
  # shellcheck disable=SC2086
  "$bench" $part --max-secs 5400 >>"$out" &
  pid=$!
  wait "$pid" || status=$?
  if [ "$status" -gt 128 ]; then
    # wait returned because of the trapped signal: let the bench finish its clean-up.
    wait "$pid" || status=$?
  fi
  [ "$status" -eq 0 ] || break
done
cat "$out"
echo "report: $out (exit status $status)" >&2
exit "$status"
