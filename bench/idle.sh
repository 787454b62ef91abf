#!/usr/bin/env bash
# What an idle agent costs (issue 20): starts `vigil demo` (three PostgreSQL nodes, release build), lets it
# settle, then measures every agent and its lifeline watcher for SECONDS: CPU as utime+stime from
# /proc/<pid>/stat over the wall time, VmRSS and Pss, Anonymous (the memory that is the process's own: the
# rest of RSS is the vigil binary's pages in the page cache, shared by every vigil process), threads.
#
#   ./bench/idle.sh [VIGIL_BINARY] [SECONDS] [BASE_PORT]     (default: target/release/vigil 60 31432)
#
# Must run as root (PostgreSQL runs as `postgres`); traffic stays on 127.0.0.1. Stops the demo (SIGTERM,
# which removes its directory) when done.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/vigil}
secs=${2:-60}
base=${3:-31432}
out=$(mktemp -d)
"$bin" demo --base-port "$base" >"$out/demo.out" 2>&1 &
demo=$!
trap 'kill -TERM $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 1 180); do
    grep -q 'Press Ctrl-C' "$out/demo.out" && break
    kill -0 $demo 2>/dev/null || { cat "$out/demo.out"; exit 1; }
    sleep 1
done
grep -q 'Press Ctrl-C' "$out/demo.out" || { echo "the demo did not start in 180 s" >&2; exit 1; }
sleep 20 # past the clones and the first slot syncs
declare -A role
procs=()
for agent in $(pgrep -P $demo); do
    node=$(basename "$(tr '\0' '\n' </proc/$agent/cmdline | tail -1)" .yml) # nodeN: REST port BASE+99+N
    api=$(( ${node#node} + base + 99 ))
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api/primary" || true)
    role[$agent]=$([ "$code" = 200 ] && echo primary || echo replica)
    procs+=("$agent")
    for watcher in $(pgrep -P "$agent" -f 'vigil lifeline' || true); do
        role[$watcher]="lifeline of the ${role[$agent]}"
        procs+=("$watcher")
    done
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A before
for p in "${procs[@]}"; do before[$p]=$(ticks "$p"); done
start=$(date +%s.%N)
sleep "$secs"
end=$(date +%s.%N)
hz=$(getconf CLK_TCK)
printf '%-24s %8s %10s %10s %10s %8s\n' process 'cpu %' 'RSS kB' 'Pss kB' 'anon kB' threads
for p in "${procs[@]}"; do
    cpu=$(awk -v a="${before[$p]}" -v b="$(ticks "$p")" -v s="$start" -v e="$end" -v hz="$hz" \
        'BEGIN { printf "%.3f", 100 * (b - a) / hz / (e - s) }')
    field() { awk -v k="$1" '$1 == k":" {print $2}' "$2"; }
    printf '%-24s %8s %10s %10s %10s %8s\n' "${role[$p]}" "$cpu" "$(field VmRSS /proc/$p/status)" \
        "$(field Pss /proc/$p/smaps_rollup)" "$(field Anonymous /proc/$p/smaps_rollup)" \
        "$(field Threads /proc/$p/status)"
done
uptime
