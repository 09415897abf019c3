"""Issue 9: what SIGHUP may not change. The URA and the store path are
fixed for the life of the daemon: a file that changes them is refused
whole (the old configuration keeps serving) and the log says a restart is
needed. A listener address or port change is applied at restart only,
and the log says so. Production refuses a test-policy certificate of its
own at start, on check-config and on SIGHUP."""

import json
import os
import signal
import subprocess

import gw
from test_intake import message

OLD_URA = gw.URA["gateway"]


def reload_and_wait(g, event):
    before = g.log_text().count(event)
    g.send_signal(signal.SIGHUP)
    gw.wait_for(lambda: g.log_text().count(event) > before,
                what=event)


def description(g):
    status, _, body = g.request("GET", "/fhir/metadata")
    assert status == 200
    return json.loads(body)["implementation"]["description"]


def test_ura_change_is_refused_whole(gateway):
    gateway.sections["organisation"]["ura"] = "90000008"
    gateway.sections["organisation"]["name"] = "Renamed gateway"
    gateway.write_config()
    reload_and_wait(gateway, "event=reload_failed")
    log = gateway.log_text()
    assert ('event=reload_failed reason="restart needed to change '
            '[organisation] ura" running_ura=%s file_ura=90000008 '
            'action=keeping_old_configuration' % OLD_URA) in log, log
    assert "event=reloaded" not in log
    # Nothing of the file was applied: the old name, and the old URA is
    # still the one this gateway serves (a message to it is taken in).
    assert description(gateway) == "Test gateway"
    status, _, out = gateway.request(
        "POST", "/fhir/$process-message",
        body=message(gw.URA["hospital"], [OLD_URA]))
    assert status == 202, out
    assert gateway.proc.poll() is None

    # Back to the running URA: the next reload applies again.
    gateway.sections["organisation"]["ura"] = OLD_URA
    gateway.write_config()
    reload_and_wait(gateway, "event=reloaded")
    assert description(gateway) == "Renamed gateway"


def test_store_path_change_is_refused_whole(gateway, tmp_path):
    gateway.sections["store"]["path"] = str(tmp_path / "other.db")
    gateway.sections["organisation"]["name"] = "Renamed gateway"
    gateway.write_config()
    reload_and_wait(gateway, "event=reload_failed")
    log = gateway.log_text()
    assert ('reason="restart needed to change [store] path"') in log, log
    assert "event=reloaded" not in log
    assert description(gateway) == "Test gateway"
    assert not (tmp_path / "other.db").exists()


def test_ura_and_store_path_change_named_together(gateway, tmp_path):
    gateway.sections["organisation"]["ura"] = "90000008"
    gateway.sections["store"]["path"] = str(tmp_path / "other.db")
    gateway.write_config()
    reload_and_wait(gateway, "event=reload_failed")
    assert ('reason="restart needed to change [organisation] ura and '
            '[store] path"') in gateway.log_text()


def test_admin_address_change_waits_for_restart(gateway):
    gateway.sections["admin"]["address"] = "127.0.0.2"
    gateway.sections["organisation"]["name"] = "Renamed gateway"
    gateway.write_config()
    reload_and_wait(gateway, "event=reloaded")
    log = gateway.log_text()
    assert ('event=reload_partial reason="listen address or port changed: '
            'takes effect at restart"') in log, log
    # the rest applies; the admin listener stays where it was
    assert description(gateway) == "Renamed gateway"
    assert gateway.admin("/healthz")[0] == 200


TEST_POLICY = "2.16.528.1.1007.99.212"


def test_production_refuses_own_test_certificate_at_start(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), listen__environment="production")
    g.start(wait=False)
    try:
        assert g.proc.wait(30) != 0
    finally:
        g.stop()
    log = g.log_text()
    cert = os.path.join(pki, "gateway.crt")
    assert ("%s:8: [listen] certificate: %s carries the UZI test policy %s, "
            "and [listen] environment = production (line 11) refuses a test "
            "certificate" % (g.conf, cert, TEST_POLICY)) in log, log
    assert "event=started" not in log

    r = subprocess.run([gw.BINARY, "check-config", "-c", g.conf],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "%s:8: [listen] certificate: %s carries the UZI test policy %s, and "
        "[listen] environment = production (line 11) refuses a test "
        "certificate" % (g.conf, cert, TEST_POLICY),
        "%s: 1 error" % g.conf]


def test_production_with_production_certificate_starts(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), listen__environment="production",
                   listen__certificate=os.path.join(pki, "prod.crt"),
                   listen__key=os.path.join(pki, "prod.key"),
                   organisation__ura="90000006").start()
    try:
        assert g.admin("/healthz")[0] == 200
    finally:
        assert g.stop() == 0


def test_sighup_to_production_with_test_certificate_is_refused(gateway):
    gateway.sections["listen"]["environment"] = "production"
    gateway.write_config()
    reload_and_wait(gateway, "event=reload_failed")
    log = gateway.log_text()
    assert "carries the UZI test policy %s" % TEST_POLICY in log, log
    assert "event=reloaded" not in log
    # still the test gateway: a test-policy client is served
    assert description(gateway) == "Test gateway"
