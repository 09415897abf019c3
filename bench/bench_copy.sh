#!/bin/sh
# pzpgw store copy (issue 16): the time to copy a store of N messages
# (default 100000; BENCH_COPY=N) from SQLite to a throwaway PostgreSQL
# (tests/pg/pg.sh) and back, each with its read-back check, beside
# `pzpgw backup` of the same file (SQLite's page copy, the floor for
# moving those bytes). The store: `pzpgw queue init`, then SQL: N
# messages with 2 KB documents, an outbox row each (97% delivered, 2%
# dead, 1% due), and N/5 audit records.
#   sh bench/bench_copy.sh build/release/pzpgw
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$(dirname "$0")/.." && pwd)
n=${BENCH_COPY:-100000}
work=$(mktemp -d /tmp/pzpgw-bench-copy-XXXXXX)
chmod 755 "$work"
trap 'sh "$src/tests/pg/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

env=$(sh "$src/tests/pg/pg.sh" start "$work/pg") || {
	rc=$?
	[ $rc = 77 ] && { echo "bench_copy: SKIPPED: PostgreSQL is not installed"; exit 0; }
	exit $rc
}
eval "$env"
url=$PZPGW_TEST_PG_URL
pw=$PZPGW_TEST_PG_PASSWORD_FILE

"$bin" queue --store "$work/store.db" init >/dev/null
/usr/bin/python3 - "$work/store.db" "$n" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = int(sys.argv[2])
db.execute("PRAGMA synchronous = OFF")
db.execute(
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r"
    " WHERE i < ?) INSERT INTO messages (seq, id, direction, sender_ura,"
    " bundle_system, bundle_value, patient_key, fhir_version, document,"
    " jws, sha256, accepted_at, answer_status, answer_body)"
    " SELECT i, printf('m-%08d', i), 'outbound', '90000002',"
    " 'urn:ietf:rfc:3986', printf('urn:uuid:%d', i), printf('p%d', i % 5000),"
    " '4.0.1', randomblob(2000), 'eyJhbGciOiJQUzI1NiJ9..sig', 'ab12',"
    " 1764547200000 + i * 1000, 202, '{}' FROM r", (n,))
db.execute(
    "INSERT INTO outbox (message_seq, receiver_ura, patient_key, state,"
    " attempts, next_attempt_at, delivered_at) SELECT seq, '90000003',"
    " patient_key, CASE WHEN seq % 100 < 97 THEN 'delivered' WHEN"
    " seq % 100 < 99 THEN 'dead' ELSE 'due' END, 1, accepted_at,"
    " accepted_at + 500 FROM messages")
db.execute(
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r"
    " WHERE i < ?) INSERT INTO audit (seq, at, ura, cert_serial,"
    " cert_issuer, bsn, interaction, query, count, status, request_id,"
    " prev_hash, hash) SELECT i, 1764547200000 + i, '90000003', '1A',"
    " 'CN=CA', '999911120', 'search-type', '/fhir/Consent?patient=x', 3,"
    " 200, 'r', 'p', 'h' FROM r", (n // 5,))
db.commit()
PY
size=$(du -m "$work/store.db" | cut -f1)

# seconds of one command (its output kept for a failure)
timed() {
	t0=$(date +%s.%N)
	"$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; return 1; }
	echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}'
}

db=${url%/*}/bench_copy
PGPASSWORD=$(cat "$pw") psql -X -q -d "$url" -c "CREATE DATABASE bench_copy"
to_pg=$(timed "$bin" store copy --from "sqlite:$work/store.db" --to "$db" \
	--to-password-file "$pw")
back=$(timed "$bin" store copy --from "$db" --from-password-file "$pw" \
	--to "sqlite:$work/back.db")
grep -q "verified: every table equal" "$work/out"
backup=$(timed "$bin" backup --store "$work/store.db" "$work/backup.db")
echo "store: $n messages, $n outbox rows, $((n / 5)) audit records, ${size} MB"
echo "  SQLite -> PostgreSQL  ${to_pg} s (copy and read-back check)"
echo "  PostgreSQL -> SQLite  ${back} s (copy and read-back check)"
echo "  pzpgw backup (SQLite page copy, reference)  ${backup} s"
