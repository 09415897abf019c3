"""Issue 9, HTTP side: the request id is ours, permissions are decided
before the body is read, and request heads a proxy could read differently
are refused. Raw bytes over real mutual TLS to the real daemon."""

import json
import re
import socket
import ssl
import time

import pytest

import gw

SMALL = b'{"resourceType":"Basic","code":{"text":"x"}}'


def send_raw(g, data, cert="hospital", timeout=5.0):
    """Send data on a fresh TLS connection; return (status line, headers,
    body, closed) of the first response. closed: the server closed the
    connection right after it."""
    s = g.connect(cert=cert, timeout=timeout)
    try:
        s.sendall(data)
        line, headers, body = read_response(s)
        return line, headers, body, is_closed(s)
    finally:
        s.close()


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)
        if not chunk:
            raise AssertionError("connection closed before a response: %r"
                                 % buf)
        buf += chunk
    lines = buf[:-4].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            break
        body += chunk
    return lines[0], headers, body


def is_closed(s, wait=1.0):
    """True when the peer closes the connection within wait seconds."""
    try:
        s.settimeout(wait)
        return s.recv(1) == b""
    except (socket.timeout, TimeoutError):
        return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def status_of(line):
    return int(line.split(" ")[1])


def assert_outcome(body, code=None):
    oo = json.loads(body)
    assert oo["resourceType"] == "OperationOutcome", oo
    if code is not None:
        assert oo["issue"][0]["code"] == code, oo
    return oo


# ---- X-Request-Id ----

def test_client_request_id_is_logged_not_used(gateway):
    status, headers, _ = gateway.request(
        "GET", "/fhir/metadata", headers={"X-Request-Id": "client-id-42"})
    assert status == 200
    ours = headers["x-request-id"]
    assert ours != "client-id-42"
    assert re.fullmatch(r"[0-9a-f-]{36}", ours), ours
    line = gw.wait_for(lambda: [ln for ln in gateway.log_text().splitlines()
                                if "event=request id=" + ours in ln],
                       what="request log line")[0]
    assert "client_request_id=client-id-42" in line, line
    # Unprintable or long client ids are cut and made printable.
    long_id = "a b\"c" + "x" * 200
    status, headers, _ = gateway.request(
        "GET", "/fhir/metadata", headers={"X-Request-Id": long_id})
    ours = headers["x-request-id"]
    line = gw.wait_for(lambda: [ln for ln in gateway.log_text().splitlines()
                                if "event=request id=" + ours in ln],
                       what="request log line")[0]
    got = re.search(r"client_request_id=(\S+)", line).group(1)
    assert got == ("a_b_c" + "x" * 200)[:64], got


def post(path, body, headers=(), version="HTTP/1.1", eol=b"\r\n",
         length=True):
    """Raw bytes of a POST; headers: (name, value) pairs."""
    lines = [("POST %s %s" % (path, version)).encode(), b"Host: localhost"]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    for k, v in headers:
        lines.append(("%s: %s" % (k, v)).encode())
    return eol.join(lines) + eol + eol + body


CT = ("Content-Type", "application/fhir+json")


def test_baseline_raw_post_is_answered(gateway):
    # The raw requests below differ from this one by one defect each.
    line, _, body, _ = send_raw(gateway, post("/fhir/$validate", SMALL,
                                              [CT]))
    assert status_of(line) == 200, (line, body)


# ---- authorise before the body ----

def expect_head(path, length, cert_note=""):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/fhir+json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % length)


def test_forbidden_peer_gets_403_before_the_body(gateway):
    # gp1 may pull but not validate: it sends only the head, announcing
    # a large body, and must get 403 at once (never 100 Continue), and the
    # connection closed.
    t0 = time.monotonic()
    line, headers, body, closed = send_raw(
        gateway, expect_head("/fhir/$validate", 5000000), cert="gp1")
    assert status_of(line) == 403, line
    assert time.monotonic() - t0 < 3
    assert_outcome(body, "forbidden")
    assert headers.get("connection", "").lower() == "close"
    assert closed
    assert "event=forbidden" in gateway.log_text()
    # An organisation with the permission gets 100 Continue, then its
    # answer, on the same connection.
    s = gateway.connect()
    try:
        s.sendall(expect_head("/fhir/$validate", len(SMALL)))
        s.settimeout(5)
        got = s.recv(4096)
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), got
        s.sendall(SMALL)
        line, _, body = read_response(s)
        assert status_of(line) == 200, (line, body)
        assert not is_closed(s, 0.3)
    finally:
        s.close()


def test_unknown_path_and_oversized_body_answered_before_the_body(pki,
                                                                   tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__max_body="64k").start()
    try:
        line, _, body, closed = send_raw(g, expect_head("/fhir/nope", 100))
        assert status_of(line) == 404, line
        assert_outcome(body, "not-found")
        assert closed
        line, _, body, closed = send_raw(
            g, expect_head("/fhir/$validate", 10 * 1024 * 1024))
        assert status_of(line) == 413, line
        assert_outcome(body, "too-costly")
        assert closed
    finally:
        g.stop()


def chunked(path, chunks_bytes):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/fhir+json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunks_bytes)


def test_chunked_bodies(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__max_body="64k").start()
    try:
        good = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMALL), SMALL)
        line, _, body, _ = send_raw(g, chunked("/fhir/$validate", good))
        assert status_of(line) == 200, (line, body)
        for bad in (b"zz\r\n{}\r\n0\r\n\r\n",          # not hex
                    b"2\r\n{}XX0\r\n\r\n",              # no CRLF after data
                    b"2;ext=1\r\n{}\r\n0\r\n\r\n",      # extension
                    b"2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n"):  # trailer
            line, _, body, closed = send_raw(g, chunked("/fhir/$validate",
                                                        bad))
            assert status_of(line) == 400, (bad, line, body)
            assert_outcome(body, "invalid")
            assert closed
        big = b"8000\r\n" + b" " * 0x8000 + b"\r\n"
        line, _, body, closed = send_raw(
            g, chunked("/fhir/$validate", big * 3 + b"0\r\n\r\n"))
        assert status_of(line) == 413, line
        assert_outcome(body, "too-costly")
    finally:
        g.stop()


# ---- HTTP strictness ----

def assert_refused(g, data, status=400, what=None):
    line, headers, body, closed = send_raw(g, data)
    assert status_of(line) == status, (data[:200], line, body)
    oo = assert_outcome(body)
    if what is not None:
        assert what in oo["issue"][0]["diagnostics"], oo
    assert headers.get("connection", "").lower() == "close"
    assert closed
    return oo


N = len(SMALL)
FRAMING = {
    "two different Content-Length": [CT, ("Content-Length", N + 5)],
    "two equal Content-Length": [CT, ("Content-Length", N)],
    "signed Content-Length": [CT, ("Content-Length", "+%d" % N)],
    "non-digit Content-Length": [CT, ("Content-Length", "%d x" % N)],
    "Transfer-Encoding list": [CT, ("Transfer-Encoding", "gzip, chunked")],
    "Transfer-Encoding identity": [CT, ("Transfer-Encoding", "identity")],
    "chunked with Content-Length": [CT, ("Transfer-Encoding", "chunked")],
    "two Content-Type": [CT, ("Content-Type", "text/plain")],
    "space before colon": [CT, ("X-Pad ", "1")],
}


@pytest.mark.parametrize("case", sorted(FRAMING))
def test_ambiguous_framing_is_refused(gateway, case):
    headers = FRAMING[case]
    body = SMALL
    if case == "chunked with Content-Length":
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (N, SMALL)
    length = case not in ("signed Content-Length",
                          "non-digit Content-Length")
    assert_refused(gateway, post("/fhir/$validate", body, headers,
                                 length=length))


def test_line_endings_and_folding_are_refused(gateway):
    assert_refused(gateway, post("/fhir/$validate", SMALL, [CT],
                                 eol=b"\n"), what="bare LF")
    folded = post("/fhir/$validate", SMALL, [CT, ("X-Note", "a\r\n b")])
    assert_refused(gateway, folded, what="folding")


def test_encoded_slash_and_nul_in_path_are_refused(gateway):
    for path in ("/fhir%2Fmetadata", "/fhir%2fmetadata",
                 "/fhir/metadata%00"):
        data = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode()
        assert_refused(gateway, data, what="percent-encoded")
    # Routing is on the path as sent: an encoded '$' is another path.
    data = b"GET /fhir/metad%61ta HTTP/1.1\r\nHost: localhost\r\n\r\n"
    line, _, body, _ = send_raw(gateway, data)
    assert status_of(line) == 404, line


def test_other_charset_is_refused(gateway):
    data = post("/fhir/$validate", SMALL,
                [("Content-Type", "application/fhir+json; charset=utf-16")])
    assert_refused(gateway, data, what="UTF-8")
    ok = post("/fhir/$validate", SMALL,
              [("Content-Type", 'application/fhir+json; charset="UTF-8"')])
    assert status_of(send_raw(gateway, ok)[0]) == 200


def test_connect_is_refused_and_closed(gateway):
    data = b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org\r\n\r\n"
    oo = assert_refused(gateway, data, status=405)
    assert oo["issue"][0]["code"] == "not-supported"


def test_keepalive_and_pipelining_still_work(gateway):
    # Two requests in one write: the second waits for the first's answer.
    get = b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n\r\n"
    s = gateway.connect()
    try:
        s.sendall(post("/fhir/$validate", SMALL, [CT]) + get)
        line, _, _ = read_response(s)
        assert status_of(line) == 200
        line, _, body = read_response(s)
        assert status_of(line) == 200
        assert json.loads(body)["resourceType"] == "CapabilityStatement"
        s.sendall(get)
        assert status_of(read_response(s)[0]) == 200
    finally:
        s.close()


def test_memory_limit_decided_before_the_body(pki, tmp_path):
    # One request announcing 1.5 MB holds about 15 MB of max_memory (16M)
    # while its body trickles in; a second one announcing as much gets
    # 503 with Retry-After from its head alone, never 100 Continue.
    g = gw.Gateway(pki, str(tmp_path), limits__max_memory="16M",
                   limits__max_body="4M").start()
    first = g.connect()
    try:
        first.sendall(expect_head("/fhir/$validate", 1500000))
        first.settimeout(5)
        assert first.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        first.sendall(b"{")
        t0 = time.monotonic()
        line, headers, body, closed = send_raw(
            g, expect_head("/fhir/$validate", 1500000))
        assert status_of(line) == 503, line
        assert time.monotonic() - t0 < 3
        assert headers.get("retry-after") == "5"
        assert_outcome(body, "transient")
        assert closed
        # The first one's reservation goes with its connection.
        first.close()
        first = None
        def continued():
            s = g.connect()
            try:
                s.sendall(expect_head("/fhir/$validate", 1500000))
                s.settimeout(5)
                return s.recv(4096).startswith(b"HTTP/1.1 100 Continue")
            finally:
                s.close()
        gw.wait_for(continued, what="memory released")
    finally:
        if first is not None:
            first.close()
        g.stop()


def test_refusal_reaches_a_client_that_sends_its_body_unasked(gateway):
    # Without Expect: 100-continue a client (Python's http.client here)
    # sends its whole body before reading: the refusal must still reach it
    # (the body is dropped unread, then answered), not a reset mid-upload.
    big = b'{"resourceType":"Basic","text":"' + b"x" * 3000000 + b'"}'
    for _ in range(3):
        status, headers, body = gateway.request(
            "POST", "/fhir/$validate", body=big, cert="gp1",
            headers={"Content-Type": "application/fhir+json"})
        assert status == 403, body[:200]
        assert_outcome(body, "forbidden")
        status, _, body = gateway.request(
            "POST", "/fhir/nope", body=big,
            headers={"Content-Type": "application/fhir+json"})
        assert status == 404, body[:200]
