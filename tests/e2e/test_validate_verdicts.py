"""End-to-end tests of `pzpgw validate` verdicts where the HL7 reference
validator is the measure (issue 14): which profiles apply, Bundle rules,
extensions and references. The profiles and IGs under
tests/data/validate/ were written for these tests from the FHIR
specification text."""
import json
import os
import subprocess

BIN = os.environ.get("PZPGW", "build/release/pzpgw")
SRC = os.environ.get("PZPGW_SRCDIR", os.getcwd())
DATA = os.path.join(SRC, "tests", "data", "validate")
APPLY = os.path.join(DATA, "ig-apply")
AP = "http://example.org/fhir/apply/StructureDefinition/"


def run(*args, doc=None):
    env = dict(os.environ, PZPGW_SCHEMAS=os.path.join(SRC, "schemas"))
    return subprocess.run(
        [BIN, "validate", "--format", "json", *args, "-"],
        input=json.dumps(doc), capture_output=True, text=True, env=env,
        timeout=120)


def outcome(p):
    assert p.returncode in (0, 1), p.stdout + p.stderr
    return json.loads(p.stdout)["issue"]


def errors(p):
    return [(i["code"], (i.get("expression") or ["-"])[0], i["diagnostics"])
            for i in outcome(p) if i["severity"] in ("error", "fatal")]


def loinc(code):
    return {"coding": [{"system": "http://loinc.org", "code": code}]}


def heart_rate(**kw):
    o = {"resourceType": "Observation", "status": "final",
         "code": loinc("8867-4")}
    o.update(kw)
    return o


# ---- which profiles apply ----

def test_ig_profile_is_not_guessed_without_detect():
    # fits apply-heart-rate's code pattern but has no value: only a
    # guessed profile would find fault with it
    doc = heart_rate(dataAbsentReason={"text": "not measured"})
    p = run("--ig", APPLY, doc=doc)
    assert p.returncode == 0, p.stdout
    assert "detected" not in p.stdout
    p = run("--ig", APPLY, "--detect", doc=doc)
    assert p.returncode == 1, p.stdout
    infos = [i["diagnostics"] for i in outcome(p)
             if i["code"] == "informational"]
    assert any(AP + "apply-heart-rate" in d and "--detect" in d
               for d in infos), infos


def test_no_guessing_when_a_profile_is_claimed():
    with open(os.path.join(SRC, "tests", "data", "valid", "r4",
                           "pzp-1.0.0-rc1",
                           "Procedure-F1-ACP-Procedure-01-10-2020.json"),
              encoding="utf-8") as f:
        doc = json.load(f)
    doc["meta"] = {"profile": ["http://example.org/fhir/not-loaded"]}
    p = run(doc=doc)
    assert "detected" not in p.stdout
    assert any(i["severity"] == "warning" and "is not known" in
               i["diagnostics"] for i in outcome(p)), p.stdout


def test_ig_global_profile_applies():
    pat = {"resourceType": "Patient", "gender": "male"}
    p = run("--ig", APPLY, doc=pat)
    assert p.returncode == 1, p.stdout
    errs = errors(p)
    assert [e[:2] for e in errs] == [("required", "Patient.birthDate")], errs
    assert "birthDate" in errs[0][2]
    pat["birthDate"] = "1950-01-01"
    assert run("--ig", APPLY, doc=pat).returncode == 0
    # a global profile applies to the entries of a Bundle as well
    bdl = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:6f1e0c1a-6bde-4b8e-9d7e-0c1d2e3f4a5b",
         "resource": {"resourceType": "Patient"}}]}
    errs = errors(run("--ig", APPLY, doc=bdl))
    assert [e[:2] for e in errs] == [
        ("required", "Bundle.entry[0].resource.ofType(Patient).birthDate")
    ], errs


def test_profile_option_beside_meta_profile():
    pat = {"resourceType": "Patient", "birthDate": "1950-01-01",
           "meta": {"profile": [AP + "apply-patient-gender"]}}
    p = run("--ig", APPLY, "--profile", AP + "apply-patient", doc=pat)
    errs = errors(p)
    assert p.returncode == 1
    assert len(errs) == 1 and "gender" in errs[0][2], errs
    del pat["meta"]
    assert run("--ig", APPLY, "--profile", AP + "apply-patient",
               doc=pat).returncode == 0


def entry(n, res):
    return {"fullUrl": "urn:uuid:00000000-0000-4000-8000-%012d" % n,
            "resource": res}


def test_entry_profiles_are_candidates():
    bdl = {"resourceType": "Bundle", "type": "collection",
           "meta": {"profile": [AP + "apply-bundle"]},
           "entry": [
               entry(1, {"resourceType": "Patient",
                         "birthDate": "1950-01-01"}),
               entry(2, heart_rate(valueQuantity={"value": 60})),
               entry(3, {"resourceType": "Observation", "status": "final",
                         "code": loinc("48767-8"),
                         "note": [{"text": "fine"}]})]}
    p = run("--ig", APPLY, doc=bdl)
    assert p.returncode == 0, p.stdout
    # the same candidates listed per type ("Patient" with one profile,
    # "Observation" with two): every type's profiles count
    bdl["meta"]["profile"] = [AP + "apply-bundle-typed"]
    p = run("--ig", APPLY, doc=bdl)
    assert p.returncode == 0, p.stdout
    bdl["meta"]["profile"] = [AP + "apply-bundle"]
    # fits none of the candidates: the findings of the one of its type
    bdl["entry"][1]["resource"] = heart_rate()
    errs = errors(run("--ig", APPLY, doc=bdl))
    assert errs and all(e[1].startswith("Bundle.entry[1]") for e in errs), \
        errs
    # a resource type no candidate constrains: one error
    bdl["entry"][1]["resource"] = {"resourceType": "Practitioner"}
    errs = errors(run("--ig", APPLY, doc=bdl))
    assert len(errs) == 1 and "not allowed here" in errs[0][2], errs


# ---- Bundles ----

def bundle(btype, *entries, **kw):
    b = {"resourceType": "Bundle", "type": btype}
    if entries:
        b["entry"] = [{"fullUrl": u, "resource": r} for u, r in entries]
    b.update(kw)
    return b


def patient(pid, version=None):
    p = {"resourceType": "Patient", "id": pid}
    if version is not None:
        p["meta"] = {"versionId": version}
    return p


def message(focus):
    return {"resourceType": "MessageHeader", "id": "h",
            "eventCoding": {"system": "http://zorg.test/events",
                            "code": "x"},
            "source": {"endpoint": "http://zorg.test/fhir"},
            "focus": [{"reference": focus}]}


# not example.org: example URLs are errors outside examples (issue 14)
BASE = "http://zorg.test/fhir/"


def test_fullurl_may_repeat_with_another_version():
    u = BASE + "Patient/p"
    p = run(doc=bundle("collection", (u, patient("p", "1")),
                       (u, patient("p", "2"))))
    assert p.returncode == 0, p.stdout
    errs = errors(run(doc=bundle("collection", (u, patient("p", "1")),
                                 (u, patient("p", "2")),
                                 (u, patient("p", "1")))))
    assert [e[:2] for e in errs] == [
        ("invalid", "Bundle.entry[2].fullUrl")], errs
    assert "entry 0" in errs[0][2]


def test_references_resolve_only_where_fhir_demands_it():
    mh = message("Patient/elsewhere")
    for btype in ("collection", "searchset", "transaction"):
        doc = bundle(btype, (BASE + "MessageHeader/h", mh))
        if btype == "transaction":
            doc["entry"][0]["request"] = {"method": "PUT",
                                          "url": "MessageHeader/h"}
        if btype == "searchset":
            doc["entry"][0]["search"] = {"mode": "match"}
        p = run(doc=doc)
        assert p.returncode == 0, (btype, p.stdout)
    doc = bundle("message", (BASE + "MessageHeader/h", mh),
                 timestamp="2026-12-05T06:00:00Z")
    errs = errors(run(doc=doc))
    assert [e[:2] for e in errs] == [
        ("not-found", "Bundle.entry[0].resource.ofType(MessageHeader)"
         ".focus[0]")], errs
    # a urn: can only name an entry: it resolves in every Bundle type
    doc = bundle("collection", (BASE + "MessageHeader/h",
                                message("urn:uuid:"
                                        "4b1f1e2a-33c4-4d5e-8f60-"
                                        "718293a4b5c6")))
    assert [e[0] for e in errors(run(doc=doc))] == ["not-found"]


def test_link_relations_once():
    links = [{"relation": "self", "url": BASE + "Patient?a=1"},
             {"relation": "next", "url": BASE + "Patient?a=1&p=2"},
             {"relation": "alternate", "url": BASE + "x1"},
             {"relation": "alternate", "url": BASE + "x2"}]
    doc = bundle("searchset", link=links)
    p = run(doc=doc)
    assert p.returncode == 0, p.stdout
    links.append({"relation": "next", "url": BASE + "Patient?a=1&p=3"})
    errs = errors(run(doc=doc))
    assert [e[:2] for e in errs] == [
        ("invalid", "Bundle.link[4].relation")], errs


# ---- extensions ----

EXTIG = os.path.join(DATA, "ig-ext")
EX = "http://example.org/fhir/ext/StructureDefinition/"


def with_ext(res, url, **kw):
    res = dict(res)
    res["extension"] = [dict({"url": url, "valueString": "x"}, **kw)]
    return res


def issue_rows(p):
    return [(i["severity"], i["code"], (i.get("expression") or ["-"])[0])
            for i in outcome(p) if i["severity"] != "information"]


def test_unknown_extension_error_only_in_hl7_namespace():
    pat = {"resourceType": "Patient"}
    p = run(doc=with_ext(pat, "http://hl7.org/fhir/StructureDefinition/"
                              "patient-no-such-thing"))
    assert p.returncode == 1
    assert ("error", "structure", "Patient.extension[0]") in issue_rows(p)
    p = run(doc=with_ext(pat, "https://example.invalid/fhir/"
                              "StructureDefinition/shoe-size"))
    assert p.returncode == 0, p.stdout
    assert ("warning", "structure", "Patient.extension[0]") in issue_rows(p)


VS = {"resourceType": "ValueSet", "status": "draft"}
LIB = {"resourceType": "Library", "status": "draft",
       "type": {"coding": [{"system": "http://terminology.hl7.org/"
                            "CodeSystem/library-type",
                            "code": "logic-library"}]}}
CAPS = {"resourceType": "CapabilityStatement", "status": "draft",
        "date": "2026-12-05", "kind": "instance", "fhirVersion": "4.0.1",
        "format": ["json"], "implementation": {"description": "x"}}


def ext_errors(doc):
    return [e for e in errors(run("--ig", EXTIG, doc=doc))
            if "not allowed to be used" in e[2]]


def test_abstract_context_types_match_concrete_resources():
    assert ext_errors(with_ext(VS, EX + "ext-canonical")) == []
    assert ext_errors(with_ext(CAPS, EX + "ext-canonical")) == []
    assert ext_errors(with_ext(LIB, EX + "ext-metadata")) == []
    # CapabilityStatement is canonical, not metadata; Patient neither
    assert len(ext_errors(with_ext(CAPS, EX + "ext-metadata"))) == 1
    assert len(ext_errors(with_ext({"resourceType": "Patient"},
                                   EX + "ext-canonical"))) == 1
    vs = dict(VS, useContext=[{
        "code": {"system": "http://terminology.hl7.org/CodeSystem/"
                 "usage-context-type", "code": "task"},
        "valueCodeableConcept": {"text": "x"},
        "extension": [{"url": EX + "ext-use-context",
                       "valueString": "x"}]}])
    assert ext_errors(vs) == []


def test_version_specific_use_contexts():
    pat = {"resourceType": "Patient"}
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"text": "x"}}
    # the Patient context is for FHIR 5.0 on, the Observation one for 4.x
    assert len(ext_errors(with_ext(pat, EX + "ext-versioned"))) == 1
    assert ext_errors(with_ext(obs, EX + "ext-versioned")) == []
    errs = ext_errors(with_ext(pat, EX + "ext-r5-only"))
    assert len(errs) == 1 and "none in this FHIR version" in errs[0][2], errs


# ---- references ----

def subject_bundle(pat, ref="urn:uuid:00000000-0000-4000-8000-000000000001"):
    obs = {"resourceType": "Observation", "status": "final",
           "meta": {"profile": [AP + "apply-subject"]},
           "code": {"text": "x"}, "subject": {"reference": ref}}
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        entry(1, pat), entry(2, obs)]}


def rows(p):
    return sorted((i["severity"], i["code"],
                   (i.get("expression") or ["-"])[0])
                  for i in outcome(p)
                  if i["severity"] != "warning" and
                  "detected" not in i["diagnostics"])


SUBJ = "Bundle.entry[1].resource.ofType(Observation).subject"
PAT = "Bundle.entry[0].resource.ofType(Patient)"


def test_target_profile_checked_on_resolvable_targets():
    good = {"resourceType": "Patient", "gender": "male",
            "birthDate": "1950"}
    assert run("--ig", APPLY, doc=subject_bundle(good)).returncode == 0
    # fine on its own, but not what the target profile asks (gender)
    p = run("--ig", APPLY, doc=subject_bundle(
        {"resourceType": "Patient", "birthDate": "1950"}))
    assert rows(p) == [("error", "structure", SUBJ)], p.stdout
    # a target outside the Bundle: its profile cannot be judged
    p = run("--ig", APPLY, doc=subject_bundle(good, "Patient/elsewhere"))
    assert p.returncode == 0, p.stdout


def test_claimed_target_profile_is_judged_at_the_target():
    pat = {"resourceType": "Patient", "birthDate": "1950",
           "meta": {"profile": [AP + "apply-patient-gender"]}}
    p = run("--ig", APPLY, doc=subject_bundle(pat))
    assert rows(p) == [("error", "required", PAT + ".gender")], p.stdout


def test_no_cascade_from_a_target_with_its_own_errors():
    # no birthDate (the IG's global Patient profile) and no gender (the
    # target profile): the Patient's own error, and one information at
    # the reference pointing there
    p = run("--ig", APPLY, doc=subject_bundle({"resourceType": "Patient"}))
    assert rows(p) == [("error", "required", PAT + ".birthDate"),
                       ("information", "informational", SUBJ)], p.stdout
    info = [i["diagnostics"] for i in outcome(p)
            if i["code"] == "informational" and
            "detected" not in i["diagnostics"]]
    assert "Bundle entry 0" in info[0] and "errors of its own" in info[0]
