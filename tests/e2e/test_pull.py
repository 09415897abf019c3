"""Issue 11, the PZP Provider API: hospital -> gateway A -> gateway B with
real daemons on loopback; GP practice X (gp1, URA 90000003, the addressed
receiver, served by B) pulls what was sent to it with the IG's searches,
in JSON and XML; GP practice Y (gp2) gets empty results and 404s; every
request is audited in B's store."""

import copy
import http.client
import json
import os
import signal
import subprocess
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import pytest

import gw
from test_delivery import (A_URA, B_URA, HOSPITAL, GP1, GP2, URA_SYSTEM,
                           EVENT_SYSTEM, _TEMPLATE, Poster, bsn, gateway_a,
                           gateway_b, message, query, settled, start_a)

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
FHIR_NS = "{http://hl7.org/fhir}"
SCT = "http://snomed.info/sct"
P1, P2, P3 = 11, 12, 13  # patient numbers: X's, Y's, X's paging patient


def wrap(receivers, entries, ident=None):
    """A message Bundle from the hospital around entries."""
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
    doc = {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986",
                       "value": ident or "urn:uuid:" + str(uuid.uuid4())},
        "type": "message",
        "timestamp": "2026-11-23T10:00:00Z",
        "entry": [{"fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                   "resource": header}] + entries,
    }
    return json.dumps(doc).encode()


def f1_entries(patient):
    entries = copy.deepcopy(_TEMPLATE)
    for e in entries:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["identifier"][0]["value"] = bsn(patient)
    return entries


def many_observations(patient, n, tag):
    """The Patient plus n specific-care-wishes Observations, each with
    its own identifier (no encounter or performer: nothing else)."""
    pat = next(copy.deepcopy(e) for e in _TEMPLATE
               if e["resource"]["resourceType"] == "Patient")
    pat["resource"]["identifier"][0]["value"] = bsn(patient)
    pat["resource"]["identifier"] = pat["resource"]["identifier"][:1]
    pat["resource"].pop("contact", None)  # no RelatedPerson in these
    obs = next(e for e in _TEMPLATE
               if "SpecificCareWishes" in
               json.dumps(e["resource"].get("meta", {})))
    out = [pat]
    for i in range(n):
        o = copy.deepcopy(obs)
        o["fullUrl"] = "urn:uuid:" + str(uuid.uuid4())
        r = o["resource"]
        r["identifier"][0]["value"] = "%s-%d" % (tag, i)
        r.pop("encounter", None)
        r.pop("performer", None)
        r["subject"]["reference"] = pat["fullUrl"]
        out.append(o)
    return out


class Net:
    """A (hospital's gateway) and B (serving gp1 and gp2)."""

    def __init__(self, pki, tmp):
        self.pki = pki
        self.b = gateway_b(pki, tmp)
        self.b.sections["peer " + gw.URA["permid"]] = {
            "name": "no pull", "allow": "validate"}
        self.b.start()
        self.a = gateway_a(pki, tmp, {GP1: (self.b.port, B_URA),
                                      GP2: (self.b.port, B_URA)})
        start_a(self.a)
        self.poster = Poster(self.a)

    def send(self, body):
        st, _, data = self.poster.post(body)
        assert st == 202, data[:400]
        gw.wait_for(lambda: settled(self.a), timeout=30,
                    what="delivery to B")
        rows = [r for r in query(self.a.sections["store"]["path"],
                                 "SELECT state FROM outbox")]
        assert all(r["state"] == "delivered" for r in rows), rows

    def stop(self):
        self.poster.close()
        self.a.stop()
        self.b.stop()


@pytest.fixture(scope="module")
def net(pki, tmp_path_factory):
    n = Net(pki, tmp_path_factory.mktemp("pull"))
    try:
        n.send(wrap([GP1], f1_entries(P1)))
        n.send(wrap([GP2], f1_entries(P2)))
        yield n
    finally:
        n.stop()


def get(g, path, cert="gp1", accept="application/fhir+json", headers=None,
        method="GET", body=None):
    hdrs = {"Accept": accept} if accept else {}
    hdrs.update(headers or {})
    st, h, data = g.request(method, path, body=body, cert=cert,
                            headers=hdrs)
    return st, h, data


def getj(g, path, cert="gp1", **kw):
    st, h, data = get(g, path, cert=cert, **kw)
    doc = json.loads(data) if data else None
    return st, h, doc


def q(v):
    return urllib.parse.quote(v, safe="")


def patient_id(g, patient, cert="gp1"):
    st, _, b = getj(g, "/fhir/Patient?identifier=%s" %
                    q(BSN_SYSTEM + "|" + bsn(patient)), cert=cert)
    assert st == 200, b
    assert b["total"] == 1, b
    return b["entry"][0]["resource"]["id"]


def kinds(bundle):
    """{(mode, type): count} of a searchset."""
    out = {}
    for e in bundle.get("entry", []):
        k = (e["search"]["mode"], e["resource"]["resourceType"])
        out[k] = out.get(k, 0) + 1
    return out


def f1_count(rtype, pred=lambda r: True):
    return sum(1 for e in _TEMPLATE
               if e["resource"]["resourceType"] == rtype
               and pred(e["resource"]))


def ig_searches(pid, b):
    """The IG's searches for one patient (by id, and by BSN through the
    chained identifier), with what F1 makes each return."""
    ident = "patient.identifier=" + q(BSN_SYSTEM + "|" + b)
    obs_codes = ",".join(SCT + "|" + c for c in
                         ("153851000146100", "395091006", "340171000146104",
                          "247751003"))
    consents = f1_count("Consent")
    return [
        ("Patient?identifier=" + q(BSN_SYSTEM + "|" + b),
         {("match", "Patient"): 1}),
        ("Procedure?patient=%s&code=%s&_include=Procedure:encounter" %
         (pid, q(SCT + "|713603004")),
         {("match", "Procedure"): 1, ("include", "Encounter"): 1}),
        ("Procedure?%s&code=%s" % (ident, q(SCT + "|713603004")),
         {("match", "Procedure"): 1}),
        ("Encounter?patient=Patient/%s&_include=Encounter:reason-reference"
         % pid,
         {("match", "Encounter"): 1, ("include", "Procedure"): 1}),
        ("Consent?patient=%s&scope=%s&category=%s&_include=Consent:actor" %
         (pid,
          q("http://terminology.hl7.org/CodeSystem/consentscope|treatment"),
          q(SCT + "|129125009")),
         {("match", "Consent"): consents, ("include", "Patient"): 1,
          ("include", "PractitionerRole"): 1,
          ("include", "RelatedPerson"): 1}),
        ("Consent?%s&scope=%s" % (
            ident, q("http://terminology.hl7.org/CodeSystem/consentscope|"
                     "adr")), {}),
        ("Goal?patient=%s" % pid, {("match", "Goal"): f1_count("Goal")}),
        ("Observation?patient=%s&code=%s" % (pid, q(obs_codes)),
         {("match", "Observation"): 3}),
        ("Observation?%s" % ident,
         {("match", "Observation"): f1_count("Observation")}),
        ("DeviceUseStatement?patient=%s&_include=DeviceUseStatement:device"
         % pid,
         {("match", "DeviceUseStatement"): 1, ("include", "Device"): 1}),
        ("DeviceUseStatement?patient=%s&device.type=%s" %
         (pid, q(SCT + "|465460004")),
         {("match", "DeviceUseStatement"): 1}),
        # The IG's query 6 (with _include written the FHIR way).
        ("DeviceUseStatement?patient=%s&device.type:in=%s"
         "&_include=DeviceUseStatement:device" %
         (pid, q("https://fhir.iknl.nl/fhir/ValueSet/"
                 "ACP-MedicalDeviceProductType-ICD")),
         {("match", "DeviceUseStatement"): 1, ("include", "Device"): 1}),
        ("Device?type=%s" % q(SCT + "|465460004"),
         {("match", "Device"): 1}),
        ("DeviceUseStatement?patient=%s&device.type=%s" %
         (pid, q(SCT + "|1")), {}),
        # "|code": a code without a system, which F1's has not.
        ("Procedure?patient=%s&code=%s" % (pid, q("|713603004")), {}),
        ("Procedure?patient=%s&code=713603004" % pid,
         {("match", "Procedure"): 1}),
        ("Procedure?patient=%s&code=%s" % (pid, q("http://loinc.org|"
                                                  "713603004")), {}),
        ("Communication?patient=%s" % pid,
         {("match", "Communication"): f1_count("Communication")}),
        # The IG's queries 1b, 4 and 7 as data-exchange.md writes them.
        ("Encounter?patient=%s&reason-reference:Procedure.code=%s"
         "&_include=Encounter:reason-reference" %
         (pid, q(SCT + "|713603004")),
         {("match", "Encounter"): 1, ("include", "Procedure"): 1}),
        ("Goal?patient=%s&description:in=%s" %
         (pid, q("https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalPolicyGoal")),
         {("match", "Goal"): f1_count("Goal")}),
        ("Communication?patient=%s&reason-code=%s" %
         (pid, q(SCT + "|713603004")),
         {("match", "Communication"): f1_count("Communication")}),
        ("QuestionnaireResponse?subject=Patient/%s&questionnaire=%s" %
         (pid, q("https://fhir.iknl.nl/fhir/Questionnaire/ACP-zib2020")),
         {}),
        ("CommunicationRequest?patient=%s" % pid, {}),
        ("QuestionnaireResponse?patient=%s&questionnaire=%s" %
         (pid, q("https://fhir.iknl.nl/fhir/Questionnaire/ACP-zib2020")),
         {}),
    ]


def test_ig_searches_json(net):
    b = net.b
    pid = patient_id(b, P1)
    for path, want in ig_searches(pid, bsn(P1)):
        st, h, bundle = getj(b, "/fhir/" + path)
        assert st == 200, (path, bundle)
        assert h["content-type"].startswith("application/fhir+json")
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "searchset"
        assert kinds(bundle) == want, (path, kinds(bundle))
        assert bundle["total"] == sum(v for (m, _), v in want.items()
                                      if m == "match"), path
        self_link = [l for l in bundle["link"] if l["relation"] == "self"]
        assert len(self_link) == 1, bundle["link"]
        for e in bundle.get("entry", []):
            r = e["resource"]
            assert r["meta"]["versionId"] == "1"
            assert r["meta"]["lastUpdated"].endswith("Z")
            assert e["fullUrl"].endswith("/%s/%s" % (r["resourceType"],
                                                    r["id"]))
            # References between the message's resources are the stored
            # logical ids, which resolve by read.
            text = json.dumps(r)
            assert "urn:uuid:" not in text, text[:300]


def test_references_resolve_and_read_headers(net):
    b = net.b
    pid = patient_id(b, P1)
    st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
    assert st == 200 and bundle["total"] >= 1
    c = bundle["entry"][0]["resource"]
    assert c["patient"]["reference"] == "Patient/" + pid
    for actor in c["provision"]["actor"]:
        ref = actor["reference"]["reference"]
        st, h, r = getj(b, "/fhir/" + ref)
        assert st == 200, (ref, r)
        assert h["etag"] == 'W/"1"'
        assert "last-modified" in h
        assert "%s/%s" % (r["resourceType"], r["id"]) == ref
    st, _, r = getj(b, "/fhir/Consent/%s/_history/1" % c["id"])
    assert st == 200 and r["id"] == c["id"]


def test_searchset_entries_are_the_read_bytes(pki, tmp_path):
    """A searchset in JSON writes each matched resource from its stored
    text with id and meta spliced in (provider_run.c splice_entry); it
    must be byte for byte what a read of that version serves (written
    from the parsed nodes), also for strings with quotes, backslashes,
    control characters and non-ASCII text, for every IG search, sorted
    either way and paged, with _include entries and a lenient warning
    entry beside them."""
    n = Net(pki, tmp_path)
    try:
        entries = f1_entries(P1)
        odd = 'He said "no" \\ then \u00e9\u00ebn \u2013 tab\there\n/</'
        for e in entries:
            r = e["resource"]
            if r["resourceType"] in ("Goal", "Procedure"):
                r["note"] = [{"text": odd}]
        n.send(wrap([GP1], entries))
        b = n.b
        pid = patient_id(b, P1)
        paths = [p for p, _ in ig_searches(pid, bsn(P1))]
        paths += [p + "&_sort=-_lastUpdated" for p in paths[:8]]
        paths += ["Observation?patient=%s&_count=1" % pid,
                  "Observation?patient=%s&_count=1&_sort=-_lastUpdated"
                  % pid,
                  "Goal?patient=%s&frobnicate=1" % pid]
        seen = 0
        for path in paths:
            lenient = "frobnicate" in path
            st, h, data = get(b, "/fhir/" + path, headers={
                "Prefer": "handling=lenient"} if lenient else None)
            assert st == 200, (path, data[:300])
            bundle = json.loads(data)
            modes = [e["search"]["mode"] for e in bundle.get("entry", [])]
            # Matches first, then includes, then the outcome.
            assert modes == sorted(modes, key=["match", "include",
                                               "outcome"].index), modes
            if lenient:
                assert modes[-1] == "outcome", modes
            for e in bundle.get("entry", []):
                r = e["resource"]
                if e["search"]["mode"] == "outcome":
                    continue
                assert e["fullUrl"].endswith("/%s/%s" % (
                    r["resourceType"], r["id"]))
                st, _, one = get(b, "/fhir/%s/%s/_history/%s" % (
                    r["resourceType"], r["id"], r["meta"]["versionId"]))
                assert st == 200
                assert one in data, (path, one[:200])
                seen += 1
        assert seen > 40, seen
        st, _, data = get(b, "/fhir/Goal?patient=" + pid)
        goal = json.loads(data)["entry"][0]["resource"]
        assert goal["note"][0]["text"] == odd
    finally:
        n.stop()


def test_one_log_line_per_pull(net):
    """A pull request is one log line, the request's own, carrying the
    interaction and the count (provider.c wrote a second, event=pull)."""
    b = net.b
    pid = patient_id(b, P1)
    st, h, data = get(b, "/fhir/Goal?patient=" + pid)
    assert st == 200
    rid = h["x-request-id"]
    total = json.loads(data)["total"]

    def lines():
        return [ln for ln in b.log_text().splitlines() if rid in ln]
    gw.wait_for(lambda: lines(), timeout=5, what="the request's log line")
    got = lines()
    assert len(got) == 1, got
    assert "event=request " in got[0], got[0]
    assert got[0].endswith(" pull=search-type count=%d" % total), got[0]
    assert bsn(P1) not in got[0]


def xml_entries(data):
    root = ET.fromstring(data)
    assert root.tag == FHIR_NS + "Bundle", root.tag
    out = {}
    for e in root.findall(FHIR_NS + "entry"):
        res = list(e.find(FHIR_NS + "resource"))[0]
        mode = e.find(FHIR_NS + "search/" + FHIR_NS + "mode").get("value")
        k = (mode, res.tag[len(FHIR_NS):])
        out[k] = out.get(k, 0) + 1
    total = root.find(FHIR_NS + "total")
    return out, int(total.get("value"))


def test_ig_searches_xml(net):
    b = net.b
    pid = patient_id(b, P1)
    for i, (path, want) in enumerate(ig_searches(pid, bsn(P1))):
        # Alternate between Accept and _format.
        if i % 2:
            st, h, data = get(b, "/fhir/" + path,
                              accept="application/fhir+xml")
        else:
            st, h, data = get(b, "/fhir/" + path + "&_format=xml",
                              accept=None)
        assert st == 200, (path, data[:300])
        assert h["content-type"].startswith("application/fhir+xml"), h
        got, total = xml_entries(data)
        assert got == want, (path, got)
        assert total == sum(v for (m, _), v in want.items()
                            if m == "match")
    # The searchsets (resources, includes, links) are valid R4 in both
    # formats by the gateway's own validator.
    for accept, ext in (("application/fhir+xml", "xml"),
                        ("application/fhir+json", "json")):
        st, _, data = get(b, "/fhir/Consent?patient=%s"
                          "&_include=Consent:actor" % pid, accept=accept)
        assert st == 200
        path = os.path.join(b.dir, "searchset." + ext)
        with open(path, "wb") as f:
            f.write(data)
        p = subprocess.run([gw.BINARY, "validate", path],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    # A read in XML gives the resource with its stored version.
    st, h, data = get(b, "/fhir/Patient/" + pid, accept="application/xml")
    assert st == 200, data[:300]
    root = ET.fromstring(data)
    assert root.tag == FHIR_NS + "Patient"
    assert root.find(FHIR_NS + "id").get("value") == pid
    assert root.find(FHIR_NS + "meta/" + FHIR_NS +
                     "versionId").get("value") == "1"


def test_post_search_form(net):
    b = net.b
    pid = patient_id(b, P1)
    form = "patient=%s&code=%s" % (pid, q(SCT + "|713603004"))
    st, _, bundle = getj(b, "/fhir/Procedure/_search", method="POST",
                         body=form.encode(), headers={
                             "Content-Type":
                             "application/x-www-form-urlencoded"})
    assert st == 200, bundle
    assert kinds(bundle) == {("match", "Procedure"): 1}
    # A search form is not JSON, and has a limit.
    st, _, _ = get(b, "/fhir/Procedure/_search", method="POST",
                   body=b"{}", headers={"Content-Type":
                                         "application/fhir+json"})
    assert st == 415
    st, _, _ = get(b, "/fhir/Procedure/_search", method="POST",
                   body=b"a=" + b"x" * 70000, headers={
                       "Content-Type": "application/x-www-form-urlencoded"})
    assert st == 413


def test_other_organisation_sees_nothing(net):
    b = net.b
    pid = patient_id(b, P1)
    # gp2 has its own patient P2, with the same resource identifiers.
    pid2 = patient_id(b, P2, cert="gp2")
    assert pid2 != pid
    for path, _ in ig_searches(pid, bsn(P1)):
        if "patient" not in path and "identifier" not in path:
            continue  # Device?type=...: gp2 has its own Device
        st, _, bundle = getj(b, "/fhir/" + path, cert="gp2")
        assert st == 200, (path, bundle)
        assert bundle["total"] == 0 and not bundle.get("entry"), path
    # X cannot see Y's patient either.
    st, _, bundle = getj(b, "/fhir/Observation?patient=" + pid2)
    assert bundle["total"] == 0
    # A read of another organisation's resource is the same 404 as one
    # that never existed.
    st1, _, known = getj(b, "/fhir/Patient/" + pid, cert="gp2")
    st2, _, unknown = getj(b, "/fhir/Patient/" + "0" * len(pid), cert="gp2")
    assert st1 == st2 == 404
    assert (known["issue"][0]["code"] == unknown["issue"][0]["code"]
            == "not-found")
    st, _, _ = getj(b, "/fhir/Patient/%s/_history/1" % pid, cert="gp2")
    assert st == 404
    st, _, _ = getj(b, "/fhir/Patient/%s/_history" % pid, cert="gp2")
    assert st == 404


def median_time(fn, n=30):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def test_other_patient_timing_is_unknown_patient_timing(net):
    """An existing other organisation's patient answers as fast as an
    unknown one (within noise): both find nothing in the caller's part
    of the index."""
    b = net.b
    other = q(BSN_SYSTEM + "|" + bsn(P1))
    unknown = q(BSN_SYSTEM + "|" + bsn(999))
    ctx = gw.client_context(b.pki, "gp2")
    conn = http.client.HTTPSConnection("localhost", b.port, context=ctx,
                                       timeout=10)

    def run(v):
        conn.request("GET", "/fhir/Consent?patient.identifier=" + v,
                     headers={"Accept": "application/fhir+json"})
        r = conn.getresponse()
        assert json.loads(r.read())["total"] == 0

    try:
        run(other)
        a = median_time(lambda: run(other))
        u = median_time(lambda: run(unknown))
    finally:
        conn.close()
    assert abs(a - u) < max(0.002, 0.5 * min(a, u)), (a, u)


def test_unknown_certificate_gets_no_connection(net):
    from test_gateway import refused
    assert refused(net.b, "otherca")


def test_organisation_without_pull_is_refused(net):
    b = net.b
    st, _, oo = getj(b, "/fhir/Patient?identifier=x", cert="permid")
    assert st == 403
    assert oo["issue"][0]["code"] == "forbidden"


def test_parameters_and_formats(net):
    b = net.b
    pid = patient_id(b, P1)
    st, _, oo = getj(b, "/fhir/Consent?patient=%s&colour=blue" % pid)
    assert st == 400, oo
    assert oo["resourceType"] == "OperationOutcome"
    assert "colour" in json.dumps(oo)
    st, _, bundle = getj(b, "/fhir/Consent?patient=%s&colour=blue" % pid,
                         headers={"Prefer": "handling=lenient"})
    assert st == 200, bundle
    assert bundle["total"] == f1_count("Consent")
    outcomes = [e for e in bundle["entry"]
                if e["search"]["mode"] == "outcome"]
    assert outcomes and "colour" in json.dumps(outcomes[0])
    # _lastUpdated, _id, _sort and _count.
    n = f1_count("Consent")
    st, _, bundle = getj(b, "/fhir/Consent?patient=%s&_lastUpdated=gt2000-01-01"
                         % pid)
    assert st == 200 and bundle["total"] == n, bundle
    st, _, bundle = getj(b, "/fhir/Consent?patient=%s&_lastUpdated=lt2000-01-01"
                         % pid)
    assert st == 200 and bundle["total"] == 0
    st, _, bundle = getj(b, "/fhir/Consent?patient=%s&_sort=-_lastUpdated"
                         "&_count=2" % pid)
    assert st == 200 and bundle["total"] == n and len(bundle["entry"]) == 2
    asc = [e["resource"]["id"] for e in getj(
        b, "/fhir/Consent?patient=%s&_sort=_lastUpdated" % pid)[2]["entry"]]
    desc = [e["resource"]["id"] for e in getj(
        b, "/fhir/Consent?patient=%s&_sort=-_lastUpdated" % pid)[2]["entry"]]
    assert desc == asc[::-1]
    st, _, bundle = getj(b, "/fhir/Consent?_id=%s,%s" % (asc[0], asc[1]))
    assert sorted(e["resource"]["id"] for e in bundle["entry"]) == \
        sorted(asc[:2])
    st, _, oo = getj(b, "/fhir/Consent?patient=%s&_lastUpdated=gt2000-13-45" % pid)
    assert st == 400, oo
    st, _, _ = get(b, "/fhir/Patient/" + pid, accept="text/html")
    assert st == 406
    st, _, _ = get(b, "/fhir/Patient/" + pid + "?_format=text/turtle")
    assert st == 406
    # Empty: 200 and an empty searchset.
    st, _, bundle = getj(b, "/fhir/Goal?patient=nobody")
    assert st == 200 and bundle["total"] == 0 and "entry" not in bundle
    # The API reads only.
    st, h, _ = get(b, "/fhir/Patient/" + pid, method="DELETE")
    assert st == 405 and "GET" in h["allow"]
    st, h, data = get(b, "/fhir/Patient/" + pid, method="HEAD")
    assert st == 200 and data == b""
    # Not a FHIR type: no such endpoint, for everyone.
    st, _, _ = getj(b, "/fhir/Nothing")
    assert st == 404
    st, _, _ = getj(b, "/fhir/Patient/not_an_id!")
    assert st == 404


def test_metadata_states_the_provider(net):
    st, _, cs = getj(net.b, "/fhir/metadata")
    assert st == 200
    assert "xml" in cs["format"] or "application/fhir+xml" in cs["format"]
    res = {r["type"]: r for r in cs["rest"][0]["resource"]}
    for t in ("Patient", "Encounter", "Procedure", "Consent", "Goal",
              "Observation", "DeviceUseStatement", "Communication",
              "CommunicationRequest", "QuestionnaireResponse"):
        assert t in res, t
    assert any(p["name"] == "scope" for p in res["Consent"]["searchParam"])
    assert "Consent:actor" in res["Consent"].get("searchInclude", [])
    codes = [i["code"] for i in cs["rest"][0]["interaction"]]
    assert "history-system" in codes
    # It is a valid R4 CapabilityStatement, and also served as XML.
    path = os.path.join(net.b.dir, "metadata.json")
    with open(path, "w") as f:
        json.dump(cs, f)
    p = subprocess.run([gw.BINARY, "validate", path], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    st, h, data = get(net.b, "/fhir/metadata",
                      accept="application/fhir+xml")
    assert st == 200 and h["content-type"].startswith("application/fhir+xml")
    assert ET.fromstring(data).tag == FHIR_NS + "CapabilityStatement"


def test_metadata_made_once_per_kind_and_name(net):
    """/fhir/metadata is made once per kind (R4/STU3, JSON/XML) and sent
    as made: the same bytes, its date when it was made, a second later
    too; a reload that renames the organisation makes it again."""
    b = net.b
    st, _, first = get(b, "/fhir/metadata")
    st2, _, xml1 = get(b, "/fhir/metadata", accept="application/fhir+xml")
    assert st == st2 == 200
    time.sleep(1.1)
    st, h, again = get(b, "/fhir/metadata")
    assert st == 200 and again == first
    assert h["content-type"] == "application/fhir+json; charset=utf-8"
    st, h, xml2 = get(b, "/fhir/metadata", accept="application/fhir+xml")
    assert st == 200 and xml2 == xml1
    assert h["content-type"].startswith("application/fhir+xml")
    st, _, stu3 = getj(b, "/fhir/metadata",
                       accept="application/fhir+json; fhirVersion=3.0")
    assert st == 200 and stu3["fhirVersion"] == "3.0.2"
    assert json.loads(again)["fhirVersion"] == "4.0.1"
    old = b.sections["organisation"]["name"]
    b.sections["organisation"]["name"] = "Renamed gateway B"
    b.write_config()
    off = os.path.getsize(b.log_path)
    b.send_signal(signal.SIGHUP)
    gw.wait_for(lambda: "event=reloaded" in b.log_text()[off:],
                what="reload")
    try:
        st, _, cs = getj(b, "/fhir/metadata")
        assert st == 200
        assert cs["implementation"]["description"] == "Renamed gateway B"
        assert cs["date"] != json.loads(first)["date"]
    finally:
        b.sections["organisation"]["name"] = old
        b.write_config()
        off = os.path.getsize(b.log_path)
        b.send_signal(signal.SIGHUP)
        gw.wait_for(lambda: "event=reloaded" in b.log_text()[off:],
                    what="reload")


def audit_list(g, *args):
    p = subprocess.run([gw.BINARY, "audit", "--store",
                        g.sections["store"]["path"], "list", "--format",
                        "json"] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_one_audit_record_per_read(net):
    b = net.b
    pid = patient_id(b, P1)
    # Records are committed a few milliseconds after the answer (the
    # writer gathers them), so count this test's own requests by a
    # marker in their query rather than the records before and after.
    marker = str(uuid.uuid4())[:8]
    st, h, _ = getj(b, "/fhir/Patient/%s?_pretty=%s" % (pid, marker))
    assert st == 200
    st, _, _ = getj(b, "/fhir/Goal?patient=%s&_count=7&_pretty=%s" %
                    (pid, marker))
    st, _, _ = getj(b, "/fhir/Patient/%s" % pid, cert="gp2")
    assert st == 404

    def recs():
        return [r for r in audit_list(b, "--organisation", GP1)
                if marker in json.dumps(r)]
    gw.wait_for(lambda: len(recs()) >= 2, what="audit records")
    mine = recs()
    assert len(mine) == 2, mine
    read = [r for r in mine if r["interaction"] == "read"]
    assert len(read) == 1, read
    text = json.dumps(read[0])
    assert bsn(P1) in text and "read" in text and GP1 in text
    assert h["x-request-id"] in text
    refused = audit_list(b, "--organisation", GP2)
    assert any("404" in json.dumps(r) and pid in json.dumps(r)
               for r in refused)
    # The chain holds over every record the pull API wrote.
    p = subprocess.run([gw.BINARY, "audit", "--store",
                        b.sections["store"]["path"], "verify"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


def test_report_counts_every_pull(net):
    """`pzpgw report` counts the pulls and patients read from roll-ups
    that B's writer adds once per audit batch (schema 12): after a burst
    of concurrent reads, searches and refusals by both practices (several
    records a batch) on top of this module's others, its counts equal a
    recount of B's audit records. Counted twice (trigger and writer) or
    not at all, they never would."""
    import concurrent.futures
    b = net.b
    path = b.sections["store"]["path"]
    pid = patient_id(b, P1)
    paths = ["/fhir/Patient/%s" % pid, "/fhir/Goal?patient=%s" % pid,
             "/fhir/Consent?patient.identifier=%s" %
             q(BSN_SYSTEM + "|" + bsn(P2)), "/fhir/Patient/nothing-here"]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        done = list(ex.map(lambda i: get(b, paths[i % 4],
                                         cert=("gp1", "gp2")[i % 2])[0],
                           range(48)))
    assert set(done) <= {200, 404}, done

    def recount():
        pulls = "interaction <> 'create' AND substr(interaction, 1, 9)" \
            " <> 'operator-'"
        n = {r["ura"]: r["n"] for r in query(
            path, "SELECT ura, count(*) AS n FROM audit WHERE " + pulls +
            " GROUP BY ura")}
        pats = {r["ura"]: r["n"] for r in query(
            path, "SELECT ura, count(DISTINCT bsn) AS n FROM audit WHERE " +
            pulls + " AND bsn <> '' GROUP BY ura")}
        return n, pats

    def report():
        p = subprocess.run([gw.BINARY, "report", "--store", path,
                            "--format", "json", "--exact"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        return tuple({str(o["key"]): o["count"] for o in doc[k]} for k in
                     ("pulls_by_organisation",
                      "patients_read_by_organisation"))

    # The last records are committed a few milliseconds after the
    # answers; from then on both must agree.
    gw.wait_for(lambda: report() == recount(), timeout=10,
                what="report equal to the audit records")
    n, pats = recount()
    assert n[GP1] >= 24 and n[GP2] >= 24, n
    assert pats[GP1] >= 1, pats


def test_update_makes_a_new_version(net):
    b = net.b
    pid = patient_id(b, P1)
    entries = f1_entries(P1)
    for e in entries:
        r = e["resource"]
        if r["resourceType"] == "Consent":
            r["provision"]["type"] = ("deny" if r["provision"]["type"] ==
                                      "permit" else "permit")
            changed = r["identifier"][0]["value"]
            break
    st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
    cid = [e["resource"]["id"] for e in bundle["entry"]
           if e["resource"]["identifier"][0]["value"] == changed][0]
    time.sleep(0.05)
    now = time.time()
    t0 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + \
        ".%03dZ" % (int(now * 1000) % 1000)
    net.send(wrap([GP1], entries))
    st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
    assert bundle["total"] == f1_count("Consent")
    cur = [e["resource"] for e in bundle["entry"]
           if e["resource"]["id"] == cid]
    assert len(cur) == 1 and cur[0]["meta"]["versionId"] == "2"
    others = [e["resource"]["meta"]["versionId"] for e in bundle["entry"]
              if e["resource"]["id"] != cid]
    assert set(others) == {"1"}, others
    st, _, hist = getj(b, "/fhir/Consent/%s/_history" % cid)
    assert st == 200 and hist["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in hist["entry"]] == \
        ["2", "1"]
    st, _, v1 = getj(b, "/fhir/Consent/%s/_history/1" % cid)
    assert v1["provision"]["type"] != cur[0]["provision"]["type"]
    # Polling: what is new since t0 is exactly the changed Consent.
    st, _, hist = getj(b, "/fhir/_history?_since=" + q(t0))
    assert st == 200, hist
    ids = [(e["resource"]["resourceType"], e["resource"]["id"],
            e["resource"]["meta"]["versionId"]) for e in hist["entry"]]
    assert ids == [("Consent", cid, "2")], ids
    # gp2 polls nothing of it.
    st, _, hist = getj(b, "/fhir/_history?_since=" + q(t0), cert="gp2")
    assert st == 200 and not hist.get("entry")


def all_pages(g, first, cert="gp1", between=None):
    seen, url, pages = [], first, 0
    while url:
        st, _, bundle = getj(g, url, cert=cert)
        assert st == 200, bundle
        seen.extend(e["resource"]["id"] for e in bundle.get("entry", [])
                    if e.get("search", {"mode": "match"})["mode"] ==
                    "match")
        nxt = [l["url"] for l in bundle["link"] if l["relation"] == "next"]
        url = urllib.parse.urlsplit(nxt[0]) if nxt else None
        url = (url.path + "?" + url.query) if url else None
        pages += 1
        if between is not None and pages == 1:
            between()
    return seen, pages, bundle


def test_paging_over_250_resources(net):
    b = net.b
    net.send(wrap([GP1], many_observations(P3, 260, "p3")))
    pid = patient_id(b, P3)
    more = many_observations(P3, 5, "p3-late")

    ids, pages, last = all_pages(
        b, "/fhir/Observation?patient=%s&_count=100" % pid,
        between=lambda: net.send(wrap([GP1], more)))
    # The pages saw the search as it was at its first page.
    assert len(ids) == 260 and len(set(ids)) == 260, len(ids)
    assert pages == 3
    assert last["total"] == 260
    prev = [l for l in last["link"] if l["relation"] == "previous"]
    assert prev
    # A new search sees the later ones.
    st, _, bundle = getj(b, "/fhir/Observation?patient=%s&_count=0" % pid)
    assert bundle["total"] == 265
    # A forged or altered page link is refused, not widened.
    nxt = urllib.parse.urlsplit(
        [l["url"] for l in getj(b, "/fhir/Observation?patient=%s&_count=10"
                                % pid)[2]["link"]
         if l["relation"] == "next"][0])
    tampered = nxt.query.replace("_page=", "_page=9")
    st, _, oo = getj(b, nxt.path + "?" + tampered)
    assert st == 400, oo
    st, _, bundle = getj(b, nxt.path + "?" + nxt.query, cert="gp2")
    assert st == 400 or bundle["total"] == 0
    # _count beyond the maximum is capped at 250.
    st, _, bundle = getj(b, "/fhir/Observation?patient=%s&_count=1000" % pid)
    assert st == 200, bundle
    assert len([e for e in bundle["entry"]
                if e["search"]["mode"] == "match"]) == 250
    # History pages the same way, oldest first.
    ids, pages, _ = all_pages(b, "/fhir/Observation/_history?_count=100")
    assert pages >= 3


def test_view_social_hides_treatment_directives(net):
    b = net.b
    pid = patient_id(b, P1)
    st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
    assert bundle["total"] == f1_count("Consent")
    cid = bundle["entry"][0]["resource"]["id"]
    b.sections["peer " + GP1]["view"] = "social"
    b.write_config()
    off = os.path.getsize(b.log_path)
    b.send_signal(signal.SIGHUP)
    gw.wait_for(lambda: "event=reloaded" in b.log_text()[off:],
                what="reload")
    try:
        st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
        assert st == 200 and bundle["total"] == 0
        st, _, _ = getj(b, "/fhir/Consent/" + cid)
        assert st == 404
        st, _, bundle = getj(b, "/fhir/Observation?patient=" + pid)
        got = {e["resource"]["meta"]["profile"][0].rsplit("/", 1)[1]
               for e in bundle["entry"]}
        assert got == {"ACP-SpecificCareWishes"}, got
        assert patient_id(b, P1) == pid
        # Includes obey the view too.
        st, _, bundle = getj(b, "/fhir/Procedure?patient=%s"
                             "&_include=Procedure:encounter" % pid)
        assert bundle["total"] == 0
        # `resources` widens the preset: treatment directives by profile.
        b.sections["peer " + GP1]["resources"] = (
            "https://fhir.iknl.nl/fhir/StructureDefinition/"
            "ACP-TreatmentDirective")
        b.write_config()
        off = os.path.getsize(b.log_path)
        b.send_signal(signal.SIGHUP)
        gw.wait_for(lambda: "event=reloaded" in b.log_text()[off:],
                    what="reload")
        st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
        assert bundle["total"] == f1_count("Consent")
    finally:
        b.sections["peer " + GP1].pop("view", None)
        b.sections["peer " + GP1].pop("resources", None)
        b.write_config()
        off = os.path.getsize(b.log_path)
        b.send_signal(signal.SIGHUP)
        gw.wait_for(lambda: "event=reloaded" in b.log_text()[off:],
                    what="reload")


def test_questionnaire_response(net):
    """The IG's method 2: the ACP form as a QuestionnaireResponse."""
    b = net.b
    with open(os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4",
                           "QuestionnaireResponse-HendrikHartman-"
                           "20201001.json")) as f:
        qr = json.load(f)
    # The Patient (unchanged, so no new version) with the contact person
    # it refers to, and the form.
    f1 = f1_entries(P1)
    pat = next(e for e in f1 if e["resource"]["resourceType"] == "Patient")
    rel = next(e for e in f1
               if e["resource"]["resourceType"] == "RelatedPerson")
    qr["subject"] = {"reference": pat["fullUrl"]}
    qr["identifier"] = {"system": "urn:ietf:rfc:3986",
                        "value": "urn:uuid:" + str(uuid.uuid4())}
    net.send(wrap([GP1], [pat, rel, {
        "fullUrl": "urn:uuid:" + str(uuid.uuid4()), "resource": qr}]))
    st, _, p = getj(b, "/fhir/Patient?identifier=" +
                    q(BSN_SYSTEM + "|" + bsn(P1)))
    assert p["entry"][0]["resource"]["meta"]["versionId"] == "1"
    pid = patient_id(b, P1)
    path = "/fhir/QuestionnaireResponse?subject=Patient/%s&questionnaire=%s" \
        % (pid, q("https://fhir.iknl.nl/fhir/Questionnaire/ACP-zib2020"))
    st, _, bundle = getj(b, path)
    assert st == 200 and bundle["total"] == 1, bundle
    got = bundle["entry"][0]["resource"]
    assert got["subject"]["reference"] == "Patient/" + pid
    assert got["item"] == qr["item"]
    st, h, data = get(b, path, accept="application/fhir+xml")
    assert st == 200, data[:300]
    assert xml_entries(data) == ({("match", "QuestionnaireResponse"): 1}, 1)
    st, _, bundle = getj(b, path, cert="gp2")
    assert bundle["total"] == 0


def test_entered_in_error_leaves_searches_not_history(net):
    b = net.b
    pid = patient_id(b, P1)
    st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
    before = bundle["total"]
    entries = f1_entries(P1)
    for e in entries:
        r = e["resource"]
        if r["resourceType"] == "Consent":
            r["status"] = "entered-in-error"
            gone = r["identifier"][0]["value"]
            break
    net.send(wrap([GP1], entries))
    st, _, bundle = getj(b, "/fhir/Consent?patient=" + pid)
    assert bundle["total"] == before - 1
    assert gone not in json.dumps(bundle)
    st, _, bundle = getj(b, "/fhir/Consent/_history?_count=250")
    cid = [e["resource"]["id"] for e in bundle["entry"]
           if e["resource"]["identifier"][0]["value"] == gone][0]
    st, _, oo = getj(b, "/fhir/Consent/" + cid)
    assert st == 410, oo
    assert oo["issue"][0]["code"] == "deleted"
    st, _, hist = getj(b, "/fhir/Consent/%s/_history" % cid)
    assert st == 200
    assert hist["entry"][0]["resource"]["status"] == "entered-in-error"
    assert len(hist["entry"]) >= 2
    # Not a match for anyone else either.
    st, _, oo = getj(b, "/fhir/Consent/" + cid, cert="gp2")
    assert st == 404


def test_chained_targets_kept_per_snapshot(net):
    """Workers keep what chained parameters resolved (the Patient of
    patient.identifier, the Device of device.type) for the next searches
    at the same snapshot, and never past it: after an update of the
    Device its old type no longer matches."""
    b, p4 = net.b, 14
    entries = f1_entries(p4)
    net.send(wrap([GP1], entries))
    pid = patient_id(b, p4)
    ident = "patient.identifier=" + q(BSN_SYSTEM + "|" + bsn(p4))
    icd, other = q(SCT + "|465460004"), q(SCT + "|72506001")

    def dus(code):
        st, _, bundle = getj(b, "/fhir/DeviceUseStatement?patient=%s"
                             "&device.type=%s" % (pid, code))
        assert st == 200, bundle
        return bundle["total"]

    def included_type():
        st, _, bundle = getj(b, "/fhir/DeviceUseStatement?patient=%s"
                             "&_include=DeviceUseStatement:device" % pid)
        assert st == 200, bundle
        return [e["resource"]["type"]["coding"][0]["code"]
                for e in bundle["entry"]
                if e["search"]["mode"] == "include"]

    before = b.metric("pzpgw_pull_resolve_cached_total") or 0
    for _ in range(6):
        st, _, by_bsn = getj(b, "/fhir/Observation?" + ident)
        st2, _, by_id = getj(b, "/fhir/Observation?patient=" + pid)
        assert st == st2 == 200
        assert sorted(e["resource"]["id"] for e in by_bsn["entry"]) == \
            sorted(e["resource"]["id"] for e in by_id["entry"])
        assert by_bsn["total"] == f1_count("Observation")
        assert (dus(icd), dus(other)) == (1, 0)
        assert included_type() == ["465460004"]
    after = b.metric("pzpgw_pull_resolve_cached_total") or 0
    # 24 resolutions, at most one store read per worker for each target.
    assert after - before >= 6, (before, after)
    for e in entries:
        if e["resource"]["resourceType"] == "Device":
            e["resource"]["type"]["coding"][0]["code"] = "72506001"
            e["resource"]["type"]["coding"][0].pop("display", None)
    net.send(wrap([GP1], entries))
    for _ in range(4):
        assert (dus(icd), dus(other)) == (0, 1)
        assert included_type() == ["72506001"]


def test_notified_gp_runs_the_tasks_searches(pki, tmp_path):
    """Notified pull end to end: the Task B posts to gp1's notify URL
    names searches that gp1 then runs against B, each answered with the
    data of the message that caused it."""
    from fake_receiver import FakeReceiver
    fake = FakeReceiver(pki, cert="gp1").start()
    a = b = None
    try:
        b = gateway_b(pki, tmp_path)
        b.sections["peer " + GP1]["notify"] = \
            "https://localhost:%d/pzp/notify" % fake.port
        b.start()
        a = gateway_a(pki, tmp_path, {GP1: (b.port, B_URA)})
        start_a(a)
        p = Poster(a)
        st, _, data = p.post(wrap([GP1], f1_entries(P1)))
        p.close()
        assert st == 202, data[:300]
        gw.wait_for(lambda: len(fake.received) >= 1, timeout=30,
                    what="the Task")
        task = fake.received[0].json()
        urls = [i["valueUrl"] for i in task["input"]]
        assert urls and urls[0].startswith("Patient?identifier=")
        got = {}
        for url in urls:
            st, _, bundle = getj(b, "/fhir/" + url)
            assert st == 200, (url, bundle)
            for e in bundle.get("entry", []):
                if e["search"]["mode"] == "match":
                    t = e["resource"]["resourceType"]
                    got[t] = got.get(t, 0) + 1
        for t in ("Patient", "Consent", "Observation", "Procedure"):
            assert got.get(t), (t, got, urls)
        assert got["Consent"] >= f1_count("Consent")
    finally:
        fake.stop()
        for g in (a, b):
            if g is not None:
                g.stop()
