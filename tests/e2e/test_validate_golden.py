"""Every verdict stays the same while the validator gets faster (issue 14):
`pzpgw validate --format json` on every FHIR file under tests/data (valid
and invalid examples, the test IGs' conformance resources, the XML and
signature samples), with the options each folder needs, must print the
OperationOutcome of tests/data/validate/golden.jsonl byte for byte (one
line per file: the file's path under tests/data, a tab, the outcome as the
CLI prints it). The golden file was written by the commit before the
first speed change (ddd7279); a change that alters a verdict, a message,
an expression, a position or the order of the issues fails here.

A deliberate change of findings rewrites it, reviewed in the diff:
PZPGW_GOLDEN_WRITE=1 python3 -m pytest tests/e2e/test_validate_golden.py
"""
import glob
import os
import subprocess

BIN = os.environ.get("PZPGW", "build/release/pzpgw")
SRC = os.environ.get("PZPGW_SRCDIR", os.getcwd())
DATA = os.path.join(SRC, "tests", "data")
GOLDEN = os.path.join(DATA, "validate", "golden.jsonl")


def data(*parts):
    return os.path.join(DATA, *parts)


def files(pattern):
    return sorted(glob.glob(data(pattern), recursive=True))


def groups():
    """(options, files) per folder; every file once."""
    g = [
        ([], files("valid/r4/**/*.json")),
        (["--fhir", "stu3"], files("valid/stu3/*.json")),
        ([], files("invalid/r4/*.json")),
        (["--ig", data("validate", "ig"), "--detect"],
         files("invalid/r4-ig/*.json")),
        (["--fhir", "stu3"], files("invalid/stu3/*.json")),
        (["--ig", data("validate", "ig")], files("validate/*.json")),
        ([], files("xml/*.xml") + files("sign/*.json")
         + files("rules/**/*.json") + files("rules/**/*.xml")),
    ]
    # profile slicing on references, where the walk takes a claimed
    # profile as met and checks that afterwards (validate.c conforms)
    g.append((["--ig", data("validate", "ig-speed")],
              files("validate/speed/*.json")))
    # the test IGs: their own resources validated with them loaded
    for ig in ("ig", "ig-apply", "ig-ext", "ig-msg", "ig-speed"):
        g.append((["--ig", data("validate", ig)],
                  files("validate/%s/*.json" % ig)
                  + files("validate/%s/*.xml" % ig)))
    return g


def outcomes():
    """The lines `path<TAB>outcome` for every file, in group order."""
    env = dict(os.environ, PZPGW_SCHEMAS=os.path.join(SRC, "schemas"))
    lines = []
    for opts, fs in groups():
        assert fs, "no files for %s" % opts
        p = subprocess.run([BIN, "validate", "--format", "json", *opts, *fs],
                           capture_output=True, text=True, env=env,
                           timeout=300)
        assert p.returncode in (0, 1), p.stderr
        out = p.stdout.splitlines()
        assert len(out) == len(fs), (len(out), len(fs), p.stderr)
        for f, o in zip(fs, out):
            lines.append("%s\t%s" % (os.path.relpath(f, DATA), o))
    return lines


def test_every_example_keeps_its_outcome():
    got = outcomes()
    if os.environ.get("PZPGW_GOLDEN_WRITE") == "1":
        with open(GOLDEN, "w", encoding="utf-8") as f:
            f.write("\n".join(got) + "\n")
    with open(GOLDEN, encoding="utf-8") as f:
        want = f.read().splitlines()
    assert len(got) == len(want), "got %d files, want %d" % (
        len(got), len(want))
    bad = [(g.split("\t")[0], g, w) for g, w in zip(got, want) if g != w]
    for name, g, w in bad[:5]:
        print("%s\n  got  %s\n  want %s" % (name, g[:2000], w[:2000]))
    assert not bad, "%d of %d outcomes differ (first: %s)" % (
        len(bad), len(got), bad[0][0])


def test_the_golden_file_covers_invalid_and_valid_cases():
    """The comparison means something: errors and warnings are in it."""
    with open(GOLDEN, encoding="utf-8") as f:
        text = f.read()
    assert text.count('"severity":"error"') > 100
    assert text.count('"severity":"warning"') > 100
    assert text.count("\n") > 200
