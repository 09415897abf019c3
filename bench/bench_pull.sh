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
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -o "$lg" \
	"$src/bench/loadgen.c" $(pkg-config --cflags --libs libcurl)
sh "$src/certs/dev-pki.sh" "$work/pki" >/dev/null
pki=$work/pki

# The binary before issue 11, for the accept rate without the index.
base=${BENCH_BASE_BIN:-}
if [ "$base" = none ]; then
	base=""
elif [ -z "$base" ]; then
	rev=${BENCH_BASE_REV:-5cea13c}
	if git -C "$src" cat-file -e "$rev" 2>/dev/null; then
		mkdir -p "$work/base"
		git -C "$src" archive "$rev" | tar -x -C "$work/base"
		make -C "$work/base" -j2 all >"$work/base.log" 2>&1
		base=$work/base/build/release/pzpgw
	fi
fi

port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# conf NAME BINARY: a gateway (URA 90000001) serving 90000003 in
# $work/NAME, with the rules BINARY reads.
conf() {
	mkdir -p "$work/$1"
	cat >"$work/$1/pzpgw.conf" <<EOF
[organisation]
ura = 90000001
name = bench $1
[listen]
address = 127.0.0.1
port = $port
certificate = $pki/gateway.crt
key = $pki/gateway.key
trust = $pki/uzi-server-ca.pem
environment = test
[admin]
port = 0
[store]
path = $work/$1/pzpgw.db
create = yes
[limits]
max_pending = 1024
[process]
log = stderr
schemas = $(bench_schemas "$2" "$src")
[peer 90000002]
allow = push
[peer 90000003]
allow = pull
EOF
}

# start BINARY NAME: run it on $work/NAME; sets $pid.
start() {
	"$1" serve -c "$work/$2/pzpgw.conf" >"$work/$2/log" 2>&1 &
	pid=$!
	i=0
	until grep -q "event=started" "$work/$2/log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
			cat "$work/$2/log" >&2
			echo "bench_pull: gateway $2 did not start" >&2
			exit 1
		fi
		sleep 0.1
	done
}
stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
}
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# The message: F1's resources for patient ######### (the BSN loadgen
# puts in), every identifier made unique per message with the counter.
$py "$src/bench/message_template.py" "$src" "$work/tpl.json"

# The IG searches of one patient, by BSN (chained patient.identifier).
B='http://fhir.nl/fhir/NamingSystem/bsn%7C#########'
S='http://snomed.info/sct%7C'
cat >"$work/searches" <<EOF
/fhir/Patient?identifier=$B
/fhir/Procedure?patient.identifier=$B&code=${S}713603004&_include=Procedure:encounter
/fhir/Encounter?patient.identifier=$B&_include=Encounter:reason-reference
/fhir/Consent?patient.identifier=$B&scope=http://terminology.hl7.org/CodeSystem/consentscope%7Ctreatment&category=${S}129125009&_include=Consent:actor
/fhir/Consent?patient.identifier=$B&scope=http://terminology.hl7.org/CodeSystem/consentscope%7Cadr&_include=Consent:actor
/fhir/Goal?patient.identifier=$B
/fhir/Observation?patient.identifier=$B&code=${S}153851000146100,${S}395091006,${S}340171000146104,${S}247751003
/fhir/DeviceUseStatement?patient.identifier=$B&_include=DeviceUseStatement:device
/fhir/Communication?patient.identifier=$B
/fhir/CommunicationRequest?patient.identifier=$B
/fhir/QuestionnaireResponse?patient.identifier=$B&questionnaire=https://fhir.iknl.nl/fhir/Questionnaire/ACP-zib2020
EOF
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
