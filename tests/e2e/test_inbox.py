"""Issue 11, the stored form: hospital -> gateway A -> gateway B with real
daemons; B indexes what it accepts for the organisations it serves in the
same transaction (searchable exactly when acknowledged, also across
kill -9 of B), its operator lists and shows it with `pzpgw inbox`, and
[store] inbound_retention prunes messages with their index."""

import copy
import json
import os
import random
import sqlite3
import subprocess
import threading
import time
import uuid

import gw
from test_delivery import (A_URA, B_URA, EVENT_SYSTEM, GP1, GP2, HOSPITAL,
                           URA_SYSTEM, _SMALL, _TEMPLATE, Poster, bsn,
                           gateway_a, gateway_b, kill9, pair, query,
                           restart, settled, start_a)

assert pair  # the fixture, imported for pytest

DAY = 86400 * 1000


def message(receivers, patient=0, small=False, tag=None, change=None):
    """A message from the hospital with F1's resources for patient
    number `patient`. tag: a suffix made part of every business
    identifier, so that the message's resources are its own; change:
    a function applied to the entries. Returns (identifier, bytes)."""
    entries = copy.deepcopy(_SMALL if small else _TEMPLATE)
    for e in entries:
        r = e["resource"]
        for ident in r.get("identifier", []):
            if r["resourceType"] == "Patient":
                ident["value"] = bsn(patient)
            elif tag is not None and "value" in ident:
                ident["value"] += "-" + tag
    if change is not None:
        change(entries)
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
    ident = "urn:uuid:" + str(uuid.uuid4())
    doc = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": ident},
        "type": "message",
        "timestamp": "2026-11-23T10:00:00Z",
        "entry": [{"fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                   "resource": header}] + entries,
    }
    return ident, json.dumps(doc).encode()


def store_path(g):
    return g.sections["store"]["path"]


def inbox(g, *args):
    r = subprocess.run([gw.BINARY, "inbox", "--store", store_path(g)] +
                       list(args), capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def inbox_json(g, *args):
    rc, out, err = inbox(g, "--format", "json", "list", *args)
    assert rc == 0, err
    return json.loads(out)


def index_state(path):
    """Per inbound message of B: (identifier, receivers, resources the
    inbox row promises, index rows written with it)."""
    return query(path,
                 "SELECT m.bundle_value AS ident,"
                 " (SELECT count(*) FROM inbox i WHERE i.message_seq = m.seq)"
                 " AS receivers,"
                 " (SELECT sum(resources) FROM inbox i"
                 "  WHERE i.message_seq = m.seq) AS promised,"
                 " (SELECT count(*) FROM res_versions r"
                 "  WHERE r.message_seq = m.seq) AS versions"
                 " FROM messages m WHERE m.direction = 'inbound'")


def test_a_to_b_inbox_lists_and_shows(pair, tmp_path):
    a, b = pair
    b.start()
    start_a(a)
    p = Poster(a)
    try:
        i1, body1 = message([GP1], patient=1)
        i2, body2 = message([GP2], patient=2, small=True)
        for body in (body1, body2):
            status, _, out = p.post(body)
            assert status == 202, out
    finally:
        p.close()
    gw.wait_for(lambda: settled(a), timeout=30, what="delivery to B")
    # Two receivers are two delivery lanes: either may arrive first.
    listed = sorted(inbox_json(b), key=lambda m: m["receiver"])
    assert [m["receiver"] for m in listed] == [GP1, GP2]
    first = listed[0]
    # From the hospital, relayed by gateway A.
    assert first["sender"] == HOSPITAL
    assert first["via"] == A_URA
    assert first["patient"] == bsn(1)
    assert first["fhir_version"] == "4.0.1"
    # Every entry but the MessageHeader is indexed.
    assert first["resources"] == len(_TEMPLATE)
    assert listed[1]["resources"] == len(_SMALL)
    # Filters.
    assert [m["id"] for m in inbox_json(b, "--receiver", GP2)] == \
        [listed[1]["id"]]
    assert [m["id"] for m in inbox_json(b, "--patient", bsn(1))] == \
        [first["id"]]
    assert inbox_json(b, "--patient", bsn(3)) == []
    assert len(inbox_json(b, "--since", "2000-01-01")) == 2
    assert inbox_json(b, "--since", "2999-01-01T00:00:00Z") == []
    # The table names the same.
    rc, out, _ = inbox(b, "list")
    assert rc == 0 and first["id"] in out and bsn(1) in out
    # show: the document as B stored it, plain JSON, A's message.
    rc, out, err = inbox(b, "show", first["id"])
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["identifier"]["value"] == i1
    assert doc["resourceType"] == "Bundle"
    rc, _, err = inbox(b, "show", "no-such-message")
    assert rc == 1 and "no received message" in err
    # A's own (outbound) copy is no received message of A.
    a_id = query(store_path(a), "SELECT id FROM messages")[0]["id"]
    rc, _, _ = inbox(a, "show", a_id)
    assert rc == 1
    rc, _, err = inbox(b, "list", "--patient", "12ab")
    assert rc == 2 and "bad BSN" in err
    # The index: references rewritten to logical ids of this receiver;
    # the ids reveal nothing of the BSN and differ per receiver.
    rows = query(store_path(b),
                 "SELECT receiver_ura, bsn, type, id, vid, json"
                 " FROM res_versions ORDER BY seq")
    gp1 = [r for r in rows if r["receiver_ura"] == GP1]
    assert len(gp1) == len(_TEMPLATE)
    assert all(r["vid"] == 1 and r["bsn"] == bsn(1) for r in gp1)
    ids = {r["type"] + "/" + r["id"] for r in gp1}
    for r in gp1:
        res = json.loads(r["json"])
        assert res["id"] == r["id"]
        assert bsn(1) not in r["id"]
        assert "urn:uuid:" not in r["json"]
        assert "versionId" not in json.dumps(res.get("meta", {}))
    consent = next(json.loads(r["json"]) for r in gp1
                   if r["type"] == "Consent")
    assert consent["patient"]["reference"] in ids
    gp2_patient = next(r["id"] for r in rows
                       if r["receiver_ura"] == GP2 and
                       r["type"] == "Patient")
    gp1_patient = next(r["id"] for r in gp1 if r["type"] == "Patient")
    assert gp1_patient != gp2_patient


def test_update_makes_a_version(pair):
    """The same plan again adds no version; a changed treatment directive
    is version 2 and the first stays in its history."""
    a, b = pair
    b.start()
    start_a(a)

    def withdraw(entries):
        for e in entries:
            r = e["resource"]
            if r["resourceType"] == "Consent":
                r["status"] = "inactive"
                break

    p = Poster(a)
    try:
        for change in (None, None, withdraw):
            _, body = message([GP1], patient=4, change=change)
            status, _, out = p.post(body)
            assert status == 202, out
    finally:
        p.close()
    gw.wait_for(lambda: settled(a), timeout=30, what="delivery to B")
    rows = query(store_path(b),
                 "SELECT type, id, vid, superseded_seq, json"
                 " FROM res_versions ORDER BY seq")
    assert len(rows) == len(_TEMPLATE) + 1
    v2 = rows[-1]
    assert v2["type"] == "Consent" and v2["vid"] == 2
    assert json.loads(v2["json"])["status"] == "inactive"
    v1 = [r for r in rows if r["id"] == v2["id"] and r["vid"] == 1]
    assert len(v1) == 1 and v1[0]["superseded_seq"] is not None
    assert json.loads(v1[0]["json"])["status"] == "active"


def test_kill9_of_b_searchable_iff_acknowledged(pair):
    """A streams messages to B while B is killed -9 again and again:
    whenever B is down, every message A saw acknowledged is in B's store
    with its whole index, and no message is there without it."""
    a, b = pair
    b.start()
    start_a(a)
    n, threads = 600, 3
    box = {}
    errors = []
    lock = threading.Lock()

    def post(t):
        p = Poster(a)
        try:
            for k in range(t, n, threads):
                ident, body = message([GP1 if k % 2 else GP2],
                                      patient=k % 7, small=True,
                                      tag=str(k))
                status = p.post(body, time.monotonic() + 60)[0]
                with lock:
                    box[ident] = status
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            p.close()

    posters = [threading.Thread(target=post, args=(t,))
               for t in range(threads)]
    for t in posters:
        t.start()
    rnd = random.Random(11)
    checked = set()
    kills = 0
    # Kill B while the hospital is still posting (at most 12 times).
    while any(t.is_alive() for t in posters) and kills < 12:
        time.sleep(rnd.uniform(0.1, 0.5))
        kill9(b)
        kills += 1
        delivered = {r["bundle_value"] for r in query(
            store_path(a),
            "SELECT m.bundle_value FROM outbox o JOIN messages m"
            " ON m.seq = o.message_seq WHERE o.state = 'delivered'")}
        state = {r["ident"]: r for r in index_state(store_path(b))}
        assert delivered <= set(state), delivered - set(state)
        for ident, r in state.items():
            assert r["receivers"] == 1, r
            assert r["promised"] == len(_SMALL), r
            assert r["versions"] == r["promised"], r
        checked |= delivered
        restart(b)
    for t in posters:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in posters) and not errors, errors
    assert len(box) == n and all(s == 202 for s in box.values())
    gw.wait_for(lambda: settled(a), timeout=90, what="delivery after kills")
    state = index_state(store_path(b))
    assert {r["ident"] for r in state} == set(box)
    assert all(r["versions"] == len(_SMALL) for r in state)
    # The kills landed while messages were being acknowledged.
    assert kills >= 2 and checked


def test_inbound_retention_prunes_with_index(pki, tmp_path):
    b = gateway_b(pki, tmp_path)
    b.sections["store"]["inbound_retention"] = "30d"
    b.start()
    p = Poster(b)
    try:
        for k in range(2):
            _, body = message([GP1], patient=10 + k, small=True, tag=str(k))
            status, _, out = p.post(body)
            assert status == 202, out
    finally:
        p.close()
    assert b.stop() == 0
    listed = inbox_json(b)
    assert len(listed) == 2
    old = listed[0]["id"]
    db = sqlite3.connect(store_path(b))
    db.execute("UPDATE messages SET accepted_at = ? WHERE id = ?",
               (int(time.time() * 1000) - 40 * DAY, old))
    db.commit()
    db.close()
    b.start()
    gw.wait_for(lambda: "event=pruned_inbound messages=1" in b.log_text(),
                timeout=20, what="inbound retention run")
    assert [m["id"] for m in inbox_json(b)] == [listed[1]["id"]]
    state = index_state(store_path(b))
    assert len(state) == 1 and state[0]["versions"] == len(_SMALL)
    assert query(store_path(b), "SELECT count(*) AS n FROM inbox"
                 )[0]["n"] == 1
    b.stop()
