#!/bin/sh
# Points PgBouncer at this member when it becomes the primary: Vigil's (or Patroni's) on_start and
# on_role_change callback. Arguments, as Patroni passes them: <action> <role> <scope>. Vigil sets
# VIGIL_FENCING_TOKEN to the new primary's fencing token.
#
# Every member's callback writes the same file, the [databases] section that PgBouncer's pgbouncer.ini
# includes (%include), then has PgBouncer reload it through its admin console; PgBouncer closes its
# connections to the old primary when each is released (server_fast_close: at the end of the
# transaction) and connects new ones to this member. The file carries the token it was written under, and
# a callback with an older token than the file's leaves it as it is: a late callback of a deposed primary
# (callbacks run in the background, in no order across members) cannot point PgBouncer back at it.
#
# Settings, from the environment (put them before the script in the callback's command line):
#   PRIMARY_HOST, PRIMARY_PORT  this member's PostgreSQL, as PgBouncer reaches it (required)
#   PGBOUNCER_DATABASES         the file pgbouncer.ini includes (default /etc/pgbouncer/vigil-databases.ini)
#   PGBOUNCER_ADMIN             libpq connection string of PgBouncer's admin console
#                               (default "host=127.0.0.1 port=6432 dbname=pgbouncer user=pgbouncer
#                               connect_timeout=5"; the password from ~/.pgpass or PGPASSFILE)
#   PGBOUNCER_DBNAME            the [databases] entry (default "*": any database, same name on the server)
# It needs flock (util-linux) and psql.
set -eu

action=${1:-}
role=${2:-}
case "$action:$role" in
on_start:primary | on_start:master | on_role_change:primary | on_role_change:master) ;;
*) exit 0 ;; # a replica, a demotion, a stop: the new primary's callback re-points PgBouncer
esac

host=${PRIMARY_HOST:?the address of this member, as PgBouncer reaches its PostgreSQL}
port=${PRIMARY_PORT:?the port of this member, as PgBouncer reaches its PostgreSQL}
file=${PGBOUNCER_DATABASES:-/etc/pgbouncer/vigil-databases.ini}
admin=${PGBOUNCER_ADMIN:-host=127.0.0.1 port=6432 dbname=pgbouncer user=pgbouncer connect_timeout=5}
dbname=${PGBOUNCER_DBNAME:-*}
token=${VIGIL_FENCING_TOKEN:-}
case $token in
'' | *[!0-9]*)
  echo "vigil-pgbouncer: no fencing token (VIGIL_FENCING_TOKEN=\"$token\"): PgBouncer left as it is" >&2
  exit 1
  ;;
esac

# One writer at a time: the token check and the rename are one step.
exec 9>>"$file.lock"
flock -w 10 9 || {
  echo "vigil-pgbouncer: $file.lock is held by another writer for more than 10 s" >&2
  exit 1
}
current=$(sed -n 's/^; vigil_fencing_token = \([0-9][0-9]*\)$/\1/p' "$file" 2>/dev/null | head -n 1)
if [ -n "$current" ] && [ "$current" -gt "$token" ]; then
  echo "vigil-pgbouncer: $file already names a newer primary (token $current > $token): left as it is" >&2
  exit 0
fi
tmp="$file.tmp.$$"
printf '[databases]\n; vigil_fencing_token = %s\n; written by %s for cluster %s\n%s = host=%s port=%s\n' \
  "$token" "$action" "${3:-}" "$dbname" "$host" "$port" >"$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$file"
if ! psql -X -q -v ON_ERROR_STOP=1 -d "$admin" -c RELOAD; then
  echo "vigil-pgbouncer: $file names $host:$port (token $token), but PgBouncer did not take RELOAD" >&2
  exit 1
fi
