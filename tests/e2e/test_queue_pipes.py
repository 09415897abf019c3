"""Issue 13, output that pipes: `pzpgw queue show ID --content` writes the
document alone on stdout (metadata on stderr, or on stdout with --meta);
`queue init` and `queue purge` print their one line and no log lines."""

import json
import time

from test_queue_cli import R1, R2, SECRET, DAY, now_ms, run, store  # noqa: F401


def test_show_content_pipes_the_document_alone(store):  # noqa: F811
    store.add("m1", [R1], state="dead", last_status=400,
              last_error="refused")
    p = store.q("show", "m1", "--content")
    doc = json.loads(p.stdout)  # nothing else on stdout
    assert doc["note"] == SECRET
    stored = store.db.execute(
        "SELECT document FROM messages WHERE id = 'm1'").fetchone()[0]
    assert p.stdout.encode() == bytes(stored)
    assert "id:            m1" in p.stderr
    assert "receiver " + R1 in p.stderr and "last error:    refused" \
        in p.stderr
    assert "jws: h..s" in p.stderr
    assert SECRET not in p.stderr
    # --meta: both on stdout, the document last.
    m = store.q("show", "m1", "--content", "--meta")
    assert m.stderr == ""
    head, _, rest = m.stdout.partition("document:\n")
    assert "id:            m1" in head and "jws: h..s" in head
    assert json.loads(rest)["note"] == SECRET
    assert store.q("show", "m1", "--meta", ok=(2,)).stdout == ""


def test_init_and_purge_print_one_line_and_no_log(store, tmp_path):  # noqa
    old = now_ms() - 40 * DAY
    store.add("old", [R1], state="delivered", delivered_at=old,
              accepted_at=old)
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86400))
    p = store.q("purge", "--delivered-before", cutoff)
    assert p.stdout == "purged 1 message delivered before %s\n" % cutoff
    assert p.stderr == ""
    p = store.q("init")
    assert p.stdout.startswith("store ready: ") and \
        p.stdout.count("\n") == 1
    assert p.stderr == ""
    fresh = str(tmp_path / "new.db")
    p = run("queue", "--store", fresh, "init")
    assert p.stdout.count("\n") == 1 and p.stderr == ""


def test_bulk_replay_pages_through_many_rows(store):  # noqa: F811
    # One single-receiver message first, so that the 500-row pages end
    # inside a two-receiver message's rows.
    store.db.execute("BEGIN")
    store.add("solo", [R1], state="dead")
    for i in range(700):
        store.add("m%04d" % i, [R1, R2], state="dead", patient="p%d" % i)
    store.add("done", [R1], state="delivered", delivered_at=now_ms())
    store.db.execute("COMMIT")
    out = store.qjson("replay", "--state", "dead")
    assert out["changed"] == 1401
    assert len({(r["id"], r["receiver"]) for r in out["rows"]}) == 1401
    left = store.db.execute(
        "SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
    assert left == 0
    replays = store.db.execute(
        "SELECT min(replays), max(replays) FROM outbox"
        " WHERE state = 'due'").fetchone()
    assert replays == (1, 1)
    assert store.row("done", R1)["state"] == "delivered"
