#!/usr/bin/env bash
# Builds Vigil and starts `vigil demo`: three PostgreSQL nodes with their agents on this machine, until
# Ctrl-C. Installs PostgreSQL from Debian when it is missing. Extra arguments go to `vigil demo`
# (e.g. --nodes 5 --base-port 25432).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/packages.sh
ensure_postgres
cargo build --release --locked -p vigil-agent
exec target/release/vigil demo "$@"
