#!/bin/sh
# Make a development PKI shaped like the Dutch UZI server-certificate one:
# a TEST root, the TEST UZI-register server CA under it, and one leaf per
# test organisation carrying its URA in subjectAltName (see certs/README.md).
#
# usage: sh certs/dev-pki.sh DIR [--extras] [--force]
#   DIR       created with mode 0700; private keys are mode 0600
#   --extras  also the broken certificates the tests need
#   --force   replace a PKI that already exists in DIR
# PZPGW_PKI_KEY=rsa makes RSA-2048 keys instead of EC P-256.

set -eu

prog=dev-pki

usage() {
	echo "usage: sh certs/dev-pki.sh DIR [--extras] [--force]" >&2
	exit 2
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

dir=""
extras=0
force=0
for arg in "$@"; do
	case $arg in
	--extras) extras=1 ;;
	--force) force=1 ;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[ -z "$dir" ] || usage
		dir=$arg
		;;
	esac
done
[ -n "$dir" ] || usage

keytype=${PZPGW_PKI_KEY:-ec}
case $keytype in
ec | rsa) ;;
*) die "PZPGW_PKI_KEY must be ec or rsa, not '$keytype'" ;;
esac

command -v openssl >/dev/null 2>&1 || die "the openssl command is needed"

umask 077
if [ -e "$dir/root.crt" ] || [ -e "$dir/uzi-server-ca.pem" ]; then
	[ "$force" = 1 ] || die "$dir already holds a PKI (use --force to replace it)"
	# Nothing of the old PKI may survive next to the new one.
	rm -f "$dir"/*.crt "$dir"/*.key "$dir"/*.pem
fi
mkdir -p "$dir" || die "cannot create $dir"
chmod 700 "$dir"

work=$(mktemp -d "${TMPDIR:-/tmp}/dev-pki.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM HUP

# Run a command quietly; show its output only when it fails.
run() {
	if ! "$@" >"$work/out" 2>&1; then
		cat "$work/out" >&2
		die "failed: $*"
	fi
}

# genkey FILE: a new private key, mode 0600.
genkey() {
	if [ "$keytype" = rsa ]; then
		run openssl genpkey -algorithm RSA \
			-pkeyopt rsa_keygen_bits:2048 -out "$1"
	else
		run openssl genpkey -algorithm EC \
			-pkeyopt ec_paramgen_curve:P-256 -out "$1"
	fi
	chmod 600 "$1"
}

if [ "$keytype" = rsa ]; then
	leaf_ku="critical, digitalSignature, keyEncipherment"
else
	leaf_ku="critical, digitalSignature"
fi

# The certificate policies. The test one is what the gateway looks for in
# the test environment; the production stand-in is an OID under the
# UZI-register arc that is simply "not the test policy".
pol_test=2.16.528.1.1007.99.212
pol_prod=2.16.528.1.1003.1.2.8.6
uzi_ns=2.16.528.1.1003.1.3.5.5.5
# Assigner of the permanentIdentifier form: the OID of the URA
# NamingSystem (http://fhir.nl/fhir/NamingSystem/ura), see certs/README.md.
ura_ns=2.16.528.1.1007.3.3

# Configuration for the CAs; `openssl ca` keeps its database in $work.
mkdir -p "$work/newcerts"
: >"$work/index.txt"
echo 1000 >"$work/crlnumber"
cat >"$work/ca.cnf" <<EOF
[ ca ]
default_ca = uzi_ca

[ uzi_ca ]
database = $work/index.txt
new_certs_dir = $work/newcerts
serial = $work/serial
rand_serial = yes
crlnumber = $work/crlnumber
certificate = $dir/uzi-server-ca.pem
private_key = $dir/uzi-server-ca.key
default_md = sha256
default_days = 825
default_crl_days = 30
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
crl_extensions = crl_ext

[ policy_any ]
countryName = optional
organizationName = optional
serialNumber = optional
commonName = supplied

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ v3_root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_int ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF

# selfsigned KEY CRT SUBJECT: a root certificate.
selfsigned() {
	genkey "$1"
	run openssl req -x509 -new -config "$work/ca.cnf" -key "$1" \
		-subj "$3" -days 7300 -sha256 -extensions v3_root -out "$2"
}

# Root and intermediate.
selfsigned "$dir/root.key" "$dir/root.crt" \
	"/C=NL/O=TEST Staat der Nederlanden/CN=TEST Staat der Nederlanden Private Root CA - G1"
genkey "$dir/uzi-server-ca.key"
run openssl req -new -config "$work/ca.cnf" -key "$dir/uzi-server-ca.key" \
	-subj "/C=NL/O=TEST CIBG/CN=TEST UZI-register Private Server CA G1" \
	-out "$work/int.csr"
run openssl x509 -req -in "$work/int.csr" -CA "$dir/root.crt" \
	-CAkey "$dir/root.key" -days 3650 -sha256 \
	-extfile "$work/ca.cnf" -extensions v3_int \
	-out "$dir/uzi-server-ca.pem"
cat "$dir/uzi-server-ca.pem" "$dir/root.crt" >"$dir/ca.pem"

# extfile NAME POLICY SAN-LINES...: the extension section of a leaf.
extfile() {
	name=$1
	policy=$2
	shift 2
	{
		echo "[ leaf ]"
		echo "basicConstraints = critical, CA:FALSE"
		echo "keyUsage = $leaf_ku"
		echo "extendedKeyUsage = serverAuth, clientAuth"
		echo "subjectKeyIdentifier = hash"
		echo "authorityKeyIdentifier = keyid"
		[ -z "$policy" ] || echo "certificatePolicies = $policy"
		echo "subjectAltName = @san"
		echo "[ san ]"
		for line in "$@"; do
			echo "$line"
		done
		echo "[ permid ]"
		echo "identifierValue = UTF8:${permid_ura:-}"
		echo "assigner = OID:$ura_ns"
	} >"$work/$name.ext"
}

# uzi_name URA UZI AGB [TYPE]: the 2.5.5.5 otherName line of a server cert.
uzi_name() {
	echo "otherName.1 = 2.5.5.5;IA5STRING:$uzi_ns-1-$2-${4:-S}-$1-00.000-$3"
}

dns_lines() {
	echo "DNS.1 = $1.pzpgw.test"
	echo "DNS.2 = localhost"
	echo "IP.1 = 127.0.0.1"
}

# csr NAME SUBJECT: key and request for a leaf.
csr() {
	genkey "$dir/$1.key"
	run openssl req -new -config "$work/ca.cnf" -key "$dir/$1.key" \
		-subj "$2" -out "$work/$1.csr"
}

# sign NAME [openssl-ca options]: issue a leaf from the intermediate and
# write NAME-leaf.crt (leaf) and NAME.crt (leaf + intermediate).
sign() {
	name=$1
	shift
	run openssl ca -batch -config "$work/ca.cnf" -in "$work/$name.csr" \
		-extfile "$work/$name.ext" -extensions leaf -preserveDN \
		-notext -out "$dir/$name-leaf.crt" "$@"
	cat "$dir/$name-leaf.crt" "$dir/uzi-server-ca.pem" >"$dir/$name.crt"
}

# org NAME URA UZI AGB ORGNAME CN: a regular test organisation.
org() {
	extfile "$1" "$pol_test" "$(uzi_name "$2" "$3" "$4")" \
		"$(dns_lines "$1")"
	csr "$1" "/C=NL/O=$5/serialNumber=$3/CN=$6"
	sign "$1"
	made="$made
  $1.crt  URA $2  $5"
}

made=""
org gateway 90000001 10000001 01000001 "Test Zorggateway pzpgw" localhost
org hospital 90000002 10000002 01000002 "Test Ziekenhuis" \
	hospital.pzpgw.test
org gp1 90000003 10000003 01000003 "Huisartsenpraktijk Test Een" \
	gp1.pzpgw.test
org gp2 90000004 10000004 01000004 "Huisartsenpraktijk Test Twee" \
	gp2.pzpgw.test
# A second gateway (another region's), for delivery between gateways.
org gateway2 90000009 10000009 01000009 "Test Regionale Zorggateway" localhost

if [ "$extras" = 1 ]; then
	# Expired: valid URA, validity entirely in the past.
	extfile expired "$pol_test" "$(uzi_name 90000005 10000005 01000005)" \
		"$(dns_lines expired)"
	csr expired "/C=NL/O=Test Verlopen/serialNumber=10000005/CN=expired.pzpgw.test"
	sign expired -startdate 20200101000000Z -enddate 20210101000000Z

	# Production policy instead of the test policy.
	extfile prod "$pol_prod" "$(uzi_name 90000006 10000006 01000006)" \
		"$(dns_lines prod)"
	csr prod "/C=NL/O=Productie Ziekenhuis/serialNumber=10000006/CN=prod.pzpgw.test"
	sign prod

	# No URA at all, only DNS names.
	extfile noura "$pol_test" "$(dns_lines noura)"
	csr noura "/C=NL/O=Test Zonder URA/CN=noura.pzpgw.test"
	sign noura

	# A 2.5.5.5 name whose URA has seven digits.
	extfile badsan "$pol_test" \
		"otherName.1 = 2.5.5.5;IA5STRING:$uzi_ns-1-10000011-S-9000011-00.000-01000011" \
		"$(dns_lines badsan)"
	csr badsan "/C=NL/O=Test Kapotte SAN/serialNumber=10000011/CN=badsan.pzpgw.test"
	sign badsan

	# Well-formed, but pass type Z (a care professional's card).
	extfile wrongtype "$pol_test" \
		"$(uzi_name 90000012 10000012 01000012 Z)" "$(dns_lines wrongtype)"
	csr wrongtype "/C=NL/O=Test Pastype Z/serialNumber=10000012/CN=wrongtype.pzpgw.test"
	sign wrongtype

	# URA only as permanentIdentifier (RFC 4043).
	permid_ura=90000007
	extfile permid "$pol_test" \
		"otherName.1 = 1.3.6.1.5.5.7.8.3;SEQUENCE:permid" \
		"$(dns_lines permid)"
	csr permid "/C=NL/O=Test Permanent Identifier/CN=permid.pzpgw.test"
	sign permid

	# Revoked by the intermediate's CRL.
	extfile revoked "$pol_test" "$(uzi_name 90000008 10000008 01000008)" \
		"$(dns_lines revoked)"
	csr revoked "/C=NL/O=Test Ingetrokken/serialNumber=10000008/CN=revoked.pzpgw.test"
	sign revoked
	run openssl ca -batch -config "$work/ca.cnf" \
		-revoke "$dir/revoked-leaf.crt" -crl_reason keyCompromise

	# A valid-looking certificate (it claims the hospital's URA) from an
	# unrelated CA: must never be trusted.
	selfsigned "$work/otherca-root.key" "$dir/otherca-root.crt" \
		"/C=NL/O=TEST Other/CN=TEST Other Root CA"
	extfile otherca "$pol_test" "$(uzi_name 90000002 10000002 01000002)" \
		"$(dns_lines otherca)"
	csr otherca "/C=NL/O=Test Ziekenhuis/serialNumber=10000002/CN=otherca.pzpgw.test"
	run openssl x509 -req -in "$work/otherca.csr" \
		-CA "$dir/otherca-root.crt" -CAkey "$work/otherca-root.key" \
		-days 825 -sha256 -extfile "$work/otherca.ext" -extensions leaf \
		-out "$dir/otherca.crt"
	cp "$dir/otherca.crt" "$dir/otherca-leaf.crt"

	made="$made
  expired.crt URA 90000005 (expired 2021-01-01)
  prod.crt URA 90000006 (production policy $pol_prod)
  permid.crt URA 90000007 (permanentIdentifier only)
  revoked.crt URA 90000008 (revoked in crl.pem)
  noura.crt (no URA), badsan.crt (7-digit URA), wrongtype.crt (pass type Z)
  otherca.crt (URA 90000002 from otherca-root.crt, untrusted)"
fi

# The intermediate's CRL: empty, or listing revoked.crt with --extras.
run openssl ca -batch -config "$work/ca.cnf" -gencrl -crldays 30 \
	-out "$dir/crl.pem"

# Certificates and CRL are public; keys stay 0600.
chmod 644 "$dir"/*.crt "$dir"/*.pem
chmod 600 "$dir"/*.key

echo "$prog: made a $keytype test PKI in $dir"
echo "  root.crt            TEST Staat der Nederlanden Private Root CA - G1"
echo "  uzi-server-ca.pem   TEST UZI-register Private Server CA G1 (trust anchor)"
echo "  ca.pem              intermediate + root (curl --cacert)"
echo "  crl.pem             CRL of the intermediate"
echo "  NAME.crt = leaf + intermediate, NAME-leaf.crt = leaf, NAME.key:$made"
