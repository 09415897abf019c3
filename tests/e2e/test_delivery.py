"""Issue 5 delivery: hospital -> gateway A -> gateway B with real daemons
on loopback (each its own store and certificate: A is gateway.crt, URA
90000001; B is gateway2.crt, URA 90000009), and A against scripted fake
receivers for the failure cases (500 forever, 400, wrong URA, timeout)."""

import copy
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

import gw
from fake_receiver import FakeReceiver, outcome

HOSPITAL = gw.URA["hospital"]
GP1 = gw.URA["gp1"]
GP2 = gw.URA["gp2"]
A_URA = gw.URA["gateway"]
B_URA = "90000009"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
EVENT_SYSTEM = "http://pzpgw.nl/fhir/CodeSystem/message-event"
F1 = os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4", "pzp-0.1.3",
                  "bundle-F1.json")

with open(F1) as _f:
    _TEMPLATE = [e for e in json.load(_f)["entry"] if "resource" in e]


def _small(entries, limit=8000):
    """F1's resources without those nothing else refers to, from the end,
    down to about limit bytes: a valid care plan that is quick to check
    (for the load tests)."""
    keep = list(entries)
    while len(json.dumps(keep)) > limit:
        for i in range(len(keep) - 1, -1, -1):
            others = json.dumps([e for k, e in enumerate(keep) if k != i])
            if keep[i]["resource"]["resourceType"] != "Patient" and \
                    keep[i]["fullUrl"] not in others:
                del keep[i]
                break
        else:
            break
    return keep


_SMALL = _small(_TEMPLATE)


def bsn(n):
    """A 9-digit number passing the BSN eleven test, distinct per n."""
    n = 100000000 + n * 17
    while True:
        d = [int(c) for c in "%08d" % (n % 100000000)]
        s = sum(w * x for w, x in zip(range(9, 1, -1), d)) % 11
        if s < 10:
            return "".join(map(str, d)) + str(s)
        n += 1


def message(receivers, patient=0, ident=None, invalid=False, small=False):
    """A message Bundle from the hospital carrying F1's resources (or the
    small subset) for patient number `patient`; returns (identifier
    value, JSON bytes)."""
    entries = copy.deepcopy(_SMALL if small else _TEMPLATE)
    for e in entries:
        r = e["resource"]
        if r["resourceType"] == "Patient":
            r["identifier"][0]["value"] = bsn(patient)
            if invalid:
                r["gender"] = "sometimes"
    header = {
        "resourceType": "MessageHeader",
        "eventCoding": {"system": EVENT_SYSTEM, "code": "pzp-shared"},
        "destination": [{"endpoint": "urn:ura:" + r,
                         "receiver": {"identifier": {"system": URA_SYSTEM,
                                                     "value": r}}}
                        for r in receivers],
        "sender": {"identifier": {"system": URA_SYSTEM, "value": HOSPITAL}},
        "source": {"endpoint": "urn:ura:" + HOSPITAL},
        "focus": [{"reference": e["fullUrl"]} for e in entries],
    }
    ident = ident or "urn:uuid:" + str(uuid.uuid4())
    doc = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": ident},
        "type": "message",
        "timestamp": "2026-11-23T10:00:00Z",
        "entry": [{"fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                   "resource": header}] + entries,
    }
    return ident, json.dumps(doc).encode()


class Poster:
    """The hospital: one keep-alive mTLS connection; re-posts a message
    whose answer was lost (the gateway deduplicates)."""

    def __init__(self, g, cert="hospital"):
        self.g = g
        self.ctx = gw.client_context(g.pki, cert)
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, body, deadline=None):
        deadline = deadline or time.monotonic() + 30
        while True:
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection(
                        "localhost", self.g.port, context=self.ctx,
                        timeout=30)
                self.conn.request("POST", "/fhir/$process-message", body,
                                  {"Content-Type": "application/fhir+json",
                                   "Accept": "application/fhir+json"})
                resp = self.conn.getresponse()
                data = resp.read()
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if hdrs.get("connection", "").lower() == "close":
                    self.close()
                return resp.status, hdrs, data
            except (OSError, http.client.HTTPException):
                self.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def query(path, sql):
    """Rows of a read-only query on a store (the daemon may be writing)."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def a_rows(g):
    """A's outbox rows with their message's identifier, in order."""
    return query(g.sections["store"]["path"],
                 "SELECT m.id, m.bundle_value, o.receiver_ura, o.state,"
                 " o.attempts, o.last_error, o.last_status, o.outcome"
                 " FROM outbox o JOIN messages m ON m.seq = o.message_seq"
                 " ORDER BY o.message_seq")


def b_messages(g):
    """What B stored, in acceptance order: [(identifier, document)]."""
    return [(r["bundle_value"], r["document"]) for r in query(
        g.sections["store"]["path"],
        "SELECT bundle_value, document FROM messages"
        " WHERE direction = 'inbound' ORDER BY seq")]


def settled(g):
    rows = a_rows(g)
    return rows and all(r["state"] in ("delivered", "dead") for r in rows)


def mkdir(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    return str(d)


def gateway_a(pki, tmp_path, routes, **delivery):
    """Gateway A (URA 90000001): routes maps receiver URA -> (port,
    server URA) of the gateway serving it."""
    g = gw.Gateway(pki, mkdir(tmp_path, "a"))
    g.sections["delivery"] = {"backoff_min": "100ms", "backoff_max": "1s",
                              "timeout": "5s"}
    g.sections["delivery"].update(delivery)
    for ura, (port, server_ura) in routes.items():
        g.sections["peer " + ura] = {
            "name": "practice " + ura,
            "endpoint": "https://localhost:%d/fhir" % port,
            "server_ura": server_ura,
            "allow": "pull",
        }
    return g


def gateway_b(pki, tmp_path):
    """Gateway B (URA 90000009, gateway2.crt): A may push to it and relay
    the hospital's messages; gp1 and gp2 are served here (they pull)."""
    g = gw.Gateway(pki, mkdir(tmp_path, "b"))
    g.sections["organisation"] = {"ura": B_URA, "name": "Test gateway B"}
    g.sections["listen"]["certificate"] = os.path.join(pki, "gateway2.crt")
    g.sections["listen"]["key"] = os.path.join(pki, "gateway2.key")
    g.sections["peer " + A_URA] = {"name": "gateway A", "allow": "push",
                                   "relay": HOSPITAL}
    return g


def start_a(g):
    g.start()
    if "event=delivery_started" not in g.log_text():
        g.stop()
        pytest.skip("the daemon does not run the deliverer yet (serve.c)")
    return g


def restart(g):
    """Start g again after it died; waits for this run's start line."""
    offset = os.path.getsize(g.log_path)
    g.start(wait=False)

    def started():
        with open(g.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        return "event=started" in text or g.proc.poll() is not None
    gw.wait_for(started, timeout=20, what="restart")
    assert g.proc.poll() is None, g.log_text()[-2000:]


def kill9(g):
    g.proc.send_signal(signal.SIGKILL)
    g.proc.wait()
    g.log.close()


def post_all(g, msgs, threads=4, refused=None):
    """Post (patient, receivers, invalid) items; each patient's messages
    go in order through one connection. Returns {ident: (status, lane,
    message id)}, lane being (patient, receivers). With refused (a list
    [0]), a message answered 503 is posted again, as a sender does, until
    acknowledged (90 s at most), and refused[0] counts the 503s."""
    results = {}
    lock = threading.Lock()
    errors = []

    def worker(k):
        p = Poster(g)
        deadline = time.monotonic() + 90
        try:
            for patient, receivers, invalid in msgs:
                if patient % threads != k:
                    continue
                ident, body = message(receivers, patient, invalid=invalid,
                                      small=True)
                while True:
                    status, hdrs, _ = p.post(body, time.monotonic() + 60)
                    if status != 503 or refused is None:
                        break
                    assert "retry-after" in hdrs
                    with lock:
                        refused[0] += 1
                    assert time.monotonic() < deadline, "still 503"
                    time.sleep(0.1)
                with lock:
                    results[ident] = (status, (patient, tuple(receivers)),
                                      hdrs.get("x-message-id"))
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            p.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    return results


def check_arrived(b, results, order=True):
    """Every 202 arrived at B exactly once, in order per (patient,
    receiver); nothing else did."""
    got = b_messages(b)
    idents = [i for i, _ in got]
    assert len(idents) == len(set(idents))
    accepted = {i for i, r in results.items() if r[0] == 202}
    refused = {i for i, r in results.items() if r[0] != 202}
    assert accepted == set(idents), (len(accepted), len(idents))
    assert not refused & set(idents)
    if order:
        # results keeps each lane's posting order (one thread each).
        want = {}
        for ident, (status, lane, _) in results.items():
            if status == 202:
                want.setdefault(lane, []).append(ident)
        pos = {i: n for n, i in enumerate(idents)}
        for lane, seq in want.items():
            assert [pos[i] for i in seq] == sorted(pos[i] for i in seq), \
                "lane %s out of order" % (lane,)
    return got


def verify(pki, tmp_path, doc, ura=A_URA):
    path = tmp_path / ("doc-%s.json" % uuid.uuid4())
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    r = subprocess.run([gw.BINARY, "verify", "--trust",
                        os.path.join(pki, "uzi-server-ca.pem"),
                        "--expect-ura", ura, str(path)],
                       capture_output=True, text=True)
    return r.returncode, r.stderr


def queue(g, *args):
    return subprocess.run([gw.BINARY, "queue", "--store",
                           g.sections["store"]["path"]] + list(args),
                          capture_output=True, text=True)


@pytest.fixture
def pair(pki, tmp_path):
    b = gateway_b(pki, tmp_path)
    a = gateway_a(pki, tmp_path, {GP1: (b.port, B_URA),
                                  GP2: (b.port, B_URA)})
    yield a, b
    a.stop()
    b.stop()


def test_500_messages_arrive_once_in_order_signed(pair, pki, tmp_path):
    a, b = pair
    b.start()
    start_a(a)
    msgs = [(n % 10, [GP1] if (n % 10) % 2 == 0 else [GP2], False)
            for n in range(500)]
    results = post_all(a, msgs)
    assert all(r[0] == 202 for r in results.values())
    gw.wait_for(lambda: settled(a), timeout=60, what="delivery of 500")
    assert all(r["state"] == "delivered" for r in a_rows(a))
    got = check_arrived(b, results)
    assert len(got) == 500
    # Signed by A, as it left A, for a sample of what B stored.
    for _, doc in random.sample(got, 10):
        rc, err = verify(pki, tmp_path, doc)
        assert rc == 0, err
    assert a.metric("pzpgw_deliveries_total", receiver=GP1,
                    outcome="delivered") >= 250
    assert a.metric("pzpgw_deliveries_total", receiver=GP2,
                    outcome="delivered") >= 250


def test_receiver_down_then_up(pair):
    a, b = pair
    start_a(a)
    msgs = [(n % 5, [GP1 if n % 2 else GP2], False) for n in range(30)]
    results = post_all(a, msgs, threads=5)
    assert all(r[0] == 202 for r in results.values())

    def retried():
        heads = [r for r in a_rows(a) if r["attempts"] > 0]
        return heads and all(r["attempts"] >= 3 for r in heads)
    gw.wait_for(retried, timeout=20, what="retries while B is down")
    rows = a_rows(a)
    assert all(r["state"] in ("due", "inflight") for r in rows)
    # Only one row per (receiver, patient) lane is tried at a time.
    tried = [r for r in rows if r["attempts"] > 0]
    assert len(tried) <= 10
    assert all(not r["last_status"] and r["last_error"] for r in tried), tried
    b.start()
    gw.wait_for(lambda: settled(a), timeout=30, what="delivery after B up")
    assert all(r["state"] == "delivered" for r in a_rows(a))
    check_arrived(b, results)


def test_kill9_during_load(pair):
    a, b = pair
    b.start()
    start_a(a)
    rnd = random.Random(5)
    msgs = []
    for n in range(1000):
        patient = n % 20
        msgs.append((patient, [GP1] if patient % 2 else [GP2],
                     rnd.random() < 0.02))
    box = {}
    poster = threading.Thread(target=lambda: box.update(
        r=post_all(a, msgs, threads=4)))
    poster.start()
    kills = 0
    while kills < 10:
        time.sleep(rnd.uniform(0.2, 0.8))
        kill9(a)
        kills += 1
        restart(a)
    poster.join(timeout=120)
    assert not poster.is_alive()
    results = box["r"]
    assert len(results) == 1000
    assert any(r[0] == 422 for r in results.values())
    gw.wait_for(lambda: settled(a), timeout=60, what="delivery after kills")
    assert all(r["state"] == "delivered" for r in a_rows(a))
    check_arrived(b, results)
    assert a.log_text().count("event=started") == 11


# ---- A against scripted receivers ----

def fake(pki, answer=None):
    return FakeReceiver(pki, answer=answer).start()


def test_failing_receiver_does_not_delay_another(pki, tmp_path):
    bad = fake(pki, lambda r: (500, {}, outcome("exception", "broken")))
    good = fake(pki)
    a = gateway_a(pki, tmp_path, {GP1: (bad.port, B_URA),
                                  GP2: (good.port, B_URA)})
    try:
        start_a(a)
        msgs = []
        for n in range(40):
            msgs.append((n % 4, [GP1] if n % 4 < 2 else [GP2], False))
        t0 = time.monotonic()
        post_all(a, msgs)
        gw.wait_for(lambda: good.count() == 20, timeout=10,
                    what="the healthy receiver")
        assert time.monotonic() - t0 < 10
        # The receiver has them; A records each answer a moment later.
        gw.wait_for(lambda: all(r["state"] == "delivered" for r in a_rows(a)
                                if r["receiver_ura"] == GP2),
                    timeout=10, what="healthy receiver's rows delivered")
        def heads_retried():
            tried = [r["attempts"] for r in a_rows(a)
                     if r["receiver_ura"] == GP1 and r["attempts"]]
            return len(tried) == 2 and min(tried) >= 3
        gw.wait_for(heads_retried, timeout=15,
                    what="retries of the failing receiver")
        gp1 = [r for r in a_rows(a) if r["receiver_ura"] == GP1]
        assert all(r["state"] in ("due", "inflight") for r in gp1)
        assert {r["last_error"] for r in gp1 if r["attempts"]} == \
            {"HTTP 500"}
        # Two patients, so two lane heads are tried; the rest wait.
        assert len([r for r in gp1 if r["attempts"]]) == 2
        assert a.metric("pzpgw_deliveries_total", receiver=GP1,
                        outcome="retry") >= 4
    finally:
        a.stop()
        bad.stop()
        good.stop()


def test_max_age_expires_whole_lanes(pki, tmp_path):
    """A receiver that cannot be reached is held: its rows are not
    attempted, so at [delivery] max_age they go dead by expiry, with "max
    age exceeded", lane heads and the rows behind them alike, each
    counted once. The upkeep thread expires them a batch at a time while
    the event loop goes on answering."""
    down = gw.free_port()  # nothing listens there
    a = gateway_a(pki, tmp_path, {GP1: (down, B_URA)}, max_age="3s")
    try:
        start_a(a)
        post_all(a, [(n % 3, [GP1], False) for n in range(9)])
        assert len(a_rows(a)) == 9
        gw.wait_for(lambda: settled(a), timeout=30, what="expired rows")
        rows = a_rows(a)
        assert all(r["state"] == "dead" for r in rows), rows
        assert all(r["last_error"].endswith("max age exceeded")
                   for r in rows), rows
        never = [r for r in rows if r["attempts"] == 0]
        assert never, rows
        gw.wait_for(lambda: (a.metric("pzpgw_expired_total") or 0) >=
                    len(never),
                    timeout=15, what="the expired count")
        assert "event=store_expired rows=" in a.log_text()
        status, _, _ = a.request("GET", "/fhir/metadata", cert="gp1")
        assert status == 200
    finally:
        a.stop()


def test_400_dead_letters_at_once_and_replay(pki, tmp_path):
    answers = [(400, {}, outcome("invalid", "no such practice here"))]
    rcv = fake(pki, lambda r: answers.pop(0) if answers else (200, {}, b"{}"))
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    try:
        start_a(a)
        ident, body = message([GP1])
        status, hdrs, _ = Poster(a).post(body)
        assert status == 202
        mid = hdrs["x-message-id"]
        gw.wait_for(lambda: settled(a), timeout=10, what="dead letter")
        row = a_rows(a)[0]
        assert row["state"] == "dead" and row["attempts"] == 1
        assert row["last_status"] == 400
        assert "no such practice here" in row["outcome"]
        shown = queue(a, "show", mid, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        assert "no such practice here" in shown.stdout
        # Replay: the same message under the same identifier.
        r = queue(a, "replay", mid)
        assert r.returncode == 0, r.stderr
        gw.wait_for(lambda: a_rows(a)[0]["state"] == "delivered",
                    timeout=10, what="replayed delivery")
        assert rcv.count() == 2
        first, second = rcv.received
        assert first.body == second.body
        assert second.json()["identifier"]["value"] == ident
        assert second.headers.get("X-Request-Id") == mid
        assert a.metric("pzpgw_deliveries_total", receiver=GP1,
                        outcome="dead") == 1
    finally:
        a.stop()
        rcv.stop()


def test_wrong_server_ura_is_refused(pki, tmp_path):
    rcv = fake(pki)
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, GP2)})
    try:
        start_a(a)
        status, _, _ = Poster(a).post(message([GP1])[1])
        assert status == 202
        gw.wait_for(lambda: a_rows(a)[0]["attempts"] >= 2, timeout=10,
                    what="refused attempts")
        row = a_rows(a)[0]
        assert row["state"] in ("due", "inflight")
        assert row["last_error"] == "server URA %s, expected %s" % (
            B_URA, GP2)
        assert rcv.count() == 0
    finally:
        a.stop()
        rcv.stop()


def test_timeout_is_temporary(pki, tmp_path):
    slow = [3.0]
    rcv = fake(pki, lambda r: (200, {}, b"{}",
                               slow.pop(0) if slow else 0))
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)}, timeout="1s")
    try:
        start_a(a)
        status, _, _ = Poster(a).post(message([GP1])[1])
        assert status == 202
        gw.wait_for(lambda: settled(a), timeout=15, what="delivery")
        row = a_rows(a)[0]
        assert row["state"] == "delivered" and row["attempts"] == 2
        assert "timeout" in a.log_text().lower()
    finally:
        a.stop()
        rcv.stop()


def test_duplicate_post_answers_the_same_and_delivers_once(pki, tmp_path):
    rcv = fake(pki)
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    try:
        start_a(a)
        ident, body = message([GP1])
        p = Poster(a)
        s1, h1, b1 = p.post(body)
        gw.wait_for(lambda: settled(a), timeout=10, what="delivery")
        s2, h2, b2 = p.post(body)
        p.close()
        assert (s1, s2) == (202, 202)
        assert h1["x-message-id"] == h2["x-message-id"]
        assert b1 == b2
        time.sleep(0.5)  # nothing more may be sent
        assert rcv.count() == 1
        assert len(a_rows(a)) == 1
    finally:
        a.stop()
        rcv.stop()


def test_send_cli_with_status(pki, tmp_path):
    rcv = fake(pki)
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    try:
        start_a(a)
        base = [gw.BINARY, "send", "--gateway",
                "https://localhost:%d" % a.port,
                "--cert", os.path.join(pki, "hospital.crt"),
                "--key", os.path.join(pki, "hospital.key"),
                "--cacert", os.path.join(pki, "ca.pem")]
        r = subprocess.run(base + ["--to", GP1, "--status", "--wait", "20",
                                   F1], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("HTTP 202\n")
        assert "receiver %s delivered attempts=1" % GP1 in r.stdout
        sent = rcv.received[0].json()
        header = sent["entry"][0]["resource"]
        assert header["sender"]["identifier"]["value"] == HOSPITAL
        assert header["destination"][0]["receiver"]["identifier"][
            "value"] == GP1
        # --event updated; a prepared message Bundle goes as it is.
        r = subprocess.run(base + ["--to", GP1, "--event", "updated", F1],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        ident, body = message([GP1], 3)
        prepared = tmp_path / "message.json"
        prepared.write_bytes(body)
        r = subprocess.run(base + [str(prepared)], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        mid = [ln.split()[1] for ln in r.stdout.splitlines()
               if ln.startswith("message ")][0]
        gw.wait_for(lambda: rcv.count() == 3, timeout=10, what="delivery")
        events = [b["entry"][0]["resource"]["eventCoding"]["code"]
                  for b in rcv.bodies()]
        assert events == ["pzp-shared", "pzp-updated", "pzp-shared"]
        assert rcv.bodies()[2]["identifier"]["value"] == ident
        assert rcv.received[2].headers.get("X-Request-Id") == mid
        # No route: 422 with the diagnostics, exit 1.
        r = subprocess.run(base + ["--to", "91234567", F1],
                           capture_output=True, text=True)
        assert r.returncode == 1
        assert r.stdout.startswith("HTTP 422")
        assert "91234567" in r.stderr
        # Usage.
        r = subprocess.run(base + ["--to", "123", F1], capture_output=True,
                           text=True)
        assert r.returncode == 2
    finally:
        a.stop()
        rcv.stop()


def test_disk_threshold_refuses_then_recovers(pki, tmp_path):
    mnt = mkdir(tmp_path, "small")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs",
                        mnt], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs: " + r.stderr.strip())
    rcv = None
    a = None
    try:
        # The receiver is busy at first, so messages stay queued.
        busy = [True]
        rcv = fake(pki, lambda r: (503, {}, outcome("transient", "busy"))
                   if busy[0] else (200, {}, b"{}"))
        a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
        a.sections["store"] = {"path": os.path.join(mnt, "pzpgw.db"),
                               "min_free": "6M"}
        start_a(a)
        p = Poster(a)
        for n in range(3):
            assert p.post(message([GP1], n)[1])[0] == 202
        # Fill the disk to below the threshold: new messages get 503.
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        with open(os.path.join(mnt, "filler"), "wb") as f:
            f.write(b"\0" * (free - 4 * 1024 * 1024))
        status, hdrs, body = p.post(message([GP1], 7)[1])
        assert status == 503, body
        assert "retry-after" in hdrs
        # Delivery goes on meanwhile.
        busy[0] = False
        gw.wait_for(lambda: settled(a), timeout=15, what="delivery")
        assert [r["state"] for r in a_rows(a)] == ["delivered"] * 3
        # Space returns: accepted again.
        os.unlink(os.path.join(mnt, "filler"))
        status, _, _ = p.post(message([GP1], 8)[1])
        assert status == 202
        gw.wait_for(lambda: settled(a), timeout=10, what="delivery")
        p.close()
        a.stop()
        c = sqlite3.connect(os.path.join(mnt, "pzpgw.db"))
        try:
            check = c.execute("PRAGMA integrity_check").fetchone()[0]
            n = c.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            c.close()
        assert check == "ok"
        assert n == 4
    finally:
        if a is not None:
            a.stop()
        if rcv is not None:
            rcv.stop()
        if subprocess.run(["umount", mnt]).returncode != 0:
            subprocess.run(["umount", "-l", mnt])


def test_sighup_changes_routes(pki, tmp_path):
    busy = [True]
    rcv = fake(pki, lambda r: (503, {"Retry-After": "1"},
                               outcome("transient", "busy"))
               if busy[0] else (200, {}, b"{}"))
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    try:
        start_a(a)
        assert Poster(a).post(message([GP1])[1])[0] == 202
        gw.wait_for(lambda: a_rows(a)[0]["attempts"] >= 1, timeout=10,
                    what="first attempt")
        # The route goes away: the row waits, and the gateway says so.
        route = a.sections.pop("peer " + GP1)
        a.write_config()
        a.send_signal(signal.SIGHUP)
        gw.wait_for(lambda: "event=delivery_no_route receiver=" + GP1
                    in a.log_text(), timeout=15, what="no-route warning")
        busy[0] = False
        time.sleep(1.5)
        assert a_rows(a)[0]["state"] == "due"
        assert rcv.count() == 1
        # The route comes back: delivered.
        a.sections["peer " + GP1] = route
        a.write_config()
        a.send_signal(signal.SIGHUP)
        gw.wait_for(lambda: settled(a), timeout=10, what="delivery")
        assert a_rows(a)[0]["state"] == "delivered"
        assert rcv.count() == 2
        assert a.log_text().count("event=delivery_reconfigured") == 2
    finally:
        a.stop()
        rcv.stop()
