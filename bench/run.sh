#!/bin/sh
# Runs every bench/bench_*.sh with the pzpgw binary as $1; each prints its
# own figures, measured side by side with a reference in the same run.
set -e
bin=${1:?usage: bench/run.sh PZPGW_BINARY}
dir=$(dirname "$0")
status=0
for b in "$dir"/bench_*.sh; do
	[ -f "$b" ] || continue
	echo "== $(basename "$b" .sh)"
	sh "$b" "$bin" || status=1
done
exit $status
