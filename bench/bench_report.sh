#!/bin/sh
# `pzpgw report` for the last 30 days over a big store (issue 17: under
# 200 ms at p99 for 1,000,000 messages), side by side with the binary of
# main before the roll-ups (7b994d2: store_list + store_show per row) on
# a smaller store, as the row-by-row way takes seconds per 100,000.
# Stores from bench/lib.sh bench_big_store (60 days of traffic). Prints
# p50/p99 wall time (process start to exit: what an operator waits for)
# per binary and store size, and with BENCH_PG=1 the same on a
# throwaway PostgreSQL (tests/pg/pg.sh).
# usage: sh bench/bench_report.sh PZPGW_BINARY
# (BENCH_REPORT_N messages, default 1000000; BENCH_REPORT_BASE_N for the
# old binary, default 100000; BENCH_REPORT_RUNS, default 20;
# BENCH_BASE_BIN / BENCH_BASE_REV as in lib.sh, default rev 7b994d2)
set -eu

bin=${1:?usage: bench/bench_report.sh PZPGW_BINARY}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
n=${BENCH_REPORT_N:-1000000}
nb=${BENCH_REPORT_BASE_N:-100000}
runs=${BENCH_REPORT_RUNS:-20}

work=$(mktemp -d "${TMPDIR:-/tmp}/pzpgw-bench-report.XXXXXX")
chmod 755 "$work"
pgdir=""
cleanup() {
	[ -z "$pgdir" ] || sh "$src/tests/pg/pg.sh" stop "$pgdir" || true
	rm -rf "$work"
}
trap cleanup EXIT

from=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)

# timed BINARY STORE RUNS LABEL [stats]: p50/p99 of RUNS reports (ms);
# with "stats", of `pzpgw queue stats` instead: the floor of any command
# on that store (process start, open or connect, schema check).
timed() {
	: >"$work/times"
	i=0
	while [ $i -lt "$3" ]; do
		t0=$(date +%s%N)
		if [ "${5:-}" = stats ]; then
			"$1" queue --store "$2" stats >/dev/null
		else
			"$1" report --store "$2" --from "$from" --format json \
				>"$work/out.json"
		fi
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000)) >>"$work/times"
		i=$((i + 1))
	done
	sort -n "$work/times" | awk -v label="$4" '
		{ v[NR] = $1 }
		END {
			p50 = v[int((NR * 50 + 99) / 100)]
			p99 = v[int((NR * 99 + 99) / 100)]
			printf "%-44s p50 %8.1f ms  p99 %8.1f ms  (%d runs)\n",
			    label, p50 / 1000, p99 / 1000, NR
		}'
}

# msgs STORE BINARY: messages the report counted (a check, not a figure).
msgs() {
	/usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(sum(o["count"] for o in d["messages_by_direction"]))' "$work/out.json"
}

bench_big_store "$n" "$work/big.db" "$bin"
timed "$bin" "$work/big.db" "$runs" "this binary, $n messages (sqlite)"
echo "  (30 days: $(msgs) messages counted)"
timed "$bin" "$work/big.db" "$runs" "  floor: pzpgw queue stats, same store" stats
bench_big_store "$nb" "$work/small.db" "$bin"
timed "$bin" "$work/small.db" "$runs" "this binary, $nb messages (sqlite)"

base=$(BENCH_BASE_REV=${BENCH_BASE_REV:-7b994d2} bench_base_bin "$src" "$work")
if [ -n "$base" ] && [ -x "$base" ]; then
	bench_big_store "$nb" "$work/base.db" "$base"
	timed "$base" "$work/base.db" $(((runs + 3) / 4)) \
		"main 7b994d2 (row by row), $nb messages (sqlite)"
	echo "  (30 days: $(msgs) messages counted)"
else
	echo "main 7b994d2: not built (no such revision here); skipped"
fi

if [ -n "${BENCH_PG:-}" ]; then
	pgdir=$work/pg
	eval "$(sh "$src/tests/pg/pg.sh" start "$pgdir")"
	PGPASSWORD=$(head -1 "$PZPGW_TEST_PG_PASSWORD_FILE")
	export PGPASSWORD
	for db in big small; do
		psql -X -q -d "$PZPGW_TEST_PG_URL" -c "CREATE DATABASE $db"
	done
	url=${PZPGW_TEST_PG_URL%/*}
	bench_big_store "$n" "$url/big" "$bin"
	psql -X -q -d "$url/big" -c "VACUUM ANALYZE"
	timed "$bin" "$url/big" "$runs" "this binary, $n messages (postgresql)"
	timed "$bin" "$url/big" "$runs" "  floor: pzpgw queue stats, same store" \
		stats
	if [ -n "$base" ] && [ -x "$base" ]; then
		bench_big_store "$nb" "$url/small" "$base"
		timed "$base" "$url/small" $(((runs + 3) / 4)) \
			"main 7b994d2 (row by row), $nb (postgresql)"
	fi
fi
