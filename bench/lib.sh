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
# audit records over 20,000 patients (its variables are _bbs_*: sh
# functions share the caller's; their hashes are fake: `pzpgw
# audit verify` fails). Documents are one byte: the report never reads
# content. Prints nothing; exits on failure.
bench_big_store() {
	_bbs_n=$1
	_bbs_p=$2
	_bbs_b=${3:-$bin}
	_bbs_now=$(($(date +%s) * 1000))
	"$_bbs_b" queue --store "$_bbs_p" init >/dev/null
	# the event column is schema 9's (a binary before it has none)
	_bbs_ev=""
	_bbs_evv=""
	case $_bbs_p in
	postgresql:* | postgres:*)
		_bbs_gen="generate_series(1, $_bbs_n) AS c(i)"
		_bbs_na=$((_bbs_n / 5))
		_bbs_gena="generate_series(1, $_bbs_na) AS c(i)"
		_bbs_run="psql -X -q -v ON_ERROR_STOP=1 $_bbs_p"
		_bbs_blob="'\\x00'::bytea"
		_bbs_pre=""
		_bbs_post="UPDATE audit_head SET seq = $((_bbs_n / 5)), hash = '';"
		[ "$($_bbs_run -tA -c "SELECT count(*) FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'event'")" = 0 ] || _bbs_ev=y
		;;
	*)
		_bbs_gen="(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $_bbs_n) SELECT i FROM c) AS c"
		_bbs_na=$((_bbs_n / 5))
		_bbs_gena="(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $_bbs_na) SELECT i FROM c) AS c"
		_bbs_run="sqlite3 -bail $_bbs_p"
		_bbs_blob="x'00'"
		_bbs_pre="PRAGMA synchronous = OFF;"
		_bbs_post=""
		[ "$($_bbs_run "SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'event'")" = 0 ] || _bbs_ev=y
		;;
	esac
	if [ -n "$_bbs_ev" ]; then
		_bbs_ev=", event"
		_bbs_evv=", CASE WHEN i % 3 = 0 THEN 'pzp-shared' ELSE 'pzp-updated' END"
	fi
	_bbs_span=$((60 * 86400000))
	$_bbs_run <<END >/dev/null
$_bbs_pre
BEGIN;
INSERT INTO messages (id, direction, sender_ura, bundle_system,
  bundle_value, patient_key, fhir_version, document, sha256, accepted_at,
  answer_status$_bbs_ev)
SELECT 'big-' || i, CASE WHEN i % 10 = 0 THEN 'inbound' ELSE 'outbound' END,
  '8000000' || (i % 8), 'urn:ietf:rfc:3986', 'urn:uuid:big-' || i,
  'pk' || i, CASE WHEN i % 8 = 0 THEN '3.0.2' ELSE '4.0.1' END, $_bbs_blob,
  'ab', $_bbs_now - $_bbs_span + (i * $_bbs_span) / $_bbs_n, 202$_bbs_evv
FROM $_bbs_gen;
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
SELECT i, $_bbs_now - $_bbs_span + (i * $_bbs_span) / $_bbs_na, '9000020' || (i % 4), '01',
  'CN=bench', '9' || (100000000 + (i * 7) % 20000), 'search-type',
  '/fhir/CarePlan', 1, 200, 'r' || i, '', ''
FROM $_bbs_gena;
$_bbs_post
COMMIT;
END
	# One transaction of a million upserts leaves PostgreSQL's roll-ups
	# ten times their size in dead row versions, which a daemon's
	# autovacuum reclaims as it goes: compact them as that steady state.
	case $_bbs_p${_bbs_ev:+ schema9} in
	postgresql:*schema9 | postgres:*schema9)
		# (and statistics now, as autovacuum's would be: without them
		# the first report's plan read the outbox row by row, 133 s)
		$_bbs_run -c "VACUUM FULL ANALYZE rep_msg, rep_row, rep_lat, rep_pull, rep_pat, rep_pat_last" >/dev/null
		$_bbs_run -c "ANALYZE messages, outbox, inbox, audit" >/dev/null
		;;
	postgresql:* | postgres:*)
		$_bbs_run -c "ANALYZE messages, outbox, inbox, audit" >/dev/null
		;;
	esac
}

# bench_ticks PID...: user + system clock ticks of those processes (one
# gone counts 0); divide by `getconf CLK_TCK` for seconds.
bench_ticks() {
	t=0
	for p in "$@"; do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo $t
}

# bench_db_pids DIR: the processes of the PostgreSQL server tests/pg/pg.sh
# started in DIR (the postmaster and its children); nothing without one.
bench_db_pids() {
	[ -n "$1" ] || return 0
	pm=$(head -1 "$1/data/postmaster.pid" 2>/dev/null) || return 0
	echo "$pm $(pgrep -P "$pm" | tr '\n' ' ')"
}

# bench_variant K IN OUT: the message template IN with identifiers of its
# own (Bundle urn:uuid ...-800K-counter, resources ...-K-counter; K one
# digit): the counter of each loadgen run starts at 0, and two runs
# (warm-up and measurement, or two nodes' loads) must not post the same
# messages (duplicates are cheap).
bench_variant() {
	/usr/bin/python3 - "$@" <<'EOF'
import re, sys
k, src, dst = sys.argv[1:4]
t = open(src).read()
t = t.replace("-8000-@@@@@@@@@@@@", "-800%s-@@@@@@@@@@@@" % k)
t = re.sub(r"(?<!-800%s)-@@@@@@@@@@@@" % k, "-%s@@@@@@@@@@@@" % k, t)
open(dst, "w").write(t)
EOF
}
