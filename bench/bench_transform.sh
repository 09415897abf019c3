#!/bin/sh
# Conversion speed (issue 12): the F1 scenario Bundle converted R4 -> STU3
# and that result STU3 -> R4, in CPU microseconds per Bundle, side by side
# with validating the same Bundle in its own version (target: converting
# costs less than validating). One core, warm, same run.
# usage: sh bench/bench_transform.sh BUILD/pzpgw   (run from the repo root)
set -e
bin=${1:?usage: bench_transform.sh PZPGW_BINARY}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/bench
secs=${BENCH_SECONDS:-3}
mkdir -p "$out"
lib=$(dirname "$bin")/libpzpgw.a
bundle=$root/tests/data/valid/r4/pzp-0.1.3/bundle-F1.json

${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -I"$root/gateway" -I"$root/gateway/fhir" \
	$(pkg-config --cflags jansson) \
	-o "$out/transform_rate" "$root/bench/transform_rate.c" "$lib" \
	$(pkg-config --libs openssl libcurl jansson uuid libevent \
		libevent_openssl sqlite3 inih libxml-2.0) -lm -pthread

"$bin" transform --to stu3 "$bundle" > "$out/bundle-F1-stu3.json"
for dir in "r4 $bundle" "stu3 $out/bundle-F1-stu3.json"; do
	set -- $dir
	r=$("$out/transform_rate" "$root/schemas" "$secs" "$1" "$2")
	conv=$(echo "$r" | sed -n 's/^convert_us=//p')
	val=$(echo "$r" | sed -n 's/^validate_us=//p')
	echo "F1 Bundle from $1: convert $conv us, validate $val us" \
		"(parse+convert $(echo "$r" | sed -n 's/^parse_convert_per_s=//p')/s)" \
		"$(awk -v c="$conv" -v v="$val" 'BEGIN { printf "convert/validate %.2f (target < 1)", c / v }')"
done
