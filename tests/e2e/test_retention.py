"""Issue 5 retention: the daemon prunes delivered messages past [store]
retention days and never touches dead letters or recent deliveries."""

import os
import time

import gw
from test_queue_cli import Store, now_ms, run

DAY = 86400 * 1000


def test_daemon_prunes_old_deliveries_only(pki, tmp_path):
    path = str(tmp_path / "pzpgw.db")
    run("queue", "--store", path, "init")
    st = Store(path)
    old = now_ms() - 40 * DAY
    st.add("old-delivered", ["90000003"], state="delivered",
           accepted_at=old, delivered_at=old + 1000)
    st.add("new-delivered", ["90000003"], state="delivered",
           delivered_at=now_ms() - DAY)
    st.add("old-dead", ["90000003"], state="dead", accepted_at=old,
           last_error="HTTP 400")
    st.db.close()
    g = gw.Gateway(pki, str(tmp_path), store__path=path,
                   store__retention="30").start()
    try:
        gw.wait_for(lambda: "event=pruned messages=1" in g.log_text(),
                    what="retention run")
        ids = {r["id"] for r in Store(path).qjson("list")}
        assert "old-delivered" not in ids
        assert {"new-delivered", "old-dead"} <= ids
    finally:
        assert g.stop() == 0


def test_big_prune_leaves_listeners_answering(pki, tmp_path):
    """200,000 messages over 60 days (bench/lib.sh bench_big_store) and
    retention 30 days: the daemon's first prune removes ~87,000
    delivered messages. While it runs, /healthz (admin) and a push
    (organisation listener, accepted durably) each answer within 1 s;
    the prune then finishes with the count in its log line and the rows
    gone. Before the prune ran off the event loop (main 05bfa2d) both
    listeners were silent for the whole prune, several seconds here."""
    import subprocess
    from test_intake import GP1, HOSPITAL, message, post

    path = str(tmp_path / "big.db")
    subprocess.run(
        ["sh", "-c", '. "$1/bench/lib.sh"; bench_big_store 200000 "$2" "$3"',
         "sh", gw.SRCDIR, path, gw.BINARY], check=True, timeout=120)
    cut = now_ms() - 30 * DAY
    st = Store(path)
    want = st.db.execute(
        "SELECT count(*) FROM messages m WHERE direction = 'outbound' AND"
        " NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_seq = m.seq"
        " AND (o.state <> 'delivered' OR o.delivered_at >= ?))",
        (cut,)).fetchone()[0]
    st.db.close()
    assert want > 50000
    g = gw.Gateway(pki, str(tmp_path), store__path=path,
                   store__retention="30").start()
    try:
        worst = {"healthz": 0.0, "push": 0.0}
        probes = 0
        deadline = time.monotonic() + 120
        while "event=pruned messages=" not in g.log_text():
            assert time.monotonic() < deadline, "no prune in 120 s"
            t = time.monotonic()
            status, _ = g.admin("/healthz")
            worst["healthz"] = max(worst["healthz"], time.monotonic() - t)
            assert status == 200
            t = time.monotonic()
            status, _, out = post(g, message(HOSPITAL, [GP1]))
            worst["push"] = max(worst["push"], time.monotonic() - t)
            assert status == 202, out
            probes += 1
            time.sleep(0.05)
        line = [ln for ln in g.log_text().splitlines()
                if "event=pruned messages=" in ln][0]
        assert "messages=%d " % want in line, line
        print("probes=%d worst=%r %s" % (probes, worst, line))
        # the probes ran while it pruned (it starts 1 s after start)
        assert probes >= 3, (probes, line)
        assert worst["healthz"] < 1.0 and worst["push"] < 1.0, (worst, line)
        # a batch that found the store busy waits its turn quietly
        assert "event=store_error" not in g.log_text()
        st = Store(path)
        left = st.db.execute(
            "SELECT count(*) FROM messages m WHERE direction = 'outbound'"
            " AND accepted_at < ? AND NOT EXISTS (SELECT 1 FROM outbox o"
            " WHERE o.message_seq = m.seq AND o.state <> 'delivered')",
            (cut - DAY,)).fetchone()[0]
        st.db.close()
        assert left == 0
    finally:
        assert g.stop() == 0
