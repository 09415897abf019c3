"""Issue 9 durability: the store file deleted or replaced under a running
gateway is noticed (503 with Retry-After, /readyz 503, one error line),
nothing is acknowledged into it, and a restart never makes a new empty
store where one existed unless an operator runs `pzpgw queue init`."""

import json
import os
import shutil
import sqlite3
import subprocess
import threading

import pytest

import gw
from test_intake import message, HOSPITAL, GP1


def post(g, body):
    status, headers, out = g.request("POST", "/fhir/$process-message",
                                     body=body)
    return status, headers, json.loads(out)


def db_path(g):
    return os.path.join(g.dir, "pzpgw.db")


def stored_ids(path):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {r[0] for r in c.execute("SELECT id FROM messages")}
    finally:
        c.close()


def assert_refused(g, reason):
    status, headers, oo = post(g, message(HOSPITAL, [GP1]))
    assert status == 503, oo
    assert "retry-after" in headers
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["code"] == "transient"
    st, text = g.admin("/readyz")
    assert st == 503 and reason in text, text


@pytest.fixture
def gateway(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path)).start()
    yield g
    g.stop()


def test_deleted_store_refuses_and_acknowledges_nothing(gateway):
    g = gateway
    assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    assert g.admin("/readyz")[0] == 200
    os.unlink(db_path(g))
    # Posts racing the deletion: none may be acknowledged, whether the
    # front door or the commit notices first.
    results = []

    def one():
        results.append(post(g, message(HOSPITAL, [GP1]))[0])

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [503] * 8, results
    assert_refused(g, "store_missing")
    assert_refused(g, "store_missing")
    # One error line for the event, not one per request.
    assert g.log_text().count("event=store_missing") == 1, g.log_text()


def test_deleted_wal_refuses(gateway):
    g = gateway
    assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    os.unlink(db_path(g) + "-wal")
    assert_refused(g, "store_missing")


def test_replaced_store_refuses_and_commits_nothing_into_either(gateway):
    g = gateway
    status, headers, _ = post(g, message(HOSPITAL, [GP1]))
    assert status == 202
    first = headers["x-message-id"]
    # Another store at the path: a copy of this one (a restored backup,
    # say), then a file that is no store at all.
    copy = db_path(g) + ".copy"
    shutil.copy(db_path(g), copy)
    os.rename(copy, db_path(g))
    assert_refused(g, "store_replaced")
    assert g.log_text().count("event=store_replaced") == 1
    assert stored_ids(db_path(g)) <= {first}
    with open(copy, "w") as f:
        f.write("not a store\n")
    os.rename(copy, db_path(g))
    assert_refused(g, "store_replaced")


def test_store_moved_back_resumes(gateway):
    g = gateway
    assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    os.rename(db_path(g), db_path(g) + ".away")
    assert_refused(g, "store_missing")
    os.rename(db_path(g) + ".away", db_path(g))
    gw.wait_for(lambda: g.admin("/readyz")[0] == 200, what="ready again")
    assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    assert "event=store_files_back" in g.log_text()


def test_permanent_store_error_is_500_without_retry(gateway):
    """A commit that fails for a reason a retry will not mend (here the
    messages table renamed under the running gateway: a schema this
    binary does not know) is answered 500 "exception" without Retry-After,
    not "503 busy, retry"; nothing is stored, and the gateway keeps
    serving."""
    g = gateway
    status, headers, _ = post(g, message(HOSPITAL, [GP1]))
    assert status == 202
    first = headers["x-message-id"]
    c = sqlite3.connect(db_path(g), timeout=10)
    try:
        c.execute("ALTER TABLE messages RENAME TO messages_moved")
        c.commit()
    finally:
        c.close()
    status, headers, oo = post(g, message(HOSPITAL, [GP1]))
    assert status == 500, oo
    assert "retry-after" not in headers, headers
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["code"] == "exception", oo
    assert "retry later" not in oo["issue"][0]["diagnostics"], oo
    c = sqlite3.connect("file:%s?mode=ro" % db_path(g), uri=True)
    try:
        ids = {r[0] for r in c.execute("SELECT id FROM messages_moved")}
    finally:
        c.close()
    assert ids == {first}
    assert "event=accept_failed" in g.log_text()
    assert "retry=no" in g.log_text()
    assert g.admin("/healthz")[0] == 200


def test_restart_after_deletion_refuses_until_queue_init(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path)).start()
    assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    assert g.stop() == 0
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db_path(g) + suffix):
            os.unlink(db_path(g) + suffix)
    g.start(wait=False, init=False)
    assert g.proc.wait(20) != 0
    log = g.log_text()
    assert "reason=store_missing" in log, log
    assert "queue -c %s init" % g.conf in log, log
    assert not os.path.exists(db_path(g)), "a store was created"
    g.log.close()
    # An empty file where the store was is no store either.
    open(db_path(g), "w").close()
    g.start(wait=False, init=False)
    assert g.proc.wait(20) != 0
    assert g.log_text().count("reason=store_missing") == 2
    assert os.path.getsize(db_path(g)) == 0
    g.log.close()
    os.unlink(db_path(g))
    # The operator decides: an empty store, and the daemon starts.
    r = g.init_store()
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    g.log_path = os.path.join(g.dir, "after-init.log")
    g.start(init=False)
    try:
        assert g.admin("/readyz")[0] == 200
        assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    finally:
        assert g.stop() == 0


def test_first_start_makes_a_store_and_marks_it(pki, tmp_path):
    """The default, create = auto: a path where no store ever was gets
    one at the first start, and the marker beside it; once the store is
    gone the marker keeps a restart from making an empty one."""
    g = gw.Gateway(pki, str(tmp_path))
    g.start(init=False)
    try:
        assert os.path.exists(db_path(g))
        assert os.path.exists(db_path(g) + ".created")
        assert "event=store_created" in g.log_text()
        assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    finally:
        assert g.stop() == 0
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db_path(g) + suffix):
            os.unlink(db_path(g) + suffix)
    g.log.close()
    g.start(wait=False, init=False)
    assert g.proc.wait(20) != 0
    assert "reason=store_missing" in g.log_text()
    assert not os.path.exists(db_path(g)), "a store was created"


def test_create_no_never_makes_a_store(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), store__create="no")
    g.start(wait=False, init=False)
    assert g.proc.wait(20) != 0
    assert "reason=store_missing" in g.log_text()
    assert not os.path.exists(db_path(g))
    assert not os.path.exists(db_path(g) + ".created")


def test_create_yes_makes_a_missing_store(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), store__create="yes")
    g.start()
    try:
        assert os.path.exists(db_path(g))
        assert "event=store_created" in g.log_text()
        assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    finally:
        assert g.stop() == 0


def queue(conf, *args):
    return subprocess.run([gw.BINARY, "queue", "-c", conf] + list(args),
                          capture_output=True, text=True)


def test_queue_commands_never_create_a_store(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path))
    g.sections["store"]["path"] = os.path.join(g.dir, "sub", "pzpgw.db")
    g.write_config()
    before = sorted(os.listdir(g.dir))
    for args in (["list"], ["stats"], ["show", "0b7c"], ["retry", "0b7c"],
                 ["hold", "0b7c"], ["replay", "0b7c"],
                 ["purge", "--delivered-before", "2026-01-01"]):
        r = queue(g.conf, *args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert ("no store at %s" % g.sections["store"]["path"]) in r.stderr
        assert "level=" not in r.stderr, r.stderr  # no daemon log lines
        assert sorted(os.listdir(g.dir)) == before, args


def test_read_only_commands_write_nothing_beside_the_store(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path)).start()
    try:
        status, headers, _ = post(g, message(HOSPITAL, [GP1]))
        assert status == 202
        mid = headers["x-message-id"]
        # A running gateway: what it committed to its WAL is seen.
        r = queue(g.conf, "--format", "json", "show", mid)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["id"] == mid
    finally:
        assert g.stop() == 0
    # Stopped: SQLite removed the -wal and -shm files; reading must not
    # make them again, not even for a moment (they would belong to the
    # operator's user, not the gateway's): the directory is untouched.
    assert not os.path.exists(db_path(g) + "-wal")
    before = sorted(os.listdir(g.dir))
    dir_mtime = os.stat(g.dir).st_mtime_ns
    db_mtime = os.stat(db_path(g)).st_mtime_ns
    for args in (["list"], ["stats"], ["show", mid]):
        r = queue(g.conf, *args)
        assert r.returncode == 0, (args, r.stderr)
        assert sorted(os.listdir(g.dir)) == before, args
    assert os.stat(g.dir).st_mtime_ns == dir_mtime
    assert os.stat(db_path(g)).st_mtime_ns == db_mtime
    assert mid in queue(g.conf, "show", mid).stdout


def test_read_only_command_on_an_empty_file_makes_no_store(tmp_path):
    path = str(tmp_path / "empty.db")
    open(path, "w").close()
    for args in (["list"], ["stats"]):
        r = subprocess.run([gw.BINARY, "queue", "--store", path] + args,
                           capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert "no store at" in r.stderr
        assert os.path.getsize(path) == 0
    assert sorted(os.listdir(str(tmp_path))) == ["empty.db"]
