#!/usr/bin/python3
"""Build the invalid validator cases from the valid examples.

Each case copies one valid example and breaks exactly one rule; the issue
it must raise is listed in manifest.tsv (file, severity, code, expression),
which tests/unit/test_validate.c and tests/e2e/test_validate_cli.py check
exactly. Run from the repository root: /usr/bin/python3
tests/data/invalid/make_invalid.py (the output is deterministic).
"""
import copy
import json
import os

ROOT = os.path.dirname(os.path.abspath(__file__))
VALID = os.path.join(ROOT, "..", "valid")

R4_OLD = "r4/pzp-0.1.3/"
R4_NEW = "r4/pzp-1.0.0-rc1/"
STU3 = "stu3/"


def load(rel):
    with open(os.path.join(VALID, rel), encoding="utf-8") as f:
        return json.load(f)


def entry(bundle, rtype, nth=0):
    """The nth entry of a Bundle holding a resource of rtype."""
    seen = 0
    for i, e in enumerate(bundle["entry"]):
        if e["resource"]["resourceType"] == rtype:
            if seen == nth:
                return i, e
            seen += 1
    raise KeyError(rtype)


CASES = []


def case(name, src):
    def deco(fn):
        CASES.append((name, src, fn))
        return fn
    return deco


# ---- JSON form -------------------------------------------------------------

@case("r4/unknown-element.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["favouriteColour"] = "blue"


@case("r4/null-value.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["birthDate"] = None


@case("r4/empty-object.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["subject"] = {}


@case("r4/empty-array.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["identifier"] = []


@case("r4/empty-string.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["statusDate"] = ""


@case("r4/array-for-single.json", R4_NEW + "Procedure-F1-ACP-Procedure-01-10-2020.json")
def _(d):
    d["status"] = [d["status"]]


@case("r4/single-for-array.json", R4_NEW + "Procedure-F1-ACP-Procedure-01-10-2020.json")
def _(d):
    d["identifier"] = d["identifier"][0]


@case("r4/wrong-json-type.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["subject"] = "Patient/x"


@case("r4/boolean-as-string.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["active"] = "true"


@case("r4/unknown-resource-type.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["resourceType"] = "Gaol"


@case("r4/no-resource-type.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    del d["resourceType"]


@case("r4/primitive-extension-not-object.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["_statusDate"] = "x"


@case("r4/choice-type-not-allowed.json", R4_NEW + "Observation-F1-ACP-SpecificCareWishes.json")
def _(d):
    d["valueBoolean"] = True


# ---- primitive formats -----------------------------------------------------

@case("r4/date-not-in-calendar.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["birthDate"] = "1950-02-30"


@case("r4/instant-without-zone.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["statusDate"] = "2020-10-01"  # a date: valid
    d["meta"]["lastUpdated"] = "2020-10-01T10:00:00"


@case("r4/id-bad-chars.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["id"] = "goal_1"


@case("r4/code-whitespace.json", R4_NEW + "Procedure-F1-ACP-Procedure-01-10-2020.json")
def _(d):
    d["status"] = " completed"


@case("r4/uri-whitespace.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["identifier"][0]["system"] = "https://example.org/a b"


@case("r4/integer-out-of-range.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["multipleBirthInteger"] = 3000000000


@case("r4/decimal-as-string.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["multipleBirthInteger"] = "2"


@case("r4/instant-without-seconds.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["meta"]["lastUpdated"] = "2020-10-01T10:00Z"


# ---- cardinality -----------------------------------------------------------

@case("r4/missing-status.json", R4_NEW + "Consent-F1-ACP-TreatmentDirective-116762002.json")
def _(d):
    del d["status"]


@case("r4/missing-subject-goal.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    del d["subject"]


# ---- fixed and pattern -----------------------------------------------------

@case("r4/procedure-wrong-code.json", R4_NEW + "Procedure-F1-ACP-Procedure-01-10-2020.json")
def _(d):
    for c in d["code"]["coding"]:
        c["code"] = "387713003"


# ---- bindings --------------------------------------------------------------

@case("r4/status-not-in-valueset.json", R4_NEW + "Consent-F1-ACP-TreatmentDirective-116762002.json")
def _(d):
    d["status"] = "finished"


@case("r4/gender-not-in-valueset.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["gender"] = "man"


@case("r4/advance-directive-wrong-scope.json", "r4/pzp-1.0.0-rc1-own/Consent-P1-ACP-AdvanceDirective-DNR.json")
def _(d):
    d["scope"]["coding"][0]["code"] = "treatment"


@case("r4/preferred-place-wrong-value-type.json", "r4/pzp-1.0.0-rc1-own/Observation-P1-ACP-PreferredPlaceOfDeath-Home.json")
def _(d):
    del d["valueCodeableConcept"]
    d["valueString"] = "thuis"


@case("r4/reference-url-type-not-allowed.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["subject"]["reference"] = "Practitioner/F1-ACP-HealthProfessional-Practitioner-DrVanHuissen"


@case("r4/reference-type-mismatch.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["subject"]["type"] = "Group"


# ---- Bundle rules and references -------------------------------------------

@case("r4/bundle-duplicate-fullurl.json", R4_OLD + "bundle-F1.json")
def _(d):
    d["entry"][2]["fullUrl"] = d["entry"][1]["fullUrl"]


@case("r4/bundle-unresolved-reference.json", R4_OLD + "bundle-F1.json")
def _(d):
    i, e = entry(d, "Goal")
    e["resource"]["subject"]["reference"] = "urn:uuid:00000000-0000-4000-8000-000000000000"


@case("r4/bundle-wrong-target-type.json", R4_OLD + "bundle-F1.json")
def _(d):
    pi, p = entry(d, "Practitioner")
    i, e = entry(d, "Goal")
    e["resource"]["subject"]["reference"] = p["fullUrl"]


# ---- slicing, extensions, invariants, contained, detection ----------------

@case("r4/slice-category-missing.json", R4_NEW + "Consent-F1-ACP-TreatmentDirective-116762002.json")
def _(d):
    d["category"][0]["coding"][0]["code"] = "59284002"


# An unknown extension is an error in the FHIR specification's own
# namespace only (elsewhere a warning, as the HL7 validator's default).
@case("r4/extension-unknown.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["extension"].append({"url": "http://hl7.org/fhir/StructureDefinition/patient-shoe-size",
                           "valueInteger": 44})


@case("r4/extension-value-type.json", R4_OLD + "Consent-F2-ACP-TreatmentDirective-305351004.json")
def _(d):
    ext = d["extension"][0]
    for k in list(ext):
        if k.startswith("value"):
            del ext[k]
    ext["valueString"] = "Encounter 2020-10-01"


@case("r4/extension-value-and-extension.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    d["extension"][0]["valueBoolean"] = True


@case("r4/invariant-consent-policy.json", R4_NEW + "Consent-F1-ACP-TreatmentDirective-116762002.json")
def _(d):
    del d["policy"]


@case("r4/contained-not-found.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["subject"]["reference"] = "#nothere"


@case("r4/detected-profile-wrong-status.json", R4_NEW + "Procedure-F1-ACP-Procedure-01-10-2020.json")
def _(d):
    del d["meta"]
    d["status"] = "done"


@case("r4/bundle-entry-invalid.json", R4_OLD + "bundle-F1.json")
def _(d):
    i, e = entry(d, "Consent", 1)
    e["resource"]["status"] = "unknown-status"


@case("r4/profile-for-other-type.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    d["meta"]["profile"] = ["https://api.iknl.nl/docs/pzp/r4/StructureDefinition/ACP-Procedure"]


@case("r4/old-generation-wrong-code.json", R4_OLD + "Observation-F1-ACP-OtherImportantInformation.json")
def _(d):
    d["code"]["coding"][0]["code"] = "1234567"


# ---- extension contexts ----------------------------------------------------

LEGALLY_R4 = "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/ext-LegallyCapable-MedicalTreatmentDecisions"
REASON_FOR_ENDING = "http://nictiz.nl/fhir/StructureDefinition/ext-TreatmentDirective2.ReasonForEnding"


@case("r4/extension-context-wrong-resource.json", R4_NEW + "Goal-F1-ACP-Medical-Policy-Goal.json")
def _(d):
    # context Patient: not allowed on a Goal
    d["extension"] = [{"url": LEGALLY_R4,
                       "extension": [{"url": "legallyCapable", "valueBoolean": True}]}]


@case("r4/extension-context-wrong-element.json", R4_NEW + "Patient-F1-ACP-Patient-HendrikHartman.json")
def _(d):
    # humanname-own-name (context HumanName.family) moved from _family to
    # the HumanName itself
    n = d["name"][0]
    n["extension"].append(n.pop("_family")["extension"][0])


@case("r4/extension-context-not-provision.json", R4_NEW + "Consent-F1-ACP-TreatmentDirective-116762002.json")
def _(d):
    # context Consent.provision: not allowed on the Consent itself
    d.setdefault("extension", []).append({"url": REASON_FOR_ENDING,
                                          "valueString": "herzien"})


# ---- STU3 ------------------------------------------------------------------

@case("stu3/unknown-element.json", STU3 + "converted-Patient-ACP-Patient-HendrikHartman-Pat1.json")
def _(d):
    d["favouriteColour"] = "blue"


@case("stu3/date-not-in-calendar.json", STU3 + "converted-Patient-ACP-Patient-HendrikHartman-Pat1.json")
def _(d):
    d["birthDate"] = "1950-13-01"


@case("stu3/missing-status.json", STU3 + "converted-Procedure-ACP-Procedure-Pat1.json")
def _(d):
    del d["status"]


@case("stu3/status-not-in-valueset.json", STU3 + "converted-Procedure-ACP-Procedure-Pat1.json")
def _(d):
    d["status"] = "finished"


@case("stu3/verification-without-verified.json", STU3 + "converted-Consent-ACP-TreatmentDirective-Other-Pat1.json")
def _(d):
    for e in d["extension"]:
        if e["url"].endswith("zib-TreatmentDirective-Verification"):
            e["extension"] = [x for x in e["extension"] if x["url"] != "Verified"]


@case("stu3/treatment-permitted-missing.json", STU3 + "converted-Consent-ACP-TreatmentDirective-Other-Pat1.json")
def _(d):
    del d["modifierExtension"]


# ---- against the small test profiles of tests/data/validate/ig (--ig) ----
# (files under r4-ig/ are validated with --ig tests/data/validate/ig)

IG_BUNDLE = "../validate/bundle-ok.json"
CAT = "http://terminology.hl7.org/CodeSystem/observation-category"


def obs(d):
    return entry(d, "Observation")[1]["resource"]


@case("r4-ig/slice-closed.json", IG_BUNDLE)
def _(d):
    obs(d)["category"].append({"coding": [{"system": CAT, "code": "social-history"}]})


@case("r4-ig/slice-ordered.json", IG_BUNDLE)
def _(d):
    obs(d)["category"].reverse()


@case("r4-ig/slice-max.json", IG_BUNDLE)
def _(d):
    c = obs(d)["category"]
    c.insert(1, copy.deepcopy(c[0]))


@case("r4-ig/slice-open-at-end.json", IG_BUNDLE)
def _(d):
    obs(d)["component"].reverse()


@case("r4-ig/slice-min.json", IG_BUNDLE)
def _(d):
    del obs(d)["component"][0]


@case("r4-ig/slice-exists-closed.json", IG_BUNDLE)
def _(d):
    del obs(d)["note"][0]["authorString"]


@case("r4-ig/target-profile.json", IG_BUNDLE)
def _(d):
    entry(d, "Patient")[1]["resource"]["gender"] = "male"


@case("r4-ig/slice-type-resolve.json", IG_BUNDLE)
def _(d):
    o = obs(d)
    o["performer"] = [copy.deepcopy(o["subject"])]


@case("r4-ig/binding-required.json", IG_BUNDLE)
def _(d):
    p = entry(d, "Patient")[1]["resource"]
    p["maritalStatus"]["coding"][0]["code"] = "W"


@case("r4-ig/choice-type-restricted.json", IG_BUNDLE)
def _(d):
    obs(d)["valueString"] = "120/80"


@case("r4-ig/fullurl-not-the-id.json", IG_BUNDLE)
def _(d):
    i, p = entry(d, "Patient")
    p["fullUrl"] = "http://fhir.zorg.test/fhir/Patient/p9"
    obs(d)["subject"]["reference"] = p["fullUrl"]


@case("r4-ig/pattern-code.json", IG_BUNDLE)
def _(d):
    obs(d)["code"]["coding"][0]["system"] = "http://snomed.info/sct"


# minValue[x] / maxValue[x] / maxLength (test profiles: systolic component
# 40..300 mm[Hg], effectiveDateTime from 2000-01-01T00:00:00+01:00 to 2099,
# note.text at most 20 characters, Patient.name.family at most 10,
# birthDate from 1900-01-01 to 2100, multipleBirthInteger 1..9)

def pat(d):
    return entry(d, "Patient")[1]["resource"]


@case("r4-ig/max-value-quantity.json", IG_BUNDLE)
def _(d):
    obs(d)["component"][0]["valueQuantity"]["value"] = 300.5


@case("r4-ig/min-value-quantity.json", IG_BUNDLE)
def _(d):
    obs(d)["component"][0]["valueQuantity"]["value"] = 39


@case("r4-ig/min-value-datetime-zone.json", IG_BUNDLE)
def _(d):
    # 22:30Z is 23:30 at +01:00: half an hour before the minimum
    obs(d)["effectiveDateTime"] = "1999-12-31T22:30:00Z"


@case("r4-ig/max-value-datetime.json", IG_BUNDLE)
def _(d):
    obs(d)["effectiveDateTime"] = "2100-01-01T00:00:00Z"


@case("r4-ig/max-length-string.json", IG_BUNDLE)
def _(d):
    obs(d)["note"][0]["text"] = "a" * 21


@case("r4-ig/max-length-characters.json", IG_BUNDLE)
def _(d):
    # 11 characters (16 bytes in UTF-8): counted as characters
    pat(d)["name"] = [{"family": "Ærnoud-Ëlsë"}, {"family": "Åkeröd-Øyën"[:10]}]


@case("r4-ig/min-value-date.json", IG_BUNDLE)
def _(d):
    pat(d)["birthDate"] = "1899-12-31"


@case("r4-ig/max-value-date-partial.json", IG_BUNDLE)
def _(d):
    pat(d)["birthDate"] = "2101-01"


@case("r4-ig/max-value-integer.json", IG_BUNDLE)
def _(d):
    pat(d)["multipleBirthInteger"] = 10


@case("r4-ig/min-value-integer.json", IG_BUNDLE)
def _(d):
    pat(d)["multipleBirthInteger"] = 0


IG_PROFILED = "../validate/bundle-profiled.json"


@case("r4-ig/bundle-slice-by-type-missing.json", IG_PROFILED)
def _(d):
    d["entry"] = [e for e in d["entry"] if e["resource"]["resourceType"] != "Observation"]


@case("r4-ig/bundle-entry-profile.json", IG_PROFILED)
def _(d):
    o = obs(d)
    del o["meta"]
    o["code"]["coding"][0]["code"] = "8867-4"


@case("r4-ig/bundle-fixed-type.json", IG_PROFILED)
def _(d):
    d["type"] = "batch"


@case("stu3/verification-missing.json", STU3 + "converted-Consent-ACP-TreatmentDirective-Other-Pat1.json")
def _(d):
    d["extension"] = [e for e in d["extension"]
                      if not e["url"].endswith("zib-TreatmentDirective-Verification")]


@case("stu3/unknown-extension.json", STU3 + "converted-Observation-ACP-SpecificCareWishes-Pat1.json")
def _(d):
    d.setdefault("extension", []).append(
        {"url": "http://hl7.org/fhir/StructureDefinition/observation-unknown", "valueString": "x"})


@case("stu3/extension-context-wrong-resource.json", STU3 + "converted-Goal-ACP-MedicalPolicyGoal-Pat1.json")
def _(d):
    d["extension"] = [{"url": "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/ext-Patient.LegallyCapableMedicalTreatmentDecisions",
                       "extension": [{"url": "legallyCapable", "valueBoolean": False}]}]


@case("stu3/gender-not-in-valueset.json", STU3 + "converted-Patient-ACP-Patient-HendrikHartman-Pat1.json")
def _(d):
    d["gender"] = "man"


@case("stu3/bad-reference-type.json", STU3 + "converted-Goal-ACP-MedicalPolicyGoal-Pat1.json")
def _(d):
    d["subject"]["reference"] = "Device/x"


def main():
    for name, src, fn in CASES:
        d = copy.deepcopy(load(src))
        fn(d)
        out = os.path.join(ROOT, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=2, ensure_ascii=False)
            f.write("\n")
    # Not JSON at all: written as text.
    raw = {
        "r4/not-json-trailing-comma.json": '{\n  "resourceType": "Patient",\n  "id": "x",\n}\n',
        "r4/not-json-duplicate-key.json": '{\n  "resourceType": "Patient",\n  "id": "a",\n  "id": "b"\n}\n',
        "r4/not-json-bad-utf8.json": None,
    }
    for name, text in raw.items():
        out = os.path.join(ROOT, name)
        if text is None:
            with open(out, "wb") as f:
                f.write(b'{"resourceType": "Patient", "id": "x\xff"}\n')
        else:
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)


if __name__ == "__main__":
    main()
