#!/bin/sh
# Growing arrays: CPU time per element of parsing, canonicalising,
# FHIRPath set functions, $validate and message checks on documents with
# 1,000 / 10,000 / 100,000 extensions, identifiers, object keys, Bundle
# entries and focus references. The figure must stay flat; the helper
# exits 1 (and says GROWS) when it rises more than 3x.
# usage: sh bench/bench_arrays.sh PZPGW_BINARY  (BENCH_ARRAYS_MAX_N caps n)
set -eu
bin=${1:?usage: bench_arrays.sh PZPGW_BINARY}
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$(dirname "$bin")/libpzpgw.a
[ -f "$lib" ] || { echo "bench_arrays: $lib missing (make all)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-arrays.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The helper links the library the binary is made of.
deps="openssl libcurl jansson uuid libevent libevent_openssl sqlite3 inih libxml-2.0"
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -I"$root/gateway" -I"$root/gateway/fhir" \
	$(pkg-config --cflags $deps) -o "$work/bench_arrays" \
	"$root/bench/bench_arrays.c" "$lib" $(pkg-config --libs $deps) -lm -pthread
"$work/bench_arrays" "$root/schemas" "${BENCH_ARRAYS_MAX_N:-100000}"
