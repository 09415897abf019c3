"""Issue 16, first part: the store on PostgreSQL ([store] backend =
postgresql) with real daemons, real TLS and a real PostgreSQL server
(tests/pg/pg.sh, one per module, a fresh database per gateway): A
accepts and delivers to B while it is killed with kill -9 and started
again, and nothing acknowledged is lost or reordered; pzpgw queue, inbox
and audit work against the database; the configuration refuses a
password in the url. Skipped, saying so, only when the postgresql
package is not installed (make deps installs it)."""

import datetime
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest

import gw
import test_delivery as td

GP1 = gw.URA["gp1"]
GP2 = gw.URA["gp2"]


@pytest.fixture
def pair(pg, pki, tmp_path):
    b = gw.use_postgres(td.gateway_b(pki, tmp_path), pg)
    a = gw.use_postgres(td.gateway_a(pki, tmp_path, {
        GP1: (b.port, td.B_URA), GP2: (b.port, td.B_URA)}), pg)
    yield a, b
    a.stop()
    b.stop()


def a_rows(pg, g):
    """A's outbox rows: (identifier, receiver, state), in order."""
    return pg.sql(g.pg_url,
                  "SELECT m.bundle_value, o.receiver_ura, o.state"
                  " FROM outbox o JOIN messages m ON m.seq = o.message_seq"
                  " ORDER BY o.message_seq, o.receiver_ura")


def settled(pg, g):
    rows = a_rows(pg, g)
    return rows and all(r[2] in ("delivered", "dead") for r in rows)


def b_idents(pg, g):
    """Identifiers B stored, in acceptance order."""
    return [r[0] for r in pg.sql(
        g.pg_url, "SELECT bundle_value FROM messages"
        " WHERE direction = 'inbound' ORDER BY seq")]


def check_arrived(pg, b, results):
    """Every 202 arrived at B exactly once, in order per lane; nothing
    else did (as test_delivery.check_arrived, reading PostgreSQL)."""
    idents = b_idents(pg, b)
    assert len(idents) == len(set(idents))
    accepted = {i for i, r in results.items() if r[0] == 202}
    assert accepted == set(idents), (len(accepted), len(idents))
    want = {}
    for ident, (status, lane, _) in results.items():
        if status == 202:
            want.setdefault(lane, []).append(ident)
    pos = {i: n for n, i in enumerate(idents)}
    for lane, seq in want.items():
        assert [pos[i] for i in seq] == sorted(pos[i] for i in seq), \
            "lane %s out of order" % (lane,)
    return idents


def cli(g, *args, env=None):
    return subprocess.run([gw.BINARY] + list(args[:1]) + ["-c", g.conf] +
                          list(args[1:]), capture_output=True, text=True,
                          env=env)


def test_kill9_of_a_on_postgresql_loses_nothing(pg, pair):
    a, b = started(pair)
    # On the database, not in a file: no SQLite store beside the lock.
    assert not os.path.exists(a.sections["store"]["path"])
    rnd = random.Random(16)
    msgs = [(n % 12, [GP1] if (n % 12) % 2 else [GP2], rnd.random() < 0.02)
            for n in range(300)]
    box = {}
    poster = threading.Thread(target=lambda: box.update(
        r=td.post_all(a, msgs, threads=4)))
    poster.start()
    kills = 0
    while kills < 4:
        time.sleep(rnd.uniform(0.3, 1.0))
        td.kill9(a)
        kills += 1
        td.restart(a)
    poster.join(timeout=180)
    assert not poster.is_alive()
    results = box["r"]
    assert len(results) == 300
    assert any(r[0] == 422 for r in results.values())
    gw.wait_for(lambda: settled(pg, a), timeout=90,
                what="delivery after kills")
    assert all(r[2] == "delivered" for r in a_rows(pg, a))
    got = check_arrived(pg, b, results)
    assert len(got) == sum(1 for r in results.values() if r[0] == 202)
    assert a.log_text().count("event=started") == 5


def test_queue_inbox_audit_and_pull_on_postgresql(pg, pair):
    a, b = started(pair)
    msgs = [(n % 3, [GP1], False) for n in range(6)]
    results = td.post_all(a, msgs, threads=3)
    assert all(r[0] == 202 for r in results.values())
    gw.wait_for(lambda: settled(pg, a), timeout=30, what="delivery")

    # queue: A's outbox rows, delivered, and their counts.
    r = cli(a, "queue", "--format", "json", "list")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 6 and all(x["state"] == "delivered" for x in rows)
    r = cli(a, "queue", "--format", "json", "show", rows[0]["id"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"][0]["state"] == "delivered"
    r = cli(a, "queue", "--format", "json", "init")
    assert r.returncode == 0 and json.loads(r.stdout)["backend"] == \
        "postgresql", r.stdout + r.stderr
    # The same through --store with a URI (password from PGPASSWORD).
    r = subprocess.run([gw.BINARY, "queue", "--store", a.pg_url,
                        "--format", "json", "list"],
                       capture_output=True, text=True, env=pg.env())
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 6

    # inbox: B received six messages for gp1, indexed.
    r = cli(b, "inbox", "--format", "json", "list")
    assert r.returncode == 0, r.stderr
    inbox = json.loads(r.stdout)
    assert len(inbox) == 6
    assert {m["receiver"] for m in inbox} == {GP1}
    assert all(m["resources"] > 0 for m in inbox)

    # Pull from B: a search served from the index on PostgreSQL, and
    # audited there.
    st, _, body = b.request("GET", "/fhir/Patient?identifier=%s|%s" % (
        "http://fhir.nl/fhir/NamingSystem/bsn", td.bsn(1)), cert="gp1")
    assert st == 200, body
    bundle = json.loads(body)
    assert bundle["total"] == 1 if "total" in bundle else \
        len(bundle["entry"]) == 1
    pid = bundle["entry"][0]["resource"]["id"]
    st, _, body = b.request("GET", "/fhir/Patient/" + pid, cert="gp1")
    assert st == 200 and json.loads(body)["id"] == pid
    # gp2 was sent nothing: it sees nothing.
    st, _, body = b.request("GET", "/fhir/Patient?identifier=%s|%s" % (
        "http://fhir.nl/fhir/NamingSystem/bsn", td.bsn(1)), cert="gp2")
    assert st == 200 and not json.loads(body).get("entry"), body

    def audited():
        r = cli(b, "audit", "--format", "json", "list", "--limit", "1000")
        assert r.returncode == 0, r.stderr
        recs = json.loads(r.stdout)
        return recs if any(x["interaction"] == "read" for x in recs) \
            else None
    recs = gw.wait_for(audited, timeout=10, what="audit of the read")
    assert sum(1 for x in recs if x["interaction"] == "create") == 6
    r = cli(b, "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    # The trail is append-only in the database too.
    r = subprocess.run(["psql", "-X", "-d", b.pg_url, "-c",
                        "DELETE FROM audit"], capture_output=True,
                       text=True, env=pg.env())
    assert r.returncode != 0 and "append-only" in r.stderr

    # backup is SQLite's: refused with a pointer to PostgreSQL's tools.
    r = cli(a, "backup", str(a.dir) + "/copy.db")
    assert r.returncode == 2 and "pg_dump" in r.stderr, r.stderr


def test_config_refuses_a_password_in_the_url(pg, pki, tmp_path):
    g = gw.use_postgres(gw.Gateway(pki, str(tmp_path)), pg)
    url = g.sections["store"]["url"]
    g.sections["store"]["url"] = url.replace("pzpgw@", "pzpgw:secret@")
    g.write_config()
    r = subprocess.run([gw.BINARY, "check-config", "-c", g.conf],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "carries a password" in r.stderr + r.stdout
    assert "secret" not in r.stderr + r.stdout
    g.sections["store"]["url"] = url
    del g.sections["store"]["backend"]
    g.write_config()
    r = subprocess.run([gw.BINARY, "check-config", "-c", g.conf],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "need backend = postgresql" in r.stderr + r.stdout
    g.sections["store"]["backend"] = "postgresql"
    g.write_config()
    r = subprocess.run([gw.BINARY, "check-config", "-c", g.conf],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def started(pair):
    """B, then A (with its deliverer) started: (a, b)."""
    a, b = pair
    b.start()
    td.start_a(a)
    return a, b


def post_until_202(p, results, ns, again=True):
    """Post a message for each n in ns (patient n % 2) on p, again while
    it is answered 503 (unless not again): the first after an outage may
    still find a broken connection, and is then refused, never
    half-stored. Recorded in results; all end acknowledged."""
    for n in ns:
        ident, body = td.message([GP1], n % 2, small=True)
        st, _, data = p.post(body, time.monotonic() + 30)
        while st == 503 and again:
            time.sleep(0.2)
            st, _, data = p.post(body)
        results[ident] = (st, (n % 2, (GP1,)), None)
    assert all(r[0] == 202 for r in results.values()), results


def ready_then_post(a, p, results, ns, timeout):
    """Wait for A's /readyz to say 200 again after an outage, then post
    ns as post_until_202 does."""
    gw.wait_for(lambda: a.admin("/readyz")[0] == 200, timeout=timeout,
                what="/readyz after the outage")
    post_until_202(p, results, ns)


def all_delivered(pg, a, b, results, timeout, what):
    """A's rows all delivered, and each acknowledged message arrived at B
    once, in order per lane."""
    gw.wait_for(lambda: settled(pg, a), timeout=timeout, what=what)
    assert all(r[2] == "delivered" for r in a_rows(pg, a))
    check_arrived(pg, b, results)


def push_through(a, count, outage, what):
    """Four hospital connections push count messages (8 patients) to A
    while outage() runs in a thread; a push answered 503 is sent again,
    as a sender does. Returns post_all's results, all acknowledged."""
    msgs = [(n % 8, [GP1], False) for n in range(count)]
    t = threading.Thread(target=outage)
    t.start()
    try:
        refused = [0]
        results = td.post_all(a, msgs, refused=refused)
    finally:
        t.join()
    assert refused[0] > 0, "the %s came after the last push" % what
    assert len(results) == count
    assert all(r[0] == 202 for r in results.values())
    return results


def test_database_restart_503_then_continues(pg, pair):
    """The database stopped under A: /readyz fails and intake answers 503
    with Retry-After (never 202 for what it cannot commit), then both
    recover once the server is back, and everything acknowledged is
    delivered."""
    a, b = started(pair)
    results = {}
    p = td.Poster(a)
    try:
        post_until_202(p, results, range(5), again=False)
        assert a.admin("/readyz") == (200, "ready\n")
        pg.pg_ctl("stop", "-m", "fast", "-w")
        # The load balancer's probe: this node cannot accept now. The
        # store's upkeep thread pings the server every 100 ms; the probe
        # reads its answer and never waits on the database itself.
        def unreachable():
            t0 = time.monotonic()
            got = a.admin("/readyz")
            assert time.monotonic() - t0 < 1
            return got == (503, "not ready: store_unreachable\n")
        gw.wait_for(unreachable, timeout=5, what="/readyz 503")
        refused = 0
        for n in range(3):
            ident, body = td.message([GP1], 5, small=True)
            st, hdrs, data = p.post(body)
            assert st == 503, (st, data)
            assert "retry-after" in hdrs
            assert json.loads(data)["resourceType"] == "OperationOutcome"
            refused += 1
        pg.pg_ctl("start", "-w", "-l", os.path.join(pg.dir, "server.log"))
        ready_then_post(a, p, results, range(5, 10), 20)
    finally:
        p.close()
    all_delivered(pg, a, b, results, 60, "delivery after the database"
                  " restart")
    assert refused == 3


def test_a_frozen_database_503_then_continues(pg, pair):
    """The database frozen (SIGSTOP of every server process: connections
    stay open and nothing answers, as with a hung host or a network cut
    off without a reset): the gateway's event loop waits on it only in
    bounded waits (pg_caller_wait_ms, 2 s: shorter than the test
    gateways' read_timeout, 5 s, so no connection that came meanwhile is
    dropped before it is read), /readyz says 503 within 9 s,
    intake answers 503 with Retry-After at once, then all continues when
    the server thaws and everything acknowledged is delivered. Before,
    the event loop waited on the server for ever: /readyz and even TLS
    handshakes went unanswered."""
    a, b = started(pair)
    results = {}
    p = td.Poster(a)
    try:
        post_until_202(p, results, range(4), again=False)
        # A GP system's search on B (also on the database) answers.
        search = ("/fhir/Patient?identifier=http://fhir.nl/fhir/"
                  "NamingSystem/bsn%7C999999990")
        st, _, data = b.request("GET", search, cert="gp1",
                                headers={"Accept": "application/fhir+json"})
        assert st == 200, data
        pg.signal_all(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            gw.wait_for(lambda: a.admin("/readyz") ==
                        (503, "not ready: store_unreachable\n"),
                        timeout=15, what="/readyz 503 with the database"
                        " frozen")
            # The ping's staleness (2 s) plus at most one bounded wait
            # of a call the loop had begun.
            assert time.monotonic() - t0 < 9
            for n in range(3):
                t0 = time.monotonic()
                assert a.admin("/readyz")[0] == 503
                ident, body = td.message([GP1], 4, small=True)
                st, hdrs, data = p.post(body)
                assert st == 503, (st, data)
                assert "retry-after" in hdrs
                assert json.loads(data)["resourceType"] == \
                    "OperationOutcome"
                assert time.monotonic() - t0 < 2
            # B's pull API: 503 at once too, not a search that waits.
            gw.wait_for(lambda: b.admin("/readyz")[0] == 503, timeout=15,
                        what="B's /readyz 503")
            for n in range(3):
                t0 = time.monotonic()
                st, hdrs, data = b.request(
                    "GET", search, cert="gp1",
                    headers={"Accept": "application/fhir+json"})
                assert st == 503, (st, data)
                assert "retry-after" in hdrs
                assert time.monotonic() - t0 < 2
        finally:
            pg.signal_all(signal.SIGCONT)
        ready_then_post(a, p, results, range(4, 8), 30)
    finally:
        p.close()
    all_delivered(pg, a, b, results, 90, "delivery after the database"
                  " thawed")
    # The bounded wait that gave up, said in the log (as log_safe
    # writes a detail: words joined by underscores).
    assert "detail=no_answer_from_the_server_in_time" in a.log_text()


def two_nodes(pg, pki, tmp_path):
    """Gateway B on PostgreSQL and two A nodes (node = a1, a2, delivery
    timeout 2 s) sharing one database, none started: (b, a1, a2)."""
    b = gw.use_postgres(td.gateway_b(pki, tmp_path), pg)
    routes = {GP1: (b.port, td.B_URA), GP2: (b.port, td.B_URA)}
    nodes = []
    for name in ("a1", "a2"):
        os.makedirs(str(tmp_path / name))
        g = td.gateway_a(pki, tmp_path / name, routes, timeout="2s")
        g.sections.setdefault("process", {})["node"] = name
        nodes.append(g)
    a1, a2 = nodes
    gw.use_postgres(a1, pg)
    a2.pg_url = a1.pg_url
    a2.sections["store"].update(dict(a1.sections["store"],
                                      path=a2.sections["store"]["path"]))
    return b, a1, a2


def test_two_nodes_take_over_a_dead_nodes_deliveries(pg, pki, tmp_path):
    """Two A nodes (node = a1, a2) on one database. B is frozen
    (SIGSTOP: connections hang) while a1 claims rows, a1 is killed with
    kill -9 mid-delivery, B thaws: a2 delivers a1's rows once their
    lease (timeout 2 s + 5 s) expired, every acknowledged message arrives
    once (B drops a redelivered duplicate), in order per patient."""
    b, a1, a2 = two_nodes(pg, pki, tmp_path)
    try:
        b.start()
        td.start_a(a1)
        td.start_a(a2)
        b.proc.send_signal(signal.SIGSTOP)
        msgs = [(n % 6, [GP1] if n % 2 else [GP2], False)
                for n in range(24)]
        results = td.post_all(a1, msgs, threads=3)
        assert all(r[0] == 202 for r in results.values())

        def a1_inflight():
            return pg.sql(a1.pg_url,
                          "SELECT message_seq, receiver_ura FROM outbox"
                          " WHERE state = 'inflight' AND lease_owner = 'a1'")
        held = gw.wait_for(a1_inflight, timeout=20,
                           what="a1 delivering")
        td.kill9(a1)
        b.proc.send_signal(signal.SIGCONT)
        gw.wait_for(lambda: settled(pg, a1), timeout=90,
                    what="delivery by a2 after a1 died")
        rows = a_rows(pg, a1)
        assert all(r[2] == "delivered" for r in rows)
        # a1's rows in flight at its death were taken over by a2.
        for seq, ura in held:
            owner = pg.sql(a1.pg_url,
                           "SELECT lease_owner FROM outbox WHERE"
                           " message_seq = %d AND receiver_ura = '%s'"
                           % (int(seq), ura))
            assert owner == [["a2"]], (seq, ura, owner)
        check_arrived(pg, b, results)
        # Each node names itself in its log lines and metrics.
        assert " level=info node=a2 event=started" in a2.log_text()
        _, text = a2.admin("/metrics")
        series = [x for x in text.splitlines() if not x.startswith("#")]
        assert series and all('{node="a2"' in x for x in series), \
            [x for x in series if '{node="a2"' not in x][:3]
        assert any(x.startswith('pzpgw_deliveries_total{node="a2",'
                                '''receiver="''') for x in series), series
    finally:
        if b.proc is not None and b.proc.poll() is None:
            b.proc.send_signal(signal.SIGCONT)
        for g in (a1, a2, b):
            if g.proc is not None and g.proc.poll() is None:
                g.stop()


def test_two_nodes_killed_at_random_lose_nothing(pg, pki, tmp_path):
    """Two A nodes on one database both accept (each its own patients)
    while each is killed with kill -9 at random moments and started
    again: every 202 arrives at B once, in order per patient, and no
    row stays in flight."""
    b, a1, a2 = two_nodes(pg, pki, tmp_path)
    nodes = [a1, a2]
    rnd = random.Random(1616)
    try:
        b.start()
        td.start_a(a1)
        td.start_a(a2)
        box = {}
        posters = []
        for k, g in enumerate(nodes):
            msgs = [(2 * (n % 6) + k, [GP1] if n % 2 else [GP2], False)
                    for n in range(150)]
            t = threading.Thread(target=lambda g=g, m=msgs, k=k: box.update(
                {k: td.post_all(g, m, threads=2)}))
            t.start()
            posters.append(t)
        mid_post = 0
        for n in range(4):
            time.sleep(rnd.uniform(0.1, 0.6))
            g = nodes[n % 2]
            mid_post += posters[n % 2].is_alive()
            td.kill9(g)
            td.restart(g)
        # The kills hit nodes while they were being posted to.
        assert mid_post >= 2, mid_post
        for t in posters:
            t.join(timeout=180)
            assert not t.is_alive()
        results = dict(box[0])
        results.update(box[1])
        assert len(results) == 300
        gw.wait_for(lambda: settled(pg, a1), timeout=120,
                    what="delivery after kills of both nodes")
        assert all(r[2] == "delivered" for r in a_rows(pg, a1))
        got = check_arrived(pg, b, results)
        assert len(got) == sum(1 for r in results.values() if r[0] == 202)
        for g in nodes:
            assert g.log_text().count("event=started") == 3
    finally:
        for g in (a1, a2, b):
            if g.proc is not None and g.proc.poll() is None:
                g.stop()


def test_two_nodes_share_retention(pg, pki, tmp_path):
    """Retention on two nodes of one database: both are asked to prune
    at start, over the same 8,700 old deliveries (of 20,000). Between them
    every delivered message past retention goes, each counted once in
    their event=pruned lines, and nothing newer; no batch fails or
    deadlocks. (In the runs seen, only one node logged a prune.)"""
    import test_store_copy as tsc
    from test_queue_cli import now_ms

    day = 86400 * 1000
    src = str(tmp_path / "big.db")
    subprocess.run(
        ["sh", "-c", '. "$1/bench/lib.sh"; bench_big_store 20000 "$2" "$3"',
         "sh", gw.SRCDIR, src, gw.BINARY], check=True, timeout=120)
    b, a1, a2 = two_nodes(pg, pki, tmp_path)
    r = tsc.copy(pg, "sqlite:" + src, a1.pg_url)
    assert r.returncode == 0, r.stderr
    cut = now_ms() - 30 * day
    want_sql = ("SELECT count(*) FROM messages m WHERE direction ="
                " 'outbound' AND NOT EXISTS (SELECT 1 FROM outbox o WHERE"
                " o.message_seq = m.seq AND (o.state <> 'delivered' OR"
                " o.delivered_at >= %d))" % cut)
    want = int(pg.sql(a1.pg_url, want_sql)[0][0])
    total = int(pg.sql(a1.pg_url, "SELECT count(*) FROM messages")[0][0])
    assert want > 3000
    for g in (a1, a2):
        g.sections["store"]["retention"] = "30"
    a1.start()
    a2.start()
    try:
        def pruned():
            n = 0
            for g in (a1, a2):
                for line in g.log_text().splitlines():
                    m = re.search(r"event=pruned messages=(\d+)", line)
                    if m:
                        n += int(m.group(1))
            return n
        gw.wait_for(lambda: pruned() >= want, timeout=120,
                    what="the two nodes' retention")
        time.sleep(1)
        assert pruned() == want
        for g in (a1, a2):
            text = g.log_text()
            assert "prune_failed" not in text, text[-2000:]
            assert "deadlock" not in text, text[-2000:]
        left = int(pg.sql(a1.pg_url, want_sql)[0][0])
        assert left == 0
        assert int(pg.sql(a1.pg_url, "SELECT count(*) FROM messages")
                   [0][0]) == total - want
    finally:
        a1.stop()
        a2.stop()


def test_database_frozen_under_load_loses_nothing(pg, pair):
    """The database server frozen (SIGSTOP) for 8 s while four hospital
    connections push to A: batches in the writer's transaction, and the
    loop's claims, get no answer for longer than the bounded wait (5 s)
    and are given up mid-statement; then the server thaws and finishes
    or aborts what it had. Each push answered 503 is sent again. Every
    message ends acknowledged and arrives at B exactly once, in order
    per patient: a batch whose COMMIT got no answer may have committed,
    and is then deduplicated when it comes again."""
    a, b = started(pair)

    def freeze():
        time.sleep(0.5)
        pg.signal_all(signal.SIGSTOP)
        try:
            time.sleep(8.0)
        finally:
            pg.signal_all(signal.SIGCONT)

    results = push_through(a, 400, freeze, "freeze")
    all_delivered(pg, a, b, results, 120, "delivery after the freeze")
    assert "detail=no_answer_from_the_server_in_time" in a.log_text()


def test_database_crash_under_load_loses_nothing(pg, pair):
    """The database server crashes (pg_ctl stop -m immediate: connections
    cut mid-transaction, no shutdown checkpoint) while four hospital
    connections push to A, and is back 2 s later; B runs on the same
    server. Each push answered 503 is sent again, as a sender does. Every
    message ends acknowledged and arrives at B exactly once, in order per
    patient: a batch cut off was either not acknowledged, or committed
    and deduplicated when it came again."""
    a, b = started(pair)

    def crash():
        time.sleep(0.5)
        pg.pg_ctl("stop", "-m", "immediate")
        time.sleep(2.0)
        pg.pg_ctl("start", "-w", "-l", os.path.join(pg.dir, "server.log"))

    results = push_through(a, 600, crash, "crash")
    try:
        gw.wait_for(lambda: settled(pg, a), timeout=120,
                    what="delivery after the crash")
    except AssertionError:
        states = {}
        for r in a_rows(pg, a):
            states[r[2]] = states.get(r[2], 0) + 1
        stuck = pg.sql(a.pg_url, "SELECT o.state, o.attempts, o.last_error,"
                       " o.lease_until, o.lease_owner, o.next_attempt_at FROM outbox o"
                       " WHERE o.state <> 'delivered' LIMIT 5")
        lines = [ln for ln in a.log_text().splitlines()
                 if "event=request" not in ln][-40:]
        raise AssertionError("%r %r\n%s" % (states, stuck, "\n".join(lines)))
    assert all(r[2] == "delivered" for r in a_rows(pg, a))
    check_arrived(pg, b, results)
    # The outage (2 s, longer on a busy machine: the server's recovery)
    # failed hundreds of tries over A's connections; the log says so in
    # a line per 5 s at most, each after the first counting the tries
    # it stands for (unsaid=N), not a line per try.
    said = [ln for ln in a.log_text().splitlines()
            if "event=store_error" in ln]
    assert said
    at = [datetime.datetime.strptime(ln.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
          for ln in said]
    assert all((t1 - t0).total_seconds() >= 4.9
               for t0, t1 in zip(at, at[1:])), said
    unsaid = [int(re.search(r"unsaid=(\d+)", ln).group(1)) for ln in said]
    assert len(said) == 1 or sum(unsaid) > 0, said


def test_two_nodes_starting_at_once_on_an_empty_database(pg):
    """Two nodes (here `queue init`, the same store_open) started at the
    same moment on an empty database migrate one after the other: both
    succeed, the schema made once. Each waited for the migration lock
    after finding no schema table; the second then ran step 1 again
    (42P07 "relation pzpgw_schema already exists") and refused to
    start, every time."""
    binary = os.path.abspath(gw.BINARY)
    for _ in range(3):
        url = pg.database()
        procs = [subprocess.Popen([binary, "queue", "--store", url, "init"],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=pg.env()) for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert "42P07" not in err, err
        assert pg.sql(url, "SELECT count(*) FROM pzpgw_schema") == [["1"]]
