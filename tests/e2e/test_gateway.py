"""Issue 2: the daemon on loopback with real mutual TLS: identity from
UZI-style certificates, limits, errors, reload and shutdown."""

import json
import os
import signal
import socket
import ssl
import time

import pytest

import gw


def test_metadata_with_trusted_certificate(gateway):
    status, headers, body = gateway.request("GET", "/fhir/metadata")
    assert status == 200
    assert headers["content-type"].startswith("application/fhir+json")
    assert headers["x-request-id"]
    cs = json.loads(body)
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance"
    # Only what the gateway really serves is listed.
    served = {op["name"] for op in cs["rest"][0].get("operation", [])}
    for name in served:
        st, _, _ = gateway.request("POST", "/fhir/$" + name, body={})
        assert st != 404, name


def test_permanent_identifier_certificate_is_accepted(gateway):
    status, _, _ = gateway.request("GET", "/fhir/metadata", cert="permid")
    assert status == 200
    # Not a configured organisation: counted, under ura="other".
    assert gateway.metric("pzpgw_http_requests_total", listener="org",
                          status="200", ura="other") == 1


def refused(gateway, cert):
    """True when a connection with cert gets no HTTP answer."""
    try:
        s = gateway.connect(cert=cert)
        s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = s.recv(100)
        s.close()
        return data == b""
    except (ssl.SSLError, ConnectionError, OSError):
        return True


@pytest.mark.parametrize("cert,reason", [
    (None, "no_certificate"),
    ("otherca", "untrusted"),
    ("expired", "expired"),
    ("prod", "policy_mismatch"),
    ("noura", "no_ura"),
    ("badsan", "bad_ura"),
    ("wrongtype", "bad_ura"),
])
def test_untrusted_certificates_are_refused(gateway, cert, reason):
    assert refused(gateway, cert)
    gw.wait_for(lambda: gateway.metric("pzpgw_tls_handshake_failures_total",
                                       reason=reason) == 1,
                what="handshake failure metric " + reason)
    assert "event=request id" not in gateway.log_text().split("listener=admin")[0]
    assert "listener=org peer" not in gateway.log_text()


def test_revoked_certificate_is_refused(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path),
                   listen__crl=os.path.join(pki, "crl.pem")).start()
    try:
        assert refused(g, "revoked")
        assert g.request("GET", "/fhir/metadata")[0] == 200
    finally:
        assert g.stop() == 0


def test_test_certificate_refused_in_production(pki, tmp_path):
    # A production gateway presents a production-policy certificate (it
    # refuses a test one of its own: see test_reload.py).
    g = gw.Gateway(pki, str(tmp_path),
                   listen__environment="production",
                   listen__certificate=os.path.join(pki, "prod.crt"),
                   listen__key=os.path.join(pki, "prod.key"),
                   organisation__ura="90000006").start()
    try:
        assert refused(g, "hospital")
        gw.wait_for(lambda: g.metric("pzpgw_tls_handshake_failures_total",
                                     reason="policy_mismatch") == 1,
                    what="policy mismatch metric")
    finally:
        g.stop()


def test_trust_is_pinned_at_the_intermediate(pki, tmp_path):
    # Trusting only the root must not let the server CA's leaves in: the
    # gateway trusts exactly the configured issuing CA.
    g = gw.Gateway(pki, str(tmp_path),
                   listen__trust=os.path.join(pki, "otherca-root.crt"))
    g.start()
    try:
        assert refused(g, "hospital")
    finally:
        g.stop()


def test_unknown_path_and_method(gateway):
    status, _, body = gateway.request("GET", "/fhir/Nothing")
    assert status == 404
    assert gw.outcome_issue(body)["code"] == "not-found"
    status, headers, body = gateway.request("DELETE", "/fhir/metadata")
    assert status == 405
    assert headers["allow"] == "GET"
    assert gw.outcome_issue(body)["code"] == "not-supported"


def test_admin_endpoints(gateway):
    assert gateway.admin("/healthz") == (200, "ok\n")
    assert gateway.admin("/readyz") == (200, "ready\n")
    gateway.request("GET", "/fhir/metadata")
    status, text = gateway.admin("/metrics")
    assert status == 200
    assert "# TYPE pzpgw_http_requests_total counter" in text
    assert 'pzpgw_certificate_expiry_days{certificate="listen"}' in text
    days = gateway.metric("pzpgw_certificate_expiry_days",
                          certificate="listen")
    assert 300 < days < 5000


def test_unusable_store_refuses_to_start(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path),
                   store__path=str(tmp_path / "missing" / "pzpgw.db"))
    g.start(wait=False)
    assert g.proc.wait(10) == 1
    assert "reason=store" in g.log_text()


def test_slow_client_is_cut_off(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__read_timeout="1s").start()
    try:
        s = g.connect()
        start = time.monotonic()
        closed = False
        request = b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n"
        try:
            for byte in request:
                s.sendall(bytes([byte]))
                time.sleep(0.25)
        except (ssl.SSLError, ConnectionError, OSError):
            closed = True
        if not closed:
            s.settimeout(5)
            try:
                closed = s.recv(100) == b""
            except (ssl.SSLError, ConnectionError, OSError):
                closed = True
        assert closed
        assert time.monotonic() - start < 8
        assert g.metric("pzpgw_http_timeouts_total") >= 1
    finally:
        g.stop()


def test_sighup_with_broken_config_keeps_serving(gateway):
    gateway.sections["limits"]["max_body"] = "lots"
    gateway.write_config()
    gateway.send_signal(signal.SIGHUP)
    gw.wait_for(lambda: "event=reload_failed" in gateway.log_text(),
                what="reload failure logged")
    assert "max_body" in gateway.log_text()
    assert gateway.request("GET", "/fhir/metadata")[0] == 200
    assert gateway.proc.poll() is None


def test_sighup_applies_a_good_config(gateway):
    gateway.sections["organisation"]["name"] = "Renamed gateway"
    gateway.write_config()
    gateway.send_signal(signal.SIGHUP)
    gw.wait_for(lambda: "event=reloaded" in gateway.log_text(),
                what="reload")
    _, _, body = gateway.request("GET", "/fhir/metadata")
    assert json.loads(body)["implementation"]["description"] == \
        "Renamed gateway"


def test_sigterm_finishes_request_in_flight(gateway):
    s = gateway.connect()
    s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n")
    time.sleep(0.2)
    gateway.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert gateway.proc.poll() is None
    s.sendall(b"\r\n")
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert b"Connection: close" in data
    s.close()
    assert gateway.proc.wait(15) == 0
    assert "event=stopped" in gateway.log_text()


def test_sigterm_closes_idle_connections_and_exits(gateway):
    s = gateway.connect()
    s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n")
    s.settimeout(5)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    start = time.monotonic()
    gateway.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(10) == 0
    assert time.monotonic() - start < 5
    s.close()


def test_connection_limit(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__max_connections="2").start()
    try:
        a = g.connect()
        b = g.connect()
        # A third connection waits in the backlog until one closes.
        raw = socket.create_connection(("127.0.0.1", g.port), timeout=0.5)
        ctx = gw.client_context(pki, "hospital")
        with pytest.raises((socket.timeout, ssl.SSLError, OSError)):
            c = ctx.wrap_socket(raw, server_hostname="localhost")
            c.close()
        a.close()
        b.close()
        gw.wait_for(lambda: g.request("GET", "/fhir/metadata")[0] == 200,
                    what="service after connections closed")
    finally:
        g.stop()


def test_logs_carry_no_bodies(gateway):
    gateway.request("GET", "/fhir/metadata?patient.identifier=123456782")
    log = gateway.log_text()
    assert "123456782" not in log
    assert "peer=" + gw.URA["hospital"] in log


def test_bad_config_refuses_to_start(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__max_body="huge")
    g.start(wait=False)
    assert g.proc.wait(10) == 1
    assert "max_body" in g.log_text()


def example(name):
    path = os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4",
                        "pzp-1.0.0-rc1", name)
    with open(path, "rb") as f:
        return f.read()


def first_example():
    d = os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4",
                     "pzp-1.0.0-rc1")
    return sorted(n for n in os.listdir(d) if n.endswith(".json"))[0]


JSON = {"Content-Type": "application/fhir+json"}


def test_validate_endpoint(gateway):
    body = example(first_example())
    status, _, out = gateway.request("POST", "/fhir/$validate", body=body,
                                     headers=JSON)
    assert status == 200
    oo = json.loads(out)
    assert oo["resourceType"] == "OperationOutcome"
    assert not [i for i in oo["issue"] if i["severity"] in ("error",
                                                           "fatal")], oo
    # The same resource with an element that does not exist.
    doc = json.loads(body)
    doc["colour"] = "blue"
    status, _, out = gateway.request("POST", "/fhir/$validate", body=doc)
    assert status == 200
    errors = [i for i in json.loads(out)["issue"]
              if i["severity"] == "error"]
    assert errors and "colour" in json.dumps(errors)


def test_validate_typed_endpoint_and_parameters(gateway):
    doc = json.loads(example(first_example()))
    rt = doc["resourceType"]
    status, _, out = gateway.request("POST", "/fhir/%s/$validate" % rt,
                                     body=doc)
    assert status == 200
    params = {"resourceType": "Parameters",
              "parameter": [{"name": "resource", "resource": doc}]}
    status, _, out = gateway.request("POST", "/fhir/$validate", body=params)
    assert status == 200
    assert not [i for i in json.loads(out)["issue"]
                if i["severity"] == "error"]
    other = "Patient" if rt != "Patient" else "Observation"
    status, _, out = gateway.request("POST", "/fhir/%s/$validate" % other,
                                     body=doc)
    assert status == 200
    assert any(i["severity"] == "error" and "does not match" in
               i["diagnostics"] for i in json.loads(out)["issue"])


def test_malformed_json_is_400_with_position(gateway):
    status, _, out = gateway.request("POST", "/fhir/$validate",
                                     body=b'{\n "resourceType": "Patient",,}',
                                     headers=JSON)
    assert status == 400
    issue = gw.outcome_issue(out)
    assert issue["code"] == "structure"
    assert "line 2" in issue["diagnostics"]


def test_wrong_media_type_is_415(gateway):
    for ct in ("text/plain", "application/xml"):
        status, _, out = gateway.request("POST", "/fhir/$validate",
                                         body=b"{}",
                                         headers={"Content-Type": ct})
        assert status == 415, ct
        assert gw.outcome_issue(out)["code"] == "not-supported"
    # Another charset is refused as a bad request (issue 9), before the
    # body is read.
    status, _, out = gateway.request(
        "POST", "/fhir/$validate", body=b"{}",
        headers={"Content-Type": "application/fhir+json; charset=latin1"})
    assert status == 400
    assert gw.outcome_issue(out)["code"] == "invalid"
    status, _, _ = gateway.request(
        "POST", "/fhir/$validate", body=example(first_example()),
        headers={"Content-Type": "application/json; charset=UTF-8"})
    assert status == 200


def test_oversized_body_is_413(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__max_body="64k").start()
    try:
        big = b'{"resourceType":"Basic","x":"' + b"a" * 100000 + b'"}'
        status, _, out = g.request("POST", "/fhir/$validate", body=big,
                                   headers=JSON)
        assert status == 413
        assert gw.outcome_issue(out)["code"] == "too-costly"
        # Far beyond the limit the body is not even read.
        huge = b"a" * (2 * 1024 * 1024)
        try:
            status, _, _ = g.request("POST", "/fhir/$validate", body=huge,
                                     headers=JSON)
            assert status == 413
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        assert g.request("GET", "/fhir/metadata")[0] == 200
    finally:
        g.stop()


def test_body_over_the_limit_sent_unasked_still_reads_413(pki, tmp_path):
    """A client that sends a body somewhat over the limit without
    waiting for 100 Continue (as most do) reads the 413, not a reset:
    the gateway drops the body it refuses before answering. The body
    arrives in two parts with a pause, so a gateway that closed at the
    head would have reset the connection under the second part."""
    g = gw.Gateway(pki, str(tmp_path), limits__max_body="64k").start()
    try:
        body = b'{"resourceType":"Basic","x":"' + b"a" * 300000 + b'"}'
        s = g.connect()
        try:
            s.sendall(b"POST /fhir/$validate HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Type: application/fhir+json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            s.sendall(body[:1000])
            time.sleep(0.5)
            s.sendall(body[1000:])
            got = b""
            while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        finally:
            s.close()
        assert got.startswith(b"HTTP/1.1 413 "), got[:200]
        assert b'"too-costly"' in got, got[-300:]
    finally:
        g.stop()


def test_known_organisation_without_permission_is_403(gateway):
    # gp1 may pull but not validate.
    status, _, out = gateway.request("POST", "/fhir/$validate",
                                     body=example(first_example()),
                                     headers=JSON, cert="gp1")
    assert status == 403
    assert gw.outcome_issue(out)["code"] == "forbidden"
    # An organisation that is trusted but not configured at all.
    status, _, _ = gateway.request("POST", "/fhir/$validate", body=b"{}",
                                   headers=JSON, cert="permid")
    assert status == 403


def thread_names(pid):
    """The names of a process's threads, as top -H and ps -L show them."""
    task = "/proc/%d/task" % pid
    names = []
    for tid in os.listdir(task):
        try:
            with open(os.path.join(task, tid, "comm")) as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return names


def test_threads_are_named(gateway):
    # A pull the hospital may not make is answered 403 and recorded in
    # the audit trail: the store's writer thread runs from then on.
    status, _, _ = gateway.request("GET", "/fhir/Patient?_id=x")
    assert status == 403
    want = {"pzpgw", "pzpgw-pull", "pzpgw-intake", "pzpgw-console",
            "pzpgw-writer", "pzpgw-upkeep"}
    gw.wait_for(lambda: want <= set(thread_names(gateway.proc.pid)),
                what="the daemon's named threads")
    # Nothing is left unnamed: every thread is one of these.
    assert set(thread_names(gateway.proc.pid)) <= want


def test_metadata_lists_validate(gateway):
    _, _, body = gateway.request("GET", "/fhir/metadata")
    ops = {o["name"] for o in json.loads(body)["rest"][0]["operation"]}
    assert "validate" in ops


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to")
def test_drops_privileges_after_reading_keys(pki):
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    # A store directory the service user owns; keys stay root-only, and
    # the configuration in a directory only root can write (check-config
    # refuses one others can write).
    workdir = tempfile.mkdtemp(prefix="pzpgw-drop-")
    os.chmod(workdir, 0o711)
    storedir = os.path.join(workdir, "store")
    os.mkdir(storedir, 0o700)
    os.chown(storedir, nobody.pw_uid, nobody.pw_gid)
    # The daemon makes the store itself, as the service user.
    g = gw.Gateway(pki, workdir, process__user="nobody",
                   store__path=os.path.join(storedir, "pzpgw.db"),
                   store__create="yes")
    g.start()
    try:
        with open("/proc/%d/status" % g.proc.pid) as f:
            uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
        assert all(int(u) == nobody.pw_uid for u in uids), uids
        assert "event=privileges_dropped user=nobody" in g.log_text()
        assert g.request("GET", "/fhir/metadata")[0] == 200
        assert g.admin("/readyz")[0] == 200
    finally:
        assert g.stop() == 0
