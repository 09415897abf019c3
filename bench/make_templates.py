"""Write message Bundle templates for bench/loadgen.c: F1's PZP resources
cut to about 20 KB, one patient per template (a BSN passing the eleven
test), the Bundle identifier ending in the loadgen counter mark.
usage: make_templates.py SRCDIR OUTDIR COUNT SENDER RECEIVER"""

import copy
import json
import os
import sys
import uuid

src, out, count, sender, receiver = sys.argv[1:6]
URA = "http://fhir.nl/fhir/NamingSystem/ura"
with open(os.path.join(src, "tests", "data", "valid", "r4", "pzp-0.1.3",
                       "bundle-F1.json")) as f:
    entries = [e for e in json.load(f)["entry"] if "resource" in e]


def bsn(n):
    n = 200000000 + n * 31
    while True:
        d = [int(c) for c in "%08d" % (n % 100000000)]
        s = sum(w * x for w, x in zip(range(9, 1, -1), d)) % 11
        if s < 10:
            return "".join(map(str, d)) + str(s)
        n += 1


def message(ents, patient):
    ents = copy.deepcopy(ents)
    for e in ents:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["identifier"][0]["value"] = bsn(patient)
    header = {
        "resourceType": "MessageHeader",
        "eventCoding": {"system":
                        "http://pzpgw.nl/fhir/CodeSystem/message-event",
                        "code": "pzp-shared"},
        "destination": [{"endpoint": "urn:ura:" + receiver,
                         "receiver": {"identifier": {"system": URA,
                                                     "value": receiver}}}],
        "sender": {"identifier": {"system": URA, "value": sender}},
        "source": {"endpoint": "urn:ura:" + sender},
        "focus": [{"reference": e["fullUrl"]} for e in ents],
    }
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986",
                       "value": "urn:uuid:00000000-0000-4000-8000-"
                                "@@@@@@@@@@@@"},
        "type": "message",
        "timestamp": "2026-11-23T10:00:00Z",
        "entry": [{"fullUrl": "urn:uuid:" + str(uuid.UUID(int=patient)),
                   "resource": header}] + ents,
    }


# Leave out resources nothing else refers to, from the end, until the
# message is about 20 KB.
keep = list(entries)
while len(json.dumps(message(keep, 0))) > 20 * 1024:
    for i in range(len(keep) - 1, -1, -1):
        others = json.dumps([e for k, e in enumerate(keep) if k != i])
        if keep[i]["resource"]["resourceType"] != "Patient" and \
                keep[i]["fullUrl"] not in others:
            del keep[i]
            break
    else:
        break
os.makedirs(out, exist_ok=True)
for p in range(int(count)):
    with open(os.path.join(out, "tpl-%03d.json" % p), "w") as f:
        json.dump(message(keep, p), f)
print(len(json.dumps(message(keep, 0))))
