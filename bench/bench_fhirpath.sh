#!/bin/sh
# FHIRPath evaluation speed (the PZP invariant ACP-Patient-1 on a Patient,
# microseconds per evaluation), best of BENCH_ROUNDS runs (default 5).
# With BENCH_FHIRPATH_REF=/path/to/libpzpgw.a of another commit (e.g. a
# `git worktree add` of the previous commit, built with make all), the
# same program is built against it too and the two run alternately, so
# both figures come from the same machine at the same time.
# usage: sh bench/bench_fhirpath.sh PZPGW_BINARY
set -eu
bin=${1:?usage: bench_fhirpath.sh PZPGW_BINARY}
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$(dirname "$bin")/libpzpgw.a
ref=${BENCH_FHIRPATH_REF:-}
rounds=${BENCH_ROUNDS:-5}
n=${BENCH_FHIRPATH_N:-20000}
[ -f "$lib" ] || { echo "bench_fhirpath: $lib missing (make all)" >&2; exit 2; }
[ -z "$ref" ] || [ -f "$ref" ] || { echo "bench_fhirpath: $ref missing" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-fhirpath.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The measuring program uses only the public API (fhirpath.h, fjson.h), so
# it links against the library of any commit.
deps="openssl libcurl jansson uuid libevent libevent_openssl sqlite3 inih libxml-2.0"
build() { # LIB OUT
	${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -I"$root/gateway" \
		-I"$root/gateway/fhir" $(pkg-config --cflags $deps) -o "$2" \
		"$root/bench/bench_fhirpath.c" "$1" $(pkg-config --libs $deps) \
		-lm -pthread
}
build "$lib" "$work/this"
[ -z "$ref" ] || build "$ref" "$work/ref"

us() { "$1" "$n" | awk '{print $(NF-3)}'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN {print (b == "" || a + 0 < b + 0) ? a : b}'; }
best_this="" best_ref=""
r=0
while [ "$r" -lt "$rounds" ]; do
	best_this=$(min "$(us "$work/this")" "$best_this")
	[ -z "$ref" ] || best_ref=$(min "$(us "$work/ref")" "$best_ref")
	r=$((r + 1))
done
echo "fhirpath: ACP-Patient-1 on a Patient: $best_this us per evaluation" \
	"(best of $rounds x $n)"
[ -z "$ref" ] || echo "fhirpath: reference $ref: $best_ref us per evaluation"
