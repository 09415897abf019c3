"""End-to-end tests of the connection side of the listeners: the
handshake pool and its deadline, the admin listener's limits, accept
errors, and which URAs the request metrics name."""

import socket
import time

import gw


def open_idle(port, n):
    """n raw TCP connections that never send a byte."""
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", port),
                                              timeout=5))
    return socks


def closed_by_peer(sock, timeout):
    """True when the peer closes sock within timeout seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionError, OSError):
        return True


def test_idle_tcp_connections_do_not_lock_out_organisations(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__handshake_timeout="3s",
                   limits__max_handshakes="32").start()
    idle = []
    try:
        idle = open_idle(g.port, 300)
        # More idle sockets than max_connections (256) and the handshake
        # pool: a known organisation is still served at once, well
        # before any deadline (3 s handshake, 5 s read) could free a
        # place.
        start = time.monotonic()
        status, _, _ = g.request("GET", "/fhir/metadata", timeout=10)
        took = time.monotonic() - start
        assert status == 200
        assert took < 1.5, "metadata took %.2f s" % took
        evicted = g.metric("pzpgw_http_handshakes_evicted_total",
                           listener="org")
        assert evicted is not None and evicted >= 300 - 32, evicted
        # The idle sockets still in the pool are closed at the deadline.
        start = time.monotonic()
        assert all(closed_by_peer(s, 8) for s in idle)
        assert time.monotonic() - start < 6
        gw.wait_for(lambda: (g.metric("pzpgw_http_handshake_timeouts_total",
                                      listener="org") or 0) >= 1,
                    what="handshake timeouts counted")
        assert g.metric("pzpgw_http_connections", listener="org",
                        state="handshake") == 0
        assert "event=handshake_pool_full" in g.log_text()
        assert g.log_text().count("event=handshake_pool_full") == 1
    finally:
        for s in idle:
            s.close()
        g.stop()


def test_handshake_deadline_closes_a_silent_connection(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), limits__handshake_timeout="1s",
                   limits__read_timeout="30s").start()
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        start = time.monotonic()
        assert closed_by_peer(s, 10)
        took = time.monotonic() - start
        s.close()
        # The handshake deadline, not read_timeout (30 s).
        assert 0.8 < took < 5, took
        assert g.metric("pzpgw_http_handshake_timeouts_total",
                        listener="org") == 1
        # A finished handshake moves to the established pool, where
        # read_timeout applies: a TLS connection idle for 2 s is kept.
        t = g.connect()
        time.sleep(2)
        t.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: localhost\r\n"
                  b"\r\n")
        assert t.recv(4096).startswith(b"HTTP/1.1 200")
        assert g.metric("pzpgw_http_connections", listener="org",
                        state="established") == 1
        t.close()
    finally:
        g.stop()
