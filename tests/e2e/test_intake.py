"""Issue 5 intake: POST /fhir/$process-message on one real gateway:
message checks, routing, sender binding, validation, signing, durable
acceptance, idempotency and the status URL."""

import json
import os
import subprocess
import uuid

import pytest

import gw

URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
EVENT_SYSTEM = "http://pzpgw.nl/fhir/CodeSystem/message-event"
F1 = os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4", "pzp-0.1.3",
                  "bundle-F1.json")


def message(sender, receivers, source=F1, ident=None, event="pzp-shared"):
    """A message Bundle carrying the resources of the Bundle in source."""
    with open(source) as f:
        src = json.load(f)
    entries = [e for e in src["entry"] if "resource" in e]
    header = {
        "resourceType": "MessageHeader",
        "eventCoding": {"system": EVENT_SYSTEM, "code": event},
        "destination": [{"endpoint": "urn:ura:" + r,
                         "receiver": {"identifier": {"system": URA_SYSTEM,
                                                     "value": r}}}
                        for r in receivers],
        "sender": {"identifier": {"system": URA_SYSTEM, "value": sender}},
        "source": {"endpoint": "urn:ura:" + sender},
        "focus": [{"reference": e["fullUrl"]} for e in entries],
    }
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986",
                       "value": "urn:uuid:" + (ident or str(uuid.uuid4()))},
        "type": "message",
        "timestamp": "2026-11-23T10:00:00Z",
        "entry": [{"fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                   "resource": header}] + entries,
    }


HOSPITAL = gw.URA["hospital"]
GP1 = gw.URA["gp1"]


@pytest.fixture
def gateway(pki, tmp_path):
    # gp1 is served here (pulls); 90000009 is served by another gateway.
    g = gw.Gateway(pki, str(tmp_path))
    g.sections["peer 90000009"] = {
        "name": "remote practice",
        "endpoint": "https://127.0.0.1:9/fhir",
        "allow": "pull",
    }
    g.start()
    yield g
    g.stop()


def post(g, body, cert="hospital"):
    status, headers, out = g.request("POST", "/fhir/$process-message",
                                     body=body, cert=cert)
    return status, headers, json.loads(out)


def store_show(g, mid):
    out = subprocess.run([gw.BINARY, "queue", "--store",
                          os.path.join(g.dir, "pzpgw.db"), "show", mid,
                          "--content", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_local_receiver_accepted_durably_and_signed(gateway, pki, tmp_path):
    status, headers, oo = post(gateway, message(HOSPITAL, [GP1]))
    assert status == 202, oo
    mid = headers["x-message-id"]
    assert headers["location"] == "/fhir/$process-message/" + mid
    stored = store_show(gateway, mid)
    assert stored["direction"] == "inbound"
    assert stored["sender"] == HOSPITAL
    doc = stored["document"]
    path = tmp_path / "stored.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    # The gateway signed it; an independent check of the JWS is in
    # test_sign_interop.py, here the CLI verifier binds it to the URA.
    trust = os.path.join(pki, "uzi-server-ca.pem")
    r = subprocess.run([gw.BINARY, "verify", "--trust", trust,
                        "--expect-ura", gw.URA["gateway"], str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_duplicate_returns_original_answer(gateway):
    msg = message(HOSPITAL, [GP1])
    s1, h1, b1 = post(gateway, msg)
    s2, h2, b2 = post(gateway, msg)
    assert (s1, s2) == (202, 202)
    assert h1["x-message-id"] == h2["x-message-id"]
    assert b1 == b2
    assert h2.get("x-duplicate") == "true"
    # A different message is a new one.
    s3, h3, _ = post(gateway, message(HOSPITAL, [GP1]))
    assert s3 == 202 and h3["x-message-id"] != h1["x-message-id"]


def test_remote_receiver_is_queued_with_status(gateway):
    status, headers, _ = post(gateway, message(HOSPITAL, ["90000009"]))
    assert status == 202
    st, _, body = gateway.request("GET", headers["location"])
    assert st == 200
    params = json.loads(body)
    assert params["resourceType"] == "Parameters"
    recv = [p for p in params["parameter"] if p["name"] == "receiver"]
    parts = {p["name"]: p for p in recv[0]["part"]}
    assert parts["ura"]["valueString"] == "90000009"
    assert parts["state"]["valueCode"] in ("due", "inflight")
    # Another organisation cannot read it.
    st, _, _ = gateway.request("GET", headers["location"], cert="gp2")
    assert st in (403, 404)


def test_sender_must_be_the_certificate(gateway):
    status, _, oo = post(gateway, message(gw.URA["gp2"], [GP1]))
    assert status == 403
    issue = oo["issue"][0]
    assert issue["code"] == "forbidden"
    assert "sender" in issue["expression"][0]


def test_receiver_without_route_is_422(gateway):
    status, _, oo = post(gateway, message(HOSPITAL, ["91234567"]))
    assert status == 422
    issue = oo["issue"][0]
    assert issue["code"] == "not-found"
    assert "destination[0].receiver" in issue["expression"][0]
    assert "91234567" in issue["diagnostics"]


@pytest.mark.parametrize("mutate,code,expr", [
    (lambda m: m.update(type="collection"), "value", "Bundle.type"),
    (lambda m: m.pop("identifier"), "required", "Bundle.identifier"),
    (lambda m: m["entry"][0]["resource"]["eventCoding"].update(code="x"),
     "code-invalid", "eventCoding"),
    (lambda m: m["entry"][0]["resource"].pop("destination"), "required",
     "destination"),
    (lambda m: m["entry"][0]["resource"]["focus"].append(
        {"reference": "urn:uuid:0"}), "not-found", "focus[",),
])
def test_malformed_messages_are_422(gateway, mutate, code, expr):
    msg = message(HOSPITAL, [GP1])
    mutate(msg)
    status, _, oo = post(gateway, msg)
    assert status == 422, oo
    # a missing element is reported at its parent, the child named in the
    # message (as the HL7 validator does)
    assert any(i["code"] == code and
               (expr in i["expression"][0] or
                (code == "required" and expr in i["diagnostics"]))
               for i in oo["issue"]), oo


def test_invalid_care_plan_is_422_and_not_stored(gateway):
    msg = message(HOSPITAL, [GP1])
    patient = next(e["resource"] for e in msg["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    patient["gender"] = "sometimes"
    status, _, oo = post(gateway, msg)
    assert status == 422
    assert any(i["severity"] == "error" and "gender" in
               json.dumps(i) for i in oo["issue"])
    out = subprocess.run([gw.BINARY, "queue", "--store",
                          os.path.join(gateway.dir, "pzpgw.db"), "list",
                          "--format", "json"],
                         capture_output=True, text=True)
    assert "sometimes" not in out.stdout


def test_invalid_message_answer_has_every_finding(gateway, tmp_path):
    """The accept validates quietly (no warnings built for a valid
    message); an invalid one is answered with the whole outcome, the same
    findings `pzpgw validate` reports, warnings included."""
    msg = message(HOSPITAL, [GP1])
    patient = next(e["resource"] for e in msg["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    patient["gender"] = "sometimes"
    status, _, oo = post(gateway, msg)
    assert status == 422
    path = os.path.join(str(tmp_path), "invalid.json")
    with open(path, "w") as f:
        json.dump(msg, f)
    cli = subprocess.run([gw.BINARY, "validate", "--format", "json", path],
                         capture_output=True, text=True)
    want = json.loads(cli.stdout)["issue"]
    sev = [i["severity"] for i in oo["issue"]]
    assert sev.count("error") >= 1 and sev.count("warning") > 10, sev
    assert ([(i["severity"], i.get("expression")) for i in oo["issue"]]
            == [(i["severity"], i.get("expression")) for i in want])


def test_not_a_message_bundle(gateway):
    status, _, oo = post(gateway, {"resourceType": "Patient"})
    assert status == 422
    assert oo["issue"][0]["code"] == "structure"


def test_peer_without_push_is_403(gateway):
    status, _, oo = post(gateway, message(GP1, [GP1]), cert="gp1")
    assert status == 403


def test_low_disk_refuses_with_503(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), store__min_free="1024G")
    g.start()
    try:
        status, headers, oo = post(g, message(HOSPITAL, [GP1]))
        assert status == 503
        assert "retry-after" in headers
        st, text = g.admin("/readyz")
        assert st == 503 and "disk" in text
    finally:
        g.stop()


def signed_by(pki, tmp_path, msg, who):
    """msg signed with organisation who's key by the pzpgw CLI."""
    src = tmp_path / "unsigned.json"
    src.write_text(json.dumps(msg))
    out = subprocess.run([gw.BINARY, "sign", "--key",
                          os.path.join(pki, who + ".key"), "--cert",
                          os.path.join(pki, who + ".crt"), str(src)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_signed_message_from_a_gateway_is_verified(gateway, pki, tmp_path):
    # The hospital's own signature binds it to its TLS identity: accepted.
    msg = signed_by(pki, tmp_path, message(HOSPITAL, [GP1]), "hospital")
    status, headers, oo = post(gateway, msg)
    assert status == 202, oo
    stored = store_show(gateway, headers["x-message-id"])
    # A verified signature of the sending organisation is kept as is.
    import base64
    assert stored["jws"] == base64.b64decode(
        msg["signature"]["data"]).decode()


def test_signature_of_another_organisation_is_401(gateway, pki, tmp_path):
    msg = signed_by(pki, tmp_path, message(HOSPITAL, [GP1]), "gp2")
    status, _, oo = post(gateway, msg)
    assert status == 401
    issue = oo["issue"][0]
    assert issue["code"] == "security"
    assert "'ura'" in issue["diagnostics"]
    assert "event=audit action=reject_signature" in gateway.log_text()


def test_tampered_signed_message_is_422(gateway, pki, tmp_path):
    msg = signed_by(pki, tmp_path, message(HOSPITAL, [GP1]), "hospital")
    patient = next(e["resource"] for e in msg["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    patient["birthDate"] = "1901-01-01"
    status, _, oo = post(gateway, msg)
    assert status == 422
    assert "'signature'" in oo["issue"][0]["diagnostics"]
