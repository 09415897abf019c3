#!/bin/sh
# A throwaway PostgreSQL server for the tests: initdb and pg_ctl of
# Debian's postgresql package into DIR, as an unprivileged user (the
# server refuses to run as root: CI runs as root, so `nobody` owns DIR),
# listening on 127.0.0.1 at a free port with scram-sha-256 password
# authentication for user pzpgw.
#
#   tests/pg/pg.sh start DIR   prints the shell lines
#                              PZPGW_TEST_PG_URL=postgresql://...
#                              PZPGW_TEST_PG_PASSWORD_FILE=DIR/password
#                              (also kept in DIR/env)
#   tests/pg/pg.sh stop DIR    stops it (immediate) and removes DIR
#
# DIR's parent directories must be searchable by nobody (e.g. a
# mktemp -d under /tmp with mode 755). Exit 77 (skip) with a message when the package is not installed.
set -eu

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

as_owner() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
	else
		"$@"
	fi
}

case "$cmd" in
start)
	if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
		echo "pg.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
		exit 77
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ "$(id -u)" = 0 ] && chown nobody:nogroup "$dir"
	chmod 700 "$dir"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	umask 077
	printf '%s\n' "$pw" >"$dir/password"
	[ "$(id -u)" = 0 ] && chown nobody:nogroup "$dir/password"
	as_owner "$PGBIN/initdb" -D "$dir/data" -U pzpgw --pwfile="$dir/password" \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 \
		-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	# In the configuration file, so a test may stop and start the
	# server again with plain pg_ctl -D DIR/data -l DIR/server.log start.
	as_owner sh -c "cat >>'$dir/data/postgresql.conf'" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
CONF
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	# The tests read the password file as themselves (root in CI).
	[ "$(id -u)" = 0 ] && chown root:root "$dir/password"
	url="postgresql://pzpgw@127.0.0.1:$port/postgres"
	{
		echo "PZPGW_TEST_PG_URL=$url"
		echo "PZPGW_TEST_PG_PASSWORD_FILE=$dir/password"
		echo "PZPGW_TEST_PG_DIR=$dir"
	} | tee "$dir/env"
	;;
stop)
	[ -d "$dir/data" ] && as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 start|stop DIR" >&2
	exit 2
	;;
esac
