#!/bin/sh
# What `make run` and `make run-pair` do after the build: make the dev PKI
# and the configuration(s) under VARDIR on first start, list what was
# made, and serve in the foreground until Ctrl-C (SIGINT or SIGTERM).
#
# usage: sh certs/dev-run.sh [--pair] BINARY VARDIR
#   (none)  gateway A alone (VARDIR/pzpgw.conf)
#   --pair  gateway B (VARDIR/gateway-b.conf, logging to
#           VARDIR/gateway-b.log) in the background and gateway A
#           (VARDIR/gateway-a.conf) in the foreground; A delivers
#           messages for GP 90000003 to B
# Ports: see certs/dev-config.sh (PZPGW_DEV_PORT_A etc. are passed on).

set -eu

usage() {
	echo "usage: sh certs/dev-run.sh [--pair] BINARY VARDIR" >&2
	exit 2
}

pair=0
if [ "${1:-}" = --pair ]; then
	pair=1
	shift
fi
[ $# -eq 2 ] || usage
bin=$1
var=$2
certs=$(dirname "$0")
[ -x "$bin" ] || {
	echo "pzpgw: $bin is not built (make all)" >&2
	exit 2
}

mkdir -p -m 0755 "$var"
[ -f "$var/dev-pki/ca.pem" ] || sh "$certs/dev-pki.sh" "$var/dev-pki"
# A PKI made before gateway2 existed lacks B's certificate.
if [ "$pair" = 1 ] && [ ! -f "$var/dev-pki/gateway2.crt" ]; then
	echo "pzpgw: $var/dev-pki has no gateway2.crt (made by an older" \
		"dev-pki.sh): remove $var/dev-pki and run again" >&2
	exit 1
fi

# newconf FILE [OPTION]: write FILE once; check-config refuses a
# configuration group or others can write, hence umask 022.
newconf() {
	[ -f "$var/$1" ] && return 0
	(
		umask 022
		sh "$certs/dev-config.sh" ${2:+"$2"} "$var" >"$var/$1.tmp"
	)
	mv "$var/$1.tmp" "$var/$1"
}

# The port a configuration file gives its [listen] or [admin] section.
port_of() {
	sed -n "/^\[$2\]/,/^\[/s/^port = //p" "$var/$1"
}

if [ "$pair" = 1 ]; then
	newconf gateway-a.conf --pair
	newconf gateway-b.conf --peer-gateway
	conf_a=gateway-a.conf
else
	newconf pzpgw.conf
	conf_a=pzpgw.conf
fi

# Every certificate of the PKI with the URA and organisation it carries.
echo "pzpgw: test certificates in $var/dev-pki/ (ca.pem: the CA for clients):"
for key in "$var"/dev-pki/*.key; do
	name=$(basename "$key" .key)
	crt="$var/dev-pki/$name.crt"
	case $name in root | uzi-server-ca) continue ;; esac
	[ -f "$crt" ] || continue
	ura=$(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null |
		sed -n 's/.*-S-\([0-9]\{8\}\)-.*/\1/p' | head -n 1)
	org=$(openssl x509 -in "$crt" -noout -subject -nameopt multiline \
		2>/dev/null | sed -n 's/^ *organizationName *= *//p')
	printf '  %-18s URA %-9s %s\n' "$name.crt/.key" "${ura:-none}" "$org"
done

port_a=$(port_of "$conf_a" listen)
echo "pzpgw: gateway A (URA 90000001, $var/$conf_a):" \
	"https://localhost:$port_a (mutual TLS)," \
	"admin http://127.0.0.1:$(port_of "$conf_a" admin)"

bpid=""
stop() {
	trap - INT TERM EXIT
	[ -z "$bpid" ] || kill -TERM "$bpid" 2>/dev/null || true
	[ -z "$apid" ] || kill -TERM "$apid" 2>/dev/null || true
	wait
}
apid=""

if [ "$pair" = 1 ]; then
	echo "pzpgw: gateway B (URA 90000009, $var/gateway-b.conf):" \
		"https://localhost:$(port_of gateway-b.conf listen)," \
		"admin http://127.0.0.1:$(port_of gateway-b.conf admin)," \
		"log $var/gateway-b.log"
	echo "pzpgw: A delivers messages for GP 90000003 to B; try" \
		"pzpgw send --to 90000003 --status FILE"
	: >"$var/gateway-b.log"
	"$bin" serve -d -c "$var/gateway-b.conf" >>"$var/gateway-b.log" 2>&1 &
	bpid=$!
	trap stop INT TERM EXIT
	# B refusing to start (a port in use, say) should not go unnoticed.
	n=0
	while ! grep -q 'event=started' "$var/gateway-b.log"; do
		if ! kill -0 "$bpid" 2>/dev/null || [ $n -ge 100 ]; then
			echo "pzpgw: gateway B did not start:" >&2
			tail -n 5 "$var/gateway-b.log" >&2
			exit 1
		fi
		sleep 0.1
		n=$((n + 1))
	done
else
	echo "pzpgw: try  curl --cacert $var/dev-pki/ca.pem" \
		"--cert $var/dev-pki/hospital.crt --key $var/dev-pki/hospital.key" \
		"https://localhost:$port_a/fhir/metadata"
fi
echo "pzpgw: Ctrl-C stops the gateway$([ "$pair" = 1 ] && echo s)"
if [ "$pair" = 0 ]; then
	exec "$bin" serve -d -c "$var/$conf_a"
fi
"$bin" serve -d -c "$var/$conf_a" &
apid=$!
# wait returns early when a trapped signal arrives; stop() then ends both.
wait "$apid" || true
apid=""
stop
