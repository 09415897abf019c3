#!/bin/sh
# Benchmark of issue 12 on the pull API: what serving STU3 (each answer
# converted from the stored R4 on the way out) adds to serving R4. A
# gateway serving GP practice 90000003 receives BENCH_PATIENTS (1000)
# care plans (F1's resources, a patient each) through its intake; then
# one keep-alive mTLS client runs BENCH_SETS (300) sets of the IG's 11
# searches asking for R4, then the same asking for STU3 (Accept
# fhirVersion=3.0), alternating BENCH_ROUNDS (2) times on the same
# store. Printed side by side: the p50/p99 of a whole set and the
# gateway's CPU per set (utime+stime from /proc, the figure this shared
# machine keeps steadiest), and STU3 / R4, best and median of the runs
# (target: under 1.20).
#
# usage: sh bench/bench_pull_stu3.sh PZPGW_BINARY
# env: BENCH_PATIENTS, BENCH_SETS, BENCH_ROUNDS, BENCH_KEEP=1 keeps the
# work directory.
set -eu

bin=${1:?usage: bench_pull_stu3.sh PZPGW_BINARY}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
npat=${BENCH_PATIENTS:-1000}
sets=${BENCH_SETS:-300}
rounds=${BENCH_ROUNDS:-2}

work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-stu3.XXXXXX")
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
port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/pzpgw.conf" <<EOF
[organisation]
ura = 90000001
name = bench stu3
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
path = $work/pzpgw.db
create = yes
[limits]
max_pending = 1024
[process]
log = stderr
schemas = $src/schemas
[peer 90000002]
allow = push
[peer 90000003]
allow = pull
EOF
"$bin" serve -c "$work/pzpgw.conf" >"$work/log" 2>&1 &
pid=$!
i=0
until grep -q "event=started" "$work/log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
		cat "$work/log" >&2
		echo "bench_pull_stu3: the gateway did not start" >&2
		exit 1
	fi
	sleep 0.1
done

# The message template: F1's resources, the BSN ######### and every
# other identifier made unique per message (loadgen fills them in).
$py "$src/bench/message_template.py" "$src" "$work/tpl.json"
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
fill=$("$lg" post "https://localhost:$port/fhir/\$process-message" \
	"$pki/hospital.crt" "$pki/hospital.key" "$pki/ca.pem" 8 "$npat" 0 \
	"$work/tpl.json")
echo "machine: $(nproc) cores; $npat patients ($fill); $sets sets of" \
	"$(grep -c . "$work/searches") searches per run, 1 connection"
# The answers compared: the same searches, the same entries, each
# converted for STU3 (bytes of one set's answers in each version).
for v in "" "; fhirVersion=3.0"; do
	n=0
	while read -r path; do
		b=$(curl -s --cacert "$pki/ca.pem" --cert "$pki/gp1.crt" \
			--key "$pki/gp1.key" -H "Accept: application/fhir+json$v" \
			"https://localhost:$port$(echo "$path" |
				sed 's/#########/100000009/')" | wc -c)
		n=$((n + b))
	done <"$work/searches"
	echo "one set's answers${v:+ (STU3)}: $n bytes"
done

# cpu: the gateway's utime+stime in clock ticks.
cpu() {
	awk '{ print $14 + $15 }' "/proc/$pid/stat"
}
# run VERSION ACCEPT: one run; prints "VERSION p50 p99 cpu_ms_per_set".
run() {
	c0=$(cpu)
	out=$(LOADGEN_ACCEPT="Accept: $2" "$lg" get "https://localhost:$port" \
		"$pki/gp1.crt" "$pki/gp1.key" "$pki/ca.pem" 1 "$sets" "$npat" \
		"$work/searches")
	c1=$(cpu)
	case $out in *"errors=0 "*) ;; *)
		echo "bench_pull_stu3: $1 run failed: $out" >&2
		exit 1 ;;
	esac
	echo "$1 $(echo "$out" | tr ' ' '\n' | sed -n 's/^set_p50_ms=//p') \
$(echo "$out" | tr ' ' '\n' | sed -n 's/^set_p99_ms=//p') \
$(( (c1 - c0) * 1000 / $(getconf CLK_TCK) )) $sets"
}
# A warm-up run of each (caches, connections), not counted.
run r4 "application/fhir+json" >/dev/null
run stu3 "application/fhir+json; fhirVersion=3.0" >/dev/null
: >"$work/runs"
r=0
while [ $r -lt "$rounds" ]; do
	run r4 "application/fhir+json" >>"$work/runs"
	run stu3 "application/fhir+json; fhirVersion=3.0" >>"$work/runs"
	r=$((r + 1))
done
$py - "$work/runs" <<'EOF'
import sys
runs = {"r4": [], "stu3": []}
for line in open(sys.argv[1]):
    v, p50, p99, cpu_ms, sets = line.split()
    runs[v].append((float(p50), float(p99), float(cpu_ms) / int(sets)))
for v in ("r4", "stu3"):
    for p50, p99, cpu in runs[v]:
        print("%-4s set p50 %6.2f ms  p99 %6.2f ms  gateway CPU %6.2f ms/set"
              % (v, p50, p99, cpu))
def best(v, i):
    return min(x[i] for x in runs[v])
def median(v, i):
    xs = sorted(x[i] for x in runs[v])
    return xs[len(xs) // 2]
for name, f in (("best", best), ("median", median)):
    print("STU3 / R4 (%s of each): set p50 %.2f, gateway CPU per set %.2f"
          " (target: under 1.20)"
          % (name, f("stu3", 0) / f("r4", 0), f("stu3", 2) / f("r4", 2)))
EOF
