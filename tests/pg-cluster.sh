#!/bin/sh
# SPDX-License-Identifier: MIT
# A throwaway PostgreSQL cluster for the pg tests, the pg-audit example and
# the pg benchmark: one script for all three.
#
#   pg-cluster.sh run [-c name=value]... [--] CMD [ARG...]
#       initdb a cluster in a fresh temporary directory, start it on a free
#       TCP port of 127.0.0.1 and on a unix socket in that directory, with
#       logical decoding on (and the extra settings given), run CMD, then
#       stop the cluster and remove the directory, also when CMD fails or
#       the script is interrupted. Exits with CMD's status.
#   pg-cluster.sh stop | start | restart
#       from inside CMD: stop (fast), start or restart that cluster.
#
# CMD sees PGHOST (the socket directory), PGPORT, PGUSER=postgres and
# PGDATABASE=postgres, which psql and pgbench read, EVFN_PG_CONNINFO (the
# same as a libpq connection string), EVFN_PG_TCP_CONNINFO (over TCP),
# EVFN_PG_DATA and EVFN_PG_CLUSTER (this script). The server refuses to run
# as root: as root it runs as the user postgres (runuser), which owns the
# directory; otherwise as the caller. Authentication is trust, fsync is
# off: a test cluster, never one for data.
set -eu
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/pg_ctl" ]; then
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && bindir=$d
	done
fi
[ -x "$bindir/pg_ctl" ] || {
	echo "pg-cluster.sh: pg_ctl not found (apt-get install postgresql-15)" >&2
	exit 99
}

# Runs the server's tools as the user that owns the cluster.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

ctl() { # ctl start|stop|restart
	data=${EVFN_PG_DATA:?not inside pg-cluster.sh run}
	case $1 in
	stop) as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null ;;
	start | restart)
		as_owner "$bindir/pg_ctl" -D "$data" -w -t 60 \
			-l "$data/../server.log" "$1" >/dev/null ;;
	esac
}

case ${1:-} in
stop | start | restart) ctl "$1"; exit 0 ;;
run) shift ;;
*)
	sed -n '3,21p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac

# Settings as postgresql.conf lines; -c adds (and overrides) one.
settings="wal_level=logical max_replication_slots=8 max_wal_senders=8
fsync=off full_page_writes=off listen_addresses=127.0.0.1"
while [ $# -gt 0 ]; do
	case $1 in
	-c) settings="$settings $2"; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "pg-cluster.sh run: no command" >&2; exit 2; }

# Short: the socket path must fit in sun_path (108 bytes).
dir=$(mktemp -d /tmp/evfn-pg.XXXXXX)
cleanup() {
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop \
			>/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 700 "$dir"
[ "$(id -u)" -ne 0 ] || chown postgres: "$dir"

if ! as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
	--locale=C --no-sync >"$dir/initdb.log" 2>&1; then
	cat "$dir/initdb.log" >&2
	exit 99
fi

{
	echo "unix_socket_directories = '$dir'"
	for kv in $settings; do
		echo "${kv%%=*} = '${kv#*=}'"
	done
} >"$dir/settings.conf"
as_owner sh -c "cat '$dir/settings.conf' >>'$dir/data/postgresql.conf'"

# A free port: ask the kernel for one, and try again if the server lost
# the race for it. The port that worked is kept for later starts (ctl).
started=
for attempt in 1 2 3 4 5 6 7 8; do
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	if as_owner "$bindir/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/server.log" \
		-o "-p $port" start >/dev/null 2>&1; then
		started=1
		break
	fi
done
if [ -z "$started" ]; then
	cat "$dir/server.log" >&2
	exit 99
fi
echo "port = $port" | as_owner sh -c "cat >>'$dir/data/postgresql.conf'"

export PGHOST="$dir" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
export EVFN_PG_CONNINFO="host=$dir port=$port user=postgres dbname=postgres"
export EVFN_PG_TCP_CONNINFO="postgresql://postgres@127.0.0.1:$port/postgres"
export EVFN_PG_DATA="$dir/data" EVFN_PG_CLUSTER="$self"
status=0
"$@" || status=$?
exit $status
