#!/bin/sh
# Issue 16's benchmark, several nodes on one PostgreSQL: accepted messages
# per second and p99 latency, side by side in one run (same loadgen, same
# message: F1's resources for one patient, about 30 KB, for GP 90000003
# served here, so every message is indexed), of
#   - one node on SQLite,
#   - one node on PostgreSQL,
#   - two nodes on one PostgreSQL database (node = a1, a2),
# each node pinned with taskset to a core of its own (a1: core 0, a2:
# core 1; the one-node runs on core 0), the load generator and the
# PostgreSQL server unpinned (they share both cores with the nodes: on a
# 2-core machine that is what is left). Two nodes get a load generator
# each with half the connections and half the messages; their rate is all
# messages over the longer run, their p99 the larger of the two.
# Then the delivery rate A -> B of the messages queued while B was down,
# with one A node and with two (B on SQLite, unpinned).
#
# usage: sh bench/bench_nodes.sh PZPGW_BINARY
# env: BENCH_NODES_ACCEPT (2000 per configuration), BENCH_CONC (16),
# BENCH_ROUNDS (2), BENCH_NODES_DELIVER (1000), BENCH_KEEP=1 keeps the
# work directory, BENCH_PREV_BIN: another build also measured as one
# PostgreSQL node and as two in each round (before/after figures). Each
# line also gives "cpu/msg N+D ms": the CPU time of the node(s) and of
# the PostgreSQL server's processes per accepted message, steadier than
# the rates on a shared machine. Without the postgresql package only the SQLite figure
# is printed (and says so).
set -eu

bin=${1:?usage: bench_nodes.sh PZPGW_BINARY}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
py=/usr/bin/python3
nacc=${BENCH_NODES_ACCEPT:-2000}
conc=${BENCH_CONC:-16}
rounds=${BENCH_ROUNDS:-2}
nd=${BENCH_NODES_DELIVER:-1000}
prev=${BENCH_PREV_BIN:-}
case $prev in "" | /*) ;; *) prev=$(pwd)/$prev ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-nodes.XXXXXX")
pids=""
pgdir=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -z "$pgdir" ] || sh "$src/tests/pg/pg.sh" stop "$pgdir/server" || true
	[ -z "$pgdir" ] || rm -rf "$pgdir"
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

lg=$work/loadgen
bench_loadgen "$lg" "$src"
sh "$src/certs/dev-pki.sh" "$work/pki" >/dev/null
pki=$work/pki
$py "$src/bench/message_template.py" "$src" "$work/tpl.json"
for k in 1 2 3 4 5 6; do
	bench_variant "$k" "$work/tpl.json" "$work/tpl-$k.json"
done
$py "$src/bench/make_templates.py" "$src" "$work/tpl-remote" 64 \
	90000002 90000004 >/dev/null

pgurl=""
pgdir=$(mktemp -d /tmp/pzpgw-bench-pg.XXXXXX)
chmod 755 "$pgdir"
if env=$(sh "$src/tests/pg/pg.sh" start "$pgdir/server"); then
	eval "$env"
	pgurl=$PZPGW_TEST_PG_URL
	pgpw=$PZPGW_TEST_PG_PASSWORD_FILE
else
	echo "bench_nodes: PostgreSQL is not installed: SQLite figures only"
	rm -rf "$pgdir"
	pgdir=""
fi

# newdb: the [store] lines of a fresh PostgreSQL database.
newdb() {
	db=bench_$(date +%s%N)
	PGPASSWORD=$(head -1 "$pgpw") psql -X -q -d "$pgurl" \
		-c "CREATE DATABASE $db" >/dev/null
	printf 'backend = postgresql\nurl = %s\npassword_file = %s\n' \
		"${pgurl%/*}/$db" "$pgpw"
}

# gwconf NAME PORT NODE STORE_LINES [MORE]: gateway A's configuration in
# $work/NAME (bench/lib.sh bench_conf) named NODE ("" none); MORE: more
# sections.
gwconf() {
	rm -rf "$work/$1"
	bench_conf "$work/$1" "$2" "$pki" "$src/schemas" "$4
${5:-}"
	if [ -n "$3" ]; then
		sed -i "s/^\[process\]\$/[process]\nnode = $3/" \
			"$work/$1/pzpgw.conf"
	fi
}

# startp CORE NAME [BINARY]: run the gateway of $work/NAME pinned to
# CORE ("" not pinned) until it says it started; its pid in $started.
startp() {
	if [ -n "$1" ]; then
		taskset -c "$1" "${3:-$bin}" serve -c "$work/$2/pzpgw.conf" \
			>"$work/$2/log" 2>&1 &
	else
		"${3:-$bin}" serve -c "$work/$2/pzpgw.conf" >"$work/$2/log" 2>&1 &
	fi
	started=$!
	pids="$pids $started"
	i=0
	until grep -q "event=started" "$work/$2/log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 $started 2>/dev/null; then
			cat "$work/$2/log" >&2
			echo "bench_nodes: the gateway in $work/$2 did not start" >&2
			exit 1
		fi
		sleep 0.1
	done
}

stopall() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	pids=""
}

# post PORT CONC N [TEMPLATES...]: loadgen's line for N messages.
post() {
	port=$1 c=$2 n=$3
	shift 3
	[ $# -gt 0 ] || set -- "$work/tpl.json"
	"$lg" post "https://localhost:$port/fhir/\$process-message" \
		"$pki/hospital.crt" "$pki/hospital.key" "$pki/ca.pem" \
		"$c" "$n" 0 "$@"
}

field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

check() {
	if [ "$(field errors "$2")" != 0 ]; then
		echo "bench_nodes: $1: $2" >&2
		exit 1
	fi
}

p1=$(bench_free_port)
p2=$(bench_free_port)
[ "$p2" != "$p1" ] || p2=$(bench_free_port)

hz=$(getconf CLK_TCK)
# db_ticks: the PostgreSQL server's ticks (0 without one).
db_ticks() {
	bench_ticks $(bench_db_pids "${pgdir:+$pgdir/server}")
}
# cpu0: the nodes' and the server's ticks now (before a measured run);
# cpu1 N: "node_ms+db_ms", their CPU per message of N since cpu0.
cpu0() {
	g0=$(bench_ticks $pids)
	d0=$(db_ticks)
}
cpu1() {
	awk -v g=$(($(bench_ticks $pids) - g0)) -v d=$(($(db_ticks) - d0)) \
		-v n="$1" -v hz="$hz" 'BEGIN { printf "%.2f+%.2f", \
		g * 1000 / hz / n, d * 1000 / hz / n }'
}

# one NAME STORE_LINES [BINARY]: one node pinned to core 0; prints
# "rate p99 cpu" (cpu: see cpu1).
one() {
	gwconf "$1" "$p1" "" "$2"
	startp 0 "$1" "${3:-}"
	post "$p1" "$conc" 100 "$work/tpl-1.json" >/dev/null # warm-up
	cpu0
	r=$(post "$p1" "$conc" "$nacc" "$work/tpl-2.json")
	u=$(cpu1 "$nacc")
	check "$1" "$r"
	stopall
	echo "$(field rate "$r") $(field p99_ms "$r") $u"
}

# two [BINARY]: nodes a1 (core 0) and a2 (core 1) on one fresh database,
# a load generator each; prints "rate p99".
two() {
	s=$(newdb)
	gwconf two-a1 "$p1" a1 "$s"
	gwconf two-a2 "$p2" a2 "$s"
	startp 0 two-a1 "${1:-}"
	startp 1 two-a2 "${1:-}"
	post "$p1" "$conc" 100 "$work/tpl-3.json" >/dev/null
	post "$p2" "$conc" 100 "$work/tpl-4.json" >/dev/null
	cpu0
	LOADGEN_PATIENT_BASE=100000 post "$p1" $((conc / 2)) $((nacc / 2)) \
		"$work/tpl-5.json" >"$work/two-1.out" &
	l1=$!
	LOADGEN_PATIENT_BASE=200000 post "$p2" $((conc / 2)) $((nacc / 2)) \
		"$work/tpl-6.json" >"$work/two-2.out" &
	l2=$!
	wait $l1 $l2
	u=$(cpu1 $((nacc / 2 * 2)))
	r1=$(cat "$work/two-1.out")
	r2=$(cat "$work/two-2.out")
	check two-a1 "$r1"
	check two-a2 "$r2"
	stopall
	$py - "$(field requests "$r1")" "$(field seconds "$r1")" \
		"$(field p99_ms "$r1")" "$(field requests "$r2")" \
		"$(field seconds "$r2")" "$(field p99_ms "$r2")" <<'EOF'
import sys
n1, s1, q1, n2, s2, q2 = (float(x) for x in sys.argv[1:7])
print("%.0f %.1f" % ((n1 + n2) / max(s1, s2), max(q1, q2)), end="")
EOF
	echo " $u"
}

echo "machine: $(nproc) cores; $nacc accepts per configuration x $conc" \
	"connections; message $(wc -c <"$work/tpl.json") bytes; nodes" \
	"pinned (taskset), loadgen and PostgreSQL not"
all=""
i=0
while [ $i -lt "$rounds" ]; do
	i=$((i + 1))
	a=$(one sqlite "")
	echo "round $i one node, SQLite:      $(echo $a | cut -d' ' -f1)/s p99 $(echo $a | cut -d' ' -f2) ms cpu/msg $(echo $a | cut -d' ' -f3) ms"
	b=""
	c=""
	if [ -n "$pgurl" ]; then
		b=$(one pg "$(newdb)")
		echo "round $i one node, PostgreSQL:  $(echo $b | cut -d' ' -f1)/s p99 $(echo $b | cut -d' ' -f2) ms cpu/msg $(echo $b | cut -d' ' -f3) ms"
		c=$(two)
		echo "round $i two nodes, PostgreSQL: $(echo $c | cut -d' ' -f1)/s p99 $(echo $c | cut -d' ' -f2) ms cpu/msg $(echo $c | cut -d' ' -f3) ms"
		if [ -n "$prev" ]; then
			e=$(one prev-pg "$(newdb)" "$prev")
			echo "round $i one node, PostgreSQL, BENCH_PREV_BIN: $(echo $e | cut -d' ' -f1)/s p99 $(echo $e | cut -d' ' -f2) ms cpu/msg $(echo $e | cut -d' ' -f3) ms"
			e=$(two "$prev")
			echo "round $i two nodes, PostgreSQL, BENCH_PREV_BIN: $(echo $e | cut -d' ' -f1)/s p99 $(echo $e | cut -d' ' -f2) ms cpu/msg $(echo $e | cut -d' ' -f3) ms"
		fi
	fi
	all="$all $(echo $a | cut -d' ' -f1):$(echo $b | cut -d' ' -f1):$(echo $c | cut -d' ' -f1)"
done
$py - $all <<'EOF'
import sys
rows = [a.split(":") for a in sys.argv[1:]]
def mean(k):
    v = [float(r[k]) for r in rows if r[k] != ""]
    return sum(v) / len(v) if v else None
s, p, t = mean(0), mean(1), mean(2)
if p is None:
    print("accepts/s: SQLite %.0f (no PostgreSQL)" % s)
else:
    print("accepts/s (mean): SQLite %.0f, PostgreSQL %.0f, two PostgreSQL"
          " nodes %.0f; PostgreSQL / SQLite %.2f (target >= 0.7), two"
          " nodes / one %.2f (target >= 1.4)" % (s, p, t, p / s, t / p))
EOF
[ -n "$pgurl" ] || exit 0

# Delivery A -> B: nd messages queued for GP 90000004 (served by B) while
# B is down, then B started; the time until A's outbox has nothing due
# or in flight, with A as one node and as two.
bp=$(bench_free_port)
mkdir -p "$work/b"
cat >"$work/b/pzpgw.conf" <<END
[organisation]
ura = 90000009
name = bench b
[listen]
address = 127.0.0.1
port = $bp
certificate = $pki/gateway2.crt
key = $pki/gateway2.key
trust = $pki/uzi-server-ca.pem
environment = test
[admin]
port = 0
[store]
path = $work/b/pzpgw.db
create = yes
[limits]
max_pending = 1024
[process]
log = stderr
schemas = $src/schemas
[peer 90000001]
allow = push
relay = 90000002
[peer 90000004]
allow = pull
END
peer="[peer 90000004]
endpoint = https://localhost:$bp/fhir
server_ura = 90000009
allow = pull
concurrency = 32
[delivery]
backoff_min = 100ms
backoff_max = 200ms"

pending() {
	PGPASSWORD=$(head -1 "$pgpw") psql -X -q -A -t -d "$1" -c \
		"SELECT count(*) FROM outbox WHERE state IN ('due', 'inflight')"
}

# deliver NODES: prints "messages seconds".
deliver() {
	s=$(newdb)
	url=$(echo "$s" | sed -n 's/^url = //p')
	gwconf d-a1 "$p1" a1 "$s" "$peer"
	gwconf d-a2 "$p2" a2 "$s" "$peer"
	startp 0 d-a1
	[ "$1" = 1 ] || startp 1 d-a2
	r=$(post "$p1" "$conc" "$nd" "$work"/tpl-remote/*.json)
	check "deliver $1" "$r"
	q=$(pending "$url")
	rm -f "$work/b/pzpgw.db" "$work/b/pzpgw.db-wal" "$work/b/pzpgw.db-shm"
	startp "" b
	t0=$($py -c 'import time; print(time.time())')
	k=0
	while [ "$(pending "$url")" -gt 0 ]; do
		k=$((k + 1))
		if [ $k -gt 3000 ]; then
			echo "bench_nodes: delivery did not finish in 300 s" >&2
			exit 1
		fi
		sleep 0.1
	done
	t1=$($py -c 'import time; print(time.time())')
	stopall
	echo "$q $($py -c "print('%.2f' % ($t1 - $t0))")"
}
d1=$(deliver 1)
d2=$(deliver 2)
$py - $d1 $d2 <<'EOF'
import sys
q1, s1, q2, s2 = (float(x) for x in sys.argv[1:5])
r1, r2 = q1 / s1, q2 / s2
print("delivery A -> B: one A node %.0f/s (%d in %.2f s), two A nodes"
      " %.0f/s (%d in %.2f s): %.2fx (B on SQLite, unpinned, receives"
      " both)" % (r1, q1, s1, r2, q2, s2, r2 / r1))
EOF
