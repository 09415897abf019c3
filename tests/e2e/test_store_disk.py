"""Issue 9 disk: min_free holds after the message about to be stored, the
WAL gives its space back when the disk runs low, intake resumes when
space returns (no restart), and a failing checkpoint is logged once a
minute, not ten times a second. On a real small tmpfs (needs root)."""

import json
import os
import sqlite3
import subprocess
import time

import pytest

import gw
from test_intake import message, HOSPITAL, GP1

MIB = 1024 * 1024


@pytest.fixture
def small_fs(tmp_path):
    mnt = str(tmp_path / "small")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs",
                        mnt], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("needs root to mount a small tmpfs: " + r.stderr.strip())
    yield mnt
    if subprocess.run(["umount", mnt]).returncode != 0:
        subprocess.run(["umount", "-l", mnt])


def start(pki, tmp_path, mnt, min_free):
    g = gw.Gateway(pki, str(tmp_path))
    g.sections["store"] = {"path": os.path.join(mnt, "pzpgw.db"),
                           "min_free": min_free}
    return g.start()


def post(g, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, out = g.request(
        "POST", "/fhir/$process-message", body=data,
        headers={"Content-Type": "application/fhir+json"})
    return status, headers, out


def free_bytes(mnt):
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def fill_to(mnt, left, name="filler"):
    """Write a file so that about `left` bytes stay free."""
    with open(os.path.join(mnt, name), "ab") as f:
        f.write(b"\0" * max(0, free_bytes(mnt) - left))
        f.flush()
        os.fsync(f.fileno())


def test_min_free_counts_the_message_about_to_be_stored(pki, tmp_path,
                                                         small_fs):
    g = start(pki, tmp_path, small_fs, "4M")
    try:
        assert post(g, message(HOSPITAL, [GP1]))[0] == 202
        # 1 MB above min_free: a small message fits, one of 600 kB does
        # not (it takes its size in the database and up to twice that
        # in the WAL), though free space is above min_free either way.
        fill_to(small_fs, 5 * MIB)
        assert free_bytes(small_fs) > 4 * MIB
        assert post(g, message(HOSPITAL, [GP1]))[0] == 202
        big = json.dumps(message(HOSPITAL, [GP1])).encode()
        big += b" " * (600 * 1024)
        status, headers, out = post(g, big)
        assert status == 503, out
        assert "retry-after" in headers
        oo = json.loads(out)
        assert oo["issue"][0]["code"] == "transient"
        assert "disk space" in oo["issue"][0]["diagnostics"]
        # With room again it is accepted.
        os.unlink(os.path.join(small_fs, "filler"))
        assert post(g, big)[0] == 202
    finally:
        g.stop()


def test_wal_truncated_when_low_and_intake_resumes(pki, tmp_path, small_fs):
    g = start(pki, tmp_path, small_fs, "2M")
    wal = os.path.join(small_fs, "pzpgw.db-wal")
    try:
        for _ in range(40):
            assert post(g, message(HOSPITAL, [GP1]))[0] == 202
        grown = os.path.getsize(wal)
        assert grown > 256 * 1024, grown
        # The disk runs low: the WAL's space (kept after every
        # checkpoint until now) is given back, and with the disk still
        # below min_free after that, intake refuses. (The writer may
        # give the WAL back before a post arrives, which makes room:
        # fill again once it has.)
        fill_to(small_fs, 1 * MIB)
        gw.wait_for(lambda: os.path.getsize(wal) == 0, timeout=10,
                    what="WAL truncated")
        fill_to(small_fs, 1 * MIB)
        assert post(g, message(HOSPITAL, [GP1]))[0] == 503
        # Space is freed: intake resumes without a restart.
        os.unlink(os.path.join(small_fs, "filler"))
        gw.wait_for(lambda: g.admin("/readyz")[0] == 200, what="ready")
        assert post(g, message(HOSPITAL, [GP1]))[0] == 202
        assert g.proc.poll() is None
    finally:
        g.stop()
    c = sqlite3.connect(os.path.join(small_fs, "pzpgw.db"))
    try:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT count(*) FROM messages").fetchone()[0] == 41
    finally:
        c.close()


def test_checkpoint_failures_logged_once_a_minute(pki, tmp_path, small_fs):
    # min_free 0: no refusal, so the disk really fills.
    g = start(pki, tmp_path, small_fs, "0")
    db = os.path.join(small_fs, "pzpgw.db")
    try:
        # A reader holds an old snapshot: checkpoints cannot copy what
        # is committed after it into the database file yet.
        reader = sqlite3.connect(db, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchone()
        for _ in range(20):
            assert post(g, message(HOSPITAL, [GP1]))[0] == 202
        # The disk is full; the reader goes: each checkpoint now needs
        # to grow the database file and fails, ten times a second.
        fill_to(small_fs, 0)
        reader.execute("COMMIT")
        reader.close()
        gw.wait_for(lambda: "store_checkpoint_failed" in g.log_text(),
                    timeout=10, what="a failing checkpoint")
        time.sleep(2)
        log = g.log_text()
        assert log.count("event=store_checkpoint_failed") == 1, log
        assert "op=checkpoint" not in log
        os.unlink(os.path.join(small_fs, "filler"))
        gw.wait_for(lambda: "event=store_checkpoint_ok" in g.log_text(),
                    timeout=10, what="checkpoint recovered")
        assert post(g, message(HOSPITAL, [GP1]))[0] == 202
    finally:
        g.stop()


def test_check_config_warns_when_min_free_below_two_bodies(pki, tmp_path):
    g = gw.Gateway(pki, str(tmp_path), store__min_free="8M",
                   limits__max_body="10M")
    g.write_config()
    r = subprocess.run([gw.BINARY, "check-config", "-c", g.conf],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert ("%s: warning: [store] min_free (8M) is below twice [limits] "
            "max_body (10M): set min_free to at least 20M" % g.conf
            ) in r.stderr, r.stderr
    g.sections["store"]["min_free"] = "20M"
    g.write_config()
    r = subprocess.run([gw.BINARY, "check-config", "-c", g.conf],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
