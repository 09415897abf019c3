#!/bin/sh
# Benchmark of issue 11, the pull API: a gateway serving GP practice
# 90000003 receives BENCH_PATIENTS (10000) care plans from the hospital
# through its own intake (each F1's resources, its own patient and
# identifiers: about 20 indexed resources each); then 16 keep-alive mTLS
# clients run the full set of IG searches for one patient after another:
# sets and requests per second, p50/p99 of a whole set. Beside it, the
# accept rate of the first BENCH_ACCEPT (3000) messages with this binary
# (index written in the accept) and with the binary of the commit before
# issue 11 (no index; BENCH_BASE_BIN to give one, else it is built from
# git; BENCH_BASE_BIN=none leaves that comparison out), on fresh stores
# in the same run. Beside the rates, the CPU time of one set: the
# gateway's (utime + stime of its process over the 16-client run) and
# the load generator's; on a shared machine a steadier figure than the
# rates, and in a closed loop of 16 clients latency ~= 16 / sets per
# second.
#
# usage: sh bench/bench_pull.sh PZPGW_BINARY
# env: BENCH_PATIENTS, BENCH_ACCEPT, BENCH_SETS (5000), BENCH_CONC (16),
# BENCH_BASE_REV (5cea13c), BENCH_BASE_BIN, BENCH_KEEP=1 keeps the work
# directory.
set -eu

bin=${1:?usage: bench_pull.sh PZPGW_BINARY}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
py=/usr/bin/python3
npat=${BENCH_PATIENTS:-10000}
nacc=${BENCH_ACCEPT:-3000}
sets=${BENCH_SETS:-5000}
conc=${BENCH_CONC:-16}
[ "$nacc" -le "$npat" ] || nacc=$npat

work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-pull.XXXXXX")
pid=""
cleanup() {
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

# The binary before issue 11, for the accept rate without the index.
base=$(bench_base_bin "$src" "$work")

port=$(bench_free_port)

# conf NAME BINARY: a gateway in $work/NAME with the rules BINARY reads;
# start BINARY NAME runs it (sets $pid); stop (bench/lib.sh).
conf() {
	bench_conf "$work/$1" "$port" "$pki" "$(bench_schemas "$2" "$src")"
}
start() { bench_start "$1" "$work/$2"; }
stop() { bench_stop; }
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# The message: F1's resources for patient ######### (the BSN loadgen
# puts in), every identifier made unique per message with the counter.
$py "$src/bench/message_template.py" "$src" "$work/tpl.json"

# The IG searches of one patient, by BSN (chained patient.identifier).
bench_searches "$work/searches"
nsearch=$(grep -c . "$work/searches")

post() {
	"$lg" post "https://localhost:$port/fhir/\$process-message" \
		"$pki/hospital.crt" "$pki/hospital.key" "$pki/ca.pem" "$@"
}
echo "machine: $(nproc) cores; $npat patients; $conc connections;" \
	"message $(wc -c <"$work/tpl.json") bytes"

off=""
if [ -n "$base" ]; then
	conf base "$base"
	start "$base" base
	off=$(post "$conc" "$nacc" 0 "$work/tpl.json")
	stop
	echo "accept, index off (before issue 11): $off"
fi
conf pull "$bin"
start "$bin" pull
on=$(post "$conc" "$nacc" 0 "$work/tpl.json")
echo "accept, index on:                    $on"
if [ -n "$off" ]; then
	$py - "$(field rate "$on")" "$(field rate "$off")" <<'EOF'
import sys
on, off = (float(x) for x in sys.argv[1:3])
print("accept rate index on / off: %.2f (target: at least 0.80)" % (on / off))
EOF
fi
# The rest of the patients (loadgen numbers patients from 0 per run:
# the fill continues at $nacc through a template offset).
if [ "$npat" -gt "$nacc" ]; then
	rest=$((npat - nacc))
	LOADGEN_PATIENT_BASE=$nacc post "$conc" "$rest" 0 "$work/tpl.json" \
		>"$work/fill" || { cat "$work/fill"; exit 1; }
	echo "filled: $(cat "$work/fill")"
fi
rows=$($py - "$work/pull/pzpgw.db" <<'EOF'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
print(c.execute("SELECT count(*) FROM res_versions").fetchone()[0])
EOF
)
echo "index: $rows resource versions"
# A search without a patient over every Consent sent to the practice is
# refused (too-costly), not held in memory whole.
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$pki/ca.pem" \
	--cert "$pki/gp1.crt" --key "$pki/gp1.key" \
	"https://localhost:$port/fhir/Consent?_count=1")
echo "search over all Consents (no patient): HTTP $code (400: refused)"
# One client first (a set's own latency, nothing queued beside it);
# loadgen fails on any answer other than 200.
one=$("$lg" get "https://localhost:$port" "$pki/gp1.crt" "$pki/gp1.key" \
	"$pki/ca.pem" 1 $((sets / 10 + 1)) "$npat" "$work/searches")
echo "IG search sets, 1 connection:  $one"
# utime + stime (clock ticks) of the gateway process.
cputicks() {
	sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}
t0=$(cputicks)
r=$("$lg" get "https://localhost:$port" "$pki/gp1.crt" "$pki/gp1.key" \
	"$pki/ca.pem" "$conc" "$sets" "$npat" "$work/searches")
t1=$(cputicks)
echo "IG search sets, $conc connections: $r"
$py - "$(field set_p99_ms "$one")" "$(field set_p99_ms "$r")" "$conc" \
	"$nsearch" "$((t1 - t0))" "$(getconf CLK_TCK)" "$(field sets "$r")" \
	"$(field client_cpu_ms_per_set "$r")" <<'EOF'
import sys
one, full, conc, n, ticks, hz, sets, client = sys.argv[1:9]
print("whole set (%s searches) for one patient at p99: %.2f ms alone,"
      " %.2f ms with %s clients at once (target: under 10 ms)"
      % (n, float(one), float(full), conc))
server = float(ticks) / float(hz) * 1000 / float(sets)
print("CPU per set with %s clients: gateway %.3f ms, load generator %.3f ms"
      % (conc, server, float(client)))
EOF
stop
