"""Issue 13, errors that say what to do: every error body is a FHIR
OperationOutcome, on the admin listener too (libevent's own refusals are
HTML pages); a chunked body with a bare LF is refused at once; $validate of
something that is not a resource is a 400, not a 200."""

import json
import socket
import time

import pytest

import gw
from test_http_strict import chunked, send_raw, status_of

FHIR_JSON = "application/fhir+json; charset=utf-8"


def admin_raw(g, data, timeout=10):
    """Send data to the admin listener; (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", g.admin_port),
                                 timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError("closed before an answer: %r" % buf)
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (ln.partition(":") for ln in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                break
            body += chunk
        return status_of(lines[0]), headers, body
    finally:
        s.close()


ADMIN_CASES = {
    "garbage": (b"GARBAGE\r\n\r\n", 400),
    "chunked POST": (b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 405),
    "malformed chunked GET": (b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                              400),
    # Refused from its head alone, the body never read.
    "large POST": (b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 999999\r\n\r\n", 405),
    "GET with a body": (b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 5\r\n\r\nhello", 400),
    "head too large": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: "
                       + b"a" * 70000 + b"\r\n\r\n", 431),
    "bare LF": (b"GET /healthz HTTP/1.1\nHost: x\n\n", 400),
}


@pytest.mark.parametrize("case", sorted(ADMIN_CASES))
def test_admin_errors_are_operation_outcomes(gateway, case):
    data, want = ADMIN_CASES[case]
    status, headers, body = admin_raw(gateway, data)
    assert status == want, (case, status, body[:200])
    assert headers.get("content-type") == FHIR_JSON, (case, headers)
    oo = json.loads(body)
    assert oo["resourceType"] == "OperationOutcome", oo
    assert oo["issue"][0]["diagnostics"]
    # The listener still serves after a refused connection.
    assert gateway.admin("/healthz")[0] == 200


def test_admin_keeps_serving_requests_in_a_row(gateway):
    s = socket.create_connection(("127.0.0.1", gateway.admin_port),
                                 timeout=10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        deadline = time.monotonic() + 10
        while got.count(b"HTTP/1.1 ") < 2 and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        assert got.count(b"HTTP/1.1 200") == 2, got
    finally:
        s.close()


def test_chunk_size_with_bare_lf_is_refused_at_once(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__read_timeout="30s").start()
    try:
        t0 = time.monotonic()
        line, _, body, closed = send_raw(
            g, chunked("/fhir/$validate", b"2\n{}\n0\n\n"), timeout=10)
        assert status_of(line) == 400, (line, body)
        assert time.monotonic() - t0 < 5
        oo = json.loads(body)
        assert oo["resourceType"] == "OperationOutcome"
        assert "malformed chunked body" in oo["issue"][0]["diagnostics"]
        assert closed
    finally:
        g.stop()


@pytest.mark.parametrize("body,what", [
    (b"[]", "an array"), (b"42", "a number"), (b"{}", "an object"),
    (b'"Patient"', "a string"), (b'{"resourceType":""}', "an object"),
    (b'{"resourceType":"Parameters","parameter":[{"name":"resource",'
     b'"valueString":"x"}]}', None),
])
def test_validate_of_a_non_resource_is_400(gateway, body, what):
    status, headers, data = gateway.request(
        "POST", "/fhir/$validate", body=body,
        headers={"Content-Type": "application/fhir+json"})
    assert status == 400, (body, status, data)
    issue = gw.outcome_issue(data)
    assert issue["severity"] == "error"
    if what is not None:
        assert "FHIR resource" in issue["diagnostics"], issue
        assert what in issue["diagnostics"], issue
    # A resource is still validated: 200 with its issues.
    status, _, _ = gateway.request(
        "POST", "/fhir/$validate",
        body=b'{"resourceType":"Basic","code":{"text":"x"}}',
        headers={"Content-Type": "application/fhir+json"})
    assert status == 200
