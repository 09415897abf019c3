#!/bin/sh
# Where a PostgreSQL accept's time goes: one node pinned to core 0 on a
# throwaway server (tests/pg/pg.sh) with pg_stat_statements loaded posts
# BENCH_ACCEPT (1000) copies of bench_nodes' F1 message over 16
# connections, after a warm-up of 100; prints loadgen's line and the
# server's statements by total time (calls, ms, ms per call, rows), i.e.
# the round trips and server work per accepted message. With
# BENCH_PREV_BIN the two builds alternate BENCH_ROUNDS (2) times, each
# on a fresh database, rates only, then the statements of this build.
# Each run's line ends with CPU figures per accepted message, steadier
# than rates on a shared machine: node_cpu_ms (the gateway process),
# db_cpu_ms (every process of the PostgreSQL server: its backends, WAL
# writer, checkpointer) and db_stmt_ms (the statements' own time in
# pg_stat_statements). BENCH_PERF=FILE: perf record -g of the server's
# processes during this build's measured posts, into FILE (then
# `perf report -i FILE --no-children`). BENCH_PG_TRACK=all: the
# statements run by triggers and functions are listed too (their time
# also counts in the statement that fired them).
#
# usage: sh bench/bench_pg_profile.sh PZPGW_BINARY
set -eu

bin=${1:?usage: bench_pg_profile.sh PZPGW_BINARY}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
n=${BENCH_ACCEPT:-1000}
rounds=${BENCH_ROUNDS:-2}
prev=${BENCH_PREV_BIN:-}
case $prev in "" | /*) ;; *) prev=$(pwd)/$prev ;; esac
PGB=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

work=$(mktemp -d /tmp/pzpgw-bench-pgprof.XXXXXX)
chmod 755 "$work"
gp=""
cleanup() {
	[ -z "$gp" ] || kill "$gp" 2>/dev/null || true
	sh "$src/tests/pg/pg.sh" stop "$work/server" || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

lg=$work/loadgen
bench_loadgen "$lg" "$src"
sh "$src/certs/dev-pki.sh" "$work/pki" >/dev/null
pki=$work/pki
/usr/bin/python3 "$src/bench/message_template.py" "$src" "$work/tpl.json"
eval "$(sh "$src/tests/pg/pg.sh" start "$work/server")"
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
	else
		"$@"
	fi
}
as_owner sh -c "echo \"shared_preload_libraries = 'pg_stat_statements'\" \
	>>'$work/server/data/postgresql.conf'"
as_owner sh -c "echo \"pg_stat_statements.track = ${BENCH_PG_TRACK:-top}\" \
	>>'$work/server/data/postgresql.conf'"
as_owner "$PGB/pg_ctl" -D "$work/server/data" -l "$work/server/server.log" \
	-w restart >/dev/null
PGPASSWORD=$(head -1 "$PZPGW_TEST_PG_PASSWORD_FILE")
export PGPASSWORD
sql() { psql -X -q -d "$1" -c "$2"; }
port=$(bench_free_port)

hz=$(getconf CLK_TCK)

# one BINARY: a node on a fresh database, the warm-up, the statistics
# reset, the measured posts; the database's URL in $db.
one() {
	db="${PZPGW_TEST_PG_URL%/*}/p$(date +%s%N)"
	sql "$PZPGW_TEST_PG_URL" "CREATE DATABASE ${db##*/}"
	sql "$db" "CREATE EXTENSION pg_stat_statements"
	bench_conf "$work/gw" "$port" "$pki" "$src/schemas" "backend = postgresql
url = $db
password_file = $PZPGW_TEST_PG_PASSWORD_FILE"
	taskset -c 0 "$1" serve -c "$work/gw/pzpgw.conf" >"$work/gw/log" 2>&1 &
	gp=$!
	i=0
	until grep -q event=started "$work/gw/log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 300 ] && kill -0 $gp 2>/dev/null ||
			{ cat "$work/gw/log" >&2; exit 1; }
		sleep 0.1
	done
	post 100 >/dev/null
	sql "$db" "SELECT pg_stat_statements_reset()" >/dev/null
	g0=$(bench_ticks $gp)
	d0=$(bench_ticks $(bench_db_pids "$work/server"))
	pp=""
	if [ -n "${BENCH_PERF:-}" ] && [ "$1" = "$bin" ]; then
		perf record -q -g -o "$BENCH_PERF" -p "$(bench_db_pids "$work/server" | tr ' ' ',' |
			sed 's/,*$//')" >/dev/null 2>&1 &
		pp=$!
	fi
	r=$(post "$n")
	[ -z "$pp" ] || { kill -INT $pp; wait $pp || true; }
	g1=$(bench_ticks $gp)
	d1=$(bench_ticks $(bench_db_pids "$work/server"))
	ok=$(echo "$r" | tr ' ' '\n' | sed -n 's/^ok=//p')
	st=$(psql -X -q -A -t -d "$db" -c "SELECT round(sum(total_exec_time)::numeric,
		1) FROM pg_stat_statements WHERE toplevel AND query NOT LIKE
		'%pg_stat_statements%'")
	echo "$r $(awk -v g=$((g1 - g0)) -v d=$((d1 - d0)) -v s="$st" \
		-v n="${ok:-1}" -v hz="$hz" 'BEGIN { printf \
		"node_cpu_ms=%.2f db_cpu_ms=%.2f db_stmt_ms=%.2f", \
		g * 1000 / hz / n, d * 1000 / hz / n, s / n }')"
	kill $gp
	wait $gp || true
	gp=""
}
post() {
	"$lg" post "https://localhost:$port/fhir/\$process-message" \
		"$pki/hospital.crt" "$pki/hospital.key" "$pki/ca.pem" 16 \
		"$1" 0 "$work/tpl.json"
}

i=0
while [ -n "$prev" ] && [ $i -lt "$rounds" ]; do
	i=$((i + 1))
	echo "round $i previous: $(one "$prev")"
	echo "round $i this:     $(one "$bin")"
done
[ -z "$prev" ] || exit 0
one "$bin"
sql "$db" "SELECT calls, round(total_exec_time::numeric, 1) AS ms,
	round((total_exec_time / calls)::numeric, 3) AS per_call, rows,
	left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS statement
	FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25"
