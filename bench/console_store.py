#!/usr/bin/python3
# Fills a store made by `pzpgw queue init` with N outbound messages spread
# evenly over the last DAYS days (default 60), for bench_console.sh's
# overview figures: one outbox row each, to one of 4 receivers, over 5,000
# patients; 95% delivered 0.2-30 s after acceptance, 3% dead (HTTP 422),
# 2% due after a failed attempt. Direct SQL (fast: a million rows in
# about a minute); the rows are shaped like the gateway's own, the
# document is a stub (the console never reads it).
#
# usage: console_store.py STORE N [DAYS]
import sqlite3
import sys
import time
import uuid


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    days = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    now = int(time.time() * 1000)
    span = days * 86400000
    receivers = ["90000003", "90000004", "90000005", "90000006"]
    doc = b'{"resourceType":"Bundle"}'
    batch = 50000
    done = 0
    while done < n:
        k = min(batch, n - done)
        db.execute("BEGIN")
        msgs, rows = [], []
        for i in range(done, done + k):
            at = now - span + (span * i) // n
            mid = str(uuid.UUID(int=i + 1))
            patient = "bench-patient-%d" % (i % 5000)
            msgs.append((mid, "90000002", "urn:ietf:rfc:3986",
                         "urn:uuid:" + mid, patient, "4.0.1", doc, "h..s",
                         "ab", at, 202, "{}"))
        cur = db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages")
        first = cur.fetchone()[0] + 1
        db.executemany(
            "INSERT INTO messages (id, direction, sender_ura, bundle_system,"
            " bundle_value, patient_key, fhir_version, document, jws,"
            " sha256, accepted_at, answer_status, answer_body) VALUES"
            " (?, 'outbound', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", msgs)
        for j, m in enumerate(msgs):
            i = done + j
            at = m[9]
            r = receivers[i % len(receivers)]
            kind = i % 100
            if kind < 95:
                lat = 200 + (i * 7919) % 29800
                rows.append((first + j, r, m[4], "delivered", 1, at, at,
                             at + lat, 200, None, at + lat))
            elif kind < 98:
                rows.append((first + j, r, m[4], "dead", 3, at, at,
                             at + 60000, 422, "rejected", None))
            else:
                rows.append((first + j, r, m[4], "due", 1, now + 60000, at,
                             at + 1000, 503, "busy", None))
        db.executemany(
            "INSERT INTO outbox (message_seq, receiver_ura, patient_key,"
            " state, attempts, next_attempt_at, first_attempt_at,"
            " last_attempt_at, last_status, last_error, delivered_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.execute("COMMIT")
        done += k
    db.close()


if __name__ == "__main__":
    main()
