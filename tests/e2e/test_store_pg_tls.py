"""Issue 16: the gateway reaches PostgreSQL over TLS, and with
sslmode=verify-full it talks only to the server whose certificate its
sslrootcert vouches for under the host name it dialled. The test server's
certificates are made here with the openssl command line (keys at run
time, mode 0600), and the server is switched to TLS with a reload."""

import json
import os
import shutil
import subprocess

import pytest

import gw
import test_delivery as td

GP1 = gw.URA["gp1"]


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def make_ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
            "-subj", "/CN=pzpgw test " + name, "-days", "2")
    os.chmod(key, 0o600)
    return key, crt


def make_server_cert(d, ca_key, ca_crt, names):
    key, csr = os.path.join(d, "server.key"), os.path.join(d, "server.csr")
    crt, ext = os.path.join(d, "server.crt"), os.path.join(d, "server.ext")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=db")
    os.chmod(key, 0o600)
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % names)
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
            "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return key, crt


@pytest.fixture(scope="module")
def tls_pg(pg, tmp_path_factory):
    """The module's server with ssl = on: its certificate (for localhost
    and 127.0.0.1) from CA "db-ca"; "other-ca" signs nothing it serves.
    Returns (pg, db-ca path, other-ca path)."""
    d = str(tmp_path_factory.mktemp("dbtls"))
    ca_key, ca = make_ca(d, "db-ca")
    _, other = make_ca(d, "other-ca")
    key, crt = make_server_cert(d, ca_key, ca, "DNS:localhost,IP:127.0.0.1")
    # The server reads its key as its own user (nobody when root runs
    # the tests), and refuses a key others may read.
    for src, name in ((key, "server.key"), (crt, "server.crt")):
        dst = os.path.join(pg.data, name)
        shutil.copy(src, dst)
        os.chmod(dst, 0o600)
        if os.getuid() == 0:
            shutil.chown(dst, "nobody", "nogroup")
    with open(os.path.join(pg.data, "postgresql.conf"), "a") as f:
        f.write("ssl = on\nssl_cert_file = 'server.crt'\n"
                "ssl_key_file = 'server.key'\n")
    pg.pg_ctl("reload")
    gw.wait_for(lambda: pg.sql(pg.url, "SHOW ssl") == [["on"]],
                what="ssl on after the reload")
    return pg, ca, other


def tls_url(pg, url, host, ca, hostaddr=None):
    """url (postgresql://pzpgw@127.0.0.1:PORT/DB) as host with
    sslmode=verify-full against ca; hostaddr: the address dialled for
    that name."""
    rest = url.split("@", 1)[1]
    port_db = rest.split(":", 1)[1]
    u = "postgresql://pzpgw@%s:%s?sslmode=verify-full&sslrootcert=%s" % (
        host, port_db, ca)
    return u + ("&hostaddr=" + hostaddr if hostaddr else "")


def test_verify_full_connects_over_tls(tls_pg, pki, tmp_path):
    """The right CA and a host name on the certificate: the gateway
    starts, acknowledges a push, and every one of its connections to the
    server is TLS (pg_stat_ssl)."""
    pg, ca, _ = tls_pg
    a = gw.use_postgres(td.gateway_a(pki, tmp_path, {GP1: (gw.free_port(),
                                                          td.B_URA)}), pg)
    plain = a.pg_url
    a.sections["store"]["url"] = tls_url(pg, plain, "localhost", ca)
    try:
        td.start_a(a)
        _, body = td.message([GP1], small=True)
        st, _, out = td.Poster(a).post(body)
        assert st == 202, out
        db = plain.rsplit("/", 1)[1]
        rows = pg.sql(pg.url, "SELECT s.ssl, s.version FROM pg_stat_ssl s"
                      " JOIN pg_stat_activity a ON a.pid = s.pid WHERE"
                      " a.datname = '%s' AND a.application_name = 'pzpgw'"
                      % db)
        assert rows, "no gateway connection seen"
        assert all(r[0] == "t" and r[1].startswith("TLS") for r in rows), \
            rows
        assert a.admin("/readyz") == (200, "ready\n")
    finally:
        a.stop()


@pytest.mark.parametrize("case", ["other CA", "host not on certificate"])
def test_verify_full_refuses_the_wrong_server(tls_pg, pki, tmp_path, case):
    """A server certificate from another CA, or dialled under a name it
    does not carry: the gateway does not start (it cannot commit, so it
    must not accept), and says why without the password."""
    pg, ca, other = tls_pg
    a = gw.use_postgres(td.gateway_a(pki, tmp_path, {GP1: (gw.free_port(),
                                                          td.B_URA)}), pg)
    if case == "other CA":
        url = tls_url(pg, a.pg_url, "localhost", other)
    else:
        # The same server, reached as db.example.nl: its certificate
        # names localhost and 127.0.0.1 only.
        url = tls_url(pg, a.pg_url, "db.example.nl", ca, "127.0.0.1")
    a.sections["store"]["url"] = url
    rc, tail = a.start_refused()
    assert rc != 0, tail
    assert "op=connect" in tail, tail
    assert ("certificate verify failed" in tail
            or "does not match host name" in tail), tail
    with open(pg.password_file) as f:
        assert f.readline().strip() not in tail


def test_store_copy_to_a_verified_server(tls_pg, tmp_path):
    """pzpgw store copy --to with sslmode=verify-full: the operator's
    migration path uses the same checks."""
    pg, ca, other = tls_pg
    src = str(tmp_path / "one.db")
    r = subprocess.run([gw.BINARY, "queue", "--store", src, "init"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    good = tls_url(pg, pg.database(), "localhost", ca)
    bad = tls_url(pg, pg.database(), "localhost", other)
    base = [gw.BINARY, "store", "copy", "--from", "sqlite:" + src,
            "--to-password-file", pg.password_file, "--to"]
    r = subprocess.run(base + [good], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "committed" in r.stdout + r.stderr
    r = subprocess.run(base + [bad], capture_output=True, text=True)
    assert r.returncode != 0
    assert "certificate verify failed" in r.stderr + r.stdout, \
        json.dumps([r.stdout, r.stderr])
