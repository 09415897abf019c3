"""Issue 13: `pzpgw validate` with the wrong --fhir says which version the
file looks like."""

import glob
import os
import subprocess

import gw

STU3 = os.path.join(gw.SRCDIR, "tests", "data", "valid", "stu3",
                    "converted-Consent-ACP-AdvanceDirective-DNR-Pat1.json")
R4 = sorted(glob.glob(os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4",
                                   "pzp-0.1.3", "Communication-*.json")))[0]


def validate(*args):
    return subprocess.run([gw.BINARY, "validate", *args],
                          capture_output=True, text=True, timeout=120)


def test_stu3_file_validated_as_r4_gets_a_hint():
    r = validate(STU3)
    assert r.returncode == 1
    assert "this looks like STU3" in r.stderr, r.stderr
    assert "try --fhir stu3" in r.stderr
    ok = validate("--fhir", "stu3", STU3)
    assert ok.returncode == 0 and ok.stderr == "", ok.stdout + ok.stderr


def test_r4_file_validated_as_stu3_gets_a_hint():
    r = validate("--fhir", "stu3", R4)
    assert r.returncode == 1
    assert "this looks like R4" in r.stderr and "try --fhir r4" in r.stderr
    # JSON output keeps stdout an OperationOutcome; the hint is on stderr.
    j = validate("--fhir", "stu3", "--format", "json", R4)
    assert j.stdout.lstrip().startswith("{") and "try --fhir r4" in j.stderr


def test_no_hint_for_a_file_invalid_in_both(tmp_path):
    # A file wrong under either version gets its errors, no hint.
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType":"Patient","gender":"sometimes",'
                   '"birthDate":"yesterday"}')
    for args in ([], ["--fhir", "stu3"]):
        r = validate(*args, str(bad))
        assert r.returncode == 1, r.stdout
        assert "this looks like" not in r.stderr, r.stderr
