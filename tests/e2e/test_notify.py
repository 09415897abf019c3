"""Issue 11, notified pull: hospital -> gateway A -> gateway B, and B posts
one FHIR Task per message to the [peer] notify URL of the GP practice the
message is for (a fake notification endpoint with the dev PKI's gp1
certificate, URA 90000003), over mutual TLS, retried like deliveries."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

import gw
from fake_receiver import FakeReceiver, closed_port
from test_delivery import (B_URA, GP1, GP2, HOSPITAL, Poster, bsn,
                           gateway_a, gateway_b, kill9, message, post_all,
                           query, restart, start_a)

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
NOTIFY_SYSTEM = "http://pzpgw.nl/fhir/CodeSystem/notification"
TASK_KEYS = {"resourceType", "identifier", "status", "intent", "code",
             "for", "authoredOn", "requester", "owner", "input"}
SEARCH_TYPES = {"Patient", "Procedure", "Consent", "Goal", "Observation",
                "DeviceUseStatement", "Communication",
                "CommunicationRequest", "QuestionnaireResponse"}


def b_notices(b):
    """B's notice rows: messages under the reserved identifier system."""
    return query(b.sections["store"]["path"],
                 "SELECT m.id, m.document, o.receiver_ura, o.state,"
                 " o.attempts, o.last_error FROM outbox o JOIN messages m"
                 " ON m.seq = o.message_seq WHERE m.bundle_system ="
                 " 'http://pzpgw.nl/fhir/NamingSystem/notice'"
                 " ORDER BY o.message_seq")


def pair_with_notify(pki, tmp_path, notify_port, **b_delivery):
    """B serving gp1 (notify at notify_port) and gp2 (no notify); A
    routing both to B."""
    b = gateway_b(pki, tmp_path)
    b.sections["delivery"] = {"backoff_min": "100ms", "backoff_max": "1s",
                              "timeout": "5s"}
    b.sections["delivery"].update(b_delivery)
    b.sections["peer " + GP1]["notify"] = \
        "https://localhost:%d/pzp/notify" % notify_port
    a = gateway_a(pki, tmp_path, {GP1: (b.port, B_URA),
                                  GP2: (b.port, B_URA)})
    return a, b


def post(a, receivers, patient):
    """Post a message for patient; returns A's message id."""
    _, body = message(receivers, patient, small=True)
    p = Poster(a)
    try:
        status, hdrs, data = p.post(body)
    finally:
        p.close()
    assert status == 202, data
    return hdrs["x-message-id"]


def check_task(task, patient, owner):
    """A Task that says exactly: new data for this patient, from the
    hospital, for owner, with these searches; nothing clinical."""
    assert set(task) == TASK_KEYS, sorted(task)
    assert task["resourceType"] == "Task"
    assert task["status"] == "requested" and task["intent"] == "order"
    assert task["code"]["coding"][0]["system"] == NOTIFY_SYSTEM
    assert task["code"]["coding"][0]["code"] == "pzp-data-available"
    assert task["for"] == {"type": "Patient", "identifier": {
        "system": BSN_SYSTEM, "value": bsn(patient)}}
    assert task["requester"] == {"type": "Organization", "identifier": {
        "system": URA_SYSTEM, "value": HOSPITAL}}
    assert task["owner"] == {"type": "Organization", "identifier": {
        "system": URA_SYSTEM, "value": owner}}
    assert task["identifier"][0]["value"].startswith("urn:uuid:")
    types = set()
    for inp in task["input"]:
        assert set(inp) == {"type", "valueUrl"}, inp
        assert inp["type"]["coding"][0] == {
            "system": NOTIFY_SYSTEM, "code": "search",
            "display": "Search to run"}
        url = inp["valueUrl"]
        rtype, _, q = url.partition("?")
        types.add(rtype)
        want = "identifier" if rtype == "Patient" else "patient.identifier"
        assert q.split("&")[0] == "%s=%s|%s" % (want, BSN_SYSTEM,
                                                bsn(patient)), url
    assert types == SEARCH_TYPES
    # Nothing of the care plan itself: no resource, name or id of it.
    text = json.dumps(task)
    for needle in ("Hendrik", "Hartman", "F1-ACP", "\"resource\"",
                   "contained", "birthDate"):
        assert needle not in text, needle


def validate(pki, tmp_path, doc):
    path = tmp_path / "task.json"
    path.write_bytes(doc)
    return subprocess.run([gw.BINARY, "validate", "--schemas",
                           os.path.join(gw.SRCDIR, "schemas"), str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def fake(pki):
    f = FakeReceiver(pki, cert="gp1").start()
    yield f
    f.stop()


def test_one_task_per_message(pki, tmp_path, fake):
    a, b = pair_with_notify(pki, tmp_path, fake.port)
    try:
        b.start()
        start_a(a)
        sent = [post(a, [GP1], 1), post(a, [GP1], 2), post(a, [GP1], 1)]
        # A message for gp2, which has no notify URL: no Task.
        post(a, [GP2], 3)
        gw.wait_for(lambda: fake.count() >= 3, timeout=30,
                    what="three Tasks")
        gw.wait_for(lambda: len(query(
            b.sections["store"]["path"],
            "SELECT 1 FROM messages WHERE direction = 'inbound'")) == 4,
            timeout=30, what="four messages at B")
        # A delivers the first message again (at least once): B answers
        # it as a duplicate and makes no second Task.
        r = subprocess.run([gw.BINARY, "queue", "--store",
                            a.sections["store"]["path"], "replay",
                            sent[0]], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        gw.wait_for(lambda: "event=duplicate" in b.log_text(), timeout=30,
                    what="the replayed message at B")
        gw.wait_for(lambda: all(r["state"] == "delivered"
                                for r in b_notices(b)), timeout=30,
                    what="notice rows delivered")
        time.sleep(0.5)
        assert fake.count() == 3
        rows = b_notices(b)
        assert len(rows) == 3 and {r["receiver_ura"] for r in rows} == {GP1}
        # A delivers with several workers: the Tasks may arrive in any
        # order; one per message, two for patient 1 and one for 2.
        by_bsn = {bsn(p): p for p in (1, 2)}
        patients = sorted(by_bsn[r.json()["for"]["identifier"]["value"]]
                          for r in fake.received)
        assert patients == [1, 1, 2], patients
        for rec in fake.received:
            patient = by_bsn[rec.json()["for"]["identifier"]["value"]]
            assert rec.path == "/pzp/notify"
            assert rec.headers["Content-Type"] == "application/fhir+json"
            task = rec.json()
            check_task(task, patient, GP1)
            # The request id is the notice's message id, the Task's too.
            assert task["identifier"][0]["value"] == \
                "urn:uuid:" + rec.headers["X-Request-Id"]
            # B posted with its own certificate (URA 90000009).
            assert rec.peer_cert is not None
            san = rec.peer_cert.get("subjectAltName", ())
            assert ("DNS", "localhost") in san
            r = validate(pki, tmp_path, rec.body)
            assert r.returncode == 0, r.stdout + r.stderr
        # The operator sees them in the queue as notices.
        out = subprocess.run([gw.BINARY, "queue", "--store",
                              b.sections["store"]["path"], "--format",
                              "json", "list"], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        listed = json.loads(out.stdout)
        listed = listed if isinstance(listed, list) else listed["rows"]
        assert [r["direction"] for r in listed] == ["notice"] * 3
        assert "kind=notice" in b.log_text()
    finally:
        a.stop()
        b.stop()


def test_endpoint_down_then_up(pki, tmp_path):
    port = closed_port()
    a, b = pair_with_notify(pki, tmp_path, port)
    fake = None
    try:
        b.start()
        start_a(a)
        post(a, [GP1], 7)
        # B tries, fails (nobody listens), and keeps the row due.
        gw.wait_for(lambda: any(r["attempts"] >= 2 and r["state"] == "due"
                                for r in b_notices(b)), timeout=30,
                    what="failed notification attempts")
        row = b_notices(b)[0]
        assert row["last_error"], row
        fake = FakeReceiver(pki, cert="gp1", port=port).start()
        gw.wait_for(lambda: fake.count() >= 1, timeout=30,
                    what="the Task after the endpoint came up")
        gw.wait_for(lambda: b_notices(b)[0]["state"] == "delivered",
                    timeout=10, what="notice delivered")
        time.sleep(0.5)
        assert fake.count() == 1
        check_task(fake.received[0].json(), 7, GP1)
    finally:
        if fake is not None:
            fake.stop()
        a.stop()
        b.stop()


def test_wrong_server_ura_gets_nothing(pki, tmp_path):
    # gp2's certificate at gp1's notify URL: B must not post the Task.
    fake = FakeReceiver(pki, cert="gp2").start()
    a, b = pair_with_notify(pki, tmp_path, fake.port)
    try:
        b.start()
        start_a(a)
        post(a, [GP1], 8)
        gw.wait_for(lambda: any(r["attempts"] >= 1 and r["last_error"]
                                for r in b_notices(b)), timeout=30,
                    what="refused notification")
        row = b_notices(b)[0]
        assert "server URA 90000004, expected 90000003" in \
            row["last_error"], row
        assert row["state"] == "due"
        assert fake.count() == 0
    finally:
        fake.stop()
        a.stop()
        b.stop()


def test_reserved_identifier_system_refused(pki, tmp_path):
    # No organisation's message may pose as one of the gateway's notices.
    a, b = pair_with_notify(pki, tmp_path, closed_port())
    try:
        b.start()
        start_a(a)
        _, body = message([GP1], 9, small=True)
        doc = json.loads(body)
        doc["identifier"]["system"] = \
            "http://pzpgw.nl/fhir/NamingSystem/notice"
        status, _, data = a.request("POST", "/fhir/$process-message",
                                    json.dumps(doc).encode(),
                                    headers={"Content-Type":
                                             "application/fhir+json"})
        assert status == 422, data
        issue = gw.outcome_issue(data)
        assert issue["expression"] == ["Bundle.identifier.system"]
        assert "reserved" in issue["diagnostics"]
    finally:
        a.stop()
        b.stop()


def test_notify_added_by_sighup(pki, tmp_path, fake):
    # Without notify no Task; SIGHUP with notify: the next message gets
    # one (intake and deliverer both take the new configuration), and
    # `queue show --content` prints it.
    a, b = pair_with_notify(pki, tmp_path, fake.port)
    url = b.sections["peer " + GP1].pop("notify")
    try:
        b.start()
        start_a(a)
        post(a, [GP1], 4)
        gw.wait_for(lambda: len(query(
            b.sections["store"]["path"],
            "SELECT 1 FROM messages WHERE direction = 'inbound'")) == 1,
            timeout=30, what="the first message at B")
        assert b_notices(b) == []
        b.sections["peer " + GP1]["notify"] = url
        b.write_config()
        b.send_signal(signal.SIGHUP)
        gw.wait_for(lambda: "event=reloaded" in b.log_text(), timeout=10,
                    what="reload")
        post(a, [GP1], 5)
        gw.wait_for(lambda: fake.count() >= 1, timeout=30, what="a Task")
        time.sleep(0.5)
        assert fake.count() == 1
        check_task(fake.received[0].json(), 5, GP1)
        notice = b_notices(b)[0]
        out = subprocess.run([gw.BINARY, "queue", "--store",
                              b.sections["store"]["path"], "--format",
                              "json", "show", "--content", notice["id"]],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        shown = json.loads(out.stdout)
        assert shown["direction"] == "notice"
        assert json.loads(shown["document"]) == fake.received[0].json()
    finally:
        a.stop()
        b.stop()


def test_kill9_task_iff_acknowledged(pki, tmp_path, fake):
    # The hospital posts straight to B (the GP is served there) while B
    # is killed with -9 and restarted: every message B stored has exactly
    # one notice, every acknowledged message was stored, and every notice
    # reaches the endpoint (at least once, under the same identifier).
    _, b = pair_with_notify(pki, tmp_path, fake.port)
    path = b.sections["store"]["path"]
    msgs = [(n % 20, [GP1], False) for n in range(300)]
    out = {}
    try:
        b.start()
        t = threading.Thread(target=lambda: out.update(post_all(b, msgs)))
        t.start()
        gw.wait_for(lambda: len(query(
            path, "SELECT 1 FROM messages WHERE direction = 'inbound'"))
            >= 60, timeout=60, what="60 messages at B")
        kill9(b)
        at_kill = len(query(path, "SELECT 1 FROM messages"
                                  " WHERE direction = 'inbound'"))
        assert at_kill < 300
        # What was committed when B died has its notices already.
        assert len(b_notices(b)) == at_kill
        restart(b)
        t.join()
        assert len(out) == 300
        assert all(r[0] == 202 for r in out.values()), \
            {r[0] for r in out.values()}
        inbound = query(path, "SELECT bundle_value FROM messages"
                              " WHERE direction = 'inbound'")
        assert {r["bundle_value"] for r in inbound} == set(out)
        notices = b_notices(b)
        assert len(notices) == len(inbound) == 300
        gw.wait_for(lambda: all(r["state"] == "delivered"
                                for r in b_notices(b)), timeout=60,
                    what="every notice delivered")
        got = {r.json()["identifier"][0]["value"] for r in fake.received}
        assert got == {"urn:uuid:" + r["id"] for r in notices}
    finally:
        b.stop()


def test_no_bsn_no_task(pki, tmp_path, fake):
    # A Patient without a BSN: the message is stored, no Task names the
    # patient (event=notify_skipped reason=no_bsn, no BSN logged).
    a, b = pair_with_notify(pki, tmp_path, fake.port)
    try:
        b.start()
        start_a(a)
        _, body = message([GP1], 6, small=True)
        doc = json.loads(body)
        for e in doc["entry"]:
            if e["resource"]["resourceType"] == "Patient":
                e["resource"]["identifier"][0]["system"] = \
                    "urn:oid:2.16.840.1.113883.2.4.6.99"
        p = Poster(a)
        try:
            status, _, data = p.post(json.dumps(doc).encode())
        finally:
            p.close()
        if status == 422:
            pytest.skip("the PZP Patient profile requires a BSN: " +
                        data.decode()[:200])
        assert status == 202, data
        gw.wait_for(lambda: "event=notify_skipped" in b.log_text(),
                    timeout=30, what="the skipped notice")
        assert "reason=no_bsn" in b.log_text()
        assert b_notices(b) == [] and fake.count() == 0
    finally:
        a.stop()
        b.stop()


def test_notice_dead_when_receiver_gets_an_endpoint(pki, tmp_path):
    # gp1 moves to a gateway of its own (endpoint, no notify): its pending
    # Task tells nobody anything; it goes dead instead of holding up the
    # gp1 lane for that patient (replay sends it once notify is back).
    a, b = pair_with_notify(pki, tmp_path, closed_port())
    try:
        b.start()
        start_a(a)
        post(a, [GP1], 11)
        gw.wait_for(lambda: any(r["attempts"] >= 1 and r["state"] == "due"
                                for r in b_notices(b)), timeout=30,
                    what="a failed notification attempt")
        peer = b.sections["peer " + GP1]
        del peer["notify"]
        peer["endpoint"] = "https://localhost:%d/fhir" % closed_port()
        b.write_config()
        b.send_signal(signal.SIGHUP)
        gw.wait_for(lambda: b_notices(b)[0]["state"] == "dead", timeout=30,
                    what="the notice dead")
        row = b_notices(b)[0]
        assert "no [peer] notify URL" in row["last_error"], row
        assert "event=delivery_no_route" in b.log_text()
    finally:
        a.stop()
        b.stop()
