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
# also counts in the statement that fired them). BENCH_NODES=2: two
# nodes (node = n1 on core 0, n2 on core 1) on the one database, each
# posted half the messages over 8 connections for patients of its own,
# as bench_nodes.sh runs them: a statement's time per call that grows
# against one node is time spent waiting for the other node (its locks,
# or the CPU both share). The warm-up and each load post messages of
# their own (bench_variant), so none of the measured ones is a
# duplicate.
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
	[ -z "$gp" ] || kill $gp 2>/dev/null || true
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
port2=$(bench_free_port)
nodes=${BENCH_NODES:-1}
for k in 1 2 3; do
	bench_variant "$k" "$work/tpl.json" "$work/tpl-$k.json"
done

hz=$(getconf CLK_TCK)

# start BINARY DIR PORT CORE NODE: the gateway of DIR (bench_conf'd) as
# node NODE ("" none) pinned to CORE, once it says it started; its pid
# added to $gp.
start() {
	[ -z "$5" ] || sed -i "s/^\[process\]\$/[process]\nnode = $5/" \
		"$2/pzpgw.conf"
	taskset -c "$4" "$1" serve -c "$2/pzpgw.conf" >"$2/log" 2>&1 &
	gp="$gp $!"
	i=0
	until grep -q event=started "$2/log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 300 ] && kill -0 $! 2>/dev/null ||
			{ cat "$2/log" >&2; exit 1; }
		sleep 0.1
	done
}

# one BINARY: a node (or BENCH_NODES=2 nodes) on a fresh database, the
# warm-up, the statistics reset, the measured posts; the database's URL
# in $db.
one() {
	db="${PZPGW_TEST_PG_URL%/*}/p$(date +%s%N)"
	sql "$PZPGW_TEST_PG_URL" "CREATE DATABASE ${db##*/}"
	sql "$db" "CREATE EXTENSION pg_stat_statements"
	store="backend = postgresql
url = $db
password_file = $PZPGW_TEST_PG_PASSWORD_FILE"
	bench_conf "$work/gw" "$port" "$pki" "$src/schemas" "$store"
	gp=""
	if [ "$nodes" = 2 ]; then
		bench_conf "$work/gw2" "$port2" "$pki" "$src/schemas" "$store"
		start "$1" "$work/gw" "$port" 0 n1
		start "$1" "$work/gw2" "$port2" 1 n2
	else
		start "$1" "$work/gw" "$port" 0 ""
	fi
	post "$port" 16 100 "$work/tpl-1.json" >/dev/null
	sql "$db" "SELECT pg_stat_statements_reset()" >/dev/null
	g0=$(bench_ticks $gp)
	d0=$(bench_ticks $(bench_db_pids "$work/server"))
	pp=""
	if [ -n "${BENCH_PERF:-}" ] && [ "$1" = "$bin" ]; then
		perf record -q -g -o "$BENCH_PERF" -p "$(bench_db_pids "$work/server" | tr ' ' ',' |
			sed 's/,*$//')" >/dev/null 2>&1 &
		pp=$!
	fi
	if [ "$nodes" = 2 ]; then
		LOADGEN_PATIENT_BASE=100000 post "$port" 8 $((n / 2)) \
			"$work/tpl-2.json" >"$work/load1" &
		l1=$!
		LOADGEN_PATIENT_BASE=200000 post "$port2" 8 $((n / 2)) \
			"$work/tpl-3.json" >"$work/load2"
		wait $l1
		r="$(cat "$work/load1") | $(cat "$work/load2")"
	else
		r=$(post "$port" 16 "$n" "$work/tpl-2.json")
	fi
	[ -z "$pp" ] || { kill -INT $pp; wait $pp || true; }
	g1=$(bench_ticks $gp)
	d1=$(bench_ticks $(bench_db_pids "$work/server"))
	ok=$(echo "$r" | tr ' ' '\n' | sed -n 's/^ok=//p' |
		awk '{ s += $1 } END { print s }')
	st=$(psql -X -q -A -t -d "$db" -c "SELECT round(sum(total_exec_time)::numeric,
		1) FROM pg_stat_statements WHERE toplevel AND query NOT LIKE
		'%pg_stat_statements%'")
	echo "$r $(awk -v g=$((g1 - g0)) -v d=$((d1 - d0)) -v s="$st" \
		-v n="${ok:-1}" -v hz="$hz" 'BEGIN { printf \
		"node_cpu_ms=%.2f db_cpu_ms=%.2f db_stmt_ms=%.2f", \
		g * 1000 / hz / n, d * 1000 / hz / n, s / n }')"
	kill $gp
	for p in $gp; do wait "$p" || true; done
	gp=""
}
# post PORT CONNECTIONS N TEMPLATE: loadgen's line.
post() {
	"$lg" post "https://localhost:$1/fhir/\$process-message" \
		"$pki/hospital.crt" "$pki/hospital.key" "$pki/ca.pem" "$2" \
		"$3" 0 "$4"
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
