# Sourced by the other scripts: installs Debian packages the project needs when they are missing.

# ensure_postgres: PostgreSQL 15's server binaries (Debian 12's default), and so the `postgres` OS user.
ensure_postgres() {
  if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL 15 is missing: install it with 'sudo apt-get install -y postgresql-15', then run this again." >&2
    exit 1
  fi
  echo "Installing PostgreSQL 15 from Debian..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y postgresql-15
}

# ensure_haproxy: HAProxy (Debian 12's 2.6), which the integration tests run in front of the agents.
ensure_haproxy() {
  if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "HAProxy is missing: install it with 'sudo apt-get install -y haproxy', then run this again." >&2
    exit 1
  fi
  echo "Installing HAProxy from Debian..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y haproxy
}
