"""End-to-end tests of `pzpgw transform`: the README's example run as
written (in a temporary directory, the source tree's test data), the
report, the round trip, XML in and out, refusals and usage errors with
their exit statuses."""
import json
import os
import re
import subprocess

BIN = os.environ.get("PZPGW", "build/release/pzpgw")
SRC = os.environ.get("PZPGW_SRCDIR", os.getcwd())
DATA = os.path.join(SRC, "tests", "data", "valid")
R4_TD = os.path.join(DATA, "r4", "pzp-1.0.0-rc1",
                     "Consent-F1-ACP-TreatmentDirective-305351004.json")
STU3_JA_MAAR = os.path.join(
    DATA, "stu3",
    "converted-Consent-ACP-TreatmentDirective-HospitalAdmission-Pat2.json")


def env():
    return dict(os.environ, PZPGW_SCHEMAS=os.path.join(SRC, "schemas"),
                PATH=os.path.dirname(os.path.abspath(BIN)) + os.pathsep +
                os.environ.get("PATH", ""))


def run(*args, cwd=None):
    return subprocess.run([os.path.abspath(BIN), *args], capture_output=True,
                          text=True, env=env(), cwd=cwd, timeout=120)


def readme_block():
    """The sh block of the README marked for this test."""
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- test_transform\.py runs this block as written -->\n"
                  r"```sh\n(.*?)```", text, re.S)
    assert m, "README has no block marked for test_transform.py"
    return m.group(1)


def test_readme_example(tmp_path):
    # The block names tests/data/... relative to the source tree: run it
    # in a scratch directory that has that path.
    os.symlink(os.path.join(SRC, "tests"), tmp_path / "tests")
    p = subprocess.run(["sh", "-e", "-c", readme_block()], cwd=tmp_path,
                       capture_output=True, text=True, env=env(),
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "consent-stu3.json: valid, 0 errors" in p.stdout
    stu3 = json.loads((tmp_path / "consent-stu3.json").read_text())
    assert stu3["meta"]["profile"] == [
        "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
        "ACP-TreatmentDirective"]
    permitted = stu3["modifierExtension"][0]["valueCodeableConcept"]
    assert permitted["coding"][0]["code"] == "JA"
    assert stu3["except"] == [{"type": "permit"}]
    assert stu3["category"][0]["coding"][0]["code"] == "11291000146105"
    assert "provision" not in stu3 and "scope" not in stu3
    # every loss is in the report with its input FHIRPath
    loss = json.loads((tmp_path / "loss.json").read_text())
    assert loss["resourceType"] == "OperationOutcome"
    exprs = {i["expression"][0] for i in loss["issue"]}
    assert "Consent.provision.actor[0].reference" in exprs
    assert "Consent.provision.actor[1].reference" in exprs
    assert all(i["severity"] == "warning" for i in loss["issue"])
    # and back: the decision, codes, identifier and dates as they were
    orig = json.loads(open(R4_TD, encoding="utf-8").read())
    back = json.loads((tmp_path / "consent-r4.json").read_text())
    assert back["provision"]["type"] == orig["provision"]["type"]
    assert back["provision"]["code"] == orig["provision"]["code"]
    assert back["identifier"] == orig["identifier"]
    assert back["dateTime"] == orig["dateTime"]
    assert back["category"] == orig["category"]
    assert back["scope"] == orig["scope"]
    v = run("validate", str(tmp_path / "consent-r4.json"))
    assert v.returncode == 0, v.stdout


def test_deterministic_and_stdout_only(tmp_path):
    a = run("transform", "--to", "r4", STU3_JA_MAAR)
    b = run("transform", "--to", "r4", STU3_JA_MAAR)
    assert a.returncode == 0 and a.stderr == ""
    assert a.stdout == b.stdout
    out = json.loads(a.stdout)
    spec = out["modifierExtension"][0]
    assert spec["url"].endswith("ext-TreatmentDirective2.SpecificationOther")
    assert spec["valueString"].startswith("Alleen als de pati")
    assert "type" not in out["provision"]


def test_xml_out_and_in(tmp_path):
    x = run("transform", "--to", "stu3", "--format", "xml", R4_TD)
    assert x.returncode == 0, x.stderr
    assert x.stdout.startswith('<Consent xmlns="http://hl7.org/fhir">')
    (tmp_path / "c.xml").write_text(x.stdout)
    v = run("validate", "--fhir", "stu3", str(tmp_path / "c.xml"))
    assert v.returncode == 0, v.stdout
    # XML in, version told from the STU3 profile, JSON out
    j = run("transform", "--to", "r4", str(tmp_path / "c.xml"))
    direct = run("transform", "--to", "r4", "--from", "stu3",
                 str(tmp_path / "c.xml"))
    assert j.returncode == 0, j.stderr
    assert j.stdout == direct.stdout
    assert json.loads(j.stdout)["provision"]["type"] == "permit"


def test_refused_exit_1(tmp_path):
    f = tmp_path / "sr.json"
    f.write_text('{"resourceType":"ServiceRequest","status":"active"}')
    p = run("transform", "--to", "stu3", "--from", "r4", "--report",
            str(tmp_path / "rep.json"), str(f))
    assert p.returncode == 1
    assert p.stdout == ""
    assert "refused: ServiceRequest" in p.stderr
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["issue"][0]["severity"] == "error"
    assert rep["issue"][0]["code"] == "not-supported"


def test_usage_and_io_exit_2(tmp_path):
    assert run("transform", R4_TD).returncode == 2            # no --to
    assert run("transform", "--to", "r5", R4_TD).returncode == 2
    assert run("transform", "--to", "r4", "--format", "yaml",
               R4_TD).returncode == 2
    p = run("transform", "--to", "r4", str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "missing.json" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Consent",')
    p = run("transform", "--to", "r4", str(bad))
    assert p.returncode == 2 and "bad.json:1:" in p.stderr
    # nothing tells the version
    plain = tmp_path / "plain.json"
    plain.write_text('{"resourceType":"Basic","code":{"text":"note"}}')
    p = run("transform", "--to", "r4", str(plain))
    assert p.returncode == 2 and "--from" in p.stderr
    assert run("transform", "--to", "r4", "--from", "stu3",
               str(plain)).returncode == 0
    h = run("help", "transform")
    assert h.returncode == 0 and "--report FILE" in h.stdout


def organ_donation_stu3(tmp_path, code):
    """The STU3 OrganDonationChoiceRegistration example with its value
    coded code (SNOMED)."""
    src = os.path.join(
        DATA, "stu3",
        "converted-Observation-ACP-OrganDonationChoiceRegistration-Pat1.json")
    with open(src, encoding="utf-8") as f:
        d = json.load(f)
    d["valueCodeableConcept"] = {"coding": [{
        "system": "http://snomed.info/sct", "code": code}]}
    f = tmp_path / "organ.json"
    f.write_text(json.dumps(d))
    return f


def test_output_the_validator_rejects_is_refused(tmp_path):
    # A value outside R4's required binding: no rule maps it and no mark
    # fills it. Before the check the R4 form was written (exit 0) with a
    # report silent about it; now it is refused, naming the output element.
    f = organ_donation_stu3(tmp_path, "385432009")
    rep = tmp_path / "rep.json"
    p = run("transform", "--to", "r4", "--report", str(rep), str(f))
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout == ""
    assert ("refused: Observation.value.ofType(CodeableConcept): the R4 "
            "output would break this") in p.stderr
    assert "'385432009'" in p.stderr
    # the input breaks the same binding in STU3: the reader is told so
    assert "the input is not valid STU3 either" in p.stderr
    errors = [i for i in json.loads(rep.read_text())["issue"]
              if i["severity"] == "error"]
    assert [i["expression"] for i in errors] == [
        ["Observation.value.ofType(CodeableConcept)"]]
    # --no-check writes it; pzpgw validate then rejects what was written
    p = run("transform", "--to", "r4", "--no-check", str(f))
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out.json"
    out.write_text(p.stdout)
    v = run("validate", "--fhir", "r4", str(out))
    assert v.returncode == 1 and "385432009" in v.stdout


def test_exit_0_output_passes_the_validator(tmp_path):
    # Every converted example of the source tree: exit 0, and pzpgw
    # validate of the target accepts the output.
    for rel, to in (("r4/pzp-1.0.0-rc1", "stu3"), ("stu3", "r4")):
        d = os.path.join(DATA, rel)
        for name in sorted(os.listdir(d))[:8]:
            p = run("transform", "--to", to, "--from",
                    "r4" if to == "stu3" else "stu3",
                    os.path.join(d, name))
            assert p.returncode == 0, name + ": " + p.stderr
            out = tmp_path / ("out-" + name)
            out.write_text(p.stdout)
            v = run("validate", "--fhir", to, str(out))
            assert v.returncode == 0, name + ": " + v.stdout


def test_missing_required_element_marked_and_reported(tmp_path):
    # A ContactPerson without patient: STU3 requires RelatedPerson.patient
    # and no rule has anything to put there. Before the check the STU3
    # output lacked it silently (pzpgw validate rejected it); now it is
    # marked data-absent-reason and reported at the OUTPUT element.
    src = os.path.join(DATA, "r4", "pzp-1.0.0-rc1",
                       "RelatedPerson-F1-ACP-ContactPerson-MichielHartman.json")
    with open(src, encoding="utf-8") as f:
        d = json.load(f)
    del d["patient"]
    f = tmp_path / "rp.json"
    f.write_text(json.dumps(d))
    rep = tmp_path / "rep.json"
    p = run("transform", "--to", "stu3", "--report", str(rep), str(f))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["patient"] == {"extension": [{
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "unknown"}]}
    marks = [i for i in json.loads(rep.read_text())["issue"]
             if i["expression"] == ["RelatedPerson.patient"]]
    assert len(marks) == 1 and marks[0]["severity"] == "warning"
    assert "marked data-absent-reason 'unknown'" in marks[0]["diagnostics"]
    o = tmp_path / "out.json"
    o.write_text(p.stdout)
    v = run("validate", "--fhir", "stu3", str(o))
    assert v.returncode == 0, v.stdout


def test_stu3_xml_input_same_as_json(tmp_path):
    # STU3 in XML reads as its JSON does: each R4 example converted to
    # STU3 (JSON and XML) converts back to the same R4 (member order
    # aside: the XML writer puts elements in their definition's order);
    # told from the content where its STU3 form says the version (a
    # claimed STU3 profile), with --from otherwise.
    d = os.path.join(DATA, "r4", "pzp-1.0.0-rc1")
    told = 0
    for name in sorted(os.listdir(d)):
        src = os.path.join(d, name)
        j = run("transform", "--from", "r4", "--to", "stu3", src)
        x = run("transform", "--from", "r4", "--to", "stu3", "--format",
                "xml", src)
        assert j.returncode == 0 and x.returncode == 0, name
        (tmp_path / "s.json").write_text(j.stdout)
        (tmp_path / "s.xml").write_text(x.stdout)
        back_j = run("transform", "--from", "stu3", "--to", "r4",
                     str(tmp_path / "s.json"))
        back_x = run("transform", "--from", "stu3", "--to", "r4",
                     str(tmp_path / "s.xml"))
        assert back_j.returncode == 0, name + ": " + back_j.stderr
        assert back_x.returncode == 0, name + ": " + back_x.stderr
        assert json.loads(back_x.stdout) == json.loads(back_j.stdout), name
        if "/pzp/stu3/" in j.stdout:
            guess = run("transform", "--to", "r4", str(tmp_path / "s.xml"))
            assert guess.returncode == 0, name + ": " + guess.stderr
            assert guess.stdout == back_x.stdout, name
            told += 1
    assert told >= 15
