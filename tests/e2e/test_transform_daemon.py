"""Issue 12 in the daemon: a hospital posts STU3 (named by the
Content-Type or detected), the gateway validates it as STU3, converts it
to R4, validates that, signs, indexes and stores R4 with the conversion
report beside it. Real daemons on loopback with real TLS; the STU3
message is made from the R4 F1 scenario with `pzpgw transform`."""

import base64
import copy
import json
import os
import ssl
import subprocess
import urllib.parse
import uuid

import pytest
from jwcrypto import jwk, jws

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
    # inbox show: the R4 document alone on stdout, the report named
    # on stderr.
    p = subprocess.run([gw.BINARY, "inbox", "--store",
                        os.path.join(gateway.dir, "pzpgw.db"), "show",
                        h["x-message-id"]],
                       check=True, capture_output=True, text=True)
    assert json.loads(p.stdout)["entry"][0]["resource"]["eventCoding"]
    assert "pzpgw queue show " + h["x-message-id"] in p.stderr
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


# ---- the Provider API in STU3 ----

def r4_message(receivers):
    from test_intake import message
    return message(HOSPITAL, receivers)


def pull(g, path, accept, cert="gp1"):
    st, h, body = g.request("GET", path, cert=cert,
                            headers={"Accept": accept})
    return st, h, body


def patient_id(g, accept="application/fhir+json"):
    q = urllib.parse.quote(BSN_SYSTEM + "|" + F1_BSN, safe="")
    st, _, body = pull(g, "/fhir/Patient?identifier=" + q, accept)
    b = json.loads(body)
    assert st == 200 and b["total"] == 1, b
    return b["entry"][0]["resource"]["id"]


def check_stu3(tmp_path, name, body):
    """body validates as STU3 with no errors (pzpgw validate)."""
    path = tmp_path / name
    path.write_bytes(body)
    rc, text = validate(str(path), "stu3")
    assert rc == 0, text


def test_gp_asks_for_stu3_and_gets_valid_stu3(gateway, tmp_path):
    st, _, out = post(gateway, r4_message([GP1]),
                      content_type="application/fhir+json")
    assert st == 202, out
    pid = patient_id(gateway)
    # R4 by default: the stored form.
    st, h, body = pull(gateway, "/fhir/Consent?patient=" + pid,
                       "application/fhir+json")
    r4 = json.loads(body)
    assert st == 200 and "fhirVersion" not in h["content-type"]
    assert any("provision" in e["resource"] for e in r4["entry"]), r4
    # STU3 when asked: every entry converted, the searchset valid STU3.
    st, h, body = pull(gateway, "/fhir/Consent?patient=" + pid, STU3_JSON)
    stu3 = json.loads(body)
    assert st == 200, stu3
    assert "fhirVersion=3.0" in h["content-type"]
    assert stu3["total"] == r4["total"]
    assert [e["fullUrl"] for e in stu3["entry"]] == \
        [e["fullUrl"] for e in r4["entry"]]
    for e in stu3["entry"]:
        assert "provision" not in e["resource"], e
        assert any("/pzp/stu3/" in p or "fhir.iknl.nl" in p
                   for p in e["resource"]["meta"]["profile"]), e
    check_stu3(tmp_path, "consents.json", body)
    # A read, too; and the same bytes every time (deterministic).
    st, h, one = pull(gateway, "/fhir/Patient/" + pid, STU3_JSON)
    assert st == 200 and "fhirVersion=3.0" in h["content-type"]
    check_stu3(tmp_path, "patient.json", one)
    assert pull(gateway, "/fhir/Patient/" + pid, STU3_JSON)[2] == one
    # The CapabilityStatement says which version the client gets.
    st, _, cs = pull(gateway, "/fhir/metadata", STU3_JSON)
    assert json.loads(cs)["fhirVersion"] == "3.0.2"
    st, _, cs = pull(gateway, "/fhir/metadata", "application/fhir+json")
    assert json.loads(cs)["fhirVersion"] == "4.0.1"


def test_stu3_answer_without_stu3_form_is_406(gateway):
    """Stored R4 that STU3 cannot say (a CommunicationRequest with the
    R4-only modifier doNotPerform) asked for in STU3: 406 with an
    OperationOutcome that says to ask for R4, not a 500."""
    m = r4_message([GP1])
    patient = next(e["fullUrl"] for e in m["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    url = "urn:uuid:" + str(uuid.uuid4())
    m["entry"].append({"fullUrl": url, "resource": {
        "resourceType": "CommunicationRequest", "status": "active",
        "doNotPerform": True, "subject": {"reference": patient},
        "payload": [{"contentString": "no phone calls at night"}]}})
    m["entry"][0]["resource"]["focus"].append({"reference": url})
    st, _, out = post(gateway, m, content_type="application/fhir+json")
    assert st == 202, out
    pid = patient_id(gateway)
    path = "/fhir/CommunicationRequest?patient=" + pid
    st, _, body = pull(gateway, path, "application/fhir+json")
    assert st == 200 and json.loads(body)["total"] == 1, body
    st, h, body = pull(gateway, path, STU3_JSON)
    oo = json.loads(body)
    assert st == 406, oo
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["code"] == "not-supported"
    assert "fhirVersion=4.0" in oo["issue"][0]["diagnostics"]
    assert "CommunicationRequest" in oo["issue"][0]["diagnostics"]
    assert "fhirVersion" not in h["content-type"]


def test_peer_default_fhir_stu3(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path))
    g.sections["peer " + GP1]["fhir"] = "stu3"
    g.start()
    try:
        st, _, out = post(g, r4_message([GP1]),
                          content_type="application/fhir+json")
        assert st == 202, out
        pid = patient_id(g)
        st, h, body = pull(g, "/fhir/Patient/" + pid,
                           "application/fhir+json")
        assert st == 200 and "fhirVersion=3.0" in h["content-type"]
        check_stu3(tmp_path, "patient.json", body)
        # The Accept's fhirVersion wins over the peer's default.
        st, h, body = pull(g, "/fhir/Patient/" + pid,
                           "application/fhir+json; fhirVersion=4.0")
        assert st == 200 and "fhirVersion" not in h["content-type"]
        st, h, body = pull(g, "/fhir/Patient/" + pid,
                           "application/fhir+xml")
        assert st == 200, body
        assert h["content-type"].startswith(
            "application/fhir+xml; fhirVersion=3.0")
        assert b"<Patient xmlns=\"http://hl7.org/fhir\">" in body
    finally:
        g.stop()


# ---- delivery: converted for the receiver, signed after conversion ----

B_URA = "90000009"  # gateway2.crt: the fake receiving gateway


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jcs(bundle):
    """An independent canonical form (RFC 8785 as the gateway's canon
    URI says): text, meta and signature of the Bundle left out, members
    sorted, no whitespace."""
    b = dict(bundle)
    for k in ("text", "meta", "signature"):
        b.pop(k, None)
    return json.dumps(b, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def verify_independently(bundle, jws_token, pki):
    """The detached JWS verifies over jcs(bundle) with jwcrypto, by the
    key of its x5c leaf, which is the sending gateway's certificate."""
    hdr, payload, sig = jws_token.split(".")
    assert payload == ""
    header = json.loads(b64url_dec(hdr))
    leaf = base64.b64decode(header["x5c"][0])
    pem = ssl.DER_cert_to_PEM_cert(leaf).encode()
    with open(os.path.join(pki, "gateway.crt")) as f:
        own = f.read().split("-----END CERTIFICATE-----")[0]
    assert base64.b64decode("".join(
        own.split("-----BEGIN CERTIFICATE-----")[1].split())) == leaf
    key = jwk.JWK.from_pem(pem)
    data = jcs(bundle)
    obj = jws.JWS()
    obj.deserialize(hdr + "." + base64.urlsafe_b64encode(data).decode()
                    .rstrip("=") + "." + sig, key)
    assert obj.payload == data
    # Any other bytes do not verify.
    with pytest.raises(Exception):
        jws.JWS().deserialize(
            hdr + "." + base64.urlsafe_b64encode(data + b" ").decode()
            .rstrip("=") + "." + sig, key)


def sending_gateway(pki, tmp_path, port, fhir=None):
    g = gw.Gateway(pki, str(tmp_path))
    g.sections["delivery"] = {"backoff_min": "100ms", "backoff_max": "1s",
                              "timeout": "5s"}
    g.sections["peer " + GP1] = {
        "name": "practice", "endpoint": "https://localhost:%d/fhir" % port,
        "server_ura": B_URA, "allow": "pull"}
    if fhir:
        g.sections["peer " + GP1]["fhir"] = fhir
    return g.start()


@pytest.fixture
def receiver(pki):
    from fake_receiver import FakeReceiver
    f = FakeReceiver(pki, cert="gateway2").start()
    yield f
    f.stop()


def received(receiver):
    return gw.wait_for(lambda: receiver.received, timeout=20,
                       what="a delivery")[0]


def test_r4_hospital_to_stu3_peer_gets_signed_stu3(pki, tmp_path, receiver):
    g = sending_gateway(pki, tmp_path, receiver.port, fhir="stu3")
    try:
        st, _, out = post(g, r4_message([GP1]),
                          content_type="application/fhir+json")
        assert st == 202, out
        r = received(receiver)
        assert "fhirVersion=3.0" in r.headers["Content-Type"]
        b = r.json()
        header = b["entry"][0]["resource"]
        assert header["event"]["code"] == "pzp-shared"
        assert header["receiver"]["identifier"]["value"] == GP1
        assert "eventCoding" not in header
        assert "data" not in b["signature"]
        path = tmp_path / "delivered.json"
        path.write_bytes(r.body)
        rc, text = validate(str(path), "stu3")
        assert rc == 0, text
        # STU3 placement: blob = base64 of the JWS, over the STU3 bytes.
        token = base64.b64decode(b["signature"]["blob"]).decode()
        verify_independently(b, token, pki)
        assert "event=delivery_converted" in g.log_text()
        # Stored as R4 all the same.
        m = store_show(g, json.loads(out)["issue"][0]["diagnostics"]
                       .split("message ")[1].split(" ")[0])
        assert m["fhir_version"] == "4.0.1"
    finally:
        g.stop()


def test_stu3_hospital_to_r4_peer_gets_signed_r4(pki, tmp_path, receiver,
                                                f1_stu3):
    g = sending_gateway(pki, tmp_path, receiver.port)
    try:
        st, _, out = post(g, stu3_message(f1_stu3, [GP1]))
        assert st == 202, out
        r = received(receiver)
        assert "fhirVersion" not in r.headers["Content-Type"]
        b = r.json()
        assert b["entry"][0]["resource"]["eventCoding"]["code"] == \
            "pzp-shared"
        path = tmp_path / "delivered.json"
        path.write_bytes(r.body)
        rc, text = validate(str(path), "r4")
        assert rc == 0, text
        verify_independently(b, base64.b64decode(
            b["signature"]["data"]).decode(), pki)
    finally:
        g.stop()


# ---- configuration ----

def test_check_config_knows_fhir(tmp_path):
    for name in ("cert.pem", "trust.pem"):
        (tmp_path / name).write_text(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIC\n"
                   "-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    conf = tmp_path / "pzpgw.conf"
    head = ("[organisation]\nura = 90000001\nname = T\n[listen]\n"
            "certificate = cert.pem\nkey = key.pem\ntrust = trust.pem\n"
            "environment = test\n[peer 90000003]\nallow = pull\n")

    def check(value):
        conf.write_text(head + "fhir = %s\n" % value)
        return subprocess.run([gw.BINARY, "check-config", "-c", str(conf)],
                              capture_output=True, text=True, timeout=30)

    for good in ("stu3", "r4"):
        r = check(good)
        assert r.returncode == 0, r.stderr
    r = check("stu4")
    assert r.returncode == 1, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("%s:11: " % conf), first
    assert "fhir" in first and "stu3" in first and "r4" in first, first


def test_stu3_peer_message_without_stu3_form_is_dead(pki, tmp_path,
                                                     receiver):
    g = sending_gateway(pki, tmp_path, receiver.port, fhir="stu3")
    try:
        m = r4_message([GP1])
        patient = next(e["fullUrl"] for e in m["entry"]
                       if e["resource"]["resourceType"] == "Patient")
        url = "urn:uuid:" + str(uuid.uuid4())
        m["entry"].append({"fullUrl": url, "resource": {
            "resourceType": "CommunicationRequest", "status": "active",
            "doNotPerform": True, "subject": {"reference": patient}}})
        m["entry"][0]["resource"]["focus"].append({"reference": url})
        st, h, out = post(g, m, content_type="application/fhir+json")
        assert st == 202, out
        gw.wait_for(lambda: "error=no_stu3_form" in g.log_text(),
                    timeout=20, what="the dead letter")
        row = store_show(g, h["x-message-id"])["rows"][0]
        assert row["state"] == "dead", row
        assert "doNotPerform" in row["last_error"], row
        assert receiver.received == []
    finally:
        g.stop()
