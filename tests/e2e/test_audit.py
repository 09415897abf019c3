"""Issue 11 audit trail: hospital -> gateway A -> gateway B with real
daemons; every message B accepts for a local receiver (gp1, gp2) is
recorded as a "create" in B's store, in the accept's transaction, with
the organisation and certificate on the connection (A) and the patient.
`pzpgw audit list/export/verify` on B's real store; tampering with the
sqlite3 library is refused by the triggers, and found by verify once
they are dropped."""

import json
import os
import shutil
import sqlite3
import subprocess

import pytest

import gw
from test_delivery import (A_URA, GP1, GP2, HOSPITAL, b_messages, bsn,
                           gateway_a, gateway_b, message, start_a, Poster)


def audit(store, *args):
    return subprocess.run([gw.BINARY, "audit", "--store", store] +
                          list(args), capture_output=True, text=True)


def audit_json(store, *args):
    r = audit(store, "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def cert_serial(pki, name):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in",
                          os.path.join(pki, name + ".crt")],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def resources(body):
    """Resources of a message other than its MessageHeader."""
    return sum(1 for e in json.loads(body)["entry"]
               if e["resource"]["resourceType"] != "MessageHeader")


@pytest.fixture
def pair(pki, tmp_path):
    b = gateway_b(pki, tmp_path)
    a = gateway_a(pki, tmp_path, {GP1: (b.port, "90000009"),
                                  GP2: (b.port, "90000009")})
    yield a, b
    a.stop()
    b.stop()


def test_creates_audited_listed_exported_verified(pair, pki, tmp_path):
    a, b = pair
    b.start()
    start_a(a)
    store = b.sections["store"]["path"]
    sent = []
    p = Poster(a)
    try:
        for patient, receiver in ((1, GP1), (2, GP2), (1, GP1)):
            ident, body = message([receiver], patient)
            status, _, data = p.post(body)
            assert status == 202, data
            sent.append((ident, patient, receiver, resources(body)))
    finally:
        p.close()
    gw.wait_for(lambda: len(b_messages(b)) == 3, timeout=30,
                what="B accepting 3 messages")

    recs = audit_json(store, "list")
    assert len(recs) == 3, recs
    serial = cert_serial(pki, "gateway")
    for rec in recs:
        assert rec["interaction"] == "create"
        # The organisation on B's connection is gateway A, with its
        # certificate; the hospital is the message's sender.
        assert rec["organisation"] == A_URA
        assert rec["cert_serial"] == serial
        assert "UZI-register" in rec["cert_issuer"]
        assert rec["status"] == 202
        assert ("sender=%s" % HOSPITAL) in rec["query"]
    # A delivers each (receiver, patient) lane in order, the lanes in
    # any order: compare as sets.
    assert sorted((r["patient"], r["query"].split("receiver=")[1].split()[0],
                   r["count"]) for r in recs) == \
        sorted((bsn(patient), receiver, n)
               for _, patient, receiver, n in sent)
    assert [r["seq"] for r in recs] == [1, 2, 3]
    assert len({r["request_id"] for r in recs}) == 3
    assert recs[0]["prev_hash"] == "0" * 64
    assert recs[1]["prev_hash"] == recs[0]["hash"]

    # Filters.
    assert len(audit_json(store, "list", "--patient", bsn(1))) == 2
    assert audit_json(store, "list", "--organisation", GP1) == []
    assert len(audit_json(store, "list", "--organisation", A_URA)) == 3
    assert audit_json(store, "list", "--since", "2999-01-01") == []
    assert len(audit_json(store, "list", "--since", "1h")) == 3
    text = audit(store, "list", "--patient", bsn(2))
    assert text.returncode == 0 and bsn(2) in text.stdout
    assert bsn(1) not in text.stdout
    assert audit(store, "list", "--patient", "12x").returncode == 2

    # Export: a Bundle of AuditEvents that validates as R4.
    r = audit(store, "export", "--since", "2000-01-01")
    assert r.returncode == 0, r.stderr
    bundle = json.loads(r.stdout)
    assert bundle["type"] == "collection"
    events = [e["resource"] for e in bundle["entry"]]
    assert len(events) == 3
    ev = [e for e in events if e["entity"][0]["what"]["identifier"]["value"]
          == bsn(1)][0]
    assert ev["resourceType"] == "AuditEvent"
    assert ev["action"] == "C" and ev["outcome"] == "0"
    assert ev["subtype"][0]["code"] == "create"
    assert ev["agent"][0]["who"]["identifier"]["value"] == A_URA
    assert serial in ev["agent"][1]["who"]["identifier"]["value"]
    assert ev["entity"][0]["what"]["identifier"] == {
        "system": "http://fhir.nl/fhir/NamingSystem/bsn",
        "value": bsn(1)}
    path = tmp_path / "audit-export.json"
    path.write_text(r.stdout)
    v = subprocess.run([gw.BINARY, "validate", str(path)],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert audit(store, "export").returncode == 2  # --since required
    # With the configuration, the observer is this gateway by URA.
    r = subprocess.run([gw.BINARY, "audit", "-c", b.conf, "export",
                        "--since", "1d", "--patient", bsn(2)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    events = [e["resource"] for e in json.loads(r.stdout)["entry"]]
    assert len(events) == 1
    assert events[0]["source"]["observer"]["identifier"]["value"] == \
        "90000009"

    # Verify holds on the running gateway's store.
    r = audit(store, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 records" in r.stdout

    # Append-only, whoever writes: the triggers refuse.
    db = sqlite3.connect(store, timeout=10)
    try:
        for sql in ("UPDATE audit SET bsn = '999999999' WHERE seq = 2",
                    "DELETE FROM audit WHERE seq = 2"):
            with pytest.raises(sqlite3.DatabaseError,
                               match="append-only"):
                db.execute(sql)
            db.rollback()
    finally:
        db.close()

    # An altered record (on a copy, triggers dropped first).
    b.stop()
    altered = str(tmp_path / "altered.db")
    shutil.copy(store, altered)
    db = sqlite3.connect(altered)
    db.executescript("DROP TRIGGER audit_no_update;"
                     "UPDATE audit SET count = count + 1 WHERE seq = 1;")
    db.close()
    r = audit(altered, "verify")
    assert r.returncode == 1, r.stdout
    assert "seq 1" in r.stdout and "altered" in r.stdout
    # Whatever a record holds (a query from the network with terminal
    # escapes and bytes that are not UTF-8), list and export print it
    # harmlessly and as valid JSON.
    db = sqlite3.connect(altered)
    db.execute("INSERT INTO audit (at, ura, cert_serial, cert_issuer, bsn,"
               " interaction, query, count, status, request_id, prev_hash,"
               " hash) VALUES (1, '90000003', '', 'CN=Zorg \u00dc', '',"
               " 'read', CAST(? AS TEXT), 0, 404, 'x', '', '')",
               (b"/fhir/Goal/\x1b[31mred\xff\xfe",))
    db.commit()
    db.close()
    r = audit(altered, "list")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "/fhir/Goal/?[31mred??" in r.stdout
    recs = audit_json(altered, "list", "--organisation", GP1)
    assert recs[0]["query"] == "/fhir/Goal/?[31mred??"
    assert recs[0]["cert_issuer"] == "CN=Zorg \u00dc"
    r = audit(altered, "export", "--since", "1970-01-01")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["entry"]) == 4

    # A deleted record.
    db = sqlite3.connect(store)
    db.executescript("DROP TRIGGER audit_no_delete;"
                     "DELETE FROM audit WHERE seq = 2;")
    db.close()
    r = audit(store, "verify", "--format", "json")
    assert r.returncode == 1, r.stdout
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["broken_seq"] == 2
    assert "deleted" in out["problem"]
