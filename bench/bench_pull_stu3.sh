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
. "$src/bench/lib.sh"
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
bench_loadgen "$lg" "$src"
sh "$src/certs/dev-pki.sh" "$work/pki" >/dev/null
pki=$work/pki
port=$(bench_free_port)
bench_conf "$work" "$port" "$pki" "$src/schemas"
bench_start "$bin" "$work"

# The message template: F1's resources, the BSN ######### and every
# other identifier made unique per message (loadgen fills them in).
$py "$src/bench/message_template.py" "$src" "$work/tpl.json"
bench_searches "$work/searches"
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
