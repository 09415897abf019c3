#!/bin/sh
# Print a development configuration for `make run` to stdout: the dev PKI
# gateway (URA 90000001) on loopback, test environment, and the dev PKI's
# hospital and GPs as peers. Paths are relative to VARDIR, where it goes.
#
# usage: sh certs/dev-config.sh VARDIR > VARDIR/pzpgw.conf
#   VARDIR  directory of the configuration file; it holds the database
#           (pzpgw.db) and the dev PKI (dev-pki/, from certs/dev-pki.sh)

set -eu

if [ $# -ne 1 ] || [ -z "$1" ] || [ "${1#-}" != "$1" ]; then
	echo "usage: sh certs/dev-config.sh VARDIR > VARDIR/pzpgw.conf" >&2
	exit 2
fi
vardir=$1
repo=$(cd "$(dirname "$0")/.." && pwd)

cat <<EOF
# pzpgw development configuration, made by certs/dev-config.sh for
# $vardir/pzpgw.conf. Relative paths below are taken against this file's
# directory ($vardir). Not for production: see packaging/pzpgw.conf.

[organisation]
ura = 90000001
name = Test Zorggateway pzpgw

[listen]
address = 127.0.0.1
port = 8443
certificate = dev-pki/gateway.crt
key = dev-pki/gateway.key
trust = dev-pki/uzi-server-ca.pem
# crl = dev-pki/crl.pem   (valid 30 days from when dev-pki.sh ran)
environment = test

[admin]
address = 127.0.0.1
port = 9090

[store]
path = pzpgw.db
min_free = 64M

[delivery]
backoff_min = 1s
backoff_max = 1m

[process]
log = stderr
schemas = $repo/schemas

# The test hospital pushes care plans; the GP practices pull them.
[peer 90000002]
name = Test Ziekenhuis
allow = push, validate

[peer 90000003]
name = Huisartsenpraktijk Test Een
allow = pull, validate

[peer 90000004]
name = Huisartsenpraktijk Test Twee
allow = pull, validate
EOF
