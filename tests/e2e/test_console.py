"""End-to-end tests of the operator console on the admin listener.

A real daemon on loopback serves the pages; its store is filled with known
rows through sqlite3 (the Store helper of test_queue_cli.py) while it
runs. Checked: every page and its security headers (CSP, nosniff,
no-referrer, no-store), the SVG charts' number of points and bars, that
no patient key, BSN or content reaches a page, CSRF and token refusals,
an operator action with its confirmation step and its audit record, the
validation playground, and the time limit on store reads.
"""
import http.client
import json
import os
import re
import subprocess
import urllib.parse

import pytest

import gw
from test_queue_cli import DAY, SECRET, Store

CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; "
       "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
R = gw.URA["gp2"]  # a configured peer whose endpoint does not answer
PATIENT = "PATIENT-KEY-MARKER"
BSN = "999999990"


class Console:
    """An HTTP client of the console that keeps its cookies."""

    def __init__(self, g, bearer=None):
        self.g = g
        self.cookies = {}
        self.bearer = bearer

    def request(self, method, path, form=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.g.admin_port,
                                          timeout=30)
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join("%s=%s" % kv
                                       for kv in self.cookies.items())
        if self.bearer is not None:
            hdrs["Authorization"] = "Bearer " + self.bearer
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read().decode("utf-8", "replace")
            for k, v in resp.getheaders():
                if k.lower() == "set-cookie":
                    name, _, rest = v.partition("=")
                    value = rest.split(";")[0]
                    if value:
                        self.cookies[name] = value
                    else:
                        self.cookies.pop(name, None)
            return resp.status, {k.lower(): v for k, v in
                                 resp.getheaders()}, data
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def csrf(self, page="/playground"):
        status, _, body = self.get(page)
        m = re.search(r'name="csrf" value="([0-9a-f]{64})"', body)
        assert m, (status, body[:500])
        return m.group(1)


def start(pki, tmp_path, **over):
    g = gw.Gateway(pki, str(tmp_path), **over)
    g.sections["peer " + R] = {
        "name": "gp2 <b>&amp; co</b>", "allow": "pull, validate",
        "endpoint": "https://127.0.0.1:%d/fhir" % gw.free_port()}
    return g.start()


def fill(g):
    s = Store(g.sections["store"]["path"])
    outcome = json.dumps({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid",
                   "expression": ["Bundle.entry[0].resource"],
                   "diagnostics": "patient %s is unknown here" % BSN}]})
    s.add("0dead0000-0000-4000-8000-000000000001", [R], patient=PATIENT,
          state="dead", attempts=3, last_status=422,
          last_error="rejected: " + SECRET + " " + BSN, outcome=outcome)
    for i in range(6):
        s.add("0de1ed000-0000-4000-8000-00000000000%d" % i, [R],
              patient=PATIENT, state="delivered", attempts=1,
              delivered_at=gw.time.time() * 1000)
    return s


DEAD = "0dead0000-0000-4000-8000-000000000001"


@pytest.fixture
def console(pki, tmp_path):
    g = start(pki, tmp_path)
    s = fill(g)
    yield g, s
    g.stop()
    s.db.close()


def check_headers(h):
    assert h["content-security-policy"] == CSP
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"


def test_pages_headers_charts_and_no_patient_data(console):
    g, s = console
    for i in range(2):  # 2 messages three days ago: a day of "<5"
        s.add("0a1d0000%d-0000-4000-8000-000000000000" % i, [R],
              patient=PATIENT, accepted_at=gw.time.time() * 1000 - 3 * DAY)
    c = Console(g)
    pages = {}
    for path in ("/", "/queue", "/queue?state=dead", "/usage",
                 "/usage?by=hour", "/playground",
                 "/queue/row?id=%s&receiver=%s" % (DEAD, R)):
        status, h, body = c.get(path)
        assert status == 200, (path, body[:300])
        assert h["content-type"] == "text/html; charset=utf-8"
        check_headers(h)
        # nothing that identifies a patient or carries content
        assert PATIENT not in body and SECRET not in body
        assert BSN not in body, path
        # no address outside the gateway in any page
        assert not re.search(r'(src|href|action)="(https?:)?//', body)
        pages[path] = body
    ov = pages["/"]
    svg24 = re.search(r'<svg[^>]*id="chart-24h".*?</svg>', ov, re.S).group(0)
    assert svg24.count('class="pt"') == 24
    assert len(re.search(r'points="([^"]*)"', svg24).group(1).split()) == 24
    svg30 = re.search(r'<svg[^>]*id="chart-30d".*?</svg>', ov, re.S).group(0)
    assert svg30.count('class="bar"') == 30
    titles = re.findall(r"<title>([^<]*)</title></rect>", svg30)
    assert titles[-1].endswith(": 7") and titles[-4].endswith(": &lt;5")
    assert all(t.endswith(": 0") for t in titles[:-4]), titles
    # 7 messages accepted in the last hour: the last point says so
    assert ": 7</title></circle>" in svg24
    assert 'id="depth"' in ov and "dead" in ov
    # the peer's name is escaped, never markup
    assert "gp2 &lt;b&gt;&amp;amp; co&lt;/b&gt;" in pages["/queue"]
    assert "<b>" not in pages["/queue"]
    assert DEAD in pages["/queue?state=dead"]
    assert "0de1ed" not in pages["/queue?state=dead"]
    row = pages["/queue/row?id=%s&receiver=%s" % (DEAD, R)]
    assert "[number]" in row and "Bundle.entry[0].resource" in row
    assert 'id="act-replay"' in row and 'id="act-hold"' not in row
    assert pages["/usage"].count('class="bar"') >= 1
    # the CSV download is report_write's CSV
    status, h, body = c.get("/usage.csv")
    assert status == 200 and h["content-type"].startswith("text/csv")
    assert "messages_by_receiver" in body and PATIENT not in body
    # assets from the binary
    status, h, css = c.get("/assets/console.css")
    assert status == 200 and h["content-type"].startswith("text/css")
    status, h, js = c.get("/assets/console.js")
    assert status == 200 and "javascript" in h["content-type"]
    assert c.get("/assets/nope.js")[0] == 404
    assert c.get("/queue?state=bogus")[0] == 400
    assert c.get("/nope")[0] == 404
    # the console worker runs niced (CONSOLE_NICE), the rest is not
    nices = []
    for tid in os.listdir("/proc/%d/task" % g.proc.pid):
        with open("/proc/%d/task/%s/stat" % (g.proc.pid, tid)) as f:
            nices.append(int(f.read().rsplit(")", 1)[1].split()[16]))
    assert nices.count(10) == 1 and nices.count(0) == len(nices) - 1, nices


def test_csrf_refused_and_replay_with_confirmation_audited(console):
    g, s = console
    c = Console(g)
    form = {"id": DEAD, "receiver": R, "action": "replay"}
    # no session cookie at all
    status, h, body = c.request("POST", "/queue/act", form=form)
    assert status == 403
    check_headers(h)
    # a session but no token, then a wrong one
    c.get("/")
    assert c.request("POST", "/queue/act", form=form)[0] == 403
    bad = dict(form, csrf="0" * 64)
    assert c.request("POST", "/queue/act", form=bad)[0] == 403
    # another session's token does not fit this session
    other = Console(g)
    stolen = other.csrf()
    assert c.request("POST", "/queue/act",
                     form=dict(form, csrf=stolen))[0] == 403
    assert s.row(DEAD, R)["state"] == "dead"
    # the confirmation step
    status, _, confirm = c.get("/queue/act?action=replay&id=%s&receiver=%s"
                               % (DEAD, R))
    assert status == 200 and 'id="confirm"' in confirm
    assert s.row(DEAD, R)["state"] == "dead"  # a GET changes nothing
    token = re.search(r'name="csrf" value="([0-9a-f]{64})"',
                      confirm).group(1)
    status, h, _ = c.request("POST", "/queue/act",
                             form=dict(form, csrf=token))
    assert status == 303, _
    assert h["location"].startswith("/queue/row?id=" + DEAD)
    row = s.row(DEAD, R)
    assert row["state"] in ("due", "inflight") and row["replays"] == 1
    # a second replay is refused: the row is no longer dead or delivered
    # (unless the deliverer already gave up on it)
    rec = audit(g, "operator-replay")
    assert rec["organisation"] == R
    assert "console 127.0.0.1 loopback" in json.dumps(rec)
    assert DEAD in rec["query"]


def audit(g, interaction):
    def find():
        p = subprocess.run([gw.BINARY, "audit", "--store",
                            g.sections["store"]["path"], "--format", "json",
                            "list"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        recs = [r for r in json.loads(p.stdout)
                if r.get("interaction") == interaction]
        return recs[0] if recs else None
    return gw.wait_for(find, what="audit record " + interaction)


def test_playground_shows_findings(console):
    g, _ = console
    c = Console(g)
    token = c.csrf()
    bad = {"resourceType": "Patient", "gender": "nope",
           "birthDate": "yesterday"}
    status, h, body = c.request("POST", "/playground", form={
        "csrf": token, "version": "r4", "resource": json.dumps(bad)})
    assert status == 200, body[:300]
    check_headers(h)
    assert 'id="verdict" class="bad"' in body
    assert re.search(r'<mark class="path">Patient\.(gender|birthDate)',
                     body), body
    assert "sev-error" in body
    # XML is taken too
    xml = ('<Patient xmlns="http://hl7.org/fhir"><gender value="nope"/>'
           '</Patient>')
    status, _, body = c.request("POST", "/playground", form={
        "csrf": token, "version": "r4", "resource": xml})
    assert status == 200 and "Patient.gender" in body
    # no CSRF token: refused, nothing validated
    status, _, body = c.request("POST", "/playground", form={
        "resource": json.dumps(bad)})
    assert status == 403 and "mark" not in body


def test_token_login_bearer_and_audit_names_token(pki, tmp_path):
    tok = tmp_path / "console.token"
    tok.write_text("s3cret-console-token\n")
    os.chmod(tok, 0o600)
    g = start(pki, tmp_path, admin__token_file=str(tok))
    s = fill(g)
    try:
        c = Console(g)
        status, h, body = c.get("/")
        assert status == 401 and 'id="login"' in body
        assert h["www-authenticate"].startswith("Bearer")
        check_headers(h)
        assert c.get("/queue")[0] == 401
        assert Console(g, bearer="wrong").get("/")[0] == 401
        assert Console(g, bearer="s3cret-console-token").get("/")[0] == 200
        # the login form: wrong token, then the right one
        token = c.csrf("/login")
        status, _, body = c.request("POST", "/login", form={
            "csrf": token, "token": "guess"})
        assert status == 401 and 'id="problem"' in body
        assert "pzc_auth" not in c.cookies
        status, h, _ = c.request("POST", "/login", form={
            "csrf": token, "token": "s3cret-console-token"})
        assert status == 303
        assert "HttpOnly" in h["set-cookie"]
        assert "SameSite=Strict" in h["set-cookie"]
        assert "s3cret" not in h["set-cookie"]
        status, _, body = c.get("/")
        assert status == 200 and "/logout" in body
        # an action with the token is audited as such
        status, _, confirm = c.get(
            "/queue/act?action=replay&id=%s&receiver=%s" % (DEAD, R))
        t = re.search(r'name="csrf" value="([0-9a-f]{64})"',
                      confirm).group(1)
        status, _, _ = c.request("POST", "/queue/act", form={
            "csrf": t, "id": DEAD, "receiver": R, "action": "replay"})
        assert status == 303
        assert "127.0.0.1 token" in json.dumps(audit(g, "operator-replay"))
        assert "s3cret" not in g.log_text()
        # log out: the cookie goes
        status, _, _ = c.request("POST", "/logout", form={"csrf": t})
        assert status == 303 and "pzc_auth" not in c.cookies
        assert c.get("/")[0] == 401
        # health and metrics stay open for probes
        assert g.admin("/healthz")[0] == 200
    finally:
        g.stop()
        s.db.close()


def test_token_file_readable_by_others_refused(pki, tmp_path):
    tok = tmp_path / "console.token"
    tok.write_text("abc\n")
    os.chmod(tok, 0o644)
    g = gw.Gateway(pki, str(tmp_path), admin__token_file=str(tok))
    g.write_config()
    p = subprocess.run([gw.BINARY, "check-config", "-c", g.conf],
                       capture_output=True, text=True)
    assert p.returncode != 0
    assert "token_file" in p.stderr + p.stdout
    assert "chmod 600" in p.stderr + p.stdout


def test_time_limit_answers_503(pki, tmp_path):
    g = start(pki, tmp_path, admin__time_limit="1ms")
    s = Store(g.sections["store"]["path"])
    s.db.execute("BEGIN")
    for i in range(20000):
        s.add("0aaa%05d-0000-4000-8000-000000000000" % i, [R],
              patient="p%d" % (i % 50), state="delivered", attempts=1,
              delivered_at=gw.time.time() * 1000)
    s.db.execute("COMMIT")
    try:
        c = Console(g)
        status, h, body = c.get("/usage")
        assert status == 503, body[:300]
        assert "time_limit" in body
        check_headers(h)
        # the daemon still answers at once
        assert g.admin("/healthz")[0] == 200
    finally:
        g.stop()
        s.db.close()


def test_console_on_postgresql(pg, pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path))
    gw.use_postgres(g, pg)
    g.sections["peer " + R] = {
        "name": "gp2", "allow": "pull, validate",
        "endpoint": "https://127.0.0.1:%d/fhir" % gw.free_port()}
    g.start()
    url = g.sections["store"]["url"]
    now = int(gw.time.time() * 1000)
    try:
        seq = pg.sql(url, (
            "INSERT INTO messages (id, direction, sender_ura, bundle_system,"
            " bundle_value, patient_key, fhir_version, document, sha256,"
            " accepted_at, answer_status) VALUES ('%s', 'outbound',"
            " '90000002', 'urn:ietf:rfc:3986', 'urn:uuid:x', '%s', '4.0.1',"
            " '\\x7b7d', 'ab', %d, 202) RETURNING seq") %
            (DEAD, PATIENT, now - 5000))[0][0]
        pg.sql(url, "INSERT INTO outbox (message_seq, receiver_ura,"
               " patient_key, state, attempts, next_attempt_at, last_status)"
               " VALUES (%s, '%s', '%s', 'dead', 3, %d, 422)"
               % (seq, R, PATIENT, now))
        c = Console(g)
        status, h, body = c.get("/")
        assert status == 200, body[:300]
        check_headers(h)
        assert body.count('class="bar"') == 30
        status, _, body = c.get("/queue?state=dead")
        assert status == 200 and DEAD in body and PATIENT not in body
        status, _, confirm = c.get(
            "/queue/act?action=replay&id=%s&receiver=%s" % (DEAD, R))
        t = re.search(r'name="csrf" value="([0-9a-f]{64})"',
                      confirm).group(1)
        status, _, _ = c.request("POST", "/queue/act", form={
            "csrf": t, "id": DEAD, "receiver": R, "action": "replay"})
        assert status == 303
        state, replays = pg.sql(url, "SELECT state, replays FROM outbox"
                                " WHERE message_seq = %s" % seq)[0]
        assert state in ("due", "inflight") and replays == "1"
        rec = gw.wait_for(lambda: pg.sql(
            url, "SELECT ura, cert_issuer FROM audit WHERE interaction ="
            " 'operator-replay'"), what="audit record")
        assert rec[0] == [R, "console 127.0.0.1 loopback"]
    finally:
        g.stop()


def host_address():
    """A non-loopback address of this host, or None."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet: picks a route
        a = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if a.startswith("127.") else a


def test_other_addresses_need_a_token(pki, tmp_path):
    addr = host_address()
    if addr is None:
        pytest.skip("this host has no address other than loopback")
    g = gw.Gateway(pki, str(tmp_path), admin__address="0.0.0.0")
    g.start()
    try:
        def get(host):
            conn = http.client.HTTPConnection(host, g.admin_port,
                                              timeout=10)
            try:
                conn.request("GET", "/queue")
                r = conn.getresponse()
                return r.status, r.read().decode()
            finally:
                conn.close()
        status, body = get(addr)
        assert status == 403 and "token_file" in body
        assert get("127.0.0.1")[0] == 200
        # health and metrics are not the console's to refuse
        conn = http.client.HTTPConnection(addr, g.admin_port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        g.stop()
