"""The message template of the pull and accept benchmarks: F1's
resources in a message Bundle from 90000002 to 90000003, the first Patient
identifier the BSN placeholder ######### and every other identifier value
made unique per message with @@@@@@@@@@@@ (bench/loadgen.c fills both in).
usage: message_template.py SRCDIR OUT"""
import json, sys
src, out = sys.argv[1:3]
URA = "http://fhir.nl/fhir/NamingSystem/ura"
with open(src + "/tests/data/valid/r4/pzp-0.1.3/bundle-F1.json") as f:
    entries = [e for e in json.load(f)["entry"] if "resource" in e]
for e in entries:
    r = e["resource"]
    for i, ident in enumerate(r.get("identifier", [])):
        if r["resourceType"] == "Patient" and i == 0:
            ident["value"] = "#########"
        elif "value" in ident:
            ident["value"] += "-@@@@@@@@@@@@"
header = {
    "resourceType": "MessageHeader",
    "eventCoding": {"system": "http://pzpgw.nl/fhir/CodeSystem/message-event",
                    "code": "pzp-shared"},
    "destination": [{"endpoint": "urn:ura:90000003", "receiver": {
        "identifier": {"system": URA, "value": "90000003"}}}],
    "sender": {"identifier": {"system": URA, "value": "90000002"}},
    "source": {"endpoint": "urn:ura:90000002"},
    "focus": [{"reference": e["fullUrl"]} for e in entries],
}
doc = {"resourceType": "Bundle",
       "identifier": {"system": "urn:ietf:rfc:3986",
                      "value": "urn:uuid:00000000-0000-4000-8000-@@@@@@@@@@@@"},
       "type": "message", "timestamp": "2026-11-23T10:00:00Z",
       "entry": [{"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
                  "resource": header}] + entries}
with open(out, "w") as f:
    json.dump(doc, f)