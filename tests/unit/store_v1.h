/*
 * A store as the first release of pzpgw wrote it (schema 1), with two
 * queued messages for receiver 00000001: the starting point of the
 * migration tests (test_store.c, test_store_backup.c).
 */
#ifndef PZPGW_TEST_STORE_V1_H
#define PZPGW_TEST_STORE_V1_H

static const char schema_v1[] =
    "PRAGMA auto_vacuum = INCREMENTAL;"
    "CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE, direction TEXT NOT NULL CHECK (direction"
    " IN ('outbound', 'inbound')), sender_ura TEXT NOT NULL,"
    " bundle_system TEXT NOT NULL, bundle_value TEXT NOT NULL,"
    " patient_key TEXT NOT NULL, fhir_version TEXT NOT NULL,"
    " document BLOB NOT NULL, jws TEXT, sha256 TEXT NOT NULL,"
    " accepted_at INTEGER NOT NULL, answer_status INTEGER NOT NULL,"
    " answer_body TEXT,"
    " UNIQUE (direction, sender_ura, bundle_system, bundle_value));"
    "CREATE TABLE outbox (message_seq INTEGER NOT NULL"
    " REFERENCES messages(seq) ON DELETE CASCADE,"
    " receiver_ura TEXT NOT NULL, patient_key TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('due', 'inflight',"
    " 'delivered', 'dead', 'held')), attempts INTEGER NOT NULL"
    " DEFAULT 0, next_attempt_at INTEGER NOT NULL, first_attempt_at"
    " INTEGER, last_attempt_at INTEGER, last_status INTEGER,"
    " last_error TEXT, outcome TEXT, delivered_at INTEGER,"
    " PRIMARY KEY (message_seq, receiver_ura)) WITHOUT ROWID;"
    "CREATE INDEX outbox_state ON outbox (state, next_attempt_at);"
    "CREATE INDEX outbox_order ON outbox (receiver_ura, patient_key,"
    " message_seq) WHERE state IN ('due', 'inflight', 'held');"
    "INSERT INTO messages VALUES (1, 'old-1', 'outbound', '12345678',"
    " 's', 'v1', 'p1', '4.0.1', x'7b7d', NULL, 'h', 1000, 202, NULL);"
    "INSERT INTO messages VALUES (2, 'old-2', 'outbound', '12345678',"
    " 's', 'v2', 'p1', '4.0.1', x'7b7d', NULL, 'h', 1001, 202, NULL);"
    "INSERT INTO outbox (message_seq, receiver_ura, patient_key, state,"
    " attempts, next_attempt_at) VALUES (1, '00000001', 'p1', 'due', 3,"
    " 5000), (2, '00000001', 'p1', 'due', 0, 1001);"
    "PRAGMA user_version = 1;";

#endif
