"""End-to-end tests of `pzpgw validate` verdicts where the HL7 reference
validator is the measure (issue 14, second half): narrative, example
URLs, messages a person can act on, quantities. Cases written from the
FHIR specification text."""
import json
import os
import subprocess

BIN = os.environ.get("PZPGW", "build/release/pzpgw")
SRC = os.environ.get("PZPGW_SRCDIR", os.getcwd())


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


# ---- narrative ----

def listing(div):
    return {"resourceType": "List", "status": "current", "mode": "working",
            "text": {"status": "generated",
                     "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                            + div + "</div>"}}


def test_narrative_html_entities_are_errors():
    ok = run(doc=listing("<p>Brand&#174; &amp; caf&#xE9;</p>"))
    assert ok.returncode == 0, ok.stdout
    bad = run(doc=listing("<p>Brand&reg;</p>"))
    assert bad.returncode == 1
    errs = errors(bad)
    assert len(errs) == 1, errs
    assert errs[0][1] == "List.text.div"
    assert "'&reg;'" in errs[0][2] and "&#174;" in errs[0][2]


def test_narrative_scripts_and_external_references_are_errors():
    for div, part in [
            ('<a href="javascript:alert(1)">x</a>', "script URL"),
            ('<p style="background:url(https://a.test/x.png)">x</p>',
             "external reference"),
            ('<p onclick="x()">x</p>', "illegal attribute"),
            ('<script>x()</script><p>x</p>', "illegal element")]:
        p = run(doc=listing(div))
        errs = errors(p)
        assert p.returncode == 1 and len(errs) == 1, (div, errs)
        assert part in errs[0][2], (div, errs)


# ---- example URLs ----

def observation(system, ref):
    return {"resourceType": "Observation", "status": "final",
            "identifier": [{"system": system, "value": "1"}],
            "code": {"text": "x"}, "subject": {"reference": ref}}


def test_example_urls_are_errors_outside_examples():
    doc = observation("http://example.org/ids",
                      "https://example.com/fhir/Patient/1")
    errs = errors(run(doc=doc))
    assert sorted(e[:2] for e in errs) == [
        ("invalid", "Observation.identifier[0].system"),
        ("invalid", "Observation.subject.reference")], errs
    assert all("example URLs" in e[2] for e in errs)
    # told it is an example: no error
    p = run("--allow-example-urls", doc=doc)
    assert p.returncode == 0, p.stdout
    # hosts that only look alike
    ok = run(doc=observation("http://example.org.zorg.test/ids",
                             "http://notexample.com/fhir/Patient/1"))
    assert ok.returncode == 0, ok.stdout


# ---- messages a person can act on ----

MSG = os.path.join(SRC, "tests", "data", "validate", "ig-msg")
CS = "http://example.org/fhir/msg/CodeSystem/msg-warmth"


def room(method, value, when="2026-12-05T08:00:00+01:00"):
    return {"resourceType": "Observation",
            "meta": {"profile": [
                "http://example.org/fhir/msg/StructureDefinition/msg-room"]},
            "status": "final", "code": {"text": "room"},
            "method": {"coding": [{"system": CS, "code": method}]},
            "valueCodeableConcept": {"coding": [{"system": CS,
                                                 "code": value}]},
            "effectiveDateTime": when}


def test_binding_finding_quotes_code_system_title_and_choices():
    assert run("--ig", MSG, doc=room("cool", "mild")).returncode == 0
    errs = {e[1]: e[2] for e in errors(run("--ig", MSG,
                                           doc=room("hot", "boiling")))}
    small = errs["Observation.method"]
    assert "'hot'" in small and "'" + CS + "'" in small, small
    assert "'Window state'" in small, small
    assert "allowed: 'cool', 'warm'" in small, small
    six = errs["Observation.value.ofType(CodeableConcept)"]
    assert "'boiling'" in six and "'Room warmth'" in six, six
    assert "allowed: 'cold', 'cool', 'freezing', 'hot', 'mild' " \
           "(6 codes in all)" in six, six


def test_date_finding_shows_the_expected_form():
    errs = errors(run("--ig", MSG, doc=room("cool", "mild",
                                            "2026-12-05 08:00")))
    assert len(errs) == 1, errs
    assert "expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss" \
        in errs[0][2] and "e.g. 2026-12-05T08:30:00+01:00" in errs[0][2]


def test_min_severity_hides_the_rest_not_the_verdict():
    doc = room("hot", "mild")  # one error, and dom-6 (a warning)
    allsev = [i["severity"] for i in outcome(run("--ig", MSG, doc=doc))]
    assert "warning" in allsev and "error" in allsev
    p = run("--ig", MSG, "--min-severity", "error", doc=doc)
    assert p.returncode == 1
    assert [i["severity"] for i in outcome(p)] == ["error"]
    # nothing left to show: one information says so; still valid
    ok = run("--ig", MSG, "--min-severity", "error",
             doc=room("cool", "mild"))
    assert ok.returncode == 0
    assert [(i["severity"], i["code"]) for i in outcome(ok)] == [
        ("information", "informational")]
    env = dict(os.environ, PZPGW_SCHEMAS=os.path.join(SRC, "schemas"))
    t = subprocess.run([BIN, "validate", "--ig", MSG, "--min-severity",
                        "warning", "-"], input=json.dumps(doc),
                       capture_output=True, text=True, env=env, timeout=120)
    assert t.returncode == 1 and "information" not in t.stdout
    bad = subprocess.run([BIN, "validate", "--min-severity", "fatal", "-"],
                         input="{}", capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode == 2 and "--min-severity" in bad.stderr


def test_cardinality_points_at_the_element():
    doc = {"resourceType": "Observation", "code": {"text": "x"}}
    errs = errors(run(doc=doc))
    assert [e[:2] for e in errs] == [("required", "Observation.status")], \
        errs


# ---- quantities ----

UCUM = "http://unitsofmeasure.org"
PROF = "http://example.org/fhir/msg/StructureDefinition/"


def measured(profile, value, code, when=None):
    o = {"resourceType": "Observation",
         "meta": {"profile": [PROF + profile]},
         "status": "final", "code": {"text": profile},
         "valueQuantity": {"value": value, "system": UCUM, "code": code}}
    if when is not None:
        o["effectiveDateTime"] = when
    return o


def quantity_rows(doc):
    return [(i["severity"], i["code"]) for i in outcome(run("--ig", MSG,
                                                            doc=doc))
            if i["code"] in ("value", "not-supported")]


def test_quantity_limits_compared_after_unit_conversion():
    # limits 500 g .. 300 kg
    assert quantity_rows(measured("msg-weight", 70, "kg")) == []
    assert quantity_rows(measured("msg-weight", 400, "[lb_av]")) == []
    errs = errors(run("--ig", MSG,
                      doc=measured("msg-weight", 700, "[lb_av]")))
    assert len(errs) == 1 and "above the maxValueQuantity 300 kg" in \
        errs[0][2] and "(317.515 kg)" in errs[0][2], errs
    errs = errors(run("--ig", MSG, doc=measured("msg-weight", 0.4, "kg")))
    assert len(errs) == 1 and "below the minValueQuantity 500 g" in \
        errs[0][2], errs
    # temperature scales with an offset: 25 .. 45 Cel
    assert quantity_rows(measured("msg-temp", 98.6, "[degF]")) == []
    assert quantity_rows(measured("msg-temp", 310.15, "K")) == []
    errs = errors(run("--ig", MSG, doc=measured("msg-temp", 120, "[degF]")))
    assert len(errs) == 1 and "above the maxValueQuantity 45 Cel" in \
        errs[0][2], errs


def test_unit_that_cannot_be_converted_is_a_warning():
    for code in ("[iU]", "m"):
        rows = quantity_rows(measured("msg-weight", 1, code))
        assert rows == [("warning", "not-supported")] * 2, (code, rows)


def test_duration_limits_on_dates_relative_to_now():
    # effective: no earlier than 150 a before now, no later than 1 d after
    ok = measured("msg-weight", 70, "kg", "2026-12-01")
    assert quantity_rows(ok) == []
    old = errors(run("--ig", MSG, doc=measured("msg-weight", 70, "kg",
                                               "1850-01-01")))
    assert [e[1] for e in old] == ["Observation.effective.ofType(dateTime)"]
    assert "before the minValueQuantity" in old[0][2], old
    late = errors(run("--ig", MSG, doc=measured("msg-weight", 70, "kg",
                                                "2099-01-01T10:00:00Z")))
    assert len(late) == 1 and "after the maxValueQuantity" in late[0][2]
