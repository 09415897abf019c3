#!/usr/bin/python3
# Grows a stopped gateway's store to TOTAL queued outbound messages for the
# large-queue figures of bench_deliver.sh (BENCH_LARGE=1), much faster than
# posting them. Every row is shaped like one the gateway itself wrote: each
# copies a message it accepted (document, JWS, SHA-256, answer) under a new
# message id and Bundle.identifier, spread over PATIENTS lanes, with a due
# outbox row whose "waiting" flag follows the lane order.
#
# usage: prefill_queue.py DB TOTAL PATIENTS [DOC_BYTES]
# DOC_BYTES (optional): the stored document is cut to this many bytes to
# bound disk use (a million 20 KB documents are 20 GB); the indexed and
# queue columns stay realistic either way.
import hashlib
import sqlite3
import sys
import time
import uuid


def main():
    db, total, patients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    doc_bytes = int(sys.argv[4]) if len(sys.argv) > 4 else None
    c = sqlite3.connect(db, timeout=30, isolation_level=None)
    tpl = c.execute(
        "SELECT m.sender_ura, m.bundle_system, m.fhir_version, m.document,"
        " m.jws, m.sha256, m.answer_status, m.answer_body, o.receiver_ura"
        " FROM messages m JOIN outbox o ON o.message_seq = m.seq"
        " WHERE m.direction = 'outbound' ORDER BY m.seq DESC LIMIT 1"
    ).fetchone()
    if tpl is None:
        sys.exit("prefill_queue: no outbound message to copy in " + db)
    (sender, system, version, doc, jws, sha, status, answer, receiver) = tpl
    if doc_bytes is not None:
        doc = doc[:doc_bytes]
    have = c.execute(
        "SELECT count(*) FROM outbox WHERE state IN ('due', 'inflight')"
    ).fetchone()[0]
    lanes = [hashlib.sha256(b"bench-patient-%d" % i).hexdigest()
             for i in range(patients)]
    # Lanes that already have a pending row: new rows there wait.
    busy = {k for (k,) in c.execute(
        "SELECT DISTINCT patient_key FROM outbox WHERE receiver_ura = ?"
        " AND state IN ('due', 'inflight', 'held')", (receiver,))}
    now = int(time.time() * 1000)
    c.execute("PRAGMA synchronous = OFF")
    c.execute("PRAGMA cache_size = -262144")  # 256 MB: the indexes stay hot
    n = max(0, total - have)
    batch = 50000
    done = 0
    while done < n:
        k = min(batch, n - done)
        msgs, rows = [], []
        for i in range(done, done + k):
            mid = str(uuid.uuid4())
            lane = lanes[i % patients]
            msgs.append((mid, sender, system, "bench-prefill-" + mid, lane,
                         version, doc, jws, sha, now, status, answer))
        c.execute("BEGIN")
        for m in msgs:
            seq = c.execute(
                "INSERT INTO messages (id, direction, sender_ura,"
                " bundle_system, bundle_value, patient_key, fhir_version,"
                " document, jws, sha256, accepted_at, answer_status,"
                " answer_body) VALUES (?, 'outbound', ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?, ?)", m).lastrowid
            lane = m[4]
            rows.append((seq, receiver, lane, now, 1 if lane in busy else 0))
            busy.add(lane)
        c.executemany(
            "INSERT INTO outbox (message_seq, receiver_ura, patient_key,"
            " state, next_attempt_at, waiting) VALUES (?, ?, ?, 'due', ?, ?)",
            rows)
        c.execute("COMMIT")
        done += k
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    print(have + n)


main()
