# Sourced by the other scripts: installs Debian packages the project needs when they are missing.

# apt_install PACKAGE WHAT: installs PACKAGE from Debian as root, or says what to install and exits.
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$2 is missing: install it with 'sudo apt-get install -y $1', then run this again." >&2
    exit 1
  fi
  echo "Installing $2 from Debian..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y "$1"
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
