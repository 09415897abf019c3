"""Issue 9: what SIGHUP may not change. The URA and the store path are
fixed for the life of the daemon: a file that changes them is refused
whole (the old configuration keeps serving) and the log says a restart is
needed. A listener address or port change is applied at restart only,
and the log says so."""

import json
import signal

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
