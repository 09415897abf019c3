"""Issue 13, retries without duplicates and errors that say what to do:
`pzpgw send` prints a Bundle.identifier derived from the content, sender,
event and receivers (or --identifier), so sending the same thing twice
stores and delivers it once; a missing certificate file is named."""

import json
import os
import re
import subprocess
import time

import gw
from fake_receiver import FakeReceiver, closed_port
from test_delivery import B_URA, F1, GP1, GP2, a_rows, gateway_a, start_a

UUID8 = re.compile(r"^identifier urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}"
                   r"-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.M)


def send(a, pki, *args):
    cmd = [gw.BINARY, "send", "--gateway", "https://localhost:%d" % a.port,
           "--cert", os.path.join(pki, "hospital.crt"),
           "--key", os.path.join(pki, "hospital.key"),
           "--cacert", os.path.join(pki, "ca.pem")] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def line(out, word):
    return [ln.split(" ", 1)[1] for ln in out.splitlines()
            if ln.startswith(word + " ")]


def test_send_twice_delivers_once(pki, tmp_path):
    rcv = FakeReceiver(pki).start()
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA),
                                  GP2: (rcv.port, B_URA)})
    try:
        start_a(a)
        first = send(a, pki, "--to", GP1, F1)
        assert first.returncode == 0, first.stdout + first.stderr
        assert UUID8.search(first.stdout), first.stdout
        ident = line(first.stdout, "identifier")[0]
        mid = line(first.stdout, "message")[0]
        # Within the same second the wrapped message is identical, byte
        # for byte: the gateway answers as it did, X-Duplicate.
        quick = send(a, pki, "--to", GP1, F1)
        assert quick.returncode == 0, quick.stdout + quick.stderr
        assert line(quick.stdout, "message") == [mid]
        if "HTTP 202" in quick.stdout:
            assert "already accepted" in quick.stdout
        time.sleep(1.1)  # another Bundle.timestamp from here on
        # The same again (the answer was lost, say): the same identifier,
        # recognised, nothing new stored or delivered.
        again = send(a, pki, "--to", GP1, "--status", "--wait", "20", F1)
        assert again.returncode == 0, again.stdout + again.stderr
        assert line(again.stdout, "identifier") == [ident]
        assert line(again.stdout, "message") == [mid]
        assert "already accepted" in again.stdout
        assert line(again.stdout, "status")[0].endswith(
            "/fhir/$process-message/" + mid)
        assert "receiver %s delivered" % GP1 in again.stdout
        assert len(a_rows(a)) == 1
        assert rcv.count() == 1
        assert rcv.bodies()[0]["identifier"]["value"] == ident
        # Whitespace of the file does not count; the receivers do.
        spaced = tmp_path / "spaced.json"
        with open(F1) as f:
            spaced.write_text("\n\n" + f.read().replace(": ", ":  ") + "\n")
        r = send(a, pki, "--to", GP1, str(spaced))
        assert line(r.stdout, "identifier") == [ident], r.stdout + r.stderr
        r = send(a, pki, "--to", GP2, "--to", GP1, F1)
        assert r.returncode == 0, r.stderr
        other = line(r.stdout, "identifier")[0]
        assert other != ident
        r = send(a, pki, "--to", GP1, "--to", GP2, F1)
        assert line(r.stdout, "identifier") == [other]
        assert "already accepted" in r.stdout
        gw.wait_for(lambda: rcv.count() == 3, timeout=15, what="delivery")
        assert len(a_rows(a)) == 3  # one message, GP1 + GP2 in the second
    finally:
        a.stop()
        rcv.stop()


def test_send_with_identifier(pki, tmp_path):
    rcv = FakeReceiver(pki).start()
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    mine = "urn:uuid:0f8e3b8a-3c2e-4c55-9a1e-2b8f6c1d7e42"
    try:
        start_a(a)
        r = send(a, pki, "--to", GP1, "--identifier", mine, F1)
        assert r.returncode == 0, r.stdout + r.stderr
        assert line(r.stdout, "identifier") == [mine]
        mid = line(r.stdout, "message")[0]
        time.sleep(1.1)  # another Bundle.timestamp
        r = send(a, pki, "--to", GP1, "--identifier", mine, F1)
        assert r.returncode == 1
        assert "is message %s already" % mid in r.stderr
        gw.wait_for(lambda: rcv.count() == 1, timeout=15, what="delivery")
        assert rcv.bodies()[0]["identifier"]["value"] == mine
        assert len(a_rows(a)) == 1
        for bad in ("no spaces please", "plain", "urn:", "x" * 300):
            r = send(a, pki, "--to", GP1, "--identifier", bad, F1)
            assert r.returncode == 2 and "--identifier" in r.stderr, bad
    finally:
        a.stop()
        rcv.stop()


def test_send_names_a_missing_certificate_file(pki, tmp_path):
    missing = str(tmp_path / "nope.crt")
    r = subprocess.run(
        [gw.BINARY, "send", "--gateway", "https://localhost:1",
         "--cert", missing, "--key", os.path.join(pki, "hospital.key"),
         "--to", GP1, F1], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert missing in r.stderr and "No such file" in r.stderr, r.stderr
    assert "URA" not in r.stderr
    r = subprocess.run(
        [gw.BINARY, "send", "--gateway", "https://localhost:1",
         "--cert", os.path.join(pki, "hospital.crt"),
         "--key", str(tmp_path / "nope.key"), "--from", "90000002",
         "--to", GP1, F1], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "key (--key)" in r.stderr and "No such file" in r.stderr
    # A file that is no certificate is called that.
    bad = tmp_path / "bad.crt"
    bad.write_text("hello\n")
    r = subprocess.run(
        [gw.BINARY, "send", "--gateway", "https://localhost:1",
         "--cert", str(bad), "--key", os.path.join(pki, "hospital.key"),
         "--to", GP1, F1], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not a PEM certificate" in r.stderr


def test_send_without_answer_names_the_identifier(pki):
    r = subprocess.run(
        [gw.BINARY, "send", "--gateway",
         "https://localhost:%d" % closed_port(),
         "--cert", os.path.join(pki, "hospital.crt"),
         "--key", os.path.join(pki, "hospital.key"),
         "--cacert", os.path.join(pki, "ca.pem"), "--to", GP1, F1],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    m = re.search(r"identifier (urn:uuid:[0-9a-f-]{36})", r.stderr)
    assert m, r.stderr
    assert "again is safe" in r.stderr


def test_send_maps_findings_to_the_users_file(pki, tmp_path):
    rcv = FakeReceiver(pki).start()
    a = gateway_a(pki, tmp_path, {GP1: (rcv.port, B_URA)})
    try:
        start_a(a)
        with open(F1) as f:
            bundle = json.load(f)
        # An entry without a resource first: the message's entry numbers
        # and the file's differ.
        bundle["entry"].insert(0, {"fullUrl": "urn:uuid:" + "0" * 8 +
                                   "-0000-4000-8000-" + "0" * 12})
        idx = [i for i, e in enumerate(bundle["entry"])
               if e.get("resource", {}).get("resourceType") == "Patient"][0]
        bundle["entry"][idx]["resource"]["gender"] = "sometimes"
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(bundle, indent=2))
        want_line = [n for n, ln in enumerate(
            path.read_text().splitlines(), 1) if '"sometimes"' in ln][0]
        r = send(a, pki, "--to", GP1, str(path))
        assert r.returncode == 1 and r.stdout.startswith("HTTP 422"), \
            r.stdout + r.stderr
        hits = [ln for ln in r.stderr.splitlines()
                if "Bundle.entry[%d].resource.ofType(Patient).gender" % idx
                in ln]
        assert hits, r.stderr
        assert hits[0].startswith("%s:%d:" % (path, want_line)), hits[0]
        # One resource in a file: its own type, its own lines.
        patient = bundle["entry"][idx]["resource"]
        one = tmp_path / "patient.json"
        one.write_text(json.dumps(patient, indent=4))
        want_line = [n for n, ln in enumerate(
            one.read_text().splitlines(), 1) if '"sometimes"' in ln][0]
        r = send(a, pki, "--to", GP1, str(one))
        assert r.returncode == 1
        hits = [ln for ln in r.stderr.splitlines()
                if " at Patient.gender:" in ln]
        assert hits and hits[0].startswith("%s:%d:" % (one, want_line)), \
            r.stderr
        mine = [ln for ln in r.stderr.splitlines()
                if ln.startswith(str(one) + ":")]
        assert mine and not any("Bundle.entry[" in ln for ln in mine)
        assert rcv.count() == 0
    finally:
        a.stop()
        rcv.stop()
