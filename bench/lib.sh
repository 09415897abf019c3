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
