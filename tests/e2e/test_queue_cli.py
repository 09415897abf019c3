"""End-to-end tests of `pzpgw queue` against a real store file.

The daemon's intake is what normally fills the store. These tests create
the store with `pzpgw queue init` (the binary's own schema) and then insert
rows with Python's sqlite3 module following that schema (tables messages
and outbox, see gateway/store_sqlite.c), then drive the real binary and
check its output and the resulting rows.
"""
import json
import os
import sqlite3
import subprocess
import time

import pytest

PZPGW = os.environ.get("PZPGW", os.path.join(
    os.environ.get("PZPGW_SRCDIR", "."), "build/release/pzpgw"))

R1 = "00000001"
R2 = "00000002"
SENDER = "12345678"
SECRET = "CLINICAL-CONTENT-MARKER"
DAY = 86400 * 1000


def run(*args, ok=(0,)):
    """Run pzpgw with args; assert the exit status is one of ok."""
    p = subprocess.run([PZPGW, *args], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode in ok, (args, p.returncode, p.stdout, p.stderr)
    return p


def now_ms():
    return int(time.time() * 1000)


class Store:
    """A store file created by the binary plus helpers to add rows."""

    def __init__(self, path):
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10)

    def add(self, mid, receivers, patient="p1", state="due", attempts=0,
            accepted_at=None, next_attempt_at=None, last_status=None,
            last_error=None, outcome=None, delivered_at=None,
            direction="outbound"):
        at = accepted_at if accepted_at is not None else now_ms() - 1000
        doc = json.dumps({"resourceType": "Bundle", "note": SECRET})
        cur = self.db.execute(
            "INSERT INTO messages (id, direction, sender_ura, bundle_system,"
            " bundle_value, patient_key, fhir_version, document, jws,"
            " sha256, accepted_at, answer_status, answer_body) VALUES"
            " (?, ?, ?, 'urn:ietf:rfc:3986', ?, ?, '4.0.1', ?, 'h..s',"
            " 'abcd', ?, 202, '{}')",
            (mid, direction, SENDER, "urn:uuid:" + mid, patient,
             doc.encode(), at))
        seq = cur.lastrowid
        for r in receivers:
            self.db.execute(
                "INSERT INTO outbox (message_seq, receiver_ura, patient_key,"
                " state, attempts, next_attempt_at, last_status, last_error,"
                " outcome, delivered_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (seq, r, patient, state, attempts,
                 next_attempt_at if next_attempt_at is not None else at,
                 last_status, last_error, outcome, delivered_at))
        return mid

    def row(self, mid, receiver):
        cur = self.db.execute(
            "SELECT o.state, o.attempts, o.next_attempt_at, o.replays,"
            " o.delivered_at FROM outbox o JOIN messages m ON"
            " m.seq = o.message_seq WHERE m.id = ? AND o.receiver_ura = ?",
            (mid, receiver))
        r = cur.fetchone()
        if r is None:
            return None
        return dict(zip(("state", "attempts", "next_attempt_at", "replays",
                         "delivered_at"), r))

    def q(self, *args, ok=(0,)):
        return run("queue", "--store", self.path, *args, ok=ok)

    def qjson(self, *args, ok=(0,)):
        return json.loads(self.q("--format", "json", *args, ok=ok).stdout)


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "pzpgw.db")
    p = run("queue", "--store", path, "init")
    assert "schema version" in p.stdout
    s = Store(path)
    yield s
    s.db.close()


def test_init_is_idempotent_and_missing_store_fails(store, tmp_path):
    info = json.loads(run("queue", "--store", store.path, "--format", "json",
                          "init").stdout)
    assert info["backend"] == "sqlite"
    assert info["schema_version"] >= 2
    mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    p = run("queue", "--store", str(tmp_path / "absent.db"), "list", ok=(2,))
    assert "no store at" in p.stderr
    assert not (tmp_path / "absent.db").exists()


def test_list_filters_and_formats(store):
    store.add("m-due", [R1], patient="p1")
    store.add("m-dead", [R2], patient="p2", state="dead", attempts=4,
              last_status=400, last_error="rejected by receiver")
    store.add("m-two", [R1, R2], patient="p3")
    rows = store.qjson("list")
    got = [(r["id"], r["receiver"], r["state"]) for r in rows]
    assert got == [("m-due", R1, "due"), ("m-dead", R2, "dead"),
                   ("m-two", R1, "due"), ("m-two", R2, "due")]
    assert [r["id"] for r in store.qjson("list", "--state", "dead")] == \
        ["m-dead"]
    assert [(r["id"], r["receiver"]) for r in
            store.qjson("list", "--receiver", R2)] == \
        [("m-dead", R2), ("m-two", R2)]
    assert len(store.qjson("list", "--limit", "2")) == 2
    first = store.qjson("list", "--limit", "1")[0]
    after = store.qjson("list", "--after", str(first["seq"]))
    assert [r["id"] for r in after] == ["m-dead", "m-two", "m-two"]
    dead = store.qjson("list", "--state", "dead")[0]
    assert dead["attempts"] == 4 and dead["last_status"] == 400
    assert dead["last_error"] == "rejected by receiver"

    table = store.q("list").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "RECEIVER", "STATE", "ATTEMPTS"]
    assert len(table) == 5
    # Columns are aligned: the state column starts at the same offset.
    offs = {line.index(" due ") for line in table[1:] if " due " in line}
    assert len(offs) == 1
    assert SECRET not in store.q("list").stdout


def test_show_hides_content_unless_asked(store):
    oo = json.dumps({"resourceType": "OperationOutcome"})
    store.add("m1", [R1, R2], state="dead", last_status=422,
              last_error="invalid", outcome=oo)
    p = store.q("show", "m1")
    assert "receiver " + R1 in p.stdout and "receiver " + R2 in p.stdout
    assert "last status:   422" in p.stdout
    assert "OperationOutcome" in p.stdout
    assert SECRET not in p.stdout
    shown = store.qjson("show", "m1")
    assert shown["id"] == "m1" and shown["sender"] == SENDER
    assert "document" not in shown and SECRET not in json.dumps(shown)
    assert [r["receiver"] for r in shown["rows"]] == [R1, R2]
    assert shown["rows"][0]["outcome"] == oo
    one = store.qjson("show", "m1:" + R2)
    assert [r["receiver"] for r in one["rows"]] == [R2]
    full = store.qjson("show", "m1", "--content")
    assert json.loads(full["document"])["note"] == SECRET
    assert SECRET in store.q("show", "--content", "m1").stdout
    p = store.q("show", "nope", ok=(1,))
    assert "not found" in p.stderr


def test_retry_hold_release(store):
    later = now_ms() + 3600 * 1000
    store.add("m1", [R1], next_attempt_at=later, attempts=2,
              last_error="timeout")
    before = now_ms()
    store.q("retry", "m1")
    r = store.row("m1", R1)
    assert r["state"] == "due"
    assert before - 1000 <= r["next_attempt_at"] <= now_ms()
    store.q("hold", "m1")
    assert store.row("m1", R1)["state"] == "held"
    # A held row cannot be held again or retried.
    store.q("hold", "m1", ok=(1,))
    p = store.q("retry", "m1", ok=(1,))
    assert "not allowed" in p.stderr
    assert [r["id"] for r in store.qjson("list", "--state", "held")] == \
        ["m1"]
    store.q("release", "m1")
    assert store.row("m1", R1)["state"] == "due"
    store.q("release", "m1", ok=(1,))
    out = store.qjson("retry", "m1")
    assert out == {"action": "retry", "id": "m1", "receiver": None,
                   "changed": 1}


def test_replay_rules_and_receiver_choice(store):
    t = now_ms() - 5000
    store.add("m1", [R1, R2], state="delivered", attempts=1,
              last_status=200, delivered_at=t)
    store.add("m2", [R1], state="dead", attempts=9, last_status=400,
              last_error="rejected")
    store.add("m3", [R1], state="due")
    # Only R2 of m1 is replayed; R1 stays delivered.
    store.q("replay", "m1", "--receiver", R2)
    assert store.row("m1", R2)["state"] == "due"
    assert store.row("m1", R2)["replays"] == 1
    assert store.row("m1", R2)["delivered_at"] is None
    assert store.row("m1", R1)["state"] == "delivered"
    store.q("replay", "m1:" + R1)
    assert store.row("m1", R1)["state"] == "due"
    # A dead letter is replayed with its attempts reset.
    store.q("replay", "m2")
    r = store.row("m2", R1)
    assert r["state"] == "due" and r["attempts"] == 0 and r["replays"] == 1
    # Replay of a due row is not allowed; unknown ids are not found.
    p = store.q("replay", "m3", ok=(1,))
    assert "not allowed" in p.stderr
    assert store.row("m3", R1)["state"] == "due"
    store.q("replay", "zzz", ok=(1,))
    store.q("replay", "m3:" + "99999999", ok=(1,))
    store.q("replay", "m1:" + R1, "--receiver", R2, ok=(2,))


def test_purge_delivered_before(store):
    old = now_ms() - 40 * DAY
    store.add("old", [R1], state="delivered", delivered_at=old,
              accepted_at=old)
    store.add("old-two", [R1, R2], state="delivered", delivered_at=old,
              accepted_at=old)
    store.add("recent", [R1], state="delivered", delivered_at=now_ms())
    store.add("dead", [R1], state="dead", accepted_at=old)
    store.add("due", [R1], state="due", accepted_at=old)
    store.add("inbound", [], direction="inbound", accepted_at=old)
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86400))
    p = store.q("purge", "--delivered-before", cutoff)
    assert "purged 2 messages" in p.stdout
    ids = {r[0] for r in store.db.execute("SELECT id FROM messages")}
    assert ids == {"recent", "dead", "due", "inbound"}
    n = store.db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert n == 3
    # RFC 3339 with an offset; the recent one goes, dead letters never.
    ts = time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                       time.gmtime(time.time() + 60))
    out = store.qjson("purge", "--delivered-before", ts)
    assert out == {"action": "purge", "purged": 1}
    ids = {r[0] for r in store.db.execute("SELECT id FROM messages")}
    assert ids == {"dead", "due", "inbound"}


def test_stats(store):
    store.add("a", [R1])
    store.add("b", [R1], patient="p2")
    store.add("c", [R2], state="dead")
    stats = store.qjson("stats")
    got = {(s["state"], s["receiver"]): s["count"] for s in stats}
    assert got == {("due", R1): 2, ("dead", R2): 1}
    assert all(s["oldest_age_seconds"] >= 0 for s in stats)


def test_usage_errors(store):
    for args in (["list", "extra"], ["show"], ["frobnicate"],
                 ["list", "--state", "lost"], ["list", "--limit", "0"],
                 ["list", "--receiver", "123"], ["purge"],
                 ["purge", "--delivered-before", "2024-13-01"],
                 ["purge", "--delivered-before", "yesterday"],
                 ["list", "--content"], ["--format", "xml", "list"]):
        p = store.q(*args, ok=(2,))
        assert "usage:" in p.stderr, args
    run("queue", ok=(2,))
    run("queue", "-c", "x.conf", "--store", store.path, "list", ok=(2,))


def test_newer_schema_refused(store):
    store.db.execute("PRAGMA user_version = 99")
    p = store.q("list", ok=(2,))
    assert "newer" in p.stderr


def test_config_names_the_store(store, tmp_path):
    for name in ("server.crt", "server.key", "ca.pem"):
        f = tmp_path / name
        f.write_text("placeholder\n")
        f.chmod(0o600)
    store.add("m1", [R1])
    conf = tmp_path / "pzpgw.conf"
    conf.write_text(
        "[organisation]\nura = 11111111\nname = Test\n"
        "[listen]\ncertificate = server.crt\nkey = server.key\n"
        "trust = ca.pem\nenvironment = test\n"
        "[store]\npath = %s\n" % os.path.basename(store.path))
    chk = run("check-config", "-c", str(conf), ok=(0, 1))
    if chk.returncode != 0:
        pytest.skip("configuration needs more than placeholders: "
                    + chk.stderr.strip())
    rows = json.loads(run("queue", "-c", str(conf), "--format", "json",
                          "list").stdout)
    assert [r["id"] for r in rows] == ["m1"]


def test_works_beside_a_writer(store):
    """The CLI works while another process holds the store open and
    writes (WAL): it waits for the write lock instead of failing."""
    store.add("m1", [R1])
    other = sqlite3.connect(store.path, isolation_level=None, timeout=10)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE outbox SET attempts = 5")
    p = subprocess.Popen([PZPGW, "queue", "--store", store.path, "hold",
                          "m1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    # Readers are not blocked by the open write transaction.
    assert [r["id"] for r in store.qjson("list")] == ["m1"]
    time.sleep(0.3)
    assert p.poll() is None
    other.execute("COMMIT")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    r = store.row("m1", R1)
    assert r["state"] == "held" and r["attempts"] == 5
    other.close()
