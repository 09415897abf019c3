"""Issue 15: the manual pages cannot drift. tests/check_man.sh (make
check-man) compares the committed pages with what the binary makes from
its help texts and key tables; a page missing a key, an option or a
command, or one groff warns about, fails it."""

import os
import re
import shutil
import subprocess

import gw

MAN_DIR = os.path.join(gw.SRCDIR, "packaging", "man")
CHECK = os.path.join(gw.SRCDIR, "tests", "check_man.sh")


def check(directory):
    return subprocess.run(["sh", CHECK, gw.BINARY, str(directory)],
                          capture_output=True, text=True, timeout=120)


def copy_pages(tmp_path):
    d = tmp_path / "man"
    shutil.copytree(MAN_DIR, d)
    return d


def drop_item(text, term):
    """The page without the tagged paragraph whose tag line is term."""
    lines = text.split("\n")
    i = lines.index(term)
    assert lines[i - 1] == ".TP"
    j = i + 1
    while not re.match(r"\.(TP|SS|SH|PP)\b", lines[j]):
        j += 1
    return "\n".join(lines[:i - 1] + lines[j:])


def test_committed_pages_are_current():
    r = check(MAN_DIR)
    assert r.returncode == 0, r.stderr
    assert "are current" in r.stdout


def test_a_key_without_its_page_text_fails(tmp_path):
    d = copy_pages(tmp_path)
    page = d / "pzpgw.conf.5"
    text = page.read_text()
    assert ".B max_request_time\n" in text
    page.write_text(drop_item(text, ".B max_request_time"))
    r = check(d)
    assert r.returncode == 1
    assert "pzpgw.conf.5 is not what the code says" in r.stderr, r.stderr
    assert "+.B max_request_time" in r.stderr


def test_an_option_without_its_page_text_fails(tmp_path):
    d = copy_pages(tmp_path)
    page = d / "pzpgw.8"
    text = page.read_text()
    page.write_text(drop_item(text, r"\fB\-\-probe\fR"))
    r = check(d)
    assert r.returncode == 1
    assert "pzpgw.8 is not what the code says" in r.stderr, r.stderr
    assert r"+\fB\-\-probe\fR" in r.stderr


def test_a_command_without_its_page_text_fails(tmp_path):
    d = copy_pages(tmp_path)
    page = d / "pzpgw.8"
    text = page.read_text()
    start = text.index(".SS transform\n")
    end = text.index(".SS ", start + 1)
    page.write_text(text[:start] + text[end:])
    r = check(d)
    assert r.returncode == 1
    assert "+.SS transform" in r.stderr, r.stderr


def test_a_page_groff_warns_about_fails(tmp_path):
    d = copy_pages(tmp_path)
    page = d / "pzpgw.conf.5"
    page.write_text(page.read_text() + ".XY not a macro\n")
    r = check(d)
    assert r.returncode == 1
    assert "groff warns on" in r.stderr and "XY" in r.stderr, r.stderr


def test_pages_render_and_name_every_key_and_command():
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    conf = subprocess.run(["man", "-l", os.path.join(MAN_DIR,
                                                     "pzpgw.conf.5")],
                          capture_output=True, text=True, env=env,
                          timeout=60)
    assert conf.returncode == 0 and conf.stderr == "", conf.stderr
    for key in ("ura", "max_body", "inbound_retention", "backoff_max",
                "server_ura", "notify", "fhir"):
        assert re.search(r"^ {7}%s\b" % key, conf.stdout, re.M), key
    # type, default and range of one key, from the key table
    assert re.search(r"max_body\n.*?Type: size.*?range 1k\.\.1G\. Default: "
                     r"10M\.", conf.stdout, re.S)
    page8 = subprocess.run(["man", "-l", os.path.join(MAN_DIR, "pzpgw.8")],
                           capture_output=True, text=True, env=env,
                           timeout=60)
    assert page8.returncode == 0 and page8.stderr == "", page8.stderr
    overview = subprocess.run([gw.BINARY, "help"], capture_output=True,
                              text=True, timeout=30).stdout
    commands = re.findall(r"^  (\S+) ", overview, re.M)
    assert len(commands) > 10
    for c in commands:
        assert re.search(r"^   %s$" % re.escape(c), page8.stdout, re.M), c


def test_help_man_takes_8_or_5():
    r = subprocess.run([gw.BINARY, "help", "--man", "7"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--man takes 8 or 5" in r.stderr


def test_command_help_option_prints_its_help():
    """`pzpgw COMMAND --help` (or -h) alone prints what `pzpgw help
    COMMAND` prints, exit 0, for every command; with other arguments the
    option stays the command's (a usage error)."""
    overview = subprocess.run([gw.BINARY, "help"], capture_output=True,
                              text=True, timeout=30).stdout
    names = re.findall(r"^  (\S+) ", overview, re.M)
    assert "report" in names and "backup" in names, overview
    for name in names:
        want = subprocess.run([gw.BINARY, "help", name], capture_output=True,
                              text=True, timeout=30)
        assert want.returncode == 0 and want.stdout, name
        for opt in ("--help", "-h"):
            got = subprocess.run([gw.BINARY, name, opt],
                                 capture_output=True, text=True, timeout=30)
            assert (got.returncode, got.stdout) == (0, want.stdout), \
                (name, opt, got.stderr)
    r = subprocess.run([gw.BINARY, "validate", "x.json", "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
