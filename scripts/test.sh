#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy, the whole test suite, then the Helm
# chart and Dockerfile checks (scripts/chart-check.sh), then the benchmark commands in their quick mode
# (bench/compare.sh --quick, bench/scale.sh --quick: do they still run?).
# Installs what the tests need when it is missing; safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_postgres
ensure_haproxy
ensure_netfilter
ensure_mariadb
ensure_patroni
ensure_pgbackrest
ensure_systemd_analyze
ensure_chart_tools
ensure_promtool
ensure_pgbouncer
ensure_keepalived

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# rustfmt and clippy come with the toolchain on this project's machines; add them when a toolchain lacks them.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== helm chart and Dockerfile"
scripts/chart-check.sh

# The benchmarks are not timed tests: this only checks that their commands still run, every manager,
# scenario and report part of them, with the debug build and figures not worth keeping (BENCHMARKS.md).
echo "== benchmark commands (--quick)"
mkdir -p target/bench
./bench/compare.sh --quick --out target/bench/quick-compare.md >/dev/null
./bench/scale.sh --quick --out target/bench/quick-scale.md >/dev/null
