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
