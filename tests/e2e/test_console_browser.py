"""Browser tests of the operator console: headless Chromium driven by
Selenium (Debian's chromium, chromium-driver and python3-selenium; `make
deps` installs them) against a real daemon on loopback.

Each page is loaded and its charts counted (SVG points and bars), a dead
letter is replayed from the queue page through the confirmation step and
the row's new state and the audit record are checked, an invalid
resource is submitted in the playground (typed, and loaded from a file
by the page's script) and its finding seen, and the browser's network log
(goog:loggingPrefs performance) shows that no request left the gateway,
while its console log shows no Content-Security-Policy violation.
Screenshots go to build/screenshots/ for review.

Skipped, saying so, only when a package is missing; a browser that is
installed but does not start fails the tests.
"""
import json
import os
import shutil

import pytest

import gw
from test_console import BSN, DEAD, PATIENT, R, audit, fill, start

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    HAVE_SELENIUM = True
except ImportError:  # pragma: no cover - only without the package
    HAVE_SELENIUM = False

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = os.path.join(gw.SRCDIR, "build", "screenshots")

missing = [what for what, ok in (
    ("python3-selenium", HAVE_SELENIUM),
    ("chromium", os.path.exists(CHROMIUM)),
    ("chromium-driver", os.path.exists(DRIVER))) if not ok]
pytestmark = pytest.mark.skipif(
    bool(missing), reason="browser tests need the Debian package(s) %s "
    "(make deps installs them)" % ", ".join(missing))


@pytest.fixture(scope="module")
def site(pki, tmp_path_factory):
    g = start(pki, tmp_path_factory.mktemp("console"))
    s = fill(g)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--no-first-run",
                "--disable-extensions", "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # Chromium refuses root otherwise
    opts.set_capability("goog:loggingPrefs",
                        {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    os.makedirs(SHOTS, exist_ok=True)
    base = "http://127.0.0.1:%d" % g.admin_port
    yield g, s, driver, base
    driver.quit()
    g.stop()
    s.db.close()


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, "console-%s.png" % name))


def requests_seen(driver):
    """The URLs the browser requested since the log was last read."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def assert_local(driver, base):
    urls = requests_seen(driver)
    outside = [u for u in urls if not u.startswith(base + "/")
               and not u.startswith("data:")]
    assert outside == [], outside
    # the page's console: no blocked resource, no CSP violation
    bad = [e["message"] for e in driver.get_log("browser")
           if "Content Security Policy" in e["message"]
           or e["level"] == "SEVERE"]
    assert bad == [], bad
    return urls


def test_every_page_loads_with_its_charts(site):
    g, s, d, base = site
    requests_seen(d)
    d.get(base + "/")
    assert d.title == "Overview - pzpgw"
    assert len(d.find_elements(By.CSS_SELECTOR, "#chart-24h circle.pt")) == 24
    assert len(d.find_elements(By.CSS_SELECTOR, "#chart-30d rect.bar")) == 30
    pts = d.find_element(By.CSS_SELECTOR, "#chart-24h polyline")
    assert len(pts.get_attribute("points").split()) == 24
    # the stylesheet applied (from the binary): the bars are filled
    bar = d.find_element(By.CSS_SELECTOR, "#chart-30d rect.bar")
    assert bar.value_of_css_property("fill") == "rgb(58, 110, 165)"
    shot(d, "overview")
    urls = assert_local(d, base)
    assert base + "/assets/console.css" in urls
    assert base + "/assets/console.js" in urls
    for path, name in (("/queue", "queue"), ("/usage", "usage"),
                       ("/usage?by=hour", "usage-hour"),
                       ("/playground", "playground")):
        d.get(base + path)
        assert d.find_element(By.TAG_NAME, "h1").text
        body = d.page_source
        assert PATIENT not in body and BSN not in body
        shot(d, name)
        assert_local(d, base)
    d.get(base + "/usage")
    assert len(d.find_elements(By.CSS_SELECTOR,
                               "#messages_by_receiver rect.bar")) == 1
    assert d.find_element(By.ID, "csv").get_attribute("href").startswith(
        base + "/usage.csv")


def test_replay_a_dead_letter_from_the_queue_page(site):
    g, s, d, base = site
    requests_seen(d)
    d.get(base + "/queue?state=dead")
    rows = d.find_elements(By.CSS_SELECTOR, "#rows tr.row")
    assert [r.get_attribute("data-state") for r in rows] == ["dead"]
    rows[0].find_element(By.CSS_SELECTOR, "a.id").click()
    WebDriverWait(d, 10).until(lambda x: x.find_elements(By.ID, "msgid"))
    assert d.find_element(By.ID, "msgid").text == DEAD
    assert d.find_element(By.ID, "state-" + R).text == "dead"
    shot(d, "row-dead")
    d.find_element(By.ID, "act-replay").click()
    WebDriverWait(d, 10).until(lambda x: x.find_elements(By.ID, "confirm"))
    assert s.row(DEAD, R)["state"] == "dead"  # not before confirming
    shot(d, "confirm")
    d.find_element(By.ID, "do").click()
    WebDriverWait(d, 10).until(lambda x: "done=replay" in x.current_url)
    state = d.find_element(By.ID, "state-" + R).text
    assert state in ("due", "inflight"), state
    assert s.row(DEAD, R)["replays"] == 1
    shot(d, "row-replayed")
    rec = audit(g, "operator-replay")
    assert "console 127.0.0.1 loopback" in rec["cert_issuer"] or \
        "console 127.0.0.1 loopback" in json.dumps(rec)
    # back on the queue page the row is no longer dead
    d.get(base + "/queue?state=dead")
    assert d.find_elements(By.CSS_SELECTOR, "#rows tr.row") == []
    assert_local(d, base)


def test_playground_shows_the_finding(site, tmp_path):
    g, s, d, base = site
    requests_seen(d)
    d.get(base + "/playground")
    text = json.dumps({"resourceType": "Patient", "gender": "nope"},
                      indent=1)
    area = d.find_element(By.ID, "resource")
    area.clear()
    area.send_keys(text)
    d.find_element(By.ID, "validate").click()
    verdict = WebDriverWait(d, 10).until(
        lambda x: x.find_elements(By.ID, "verdict"))[0]
    assert "bad" in verdict.get_attribute("class")
    marks = [m.text for m in d.find_elements(By.CSS_SELECTOR,
                                             "#findings mark.path")]
    assert "Patient.gender" in marks, marks
    assert d.find_elements(By.CSS_SELECTOR, "#findings tr.sev-error")
    shot(d, "playground-finding")
    # a finding's line selects that line of the text (console.js)
    link = d.find_elements(By.CSS_SELECTOR, "#findings a.goto")
    if link:
        link[0].click()
        sel = d.execute_script(
            "var t = document.getElementById('resource');"
            "return t.value.substring(t.selectionStart, t.selectionEnd);")
        assert sel.strip() != ""
    # a file loaded by the page's script, then validated
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"resourceType": "Patient",
                             "birthDate": "yesterday"}))
    d.get(base + "/playground")
    d.find_element(By.ID, "file").send_keys(str(f))
    WebDriverWait(d, 10).until(
        lambda x: "yesterday" in x.find_element(By.ID, "resource")
        .get_attribute("value"))
    d.find_element(By.ID, "validate").click()
    WebDriverWait(d, 10).until(lambda x: x.find_elements(By.ID, "verdict"))
    marks = [m.text for m in d.find_elements(By.CSS_SELECTOR,
                                             "#findings mark.path")]
    assert any(m.startswith("Patient.birthDate") for m in marks), marks
    shot(d, "playground-file")
    # too big for the admin listener's form limit: the script says so
    # instead of sending it
    d.execute_script("document.getElementById('resource').value = "
                     "'{\"resourceType\":\"Patient\",\"x\":\"' + "
                     "'y'.repeat(70000) + '\"}'; window.stayed = 1;")
    d.find_element(By.ID, "validate").click()
    alert = WebDriverWait(d, 10).until(lambda x: x.switch_to.alert)
    assert "64 KiB" in alert.text
    alert.accept()
    assert d.execute_script("return window.stayed") == 1  # not sent
    assert_local(d, base)
