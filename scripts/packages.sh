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
