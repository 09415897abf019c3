"""Issue 9 identity: who may send in MessageHeader.sender's name, seen
from outside as an attacker would. A peer's own signature never speaks
for another organisation; a gateway relays for a sender only when the
receiving gateway lets it ([peer URA] relay), and a sender's signature it
kept must be the sender's. Both signatures of a relayed message are
checked here with python3-jwcrypto, not with pzpgw."""

import base64
import copy
import json
import os
import re
import signal
import sqlite3
import subprocess
import uuid

import pytest
from jwcrypto import jwk, jws

import gw
from test_intake import message

HOSPITAL = gw.URA["hospital"]
GP1 = gw.URA["gp1"]
GP2 = gw.URA["gp2"]
A_URA = gw.URA["gateway"]
B_URA = "90000009"
RELAY_POLICY = "http://pzpgw.nl/fhir/relayed-signature"
PROCESS = "/fhir/$process-message"

# Numbers travel as their original text (json turns 1.50 into 1.5).
RAWNUM = "\x00num:"


def loads(data):
    return json.loads(data, parse_float=lambda t: RAWNUM + t,
                      parse_int=lambda t: RAWNUM + t)


def dumps(obj, **kw):
    return re.sub(r'"\\u0000num:([-+.0-9eE]+)"', r"\1", json.dumps(obj, **kw))


def jcs(bundle):
    """The canonical form, computed here (JCS with numbers verbatim, root
    text/meta/signature left out), independent of `pzpgw canon`."""
    b = {k: v for k, v in bundle.items()
         if k not in ("text", "meta", "signature")}
    return dumps(b, sort_keys=True, separators=(",", ":"),
                 ensure_ascii=False).encode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwcrypto_verify(signature, payload, leaf_pem):
    """Check a PZP-JWS Signature element over payload with jwcrypto and
    the given certificate; returns the JWS header."""
    token = base64.b64decode(signature["data"]).decode()
    hdr, empty, sig = token.split(".")
    assert empty == ""
    key = jwk.JWK.from_pem(open(leaf_pem, "rb").read())
    obj = jws.JWS()
    obj.deserialize(hdr + "." + b64url(payload) + "." + sig, key)
    return json.loads(base64.urlsafe_b64decode(hdr + "=" * (-len(hdr) % 4)))


def sign(pki, tmp_path, doc, who):
    """doc signed with organisation who's key by the pzpgw CLI (the
    attacker's tool: any JWS library would do)."""
    src = tmp_path / ("in-%s.json" % uuid.uuid4())
    src.write_text(dumps(doc))
    out = subprocess.run([gw.BINARY, "sign", "--key",
                          os.path.join(pki, who + ".key"), "--cert",
                          os.path.join(pki, who + ".crt"), str(src)],
                         check=True, capture_output=True, text=True).stdout
    return loads(out)


def keep_as_relay(doc):
    """What a relaying gateway does: the sender's Bundle.signature moves
    into a last Provenance entry (policy RELAY_POLICY)."""
    doc = copy.deepcopy(doc)
    sig = doc.pop("signature")
    doc["entry"].append({
        "fullUrl": "urn:uuid:" + str(uuid.uuid4()),
        "resource": {
            "resourceType": "Provenance",
            "target": [{"identifier": doc["identifier"]}],
            "recorded": sig["when"],
            "policy": [RELAY_POLICY],
            "agent": [{"who": sig["who"]}],
            "signature": [sig],
        }})
    return doc


def post(g, doc, cert):
    status, headers, body = g.request(
        "POST", PROCESS, body=dumps(doc).encode(), cert=cert,
        headers={"Content-Type": "application/fhir+json"})
    return status, headers, json.loads(body)


def stored(g):
    db = sqlite3.connect(g.sections["store"]["path"])
    try:
        return db.execute("SELECT bundle_value, document FROM messages"
                          " ORDER BY seq").fetchall()
    finally:
        db.close()


def sender_issue(oo):
    issue = oo["issue"][0]
    assert issue["code"] == "forbidden", oo
    assert issue["expression"] == [
        "Bundle.entry[0].resource.ofType(MessageHeader).sender"], oo
    return issue["diagnostics"]


# ---- a push peer signing in another organisation's name ----

def test_self_signed_message_in_another_name_is_403(gateway, pki, tmp_path):
    """The hospital signs, with its own key, a message whose sender is
    gp1: its signature verifies and names the hospital, which does not
    make it gp1. Refused, nothing stored."""
    doc = sign(pki, tmp_path, message(GP1, [GP1]), "hospital")
    status, _, oo = post(gateway, doc, "hospital")
    assert status == 403, oo
    assert GP1 in sender_issue(oo)
    assert stored(gateway) == []
    assert "action=reject_sender" in gateway.log_text()
    # The same message in its own name is fine.
    doc = sign(pki, tmp_path, message(HOSPITAL, [GP1]), "hospital")
    status, _, oo = post(gateway, doc, "hospital")
    assert status == 202, oo


# ---- forged relays, at the receiving gateway ----

@pytest.fixture
def receiver(pki, tmp_path):
    """A receiving gateway (gateway.crt) serving gp1, with gateway2
    (90000009) as a push peer; relay set per test."""
    def start(relay=None):
        g = gw.Gateway(pki, str(tmp_path / "r"))
        os.makedirs(g.dir, exist_ok=True)
        peer = {"name": "gateway 2", "allow": "push"}
        if relay:
            peer["relay"] = relay
        g.sections["peer " + B_URA] = peer
        started.append(g.start())
        return g
    started = []
    yield start
    for g in started:
        g.stop()


def test_relay_not_allowed_is_403(receiver, pki, tmp_path):
    g = receiver()
    doc = sign(pki, tmp_path, message(HOSPITAL, [GP1]), "gateway2")
    status, _, oo = post(g, doc, "gateway2")
    assert status == 403, oo
    assert "may not relay" in sender_issue(oo)
    # Keeping a real hospital signature does not make it allowed either.
    kept = keep_as_relay(sign(pki, tmp_path, message(HOSPITAL, [GP1]),
                              "hospital"))
    status, _, oo = post(g, sign(pki, tmp_path, kept, "gateway2"),
                         "gateway2")
    assert status == 403, oo
    assert stored(g) == []


def test_forged_kept_signature_is_refused(receiver, pki, tmp_path):
    """gateway2 may relay for the hospital, but the signature it claims
    to have kept is gp2's: refused. Unsigned relays are refused too."""
    g = receiver(relay=HOSPITAL)
    kept = keep_as_relay(sign(pki, tmp_path, message(HOSPITAL, [GP1]),
                              "gp2"))
    status, _, oo = post(g, sign(pki, tmp_path, kept, "gateway2"),
                         "gateway2")
    assert status == 403, oo
    assert "kept sender signature is by URA " + GP2 in sender_issue(oo)

    # A hospital signature over other content (the relay changed it).
    kept = keep_as_relay(sign(pki, tmp_path, message(HOSPITAL, [GP1]),
                              "hospital"))
    kept["timestamp"] = "2026-11-24T10:00:00Z"
    status, _, oo = post(g, sign(pki, tmp_path, kept, "gateway2"),
                         "gateway2")
    assert status == 422, oo
    assert "'signature'" in oo["issue"][0]["diagnostics"]

    # Not signed by the relay at all.
    status, _, oo = post(g, message(HOSPITAL, [GP1]), "gateway2")
    assert status == 403, oo
    assert "must carry your signature" in sender_issue(oo)
    assert stored(g) == []

    # The honest relay of the same kind is accepted.
    kept = keep_as_relay(sign(pki, tmp_path, message(HOSPITAL, [GP1]),
                              "hospital"))
    status, _, oo = post(g, sign(pki, tmp_path, kept, "gateway2"),
                         "gateway2")
    assert status == 202, oo
    assert len(stored(g)) == 1


def test_relay_for_another_sender_is_403(receiver, pki, tmp_path):
    """relay names the organisations a gateway may speak for: gp2 is
    not one of them."""
    g = receiver(relay=HOSPITAL)
    doc = sign(pki, tmp_path, message(GP2, [GP1]), "gateway2")
    status, _, oo = post(g, doc, "gateway2")
    assert status == 403, oo
    assert "may not relay" in sender_issue(oo)


# ---- the honest path: hospital -> A -> B ----

@pytest.fixture
def pair(pki, tmp_path):
    b = gw.Gateway(pki, str(tmp_path / "b"))
    a = gw.Gateway(pki, str(tmp_path / "a"))
    for g in (a, b):
        os.makedirs(g.dir, exist_ok=True)
    b.sections["organisation"] = {"ura": B_URA, "name": "Test gateway B"}
    b.sections["listen"]["certificate"] = os.path.join(pki, "gateway2.crt")
    b.sections["listen"]["key"] = os.path.join(pki, "gateway2.key")
    b.sections["peer " + A_URA] = {"name": "gateway A", "allow": "push",
                                   "relay": HOSPITAL}
    a.sections["delivery"] = {"backoff_min": "100ms", "backoff_max": "1s",
                              "timeout": "5s"}
    a.sections["peer " + GP1] = {
        "name": "gp1", "endpoint": "https://localhost:%d/fhir" % b.port,
        "server_ura": B_URA, "allow": "pull"}
    yield a, b
    a.stop()
    b.stop()


def arrived(b, n):
    return gw.wait_for(lambda: len(stored(b)) >= n and stored(b),
                       timeout=30, what="delivery to B")


def test_relay_keeps_the_hospitals_signature(pair, pki, tmp_path):
    a, b = pair
    b.start()
    a.start()
    doc = sign(pki, tmp_path, message(HOSPITAL, [GP1]), "hospital")
    status, _, oo = post(a, doc, "hospital")
    assert status == 202, oo
    ident, data = arrived(b, 1)[0]
    assert ident == doc["identifier"]["value"]
    got = loads(data)

    # A's signature covers the whole Bundle, relay entry included.
    hdr = jwcrypto_verify(got["signature"], jcs(got),
                          os.path.join(pki, "gateway-leaf.crt"))
    assert got["signature"]["who"]["identifier"]["value"] == A_URA
    pem = open(os.path.join(pki, "gateway-leaf.crt")).read()
    assert hdr["x5c"][0] in "".join(pem.split())

    # The hospital's signature, kept in the last entry, covers the Bundle
    # as the hospital signed it: without that entry.
    prov = got["entry"][-1]["resource"]
    assert prov["resourceType"] == "Provenance"
    assert RELAY_POLICY in prov["policy"]
    assert prov["signature"][0] == doc["signature"]
    original = dict(got, entry=got["entry"][:-1])
    assert jcs(original) == jcs(doc)
    jwcrypto_verify(prov["signature"][0], jcs(original),
                    os.path.join(pki, "hospital-leaf.crt"))
    # ...and not with any other key.
    with pytest.raises(Exception):
        jwcrypto_verify(prov["signature"][0], jcs(original),
                        os.path.join(pki, "gp1-leaf.crt"))
    with pytest.raises(Exception):
        jwcrypto_verify(prov["signature"][0], jcs(got),
                        os.path.join(pki, "hospital-leaf.crt"))

    # An unsigned hospital message (the common case) still goes through:
    # A's signature alone attests the sender A saw over TLS.
    plain = message(HOSPITAL, [GP1])
    status, _, oo = post(a, plain, "hospital")
    assert status == 202, oo
    ident, data = arrived(b, 2)[1]
    got = loads(data)
    assert ident == plain["identifier"]["value"]
    assert all(e["resource"]["resourceType"] != "Provenance"
               for e in got["entry"])
    jwcrypto_verify(got["signature"], jcs(got),
                    os.path.join(pki, "gateway-leaf.crt"))


def test_receiver_without_relay_refuses_the_relay(pair, pki, tmp_path):
    """B not configured to let A relay for the hospital: the message is
    refused (403), not stored at B, and held at A as a configuration
    error (issue 13), not dead-lettered; once B lets A relay (SIGHUP) it
    arrives."""
    a, b = pair
    relay = b.sections["peer " + A_URA].pop("relay")
    b.start()
    a.start()
    status, headers, oo = post(a, message(HOSPITAL, [GP1]), "hospital")
    assert status == 202, oo
    db = a.sections["store"]["path"]

    def rows():
        c = sqlite3.connect(db)
        try:
            return c.execute("SELECT state, last_status FROM outbox"
                             ).fetchall()
        finally:
            c.close()
    gw.wait_for(lambda: "event=receiver_misconfigured" in a.log_text(),
                timeout=30, what="receiver held")
    # The attempt's outcome reaches the store through the writer thread,
    # shortly after the log line.
    gw.wait_for(lambda: [r[1] for r in rows()] == [403], timeout=10,
                what="the 403 recorded")
    assert rows()[0][0] in ("due", "inflight")
    assert stored(b) == []
    b.sections["peer " + A_URA]["relay"] = relay
    b.write_config()
    b.send_signal(signal.SIGHUP)
    gw.wait_for(lambda: rows()[0][0] == "delivered", timeout=30,
                what="delivery after B lets A relay")
    assert len(stored(b)) == 1


# ---- the same identifier for other content ----

def test_same_identifier_other_content_is_409(gateway):
    first = message(HOSPITAL, [GP1])
    status, h1, oo = post(gateway, first, "hospital")
    assert status == 202, oo
    ident = first["identifier"]["value"]

    changed = copy.deepcopy(first)
    changed["timestamp"] = "2026-11-24T09:00:00Z"
    status, h2, oo = post(gateway, changed, "hospital")
    assert status == 409, oo
    issue = oo["issue"][0]
    assert issue["code"] == "duplicate"
    assert issue["expression"] == ["Bundle.identifier"]
    assert ident in issue["diagnostics"]
    assert h1["x-message-id"] in issue["diagnostics"]
    assert "x-duplicate" not in h2
    rows = stored(gateway)
    assert len(rows) == 1 and rows[0][0] == ident
    assert loads(rows[0][1])["timestamp"] == first["timestamp"]

    # The same content again (re-serialised differently) is a re-post:
    # the original answer.
    status, h3, oo = post(gateway, dict(reversed(list(first.items()))),
                          "hospital")
    assert status == 202, oo
    assert h3["x-duplicate"] == "true"
    assert h3["x-message-id"] == h1["x-message-id"]
    assert len(stored(gateway)) == 1


def test_signed_repost_through_a_relay_is_a_duplicate(pair, pki, tmp_path):
    """A hospital re-signing the same content (a new signing time) is a
    re-post at A although A adds a relay entry of its own each time;
    other content under the identifier is a conflict."""
    a, b = pair
    b.start()
    a.start()
    msg = message(HOSPITAL, [GP1])
    status, h1, oo = post(a, sign(pki, tmp_path, msg, "hospital"),
                          "hospital")
    assert status == 202, oo
    status, h2, oo = post(a, sign(pki, tmp_path, msg, "hospital"),
                          "hospital")
    assert status == 202, oo
    assert h2["x-duplicate"] == "true"
    assert h2["x-message-id"] == h1["x-message-id"]
    msg["timestamp"] = "2026-11-24T09:00:00Z"
    status, _, oo = post(a, sign(pki, tmp_path, msg, "hospital"), "hospital")
    assert status == 409, oo
    assert h1["x-message-id"] in oo["issue"][0]["diagnostics"]
    assert len(stored(a)) == 1
