# Sourced by the other scripts: installs Debian packages the project needs when they are missing.

# apt_install PACKAGES WHAT: installs PACKAGES (one name, or several separated by spaces) from Debian as root,
# or says what to install and exits.
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$2 is missing: install it with 'sudo apt-get install -y $1', then run this again." >&2
    exit 1
  fi
  echo "Installing $2 from Debian..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update
  # shellcheck disable=SC2086 # PACKAGES is a list of names: split it on purpose.
  apt-get -o DPkg::Lock::Timeout=600 install -y $1
}

# ensure_postgres: PostgreSQL 15's server binaries (Debian 12's default), and so the `postgres` OS user.
ensure_postgres() {
  [ -x /usr/lib/postgresql/15/bin/pg_ctl ] || apt_install postgresql-15 "PostgreSQL 15"
}

# ensure_haproxy: HAProxy (Debian 12's 2.6), which the integration tests run in front of the agents.
ensure_haproxy() {
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || apt_install haproxy "HAProxy"
}

# ensure_netfilter: nftables, which the fault suite (integration/tests/nemesis.rs) uses to drop packets
# between the nodes' network namespaces.
ensure_netfilter() {
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || apt_install nftables "nftables"
}

# ensure_systemd_analyze: systemd's `systemd-analyze`, which checks packaging/vigil@.service (only the tool
# runs: no systemd is started).
ensure_systemd_analyze() {
  command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd "systemd-analyze"
}

# ensure_chart_tools: what scripts/chart-check.sh installs helm and the Python tools with (npm, unzip, venv).
ensure_chart_tools() {
  command -v npm >/dev/null 2>&1 || apt_install npm "npm"
  command -v unzip >/dev/null 2>&1 || apt_install unzip "unzip"
  python3 -c 'import ensurepip' >/dev/null 2>&1 || apt_install python3-venv "Python's venv"
}

# apt_install_no_services PACKAGES WHAT: apt_install for packages whose installation would start a system service
# (MariaDB's, etcd's): the tests start their own instances in temporary directories, so while apt-get runs,
# /usr/sbin/policy-rc.d exits 101 (what invoke-rc.d and deb-systemd-invoke ask before starting a service);
# afterwards the one that was there before is put back, or the file removed, also when the installation fails.
apt_install_no_services() {
  # Not root: apt_install says what to install and exits, before policy-rc.d is touched.
  [ "$(id -u)" -eq 0 ] || apt_install "$1" "$2"
  (
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then
      saved=$(mktemp)
      cp -p "$policy" "$saved"
    fi
    trap 'if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi' EXIT
    trap 'exit 130' INT TERM HUP
    printf '#!/bin/sh\n# Written by Vigil scripts/packages.sh while it installs %s: start no service.\nexit 101\n' "$2" \
      >"$policy"
    chmod 755 "$policy"
    apt_install "$1" "$2"
  )
}

# ensure_mariadb: MariaDB 10.11's server, mariadb-backup and client (Debian 12's default), and so the `mysql` OS
# user, without starting the system service; a system mariadbd that was started anyway is stopped.
ensure_mariadb() {
  if { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } &&
    { command -v mariadb-backup >/dev/null 2>&1 || [ -x /usr/bin/mariadb-backup ]; }; then
    return 0
  fi
  apt_install_no_services "mariadb-server mariadb-backup mariadb-client" "MariaDB"
  local pid
  pid=$(cat /run/mysqld/mysqld.pid 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "Stopping the system MariaDB service that the package started..."
    service mariadb stop || kill "$pid"
  fi
}

# ensure_patroni: Patroni 3.0.2 (with python3-etcd, psycopg2) and etcd 3.4 from Debian 12, for the migration test
# (integration/tests/patroni_migration.rs), which runs its own etcd on a free port: the packages' services
# (etcd on 2379, patroni) are not started.
ensure_patroni() {
  { [ -x /usr/bin/patroni ] && [ -x /usr/bin/etcd ]; } || apt_install_no_services "patroni etcd-server" "Patroni and etcd"
}

# ensure_promtool: Prometheus 2.42 from Debian 12 for its `promtool`, which checks the example alert rules
# (examples/prometheus/vigil-alerts.yml, integration/tests/dashboards.rs); the prometheus service is not started,
# and the recommended node exporter is not installed.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 || apt_install_no_services "--no-install-recommends prometheus" "Prometheus's promtool"
}

# ensure_pgbouncer: PgBouncer 1.18 from Debian 12, which integration/tests/pgbouncer.rs runs (as the `postgres`
# user, on a free port) in front of the agents; the package's service is not started.
ensure_pgbouncer() {
  [ -x /usr/sbin/pgbouncer ] || apt_install_no_services pgbouncer "PgBouncer"
}

# ensure_keepalived: keepalived 2.2 from Debian 12, curl (its check of GET /primary) and iputils' arping (the
# callback's gratuitous ARP), which integration/tests/vip.rs runs in the nodes' network namespaces (a virtual IP
# following the primary); the package's service is not started.
ensure_keepalived() {
  { [ -x /usr/sbin/keepalived ] && [ -x /usr/bin/curl ] && command -v arping >/dev/null 2>&1; } ||
    apt_install_no_services "keepalived curl iputils-arping" "keepalived, curl and arping"
}

# ensure_pgbackrest: pgBackRest (Debian 12's 2.45), which integration/tests/pgbackrest.rs backs up to and restores
# from, with a repository on local disk in the test's temporary directory.
ensure_pgbackrest() {
  command -v pgbackrest >/dev/null 2>&1 || [ -x /usr/bin/pgbackrest ] || apt_install pgbackrest "pgBackRest"
}
