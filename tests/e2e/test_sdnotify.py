"""Issue 15: the daemon speaks the systemd notify protocol. A datagram
socket in the test stands in for systemd (NOTIFY_SOCKET): READY=1 only
once the listeners accept and the store is open, RELOADING=1 then
READY=1 around SIGHUP (also when the reload fails), STOPPING=1 at
SIGTERM, WATCHDOG=1 from the event loop at half of WATCHDOG_USEC."""

import os
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import time

import pytest

import gw


class Systemd:
    """A notify socket that records every datagram with its arrival time
    (time.monotonic, the same clock as CLOCK_MONOTONIC)."""

    def __init__(self):
        # A short path: sun_path holds 108 bytes, pytest's tmp_path may
        # be longer.
        self.dir = tempfile.mkdtemp(prefix="sdn-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.cond = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.messages.append((time.monotonic(),
                                      data.decode("utf-8", "replace")))
                self.cond.notify_all()

    def wait(self, pred, start=0, timeout=20.0, what="message"):
        """The index of the first message from index start for which
        pred(fields) holds; fields is the message as a dict."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.messages):
                    if pred(fields(self.messages[i][1])):
                        return i
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "no %s; got %r" % (what, [m for _, m in
                                                  self.messages]))
                self.cond.wait(left)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def fields(text):
    out = {}
    for line in text.split("\n"):
        k, _, v = line.partition("=")
        out[k] = v
    return out


@pytest.fixture
def systemd():
    sd = Systemd()
    yield sd
    sd.close()


def start(pki, tmp_path, sd, **env):
    g = gw.Gateway(pki, str(tmp_path))
    g.env = dict(os.environ, NOTIFY_SOCKET=sd.path)
    for k in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        g.env.pop(k, None)
    g.env.update(env)
    return g


def test_ready_reload_stopping(pki, tmp_path, systemd):
    sd = systemd
    g = start(pki, tmp_path, sd)
    g.start(wait=False)
    try:
        i = sd.wait(lambda f: f.get("READY") == "1", what="READY=1")
        # At READY=1 both listeners accept and the store is open: the
        # first request made after it is answered, not refused.
        conn = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        conn.close()
        assert g.admin("/readyz")[0] == 200
        st, _, _ = g.request("GET", "/fhir/metadata")
        assert st == 200
        assert os.path.exists(os.path.join(g.dir, "pzpgw.db"))
        ready = fields(sd.messages[i][1])
        assert "serving organisation " + gw.URA["gateway"] in \
            ready["STATUS"], ready
        assert "READY=1" not in [m for _, m in sd.messages[:i]]
        # Before the store opens (a migration may be long) systemd is
        # asked to wait longer than its default start timeout.
        ext = [fields(m) for _, m in sd.messages[:i]
               if "EXTEND_TIMEOUT_USEC" in fields(m)]
        assert ext and int(ext[0]["EXTEND_TIMEOUT_USEC"]) >= 300000000, \
            sd.messages[:i]
        assert "opening the store" in ext[0]["STATUS"]

        # SIGHUP: RELOADING=1 with the monotonic time of the reload,
        # then READY=1 saying it was done.
        before = time.monotonic()
        g.send_signal(signal.SIGHUP)
        j = sd.wait(lambda f: f.get("RELOADING") == "1", i + 1,
                    what="RELOADING=1")
        usec = int(fields(sd.messages[j][1])["MONOTONIC_USEC"])
        assert before - 1 <= usec / 1e6 <= time.monotonic() + 1, usec
        k = sd.wait(lambda f: f.get("READY") == "1", j + 1,
                    what="READY=1 after the reload")
        assert fields(sd.messages[k][1])["STATUS"] == \
            "configuration reloaded"

        # A reload that fails still ends with READY=1 (the old
        # configuration serves), and STATUS= says so.
        with open(g.conf, "w") as f:
            f.write("[organisation]\nura = not-a-ura\n")
        g.send_signal(signal.SIGHUP)
        j = sd.wait(lambda f: f.get("RELOADING") == "1", k + 1,
                    what="RELOADING=1 of the bad reload")
        k = sd.wait(lambda f: f.get("READY") == "1", j + 1,
                    what="READY=1 after the failed reload")
        assert "reload failed" in fields(sd.messages[k][1])["STATUS"]
        assert g.request("GET", "/fhir/metadata")[0] == 200

        g.send_signal(signal.SIGTERM)
        sd.wait(lambda f: f.get("STOPPING") == "1", k + 1,
                what="STOPPING=1")
        assert g.proc.wait(30) == 0
        # No watchdog was asked for: no keep-alives.
        assert not any("WATCHDOG=1" in m for _, m in sd.messages)
    finally:
        g.stop()


def test_watchdog_rate(pki, tmp_path, systemd):
    sd = systemd
    # 400 ms: a keep-alive every 200 ms.
    g = start(pki, tmp_path, sd, WATCHDOG_USEC="400000")
    g.start(wait=False)
    try:
        i = sd.wait(lambda f: f.get("READY") == "1", what="READY=1")
        time.sleep(3.0)
        with sd.cond:
            beats = [t for t, m in sd.messages[i:]
                     if "WATCHDOG=1" in m.split("\n")]
        # 3 s at 200 ms is 15 (+1 with READY); a loaded machine delays
        # some, never makes them come faster.
        assert 10 <= len(beats) <= 18, len(beats)
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        assert 0.15 <= statistics.median(gaps) <= 0.3, gaps
        assert min(gaps) >= 0.1, gaps
        # A stopped event loop sends nothing: systemd would restart it.
        g.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        n = len(sd.messages)
        time.sleep(1.0)
        assert len(sd.messages) == n, sd.messages[n:]
        g.send_signal(signal.SIGCONT)
        sd.wait(lambda f: f.get("WATCHDOG") == "1", n,
                what="WATCHDOG=1 after SIGCONT")
    finally:
        g.stop()


def test_watchdog_of_another_process(pki, tmp_path, systemd):
    sd = systemd
    # WATCHDOG_PID names another process (systemd sets it for the main
    # process only): this one sends no keep-alives.
    g = start(pki, tmp_path, sd, WATCHDOG_USEC="200000", WATCHDOG_PID="1")
    g.start(wait=False)
    try:
        i = sd.wait(lambda f: f.get("READY") == "1", what="READY=1")
        time.sleep(1.0)
        assert not any("WATCHDOG=1" in m for _, m in sd.messages), \
            sd.messages
    finally:
        g.stop()
