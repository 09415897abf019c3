#!/bin/sh
# Print a development configuration to stdout: gateway A (the dev PKI's
# gateway, URA 90000001) alone as `make run` uses it, or one of the two
# gateways of `make run-pair`. Paths are relative to VARDIR, where it goes.
#
# usage: sh certs/dev-config.sh [--pair | --peer-gateway] VARDIR > FILE
#   (none)          gateway A alone (VARDIR/pzpgw.conf): it serves the GP
#                   practices 90000003 and 90000004 itself (pull)
#   --pair          gateway A of the pair (VARDIR/gateway-a.conf): as alone,
#                   but GP 90000003 is served by gateway B, so messages for
#                   it are delivered to B
#   --peer-gateway  gateway B (VARDIR/gateway-b.conf, URA 90000009 with the
#                   dev PKI's gateway2 certificate): serves GP 90000003 and
#                   takes A's deliveries for the hospital
#   VARDIR  directory of the configuration file; it holds the databases
#           and the dev PKI (dev-pki/, from certs/dev-pki.sh)
# Ports: A 8443 (admin 9090), B 8444 (admin 9091); PZPGW_DEV_PORT_A,
# PZPGW_DEV_ADMIN_A, PZPGW_DEV_PORT_B and PZPGW_DEV_ADMIN_B override them
# (the tests run the pair on free ports).

set -eu

usage() {
	echo "usage: sh certs/dev-config.sh [--pair | --peer-gateway] VARDIR > FILE" >&2
	exit 2
}

mode=alone
case ${1:-} in
--pair)
	mode=pair
	shift
	;;
--peer-gateway)
	mode=b
	shift
	;;
esac
if [ $# -ne 1 ] || [ -z "$1" ] || [ "${1#-}" != "$1" ]; then
	usage
fi
vardir=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
port_a=${PZPGW_DEV_PORT_A:-8443}
admin_a=${PZPGW_DEV_ADMIN_A:-9090}
port_b=${PZPGW_DEV_PORT_B:-8444}
admin_b=${PZPGW_DEV_ADMIN_B:-9091}
for p in "$port_a" "$admin_a" "$port_b" "$admin_b"; do
	case $p in
	'' | *[!0-9]*) usage ;;
	esac
done

# The part both gateways share: loopback, test environment, dev PKI.
common() {
	cat <<EOF
[listen]
address = 127.0.0.1
port = $2
certificate = dev-pki/$1.crt
key = dev-pki/$1.key
trust = dev-pki/uzi-server-ca.pem
# crl = dev-pki/crl.pem   (valid 30 days from when dev-pki.sh ran)
environment = test

[admin]
address = 127.0.0.1
port = $3

[store]
path = $4
min_free = 64M

[delivery]
backoff_min = 1s
backoff_max = 1m

[process]
log = stderr
schemas = $repo/schemas
EOF
}

if [ "$mode" = b ]; then
	cat <<EOF
# pzpgw development configuration of gateway B, made by
# certs/dev-config.sh --peer-gateway for $vardir/gateway-b.conf. Relative
# paths below are taken against this file's directory ($vardir). Not for
# production: see packaging/pzpgw.conf.
#
# B serves the GP practice 90000003: messages for it arrive here from
# gateway A, and the practice pulls them here (port $port_b).

[organisation]
ura = 90000009
name = Test Regionale Zorggateway (gateway B)

EOF
	common gateway2 "$port_b" "$admin_b" gateway-b.db
	cat <<EOF

# Gateway A pushes the messages of the hospital (90000002) it serves,
# signed by A: relay names the organisations A may send for.
[peer 90000001]
name = Test Zorggateway pzpgw (gateway A)
allow = push
relay = 90000002

# The GP practice this gateway serves: no endpoint, allow = pull.
[peer 90000003]
name = Huisartsenpraktijk Test Een
allow = pull, validate
EOF
	exit 0
fi

if [ "$mode" = pair ]; then
	file=gateway-a.conf
	store=gateway-a.db
else
	file=pzpgw.conf
	store=pzpgw.db
fi
cat <<EOF
# pzpgw development configuration, made by certs/dev-config.sh for
# $vardir/$file. Relative paths below are taken against this file's
# directory ($vardir). Not for production: see packaging/pzpgw.conf.

[organisation]
ura = 90000001
name = Test Zorggateway pzpgw

EOF
common gateway "$port_a" "$admin_a" "$store"
cat <<EOF

# The test hospital pushes care plans; the GP practices pull them.
[peer 90000002]
name = Test Ziekenhuis
allow = push, validate

EOF
if [ "$mode" = pair ]; then
	cat <<EOF
# Served by gateway B (certs/dev-config.sh --peer-gateway): deliveries go
# to B's FHIR base, and B's server certificate carries B's URA, not the
# practice's: server_ura says which.
[peer 90000003]
name = Huisartsenpraktijk Test Een
endpoint = https://localhost:$port_b/fhir
server_ura = 90000009
EOF
else
	cat <<EOF
[peer 90000003]
name = Huisartsenpraktijk Test Een
allow = pull, validate
EOF
fi
cat <<EOF

[peer 90000004]
name = Huisartsenpraktijk Test Twee
allow = pull, validate
EOF
