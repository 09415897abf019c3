"""End-to-end tests of `pzpgw validate`: the real binary on the project's
valid examples and invalid cases (tests/data), exit statuses, text and JSON
output, stdin, --ig, --profile, --fhir stu3 and XML input."""
import glob
import json
import os
import re
import subprocess

import pytest

BIN = os.environ.get("PZPGW", "build/release/pzpgw")
SRC = os.environ.get("PZPGW_SRCDIR", os.getcwd())
DATA = os.path.join(SRC, "tests", "data")
IG = os.path.join(DATA, "validate", "ig")


def run(*args, stdin=None):
    env = dict(os.environ, PZPGW_SCHEMAS=os.path.join(SRC, "schemas"))
    return subprocess.run([BIN, "validate", *args], input=stdin,
                          capture_output=True, text=True, env=env,
                          timeout=120)


def manifest():
    rows = {}
    with open(os.path.join(DATA, "invalid", "manifest.tsv"),
              encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, sev, code, expr = line.rstrip("\n").split("\t")
            rows.setdefault(name, []).append((sev, code, expr))
    return rows


def args_for(name):
    if name.startswith("stu3/"):
        return ["--fhir", "stu3"]
    if name.startswith("r4-ig/"):
        # these entries claim no profile: the test profiles are chosen
        # by detection, which --ig content gets only with --detect
        return ["--ig", IG, "--detect"]
    return []


def issues(outcome):
    for i in outcome["issue"]:
        yield (i["severity"], i["code"],
               (i.get("expression") or ["-"])[0])


def test_valid_r4_examples_exit_0():
    files = sorted(glob.glob(os.path.join(DATA, "valid", "r4", "**", "*.json"),
                             recursive=True))
    assert len(files) >= 55
    p = run(*files)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    assert p.stdout.count(": valid, 0 errors") == len(files)


def test_valid_stu3_examples_exit_0():
    files = sorted(glob.glob(os.path.join(DATA, "valid", "stu3", "*.json")))
    assert len(files) >= 51
    p = run("--fhir", "stu3", *files)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr


ROWS = manifest()


@pytest.mark.parametrize("name", sorted(ROWS))
def test_invalid_case(name):
    path = os.path.join(DATA, "invalid", name)
    p = run(*args_for(name), "--format", "json", path)
    assert p.returncode == 1, p.stdout + p.stderr
    got = list(issues(json.loads(p.stdout)))
    want = ROWS[name]
    got_errors = sorted(i for i in got if i[0] in ("error", "fatal"))
    want_errors = sorted(i for i in want if i[0] in ("error", "fatal"))
    assert got_errors == want_errors
    for row in want:
        assert row in got, f"want {row}, got {got}"


def test_every_invalid_file_is_in_the_manifest():
    files = {os.path.relpath(f, os.path.join(DATA, "invalid"))
             for f in glob.glob(os.path.join(DATA, "invalid", "*", "*.json"))}
    assert files == set(ROWS)


def test_text_format_lines():
    path = os.path.join(DATA, "invalid", "r4", "date-not-in-calendar.json")
    p = run(path)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    pat = re.compile(r"^(.+):(\d+):(\d+): (error|warning|information) "
                     r"(\S+): (.+)$")
    errs = [m for m in map(pat.match, lines) if m and m.group(4) == "error"]
    assert len(errs) == 1
    assert errs[0].group(1) == path
    assert errs[0].group(5) == "Patient.birthDate"
    assert int(errs[0].group(2)) > 1 and int(errs[0].group(3)) > 1
    assert lines[-1] == f"{path}: invalid, 1 error, 1 warning"


def test_stdin_and_json_output():
    with open(os.path.join(DATA, "invalid", "r4", "missing-status.json"),
              encoding="utf-8") as f:
        text = f.read()
    p = run("--format", "json", "-", stdin=text)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["resourceType"] == "OperationOutcome"
    # a missing element is reported at its own path (issue 14)
    assert ("error", "required", "Consent.status") in list(issues(out))
    assert any(i["expression"] == ["Consent.status"] and
               i["diagnostics"].startswith(
                   "Consent.status: minimum required = 1, but only found 0")
               for i in out["issue"])


def test_several_files_worst_status():
    ok = os.path.join(DATA, "valid", "r4", "pzp-1.0.0-rc1",
                      "Goal-F1-ACP-Medical-Policy-Goal.json")
    bad = os.path.join(DATA, "invalid", "r4", "id-bad-chars.json")
    p = run("--format", "json", ok, bad)
    assert p.returncode == 1
    outs = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(outs) == 2
    assert not [i for i in issues(outs[0]) if i[0] == "error"]
    assert ("error", "value", "Goal.id") in list(issues(outs[1]))


def test_forced_profile():
    doc = {"resourceType": "Procedure", "status": "completed",
           "subject": {"reference": "Patient/p"}}
    prof = "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/ACP-Procedure"
    p = run("--format", "json", "-", stdin=json.dumps(doc))
    assert p.returncode == 0, p.stdout
    p = run("--profile", prof, "--format", "json", "-",
            stdin=json.dumps(doc))
    assert p.returncode == 1
    assert ("error", "required", "Procedure.code") in \
        list(issues(json.loads(p.stdout)))


def test_detection_reported():
    with open(os.path.join(DATA, "valid", "r4", "pzp-1.0.0-rc1",
                           "Procedure-F1-ACP-Procedure-01-10-2020.json"),
              encoding="utf-8") as f:
        doc = json.load(f)
    del doc["meta"]
    p = run("-", stdin=json.dumps(doc))
    assert p.returncode == 0
    assert "detected profile https://api.iknl.nl/docs/pzp/r4/" \
        "StructureDefinition/ACP-Procedure" in p.stdout


def test_ig_profiles():
    for name in ("bundle-ok.json", "bundle-profiled.json"):
        ok = os.path.join(DATA, "validate", name)
        p = run("--ig", IG, ok)
        assert p.returncode == 0, p.stdout
    bad = os.path.join(DATA, "invalid", "r4-ig", "slice-closed.json")
    assert run("--ig", IG, bad).returncode == 1


def test_xml_input(tmp_path):
    xml = tmp_path / "patient.xml"
    xml.write_text('<Patient xmlns="http://hl7.org/fhir">\n'
                   '  <gender value="man"/>\n</Patient>\n')
    p = run("--format", "json", str(xml))
    assert p.returncode == 1
    assert ("error", "code-invalid", "Patient.gender") in \
        list(issues(json.loads(p.stdout)))


def test_not_json():
    p = run("-", stdin="{ nope")
    assert p.returncode == 1
    assert re.search(r"^stdin:1:\d+: fatal: ", p.stdout, re.M)


@pytest.mark.parametrize("args", [
    [],
    ["--fhir", "r5", "x.json"],
    ["--format", "yaml", "x.json"],
    ["--bogus", "x.json"],
])
def test_usage_errors_exit_2(args):
    p = run(*args)
    assert p.returncode == 2
    assert "usage:" in p.stderr


def test_io_errors_exit_2(tmp_path):
    p = run(str(tmp_path / "missing.json"))
    assert p.returncode == 2
    p = run("--schemas", str(tmp_path), os.path.join(
        DATA, "validate", "bundle-ok.json"))
    assert p.returncode == 2
    p = run("--profile", "http://example.org/none", os.path.join(
        DATA, "validate", "bundle-ok.json"))
    assert p.returncode == 2
    p = run("--ig", str(tmp_path / "nothing-here"), os.path.join(
        DATA, "validate", "bundle-ok.json"))
    assert p.returncode == 2
