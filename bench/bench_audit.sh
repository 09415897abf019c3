#!/bin/sh
# What recording reads costs accepts: the store's writer alone, then
# while audit records arrive at BENCH_AUDIT_RATE per second (default
# 10000), twice each, alternating, on a real store file. Prints accepts
# per second and p50/p99 (submit to callback) for each run and the ratio
# of the accept rates with and without audit records.
# usage: sh bench/bench_audit.sh PZPGW_BINARY
# (BENCH_SECONDS per run, default 3)
set -eu

bin=${1:?usage: bench/bench_audit.sh PZPGW_BINARY}
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$(dirname "$bin")/libpzpgw.a
secs=${BENCH_SECONDS:-3}
rate=${BENCH_AUDIT_RATE:-10000}
[ -f "$lib" ] || { echo "bench_audit: $lib missing (make all)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-audit.XXXXXX")
trap 'rm -rf "$work"' EXIT

deps="openssl libcurl jansson uuid libevent libevent_openssl sqlite3 inih libxml-2.0"
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -I"$root/gateway" -I"$root/gateway/fhir" \
	$(pkg-config --cflags $deps) -o "$work/bench_audit" \
	"$root/bench/bench_audit.c" "$lib" $(pkg-config --libs $deps) -lm -pthread

"$work/bench_audit" "$work" "$secs" "$rate" 2>/dev/null | tee "$work/out"
awk '$2 == 0 {a += $4; na++} $2 > 0 {b += $4; nb++}
     END {printf "accepts with audit records / without: %.2f\n", (b / nb) / (a / na)}' "$work/out"
