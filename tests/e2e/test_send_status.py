"""Issue 13, "local receivers are visible": a message for an organisation
the gateway serves itself has no outbox row, yet `pzpgw send --status`
and the status URL say where it is: stored here, and when the
organisation first retrieved it through the pull API (from the audit
trail)."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import uuid

import pytest

import gw

F1 = os.path.join(gw.SRCDIR, "tests", "data", "valid", "r4", "pzp-0.1.3",
                  "bundle-F1.json")
BSN = "999911120"  # the Patient's BSN in F1
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


@pytest.fixture(scope="module")
def gateway():
    d = tempfile.mkdtemp(prefix="pzpgw-send-status-")
    pki = gw.make_pki(os.path.join(d, "pki"), extras=False)
    g = gw.Gateway(pki, tmpdir=d).start()
    yield g
    g.stop()
    shutil.rmtree(d, ignore_errors=True)


def send(g, *args):
    p = g.pki
    return subprocess.run(
        [gw.BINARY, "send", "--gateway", "https://localhost:%d" % g.port,
         "--cert", os.path.join(p, "hospital.crt"),
         "--key", os.path.join(p, "hospital.key"),
         "--cacert", os.path.join(p, "ca.pem"), *args],
        capture_output=True, text=True, timeout=120)


def field(out, name):
    """The value of send's output line "NAME value"."""
    for ln in out.splitlines():
        if ln.startswith(name + " "):
            return ln.split(" ", 1)[1]
    raise AssertionError("no %s line in %r" % (name, out))


def status(g, url):
    path = urllib.parse.urlsplit(url).path
    st, _, body = g.request("GET", path)
    assert st == 200, body
    doc = json.loads(body)
    out = {}
    for p in doc["parameter"]:
        if p["name"] != "receiver":
            continue
        parts = {q["name"]: next(v for k, v in q.items() if k != "name")
                 for q in p["part"]}
        out[parts["ura"]] = parts
    return out


def test_local_receiver_status(gateway):
    g = gateway
    r = send(g, "--to", gw.URA["gp1"], "--status", "--wait", "10", F1)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0] == "HTTP 202", r.stdout
    url = field(r.stdout, "status")
    assert [ln for ln in lines if ln.startswith("receiver ")] == [
        "receiver 90000003 stored (served by this gateway) "
        "retrieved=not-yet"], r.stdout

    got = status(g, url)
    assert set(got) == {gw.URA["gp1"]}, got
    assert got["90000003"]["state"] == "stored"
    stored_at = got["90000003"]["storedAt"]
    assert "firstRetrieved" not in got["90000003"], got

    # another organisation's pull does not count; the receiver's does
    path = "/fhir/Patient?identifier=" + urllib.parse.quote(
        BSN_SYSTEM + "|" + BSN)
    st, _, body = g.request("GET", path, cert="gp2")
    assert st == 200 and json.loads(body)["total"] == 0, body
    st, _, body = g.request("GET", path, cert="gp1")
    assert st == 200 and json.loads(body)["total"] == 1, body
    # the audit record is written by the writer thread shortly after
    first = gw.wait_for(
        lambda: status(g, url)["90000003"].get("firstRetrieved"),
        what="firstRetrieved")
    assert first >= stored_at, (first, stored_at)
    # a later read leaves the first time as it was
    st, _, _ = g.request("GET", path, cert="gp1")
    assert st == 200
    assert status(g, url)["90000003"]["firstRetrieved"] == first

    # a new message (a new identifier; the same content would be the
    # same message): retrieved only by a pull after it arrived
    r = send(g, "--to", gw.URA["gp1"], "--status", "--identifier",
             "urn:uuid:" + str(uuid.uuid4()), F1)
    assert r.returncode == 0, r.stderr
    assert ("receiver 90000003 stored (served by this gateway) "
            "retrieved=not-yet") in r.stdout.splitlines(), r.stdout


def test_two_local_receivers(gateway):
    g = gateway
    r = send(g, "--to", gw.URA["gp1"], "--to", gw.URA["gp2"], F1)
    assert r.returncode == 0, r.stderr
    url = field(r.stdout, "status")
    got = status(g, url)
    assert set(got) == {"90000003", "90000004"}, got
    assert all(v["state"] == "stored" for v in got.values()), got


def test_queue_points_to_inbox(gateway):
    """`pzpgw queue list` lists outbound rows only and says where the
    received messages are; `pzpgw inbox list` has them."""
    g = gateway
    r = send(g, "--to", gw.URA["gp2"], F1)
    assert r.returncode == 0, r.stderr
    mid = field(r.stdout, "message")
    q = subprocess.run([gw.BINARY, "queue", "-c", g.conf, "list"],
                       capture_output=True, text=True, timeout=30)
    assert q.returncode == 0, q.stderr
    assert mid not in q.stdout
    assert q.stderr == (
        "pzpgw queue list: outbound rows only (deliveries to other "
        "gateways, notifications); messages received for the "
        "organisations served here: pzpgw inbox list\n"), q.stderr
    i = subprocess.run([gw.BINARY, "inbox", "-c", g.conf, "list",
                        "--receiver", gw.URA["gp2"]],
                       capture_output=True, text=True, timeout=30)
    assert i.returncode == 0 and mid in i.stdout, (i.stdout, i.stderr)
