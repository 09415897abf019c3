# Shared by the bench scripts (sourced, POSIX sh).

# bench_schemas BINARY SRC: the compiled rules a gateway binary reads.
# A binary built in a source tree (TREE/build/VARIANT/pzpgw) reads that
# tree's schemas/, as the rule file format may differ between revisions
# (an older binary cannot read newer rules); otherwise SRC's schemas/.
bench_schemas() {
	t=$(cd "$(dirname "$1")/../.." 2>/dev/null && pwd) || t=""
	if [ -n "$t" ] && [ -f "$t/schemas/r4-core.rules" ]; then
		echo "$t/schemas"
	else
		echo "$2/schemas"
	fi
}

# bench_free_port: a TCP port free on the loopback now.
bench_free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_loadgen OUT SRC: build SRC/bench/loadgen.c into OUT.
bench_loadgen() {
	${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -o "$1" \
		"$2/bench/loadgen.c" $(pkg-config --cflags --libs libcurl)
}

# bench_conf DIR PORT PKI SCHEMAS [STORE_LINES]: DIR/pzpgw.conf, a gateway
# (URA 90000001) on 127.0.0.1:PORT accepting from hospital 90000002 and
# serving GP 90000003, its store DIR/pzpgw.db (STORE_LINES: more keys of
# [store], e.g. a PostgreSQL backend).
bench_conf() {
	mkdir -p "$1"
	cat >"$1/pzpgw.conf" <<END
[organisation]
ura = 90000001
name = bench $(basename "$1")
[listen]
address = 127.0.0.1
port = $2
certificate = $3/gateway.crt
key = $3/gateway.key
trust = $3/uzi-server-ca.pem
environment = test
[admin]
port = 0
[store]
path = $1/pzpgw.db
create = yes
${5:-}
[limits]
max_pending = 1024
[process]
log = stderr
schemas = $4
[peer 90000002]
allow = push
[peer 90000003]
allow = pull
END
}

# bench_start BINARY DIR: run BINARY serve on DIR/pzpgw.conf (log in
# DIR/log) until it says it started; sets $pid. Exits on failure.
bench_start() {
	"$1" serve -c "$2/pzpgw.conf" >"$2/log" 2>&1 &
	pid=$!
	i=0
	until grep -q "event=started" "$2/log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
			cat "$2/log" >&2
			echo "$(basename "$0"): the gateway in $2 did not start" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# bench_stop: stop the gateway bench_start ran.
bench_stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
}

# bench_searches FILE: the IG's searches of one patient, by BSN (chained
# patient.identifier; loadgen puts the BSN in place of #########).
bench_searches() {
	B='http://fhir.nl/fhir/NamingSystem/bsn%7C#########'
	S='http://snomed.info/sct%7C'
	cat >"$1" <<END
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
END
}

# bench_base_bin SRC WORK: the binary before issue 11 to compare with:
# BENCH_BASE_BIN, nothing when it is "none", else built from
# BENCH_BASE_REV (5cea13c) of SRC's history (nothing when the clone lacks
# it; built in WORK/base-tree, its log WORK/base.log).
bench_base_bin() {
	b=${BENCH_BASE_BIN:-}
	if [ "$b" = none ]; then
		return 0
	elif [ -n "$b" ]; then
		echo "$b"
		return 0
	fi
	rev=${BENCH_BASE_REV:-5cea13c}
	git -C "$1" cat-file -e "$rev" 2>/dev/null || return 0
	mkdir -p "$2/base-tree"
	git -C "$1" archive "$rev" | tar -x -C "$2/base-tree"
	make -C "$2/base-tree" -j2 all >"$2/base.log" 2>&1
	echo "$2/base-tree/build/release/pzpgw"
}

# bench_big_store N PATH [BINARY]: a store of N messages accepted over
# the 60 days up to now, made by BINARY (default $bin) `queue init` at
# PATH (a file, or a postgresql:// URL: psql fills it) and filled by SQL
# (the store's own triggers keep its report roll-ups, as in a daemon):
# 90% outbound from 8 senders to 12 receivers (one row each; 97%
# delivered 40 ms to ~20 s after acceptance, 2% dead, 1% due after a
# failed attempt), 10% inbound for 3 local receivers; 12% STU3; N/5 pull
# audit records over 20,000 patients (their hashes are fake: `pzpgw
# audit verify` fails). Documents are one byte: the report never reads
# content. Prints nothing; exits on failure.
bench_big_store() {
	n=$1
	p=$2
	b=${3:-$bin}
	now=$(($(date +%s) * 1000))
	"$b" queue --store "$p" init >/dev/null
	# the event column is schema 9's (a binary before it has none)
	ev=""
	evv=""
	case $p in
	postgresql:* | postgres:*)
		gen="generate_series(1, $n) AS c(i)"
		na=$((n / 5))
		gena="generate_series(1, $na) AS c(i)"
		run="psql -X -q -v ON_ERROR_STOP=1 $p"
		blob="'\\x00'::bytea"
		pre=""
		post="UPDATE audit_head SET seq = $((n / 5)), hash = '';"
		[ "$($run -tA -c "SELECT count(*) FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'event'")" = 0 ] || ev=y
		;;
	*)
		gen="(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $n) SELECT i FROM c) AS c"
		na=$((n / 5))
		gena="(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $na) SELECT i FROM c) AS c"
		run="sqlite3 -bail $p"
		blob="x'00'"
		pre="PRAGMA synchronous = OFF;"
		post=""
		[ "$($run "SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'event'")" = 0 ] || ev=y
		;;
	esac
	if [ -n "$ev" ]; then
		ev=", event"
		evv=", CASE WHEN i % 3 = 0 THEN 'shared' ELSE 'updated' END"
	fi
	span=$((60 * 86400000))
	$run <<END >/dev/null
$pre
BEGIN;
INSERT INTO messages (id, direction, sender_ura, bundle_system,
  bundle_value, patient_key, fhir_version, document, sha256, accepted_at,
  answer_status$ev)
SELECT 'big-' || i, CASE WHEN i % 10 = 0 THEN 'inbound' ELSE 'outbound' END,
  '8000000' || (i % 8), 'urn:ietf:rfc:3986', 'urn:uuid:big-' || i,
  'pk' || i, CASE WHEN i % 8 = 0 THEN '3.0.2' ELSE '4.0.1' END, $blob,
  'ab', $now - $span + (i * $span) / $n, 202$evv
FROM $gen;
INSERT INTO outbox (message_seq, receiver_ura, patient_key, state,
  attempts, next_attempt_at, first_attempt_at, last_attempt_at,
  last_status, last_error, delivered_at)
SELECT seq, '900001' || (10 + seq % 12), patient_key,
  CASE WHEN seq % 100 = 1 THEN 'due' WHEN seq % 50 = 3 THEN 'dead'
    ELSE 'delivered' END,
  1, accepted_at + 60000, accepted_at + 10, accepted_at + 10,
  CASE WHEN seq % 100 = 1 THEN 503 WHEN seq % 50 = 3 THEN 422
    ELSE 200 END,
  CASE WHEN seq % 100 = 1 THEN 'HTTP 503' WHEN seq % 50 = 3
    THEN 'rejected' ELSE NULL END,
  CASE WHEN seq % 100 = 1 OR seq % 50 = 3 THEN NULL
    ELSE accepted_at + 40 + (seq * 7919) % 1000
      + CASE WHEN seq % 50 = 0 THEN seq % 20000 ELSE 0 END END
FROM messages WHERE direction = 'outbound';
INSERT INTO inbox (message_seq, receiver_ura, bsn, sender_ura, resources)
SELECT seq, '9000000' || (seq % 3), '9' || (100000000 + seq % 20000),
  sender_ura, 10 FROM messages WHERE direction = 'inbound';
INSERT INTO audit (seq, at, ura, cert_serial, cert_issuer, bsn,
  interaction, query, count, status, request_id, prev_hash, hash)
SELECT i, $now - $span + (i * $span) / $na, '9000020' || (i % 4), '01',
  'CN=bench', '9' || (100000000 + (i * 7) % 20000), 'search-type',
  '/fhir/CarePlan', 1, 200, 'r' || i, '', ''
FROM $gena;
$post
COMMIT;
END
	# One transaction of a million upserts leaves PostgreSQL's roll-ups
	# ten times their size in dead row versions, which a daemon's
	# autovacuum reclaims as it goes: compact them as that steady state.
	case $p in
	postgresql:* | postgres:*)
		$run -c "VACUUM FULL ANALYZE rep_msg, rep_row, rep_lat, rep_pull, rep_pat, rep_pat_last" 2>/dev/null ||
			$run -c "VACUUM ANALYZE" 2>/dev/null || true
		;;
	esac
}
