"""Issue 9, HTTP side: the request id is ours, permissions are decided
before the body is read, and request heads a proxy could read differently
are refused. Raw bytes over real mutual TLS to the real daemon."""

import json
import re
import socket
import ssl
import time

import gw

SMALL = b'{"resourceType":"Basic","code":{"text":"x"}}'


def send_raw(g, data, cert="hospital", timeout=5.0):
    """Send data on a fresh TLS connection; return (status line, headers,
    body, closed) of the first response. closed: the server closed the
    connection after it."""
    s = g.connect(cert=cert, timeout=timeout)
    try:
        s.sendall(data)
        return read_response(s)
    finally:
        s.close()


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a response: %r"
                                 % buf)
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    body, extra = rest[:n], rest[n:]
    closed = False
    if not extra:
        try:
            s.settimeout(2.0)
            closed = s.recv(1) == b""
        except (socket.timeout, TimeoutError):
            closed = False
        except (ssl.SSLError, ConnectionError, OSError):
            closed = True
    return lines[0], headers, body, closed


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
