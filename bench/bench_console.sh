#!/bin/sh
# The operator console's figures (issue 17): "the overview page over a
# store with 1,000,000 messages under 200 ms at p99, and no added p99 on
# intake while the console is refreshed every second".
#
# 1. A store of BENCH_CONSOLE_MESSAGES (100000) messages over 60 days
#    (bench_big_store of bench/lib.sh), a gateway on it with [admin] time_limit =
#    10m (a slow page is measured, not cut): BENCH_CONSOLE_PAGES (20)
#    loads of the overview page one after the other, then of the usage
#    page (30 days by day); p50/p99 of curl's time_total.
# 2. Intake on a copy of that store: loadgen posts BENCH_ACCEPT (1500) F1
#    messages paced at BENCH_RATE (100) per second over BENCH_CONC (8)
#    keep-alive mTLS connections, p50/p99 as loadgen measures them,
#    without and with a client that loads the overview page, waits a
#    second and loads it again for the whole run; alternated
#    BENCH_ROUNDS (2) times, side by side in one run.
#
# usage: sh bench/bench_console.sh PZPGW_BINARY
# env: BENCH_CONSOLE_MESSAGES, BENCH_CONSOLE_PAGES, BENCH_ACCEPT,
# BENCH_RATE, BENCH_CONC, BENCH_ROUNDS, BENCH_KEEP=1 keeps the work
# directory.
set -eu

bin=${1:?usage: bench_console.sh PZPGW_BINARY}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
py=/usr/bin/python3
nmsg=${BENCH_CONSOLE_MESSAGES:-100000}
npages=${BENCH_CONSOLE_PAGES:-20}
nacc=${BENCH_ACCEPT:-1500}
rate=${BENCH_RATE:-100}
conc=${BENCH_CONC:-8}
rounds=${BENCH_ROUNDS:-2}

work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-console.XXXXXX")
pid=""
viewer=""
cleanup() {
	[ -z "$viewer" ] || kill "$viewer" 2>/dev/null || true
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

lg=$work/loadgen
bench_loadgen "$lg" "$src"
sh "$src/certs/dev-pki.sh" "$work/pki" >/dev/null
pki=$work/pki
$py "$src/bench/message_template.py" "$src" "$work/tpl.json"
port=$(bench_free_port)
aport=$(bench_free_port)

# The big store, made once and copied for each gateway.
t0=$(date +%s)
bench_big_store "$nmsg" "$work/big.db" "$bin"
echo "machine: $(nproc) cores; store of $nmsg messages over 60 days" \
	"(bench_big_store, $(($(date +%s) - t0)) s)"

# gateway NAME: a fresh gateway in $work/NAME on a copy of the big store,
# its console on $aport; started (sets $pid).
gateway() {
	rm -rf "$work/$1"
	# retention: the store spans 60 days, and pruning the older half
	# at start (one transaction on the loop thread) would be timed too
	bench_conf "$work/$1" "$port" "$pki" "$(bench_schemas "$bin" "$src")" \
		"retention = 3650"
	sed -i -e "s/^port = 0\$/port = $aport\ntime_limit = 10m/" \
		"$work/$1/pzpgw.conf"
	cp "$work/big.db" "$work/$1/pzpgw.db"
	bench_start "$bin" "$work/$1"
}

# load URL FILE: curl's time_total (s) of one load of URL appended to
# FILE; a status other than 200 ends the bench.
load() {
	r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$1")
	case $r in
	"200 "*) echo "${r#200 }" >>"$2" ;;
	*)
		echo "bench_console: $1 answered $r" >&2
		return 1
		;;
	esac
}

# pct FILE: "p50 X ms p99 Y ms (n=N)" of the seconds in FILE.
pct() {
	sort -g "$1" | awk '{ v[NR] = $1 * 1000 } END {
		if (NR == 0) { print "no samples"; exit }
		i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
		i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
		printf "p50 %.0f ms p99 %.0f ms (n=%d)", v[i50], v[i99], NR }'
}

# 1. page times over the big store
gateway pages
base="http://127.0.0.1:$aport"
load "$base/" "$work/warm" # the worker opens its store connection
: >"$work/overview"
: >"$work/usage"
i=0
while [ $i -lt "$npages" ]; do
	i=$((i + 1))
	load "$base/" "$work/overview"
done
i=0
while [ $i -lt "$npages" ]; do
	i=$((i + 1))
	load "$base/usage" "$work/usage"
done
bench_stop
echo "overview page ($nmsg messages): $(pct "$work/overview")" \
	"(target at 1,000,000: p99 under 200 ms)"
echo "usage page, 30 days by day:   $(pct "$work/usage")"

# 2. intake with and without a console client
# intake NAME VIEW: p50 and p99 (ms) of paced intake; VIEW 1 runs the
# overview client meanwhile (its loads appended to $work/NAME.views).
intake() {
	gateway "$1"
	: >"$work/$1.views"
	if [ "$2" = 1 ]; then
		(while :; do
			load "http://127.0.0.1:$aport/" "$work/$1.views" ||
				exit 1
			sleep 1
		done) &
		viewer=$!
	fi
	r=$("$lg" post "https://localhost:$port/fhir/\$process-message" \
		"$pki/hospital.crt" "$pki/hospital.key" "$pki/ca.pem" \
		"$conc" "$nacc" "$rate" "$work/tpl.json")
	if [ -n "$viewer" ]; then
		kill "$viewer" 2>/dev/null || true
		wait "$viewer" 2>/dev/null || true
		viewer=""
	fi
	bench_stop
	case $r in *" errors=0 "*) ;; *)
		echo "bench_console: $1: $r" >&2
		exit 1
		;;
	esac
	p50=$(echo "$r" | tr ' ' '\n' | sed -n 's/^p50_ms=//p')
	p99=$(echo "$r" | tr ' ' '\n' | sed -n 's/^p99_ms=//p')
	echo "$p50 $p99"
}

echo "intake: $nacc messages at $rate/s over $conc connections"
i=0
while [ $i -lt "$rounds" ]; do
	i=$((i + 1))
	a=$(intake quiet$i 0)
	b=$(intake viewed$i 1)
	echo "round $i: without console p50 $(echo $a | cut -d' ' -f1) ms" \
		"p99 $(echo $a | cut -d' ' -f2) ms | overview each second" \
		"p50 $(echo $b | cut -d' ' -f1) ms p99 $(echo $b | cut -d' ' -f2)" \
		"ms; overview loads $(pct "$work/viewed$i.views")"
done
