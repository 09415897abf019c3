"""`pzpgw store copy` (issue 16) on stores real daemons made: hospital ->
A -> B with deliveries done, some queued to a receiver that is down, some
dead letters, B's received data pulled (audit records). Both stores are
copied to a throwaway PostgreSQL (tests/pg/pg.sh), the daemons started on
it: the queued messages are delivered, pulls answer the same, the audit
chain verifies, the report counts are equal; the copy back to SQLite has
the same digests; a destination with data is refused; a copy killed with
kill -9 midway leaves the destination without data."""

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time

import gw
import test_delivery as td
import test_pull as tp
from fake_receiver import FakeReceiver, outcome

GP1 = gw.URA["gp1"]
GP2 = gw.URA["gp2"]
PERMID = gw.URA["permid"]


def copy(pg, src, dst, *extra):
    """pzpgw store copy; the database password from its file."""
    args = [gw.BINARY, "store", "copy", "--from", src, "--to", dst]
    if src.startswith("postgresql://"):
        args += ["--from-password-file", pg.password_file]
    if dst.startswith("postgresql://"):
        args += ["--to-password-file", pg.password_file]
    return subprocess.run(args + list(extra), capture_output=True,
                          text=True)


def sums(out):
    """{table: (rows, sha256, last_seq)} of a verified copy's output."""
    got = {}
    for m in re.finditer(r"^(\w+) +rows=(\d+) sha256=([0-9a-f]{64})"
                         r"(?: last_seq=(\d+))? equal$", out, re.M):
        got[m.group(1)] = (int(m.group(2)), m.group(3), m.group(4))
    return got


def copied(pg, src, dst, *extra):
    r = copy(pg, src, dst, *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verified: every table equal" in r.stdout
    s = sums(r.stdout)
    # rep_find (validation findings) is counted by the daemon, not
    # rebuilt from rows: copied too
    assert set(s) == {"messages", "outbox", "inbox", "res_versions",
                      "index_secret", "audit", "rep_find"}, r.stdout
    return s


def report(pg, store):
    r = subprocess.run([gw.BINARY, "report", "--store", store, "--from",
                        "2025-12-01", "--exact", "--format", "json"],
                       capture_output=True, text=True, env=pg.env())
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def pulls(b):
    """What gp1 gets for patients 0..2: the Patient search and each
    patient's Consents (resources as returned, in order)."""
    got = []
    for n in range(3):
        pid = tp.patient_id(b, n)
        st, _, bundle = tp.getj(b, "/fhir/Consent?patient=" + pid)
        assert st == 200, bundle
        got.append((pid, [e["resource"] for e in bundle.get("entry", [])]))
    return got


def on_postgres(g, url, pg):
    g.pg_url = url
    g.sections["store"].update({"backend": "postgresql", "url": url,
                                "password_file": pg.password_file})


def test_copy_to_postgresql_then_run_there(pg, pki, tmp_path):
    b = td.gateway_b(pki, tmp_path)
    down_port = gw.free_port()
    dead = FakeReceiver(pki, answer=lambda r: (
        400, {}, outcome("invalid", "no such practice"))).start()
    a = td.gateway_a(pki, tmp_path, {GP1: (b.port, td.B_URA),
                                     GP2: (down_port, td.B_URA),
                                     PERMID: (dead.port, td.B_URA)})
    up = None
    try:
        b.start()
        td.start_a(a)
        msgs = [(p, [GP1], False) for p in (0, 1, 2, 0, 1, 2)]
        msgs += [(p, [GP2], False) for p in (3, 4, 3, 4)]
        msgs += [(5, [PERMID], False), (5, [PERMID], False)]
        results = td.post_all(a, msgs, threads=3)
        assert all(r[0] == 202 for r in results.values()), results

        def ready():
            st = {}
            for r in td.a_rows(a):
                st.setdefault(r["receiver_ura"], []).append(r)
            gp2 = st.get(GP2, [])
            # GP2's two lane heads tried (and failing), the rest waiting.
            return (all(r["state"] == "delivered" for r in st.get(GP1, []))
                    and len(st.get(GP1, [])) == 6 and
                    all(r["state"] == "dead" for r in st.get(PERMID, []))
                    and len(st.get(PERMID, [])) == 2 and len(gp2) == 4 and
                    all(r["state"] in ("due", "inflight") for r in gp2) and
                    sum(1 for r in gp2 if r["attempts"] >= 1) == 2)
        gw.wait_for(ready, timeout=30, what="delivered, dead and retried")
        before_pulls = pulls(b)

        # A copy while B runs is a rehearsal: it works, from one
        # snapshot (what B accepts later is not in it).
        rehearsal = copied(pg, "sqlite:" + b.sections["store"]["path"],
                           pg.database())

        # The honest procedure: stop, copy, reconfigure, start.
        assert a.stop() == 0 and b.stop() == 0
        a_path = a.sections["store"]["path"]
        b_path = b.sections["store"]["path"]
        a_report, b_report = report(pg, a_path), report(pg, b_path)
        a_db, b_db = pg.database(), pg.database()
        a_sums = copied(pg, "sqlite:" + a_path, a_db)
        b_sums = copied(pg, "sqlite:" + b_path, b_db)
        assert a_sums["messages"][0] == 12 and a_sums["outbox"][0] == 12
        assert b_sums["messages"][0] == 6 and b_sums["inbox"][0] == 6
        assert b_sums["res_versions"][0] > 0
        assert b_sums["audit"][0] >= 6
        # Only B's audit trail grew since the rehearsal (the pulls were
        # before it): the rest is the same.
        assert rehearsal["messages"] == b_sums["messages"]

        # The same report from either backend.
        assert report(pg, a_db) == a_report
        assert report(pg, b_db) == b_report

        # Back to SQLite: the same rows and digests.
        for db, s, name in ((a_db, a_sums, "a"), (b_db, b_sums, "b")):
            back = str(tmp_path / ("back-%s.db" % name))
            assert copied(pg, db, "sqlite:" + back) == s

        # A destination with data is refused (exit 1), untouched;
        # --force replaces it.
        r = copy(pg, "sqlite:" + a_path, b_db)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "holds data" in r.stderr and "--force" in r.stderr
        assert pg.sql(b_db, "SELECT count(*) FROM messages") == [["6"]]
        assert copied(pg, "sqlite:" + b_path, b_db, "--force") == b_sums

        # Both daemons on PostgreSQL: the receiver that was down comes
        # up, A delivers the queued messages, nothing else again.
        on_postgres(a, a_db, pg)
        on_postgres(b, b_db, pg)
        # (restart: waits for this run's start line, not the first's)
        td.restart(b)
        td.restart(a)
        # A copy into a database gateways run on is refused, even with
        # --force (it would write beside them, or wipe their rows).
        r = copy(pg, "sqlite:" + a_path, a_db, "--force")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "stop every gateway using it first" in r.stderr
        up = FakeReceiver(pki, port=down_port).start()
        gw.wait_for(lambda: up.count() == 4, timeout=30,
                    what="queued messages delivered after the copy")
        gw.wait_for(lambda: all(r[1] == ("dead" if r[0] == PERMID
                                         else "delivered")
                                for r in pg.sql(
                                    a_db, "SELECT receiver_ura, state"
                                    " FROM outbox")),
                    timeout=20, what="A's rows settled on PostgreSQL")
        # Each once, in acceptance order per patient.
        accepted = pg.sql(a_db, "SELECT m.bundle_value, m.patient_key"
                          " FROM outbox o JOIN messages m ON m.seq ="
                          " o.message_seq WHERE o.receiver_ura = '%s'"
                          " ORDER BY o.message_seq" % GP2)
        got = [r.json()["identifier"]["value"] for r in up.received]
        assert sorted(got) == sorted(v for v, _ in accepted)
        for key in {k for _, k in accepted}:
            lane = [v for v, k in accepted if k == key]
            assert [v for v in got if v in lane] == lane
        # B received nothing twice.
        assert pg.sql(b_db, "SELECT count(*) FROM messages WHERE"
                      " direction = 'inbound'") == [["6"]]
        # New messages take seqs after the copied ones (the counters
        # were carried): A accepts one more, B indexes it.
        more = td.post_all(a, [(6, [GP1], False)], threads=1)
        assert [r[0] for r in more.values()] == [202]
        gw.wait_for(lambda: pg.sql(b_db, "SELECT count(*) FROM messages"
                                   " WHERE direction = 'inbound'")
                    == [["7"]], timeout=20, what="a new message at B")
        assert pg.sql(a_db, "SELECT max(seq) FROM messages") == [["13"]]
        assert int(pg.sql(b_db, "SELECT min(seq) FROM res_versions WHERE"
                          " message_seq = 7")[0][0]) > \
            int(b_sums["res_versions"][2] or 0)
        # Pulls answer the same from the copy.
        assert pulls(b) == before_pulls
        r = subprocess.run([gw.BINARY, "audit", "-c", b.conf, "verify"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        a.stop()
        b.stop()
        dead.stop()
        if up is not None:
            up.stop()


def big_store(path, n):
    """A store of n outbound messages (2 KB documents) and their outbox
    rows, written with SQL into a store `pzpgw queue init` made."""
    r = subprocess.run([gw.BINARY, "queue", "--store", path, "init"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(path)
    db.execute(
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r"
        " WHERE i < ?) INSERT INTO messages (seq, id, direction,"
        " sender_ura, bundle_system, bundle_value, patient_key,"
        " fhir_version, document, sha256, accepted_at, answer_status)"
        " SELECT i, printf('m-%08d', i), 'outbound', '90000002',"
        " 'urn:ietf:rfc:3986', printf('urn:uuid:%d', i),"
        " printf('p%d', i % 500), '4.0.1', randomblob(2000), 'x',"
        " 1764547200000 + i, 202 FROM r", (n,))
    db.execute(
        "INSERT INTO outbox (message_seq, receiver_ura, patient_key,"
        " state, next_attempt_at) SELECT seq, '90000003', patient_key,"
        " 'delivered', accepted_at FROM messages")
    db.commit()
    db.close()


def test_copy_killed_midway_leaves_no_data(pg, tmp_path):
    src = str(tmp_path / "big.db")
    big_store(src, 40000)
    rnd = random.Random(16)
    db = pg.database()
    lite = str(tmp_path / "dest.db")
    for dest in (db, "sqlite:" + lite):
        args = [gw.BINARY, "store", "copy", "--from", "sqlite:" + src,
                "--to", dest]
        if dest.startswith("postgresql://"):
            args += ["--to-password-file", pg.password_file]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def writing():
            if dest.startswith("postgresql://"):
                return pg.sql(pg.url, "SELECT count(*) FROM"
                              " pg_stat_activity WHERE query LIKE"
                              " 'COPY%'") != [["0"]]
            wal = lite + "-wal"
            return os.path.exists(wal) and os.path.getsize(wal) > 8 << 20
        gw.wait_for(lambda: writing() or proc.poll() is not None,
                    timeout=60, what="the copy writing")
        assert proc.poll() is None, "the copy ended before the kill"
        time.sleep(rnd.uniform(0.1, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Nothing committed: no message, no outbox row.
        if dest.startswith("postgresql://"):
            gw.wait_for(lambda: pg.sql(pg.url, "SELECT count(*) FROM"
                                       " pg_stat_activity WHERE query"
                                       " LIKE 'COPY%'") == [["0"]],
                        timeout=20, what="the server ending the copy")
            assert pg.sql(db, "SELECT (SELECT count(*) FROM messages) +"
                          " (SELECT count(*) FROM outbox)") == [["0"]]
        else:
            con = sqlite3.connect(lite)
            assert con.execute("SELECT (SELECT count(*) FROM messages) +"
                               " (SELECT count(*) FROM outbox)"
                               ).fetchone() == (0,)
            con.close()
        # So the next copy needs no --force, and completes.
        s = copied(pg, "sqlite:" + src, dest)
        assert s["messages"][0] == 40000 and s["outbox"][0] == 40000


def test_copy_of_a_running_gateway_is_one_snapshot(pg, pki, tmp_path):
    """Copies taken while A accepts and delivers (the rehearsal): each
    is whole as of one moment (every outbox row with its message, one
    receiver each) and verified table by table."""
    rcv = FakeReceiver(pki).start()
    a = td.gateway_a(pki, tmp_path, {GP1: (rcv.port, td.B_URA)})
    try:
        td.start_a(a)
        box = {}
        poster = threading.Thread(target=lambda: box.update(
            r=td.post_all(a, [(n % 8, [GP1], False) for n in range(300)],
                          threads=4)))
        poster.start()
        path = "sqlite:" + a.sections["store"]["path"]
        seen = []
        while poster.is_alive() or len(seen) < 2:
            db = pg.database()
            s = copied(pg, path, db)
            assert s["messages"][0] == s["outbox"][0]
            assert s["messages"][2] is None or \
                int(s["messages"][2]) >= s["messages"][0]
            seen.append(s["messages"][0])
        poster.join()
        assert all(r[0] == 202 for r in box["r"].values())
        # Taken at different moments of the load, in order.
        assert seen == sorted(seen) and len(set(seen)) >= 2, seen
        # Into the file A runs on: refused (A holds STORE.lock), even
        # with --force.
        r = copy(pg, db, path, "--force")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "runs on" in r.stderr and "stop it first" in r.stderr
    finally:
        a.stop()
        rcv.stop()


def test_usage_and_missing_source(pg, tmp_path):
    """Usage errors exit 2; a source that is no store exits 1 and makes
    nothing at the destination."""
    nothing = str(tmp_path / "none.db")
    dest = str(tmp_path / "dest.db")
    for args in (["--from", "sqlite:" + nothing],
                 ["--from", "sqlite:" + dest, "--to", "sqlite:" + dest],
                 ["--from", "sqlite:", "--to", "sqlite:" + dest],
                 ["--from", "sqlite:" + nothing, "--to", "sqlite:" + dest,
                  "--to-password-file", pg.password_file]):
        r = subprocess.run([gw.BINARY, "store", "copy"] + args,
                           capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        assert "usage: pzpgw store copy" in r.stderr
    r = copy(pg, "sqlite:" + nothing, "sqlite:" + dest)
    assert r.returncode == 1 and "no store at " + nothing in r.stderr
    for p in (nothing, dest, dest + ".lock"):
        assert not os.path.exists(p), p
