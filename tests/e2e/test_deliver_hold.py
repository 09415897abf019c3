"""Issue 13 delivery: a held receiver's rows show real attempt times and
whole errors; a route refused by the receiving gateway (401, 403, 404,
405, 421, "no route to receiver" 422) holds the receiver instead of
dead-lettering the message, and the messages arrive once the route is
fixed; bulk replay of dead rows."""

import calendar
import json
import signal
import time

import pytest

import gw
from fake_receiver import FakeReceiver, closed_port, outcome
from test_delivery import (A_URA, B_URA, GP1, GP2, Poster, a_rows,
                           gateway_a, gateway_b, message, queue, settled,
                           start_a, b_messages)


def fake(pki, answer=None):
    return FakeReceiver(pki, answer=answer).start()


def rfc3339_s(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def test_show_of_probed_row_has_real_time_and_whole_error(pki, tmp_path):
    a = gateway_a(pki, tmp_path, {GP1: (closed_port(), B_URA)})
    try:
        start_a(a)
        t0 = time.time()
        status, hdrs, _ = Poster(a).post(message([GP1])[1])
        assert status == 202
        mid = hdrs["x-message-id"]
        # The second attempt and later ones are the held receiver's
        # probes, which claim the lane head before its own backoff ends.
        gw.wait_for(lambda: a_rows(a)[0]["attempts"] >= 3, timeout=20,
                    what="probes of the unreachable receiver")
        shown = queue(a, "show", mid, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        row = json.loads(shown.stdout)["rows"][0]
        last = rfc3339_s(row["last_attempt_at"])
        assert t0 - 2 <= last <= time.time() + 2, row
        text = queue(a, "show", mid)
        assert text.returncode == 0, text.stderr
        line = [ln for ln in text.stdout.splitlines()
                if "last attempt:" in ln][0]
        assert rfc3339_s(line.split()[-1]) == last, text.stdout
        # The last error in full, not cut to a table column.
        error = a_rows(a)[0]["last_error"]
        assert len(error) > 44, error
        assert "  last error:    " + error in text.stdout, text.stdout
    finally:
        a.stop()


def reload(g):
    """Write g's configuration and SIGHUP it; waits for the reload."""
    before = g.log_text().count("event=reloaded")
    g.write_config()
    g.send_signal(signal.SIGHUP)
    gw.wait_for(lambda: g.log_text().count("event=reloaded") > before,
                what="reload")


def post(a, receivers, patient):
    ident, body = message(receivers, patient, small=True)
    status, _, _ = Poster(a).post(body)
    assert status == 202
    return ident


def misconfigured(a, receiver):
    return ("event=receiver_misconfigured receiver=" + receiver
            in a.log_text())


def assert_held_not_dead(a, receiver, n):
    gw.wait_for(lambda: misconfigured(a, receiver), timeout=15,
                what="receiver_misconfigured")
    assert a.metric("pzpgw_receiver_held", receiver=receiver) == 1
    # Probed again, never dead-lettered.
    gw.wait_for(lambda: max(r["attempts"] for r in a_rows(a)) >= 2,
                timeout=15, what="a probe")
    rows = a_rows(a)
    assert len(rows) == n
    assert all(r["state"] in ("due", "inflight") for r in rows), rows


def test_403_from_b_holds_until_b_is_fixed(pki, tmp_path):
    b = gateway_b(pki, tmp_path)
    b.sections["peer " + A_URA]["allow"] = "pull"  # forgot push
    a = gateway_a(pki, tmp_path, {GP1: (b.port, B_URA)})
    try:
        b.start()
        start_a(a)
        idents = [post(a, [GP1], p) for p in (0, 1, 1)]
        assert_held_not_dead(a, GP1, 3)
        log = a.log_text()
        line = [ln for ln in log.splitlines()
                if "event=receiver_misconfigured" in ln][0]
        # The receiver's OperationOutcome says why, and no more.
        assert "status=403" in line and "forbidden" in line, line
        assert "not allowed to use this endpoint" in line, line
        head = [r for r in a_rows(a) if r["attempts"]][0]
        assert head["last_status"] == 403
        assert "not allowed to use this endpoint" in head["last_error"]
        assert not b_messages(b)
        # B's operator fixes B; nobody touches A.
        b.sections["peer " + A_URA]["allow"] = "push"
        reload(b)
        gw.wait_for(lambda: settled(a), timeout=20, what="delivery")
        assert all(r["state"] == "delivered" for r in a_rows(a))
        assert sorted(i for i, _ in b_messages(b)) == sorted(idents)
        assert a.metric("pzpgw_receiver_held", receiver=GP1) == 0
        assert "event=receiver_reachable receiver=" + GP1 in a.log_text()
    finally:
        a.stop()
        b.stop()


def test_404_wrong_endpoint_held_until_a_is_fixed_and_reloaded(pki,
                                                                tmp_path):
    b = gateway_b(pki, tmp_path)
    # Backoff long enough that only the reload can deliver in time.
    a = gateway_a(pki, tmp_path, {GP1: (b.port, B_URA)},
                  backoff_min="30s", backoff_max="1h")
    good = a.sections["peer " + GP1]["endpoint"]
    a.sections["peer " + GP1]["endpoint"] = good[:-len("/fhir")]
    try:
        b.start()
        start_a(a)
        idents = [post(a, [GP1], p) for p in (0, 1)]
        gw.wait_for(lambda: misconfigured(a, GP1), timeout=15,
                    what="receiver_misconfigured")
        assert "status=404" in a.log_text()
        assert a.metric("pzpgw_receiver_held", receiver=GP1) == 1
        assert all(r["state"] == "due" for r in a_rows(a)), a_rows(a)
        a.sections["peer " + GP1]["endpoint"] = good
        t0 = time.monotonic()
        reload(a)
        gw.wait_for(lambda: settled(a), timeout=20, what="delivery")
        assert time.monotonic() - t0 < 20
        assert all(r["state"] == "delivered" for r in a_rows(a))
        assert sorted(i for i, _ in b_messages(b)) == sorted(idents)
        assert a.metric("pzpgw_receiver_held", receiver=GP1) == 0
    finally:
        a.stop()
        b.stop()


def test_no_route_422_from_b_holds_until_b_serves_the_receiver(pki,
                                                               tmp_path):
    b = gateway_b(pki, tmp_path)
    del b.sections["peer " + GP2]  # B does not serve gp2 yet
    a = gateway_a(pki, tmp_path, {GP2: (b.port, B_URA)})
    try:
        b.start()
        start_a(a)
        ident = post(a, [GP2], 3)
        assert_held_not_dead(a, GP2, 1)
        assert "status=422" in a.log_text()
        assert "no route to receiver " + GP2 in a_rows(a)[0]["last_error"]
        b.sections["peer " + GP2] = {"name": "gp2", "allow": "pull"}
        reload(b)
        gw.wait_for(lambda: settled(a), timeout=20, what="delivery")
        assert a_rows(a)[0]["state"] == "delivered"
        assert [i for i, _ in b_messages(b)] == [ident]
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("status", [401, 405, 421])
def test_route_statuses_hold_then_deliver(pki, tmp_path, status):
    answers = [(status, {}, outcome("security", "wrong route"))] * 2
    rcv = fake(pki, lambda r: answers.pop(0) if answers
               else (200, {}, b"{}"))
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    try:
        start_a(a)
        post(a, [GP1], 0)
        gw.wait_for(lambda: settled(a), timeout=20, what="delivery")
        row = a_rows(a)[0]
        assert row["state"] == "delivered" and row["attempts"] == 3, row
        assert misconfigured(a, GP1)
        assert a.metric("pzpgw_deliveries_total", receiver=GP1,
                        outcome="dead") is None
    finally:
        a.stop()
        rcv.stop()


def test_content_422_and_400_stay_dead(pki, tmp_path):
    answers = [(422, {}, outcome("invalid", "gender is not a code")),
               (400, {}, outcome("structure", "not a Bundle"))]
    rcv = fake(pki, lambda r: answers.pop(0) if answers
               else (200, {}, b"{}"))
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    try:
        start_a(a)
        post(a, [GP1], 0)
        post(a, [GP1], 1)
        gw.wait_for(lambda: settled(a), timeout=20, what="dead letters")
        rows = a_rows(a)
        assert [r["state"] for r in rows] == ["dead", "dead"], rows
        assert all(r["attempts"] == 1 for r in rows)
        assert not misconfigured(a, GP1)
        assert a.metric("pzpgw_receiver_held", receiver=GP1) in (None, 0)
    finally:
        a.stop()
        rcv.stop()


def test_bulk_replay_by_state_receiver_and_since(pki, tmp_path):
    refuse = [True]
    rcv = fake(pki, lambda r: (400, {}, outcome("invalid", "not yet"))
               if refuse[0] else (200, {}, b"{}"))
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA),
                                  GP2: (rcv.port, B_URA)})
    try:
        start_a(a)
        for p in range(3):
            post(a, [GP1], p)
        post(a, [GP2], 0)
        gw.wait_for(lambda: settled(a), timeout=20, what="dead letters")
        assert [r["state"] for r in a_rows(a)] == ["dead"] * 4
        refuse[0] = False
        # Usage: a bulk replay names the state, dead or delivered.
        assert queue(a, "replay").returncode == 2
        assert queue(a, "replay", "--state", "due").returncode == 2
        assert queue(a, "replay", "--state", "dead", "--since",
                     "yesterday").returncode == 2
        # Nothing died after tomorrow.
        r = queue(a, "replay", "--state", "dead", "--since", "2999-01-01")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "replay: 0 rows"
        # One receiver's dead rows, and only those.
        r = queue(a, "--format", "json", "replay", "--state", "dead",
                  "--receiver", GP1, "--since", "2020-01-01T00:00:00Z")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["changed"] == 3
        assert {x["receiver"] for x in out["rows"]} == {GP1}
        gw.wait_for(lambda: all(r["state"] == "delivered"
                                for r in a_rows(a)
                                if r["receiver_ura"] == GP1),
                    timeout=20, what="replayed delivery")
        assert [r["state"] for r in a_rows(a)
                if r["receiver_ura"] == GP2] == ["dead"]
        # The rest, in text form: one line per row, then the count.
        r = queue(a, "replay", "--state", "dead")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == 2 and lines[0].endswith(":" + GP2), lines
        assert lines[-1] == "replay: 1 row"
        gw.wait_for(lambda: settled(a) and all(
            r["state"] == "delivered" for r in a_rows(a)),
            timeout=20, what="all delivered")
        assert rcv.count() == 8
    finally:
        a.stop()
        rcv.stop()
