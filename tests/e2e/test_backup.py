"""Issue 15: `pzpgw backup` and `pzpgw restore` against the real daemon.
A backup taken while 200 messages are being accepted opens, passes
integrity_check and holds every message acknowledged before it began;
restore refuses while the daemon runs (and changes nothing), refuses to
drop messages the backup lacks unless --force, and after it the daemon
starts on the restored store and delivers what was queued in it."""

import glob
import os
import sqlite3
import subprocess
import threading
import time

import gw
from fake_receiver import FakeReceiver, closed_port
from test_delivery import (B_URA, GP1, Poster, a_rows, gateway_a, message,
                           query)


def run(*args):
    return subprocess.run([gw.BINARY] + list(args), capture_output=True,
                          text=True, timeout=120)


def idents_in(path):
    """Bundle identifiers stored in the store file at path."""
    return {r["bundle_value"] for r in query(
        path, "SELECT bundle_value FROM messages")}


def integrity(path):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def store_of(g):
    return g.sections["store"]["path"]


def test_backup_while_accepting(pki, tmp_path):
    a = gateway_a(pki, tmp_path, {GP1: (closed_port(), B_URA)})
    a.start()
    acked = []  # identifiers answered 202, in order
    lock = threading.Lock()
    errors = []

    def poster():
        p = Poster(a)
        try:
            for n in range(200):
                ident, body = message([GP1], patient=n % 7, small=True)
                status, _, data = p.post(body)
                if status != 202:
                    errors.append((status, data[:200]))
                    continue
                with lock:
                    acked.append(ident)
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            p.close()

    t = threading.Thread(target=poster)
    t.start()
    try:
        gw.wait_for(lambda: len(acked) >= 40, timeout=60,
                    what="40 messages accepted")
        with lock:
            before = set(acked)
        dest = str(tmp_path / "backup" / "pzpgw-1.db")
        os.makedirs(os.path.dirname(dest))
        r = run("backup", "-c", a.conf, dest)
        with lock:
            after = len(acked)
        assert r.returncode == 0, r.stderr
        assert "integrity ok" in r.stdout, r.stdout
        # Counts only, never content: no identifier is printed.
        assert not any(i in r.stdout for i in before)
    finally:
        t.join()
    assert not errors, errors[:3]
    assert len(acked) == 200
    # The backup ran while the daemon was still accepting.
    assert after < 200, after
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600"
    assert not os.path.exists(dest + ".tmp")
    assert integrity(dest) == "ok"
    got = idents_in(dest)
    assert before <= got, len(before - got)
    # Nothing but what the store held: each one was acknowledged.
    assert got <= set(acked)
    messages = [ln for ln in r.stdout.splitlines()
                if ln.split()[:1] == ["messages"]]
    assert messages and int(messages[0].split()[1]) == len(got), r.stdout
    # The live store went on: all 200 are there, and queued.
    assert len(idents_in(store_of(a))) == 200
    a.stop()


def test_backup_of_a_damaged_store_writes_nothing(pki, tmp_path):
    a = gateway_a(pki, tmp_path, {GP1: (closed_port(), B_URA)})
    a.start()
    p = Poster(a)
    for n in range(30):
        assert p.post(message([GP1], patient=n, small=True)[1])[0] == 202
    p.close()
    assert a.stop() == 0
    path = store_of(a)
    assert not os.path.exists(path + "-wal") or \
        os.path.getsize(path + "-wal") == 0
    # Scribble over the root page of the message id index (a disk
    # error): the pages copy as they are, the check of the copy fails.
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    root, = c.execute("SELECT rootpage FROM sqlite_master WHERE type ="
                      " 'index' AND tbl_name = 'messages'").fetchone()
    psize, = c.execute("PRAGMA page_size").fetchone()
    c.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * psize)
        f.write(b"\xff" * 64)
    dest = str(tmp_path / "bad.db")
    r = run("backup", "--store", path, dest)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "fails its check" in r.stderr and "no backup written" in \
        r.stderr, r.stderr
    assert not os.path.exists(dest)
    assert not os.path.exists(dest + ".tmp")


def test_restore_refused_while_running_then_restored(pki, tmp_path):
    good = FakeReceiver(pki).start()
    a = gateway_a(pki, tmp_path, {GP1: (closed_port(), B_URA)})
    a.start()
    try:
        p = Poster(a)
        saved = []
        for n in range(5):
            ident, body = message([GP1], patient=n, small=True)
            assert p.post(body)[0] == 202
            saved.append(ident)
        dest = str(tmp_path / "pzpgw-backup.db")
        r = run("backup", "-c", a.conf, dest)
        assert r.returncode == 0, r.stderr
        later = []
        for n in range(2):
            ident, body = message([GP1], patient=10 + n, small=True)
            assert p.post(body)[0] == 202
            later.append(ident)
        p.close()
        path = store_of(a)
        ino = os.stat(path).st_ino

        # The daemon runs: refused, exit 1, nothing touched.
        r = run("restore", "-c", a.conf, "--force", dest)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "in use by a running gateway" in r.stderr, r.stderr
        assert "pid %d" % a.proc.pid in r.stderr, r.stderr
        assert os.stat(path).st_ino == ino
        assert glob.glob(path + ".before-restore-*") == []
        assert idents_in(path) == set(saved + later)
        assert a.request("GET", "/fhir/metadata")[0] == 200
        assert a.admin("/readyz")[0] == 200

        assert a.stop() == 0
        # Stopped, but the store holds 2 messages the backup lacks:
        # refused without --force.
        r = run("restore", "-c", a.conf, dest)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "2 message(s)" in r.stderr and "--force" in r.stderr
        assert os.stat(path).st_ino == ino
        r = run("restore", "-c", a.conf, "--force", dest)
        assert r.returncode == 0, r.stderr
        kept = glob.glob(path + ".before-restore-*")
        kept = [k for k in kept if not k.endswith(("-wal", "-shm"))]
        assert len(kept) == 1, kept
        assert "kept as " + kept[0] in r.stdout
        assert idents_in(kept[0]) == set(saved + later)
        assert idents_in(path) == set(saved)

        # Started on the restored store, the queued rows go out.
        a.sections["peer " + GP1]["endpoint"] = \
            "https://localhost:%d/fhir" % good.port
        a.start()
        gw.wait_for(lambda: good.count() >= 5, timeout=30,
                    what="the restored queue delivered")
        gw.wait_for(lambda: all(r["state"] == "delivered"
                                for r in a_rows(a)),
                    timeout=10, what="rows delivered")
        got = {r.json()["identifier"]["value"] for r in good.received}
        assert got == set(saved), got
    finally:
        a.stop()
        good.stop()


def test_restore_refuses_a_bad_source(pki, tmp_path):
    a = gateway_a(pki, tmp_path, {GP1: (closed_port(), B_URA)})
    a.start()
    a.stop()
    path = store_of(a)
    before = os.stat(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 1000)
    newer = str(tmp_path / "newer.db")
    assert run("backup", "--store", path, newer).returncode == 0
    c = sqlite3.connect(newer)
    c.execute("PRAGMA user_version = 99")
    c.commit()
    c.close()
    other = str(tmp_path / "other.db")
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    for src, want in ((str(junk), "fails its check"),
                      (newer, "newer than this binary"),
                      (other, "not a pzpgw store"),
                      (str(tmp_path / "missing.db"), "no backup at")):
        r = run("restore", "--store", path, src)
        assert r.returncode == 1, (src, r.returncode, r.stderr)
        assert want in r.stderr and "nothing changed" in r.stderr, \
            r.stderr
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (before.st_ino, before.st_size, before.st_mtime_ns)
    assert glob.glob(path + ".before-restore-*") == []


def test_second_daemon_on_the_same_store_is_refused(pki, tmp_path):
    a = gateway_a(pki, tmp_path, {GP1: (closed_port(), B_URA)})
    a.start()
    try:
        b = gw.Gateway(pki, str(tmp_path / "b"))
        os.makedirs(b.dir)
        b.sections["store"]["path"] = store_of(a)
        b.start(wait=False)
        assert b.proc.wait(30) != 0
        assert "reason=store_locked" in b.log_text()
        assert "holder_pid=%d" % a.proc.pid in b.log_text()
        assert a.request("GET", "/fhir/metadata")[0] == 200
    finally:
        a.stop()


def test_usage_errors_exit_2(tmp_path):
    for args, want in ((["backup"], "missing DEST"),
                       (["restore"], "missing SRC"),
                       (["backup", "--force", "x.db"], "unknown option"),
                       (["backup", "-c", "a", "--store", "b", "x.db"],
                        "not both"),
                       (["restore", "x.db", "y.db"], "unexpected argument")):
        r = run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert want in r.stderr and "usage: pzpgw " + args[0] in \
            r.stderr, r.stderr
    # No store at the path: said, exit 2, nothing written.
    dest = str(tmp_path / "x.db")
    r = run("backup", "--store", str(tmp_path / "none.db"), dest)
    assert r.returncode == 2 and "no store at" in r.stderr, r.stderr
    assert os.listdir(str(tmp_path)) == []
