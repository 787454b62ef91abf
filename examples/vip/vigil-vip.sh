#!/bin/sh
# Moves a virtual IP with the primary: Vigil's (or Patroni's) on_start, on_stop and on_role_change
# callback. Arguments, as Patroni passes them: <action> <role> <scope>.
#
# On becoming the primary (on_start or on_role_change with role primary) the address is added to the
# interface and announced with gratuitous ARP (when arping, from iputils, is installed), so that the
# neighbours send to this host at once; on any other role (replica, demoted) and on stop it is removed.
# The agent needs CAP_NET_ADMIN (root, or AmbientCapabilities=CAP_NET_ADMIN in its systemd unit).
#
# A callback runs only when the agent does: an agent killed on a host that stays up leaves the address
# there (its PostgreSQL stopped by the agent's lifeline) until it starts again, as a replica. The new
# primary's gratuitous ARP moves the traffic; where the address must never be held twice, use keepalived
# (examples/keepalived).
#
# Settings, from the environment (put them before the script in the callback's command line):
#   VIP      the address with its prefix length, e.g. 10.0.0.100/24 (required)
#   VIP_DEV  the interface, e.g. eth0 (required)
set -eu

action=${1:-}
role=${2:-}
vip=${VIP:?the virtual IP with its prefix length, e.g. 10.0.0.100/24}
dev=${VIP_DEV:?the interface to put the virtual IP on, e.g. eth0}

case "$action:$role" in
on_start:primary | on_start:master | on_role_change:primary | on_role_change:master)
  ip addr replace "$vip" dev "$dev"
  if command -v arping >/dev/null 2>&1; then
    # Unsolicited ARP: neighbours update their entry for the address to this host.
    arping -q -U -c 2 -I "$dev" "${vip%/*}" || true
  fi
  ;;
on_reload:* | on_restart:primary | on_restart:master) ;;
*)
  # Gone already is fine.
  ip addr del "$vip" dev "$dev" 2>/dev/null || true
  ;;
esac
