"""End-to-end tests of `pzpgw report` against a real store file.

The store is created by the binary (`pzpgw queue init`) and filled with
known traffic through Python's sqlite3 module (the Store helper of
test_queue_cli.py); the real binary then reads it through the store
interface and its counts, percentiles and "<5" rule are checked, as is
that no patient key, error text or content appears in any format.
"""
import csv
import io
import json
import re

import pytest

import gw

from test_queue_cli import DAY, R1, R2, SECRET, SENDER, Store, run

T0 = 1764547200000  # 2025-12-01T00:00:00Z
PATIENT = "PATIENT-KEY-MARKER"


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "pzpgw.db")
    run("queue", "--store", path, "init")
    s = Store(path)
    # 8 messages to R1 delivered after 100..800 ms; one before --from
    for i in range(1, 9):
        at = T0 + i * 1000
        s.add("m-ok-%d" % i, [R1], patient=PATIENT, state="delivered",
              attempts=1, accepted_at=at, delivered_at=at + i * 100)
    s.add("m-old", [R1], patient=PATIENT, state="delivered", attempts=1,
          accepted_at=T0 - DAY, delivered_at=T0 - DAY + 5)
    # 3 dead letters to R2 (the receiver refused them), one of them STU3
    for i in range(3):
        s.add("m-dead-%d" % i, [R2], patient=PATIENT, state="dead",
              attempts=2, accepted_at=T0 + 2 * DAY, last_status=422,
              last_error="rejected: " + SECRET)
    s.db.execute("UPDATE messages SET fhir_version = '3.0.2'"
                 " WHERE id = 'm-dead-0'")
    yield s
    s.db.close()


def report(store, *args, ok=(0,)):
    return run("report", "--store", store.path, "--from", "2025-12-01",
               *args, ok=ok)


def counts(doc, section):
    return {o["key"]: o["count"] for o in doc[section]}


def test_counts_percentiles_and_small_counts(store):
    p = report(store, "--format", "json")
    doc = json.loads(p.stdout)
    assert counts(doc, "messages_by_sender") == {SENDER: 11}
    assert counts(doc, "messages_by_receiver") == {R1: 8, R2: "<5"}
    assert counts(doc, "messages_by_fhir_version") == {"4.0.1": 10,
                                                      "3.0.2": "<5"}
    assert counts(doc, "outbox_by_state") == {"delivered": 8, "dead": "<5"}
    assert counts(doc, "dead_letters_by_cause") == {"HTTP 422": "<5"}
    # nearest rank over 100..800 ms
    assert doc["delivery_latency_ms"] == {"count": 8, "p50": 400,
                                          "p90": 800, "p99": 800}
    # messages the Store helper adds carry no event (as before schema 10)
    assert counts(doc, "messages_by_event") == {"unknown": 11}
    # validation findings are recorded (by intake): none in this store
    assert "not_recorded" not in doc
    assert doc["validation_findings_by_rule"] == []
    for fmt in ("json", "csv", "text"):
        out = report(store, "--format", fmt).stdout
        assert PATIENT not in out and SECRET not in out
        assert "rejected" not in out


def test_exact_by_day_and_to(store):
    doc = json.loads(report(store, "--format", "json", "--exact",
                            "--by", "day").stdout)
    assert counts(doc, "messages_by_receiver") == {R1: 8, R2: 3}
    assert counts(doc, "messages_by_period") == {"2025-12-01": 8,
                                                "2025-12-03": 3}
    doc = json.loads(report(store, "--format", "json", "--exact",
                            "--by", "hour").stdout)
    assert counts(doc, "messages_by_period") == {"2025-12-01T00": 8,
                                                "2025-12-03T00": 3}
    doc = json.loads(report(store, "--format", "json", "--exact", "--to",
                            "2025-12-02").stdout)
    assert counts(doc, "messages_by_receiver") == {R1: 8}
    doc = json.loads(run("report", "--store", store.path, "--format",
                         "json", "--exact").stdout)
    assert counts(doc, "messages_by_receiver") == {R1: 9, R2: 3}


def test_csv_and_text(store):
    rows = list(csv.reader(io.StringIO(report(store, "--format",
                                              "csv").stdout)))
    assert rows[0] == ["section", "key", "name", "value"]
    assert ["messages_by_receiver", R2, "", "<5"] in rows
    assert ["delivery_latency_ms", "p50", "", "400"] in rows
    text = report(store).stdout
    assert "Dead letters, by cause\n  HTTP 422" in text
    assert "p99" in text and "800 ms" in text


def test_usage_errors(store, tmp_path):
    for args in (["--by", "year"], ["--format", "xml"],
                 ["--from", "yesterday"], ["--from", "2025-12-02",
                                           "--to", "2025-12-01"],
                 ["extra"]):
        p = run("report", "--store", store.path, *args, ok=(2,))
        assert "usage: pzpgw report" in p.stderr or "pzpgw report:" in \
            p.stderr
    p = run("report", "--store", str(tmp_path / "absent.db"), ok=(2,))
    assert "no store at" in p.stderr


def test_config_names_organisations(store, tmp_path):
    for name in ("server.crt", "server.key", "ca.pem"):
        f = tmp_path / name
        f.write_text("placeholder\n")
        f.chmod(0o600)
    conf = tmp_path / "pzpgw.conf"
    conf.write_text(
        "[organisation]\nura = %s\nname = Zorggroep Test\n"
        "[listen]\ncertificate = server.crt\nkey = server.key\n"
        "trust = ca.pem\nenvironment = test\n"
        "[store]\npath = pzpgw.db\n"
        "[peer %s]\nname = Huisarts Noord\n"
        "endpoint = https://127.0.0.1:9/fhir\n" % (SENDER, R1))
    run("check-config", "-c", str(conf))
    doc = json.loads(run("report", "-c", str(conf), "--format",
                         "json").stdout)
    names = {o["key"]: o["name"] for o in doc["messages_by_receiver"]}
    assert names == {R1: "Huisarts Noord", R2: ""}
    assert doc["messages_by_sender"] == [
        {"key": SENDER, "name": "Zorggroep Test", "count": 12}]
    text = run("report", "-c", str(conf)).stdout
    assert re.search(r"\n  %s +9  Huisarts Noord\n" % R1, text)


BSN1, BSN2 = "999911120", "999911132"
PULLER = "00000007"


def test_inbound_and_pulls(store):
    # 6 inbound messages for R1 from PULLER (STU3); 7 pulls by PULLER
    # over 2 patients and a create, which is not a pull
    for i in range(6):
        store.add("in-%d" % i, [], patient=PATIENT, direction="inbound",
                  accepted_at=T0 + DAY)
        seq = store.db.execute("SELECT seq FROM messages WHERE id = ?",
                               ("in-%d" % i,)).fetchone()[0]
        store.db.execute("UPDATE messages SET fhir_version = '3.0.2',"
                         " sender_ura = ? WHERE seq = ?", (PULLER, seq))
        store.db.execute(
            "INSERT INTO inbox (message_seq, receiver_ura, bsn, sender_ura,"
            " resources) VALUES (?, ?, ?, ?, 3)", (seq, R1, BSN1, PULLER))
    for i, inter in enumerate(["search-type"] + ["read"] * 6 + ["create"]):
        store.db.execute(
            "INSERT INTO audit (at, ura, cert_serial, cert_issuer, bsn,"
            " interaction, query, count, status, request_id, prev_hash,"
            " hash) VALUES (?, ?, '01', 'CN=ca', ?, ?, '/fhir/CarePlan',"
            " 1, 200, ?, '', '')",
            (T0 + DAY + i, PULLER, BSN1 if i % 2 else BSN2, inter,
             "r%d" % i))
    doc = json.loads(report(store, "--format", "json").stdout)
    assert counts(doc, "messages_by_direction") == {"outbound": 11,
                                                   "inbound": 6}
    assert counts(doc, "messages_by_sender") == {SENDER: 11, PULLER: 6}
    assert counts(doc, "messages_by_receiver") == {R1: 14, R2: "<5"}
    assert counts(doc, "messages_by_fhir_version") == {"4.0.1": 10,
                                                      "3.0.2": 7}
    assert counts(doc, "pulls_by_organisation") == {PULLER: 7}
    assert counts(doc, "patients_read_by_organisation") == {PULLER: "<5"}
    doc = json.loads(report(store, "--format", "json", "--exact").stdout)
    assert counts(doc, "patients_read_by_organisation") == {PULLER: 2}
    for fmt in ("json", "csv", "text"):
        out = report(store, "--format", fmt, "--exact").stdout
        assert BSN1 not in out and BSN2 not in out


def test_same_report_on_postgresql(pg):
    """The same traffic in a PostgreSQL store gives the same report: it
    reads through the store interface, not one backend's SQL."""
    import subprocess

    url = pg.database()
    env = pg.env()

    def pz(*args):
        p = subprocess.run([gw.BINARY, *args], capture_output=True,
                           text=True, env=env, timeout=60)
        assert p.returncode == 0, (args, p.stderr)
        return p.stdout

    pz("queue", "--store", url, "init")
    for i in range(1, 9):
        at = T0 + i * 1000
        pg.sql(url,
               "WITH m AS (INSERT INTO messages (id, direction,"
               " sender_ura, bundle_system, bundle_value, patient_key,"
               " fhir_version, document, sha256, accepted_at,"
               " answer_status) VALUES ('m%d', 'outbound', '%s', 's',"
               " 'v%d', 'p', '4.0.1', '\\x00', 'ab', %d, 202)"
               " RETURNING seq) INSERT INTO outbox (message_seq,"
               " receiver_ura, patient_key, state, attempts,"
               " next_attempt_at, delivered_at, last_status)"
               " SELECT seq, '%s', 'p', '%s', 1, %d, %s, %s FROM m"
               % (i, SENDER, i, at, R1 if i <= 6 else R2,
                  "delivered" if i <= 6 else "dead", at,
                  at + i * 100 if i <= 6 else "NULL",
                  "NULL" if i <= 6 else "422"))
    doc = json.loads(pz("report", "--store", url, "--format", "json"))
    assert counts(doc, "messages_by_receiver") == {R1: 6, R2: "<5"}
    assert counts(doc, "dead_letters_by_cause") == {"HTTP 422": "<5"}
    assert doc["delivery_latency_ms"] == {"count": 6, "p50": 300,
                                          "p90": 600, "p99": 600}
