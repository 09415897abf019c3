#!/bin/sh
# CPU per accepted message at the gateway (issue 14's speed figure, and
# issue 11's "accept rate within 20% of before the index" measured as CPU,
# which a shared machine swings far less than a rate): a gateway serving
# GP practice 90000003 (allow = pull, so every message is indexed)
# accepts BENCH_ACCEPT (2000) copies of the F1 message (each its own
# patient and identifiers, about 30 KB) over BENCH_CONC (16) keep-alive
# mTLS connections. The server's CPU (utime + stime of /proc/PID/stat,
# start-up excluded) divided by the accepts, for this binary and for the
# base binary (BENCH_BASE_BIN, else built from git rev BENCH_BASE_REV,
# 5cea13c: the commit before issue 11), alternated BENCH_ROUNDS (2) times
# on fresh stores in the same run; the ratio base / this is the CPU
# counterpart of "rate with index / rate without" (target: >= 0.80).
#
# usage: sh bench/bench_accept.sh PZPGW_BINARY
# env: BENCH_ACCEPT, BENCH_CONC, BENCH_ROUNDS, BENCH_BASE_REV,
# BENCH_BASE_BIN (none: no base), BENCH_PREV_BIN, BENCH_KEEP=1 keeps the
# work directory, BENCH_PG=1 also measures this binary with [store]
# backend = postgresql on a throwaway server (tests/pg/pg.sh; the
# server's CPU is not counted: compare the rates), and BENCH_PREV_BIN
# with it too.
set -eu

bin=${1:?usage: bench_accept.sh PZPGW_BINARY}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
py=/usr/bin/python3
nacc=${BENCH_ACCEPT:-2000}
conc=${BENCH_CONC:-16}
rounds=${BENCH_ROUNDS:-2}

work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-accept.XXXXXX")
pid=""
pgdir=""
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
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

base=$(bench_base_bin "$src" "$work")

# BENCH_PREV_BIN: another build (e.g. the previous commit's) measured in
# the same rounds, for before/after figures.
prev=${BENCH_PREV_BIN:-}
case $prev in "" | /*) ;; *) prev=$(pwd)/$prev ;; esac

port=$(bench_free_port)

pgurl=""
if [ -n "${BENCH_PG:-}" ]; then
	pgdir=$(mktemp -d /tmp/pzpgw-bench-pg.XXXXXX)
	chmod 755 "$pgdir"
	eval "$(sh "$src/tests/pg/pg.sh" start "$pgdir/server")"
	pgurl=$PZPGW_TEST_PG_URL
	pgpw=$PZPGW_TEST_PG_PASSWORD_FILE
fi

# store_pg NAME: for a NAME ending in -pg, a fresh database's keys.
store_pg() {
	case $1 in *-pg) ;; *) return 0 ;; esac
	# (a subshell: a name from the clock, not a counter)
	db=bench_$(date +%s%N)
	PGPASSWORD=$(head -1 "$pgpw") psql -X -q -d "$pgurl" \
		-c "CREATE DATABASE $db" >/dev/null
	printf 'backend = postgresql\nurl = %s\npassword_file = %s\n' \
		"${pgurl%/*}/$db" "$pgpw"
}

# conf NAME BINARY: a fresh gateway in $work/NAME with the rules BINARY
# reads (bench/lib.sh); for a NAME ending in -pg on a fresh PostgreSQL
# database.
conf() {
	rm -rf "$work/$1"
	bench_conf "$work/$1" "$port" "$pki" "$(bench_schemas "$2" "$src")" \
		"$(store_pg "$1")"
}
start() { bench_start "$1" "$work/$2"; }
stop() { bench_stop; }
# cpu_ticks: utime + stime of the running gateway (all its threads).
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$pid/stat"
}

# The message: F1's resources for one patient (bench_pull.sh's form).
$py "$src/bench/message_template.py" "$src" "$work/tpl.json"

hz=$(getconf CLK_TCK)
echo "machine: $(nproc) cores; $nacc accepts x $conc connections;" \
	"message $(wc -c <"$work/tpl.json") bytes"

# one NAME BINARY: accept $nacc messages, print "us_per_accept rate".
one() {
	conf "$1" "$2"
	start "$2" "$1"
	t0=$(cpu_ticks)
	r=$("$lg" post "https://localhost:$port/fhir/\$process-message" \
		"$pki/hospital.crt" "$pki/hospital.key" "$pki/ca.pem" \
		"$conc" "$nacc" 0 "$work/tpl.json")
	t1=$(cpu_ticks)
	stop
	rate=$(echo "$r" | tr ' ' '\n' | sed -n 's/^rate=//p')
	errs=$(echo "$r" | tr ' ' '\n' | sed -n 's/^errors=//p')
	if [ "$errs" != 0 ]; then
		echo "bench_accept: $1: $r" >&2
		exit 1
	fi
	echo "$(((t1 - t0) * 1000000 / hz / nacc)) $rate"
}

# Each round runs base, the previous binary when given, then this one.
all=""
i=0
while [ $i -lt "$rounds" ]; do
	i=$((i + 1))
	b=""
	p=""
	if [ -n "$base" ]; then
		b=$(one base "$base")
		echo "round $i base (no index):  $(echo $b | cut -d' ' -f1) us CPU per accept, $(echo $b | cut -d' ' -f2)/s"
	fi
	if [ -n "$prev" ]; then
		p=$(one prev "$prev")
		echo "round $i previous binary:  $(echo $p | cut -d' ' -f1) us CPU per accept, $(echo $p | cut -d' ' -f2)/s"
	fi
	t=$(one this "$bin")
	echo "round $i this binary:      $(echo $t | cut -d' ' -f1) us CPU per accept, $(echo $t | cut -d' ' -f2)/s"
	g=""
	q=""
	if [ -n "$pgurl" ]; then
		if [ -n "$prev" ]; then
			q=$(one prev-pg "$prev")
			echo "round $i previous, PostgreSQL: $(echo $q | cut -d' ' -f1) us CPU per accept (gateway only), $(echo $q | cut -d' ' -f2)/s"
		fi
		g=$(one this-pg "$bin")
		echo "round $i this, PostgreSQL: $(echo $g | cut -d' ' -f1) us CPU per accept (gateway only), $(echo $g | cut -d' ' -f2)/s"
	fi
	all="$all $(echo $b | cut -d' ' -f1):$(echo $p | cut -d' ' -f1):$(echo $t | cut -d' ' -f1):$(echo $t | cut -d' ' -f2):$(echo $q | cut -d' ' -f2):$(echo $g | cut -d' ' -f2)"
done
$py - $all <<'EOF'
import sys
rows = [a.split(":") for a in sys.argv[1:]]
def mean(k):
    v = [float(r[k]) for r in rows if r[k] != ""]
    return sum(v) / len(v) if v else None
b, p, t = mean(0), mean(1), mean(2)
line = "CPU per accept: this %.0f us" % t
if p is not None:
    line += ", previous %.0f us (this / previous %.2f)" % (p, t / p)
if b is not None:
    line += ", base %.0f us; base / this %.2f (target: at least 0.80)" % (
        b, b / t)
print(line)
t, q, g = mean(3), mean(4), mean(5)
if g is not None:
    line = "accepts/s (mean): SQLite %.0f, PostgreSQL %.0f (PostgreSQL /" \
        " SQLite %.2f)" % (t, g, g / t)
    if q is not None:
        line += ", previous on PostgreSQL %.0f (this / previous %.2f)" % (
            q, g / q)
    print(line)
EOF
