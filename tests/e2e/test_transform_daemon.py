"""Issue 12 in the daemon: a hospital posts STU3 (named by the
Content-Type or detected), the gateway validates it as STU3, converts it
to R4, validates that, signs, indexes and stores R4 with the conversion
report beside it. Real daemons on loopback with real TLS; the STU3
message is made from the R4 F1 scenario with `pzpgw transform`."""

import copy
import json
import os
import subprocess
import urllib.parse
import uuid

import pytest

import gw

URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
EVENT_SYSTEM = "http://pzpgw.nl/fhir/CodeSystem/message-event"
F1 = os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4", "pzp-0.1.3",
                  "bundle-F1.json")
F1_BSN = "999911120"
HOSPITAL = gw.URA["hospital"]
GP1 = gw.URA["gp1"]
STU3_JSON = "application/fhir+json; fhirVersion=3.0"


@pytest.fixture(scope="module")
def f1_stu3(tmp_path_factory):
    """The F1 scenario's resources in STU3 (pzpgw transform)."""
    out = subprocess.run([gw.BINARY, "transform", "--to", "stu3", F1],
                         check=True, capture_output=True, text=True).stdout
    return [e for e in json.loads(out)["entry"] if "resource" in e]


def stu3_message(entries, receivers, ident=None):
    """A message Bundle in the gateway's STU3 form: MessageHeader.event,
    receivers as destination endpoints urn:ura:URA (and receiver for a
    single one), MessageHeader.timestamp."""
    entries = copy.deepcopy(entries)
    header = {
        "resourceType": "MessageHeader",
        "event": {"system": EVENT_SYSTEM, "code": "pzp-shared"},
        "destination": [{"endpoint": "urn:ura:" + r} for r in receivers],
        "sender": {"identifier": {"system": URA_SYSTEM, "value": HOSPITAL}},
        "timestamp": "2026-11-23T10:00:00Z",
        "source": {"endpoint": "urn:ura:" + HOSPITAL},
        "focus": [{"reference": e["fullUrl"]} for e in entries],
    }
    if len(receivers) == 1:
        header["receiver"] = {"identifier": {"system": URA_SYSTEM,
                                             "value": receivers[0]}}
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986",
                       "value": "urn:uuid:" + (ident or str(uuid.uuid4()))},
        "type": "message",
        "entry": [{"fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                   "resource": header}] + entries,
    }


def post(g, body, content_type=STU3_JSON):
    data = json.dumps(body).encode()
    return g.request("POST", "/fhir/$process-message", body=data,
                     headers={"Content-Type": content_type})


def store_show(g, mid):
    out = subprocess.run([gw.BINARY, "queue", "--store",
                          os.path.join(g.dir, "pzpgw.db"), "show", mid,
                          "--content", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def validate(path, fhir):
    """`pzpgw validate --fhir fhir path`: (exit code, output)."""
    p = subprocess.run([gw.BINARY, "validate", "--fhir", fhir, path],
                       capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def texts(oo):
    return [i.get("diagnostics", "") for i in oo["issue"]]


def test_stu3_post_is_stored_as_valid_r4_with_report(gateway, f1_stu3,
                                                    tmp_path):
    st, h, out = post(gateway, stu3_message(f1_stu3, [GP1]))
    oo = json.loads(out)
    assert st == 202, oo
    said = " ".join(texts(oo))
    assert "received as FHIR STU3 (Content-Type fhirVersion=3.0)" in said
    assert "stored as R4" in said
    m = store_show(gateway, h["x-message-id"])
    assert m["fhir_version"] == "4.0.1"
    doc = json.loads(m["document"])
    header = doc["entry"][0]["resource"]
    assert header["eventCoding"]["code"] == "pzp-shared"
    assert header["destination"][0]["receiver"]["identifier"]["value"] == GP1
    assert "event" not in header and "receiver" not in header
    assert doc["timestamp"] == "2026-11-23T10:00:00Z"
    assert "data" in doc["signature"]  # R4 form, signed by the gateway
    path = tmp_path / "stored.json"
    path.write_text(m["document"])
    rc, text = validate(str(path), "r4")
    assert rc == 0, text
    # The report is kept beside the message and names source FHIRPaths.
    rep = m["transform_report"]
    assert rep["resourceType"] == "OperationOutcome"
    exprs = [e for i in rep["issue"] for e in i.get("expression", [])]
    assert any(e.startswith("Bundle.entry[") for e in exprs), rep
    assert any("MessageHeader" in e for e in exprs), rep
    # The text form says it too.
    shown = subprocess.run([gw.BINARY, "queue", "--store",
                            os.path.join(gateway.dir, "pzpgw.db"), "show",
                            h["x-message-id"]],
                           check=True, capture_output=True, text=True).stdout
    assert "transformed:" in shown
    assert "event=transformed" in gateway.log_text()
    assert F1_BSN not in gateway.log_text()


def test_stu3_message_is_indexed_for_the_pull_api(gateway, f1_stu3):
    st, _, out = post(gateway, stu3_message(f1_stu3, [GP1]))
    assert st == 202, out
    q = urllib.parse.quote(BSN_SYSTEM + "|" + F1_BSN, safe="")
    st, _, body = gateway.request("GET", "/fhir/Patient?identifier=" + q,
                                  cert="gp1")
    b = json.loads(body)
    assert st == 200, b
    assert b["total"] == 1, b
    st, _, body = gateway.request(
        "GET", "/fhir/Consent?patient=" + b["entry"][0]["resource"]["id"],
        cert="gp1")
    consents = json.loads(body)
    assert st == 200 and consents["total"] >= 1, consents
    for e in consents["entry"]:
        # R4 Consent: provision, not STU3's except/consentingParty.
        assert "consentingParty" not in e["resource"], e


def test_stu3_detected_without_fhir_version(gateway, f1_stu3):
    st, h, out = post(gateway, stu3_message(f1_stu3, [GP1]),
                      content_type="application/fhir+json")
    oo = json.loads(out)
    assert st == 202, oo
    assert any("received as FHIR STU3 (detected from its content)" in t
               for t in texts(oo)), oo
    assert store_show(gateway, h["x-message-id"])["fhir_version"] == "4.0.1"


def test_stu3_retry_is_a_duplicate(gateway, f1_stu3):
    msg = stu3_message(f1_stu3, [GP1])
    st, h1, out = post(gateway, msg)
    assert st == 202, out
    st, h2, out = post(gateway, msg)
    assert st == 202, out
    assert h2.get("x-duplicate") == "true"
    assert h2["x-message-id"] == h1["x-message-id"]


def test_stu3_invalid_as_stu3_is_rejected_unconverted(gateway, f1_stu3):
    msg = stu3_message(f1_stu3, [GP1])
    # An R4-only element in an STU3 Consent: the STU3 validator refuses.
    consent = next(e["resource"] for e in msg["entry"]
                   if e["resource"]["resourceType"] == "Consent")
    consent["provision"] = {"type": "deny"}
    st, _, out = post(gateway, msg)
    oo = json.loads(out)
    assert st == 422, oo
    assert "event=transformed" not in gateway.log_text()


def test_stu3_refused_conversion_is_422_with_the_report(gateway, f1_stu3):
    msg = stu3_message(f1_stu3, [GP1])
    # A ProcedureRequest: valid STU3, but R4 has no such resource type
    # (it became ServiceRequest), so the conversion refuses it.
    patient = next(e["fullUrl"] for e in msg["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    url = "urn:uuid:" + str(uuid.uuid4())
    msg["entry"].append({"fullUrl": url, "resource": {
        "resourceType": "ProcedureRequest", "status": "active",
        "intent": "plan", "subject": {"reference": patient},
        "code": {"text": "palliative sedation"}}})
    msg["entry"][0]["resource"]["focus"].append({"reference": url})
    st, _, out = post(gateway, msg)
    oo = json.loads(out)
    assert st == 422, oo
    errors = [i for i in oo["issue"] if i["severity"] == "error"]
    assert errors and "ProcedureRequest" in errors[0]["diagnostics"], oo
    assert errors[0]["expression"] == ["Bundle.entry[%d].resource"
                                       % (len(msg["entry"]) - 1)], oo
    assert any("cannot be converted to R4" in t for t in texts(oo)), oo
    assert "event=transform_refused" in gateway.log_text()
    assert "event=accepted" not in gateway.log_text()
