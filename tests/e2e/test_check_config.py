"""`pzpgw check-config` on real files: a good file, broken ones (every
error as FILE:LINE: message, exit 1), an unreadable one (exit 2), and the
development configuration made by certs/dev-config.sh on a dev PKI."""

import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

from gw import BINARY, SRCDIR, make_pki

GOOD = """\
# a small good file
[organisation]
ura = 90000001
name = Test Gateway

[listen]
certificate = cert.pem
key = key.pem
trust = trust.pem
environment = test

[peer 90000002]
allow = push, validate
"""


def check(path, *extra):
    return subprocess.run([BINARY, "check-config", "-c", path, *extra],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def tmp_path():
    """A private temp dir (not pytest's shared base, which concurrent
    sessions prune)."""
    d = tempfile.mkdtemp(prefix="pzpgw-check-config-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def confdir(tmp_path):
    """A directory with dummy certificate files and a 0600 key."""
    for name in ("cert.pem", "trust.pem"):
        (tmp_path / name).write_text(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIC\n"
                   "-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    return tmp_path


def test_good_file(confdir):
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD)
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.strip() == (
        "%s: configuration ok (organisation 90000001, 1 peer)" % conf)


def test_broken_file(confdir):
    conf = confdir / "broken.conf"
    conf.write_text(
        "[organisation]\n"          # 1
        "ura = 9000001\n"           # 2
        "name = Test\n"             # 3
        "[listen]\n"                # 4
        "certificate = none.pem\n"  # 5
        "key = key.pem\n"           # 6
        "trust = trust.pem\n"       # 7
        "environment = staging\n"   # 8
        "[limits]\n"                # 9
        "max_body = 10Q\n"          # 10
        "max_body = 1M\n"           # 11
        "[peer 90000002]\n"         # 12
        "allow = everything\n"      # 13
        "[peer 90000002]\n"         # 14
        "[nonsense]\n"              # 15
        "this is not a key\n")      # 16
    r = check(str(conf))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    want = [
        (2, '[organisation] ura: "9000001" is not a URA number'),
        (8, '[listen] environment: "staging" is not one of test, '
            'production'),
        (10, '[limits] max_body: "10Q" is not a size (examples: 512k, '
             '10M)'),
        (11, "[limits] max_body: duplicate key (first at line 10)"),
        (13, '[peer 90000002] allow: "everything" is not one of push, '
             'pull, validate'),
        (14, "duplicate section [peer 90000002] (first at line 12)"),
        (15, "unknown section [nonsense]"),
        (16, "expected 'key = value'"),
        (5, "[listen] certificate: %s: No such file or directory"
            % os.path.realpath(confdir / "none.pem")),
    ]
    assert len(lines) == len(want) + 1, r.stderr
    for got, (line, text) in zip(lines, want):
        prefix = "%s:%d: " % (conf, line)
        assert got.startswith(prefix), "got %r, want %r..." % (got, prefix)
        assert text in got, "got %r, want ...%r" % (got, text)
    assert lines[-1] == "%s: %d errors" % (conf, len(want))


def test_key_readable_by_others(confdir):
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD)
    (confdir / "key.pem").chmod(0o644)
    r = check(str(conf))
    assert r.returncode == 1
    key = os.path.realpath(confdir / "key.pem")
    assert r.stderr.splitlines()[0] == (
        "%s:8: [listen] key: %s is accessible by group or others "
        "(chmod 600 %s)" % (conf, key, key))


def test_missing_section_has_no_line(confdir):
    conf = confdir / "pzpgw.conf"
    conf.write_text("[organisation]\nura = 90000001\nname = x\n")
    r = check(str(conf))
    assert r.returncode == 1
    first = r.stderr.splitlines()[0]
    assert first == ("%s: missing section [listen] (required keys: "
                     "certificate, key, trust, environment)" % conf)


def test_unreadable_file(tmp_path):
    missing = tmp_path / "absent.conf"
    r = check(str(missing))
    assert r.returncode == 2
    assert re.match(r"^%s: .*No such file" % re.escape(str(missing)),
                    r.stderr)
    r = check(str(tmp_path))  # a directory
    assert r.returncode == 2


def test_usage(tmp_path):
    r = check(str(tmp_path / "x.conf"), "surplus")
    assert r.returncode == 2
    assert "usage:" in r.stderr


def test_dev_config(tmp_path):
    """certs/dev-config.sh VARDIR on a fresh dev PKI is a good file whose
    relative paths point into VARDIR."""
    vardir = tmp_path / "var"
    vardir.mkdir()
    make_pki(str(vardir / "dev-pki"), extras=False)
    out = subprocess.run(
        ["sh", os.path.join(SRCDIR, "certs", "dev-config.sh"), str(vardir)],
        check=True, capture_output=True, text=True).stdout
    conf = vardir / "pzpgw.conf"
    conf.write_text(out)
    assert re.search(r"^ura = 90000001$", out, re.M)
    assert re.search(r"^environment = test$", out, re.M)
    assert re.search(r"^log = stderr$", out, re.M)
    for ura in ("90000002", "90000003", "90000004"):
        assert re.search(r"^\[peer %s\]$" % ura, out, re.M)
    key = vardir / "dev-pki" / "gateway.key"
    assert stat.S_IMODE(key.stat().st_mode) & 0o077 == 0
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    assert "organisation 90000001, 3 peers" in r.stdout

    # the same file read from elsewhere still finds its files
    r = subprocess.run([BINARY, "check-config", "-c", "var/pzpgw.conf"],
                       capture_output=True, text=True, cwd=str(tmp_path),
                       timeout=30)
    assert r.returncode == 0, r.stderr

    # without the PKI the file names what is missing, with lines
    os.unlink(str(key))
    r = check(str(conf))
    assert r.returncode == 1
    assert re.search(r"^%s:\d+: \[listen\] key: .*gateway.key: No such file"
                     % re.escape(str(conf)), r.stderr, re.M)


def test_dev_config_usage():
    r = subprocess.run(["sh", os.path.join(SRCDIR, "certs",
                                           "dev-config.sh")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "usage:" in r.stderr


@pytest.mark.parametrize("section,line,want", [
    ("[peer 90000001]\nallow = push\n", 15,
     "[peer 90000001]: 90000001 is this gateway's own URA ([organisation] "
     "ura); remove the section"),
    ("[peer 90000005]\nendpoint = https://gw.example.nl/\n"
     "server_ura = 90000001\n", 15,
     "[peer 90000005] server_ura: 90000001 is this gateway's own URA"),
    ("[peer 90000005]\nendpoint = https://gw.example.nl:0/fhir\n", 16,
     '[peer 90000005] endpoint: "https://gw.example.nl:0/fhir" has port '
     '"0", which is not a port number (1..65535)'),
    ("[peer 90000005]\nendpoint = https://gw.example.nl:99999/\n", 16,
     'has port "99999", which is not a port number (1..65535)'),
    ("[peer 90000005]\nendpoint = https://gw.example.nl:https/\n", 16,
     'has port "https", which is not a port number (1..65535)'),
    ("[peer 90000005]\nendpoint = https://gw.example.nl:/fhir\n", 16,
     "has ':' without a port number"),
    ("[peer 90000005]\nendpoint = https://[2001:db8::1/fhir\n", 16,
     "has '[' without a closing ']'"),
    ("[peer 90000005]\nendpoint = https://[gw.example.nl]:8443/\n", 16,
     'has "[gw.example.nl]", which is not an IPv6 address'),
    ("[peer 90000005]\nendpoint = https://2001:db8::1/\n", 16,
     "has an IPv6 address without brackets"),
    ("[peer 90000005]\nendpoint = https://pzpgw:secret@gw.example.nl/\n", 16,
     'has user-info ("user@" or "user:password@") before the host'),
    ("[peer 90000005]\nendpoint = https://gw.example.nl/fhir?a=b\n", 16,
     "has a query or fragment ('?' or '#')"),
    ("[peer 90000005]\nendpoint = https://gw.example.nl/fhir#x\n", 16,
     "has a query or fragment ('?' or '#')"),
])
def test_peer_and_endpoint_errors(confdir, section, line, want):
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD + "\n" + section)
    r = check(str(conf))
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert lines[1:] == ["%s: 1 error" % conf], r.stderr
    assert lines[0].startswith("%s:%d: " % (conf, line)), lines[0]
    assert want in lines[0], lines[0]


def test_good_endpoints(confdir):
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD + "\n[peer 90000005]\n"
                    "endpoint = https://[::1]:8443/fhir\n"
                    "[peer 90000006]\n"
                    "endpoint = https://gw-2.example.nl/pzp/r4\n")
    r = check(str(conf))
    assert r.returncode == 0, r.stderr


def test_world_writable_config_file(confdir):
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD)
    conf.chmod(0o666)
    r = check(str(conf))
    assert r.returncode == 1, r.stdout
    real = os.path.realpath(conf)
    assert r.stderr.splitlines() == [
        "%s: %s is writable by group or others (mode 0666; chmod go-w %s)"
        % (conf, real, real),
        "%s: 1 error" % conf]
    conf.chmod(0o620)  # group-writable: refused as well
    assert check(str(conf)).returncode == 1
    conf.chmod(0o644)
    assert check(str(conf)).returncode == 0


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_writable_key_directory(confdir, mode):
    keys = confdir / "keys"
    keys.mkdir()
    (confdir / "key.pem").rename(keys / "key.pem")
    keys.chmod(mode)
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD.replace("key = key.pem", "key = keys/key.pem"))
    r = check(str(conf))
    assert r.returncode == 1, r.stdout
    real = os.path.realpath(keys)
    assert r.stderr.splitlines() == [
        "%s:8: [listen] key: directory %s holding it is writable by group "
        "or others (mode %04o; chmod go-w %s)" % (conf, real, mode, real),
        "%s: 1 error" % conf]
    keys.chmod(0o700)
    r = check(str(conf))
    assert r.returncode == 0, r.stderr


def test_writable_signing_key_directory(confdir):
    sign = confdir / "sign"
    sign.mkdir()
    (sign / "sign.key").write_text("-----BEGIN PRIVATE KEY-----\nMIIC\n"
                                   "-----END PRIVATE KEY-----\n")
    (sign / "sign.key").chmod(0o600)
    sign.chmod(0o777)
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD + "[signing]\nkey = sign/sign.key\n")
    r = check(str(conf))
    assert r.returncode == 1
    assert re.match(r"^%s:15: \[signing\] key: directory .*/sign holding "
                    r"it is writable by group or others \(mode 0777"
                    % re.escape(str(conf)), r.stderr), r.stderr


def test_view_without_pull_is_a_warning(confdir):
    conf = confdir / "pzpgw.conf"
    conf.write_text(GOOD + "view = social\n"
                    "[peer 90000003]\nallow = pull\nview = social\n"
                    "resources = Goal, https://x.example/SD/a\n")
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (
        "%s: warning: [peer 90000002] (line 12): resources or view "
        "without allow = pull has no effect" % conf), r.stderr
    conf.write_text(GOOD + "resources = Patient goal\n")
    r = check(str(conf))
    assert r.returncode == 1
    assert "%s:14: [peer 90000002] resources: \"goal\" is not a FHIR" \
        % conf in r.stderr, r.stderr


def test_port_below_1024_is_a_warning(confdir):
    """The packaged unit holds no capability: a low port is named with
    the drop-in that grants CAP_NET_BIND_SERVICE; 1024 and up are not."""
    conf = confdir / "pzpgw.conf"
    low = GOOD.replace("[listen]\n", "[listen]\nport = 443\n")
    conf.write_text(low + "[admin]\nport = 80\n")
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    for section, port in (("listen", 443), ("admin", 80)):
        assert ("%s: warning: [%s] port %d is below 1024: binding it needs "
                "CAP_NET_BIND_SERVICE" % (conf, section, port)) in r.stderr, \
            r.stderr
    assert r.stderr.count("examples/low-port.conf") == 2, r.stderr
    conf.write_text(GOOD.replace("[listen]\n", "[listen]\nport = 1024\n")
                    + "[admin]\nport = 0\n")
    r = check(str(conf))
    assert r.returncode == 0 and "below 1024" not in r.stderr, r.stderr


# What dead-letters or fails every delivery today, caught before it does
# (issue 13). The files are real: a dev PKI with the broken certificates.

@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="pzpgw-check-config-pki-")
    make_pki(os.path.join(d, "pki"), extras=True)
    yield os.path.join(d, "pki")
    shutil.rmtree(d, ignore_errors=True)


def pki_conf(tmp_path, pki, listen="gateway", extra="", peers=""):
    """A good file on the dev PKI, [listen] certificate `listen`."""
    conf = tmp_path / "pzpgw.conf"
    conf.write_text(
        "[organisation]\nura = 90000001\nname = A\n"
        "[listen]\n"
        "certificate = %s/%s.crt\nkey = %s/%s.key\n"
        "trust = %s/uzi-server-ca.pem\nenvironment = test\n%s"
        "[peer 90000002]\nallow = push\n%s"
        % (pki, listen, pki, listen, pki, extra, peers))
    return conf


@pytest.mark.parametrize("endpoint,fixed", [
    ("https://gw-b.example.nl:8443/", "https://gw-b.example.nl:8443/fhir"),
    ("https://gw-b.example.nl:8443", "https://gw-b.example.nl:8443/fhir"),
    ("https://GW-B.example.nl/pzp", "https://gw-b.example.nl:443/fhir"),
    ("https://[::1]:8444/fhir/x", "https://[::1]:8444/fhir"),
])
def test_endpoint_without_fhir_base_is_a_warning(tmp_path, pki, endpoint,
                                                 fixed):
    conf = pki_conf(tmp_path, pki, peers="[peer 90000003]\nendpoint = %s\n"
                    "server_ura = 90000009\n" % endpoint)
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    base = endpoint.rstrip("/")
    assert r.stderr == (
        "%s: warning: [peer 90000003] (line 11) endpoint %s: the path does "
        "not end in /fhir, the FHIR base of a pzpgw gateway; deliveries go "
        "to %s/$process-message, which a pzpgw gateway answers 404 (write "
        "%s)\n" % (conf, endpoint, base, fixed)), r.stderr


@pytest.mark.parametrize("endpoint", ["https://gw-b.example.nl/fhir",
                                      "https://gw-b.example.nl:8443/fhir/",
                                      "https://gw-b.example.nl/r4/fhir"])
def test_endpoint_with_fhir_base(tmp_path, pki, endpoint):
    conf = pki_conf(tmp_path, pki, peers="[peer 90000003]\nendpoint = %s\n"
                    "server_ura = 90000009\n" % endpoint)
    r = check(str(conf))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr


def test_pull_and_endpoint_is_an_error(tmp_path, pki):
    conf = pki_conf(tmp_path, pki, peers="[peer 90000003]\nallow = pull\n"
                    "endpoint = https://gw-b.example.nl/fhir\n")
    r = check(str(conf))
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        "%s:11: [peer 90000003]: allow = pull and an endpoint: messages "
        "for 90000003 are delivered to the endpoint, so nothing arrives "
        "here to pull. Keep allow = pull without endpoint when this "
        "gateway serves 90000003, or the endpoint without pull when "
        "another gateway does" % conf,
        "%s: 1 error" % conf], r.stderr


def test_server_ura_of_a_practice_behind_a_gateway(tmp_path, pki):
    """The GP practice's section left with its own URA as server_ura,
    where its endpoint is gateway B's, which another section names with
    B's URA: a warning naming the fix."""
    peers = ("[peer 90000009]\nname = Gateway B\nallow = push\n"
             "relay = 90000003\nendpoint = https://gw-b.example.nl/fhir\n"
             "[peer 90000003]\nendpoint = https://GW-B.example.nl:443/fhir\n")
    conf = pki_conf(tmp_path, pki, peers=peers)
    r = check(str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stderr == (
        "%s: warning: [peer 90000003] (line 16) server_ura: 90000003, the "
        "section's own URA, while [peer 90000009] (line 11) expects "
        "90000009 from the same endpoint host gw-b.example.nl:443; a server "
        "certificate carries one URA: if gw-b.example.nl:443 is another "
        "organisation's gateway, set server_ura = 90000009 (otherwise "
        "every delivery fails with \"wrong server URA\" and goes dead "
        "after max_age)\n" % conf), r.stderr
    # fixed: no warning; another port is another server: none either
    conf.write_text(conf.read_text() + "server_ura = 90000009\n")
    assert check(str(conf)).stderr == ""
    conf = pki_conf(tmp_path, pki, peers=peers.replace(":443/", ":8443/"))
    assert check(str(conf)).stderr == ""


@pytest.mark.parametrize("listen,crl,want", [
    ("otherca", False, "unable to get local issuer certificate (depth 0)"),
    ("expired", False, "certificate has expired (depth 0)"),
    ("revoked", True, "certificate revoked (depth 0)"),
])
def test_own_certificate_outside_trust(tmp_path, pki, listen, crl, want):
    extra = "crl = %s/crl.pem\n" % pki if crl else ""
    conf = pki_conf(tmp_path, pki, listen=listen, extra=extra)
    r = check(str(conf))
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == (
        "%s: [listen] certificate %s/%s.crt does not verify against "
        "[listen] trust %s/uzi-server-ca.pem%s as a TLS server: %s; "
        "organisations and gateways that trust the same CA refuse this "
        "gateway's connections"
        % (conf, pki, listen, pki, " and crl %s/crl.pem" % pki if crl
           else "", want)), lines
    # the signing certificate defaults to the [listen] one
    assert lines[1].startswith(
        "%s: [signing] certificate %s/%s.crt does not verify against "
        "[listen] trust %s/uzi-server-ca.pem: %s; receiving gateways "
        "refuse messages signed with it (401)"
        % (conf, pki, listen, pki, want)), lines
    assert lines[2:] == ["%s: 2 errors" % conf], lines


def test_signing_certificate_outside_trust(tmp_path, pki):
    conf = pki_conf(tmp_path, pki, extra="crl = %s/crl.pem\n" % pki,
                    peers="[signing]\ncertificate = %s/otherca.crt\n"
                    "key = %s/otherca.key\n" % (pki, pki))
    r = check(str(conf))
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        "%s: [signing] certificate %s/otherca.crt does not verify against "
        "[listen] trust %s/uzi-server-ca.pem: unable to get local issuer "
        "certificate (depth 0); receiving gateways refuse messages signed "
        "with it (401)" % (conf, pki, pki),
        "%s: 1 error" % conf], r.stderr
    # the same key and certificate with the chain that leads to the CA
    conf = pki_conf(tmp_path, pki,
                    peers="[signing]\ncertificate = %s/gp1-leaf.crt\n"
                    "key = %s/gp1.key\nchain = %s/uzi-server-ca.pem\n"
                    % (pki, pki, pki))
    r = check(str(conf))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr


@pytest.mark.parametrize("mode,name,ura,npeers", [
    ("--pair", "gateway-a.conf", "90000001", 3),
    ("--peer-gateway", "gateway-b.conf", "90000009", 2)])
def test_dev_config_pair(tmp_path, mode, name, ura, npeers):
    """The two files of make run-pair are good, without a warning."""
    vardir = tmp_path / "var"
    vardir.mkdir()
    make_pki(str(vardir / "dev-pki"), extras=False)
    out = subprocess.run(
        ["sh", os.path.join(SRCDIR, "certs", "dev-config.sh"), mode,
         str(vardir)], check=True, capture_output=True, text=True).stdout
    conf = vardir / name
    conf.write_text(out)
    r = check(str(conf))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.strip() == (
        "%s: configuration ok (organisation %s, %d peers)"
        % (conf, ura, npeers))


# check-config --probe against a real gateway B (the dev PKI's gateway2),
# doing what a delivery does up to the body.

@pytest.fixture(scope="module")
def gateways_b(pki):
    """B taking A's pushes, and B2 that does not (allow = validate)."""
    import gw as gwmod
    out = []
    for allow in ("push", "validate"):
        g = gwmod.Gateway(pki, **{
            "organisation__ura": "90000009",
            "listen__certificate": os.path.join(pki, "gateway2.crt"),
            "listen__key": os.path.join(pki, "gateway2.key")})
        g.sections["peer 90000001"] = {"name": "A", "allow": allow,
                                       "relay": "90000002"}
        out.append(g.start())
    yield out
    for g in out:
        g.stop()
        shutil.rmtree(g.dir, ignore_errors=True)


def probe(tmp_path, pki, endpoint, server_ura="90000009"):
    peers = "[peer 90000003]\nendpoint = %s\n" % endpoint
    if server_ura:
        peers += "server_ura = %s\n" % server_ura
    conf = pki_conf(tmp_path, pki, peers=peers)
    return conf, check(str(conf), "--probe")


def test_probe_good_route(tmp_path, pki, gateways_b):
    b = gateways_b[0]
    ep = "https://localhost:%d/fhir" % b.port
    conf, r = probe(tmp_path, pki, ep)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.splitlines() == [
        "%s: [peer 90000003] %s: reachable, server URA 90000009, "
        "$process-message takes this gateway's messages" % (conf, ep),
        "%s: configuration ok (organisation 90000001, 2 peers)" % conf]
    # nothing was sent: B stored nothing
    i = subprocess.run([BINARY, "inbox", "-c", b.conf, "list",
                        "--format", "json"],
                       capture_output=True, text=True, timeout=30)
    assert i.returncode == 0 and json.loads(i.stdout) == [], i.stdout


def test_probe_server_ura_left_at_the_practice(tmp_path, pki, gateways_b):
    ep = "https://localhost:%d/fhir" % gateways_b[0].port
    conf, r = probe(tmp_path, pki, ep, server_ura=None)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        "%s:11: [peer 90000003] server_ura: the server at %s presents URA "
        "90000009, not 90000003: every delivery fails with \"server URA "
        "90000009, expected 90000003\" (if it is the gateway that serves "
        "90000003, set server_ura = 90000009)" % (conf, ep),
        "%s: 1 error" % conf], r.stderr


def test_probe_endpoint_without_fhir_base(tmp_path, pki, gateways_b):
    ep = "https://localhost:%d/" % gateways_b[0].port
    conf, r = probe(tmp_path, pki, ep)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert "the path does not end in /fhir" in lines[0], lines  # warning
    assert lines[1] == (
        "%s:11: [peer 90000003] endpoint: POST %s$process-message answered "
        "404 before any body was sent: the endpoint is not the FHIR base of "
        "a pzpgw gateway (write https://host:port/fhir) (the receiver: "
        "\"no such endpoint\")" % (conf, ep)), lines
    assert lines[2:] == ["%s: 1 error" % conf], lines


def test_probe_gateway_that_does_not_take_pushes(tmp_path, pki, gateways_b):
    ep = "https://localhost:%d/fhir" % gateways_b[1].port
    conf, r = probe(tmp_path, pki, ep)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        "%s:11: [peer 90000003] endpoint: POST %s/$process-message answered "
        "403 before any body was sent: the receiving gateway does not take "
        "messages from this gateway: its [peer] section for this gateway's "
        "URA needs allow = push (and relay for the senders) (the receiver: "
        "\"organisation 90000001 is not allowed to use this endpoint\")"
        % (conf, ep),
        "%s: 1 error" % conf], r.stderr


def test_probe_unreachable_is_a_warning(tmp_path, pki):
    from gw import free_port
    ep = "https://localhost:%d/fhir" % free_port()
    conf, r = probe(tmp_path, pki, ep)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(
        "%s: warning: [peer 90000003] %s/$process-message: no answer: "
        % (conf, ep)), r.stderr
