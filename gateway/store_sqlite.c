/*
 * SQLite backend of the store: WAL, synchronous=FULL for accepts, versioned
 * schema migrations (PRAGMA user_version), one transaction per accept batch
 * (a savepoint per document only when one failed), and the outbox queries
 * of the deliverer.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_sqlite.h"
#include "util.h"

#define SQ_PENDING "('due', 'inflight', 'held')"

/* Recompute "waiting" of every pending row: all but the first of each
 * lane wait. */
#define SQ_RELANE_ALL                                                          \
	"UPDATE outbox SET waiting = (message_seq > (SELECT"                   \
	" min(p.message_seq) FROM outbox p WHERE p.receiver_ura ="             \
	" outbox.receiver_ura AND p.patient_key = outbox.patient_key AND"      \
	" p.state IN " SQ_PENDING ")) WHERE state IN " SQ_PENDING

/* The same result, writing only the rows whose flag is wrong (usually
 * none): lane heads marked waiting, then followers not marked. With a
 * million queued rows this takes seconds where rewriting every row took
 * a minute of startup. */
#define SQ_RELANE_FIX                                                          \
	"UPDATE outbox SET waiting = 0 WHERE waiting != 0 AND state "          \
	"IN " SQ_PENDING                                                       \
	" AND (receiver_ura, patient_key, message_seq) IN (SELECT"             \
	" receiver_ura, patient_key, min(message_seq) FROM outbox WHERE state" \
	" IN " SQ_PENDING " GROUP BY receiver_ura, patient_key);"              \
	"UPDATE outbox SET waiting = 1 WHERE waiting != 1 AND state "          \
	"IN " SQ_PENDING                                                       \
	" AND message_seq > (SELECT min(p.message_seq) FROM outbox"            \
	" p WHERE p.receiver_ura = outbox.receiver_ura AND p.patient_key ="    \
	" outbox.patient_key AND p.state IN " SQ_PENDING ")"

/* Trigger bodies keeping queue_counts. */
#define SQ_COUNT_UP                                                            \
	" INSERT INTO queue_counts (state, receiver_ura, n) VALUES"            \
	" (NEW.state, NEW.receiver_ura, 1) ON CONFLICT (state, receiver_ura)"  \
	" DO UPDATE SET n = n + 1"
#define SQ_COUNT_DOWN                                                          \
	" UPDATE queue_counts SET n = n - 1 WHERE state = OLD.state AND"       \
	" receiver_ura = OLD.receiver_ura"

/* clang-format off */
/*
 * Schema 9: the report's roll-ups (issue 17), kept by triggers in the
 * transaction that changes the rows they count, so `pzpgw report` reads
 * a few thousand counters instead of every row (a million messages took
 * seconds). Every count is a function of the rows as they are: a row
 * that changes state, or is deleted (purge, retention), moves or leaves
 * its counter, so the report says what the store holds, as before.
 * hour = accepted_at / 3600000 (UTC); kind = outbound, notice, inbound.
 * rep_msg: messages per (hour, kind, sender, FHIR version, event);
 * rep_row: outbox and inbox rows per (hour, kind, receiver, state, cause
 * of a dead or failing row); rep_lat: deliveries per (day, latency
 * bucket: exact below 1 s, then 3 significant digits, see
 * store_agg_bucket_ms); rep_pull: pulls per (hour, organisation);
 * rep_pat: (day, organisation, BSN) read, for distinct patients (the
 * audit trail beside it holds the same BSNs); rep_pat_last: the last day
 * each organisation read each patient, so a range open at its end
 * counts each pair once instead of once per day it was read.
 * rep_find: validation findings of refused pushes per (hour, sender,
 * severity, rule, profile), written by the daemon (store_count_finding).
 */
#define SQ_NOTICE_SYS "'" STORE_NOTICE_SYSTEM "'"
#define SQ_HOUR(m) "(" m ".accepted_at / 3600000)"
#define SQ_DAY(m) "(" m ".accepted_at / 86400000)"
#define SQ_KIND(m)                                                             \
	"(CASE WHEN " m ".bundle_system = " SQ_NOTICE_SYS                      \
	" THEN 'notice' ELSE " m ".direction END)"
#define SQ_CAUSE(r)                                                            \
	"(CASE WHEN " r ".state = 'dead' OR (" r ".state IN ('due', 'held')"   \
	" AND " r ".attempts > 0 AND coalesce(" r ".last_attempt_at, 0) <> 0)" \
	" THEN CASE WHEN instr(" r ".last_error, 'max age exceeded') > 0"      \
	" THEN 'max age exceeded' WHEN coalesce(" r ".last_status, 0) <> 0"    \
	" THEN 'HTTP ' || " r ".last_status WHEN instr(" r ".last_error,"      \
	" 'document missing') > 0 THEN 'document missing' ELSE 'no answer"     \
	" (connection, TLS or local)' END ELSE '' END)"
/* Latency bucket of x ms: x below 1000, then 1000 + 900 per decade. */
#define SQ_BUCKET(x)                                                           \
	"(CASE WHEN " x " < 1000 THEN " x " ELSE (length(" x ") - 4) * 900"    \
	" + 900 + CAST(substr(" x ", 1, 3) AS INTEGER) END)"
#define SQ_LAT_OF(r, m) "(" r ".delivered_at - " m ".accepted_at)"
#define SQ_LAT_WHERE(r, m)                                                     \
	"+" r ".state = 'delivered' AND +" m ".direction = 'outbound' AND " m  \
	".bundle_system <> " SQ_NOTICE_SYS " AND coalesce(" r                  \
	".delivered_at, 0) <> 0 AND " r ".delivered_at >= " m ".accepted_at"
#define SQ_UPS(keys) " ON CONFLICT (" keys ") DO UPDATE SET n = n + excluded.n"
#define SQ_MSG_KEYS "hour, kind, sender_ura, fhir_version, event"
#define SQ_ROW_KEYS "hour, kind, receiver_ura, state, cause"
#define SQ_FIND_KEYS "hour, sender_ura, severity, rule, profile"
/* A message's own count (not inbound: counted with its first inbox row). */
#define SQ_MSG_ADD(M, sign)                                                    \
	"INSERT INTO rep_msg (" SQ_MSG_KEYS ", n) SELECT " SQ_HOUR(M) ","      \
	" " SQ_KIND(M) ", CASE WHEN " M ".bundle_system = " SQ_NOTICE_SYS      \
	" THEN '' ELSE " M ".sender_ura END, CASE WHEN " M ".bundle_system ="  \
	" " SQ_NOTICE_SYS " THEN '' ELSE " M ".fhir_version END, " M ".event," \
	" " sign " WHERE " M ".direction = 'outbound'" SQ_UPS(SQ_MSG_KEYS) ";"
/* An inbound message's count, sender from its first inbox row. */
#define SQ_INMSG_ADD(M, sign)                                                  \
	"INSERT INTO rep_msg (" SQ_MSG_KEYS ", n) SELECT " SQ_HOUR(M) ","      \
	" 'inbound', (SELECT coalesce(nullif(i.sender_ura, ''), " M            \
	".sender_ura) FROM inbox i WHERE i.message_seq = " M ".seq ORDER BY"   \
	" i.receiver_ura LIMIT 1), " M ".fhir_version, " M ".event, " sign     \
	" WHERE " M ".direction = 'inbound' AND EXISTS (SELECT 1 FROM inbox"   \
	" i WHERE i.message_seq = " M ".seq)" SQ_UPS(SQ_MSG_KEYS) ";"
/* Every outbox row, inbox row and delivery of message M. */
#define SQ_MSG_ROWS_ADD(M, sign)                                               \
	"INSERT INTO rep_row (" SQ_ROW_KEYS ", n) SELECT " SQ_HOUR(M) ", "     \
	SQ_KIND(M) ", o.receiver_ura, o.state, " SQ_CAUSE("o") ", " sign       \
	" FROM outbox o WHERE o.message_seq = " M ".seq" SQ_UPS(SQ_ROW_KEYS)  \
	";INSERT INTO rep_row (" SQ_ROW_KEYS ", n) SELECT " SQ_HOUR(M) ","     \
	" 'inbound', i.receiver_ura, '', '', " sign " FROM inbox i WHERE"      \
	" i.message_seq = " M ".seq AND " M ".direction = 'inbound'"           \
	SQ_UPS(SQ_ROW_KEYS) ";INSERT INTO rep_lat (day, bucket, n) SELECT "    \
	SQ_DAY(M) ", " SQ_BUCKET(SQ_LAT_OF("o", M)) ", " sign " FROM outbox"  \
	" o WHERE o.message_seq = " M ".seq AND " SQ_LAT_WHERE("o", M)         \
	SQ_UPS("day, bucket") ";"
/* One outbox row R (nothing when its message is gone: a cascade). */
#define SQ_ROW_ADD(R, sign)                                                    \
	"INSERT INTO rep_row (" SQ_ROW_KEYS ", n) SELECT " SQ_HOUR("m") ", "   \
	SQ_KIND("m") ", " R ".receiver_ura, " R ".state, " SQ_CAUSE(R) ", "    \
	sign " FROM messages m WHERE m.seq = " R ".message_seq"                \
	SQ_UPS(SQ_ROW_KEYS) ";INSERT INTO rep_lat (day, bucket, n) SELECT "    \
	SQ_DAY("m") ", " SQ_BUCKET(SQ_LAT_OF(R, "m")) ", " sign " FROM"      \
	" messages m WHERE m.seq = " R ".message_seq AND "                     \
	SQ_LAT_WHERE(R, "m") SQ_UPS("day, bucket") ";"
/* One inbox row I. */
#define SQ_INBOX_ADD(I, sign)                                                  \
	"INSERT INTO rep_row (" SQ_ROW_KEYS ", n) SELECT " SQ_HOUR("m") ","    \
	" 'inbound', " I ".receiver_ura, '', '', " sign " FROM messages m"     \
	" WHERE m.seq = " I ".message_seq AND m.direction = 'inbound'"         \
	SQ_UPS(SQ_ROW_KEYS) ";"
/* The inbound message of inbox row I, when I is its only row. */
#define SQ_INBOX_MSG(I, sign, left)                                            \
	"INSERT INTO rep_msg (" SQ_MSG_KEYS ", n) SELECT " SQ_HOUR("m") ","    \
	" 'inbound', coalesce(nullif(" I ".sender_ura, ''), m.sender_ura),"    \
	" m.fhir_version, m.event, " sign " FROM messages m WHERE m.seq = " I  \
	".message_seq AND m.direction = 'inbound' AND (SELECT count(*) FROM"   \
	" inbox i WHERE i.message_seq = " I ".message_seq) = " left            \
	SQ_UPS(SQ_MSG_KEYS) ";"
#define SQ_ROW_CHANGED                                                         \
	"OLD.state IS NOT NEW.state OR OLD.receiver_ura IS NOT"                \
	" NEW.receiver_ura OR OLD.message_seq IS NOT NEW.message_seq OR"       \
	" OLD.delivered_at IS NOT NEW.delivered_at OR OLD.attempts IS NOT"     \
	" NEW.attempts OR OLD.last_attempt_at IS NOT NEW.last_attempt_at OR"   \
	" OLD.last_status IS NOT NEW.last_status OR OLD.last_error IS NOT"     \
	" NEW.last_error"
#define SQ_MSG_CHANGED                                                         \
	"OLD.accepted_at IS NOT NEW.accepted_at OR OLD.direction IS NOT"       \
	" NEW.direction OR OLD.bundle_system IS NOT NEW.bundle_system OR"      \
	" OLD.sender_ura IS NOT NEW.sender_ura OR OLD.fhir_version IS NOT"     \
	" NEW.fhir_version OR OLD.event IS NOT NEW.event"
/* The report's groups from the rows of messages accepted in [?1, ?2):
 * the roll-ups' first fill and the partial hours at a range's ends. The
 * unary + keeps SQLite (no statistics) off the direction and state
 * indexes, which led it to read every message of that direction. */
#define SQ_BASE_MSG(range)                                                     \
	"SELECT " SQ_HOUR("m") ", " SQ_KIND("m") ", CASE WHEN"                 \
	" m.bundle_system = " SQ_NOTICE_SYS " THEN '' ELSE m.sender_ura END,"  \
	" CASE WHEN m.bundle_system = " SQ_NOTICE_SYS " THEN '' ELSE"          \
	" m.fhir_version END, m.event, count(*) FROM messages m WHERE"         \
	" +m.direction = 'outbound'" range " GROUP BY 1, 2, 3, 4, 5 UNION ALL"  \
	" SELECT " SQ_HOUR("m") ", 'inbound', (SELECT"                         \
	" coalesce(nullif(i.sender_ura, ''), m.sender_ura) FROM inbox i WHERE" \
	" i.message_seq = m.seq ORDER BY i.receiver_ura LIMIT 1),"             \
	" m.fhir_version, m.event, count(*) FROM messages m WHERE"             \
	" +m.direction = 'inbound' AND EXISTS (SELECT 1 FROM inbox i WHERE"    \
	" i.message_seq = m.seq)" range " GROUP BY 1, 2, 3, 4, 5"
#define SQ_BASE_ROW(range)                                                     \
	"SELECT " SQ_HOUR("m") ", " SQ_KIND("m") ", o.receiver_ura, o.state, " \
	SQ_CAUSE("o") ", count(*) FROM outbox o JOIN messages m ON m.seq ="    \
	" o.message_seq WHERE 1" range " GROUP BY 1, 2, 3, 4, 5 UNION ALL"     \
	" SELECT " SQ_HOUR("m") ", 'inbound', i.receiver_ura, '', '',"         \
	" count(*) FROM inbox i JOIN messages m ON m.seq = i.message_seq"      \
	" WHERE +m.direction = 'inbound'" range " GROUP BY 1, 2, 3, 4, 5"
#define SQ_BASE_LAT(range)                                                     \
	"SELECT " SQ_DAY("m") ", " SQ_BUCKET(SQ_LAT_OF("o", "m")) ","          \
	" count(*) FROM outbox o JOIN messages m ON m.seq = o.message_seq"     \
	" WHERE " SQ_LAT_WHERE("o", "m") range " GROUP BY 1, 2"
/* An audit record counted as a pull: not a push ("create") and not an
 * operator's action in the console ("operator-retry", ...). */
#define SQ_PULLED(p)                                                           \
	"(" p "interaction <> 'create' AND substr(" p "interaction, 1, 9) <>"     \
	" 'operator-')"
#define SQ_BASE_PULL(range)                                                    \
	"SELECT at / 3600000, ura, count(*) FROM audit WHERE "       \
	SQ_PULLED("") range " GROUP BY 1, 2"
#define SQ_RANGE " AND m.accepted_at >= ?1 AND m.accepted_at < ?2"
#define SQ_ARANGE " AND at >= ?1 AND at < ?2"
/* Step 10: the roll-ups, filled from the rows there are, their
 * triggers, and the event of a message ("" unknown: accepted before it
 * was recorded). */
#define SQ_STEP10                                                               \
	"ALTER TABLE messages ADD COLUMN event TEXT NOT NULL DEFAULT '';"      \
	"CREATE TABLE rep_msg (hour INTEGER NOT NULL, kind TEXT NOT NULL,"     \
	" sender_ura TEXT NOT NULL, fhir_version TEXT NOT NULL,"               \
	" event TEXT NOT NULL, n INTEGER NOT NULL,"                            \
	" PRIMARY KEY (" SQ_MSG_KEYS ")) WITHOUT ROWID;"                       \
	"CREATE TABLE rep_row (hour INTEGER NOT NULL, kind TEXT NOT NULL,"     \
	" receiver_ura TEXT NOT NULL, state TEXT NOT NULL,"                    \
	" cause TEXT NOT NULL, n INTEGER NOT NULL,"                            \
	" PRIMARY KEY (" SQ_ROW_KEYS ")) WITHOUT ROWID;"                       \
	"CREATE TABLE rep_lat (day INTEGER NOT NULL, bucket INTEGER NOT NULL," \
	" n INTEGER NOT NULL, PRIMARY KEY (day, bucket)) WITHOUT ROWID;"       \
	"CREATE TABLE rep_pull (hour INTEGER NOT NULL, ura TEXT NOT NULL,"     \
	" n INTEGER NOT NULL, PRIMARY KEY (hour, ura)) WITHOUT ROWID;"         \
	"CREATE TABLE rep_pat (day INTEGER NOT NULL, ura TEXT NOT NULL,"       \
	" bsn TEXT NOT NULL, PRIMARY KEY (day, ura, bsn)) WITHOUT ROWID;"      \
	"CREATE TABLE rep_pat_last (ura TEXT NOT NULL, bsn TEXT NOT NULL,"     \
	" last_day INTEGER NOT NULL, PRIMARY KEY (ura, bsn)) WITHOUT ROWID;"   \
	/* findings of refused pushes: no row holds them, so no trigger     \
	   keeps them; written by the daemon (sq_findings_add), left by     \
	   retention, copied by store copy */                               \
	"CREATE TABLE rep_find (hour INTEGER NOT NULL, sender_ura TEXT NOT"    \
	" NULL, severity TEXT NOT NULL, rule TEXT NOT NULL, profile TEXT NOT"  \
	" NULL, n INTEGER NOT NULL, PRIMARY KEY (" SQ_FIND_KEYS "))"           \
	" WITHOUT ROWID;"                                                      \
	"INSERT INTO rep_msg (" SQ_MSG_KEYS ", n) " SQ_BASE_MSG("") ";"        \
	"INSERT INTO rep_row (" SQ_ROW_KEYS ", n) " SQ_BASE_ROW("") ";"        \
	"INSERT INTO rep_lat (day, bucket, n) " SQ_BASE_LAT("") ";"            \
	"INSERT INTO rep_pull (hour, ura, n) " SQ_BASE_PULL("") ";"            \
	"INSERT INTO rep_pat (day, ura, bsn) SELECT DISTINCT at / 86400000,"   \
	" ura, bsn FROM audit WHERE " SQ_PULLED("") " AND bsn <> '';"    \
	"INSERT INTO rep_pat_last (ura, bsn, last_day) SELECT ura, bsn,"       \
	" max(at / 86400000) FROM audit WHERE " SQ_PULLED("") " AND"     \
	" bsn <> '' GROUP BY ura, bsn;"                                        \
	"CREATE TRIGGER rep_msg_insert AFTER INSERT ON messages BEGIN "        \
	SQ_MSG_ADD("NEW", "1") " END;"                                         \
	"CREATE TRIGGER rep_msg_update AFTER UPDATE ON messages WHEN "         \
	SQ_MSG_CHANGED " BEGIN " SQ_MSG_ADD("OLD", "-1")                       \
	SQ_INMSG_ADD("OLD", "-1") SQ_MSG_ROWS_ADD("OLD", "-1")                 \
	SQ_MSG_ADD("NEW", "1") SQ_INMSG_ADD("NEW", "1")                        \
	SQ_MSG_ROWS_ADD("NEW", "1") " END;"                                    \
	/* before: its rows still there (a cascade deletes them after,      \
	   when their own trigger finds no message and counts nothing) */   \
	/* rep_pruning: a row only inside a retention prune's own          \
	   transaction (sq_delete_chunked), whose deletes the roll-ups     \
	   keep counting: usage outlives retention; a purge's do not */    \
	"CREATE TABLE rep_pruning (since INTEGER NOT NULL);"                   \
	"CREATE TRIGGER rep_msg_delete BEFORE DELETE ON messages WHEN NOT"     \
	" EXISTS (SELECT 1 FROM rep_pruning) BEGIN "                           \
	SQ_MSG_ADD("OLD", "-1") SQ_INMSG_ADD("OLD", "-1")                      \
	SQ_MSG_ROWS_ADD("OLD", "-1") " END;"                                   \
	"CREATE TRIGGER rep_row_insert AFTER INSERT ON outbox BEGIN "          \
	SQ_ROW_ADD("NEW", "1") " END;"                                         \
	"CREATE TRIGGER rep_row_update AFTER UPDATE ON outbox WHEN "           \
	SQ_ROW_CHANGED " BEGIN " SQ_ROW_ADD("OLD", "-1")                       \
	SQ_ROW_ADD("NEW", "1") " END;"                                         \
	"CREATE TRIGGER rep_row_delete AFTER DELETE ON outbox BEGIN "          \
	SQ_ROW_ADD("OLD", "-1") " END;"                                        \
	"CREATE TRIGGER rep_inbox_insert AFTER INSERT ON inbox BEGIN "         \
	SQ_INBOX_ADD("NEW", "1") SQ_INBOX_MSG("NEW", "1", "1") " END;"         \
	"CREATE TRIGGER rep_inbox_delete AFTER DELETE ON inbox BEGIN "         \
	SQ_INBOX_ADD("OLD", "-1") SQ_INBOX_MSG("OLD", "-1", "0") " END;"       \
	"CREATE TRIGGER rep_audit_insert AFTER INSERT ON audit WHEN"           \
	" " SQ_PULLED("NEW.") SQ_REP_AUDIT
/* What a pull audit record adds to the roll-ups, row by row. */
#define SQ_REP_AUDIT                                                           \
	" BEGIN INSERT INTO rep_pull (hour, ura,"                              \
	" n) VALUES (NEW.at / 3600000, NEW.ura, 1)" SQ_UPS("hour, ura") ";"    \
	" INSERT OR IGNORE INTO rep_pat (day, ura, bsn) SELECT NEW.at /"       \
	" 86400000, NEW.ura, NEW.bsn WHERE NEW.bsn <> '';"                     \
	" INSERT INTO rep_pat_last (ura, bsn, last_day) SELECT NEW.ura,"       \
	" NEW.bsn, NEW.at / 86400000 WHERE NEW.bsn <> '' ON CONFLICT (ura,"    \
	" bsn) DO UPDATE SET last_day = max(last_day, excluded.last_day);"     \
	" END;"
/* Step 12: the writer counts the pull audit records of its batches
 * itself (sq_audit_rollup), once per key, where the trigger made three
 * upserts per record (a few percent of a pull's CPU). rep_writer holds a
 * row only inside the writer's audit transaction (no other connection
 * ever sees it), and there the trigger stands aside; every other insert
 * (store copy, SQL by hand) is still counted by it. */
#define SQ_STEP12                                                              \
	"CREATE TABLE rep_writer (since INTEGER NOT NULL);"                    \
	"DROP TRIGGER rep_audit_insert;"                                       \
	"CREATE TRIGGER rep_audit_insert AFTER INSERT ON audit WHEN"           \
	" " SQ_PULLED("NEW.") " AND NOT EXISTS (SELECT 1 FROM rep_writer)"     \
	SQ_REP_AUDIT
/* clang-format on */

/* Schema steps: MIGRATIONS[i] takes user_version i to i + 1. */
static const char *const sq_migrations[STORE_SQLITE_SCHEMA] = {
    /* 1: messages (with the idempotency key) and the outbox. */
    "CREATE TABLE messages ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " direction TEXT NOT NULL CHECK (direction IN"
    "  ('outbound', 'inbound')),"
    " sender_ura TEXT NOT NULL,"
    " bundle_system TEXT NOT NULL,"
    " bundle_value TEXT NOT NULL,"
    " patient_key TEXT NOT NULL,"
    " fhir_version TEXT NOT NULL,"
    " document BLOB NOT NULL,"
    " jws TEXT,"
    " sha256 TEXT NOT NULL,"
    " accepted_at INTEGER NOT NULL,"
    " answer_status INTEGER NOT NULL,"
    " answer_body TEXT,"
    " UNIQUE (direction, sender_ura, bundle_system, bundle_value));"
    "CREATE TABLE outbox ("
    " message_seq INTEGER NOT NULL"
    "  REFERENCES messages(seq) ON DELETE CASCADE,"
    " receiver_ura TEXT NOT NULL,"
    " patient_key TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN"
    "  ('due', 'inflight', 'delivered', 'dead', 'held')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at INTEGER NOT NULL,"
    " first_attempt_at INTEGER,"
    " last_attempt_at INTEGER,"
    " last_status INTEGER,"
    " last_error TEXT,"
    " outcome TEXT,"
    " delivered_at INTEGER,"
    " PRIMARY KEY (message_seq, receiver_ura)) WITHOUT ROWID;"
    "CREATE INDEX outbox_state ON outbox (state, next_attempt_at);"
    "CREATE INDEX outbox_order ON outbox"
    " (receiver_ura, patient_key, message_seq)"
    " WHERE state IN ('due', 'inflight', 'held');",
    /* 2: operator replay counter; "waiting" marks pending rows behind
	   an earlier pending row of their (receiver, patient) lane, so a
	   claim reads only lane heads however long the lanes grow. */
    "ALTER TABLE outbox ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN waiting INTEGER NOT NULL DEFAULT "
    "0;" SQ_RELANE_ALL ";"
    "DROP INDEX outbox_state;"
    "CREATE INDEX outbox_ready ON outbox (next_attempt_at)"
    " WHERE state = 'due' AND waiting = 0;"
    "CREATE INDEX outbox_state_receiver ON outbox (state, receiver_ura);"
    "CREATE INDEX outbox_delivered ON outbox (delivered_at)"
    " WHERE state = 'delivered';",
    /* 3: rows per (state, receiver) kept by triggers, so queue gauges
       cost one row per receiver instead of a scan of the outbox (a
       million queued rows took most of a second of the loop thread). */
    "CREATE TABLE queue_counts ("
    " state TEXT NOT NULL,"
    " receiver_ura TEXT NOT NULL,"
    " n INTEGER NOT NULL,"
    " PRIMARY KEY (state, receiver_ura)) WITHOUT ROWID;"
    "INSERT INTO queue_counts (state, receiver_ura, n)"
    " SELECT state, receiver_ura, count(*) FROM outbox"
    " GROUP BY state, receiver_ura;"
    "CREATE TRIGGER outbox_count_insert AFTER INSERT ON outbox "
    "BEGIN" SQ_COUNT_UP "; END;"
    "CREATE TRIGGER outbox_count_delete AFTER DELETE ON outbox "
    "BEGIN" SQ_COUNT_DOWN "; END;"
    "CREATE TRIGGER outbox_count_update AFTER UPDATE OF state, receiver_ura"
    " ON outbox WHEN OLD.state IS NOT NEW.state OR OLD.receiver_ura IS NOT"
    " NEW.receiver_ura BEGIN" SQ_COUNT_DOWN ";" SQ_COUNT_UP "; END;"
    /* Finds the newest message older than the maximum age. */
    "CREATE INDEX messages_accepted ON messages (accepted_at);"
    /* An operator's replay or release restarts the maximum age (NULL:
       it counts from acceptance). */
    "ALTER TABLE outbox ADD COLUMN age_from INTEGER;",
    /* 4: the received-data index (issue 11). inbox: the local receivers
       of each inbound message with the patient's BSN. res_versions: every
       version of every resource received for a receiver, in commit order
       (seq, never reused: the pull API's snapshot and paging cursor);
       superseded_seq is the seq of the version that replaced it, so
       "current at snapshot S" is superseded_seq IS NULL OR > S. Rows go
       with their message (retention). index_secret keys the logical ids
       (index_logical_id): random per store, never leaves it. A logical
       id starts with its patient's half and holds the type, so (receiver,
       id, vid) is unique and a message's versions share its pages. */
    "CREATE TABLE index_secret ("
    " k INTEGER PRIMARY KEY CHECK (k = 1),"
    " secret BLOB NOT NULL CHECK (length(secret) = 32));"
    "INSERT INTO index_secret (k, secret) VALUES (1, randomblob(32));"
    "CREATE TABLE inbox ("
    " message_seq INTEGER NOT NULL"
    "  REFERENCES messages(seq) ON DELETE CASCADE,"
    " receiver_ura TEXT NOT NULL,"
    " bsn TEXT NOT NULL,"
    " sender_ura TEXT NOT NULL,"
    " resources INTEGER NOT NULL,"
    " PRIMARY KEY (message_seq, receiver_ura)) WITHOUT ROWID;"
    "CREATE INDEX inbox_receiver ON inbox (receiver_ura, message_seq);"
    "CREATE INDEX inbox_bsn ON inbox (bsn, message_seq);"
    "CREATE TABLE res_versions ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " receiver_ura TEXT NOT NULL,"
    " bsn TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " vid INTEGER NOT NULL,"
    " res_key TEXT NOT NULL,"
    " message_seq INTEGER NOT NULL"
    "  REFERENCES messages(seq) ON DELETE CASCADE,"
    " updated INTEGER NOT NULL,"
    " hidden INTEGER NOT NULL,"
    " superseded_seq INTEGER,"
    " sha256 TEXT NOT NULL,"
    " json TEXT NOT NULL,"
    " UNIQUE (receiver_ura, id, vid));"
    "CREATE INDEX res_patient ON res_versions (receiver_ura, bsn, seq);"
    "CREATE INDEX res_receiver ON res_versions (receiver_ura, seq);"
    "CREATE INDEX res_updated ON res_versions (receiver_ura, updated);"
    "CREATE INDEX res_message ON res_versions (message_seq);",
    /* 5: the audit trail (NEN 7513), append-only: triggers refuse any
       UPDATE or DELETE, whoever runs it. Each record carries the SHA-256
       of its predecessor (store_audit_hash); AUTOINCREMENT keeps seq
       from being reused, so records deleted at the end leave a gap the
       next record and verify see. */
    "CREATE TABLE audit ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at INTEGER NOT NULL,"
    " ura TEXT NOT NULL,"
    " cert_serial TEXT NOT NULL,"
    " cert_issuer TEXT NOT NULL,"
    " bsn TEXT NOT NULL,"
    " interaction TEXT NOT NULL,"
    " query TEXT NOT NULL,"
    " count INTEGER NOT NULL,"
    " status INTEGER NOT NULL,"
    " request_id TEXT NOT NULL,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE INDEX audit_at ON audit (at);"
    "CREATE INDEX audit_bsn ON audit (bsn, seq) WHERE bsn <> '';"
    "CREATE INDEX audit_ura ON audit (ura, seq);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN"
    " SELECT RAISE(ABORT, 'audit records are append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN"
    " SELECT RAISE(ABORT, 'audit records are append-only'); END;",
    /* 6: the transform report (issue 12): the OperationOutcome of what
       intake normalised and converted (an STU3 message is stored as R4),
       kept beside the message; NULL when nothing was changed. */
    "ALTER TABLE messages ADD COLUMN transform_report TEXT;",
    /* 7: a patient's versions by type (issue 11's pull benchmark). Every
       search names its type; on (receiver, bsn, seq) SQLite fetched each
       of the patient's rows (about 20 per F1 message) to test its type,
       for each of the 11 searches of a set. The old index served no
       query without a type, so it goes: an accept still writes as many
       index entries. */
    "DROP INDEX res_patient;"
    "CREATE INDEX res_patient_type ON res_versions"
    " (receiver_ura, bsn, type, seq);",
    /* 8: the delivery lease of several nodes on one PostgreSQL
       (store_pg.c). One SQLite node never reads these columns; they keep
       both backends' version numbers and rows alike (store copy). */
    "ALTER TABLE outbox ADD COLUMN lease_owner TEXT;"
    "ALTER TABLE outbox ADD COLUMN lease_until INTEGER;",
#if STORE_SQLITE_SCHEMA >= 9
    /* 9: a receiver's hold shared by the nodes of one PostgreSQL
       (store_hold_fail). One SQLite node keeps its holds in memory
       (deliver.c); the table keeps both backends alike (store copy)
       and serves the store's tests. */
    "CREATE TABLE receiver_hold ("
    " receiver_ura TEXT PRIMARY KEY,"
    " hold_until INTEGER NOT NULL,"
    " fails INTEGER NOT NULL,"
    " reason TEXT NOT NULL,"
    " probe_owner TEXT,"
    " probe_until INTEGER,"
    " updated_at INTEGER NOT NULL);",
#endif
#if STORE_SQLITE_SCHEMA >= 10
    /* 10: the report's roll-ups (SQ_STEP10). */
    SQ_STEP10,
#endif
#if STORE_SQLITE_SCHEMA >= 11
    /* 11: PostgreSQL's accepts count their inbox rows in the writer
       (store_pg.c's PG_STEP11); here the triggers still do, and the
       step only keeps both backends' version numbers alike. */
    "SELECT 1;",
#endif
#if STORE_SQLITE_SCHEMA >= 12
    /* 12: pull audit records counted by the writer (SQ_STEP12). */
    SQ_STEP12,
#endif
};

/* Cached statements. */
enum sq_stmt {
	SQ_BEGIN,
	SQ_COMMIT,
	SQ_ROLLBACK,
	SQ_SAVEPOINT,
	SQ_RELEASE,
	SQ_ROLLBACK_TO,
	SQ_FIND_KEY,
	SQ_INSERT_MESSAGE,
	SQ_INSERT_OUTBOX,
	SQ_CLAIM_SELECT,
	SQ_CLAIM_UPDATE,
	SQ_FINISH,
	SQ_UNBLOCK,
	SQ_LANE_OF,
	SQ_NEXT_DUE,
	SQ_INBOX_INSERT,
	SQ_RES_CURRENT,
	SQ_RES_INSERT,
	SQ_RES_SUPERSEDE,
	SQ_RES_CARRIED,
	SQ_AUDIT_HEAD,
	SQ_AUDIT_INSERT,
	SQ_REP_WRITER_ON,
	SQ_REP_WRITER_OFF,
	SQ_REP_PULL,
	SQ_REP_PAT,
	SQ_REP_PAT_LAST,
	SQ_COUNT
};

/* Columns read by sq_row_read, in order. */
#define SQ_ROW_COLS                                                            \
	"o.message_seq, m.id, o.receiver_ura, m.sender_ura, m.direction,"      \
	" o.state, o.attempts, m.accepted_at, o.next_attempt_at,"              \
	" o.first_attempt_at, o.last_attempt_at, o.delivered_at,"              \
	" o.last_status, o.replays, o.last_error, o.outcome, o.waiting,"       \
	" coalesce(o.age_from, m.accepted_at), m.bundle_system"
#define SQ_ROW_FROM " FROM outbox o JOIN messages m ON m.seq = o.message_seq "

/* Rows in due/inflight/held that precede o for the same receiver and
 * patient: o must wait for them. */
#define SQ_BLOCKED                                                             \
	"EXISTS (SELECT 1 FROM outbox p WHERE p.receiver_ura ="                \
	" o.receiver_ura AND p.patient_key = o.patient_key AND"                \
	" p.message_seq < o.message_seq AND"                                   \
	" p.state IN ('due', 'inflight', 'held'))"

static const char *const sq_sql[SQ_COUNT] = {
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
    [SQ_SAVEPOINT] = "SAVEPOINT doc",
    [SQ_RELEASE] = "RELEASE doc",
    [SQ_ROLLBACK_TO] = "ROLLBACK TO doc",
    [SQ_FIND_KEY] = "SELECT id, answer_status, answer_body, sha256"
		    " FROM messages"
		    " WHERE direction = ?1 AND sender_ura = ?2 AND"
		    " bundle_system = ?3 AND bundle_value = ?4",
    [SQ_INSERT_MESSAGE] =
	"INSERT INTO messages (id, direction, sender_ura,"
	" bundle_system, bundle_value, patient_key, fhir_version,"
	" document, jws, sha256, accepted_at, answer_status,"
	" answer_body, transform_report, event) VALUES (?1, ?2, ?3, ?4,"
	" ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [SQ_INSERT_OUTBOX] =
	"INSERT INTO outbox (message_seq, receiver_ura, patient_key, state,"
	" next_attempt_at, waiting) VALUES (?1, ?2, ?3, 'due', ?4,"
	" EXISTS (SELECT 1 FROM outbox p WHERE p.receiver_ura = ?2 AND"
	" p.patient_key = ?3 AND p.state IN " SQ_PENDING "))",
    /* Lane heads only (waiting = 0); the NOT EXISTS re-checks the order
       itself, so a wrong flag can never reorder a lane. */
    [SQ_CLAIM_SELECT] =
	"SELECT " SQ_ROW_COLS
	" FROM outbox o INDEXED BY outbox_ready JOIN messages m"
	" ON m.seq = o.message_seq WHERE o.state = 'due' AND o.waiting = 0"
	" AND o.next_attempt_at <= ?1"
	" AND (?2 IS NULL OR o.receiver_ura = ?2)"
	" AND NOT " SQ_BLOCKED
	" ORDER BY o.next_attempt_at, o.message_seq LIMIT ?3",
    [SQ_CLAIM_UPDATE] =
	"UPDATE outbox SET state = 'inflight', attempts = attempts + 1,"
	" first_attempt_at = coalesce(first_attempt_at, ?3),"
	" last_attempt_at = ?3 WHERE message_seq = ?1 AND"
	" receiver_ura = ?2 AND state = 'due'",
    [SQ_FINISH] =
	"UPDATE outbox SET state = ?3, last_status = ?4,"
	" last_error = ?5, outcome = ?6,"
	" next_attempt_at = CASE WHEN ?3 = 'due' THEN ?7"
	"  ELSE next_attempt_at END,"
	" delivered_at = CASE WHEN ?3 = 'delivered' THEN ?7"
	"  ELSE delivered_at END"
	" WHERE message_seq = (SELECT seq FROM messages WHERE id = ?1)"
	" AND receiver_ura = ?2 AND state = 'inflight'",
    [SQ_UNBLOCK] =
	"UPDATE outbox SET waiting = 0 WHERE waiting = 1 AND message_seq ="
	" (SELECT min(p.message_seq) FROM outbox p WHERE p.receiver_ura = ?1"
	" AND p.patient_key = ?2 AND p.state IN " SQ_PENDING ")"
	" AND receiver_ura = ?1",
    [SQ_LANE_OF] = "SELECT o.patient_key FROM outbox o JOIN messages m"
		   " ON m.seq = o.message_seq"
		   " WHERE m.id = ?1 AND o.receiver_ura = ?2",
    [SQ_NEXT_DUE] =
	"SELECT o.next_attempt_at FROM outbox o INDEXED BY outbox_ready"
	" WHERE o.state = 'due' AND o.waiting = 0"
	" AND (?1 IS NULL OR o.receiver_ura = ?1)"
	" ORDER BY o.next_attempt_at LIMIT 1",
    [SQ_INBOX_INSERT] = "INSERT INTO inbox (message_seq, receiver_ura, bsn,"
			" resources, sender_ura) VALUES (?1, ?2, ?3, ?4, ?5)",
    /* The newest version by the unique index, one step however many
       versions there are (a filter on superseded_seq would read them
       all); it is the current one unless retention took its message. */
    [SQ_RES_CURRENT] = "SELECT seq, vid, json, superseded_seq IS NULL"
		       " FROM res_versions"
		       " WHERE receiver_ura = ?1 AND type = ?2 AND id = ?3"
		       " ORDER BY vid DESC LIMIT 1",
    /* sha256 is '' when the index gave none (it compares content). */
    [SQ_RES_INSERT] =
	"INSERT INTO res_versions (receiver_ura, bsn, type, id, vid, res_key,"
	" message_seq, updated, hidden, sha256, json) VALUES (?1, ?2, ?3, ?4,"
	" ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [SQ_RES_SUPERSEDE] =
	"UPDATE res_versions SET superseded_seq = ?2 WHERE seq = ?1",
    [SQ_RES_CARRIED] =
	"UPDATE res_versions SET message_seq = ?2 WHERE seq = ?1",
    /* The chain's head: the last seq ever given (a deleted tail leaves
       its seqs given) and the hash of the last record there is. */
    [SQ_AUDIT_HEAD] =
	"SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE"
	" name = 'audit'), 0), (SELECT hash FROM audit ORDER BY seq DESC"
	" LIMIT 1)",
    [SQ_AUDIT_INSERT] =
	"INSERT INTO audit (seq, at, ura, cert_serial, cert_issuer, bsn,"
	" interaction, query, count, status, request_id, prev_hash, hash)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* The writer's audit batch counts its pulls itself (SQ_STEP12). */
    [SQ_REP_WRITER_ON] = "INSERT INTO rep_writer (since) VALUES (?1)",
    [SQ_REP_WRITER_OFF] = "DELETE FROM rep_writer",
    [SQ_REP_PULL] =
	"INSERT INTO rep_pull (hour, ura, n) VALUES (?1, ?2, ?3)" SQ_UPS(
	    "hour, ura"),
    [SQ_REP_PAT] =
	"INSERT OR IGNORE INTO rep_pat (day, ura, bsn) VALUES (?1, ?2, ?3)",
    [SQ_REP_PAT_LAST] =
	"INSERT INTO rep_pat_last (ura, bsn, last_day) VALUES (?1, ?2, ?3)"
	" ON CONFLICT (ura, bsn) DO UPDATE SET last_day = max(last_day,"
	" excluded.last_day)",
};

/* One connection. */
/* Query shapes of store_res_find kept prepared per connection. */
#define SQ_RF_CACHE 24

struct sq {
	sqlite3 *db;
	bool relaxed; /* synchronous=NORMAL except while accepting */
	sqlite3_stmt *st[SQ_COUNT];
	/* The -wal file this connection writes (SQLite's "has moved" check
	   covers the database file only), recorded once it exists. */
	bool wal_known;
	dev_t wal_dev;
	ino_t wal_ino;
	/* Audit-only transactions may commit without fsync (the daemon's
	   relaxed_state): the next accept's fsync makes them durable. */
	bool audit_relaxed;
	/* The audit chain's head within the open transaction (read at its
	   first audit record, advanced by each one written). */
	bool chain_known;
	int64_t chain_seq;
	char chain_hash[65];
	/* store_res_find's statements, one per shape of query, kept
	   prepared (a pull request runs several; preparing each again
	   cost about a third of a search's CPU time). */
	struct {
		char *sql;
		sqlite3_stmt *st;
	} rf[SQ_RF_CACHE];
	unsigned rf_next; /* the slot replaced next */
	/* store copy's INSERT for the table it writes (sq_raw_put). */
	sqlite3_stmt *raw_put;
	char raw_table[64];
	int64_t deadline; /* store_set_deadline; 0: none */
};

static const char *const sq_states[STORE_STATE_COUNT] = {
    [STORE_DUE] = "due",
    [STORE_INFLIGHT] = "inflight",
    [STORE_DELIVERED] = "delivered",
    [STORE_DEAD] = "dead",
    [STORE_HELD] = "held",
};

/* Map an SQLite result code: busy/locked are temporary, I/O and full disk
 * are I/O errors, constraint is invalid input, corruption permanent. */
static enum gw_err
sq_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return GW_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
	case SQLITE_INTERRUPT:
		return GW_TEMP;
	case SQLITE_NOMEM:
		return GW_NOMEM;
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
		return GW_IO;
	case SQLITE_CONSTRAINT:
		return GW_INVALID;
	case SQLITE_NOTFOUND:
		return GW_NOTFOUND;
	default:
		return GW_PERM;
	}
}

/* Log a database failure (no content: SQLite messages name columns). */
static enum gw_err
sq_fail(struct sq *c, const char *op, int rc)
{
	char what[64], detail[160];

	log_safe(what, sizeof(what), op);
	log_safe(detail, sizeof(detail),
		 c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	log_warnx("event=store_error backend=sqlite op=%s rc=%d detail=%s",
		  what, rc, detail);
	/* Called for failures only: never report success. */
	return sq_err(rc) != GW_OK ? sq_err(rc) : GW_PERM;
}

/* The cached statement i, reset and unbound. */
static enum gw_err
sq_stmt(struct sq *c, enum sq_stmt i, sqlite3_stmt **out)
{
	int rc;

	if (c->st[i] == NULL) {
		rc = sqlite3_prepare_v3(c->db, sq_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &c->st[i],
					NULL);
		if (rc != SQLITE_OK)
			return sq_fail(c, "prepare", rc);
	} else {
		sqlite3_reset(c->st[i]);
		sqlite3_clear_bindings(c->st[i]);
	}
	*out = c->st[i];
	return GW_OK;
}

/* Run a cached statement that returns no rows. */
static enum gw_err
sq_run(struct sq *c, enum sq_stmt i)
{
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	if ((err = sq_stmt(c, i, &st)) != GW_OK)
		return err;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, sq_sql[i], rc);
	return GW_OK;
}

/* Run one-off SQL (pragmas, migrations). */
static enum gw_err
sq_exec(struct sq *c, const char *sql)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return sq_fail(c, "exec", rc);
	return GW_OK;
}

/* An integer from a one-row query such as a pragma. */
static enum gw_err
sq_int(struct sq *c, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	int rc;

	*out = 0;
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "prepare", rc);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		err = GW_NOTFOUND;
	else
		err = sq_fail(c, "query", rc);
out:
	sqlite3_finalize(st);
	return err;
}

static void
sq_rollback(struct sq *c)
{
	if (!sqlite3_get_autocommit(c->db))
		(void)sq_run(c, SQ_ROLLBACK);
}

static enum gw_err
sq_commit(struct sq *c)
{
	enum gw_err err = sq_run(c, SQ_COMMIT);

	if (err != GW_OK)
		sq_rollback(c);
	return err;
}

/* Bring the schema to STORE_SQLITE_SCHEMA, one step per transaction; a
 * concurrent opener (the CLI beside the daemon) re-reads the version
 * under the write lock. */
static enum gw_err
sq_migrate(struct sq *c, bool quiet)
{
	enum gw_err err;
	char sql[64];
	int64_t v, from = -1;

	for (;;) {
		/* Up to date: no write lock needed (the daemon may hold it). */
		if ((err = sq_int(c, "PRAGMA user_version", &v)) != GW_OK)
			return err;
		if (v == STORE_SQLITE_SCHEMA)
			return GW_OK;
		if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
			return err;
		if ((err = sq_int(c, "PRAGMA user_version", &v)) != GW_OK)
			goto fail;
		if (v > STORE_SQLITE_SCHEMA) {
			log_warnx("event=store_schema_too_new version=%lld "
				  "known=%d",
				  (long long)v, STORE_SQLITE_SCHEMA);
			err = GW_CONFIG;
			goto fail;
		}
		if (v == STORE_SQLITE_SCHEMA) {
			sq_rollback(c);
			return GW_OK;
		}
		if (v < 0) {
			err = GW_PERM;
			goto fail;
		}
		if ((err = sq_exec(c, sq_migrations[v])) != GW_OK)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld",
			 (long long)v + 1);
		if ((err = sq_exec(c, sql)) != GW_OK)
			goto fail;
		if ((err = sq_commit(c)) != GW_OK)
			return err;
		if (from < 0)
			from = v;
		/* Creating a new store is routine; upgrading one is news
		   (for the daemon's log; the CLI says it its own way). */
		if (from == 0 || quiet)
			log_debug("event=store_schema_created version=%lld",
				  (long long)v + 1);
		else
			log_info(
			    "event=store_schema_migrated from=%lld to=%lld",
			    (long long)v, (long long)v + 1);
	}
fail:
	sq_rollback(c);
	return err;
}

static void
sq_close(void *conn)
{
	struct sq *c = conn;

	if (c == NULL)
		return;
	for (int i = 0; i < SQ_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	for (int i = 0; i < SQ_RF_CACHE; i++) {
		sqlite3_finalize(c->rf[i].st);
		free(c->rf[i].sql);
	}
	sqlite3_finalize(c->raw_put);
	sqlite3_close(c->db);
	free(c);
}

/*
 * The database file this connection has open against what its path names
 * now (SQLite compares the inode of its descriptor with a stat of the
 * path), then the -wal file against the one recorded when this
 * connection first saw it: the daemon's connections keep the -wal open
 * for their whole life, so it never legitimately goes away meanwhile.
 */
static enum store_file_state
sq_check_files(void *conn)
{
	struct sq *c = conn;
	const char *db = sqlite3_db_filename(c->db, "main");
	const char *wal;
	struct stat sb;
	int moved = 0;

	if (db == NULL || db[0] == '\0')
		return STORE_FILE_OK;
	if (sqlite3_file_control(c->db, "main", SQLITE_FCNTL_HAS_MOVED,
				 &moved) != SQLITE_OK)
		moved = 0;
	if (moved)
		return stat(db, &sb) != 0 && errno == ENOENT
			   ? STORE_FILE_MISSING
			   : STORE_FILE_REPLACED;
	if ((wal = sqlite3_filename_wal(db)) == NULL)
		return STORE_FILE_OK;
	if (stat(wal, &sb) != 0) {
		if (errno == ENOENT && c->wal_known)
			return STORE_FILE_MISSING;
		return STORE_FILE_OK;
	}
	if (!c->wal_known) {
		c->wal_known = true;
		c->wal_dev = sb.st_dev;
		c->wal_ino = sb.st_ino;
		return STORE_FILE_OK;
	}
	if (sb.st_dev != c->wal_dev || sb.st_ino != c->wal_ino)
		return STORE_FILE_REPLACED;
	return STORE_FILE_OK;
}

/* "file:" URI of path for sqlite3_open_v2 (store_sqlite.h). */
bool
store_sqlite_uri(const char *path, const char *query, char *out, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o;
	int w;

	/* "file://" + "/abs": an empty authority, so a path starting with
	   "//" is never read as a host. */
	w = snprintf(out, n, "file:%s", path[0] == '/' ? "//" : "");
	if (w < 0 || (size_t)w >= n)
		return false;
	o = (size_t)w;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		bool plain =
		    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/._-~", *p) != NULL;

		if (o + 4 >= n)
			return false;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	w = snprintf(out + o, n - o, "?%s", query);
	return w >= 0 && (size_t)w < n - o;
}

/*
 * A read-only connection that writes nothing beside the store. SQLite's
 * read-only mode still makes -wal and -shm files for a WAL database
 * (and leaves them behind) when the directory is writable; without a
 * -wal file no connection has the store open and the database file is
 * complete, so it is opened immutable (no locks, no WAL). With one, a
 * gateway may be running: its WAL must be read, through SQLite's
 * read-only WAL support.
 */
enum gw_err
store_sqlite_open_ro(const char *path, sqlite3 **db, int *rc)
{
	char wal[PATH_MAX + 8], uri[3 * PATH_MAX + 64];
	struct stat sb;

	*db = NULL;
	*rc = SQLITE_OK;
	if (stat(path, &sb) != 0)
		return errno == ENOENT ? GW_NOTFOUND : GW_IO;
	if (!S_ISREG(sb.st_mode))
		return GW_INVALID;
	if (sb.st_size == 0)
		return GW_NOTFOUND;
	if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", path) >= sizeof(wal))
		return GW_CONFIG;
	if (stat(wal, &sb) == 0)
		*rc = sqlite3_open_v2(
		    path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	else if (store_sqlite_uri(path, "mode=ro&immutable=1", uri,
				  sizeof(uri)))
		*rc = sqlite3_open_v2(uri, db,
				      SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
					  SQLITE_OPEN_NOMUTEX,
				      NULL);
	else
		return GW_CONFIG;
	if (*rc != SQLITE_OK) {
		sqlite3_close(*db);
		*db = NULL;
		return GW_IO;
	}
	return GW_OK;
}

static enum gw_err
sq_open_readonly(const struct store_options *opts, struct sq *c)
{
	enum gw_err err;
	int64_t v;
	int rc;

	err = store_sqlite_open_ro(opts->path, &c->db, &rc);
	if (err == GW_IO && rc != SQLITE_OK)
		return sq_fail(c, "open", rc);
	if (err != GW_OK)
		return err == GW_INVALID ? GW_IO : err;
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, opts->busy_timeout_ms > 0
					? (int)opts->busy_timeout_ms
					: 5000);
	if (sq_int(c, "PRAGMA user_version", &v) != GW_OK)
		return GW_PERM;
	/* Nothing is migrated here: newer is GW_CONFIG, older GW_PERM. */
	if (v != STORE_SQLITE_SCHEMA)
		return v > STORE_SQLITE_SCHEMA ? GW_CONFIG : GW_PERM;
	return GW_OK;
}

/* PATH.created; false when it does not fit. */
static bool
sq_marker_path(const char *path, char *out, size_t n)
{
	int len = snprintf(out, n, "%s%s", path, STORE_MARKER_SUFFIX);

	return len > 0 && (size_t)len < n;
}

/* An in-memory or URI database leaves no marker. */
static bool
sq_is_file(const char *path)
{
	return strcmp(path, ":memory:") != 0 && strncmp(path, "file:", 5) != 0;
}

bool
store_marked(const char *path)
{
	char marker[PATH_MAX];
	struct stat sb;

	if (path == NULL || !sq_is_file(path))
		return false;
	if (!sq_marker_path(path, marker, sizeof(marker)))
		return true;
	/* Only a marker that is certainly absent allows a new store. */
	return lstat(marker, &sb) == 0 || errno != ENOENT;
}

/*
 * Leave the marker beside a store opened for writing (once; kept from
 * then on), synced with its directory so that it survives a crash right
 * after the store was made.
 */
static enum gw_err
sq_mark(const struct store_options *opts)
{
	char marker[PATH_MAX], dir[PATH_MAX], text[PATH_MAX + 200];
	struct stat sb;
	char *slash;
	int fd, len;
	bool ok;

	if (!sq_is_file(opts->path))
		return GW_OK;
	if (!sq_marker_path(opts->path, marker, sizeof(marker)))
		return GW_CONFIG;
	if (stat(marker, &sb) == 0)
		return GW_OK;
	len = snprintf(text, sizeof(text),
		       "A pzpgw store lives at %s. While this file exists the "
		       "gateway does not make a new, empty store there;\n"
		       "pzpgw queue init does, on an operator's word.\n",
		       opts->path);
	fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0)
		return errno == EEXIST ? GW_OK : GW_IO;
	ok = len > 0 && (size_t)len < sizeof(text) &&
	     write(fd, text, (size_t)len) == (ssize_t)len && fsync(fd) == 0;
	close(fd);
	if (!ok) {
		unlink(marker);
		return GW_IO;
	}
	util_strlcpy(dir, marker, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		util_strlcpy(dir, ".", sizeof(dir));
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	return GW_OK;
}

static enum gw_err
sq_open(const struct store_options *opts, bool migrate, void **out)
{
	struct sq *c = NULL;
	enum gw_err err;
	struct stat sb;
	int64_t v;
	int rc, flags;

	*out = NULL;
	if (opts->path == NULL || opts->path[0] == '\0')
		return GW_CONFIG;
	if (!opts->create && stat(opts->path, &sb) != 0)
		return errno == ENOENT ? GW_NOTFOUND : GW_IO;
	/* An empty file where the store should be is no store: without
	   create, starting on it would make a new empty store silently. */
	if (!opts->create && S_ISREG(sb.st_mode) && sb.st_size == 0)
		return GW_NOTFOUND;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return GW_NOMEM;
	if (opts->readonly) {
		if ((err = sq_open_readonly(opts, c)) != GW_OK)
			goto fail;
		*out = c;
		return GW_OK;
	}
	flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	if (opts->create)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(opts->path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "open", rc);
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, opts->busy_timeout_ms > 0
					? (int)opts->busy_timeout_ms
					: 5000);
	/* auto_vacuum only takes effect before the first table exists, and
	   setting it takes the write lock: only on a new, empty file. */
	if ((err = sq_int(c, "PRAGMA page_count", &v)) != GW_OK)
		goto fail;
	if (v == 0 && migrate &&
	    (err = sq_exec(c, "PRAGMA auto_vacuum = INCREMENTAL")) != GW_OK)
		goto fail;
	if ((err = sq_exec(c, "PRAGMA journal_mode = WAL")) != GW_OK)
		goto fail;
	if ((err = sq_exec(c, "PRAGMA synchronous = FULL; "
			      "PRAGMA foreign_keys = ON")) != GW_OK)
		goto fail;
	/* With background upkeep a thread checkpoints every
	   STORE_UPKEEP_MS; the automatic checkpoint inside a commit stays
	   as a safety net only (40 MB of WAL), and the WAL file is cut back
	   to 64 MB after a checkpoint. */
	if (opts->background_upkeep &&
	    (err = sq_exec(c, "PRAGMA wal_autocheckpoint = 10000; "
			      "PRAGMA journal_size_limit = 67108864")) != GW_OK)
		goto fail;
	c->audit_relaxed = opts->relaxed_state;
	if (migrate && opts->relaxed_state) {
		if ((err = sq_exec(c, "PRAGMA synchronous = NORMAL")) != GW_OK)
			goto fail;
		c->relaxed = true;
	}
	if (migrate) {
		if ((err = sq_migrate(c, opts->quiet)) != GW_OK)
			goto fail;
	} else {
		if ((err = sq_int(c, "PRAGMA user_version", &v)) != GW_OK)
			goto fail;
		if (v != STORE_SQLITE_SCHEMA) {
			err = v > STORE_SQLITE_SCHEMA ? GW_CONFIG : GW_PERM;
			goto fail;
		}
	}
	(void)sq_check_files(c);
	if (migrate && (err = sq_mark(opts)) != GW_OK)
		goto fail;
	*out = c;
	return GW_OK;
fail:
	sq_close(c);
	return err;
}

static int
sq_schema_version(void *conn)
{
	int64_t v = -1;

	if (sq_int(conn, "PRAGMA user_version", &v) != GW_OK)
		return -1;
	return (int)v;
}

/* A heap copy of text column i, or NULL when the column is NULL. */
static char *
sq_text(sqlite3_stmt *st, int i, bool *nomem)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	char *s;

	if (t == NULL)
		return NULL;
	if ((s = strdup((const char *)t)) == NULL)
		*nomem = true;
	return s;
}

static void
sq_copy(char *dst, size_t n, sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	util_strlcpy(dst, t != NULL ? (const char *)t : "", n);
}

static enum store_state
sq_state(const unsigned char *s)
{
	for (int i = 0; i < STORE_STATE_COUNT; i++)
		if (s != NULL && strcmp((const char *)s, sq_states[i]) == 0)
			return (enum store_state)i;
	return STORE_DEAD; /* a value the schema's CHECK forbids */
}

/*
 * The direction from columns i (direction) and sys (bundle_system).
 * Notices (STORE_NOTICE) are stored as 'outbound', which the schema's
 * CHECK allows (widening it would rebuild the messages table), under the
 * reserved identifier system STORE_NOTICE_SYSTEM, which no other accept
 * may use (store_check).
 */
static enum store_direction
sq_dir(sqlite3_stmt *st, int i, int sys)
{
	const char *d = (const char *)sqlite3_column_text(st, i);
	const char *s = (const char *)sqlite3_column_text(st, sys);

	if (d != NULL && strcmp(d, "inbound") == 0)
		return STORE_INBOUND;
	if (s != NULL && strcmp(s, STORE_NOTICE_SYSTEM) == 0)
		return STORE_NOTICE;
	return STORE_OUTBOUND;
}

/* Fill r from a statement selecting SQ_ROW_COLS. */
static enum gw_err
sq_row_read(sqlite3_stmt *st, struct store_row *r)
{
	bool nomem = false;

	memset(r, 0, sizeof(*r));
	r->seq = sqlite3_column_int64(st, 0);
	sq_copy(r->id, sizeof(r->id), st, 1);
	sq_copy(r->receiver, sizeof(r->receiver), st, 2);
	sq_copy(r->sender, sizeof(r->sender), st, 3);
	r->direction = sq_dir(st, 4, 18);
	r->state = sq_state(sqlite3_column_text(st, 5));
	r->attempts = (unsigned)sqlite3_column_int64(st, 6);
	r->accepted_at = sqlite3_column_int64(st, 7);
	r->next_attempt_at = sqlite3_column_int64(st, 8);
	r->first_attempt_at = sqlite3_column_int64(st, 9);
	r->last_attempt_at = sqlite3_column_int64(st, 10);
	r->delivered_at = sqlite3_column_int64(st, 11);
	r->last_status = sqlite3_column_int(st, 12);
	r->replays = (unsigned)sqlite3_column_int64(st, 13);
	r->last_error = sq_text(st, 14, &nomem);
	r->outcome = sq_text(st, 15, &nomem);
	r->waiting = sqlite3_column_int(st, 16) != 0;
	r->age_from = sqlite3_column_int64(st, 17);
	return nomem ? GW_NOMEM : GW_OK;
}

/* Step st to the end, collecting rows into a growing array. */
static enum gw_err
sq_rows_collect(struct sq *c, sqlite3_stmt *st, struct store_row **rows,
		size_t *n)
{
	struct store_row *v = NULL, *nv;
	size_t len = 0, cap = 0;
	enum gw_err err = GW_OK;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			v = nv;
		}
		err = sq_row_read(st, &v[len]);
		len++;
		if (err != GW_OK)
			goto out;
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "select", rc);
out:
	sqlite3_reset(st);
	if (err != GW_OK) {
		store_rows_free(v, len);
		v = NULL;
		len = 0;
	}
	*rows = v;
	*n = len;
	return err;
}

static void
sq_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* The direction column's value (a notice is stored as outbound, see
 * sq_dir). */
static const char *
sq_direction(enum store_direction d)
{
	return d == STORE_INBOUND ? "inbound" : "outbound";
}

/* One index entry of message seq for receiver x: a new version unless
 * the current one has the same content, which then belongs to this
 * message too (retention keeps it as long as the latest message that
 * carried it). */
static enum gw_err
sq_index_entry(struct sq *c, int64_t seq, int64_t at,
	       const struct store_index *x, const struct store_index_entry *e)
{
	sqlite3_stmt *st = NULL;
	int64_t cur = 0, vid = 0, nseq;
	bool same = false;
	enum gw_err err;
	int rc;

	if ((err = sq_stmt(c, SQ_RES_CURRENT, &st)) != GW_OK)
		return err;
	sq_bind_text(st, 1, x->receiver);
	sq_bind_text(st, 2, e->type);
	sq_bind_text(st, 3, e->id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		vid = sqlite3_column_int64(st, 1);
		/* The content itself, not its hash: the index need not hash
		   every resource it sends (versions of before have one). */
		if (sqlite3_column_int(st, 3) != 0) {
			const void *json = sqlite3_column_blob(st, 2);

			cur = sqlite3_column_int64(st, 0);
			same = (size_t)sqlite3_column_bytes(st, 2) ==
				   e->json_len &&
			       (e->json_len == 0 ||
				(json != NULL &&
				 memcmp(json, e->json, e->json_len) == 0));
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_fail(c, "index_current", rc);
	if (same) {
		if ((err = sq_stmt(c, SQ_RES_CARRIED, &st)) != GW_OK)
			return err;
		sqlite3_bind_int64(st, 1, cur);
		sqlite3_bind_int64(st, 2, seq);
	} else {
		if ((err = sq_stmt(c, SQ_RES_INSERT, &st)) != GW_OK)
			return err;
		sq_bind_text(st, 1, x->receiver);
		sq_bind_text(st, 2, x->bsn);
		sq_bind_text(st, 3, e->type);
		sq_bind_text(st, 4, e->id);
		sqlite3_bind_int64(st, 5, vid + 1);
		sq_bind_text(st, 6, e->key);
		sqlite3_bind_int64(st, 7, seq);
		sqlite3_bind_int64(st, 8, at);
		sqlite3_bind_int(st, 9, e->hidden ? 1 : 0);
		sq_bind_text(st, 10, e->sha256 != NULL ? e->sha256 : "");
		sqlite3_bind_text64(st, 11, e->json, e->json_len, SQLITE_STATIC,
				    SQLITE_UTF8);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "index_write", rc);
	if (same || cur == 0)
		return GW_OK;
	nseq = sqlite3_last_insert_rowid(c->db);
	if ((err = sq_stmt(c, SQ_RES_SUPERSEDE, &st)) != GW_OK)
		return err;
	sqlite3_bind_int64(st, 1, cur);
	sqlite3_bind_int64(st, 2, nseq);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? GW_OK : sq_fail(c, "index_supersede", rc);
}

/* The received-data index of message seq (store_accept.index), in the
 * accept's transaction: searchable exactly when acknowledged. */
static enum gw_err
sq_index_write(struct sq *c, int64_t seq, const struct store_accept *r)
{
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	for (size_t i = 0; i < r->nindex; i++) {
		const struct store_index *x = &r->index[i];

		if ((err = sq_stmt(c, SQ_INBOX_INSERT, &st)) != GW_OK)
			return err;
		sqlite3_bind_int64(st, 1, seq);
		sq_bind_text(st, 2, x->receiver);
		sq_bind_text(st, 3, x->bsn);
		sqlite3_bind_int64(st, 4, (int64_t)x->n);
		sq_bind_text(st, 5, x->sender);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_fail(c, "insert_inbox", rc);
		for (size_t k = 0; k < x->n; k++)
			if ((err = sq_index_entry(c, seq, r->accepted_at, x,
						  &x->entries[k])) != GW_OK)
				return err;
	}
	return GW_OK;
}

/*
 * Append one audit record inside the open transaction: seq and
 * prev_hash continue the chain's head, hash is computed; *rec gets them.
 * The head advances only when the insert succeeded.
 */
static enum gw_err
sq_audit_write(struct sq *c, struct store_audit_rec *rec)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *h;
	enum gw_err err;
	int rc;

	if (!c->chain_known) {
		if ((err = sq_stmt(c, SQ_AUDIT_HEAD, &st)) != GW_OK)
			return err;
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(st);
			return sq_fail(c, "audit_head", rc);
		}
		c->chain_seq = sqlite3_column_int64(st, 0);
		h = sqlite3_column_text(st, 1);
		util_strlcpy(c->chain_hash,
			     h != NULL ? (const char *)h : STORE_AUDIT_GENESIS,
			     sizeof(c->chain_hash));
		sqlite3_reset(st);
		c->chain_known = true;
	}
	rec->seq = c->chain_seq + 1;
	util_strlcpy(rec->prev_hash, c->chain_hash, sizeof(rec->prev_hash));
	store_audit_hash(rec, rec->hash);
	if ((err = sq_stmt(c, SQ_AUDIT_INSERT, &st)) != GW_OK)
		return err;
	sqlite3_bind_int64(st, 1, rec->seq);
	sqlite3_bind_int64(st, 2, rec->at);
	sq_bind_text(st, 3, rec->ura);
	sq_bind_text(st, 4, rec->cert_serial);
	sq_bind_text(st, 5, rec->cert_issuer);
	sq_bind_text(st, 6, rec->bsn);
	sq_bind_text(st, 7, rec->interaction);
	sq_bind_text(st, 8, rec->query);
	sqlite3_bind_int64(st, 9, rec->count);
	sqlite3_bind_int(st, 10, rec->status);
	sq_bind_text(st, 11, rec->request_id);
	sq_bind_text(st, 12, rec->prev_hash);
	sq_bind_text(st, 13, rec->hash);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "audit_insert", rc);
	c->chain_seq = rec->seq;
	util_strlcpy(c->chain_hash, rec->hash, sizeof(c->chain_hash));
	return GW_OK;
}

/* The notices of r, each a message of its own with one outbox row,
 * inside r's savepoint (so they commit exactly when r does). */
static enum gw_err
sq_accept_notices(struct sq *c, const struct store_accept *r)
{
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int64_t seq;
	int rc;

	for (size_t i = 0; i < r->nnotices; i++) {
		const struct store_notice *nt = &r->notices[i];

		if ((err = sq_stmt(c, SQ_INSERT_MESSAGE, &st)) != GW_OK)
			return err;
		sq_bind_text(st, 1, nt->id);
		sqlite3_bind_text(st, 2, sq_direction(STORE_NOTICE), -1,
				  SQLITE_STATIC);
		sq_bind_text(st, 3, r->sender_ura);
		sq_bind_text(st, 4, STORE_NOTICE_SYSTEM);
		sq_bind_text(st, 5, nt->id);
		sq_bind_text(st, 6, r->patient_key);
		sq_bind_text(st, 7, r->fhir_version);
		sqlite3_bind_blob64(st, 8, nt->doc, nt->doc_len, SQLITE_STATIC);
		sqlite3_bind_null(st, 9);
		sq_bind_text(st, 10, nt->sha256);
		sqlite3_bind_int64(st, 11, r->accepted_at);
		sqlite3_bind_int(st, 12, 0); /* nobody was answered */
		sqlite3_bind_null(st, 13);
		sqlite3_bind_text(st, 15, "", 0, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_fail(c, "insert_notice", rc);
		seq = sqlite3_last_insert_rowid(c->db);
		if ((err = sq_stmt(c, SQ_INSERT_OUTBOX, &st)) != GW_OK)
			return err;
		sqlite3_bind_int64(st, 1, seq);
		sq_bind_text(st, 2, nt->receiver);
		sq_bind_text(st, 3, r->patient_key);
		sqlite3_bind_int64(st, 4, r->accepted_at);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_fail(c, "insert_notice_outbox", rc);
	}
	return GW_OK;
}

/* Accept one document inside the open transaction. GW_OK stored,
 * GW_EXISTS with the original answer, or an error (caller rolls back the
 * savepoint). */
static enum gw_err
sq_accept_one(struct sq *c, const struct store_accept *r,
	      struct store_result *res)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *body;
	const char *sha;
	enum gw_err err;
	int64_t seq;
	int rc;

	if ((err = sq_stmt(c, SQ_FIND_KEY, &st)) != GW_OK)
		return err;
	sqlite3_bind_text(st, 1, sq_direction(r->direction), -1, SQLITE_STATIC);
	sq_bind_text(st, 2, r->sender_ura);
	sq_bind_text(st, 3, r->bundle_system);
	sq_bind_text(st, 4, r->bundle_value);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sq_copy(res->id, sizeof(res->id), st, 0);
		res->answer_status = sqlite3_column_int(st, 1);
		body = sqlite3_column_text(st, 2);
		sha = (const char *)sqlite3_column_text(st, 3);
		/* The same key for other content is not a re-post. */
		res->conflict = r->sha256 != NULL && sha != NULL &&
				strcmp(sha, r->sha256) != 0;
		err = GW_EXISTS;
		if (body != NULL &&
		    (res->answer_body = strdup((const char *)body)) == NULL)
			err = GW_NOMEM;
		sqlite3_reset(st);
		return err;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "find_key", rc);

	if ((err = sq_stmt(c, SQ_INSERT_MESSAGE, &st)) != GW_OK)
		return err;
	sq_bind_text(st, 1, r->id);
	sqlite3_bind_text(st, 2, sq_direction(r->direction), -1, SQLITE_STATIC);
	sq_bind_text(st, 3, r->sender_ura);
	sq_bind_text(st, 4, r->bundle_system);
	sq_bind_text(st, 5, r->bundle_value);
	sq_bind_text(st, 6, r->patient_key);
	sq_bind_text(st, 7, r->fhir_version);
	sqlite3_bind_blob64(st, 8, r->doc, r->doc_len, SQLITE_STATIC);
	sq_bind_text(st, 9, r->jws);
	sq_bind_text(st, 10, r->sha256);
	sqlite3_bind_int64(st, 11, r->accepted_at);
	sqlite3_bind_int(st, 12, r->answer_status);
	sq_bind_text(st, 13, r->answer_body);
	sq_bind_text(st, 14, r->report);
	sqlite3_bind_text(st, 15, r->event != NULL ? r->event : "", -1,
			  SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "insert_message", rc);
	seq = sqlite3_last_insert_rowid(c->db);

	for (size_t i = 0; i < r->nreceivers; i++) {
		if ((err = sq_stmt(c, SQ_INSERT_OUTBOX, &st)) != GW_OK)
			return err;
		sqlite3_bind_int64(st, 1, seq);
		sq_bind_text(st, 2, r->receivers[i]);
		sq_bind_text(st, 3, r->patient_key);
		sqlite3_bind_int64(st, 4, r->accepted_at);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return sq_fail(c, "insert_outbox", rc);
	}
	if ((err = sq_index_write(c, seq, r)) != GW_OK)
		return err;
	/* Audited in the same transaction: stored iff recorded. */
	for (size_t i = 0; i < r->naudit; i++) {
		struct store_audit_rec rec = r->audit[i];

		if (rec.at == 0)
			rec.at = r->accepted_at;
		if ((err = sq_audit_write(c, &rec)) != GW_OK)
			return err;
	}
	if ((err = sq_accept_notices(c, r)) != GW_OK)
		return err;
	util_strlcpy(res->id, r->id, sizeof(res->id));
	res->answer_status = r->answer_status;
	if (r->answer_body != NULL &&
	    (res->answer_body = strdup(r->answer_body)) == NULL)
		return GW_NOMEM;
	return GW_OK;
}

/*
 * One pass over a batch inside the open transaction. With savepoints, a
 * document that fails is rolled back alone and the others go on; without,
 * the first failure stops the pass (*failed set) and the caller rolls
 * back the whole transaction. Returns what ends the transaction early
 * (its error), else GW_OK.
 */
static enum gw_err
sq_accept_pass(struct sq *c, const struct store_accept *const *reqs,
	       struct store_result *res, size_t n, bool savepoints,
	       bool *failed)
{
	enum gw_err err, txn;

	*failed = false;
	c->chain_known = false;
	for (size_t i = 0; i < n; i++) {
		/* A document rolled back takes its audit records with it:
		   the chain's head goes back too. */
		int64_t chain_seq = c->chain_seq;
		bool chain_known = c->chain_known;
		char chain_hash[65];

		memcpy(chain_hash, c->chain_hash, sizeof(chain_hash));
		if (savepoints && (txn = sq_run(c, SQ_SAVEPOINT)) != GW_OK)
			return txn;
		err = sq_accept_one(c, reqs[i], &res[i]);
		res[i].err = err;
		if (err == GW_OK || err == GW_EXISTS) {
			if (savepoints &&
			    (txn = sq_run(c, SQ_RELEASE)) != GW_OK)
				return txn;
			continue;
		}
		/* This document fails alone unless the transaction is gone
		   (I/O error, disk full): then the whole batch fails. */
		store_result_cleanup(&res[i]);
		res[i].err = err;
		if (sqlite3_get_autocommit(c->db))
			return err;
		if (!savepoints) {
			*failed = true;
			return GW_OK;
		}
		c->chain_seq = chain_seq;
		c->chain_known = chain_known;
		memcpy(c->chain_hash, chain_hash, sizeof(chain_hash));
		if ((txn = sq_run(c, SQ_ROLLBACK_TO)) != GW_OK ||
		    (txn = sq_run(c, SQ_RELEASE)) != GW_OK)
			return txn;
	}
	return GW_OK;
}

/*
 * The batch in one transaction. A savepoint per document would let one
 * fail alone, but SQLite then copies every page the document changes
 * that existed before it into a statement journal (with the index, most
 * of them: about 125 KB written per 30 KB message). Documents almost
 * never fail, so the batch runs without savepoints first; only when one
 * fails is the transaction rolled back and the batch run again with them.
 */
static enum gw_err
sq_accept_batch(void *conn, const struct store_accept *const *reqs,
		struct store_result *res, size_t n)
{
	struct sq *c = conn;
	enum gw_err txn = GW_OK;
	bool failed = false;

	/* An accept is acknowledged: its commit always waits for fsync. */
	if (c->relaxed &&
	    (txn = sq_exec(c, "PRAGMA synchronous = FULL")) != GW_OK)
		goto out;
	if ((txn = sq_run(c, SQ_BEGIN)) != GW_OK)
		goto out;
	if ((txn = sq_accept_pass(c, reqs, res, n, false, &failed)) != GW_OK)
		goto out;
	if (failed) {
		sq_rollback(c);
		/* Alone in its batch, the document's failure is the answer. */
		if (n == 1)
			goto out;
		for (size_t i = 0; i < n; i++) {
			store_result_cleanup(&res[i]);
			memset(&res[i], 0, sizeof(res[i]));
		}
		if ((txn = sq_run(c, SQ_BEGIN)) != GW_OK ||
		    (txn = sq_accept_pass(c, reqs, res, n, true, &failed)) !=
			GW_OK)
			goto out;
	}
	txn = sq_commit(c);
out:
	if (txn != GW_OK) {
		sq_rollback(c);
		for (size_t i = 0; i < n; i++) {
			store_result_cleanup(&res[i]);
			res[i].err = txn;
		}
	}
	if (c->relaxed)
		(void)sq_exec(c, "PRAGMA synchronous = NORMAL");
	return txn;
}

static enum gw_err
sq_claim(void *conn, const char *receiver, int64_t due_by, int64_t now,
	 size_t max, struct store_row **rows, size_t *n)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	size_t i;
	int rc;

	*rows = NULL;
	*n = 0;
	if (max == 0)
		return GW_OK;
	/* Look first without the write lock: when nothing is claimable the
	   loop need not wait for the writer thread's commit. */
	if ((err = sq_stmt(c, SQ_CLAIM_SELECT, &st)) != GW_OK)
		return err;
	sqlite3_bind_int64(st, 1, due_by);
	sq_bind_text(st, 2, receiver);
	sqlite3_bind_int64(st, 3, 1);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return GW_OK;
	if (rc != SQLITE_ROW)
		return sq_fail(c, "claim", rc);
	if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
		return err;
	if ((err = sq_stmt(c, SQ_CLAIM_SELECT, &st)) != GW_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, due_by);
	sq_bind_text(st, 2, receiver);
	sqlite3_bind_int64(st, 3, max > INT_MAX ? INT_MAX : (int64_t)max);
	if ((err = sq_rows_collect(c, st, rows, n)) != GW_OK)
		goto fail;
	for (i = 0; i < *n; i++) {
		struct store_row *r = &(*rows)[i];

		if ((err = sq_stmt(c, SQ_CLAIM_UPDATE, &st)) != GW_OK)
			goto fail;
		sqlite3_bind_int64(st, 1, r->seq);
		sq_bind_text(st, 2, r->receiver);
		sqlite3_bind_int64(st, 3, now);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			err = sq_fail(c, "claim", rc);
			goto fail;
		}
		r->state = STORE_INFLIGHT;
		r->attempts++;
		if (r->first_attempt_at == 0)
			r->first_attempt_at = now;
		r->last_attempt_at = now;
	}
	if ((err = sq_commit(c)) != GW_OK)
		goto fail;
	return GW_OK;
fail:
	sq_rollback(c);
	store_rows_free(*rows, *n);
	*rows = NULL;
	*n = 0;
	return err;
}

/* Message id's row for receiver left the pending states: the next row
 * of its lane becomes the head. */
static enum gw_err
sq_unblock(struct sq *c, const char *id, const char *receiver)
{
	sqlite3_stmt *st = NULL, *up = NULL;
	char *patient = NULL;
	enum gw_err err;
	bool nomem = false;
	int rc;

	if ((err = sq_stmt(c, SQ_LANE_OF, &st)) != GW_OK)
		return err;
	sq_bind_text(st, 1, id);
	sq_bind_text(st, 2, receiver);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		patient = sq_text(st, 0, &nomem);
	sqlite3_reset(st);
	if (nomem)
		return GW_NOMEM;
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? GW_NOTFOUND
					 : sq_fail(c, "unblock", rc);
	if ((err = sq_stmt(c, SQ_UNBLOCK, &up)) == GW_OK) {
		sq_bind_text(up, 1, receiver);
		sq_bind_text(up, 2, patient);
		rc = sqlite3_step(up);
		sqlite3_reset(up);
		if (rc != SQLITE_DONE)
			err = sq_fail(c, "unblock", rc);
	}
	free(patient);
	return err;
}

/* Due rows of messages accepted before ?1: the range up to the newest
 * message older than ?1 (seq grows with acceptance), each checked
 * exactly (a clock stepped back can interleave the two orders). */
#define SQ_EXPIRED                                                             \
	" FROM outbox o WHERE o.state = 'due' AND o.receiver_ura IN (SELECT"   \
	" q.receiver_ura FROM queue_counts q WHERE q.state = 'due' AND"        \
	" q.n > 0) AND o.message_seq <= coalesce((SELECT m.seq FROM messages"  \
	" m WHERE m.accepted_at < ?1 ORDER BY m.accepted_at DESC LIMIT 1), 0)" \
	" AND (SELECT m.accepted_at FROM messages m WHERE m.seq ="             \
	" o.message_seq) < ?1 AND coalesce(o.age_from, 0) < ?1"

/* One (receiver, patient) lane. */
struct sq_lane {
	char *receiver;
	char *patient;
};

static void
sq_lanes_free(struct sq_lane *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].receiver);
		free(v[i].patient);
	}
	free(v);
}

/* The lanes holding expired rows (step st to the end). */
static enum gw_err
sq_lanes_collect(struct sq *c, sqlite3_stmt *st, struct sq_lane **out,
		 size_t *n)
{
	struct sq_lane *v = NULL, *nv;
	size_t len = 0, cap = 0;
	bool nomem = false;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				nomem = true;
				break;
			}
			v = nv;
		}
		v[len].receiver = sq_text(st, 0, &nomem);
		v[len].patient = sq_text(st, 1, &nomem);
		len++;
		if (nomem)
			break;
	}
	if (nomem || (rc != SQLITE_ROW && rc != SQLITE_DONE)) {
		sq_lanes_free(v, len);
		return nomem ? GW_NOMEM : sq_fail(c, "expire", rc);
	}
	*out = v;
	*n = len;
	return GW_OK;
}

/* The rows of one lane that expire (?1 before, ?2 now, ?3 receiver, ?4
 * patient): one lane at a time, so a batch is bounded by its lanes. The
 * lane's index, named: left to itself the planner takes the receiver's
 * due rows (outbox_state_receiver), thousands per lane behind a receiver
 * that is down. */
#define SQ_EXPIRE_LANE                                                         \
	"UPDATE outbox INDEXED BY outbox_order SET state = 'dead',"            \
	" next_attempt_at = ?2, last_error = coalesce(last_error || '; ', '')" \
	" || 'max age exceeded' WHERE receiver_ura = ?3 AND patient_key = ?4"  \
	" AND state IN ('due', 'inflight', 'held') AND +state = 'due' AND"     \
	" message_seq <= coalesce((SELECT m.seq FROM messages m WHERE"         \
	" m.accepted_at < ?1 ORDER BY m.accepted_at DESC LIMIT 1), 0) AND"     \
	" (SELECT m.accepted_at FROM messages m WHERE m.seq ="                 \
	" outbox.message_seq) < ?1 AND coalesce(age_from, 0) < ?1"

static enum gw_err sq_delete_begin(struct sq *c, bool quiet);

static enum gw_err
sq_expire(void *conn, int64_t before, int64_t now, size_t max, size_t *count)
{
	struct sq *c = conn;
	sqlite3_stmt *sel = NULL, *upd = NULL, *unb = NULL;
	struct sq_lane *lanes = NULL;
	size_t nlanes = 0;
	enum gw_err err;
	int rc;

	*count = 0;
	/* A batch (max > 0, the upkeep thread's) finding the store busy
	   is tried again after its pause, without a log line. */
	if ((err = sq_delete_begin(c, max > 0)) != GW_OK)
		return err;
	rc = sqlite3_prepare_v2(c->db,
				"SELECT DISTINCT o.receiver_ura,"
				" o.patient_key" SQ_EXPIRED " LIMIT ?2",
				-1, &sel, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "prepare", rc);
		goto out;
	}
	sqlite3_bind_int64(sel, 1, before);
	sqlite3_bind_int64(sel, 2, max > 0 ? (sqlite3_int64)max : -1);
	if ((err = sq_lanes_collect(c, sel, &lanes, &nlanes)) != GW_OK ||
	    nlanes == 0)
		goto out;
	rc = sqlite3_prepare_v2(c->db, SQ_EXPIRE_LANE, -1, &upd, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "prepare", rc);
		goto out;
	}
	/* Whatever is left in each lane gets a new head. */
	for (size_t i = 0; i < nlanes && err == GW_OK; i++) {
		sqlite3_bind_int64(upd, 1, before);
		sqlite3_bind_int64(upd, 2, now);
		sq_bind_text(upd, 3, lanes[i].receiver);
		sq_bind_text(upd, 4, lanes[i].patient);
		rc = sqlite3_step(upd);
		sqlite3_reset(upd);
		if (rc != SQLITE_DONE) {
			err = sq_fail(c, "expire", rc);
			break;
		}
		*count += (size_t)sqlite3_changes(c->db);
		if ((err = sq_stmt(c, SQ_UNBLOCK, &unb)) != GW_OK)
			break;
		sq_bind_text(unb, 1, lanes[i].receiver);
		sq_bind_text(unb, 2, lanes[i].patient);
		rc = sqlite3_step(unb);
		sqlite3_reset(unb);
		if (rc != SQLITE_DONE)
			err = sq_fail(c, "expire", rc);
	}
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sq_lanes_free(lanes, nlanes);
	if (err == GW_OK)
		err = sq_commit(c);
	if (err != GW_OK) {
		sq_rollback(c);
		*count = 0;
	}
	return err;
}

static enum gw_err
sq_reschedule(void *conn, const char *receiver, int64_t now, size_t *count)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	int rc;

	*count = 0;
	rc = sqlite3_prepare_v2(c->db,
				"UPDATE outbox SET next_attempt_at = ?2"
				" WHERE state = 'due' AND waiting = 0 AND"
				" receiver_ura = ?1 AND next_attempt_at > ?2",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sq_bind_text(st, 1, receiver);
		sqlite3_bind_int64(st, 2, now);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "reschedule", rc);
	*count = (size_t)sqlite3_changes(c->db);
	return GW_OK;
}

#define SQ_HOLD_COLS                                                           \
	"receiver_ura, hold_until, fails, reason, coalesce(probe_owner, ''),"  \
	" coalesce(probe_until, 0)"

/* The one node of a SQLite store, as the prober. */
#define SQ_NODE "local"

static void
sq_hold_read(sqlite3_stmt *st, struct store_hold *h)
{
	int64_t fails = sqlite3_column_int64(st, 2);

	sq_copy(h->receiver, sizeof(h->receiver), st, 0);
	h->until = sqlite3_column_int64(st, 1);
	h->fails = fails > 0 && fails < UINT_MAX ? (unsigned)fails : 0;
	sq_copy(h->reason, sizeof(h->reason), st, 3);
	sq_copy(h->prober, sizeof(h->prober), st, 4);
	h->probe_until = sqlite3_column_int64(st, 5);
}

static enum gw_err
sq_holds(void *conn, struct store_hold **out, size_t *n)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	struct store_hold *v = NULL, *nv;
	size_t k = 0;
	int rc;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT " SQ_HOLD_COLS " FROM receiver_hold"
				" WHERE fails > 0 ORDER BY receiver_ura",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (k + 1) * sizeof(*v))) == NULL) {
			sqlite3_finalize(st);
			free(v);
			return GW_NOMEM;
		}
		v = nv;
		memset(&v[k], 0, sizeof(v[k]));
		sq_hold_read(st, &v[k++]);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return sq_fail(c, "holds", rc);
	}
	*out = v;
	*n = k;
	return GW_OK;
}

/* Prepare one of the hold statements (finalized by the caller). */
static int
sq_hold_stmt(struct sq *c, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
}

static enum gw_err
sq_hold_fail(void *conn, const char *receiver, const char *reason, int64_t now,
	     const struct store_backoff *b, uint32_t rnd, int64_t not_before,
	     bool *changed, struct store_hold *out)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
		return err;
	rc = sq_hold_stmt(c,
			  "SELECT " SQ_HOLD_COLS " FROM receiver_hold"
			  " WHERE receiver_ura = ?1",
			  &st);
	if (rc == SQLITE_OK) {
		sq_bind_text(st, 1, receiver);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			sq_hold_read(st, out);
		else
			util_strlcpy(out->receiver, receiver,
				     sizeof(out->receiver));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		err = sq_fail(c, "hold", rc);
		goto fail;
	}
	if (out->fails > 0 && out->until > now)
		return sq_commit(c);
	out->fails++;
	out->until = store_hold_until(b, out->fails, now, rnd, not_before);
	util_strlcpy(out->reason, reason, sizeof(out->reason));
	out->prober[0] = '\0';
	out->probe_until = 0;
	rc = sq_hold_stmt(c,
			  "INSERT INTO receiver_hold (receiver_ura, hold_until,"
			  " fails, reason, updated_at) VALUES (?1, ?2, ?3, ?4,"
			  " ?5) ON CONFLICT (receiver_ura) DO UPDATE SET"
			  " hold_until = ?2, fails = ?3, reason = ?4,"
			  " probe_owner = NULL, probe_until = NULL,"
			  " updated_at = ?5",
			  &st);
	if (rc == SQLITE_OK) {
		sq_bind_text(st, 1, receiver);
		sqlite3_bind_int64(st, 2, out->until);
		sqlite3_bind_int64(st, 3, out->fails);
		sq_bind_text(st, 4, reason);
		sqlite3_bind_int64(st, 5, now);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		err = sq_fail(c, "hold", rc);
		goto fail;
	}
	*changed = true;
	return sq_commit(c);
fail:
	sq_rollback(c);
	return err;
}

static enum gw_err
sq_hold_probe(void *conn, const char *receiver, int64_t now,
	      int64_t probe_until)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	int rc, changes = 0;

	rc = sq_hold_stmt(c,
			  "UPDATE receiver_hold SET probe_owner = ?3,"
			  " probe_until = ?4 WHERE receiver_ura = ?1 AND"
			  " fails > 0 AND hold_until <= ?2 AND (probe_owner IS"
			  " NULL OR probe_owner = ?3 OR probe_until <= ?2)",
			  &st);
	if (rc == SQLITE_OK) {
		sq_bind_text(st, 1, receiver);
		sqlite3_bind_int64(st, 2, now);
		sq_bind_text(st, 3, SQ_NODE);
		sqlite3_bind_int64(st, 4, probe_until);
		rc = sqlite3_step(st);
		changes = sqlite3_changes(c->db);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE)
		return sq_fail(c, "hold_probe", rc);
	if (changes == 1)
		return GW_OK;
	rc = sq_hold_stmt(c,
			  "SELECT 1 FROM receiver_hold WHERE receiver_ura = ?1"
			  " AND fails > 0",
			  &st);
	if (rc == SQLITE_OK) {
		sq_bind_text(st, 1, receiver);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return GW_EXISTS;
	if (rc == SQLITE_DONE)
		return GW_NOTFOUND;
	return sq_fail(c, "hold_probe", rc);
}

static enum gw_err
sq_hold_clear(void *conn, const char *receiver, bool *was)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sq_hold_stmt(c,
			  "DELETE FROM receiver_hold WHERE receiver_ura = ?1"
			  " RETURNING fails",
			  &st);
	if (rc == SQLITE_OK) {
		sq_bind_text(st, 1, receiver);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*was = sqlite3_column_int64(st, 0) > 0;
			rc = sqlite3_step(st);
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "hold_clear", rc);
	return GW_OK;
}

/* WAL pages after which upkeep also restarts the log. */
#define SQ_WAL_RESTART 2048
/* How long upkeep waits for a lock: a restart checkpoint holds writers
 * off while it waits for readers, so a long reader (an operator's query)
 * must make it give up and try again, never stall intake. */
#define SQ_UPKEEP_BUSY_MS 20

/*
 * A passive checkpoint: copies what it can from the WAL into the
 * database without waiting for readers or writers. Under steady load the
 * writer is nearly always mid-batch when one completes, so SQLite never
 * gets to start the log again and it would grow to the safety-net
 * checkpoint inside a commit (40 MB, a 50 ms stall); past SQ_WAL_RESTART
 * pages a restart checkpoint follows, which waits for the writer only to
 * copy the few frames committed since.
 */
static enum gw_err
sq_upkeep(void *conn, bool truncate, char *detail, size_t n)
{
	struct sq *c = conn;
	int rc, log = 0, done = 0;

	sqlite3_busy_timeout(c->db, SQ_UPKEEP_BUSY_MS);
	rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
				       &log, &done);
	if (rc == SQLITE_OK && log >= SQ_WAL_RESTART)
		rc = sqlite3_wal_checkpoint_v2(
		    c->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
	/* The WAL keeps its size after a checkpoint (up to
	   journal_size_limit): on a full disk that space is given back. */
	if (rc == SQLITE_OK && truncate)
		rc = sqlite3_wal_checkpoint_v2(
		    c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
	if (rc == SQLITE_OK)
		return GW_OK;
	/* Busy: a reader or the writer was in the way; next time. */
	if ((rc & 0xff) == SQLITE_BUSY)
		return truncate ? GW_TEMP : GW_OK;
	if (detail != NULL && n > 0)
		log_safe(detail, n, sqlite3_errmsg(c->db));
	return sq_err(rc) != GW_OK ? sq_err(rc) : GW_PERM;
}

static enum gw_err
sq_finish(void *conn, const char *id, const char *receiver, enum store_state to,
	  int status, const char *error, const char *outcome, int64_t at)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
		return err;
	if ((err = sq_stmt(c, SQ_FINISH, &st)) != GW_OK)
		goto fail;
	sq_bind_text(st, 1, id);
	sq_bind_text(st, 2, receiver);
	sq_bind_text(st, 3, sq_states[to]);
	if (status > 0)
		sqlite3_bind_int(st, 4, status);
	sq_bind_text(st, 5, error);
	sq_bind_text(st, 6, outcome);
	sqlite3_bind_int64(st, 7, at);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		err = sq_fail(c, "finish", rc);
		goto fail;
	}
	if (sqlite3_changes(c->db) != 1) {
		err = GW_NOTFOUND;
		goto fail;
	}
	if (to != STORE_DUE && (err = sq_unblock(c, id, receiver)) != GW_OK)
		goto fail;
	return sq_commit(c);
fail:
	sq_rollback(c);
	return err;
}

/* One node leases nothing (store_renew): the row only has to be in
 * flight still. */
static enum gw_err
sq_renew(void *conn, int64_t seq, const char *receiver, int64_t until)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	int rc, n = 0;

	rc = sqlite3_prepare_v2(c->db,
				"UPDATE outbox SET lease_until = ?3 WHERE"
				" message_seq = ?1 AND receiver_ura = ?2 AND"
				" state = 'inflight'",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, seq);
		sq_bind_text(st, 2, receiver);
		sqlite3_bind_int64(st, 3, until);
		rc = sqlite3_step(st);
		n = sqlite3_changes(c->db);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "renew", rc);
	return n == 1 ? GW_OK : GW_NOTFOUND;
}

static enum gw_err
sq_recover(void *conn, int64_t now, size_t *count)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	int rc;

	if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
		return err;
	rc = sqlite3_prepare_v2(c->db,
				"UPDATE outbox SET state = 'due',"
				" next_attempt_at = min(next_attempt_at, ?1)"
				" WHERE state = 'inflight'",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		err = sq_fail(c, "recover", rc);
		goto out;
	}
	if (count != NULL)
		*count = (size_t)sqlite3_changes(c->db);
	/* Startup is the time to repair lane flags whatever wrote them
	   (an older binary, an operator with the sqlite3 shell). */
	if ((err = sq_exec(c, SQ_RELANE_FIX)) != GW_OK)
		goto out;
	err = sq_commit(c);
out:
	sqlite3_finalize(st);
	if (err != GW_OK)
		sq_rollback(c);
	return err;
}

static enum gw_err
sq_next_due_at(void *conn, const char *receiver, int64_t *at)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	if ((err = sq_stmt(c, SQ_NEXT_DUE, &st)) != GW_OK)
		return err;
	sq_bind_text(st, 1, receiver);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*at = sqlite3_column_int64(st, 0);
		err = GW_OK;
	} else if (rc == SQLITE_DONE) {
		err = GW_NOTFOUND;
	} else {
		err = sq_fail(c, "next_due", rc);
	}
	sqlite3_reset(st);
	return err;
}

static enum gw_err
sq_get(void *conn, const char *id, bool content, bool rows,
       struct store_message **out)
{
	struct sq *c = conn;
	struct store_message *m = NULL;
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	bool nomem = false;
	const void *blob;
	int rc;

	*out = NULL;
	rc = sqlite3_prepare_v2(
	    c->db,
	    "SELECT seq, id, direction, sender_ura, bundle_system,"
	    " bundle_value, patient_key, fhir_version, sha256, accepted_at,"
	    " answer_status, answer_body,"
	    " CASE WHEN ?2 THEN document END, CASE WHEN ?2 THEN jws END,"
	    " transform_report FROM messages WHERE id = ?1",
	    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "prepare", rc);
		goto out;
	}
	sq_bind_text(st, 1, id);
	sqlite3_bind_int(st, 2, content ? 1 : 0);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		err = GW_NOTFOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		err = sq_fail(c, "get", rc);
		goto out;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	m->seq = sqlite3_column_int64(st, 0);
	sq_copy(m->id, sizeof(m->id), st, 1);
	m->direction = sq_dir(st, 2, 4);
	sq_copy(m->sender, sizeof(m->sender), st, 3);
	m->bundle_system = sq_text(st, 4, &nomem);
	m->bundle_value = sq_text(st, 5, &nomem);
	m->patient_key = sq_text(st, 6, &nomem);
	m->fhir_version = sq_text(st, 7, &nomem);
	m->sha256 = sq_text(st, 8, &nomem);
	m->accepted_at = sqlite3_column_int64(st, 9);
	m->answer_status = sqlite3_column_int(st, 10);
	m->answer_body = sq_text(st, 11, &nomem);
	m->report = sq_text(st, 14, &nomem);
	if (content) {
		blob = sqlite3_column_blob(st, 12);
		m->doc_len = (size_t)sqlite3_column_bytes(st, 12);
		/* One spare NUL byte so text callers may print it. */
		if ((m->doc = malloc(m->doc_len + 1)) == NULL)
			nomem = true;
		else {
			if (m->doc_len > 0)
				memcpy(m->doc, blob, m->doc_len);
			((char *)m->doc)[m->doc_len] = '\0';
		}
		m->jws = sq_text(st, 13, &nomem);
	}
	if (nomem) {
		err = GW_NOMEM;
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rows) {
		rc = sqlite3_prepare_v2(c->db,
					"SELECT " SQ_ROW_COLS SQ_ROW_FROM
					"WHERE o.message_seq = ?1"
					" ORDER BY o.receiver_ura",
					-1, &st, NULL);
		if (rc != SQLITE_OK) {
			err = sq_fail(c, "prepare", rc);
			goto out;
		}
		sqlite3_bind_int64(st, 1, m->seq);
		err = sq_rows_collect(c, st, &m->rows, &m->nrows);
	}
out:
	sqlite3_finalize(st);
	if (err != GW_OK)
		store_message_free(m);
	else
		*out = m;
	return err;
}

static enum gw_err
sq_list(void *conn, const struct store_filter *f, struct store_row **rows,
	size_t *n)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	bool by_state = f->state >= 0 && f->state < STORE_STATE_COUNT;
	enum gw_err err;
	char sql[1024];
	int rc;

	*rows = NULL;
	*n = 0;
	/* Only the filters given, so (state, receiver) ranges come from the
	   index in acceptance order. */
	snprintf(sql, sizeof(sql),
		 "SELECT " SQ_ROW_COLS SQ_ROW_FROM
		 "WHERE o.message_seq > ?3%s%s"
		 " ORDER BY o.message_seq, o.receiver_ura LIMIT ?4",
		 by_state ? " AND o.state = ?1" : "",
		 f->receiver != NULL ? " AND o.receiver_ura = ?2" : "");
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	if (by_state)
		sq_bind_text(st, 1, sq_states[f->state]);
	if (f->receiver != NULL)
		sq_bind_text(st, 2, f->receiver);
	sqlite3_bind_int64(st, 3, f->after_seq);
	sqlite3_bind_int64(st, 4,
			   f->limit == 0	? 100
			   : f->limit > INT_MAX ? INT_MAX
						: (int64_t)f->limit);
	err = sq_rows_collect(c, st, rows, n);
	sqlite3_finalize(st);
	return err;
}

static enum gw_err
sq_act(void *conn, const char *id, const char *receiver,
       enum store_action action, int64_t now, size_t *changed)
{
	static const char *const sets[] = {
	    [STORE_RETRY] = "next_attempt_at = ?3 WHERE state = 'due'",
	    [STORE_HOLD] = "state = 'held' WHERE state = 'due'",
	    [STORE_RELEASE] = "state = 'due', next_attempt_at = ?3,"
			      " age_from = ?3 WHERE state = 'held'",
	    [STORE_REPLAY] =
		"state = 'due', next_attempt_at = ?3, age_from = ?3,"
		" attempts = 0,"
		" first_attempt_at = NULL, last_attempt_at = NULL,"
		" delivered_at = NULL, last_status = NULL,"
		" last_error = NULL, outcome = NULL,"
		" replays = replays + 1"
		" WHERE state IN ('dead', 'delivered')",
	};
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int64_t seq = 0, rows = 0;
	char sql[512];
	int rc;

	if ((unsigned)action >= UTIL_ARRAY_LEN(sets))
		return GW_INVALID;
	if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
		return err;
	rc = sqlite3_prepare_v2(c->db,
				"SELECT m.seq, (SELECT count(*) FROM outbox o"
				" WHERE o.message_seq = m.seq AND"
				" (?2 IS NULL OR o.receiver_ura = ?2))"
				" FROM messages m WHERE m.id = ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "prepare", rc);
		goto out;
	}
	sq_bind_text(st, 1, id);
	sq_bind_text(st, 2, receiver);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
		rows = sqlite3_column_int64(st, 1);
	} else if (rc != SQLITE_DONE) {
		err = sq_fail(c, "act", rc);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rows == 0) {
		err = GW_NOTFOUND;
		goto out;
	}
	snprintf(sql, sizeof(sql),
		 "UPDATE outbox SET %s AND message_seq = ?1 AND"
		 " (?2 IS NULL OR receiver_ura = ?2)",
		 sets[action]);
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "prepare", rc);
		goto out;
	}
	sqlite3_bind_int64(st, 1, seq);
	sq_bind_text(st, 2, receiver);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		err = sq_fail(c, "act", rc);
		goto out;
	}
	rows = sqlite3_changes(c->db);
	if (changed != NULL)
		*changed = (size_t)rows;
	if (rows == 0) {
		err = GW_INVALID;
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* Replay puts an earlier row back in its lanes: recompute them. */
	rc = sqlite3_prepare_v2(c->db,
				SQ_RELANE_ALL " AND (receiver_ura, patient_key)"
					      " IN (SELECT receiver_ura,"
					      " patient_key FROM outbox WHERE"
					      " message_seq = ?1)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, seq);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		err = sq_fail(c, "act", rc);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	err = sq_commit(c);
out:
	sqlite3_finalize(st);
	if (err != GW_OK)
		sq_rollback(c);
	return err;
}

/* Messages removed per prune transaction, so the writer thread never
 * waits long for the lock. */
#define SQ_PRUNE_CHUNK 2000

/*
 * Run sql (a DELETE of messages with ?1 = before and ?2 = a LIMIT) in
 * transactions of at most chunk messages until none is left or max (0:
 * no limit) are gone (fewer than max only when none is left), then give the freed pages back to the filesystem.
 * retention: rep_pruning holds a row inside each transaction, so the
 * roll-ups' delete trigger leaves the counts. *count (may be NULL) is
 * the number removed; op names the step in a failure's log line.
 */
/* BEGIN IMMEDIATE; quiet: the store busy is GW_TEMP without a log line
 * (a retention batch, tried again after its pause: store.c). */
static enum gw_err
sq_delete_begin(struct sq *c, bool quiet)
{
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	if (!quiet)
		return sq_run(c, SQ_BEGIN);
	if ((err = sq_stmt(c, SQ_BEGIN, &st)) != GW_OK)
		return err;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if ((rc & 0xff) == SQLITE_BUSY)
		return GW_TEMP;
	return rc == SQLITE_DONE ? GW_OK : sq_fail(c, sq_sql[SQ_BEGIN], rc);
}

static enum gw_err
sq_delete_chunked(struct sq *c, const char *sql, int64_t before, size_t chunk,
		  size_t max, bool retention, const char *op, size_t *count)
{
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	size_t removed = 0, done, want;
	int rc;

	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	do {
		want = max > 0 && max - removed < chunk ? max - removed : chunk;
		if ((err = sq_delete_begin(c, max > 0)) != GW_OK)
			break;
		if (retention &&
		    (err = sq_exec(c, "INSERT INTO rep_pruning VALUES (0)")) !=
			GW_OK) {
			sq_rollback(c);
			break;
		}
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, before);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)want);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			err = sq_fail(c, op, rc);
			sq_rollback(c);
			break;
		}
		done = (size_t)sqlite3_changes(c->db);
		if (retention &&
		    (err = sq_exec(c, "DELETE FROM rep_pruning")) != GW_OK) {
			sq_rollback(c);
			break;
		}
		if ((err = sq_commit(c)) != GW_OK)
			break;
		removed += done;
		/* Fewer than want is not the end: a message with two rows
		   takes two of the LIMIT. */
	} while (done > 0 && (max == 0 || removed < max));
	sqlite3_finalize(st);
	if (count != NULL)
		*count = removed;
	if (removed > 0)
		(void)sq_exec(c, "PRAGMA incremental_vacuum");
	return err;
}

static enum gw_err
sq_prune(void *conn, int64_t before, size_t max, bool retention, size_t *count)
{
	/* Outbound messages only: inbound ones are the care plans this
	   gateway serves; a message with any row not delivered (or
	   delivered too recently) stays. */
	return sq_delete_chunked(
	    conn,
	    "DELETE FROM messages WHERE seq IN"
	    " (SELECT o.message_seq FROM outbox o INDEXED BY outbox_delivered"
	    "  WHERE o.state = 'delivered'"
	    "  AND o.delivered_at < ?1 AND NOT EXISTS (SELECT 1 FROM outbox x"
	    "  WHERE x.message_seq = o.message_seq AND (x.state <> 'delivered'"
	    "  OR x.delivered_at >= ?1)) LIMIT ?2)"
	    " AND +direction = 'outbound'",
	    before, SQ_PRUNE_CHUNK, max, retention, "prune", count);
}

static enum gw_err
sq_stats(void *conn, struct store_stat **out, size_t *n)
{
	struct sq *c = conn;
	struct store_stat *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	size_t len = 0, cap = 0;
	enum gw_err err = GW_OK;
	int rc;

	*out = NULL;
	*n = 0;
	rc = sqlite3_prepare_v2(c->db,
				"SELECT q.state, q.receiver_ura, q.n,"
				" (SELECT m.accepted_at FROM messages m"
				" WHERE m.seq = (SELECT min(o.message_seq)"
				" FROM outbox o WHERE o.state = q.state AND"
				" o.receiver_ura = q.receiver_ura))"
				" FROM queue_counts q WHERE q.n > 0 AND"
				" q.state IN ('due', 'inflight', 'held',"
				" 'dead') ORDER BY q.state, q.receiver_ura",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			v = nv;
		}
		v[len].state = sq_state(sqlite3_column_text(st, 0));
		sq_copy(v[len].receiver, sizeof(v[len].receiver), st, 1);
		v[len].count = (uint64_t)sqlite3_column_int64(st, 2);
		v[len].oldest_accepted_at = sqlite3_column_int64(st, 3);
		len++;
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "stats", rc);
out:
	sqlite3_finalize(st);
	if (err != GW_OK) {
		free(v);
		return err;
	}
	*out = v;
	*n = len;
	return GW_OK;
}

/* ---- the received-data index (issue 11) ---- */

static enum gw_err
sq_index_secret(void *conn, unsigned char *out, size_t n)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	int rc;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT secret FROM index_secret WHERE k = 1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && (size_t)sqlite3_column_bytes(st, 0) == n)
		memcpy(out, sqlite3_column_blob(st, 0), n);
	else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		err = GW_PERM; /* the migration always makes one */
	else
		err = sq_fail(c, "index_secret", rc);
	sqlite3_finalize(st);
	return err;
}

/* The prepared statement for sql from c's store_res_find cache (reset,
 * no bindings), preparing it on a miss; the slot replaced is finalized. */
static enum gw_err
sq_rf_stmt(struct sq *c, const char *sql, sqlite3_stmt **out)
{
	sqlite3_stmt *st = NULL;
	unsigned k;
	char *copy;
	int rc;

	for (k = 0; k < SQ_RF_CACHE; k++) {
		if (c->rf[k].sql != NULL && strcmp(c->rf[k].sql, sql) == 0) {
			*out = c->rf[k].st;
			return GW_OK;
		}
	}
	rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
				NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	if ((copy = strdup(sql)) == NULL) {
		sqlite3_finalize(st);
		return GW_NOMEM;
	}
	k = c->rf_next++ % SQ_RF_CACHE;
	sqlite3_finalize(c->rf[k].st);
	free(c->rf[k].sql);
	c->rf[k].sql = copy;
	c->rf[k].st = st;
	*out = st;
	return GW_OK;
}

static enum gw_err
sq_res_snapshot(void *conn, int64_t *seq)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	if ((err = sq_rf_stmt(c,
			      "SELECT coalesce(max(seq), 0) FROM"
			      " res_versions",
			      &st)) != GW_OK)
		return err;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	else
		err = sq_fail(c, "res_snapshot", rc);
	sqlite3_reset(st);
	return err;
}

static enum gw_err
sq_res_txn(void *conn, bool begin)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	/* Nothing to end when no transaction is open (begin failed, or a
	   failing statement rolled it back). */
	if (!begin && sqlite3_get_autocommit(c->db))
		return GW_OK;
	if ((err = sq_rf_stmt(c, begin ? "BEGIN" : "COMMIT", &st)) != GW_OK)
		return err;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, begin ? "res_begin" : "res_end", rc);
	return GW_OK;
}

static enum gw_err
sq_res_find(void *conn, const struct store_res_query *q, struct store_res **out,
	    size_t *n)
{
	struct sq *c = conn;
	struct store_res *v = NULL, *nv;
	size_t len = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	const char *current, *sk;
	char sql[1400];
	int rc;

	*out = NULL;
	*n = 0;
	if (q->receiver == NULL || (q->id != NULL && q->type == NULL))
		return GW_INVALID;
	current = q->snapshot > 0 ? "(r.superseded_seq IS NULL OR"
				    " r.superseded_seq > ?6)"
				  : "(r.superseded_seq IS NULL)";
	/* Only the conditions asked for, and the index for them: (receiver,
	   bsn, type, seq) for a patient's resources of one type (a search
	   always names its type), in seq order already; (receiver, id,
	   vid) for a read and (receiver, updated) for _since, whose
	   few rows are sorted; (receiver, seq) otherwise. Without the
	   unary + on seq SQLite walks (receiver, seq) to save the sort,
	   every version of the receiver for one read (measured: 200,000
	   rows at 10,000 patients). The versions of one id are in seq
	   order when in vid order (a new version takes the next of both),
	   which the (receiver, id, vid) index gives without a sort. */
	sk = q->id != NULL || (q->since > 0 && q->bsn == NULL) ? "+" : "";
	snprintf(sql, sizeof(sql),
		 "SELECT r.seq, r.type, r.id, r.receiver_ura, r.bsn, %s,"
		 " r.vid, r.updated, r.hidden, %s, r.json"
		 " FROM res_versions r%s"
		 " WHERE r.receiver_ura = ?1%s%s%s%s%s%s%s%s%s%s"
		 " AND %sr.seq > ?8 ORDER BY %s LIMIT ?9",
		 q->bare ? "'', ''"
			 : "m.id, coalesce(nullif(i.sender_ura, ''),"
			   " m.sender_ura)",
		 current,
		 q->bare ? ""
			 : " JOIN messages m ON m.seq = r.message_seq"
			   " LEFT JOIN inbox i ON i.message_seq ="
			   " r.message_seq AND i.receiver_ura ="
			   " r.receiver_ura",
		 q->bsn != NULL ? " AND r.bsn = ?2" : "",
		 q->type != NULL ? " AND r.type = ?3" : "",
		 q->id != NULL ? " AND r.id = ?4" : "",
		 q->vid > 0 ? " AND r.vid = ?5" : "",
		 q->snapshot > 0 ? " AND " : "",
		 q->snapshot > 0 ? (*sk ? "+r.seq <= ?6" : "r.seq <= ?6") : "",
		 !q->history && q->vid <= 0 ? " AND " : "",
		 !q->history && q->vid <= 0 ? current : "",
		 q->since > 0 ? " AND r.updated >= ?7" : "",
		 q->hidden ? "" : " AND r.hidden = 0", sk,
		 q->id != NULL ? "r.vid"
		 : *sk	       ? "+r.seq"
			       : "r.seq");
	if ((err = sq_rf_stmt(c, sql, &st)) != GW_OK)
		return err;
	sq_bind_text(st, 1, q->receiver);
	if (q->bsn != NULL)
		sq_bind_text(st, 2, q->bsn);
	if (q->type != NULL)
		sq_bind_text(st, 3, q->type);
	if (q->id != NULL)
		sq_bind_text(st, 4, q->id);
	if (q->vid > 0)
		sqlite3_bind_int64(st, 5, q->vid);
	if (q->snapshot > 0)
		sqlite3_bind_int64(st, 6, q->snapshot);
	if (q->since > 0)
		sqlite3_bind_int64(st, 7, q->since);
	sqlite3_bind_int64(st, 8, q->after_seq);
	sqlite3_bind_int64(st, 9,
			   q->limit == 0	? -1
			   : q->limit > INT_MAX ? INT_MAX
						: (int64_t)q->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_res *r;
		const void *json;

		if (len == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			v = nv;
		}
		r = &v[len];
		memset(r, 0, sizeof(*r));
		r->seq = sqlite3_column_int64(st, 0);
		sq_copy(r->type, sizeof(r->type), st, 1);
		sq_copy(r->id, sizeof(r->id), st, 2);
		sq_copy(r->receiver, sizeof(r->receiver), st, 3);
		sq_copy(r->bsn, sizeof(r->bsn), st, 4);
		sq_copy(r->msg_id, sizeof(r->msg_id), st, 5);
		sq_copy(r->sender, sizeof(r->sender), st, 6);
		r->vid = sqlite3_column_int64(st, 7);
		r->updated = sqlite3_column_int64(st, 8);
		r->hidden = sqlite3_column_int(st, 9) != 0;
		r->current = sqlite3_column_int(st, 10) != 0;
		json = sqlite3_column_text(st, 11);
		r->json_len = (size_t)sqlite3_column_bytes(st, 11);
		if ((r->json = malloc(r->json_len + 1)) == NULL) {
			err = GW_NOMEM;
			goto out;
		}
		len++;
		if (r->json_len > 0)
			memcpy(r->json, json, r->json_len);
		r->json[r->json_len] = '\0';
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "res_find", rc);
out:
	/* Kept prepared for the next query of this shape. */
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (err != GW_OK) {
		store_res_free(v, len);
		return err;
	}
	*out = v;
	*n = len;
	return GW_OK;
}

static enum gw_err
sq_inbox_list(void *conn, const struct store_inbox_filter *f,
	      struct store_inbox **out, size_t *n)
{
	struct sq *c = conn;
	struct store_inbox *v = NULL, *nv;
	size_t len = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	char sql[1024];
	int rc;

	*out = NULL;
	*n = 0;
	/* Inbound messages from before schema 4 have no inbox row: they
	   are listed with an empty receiver unless one is asked for. */
	snprintf(sql, sizeof(sql),
		 "SELECT m.seq, m.id, coalesce(i.receiver_ura, ''),"
		 " coalesce(nullif(i.sender_ura, ''), m.sender_ura),"
		 " m.sender_ura, coalesce(i.bsn, ''), m.fhir_version,"
		 " m.accepted_at, coalesce(i.resources, 0), length(m.document)"
		 " FROM messages m %s JOIN inbox i ON i.message_seq = m.seq"
		 " WHERE m.direction = 'inbound' AND m.seq > ?4%s%s%s"
		 " ORDER BY m.seq, i.receiver_ura LIMIT ?5",
		 f->receiver != NULL || f->bsn != NULL ? "" : "LEFT",
		 f->receiver != NULL ? " AND i.receiver_ura = ?1" : "",
		 f->bsn != NULL ? " AND i.bsn = ?2" : "",
		 f->since > 0 ? " AND m.accepted_at >= ?3" : "");
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	if (f->receiver != NULL)
		sq_bind_text(st, 1, f->receiver);
	if (f->bsn != NULL)
		sq_bind_text(st, 2, f->bsn);
	if (f->since > 0)
		sqlite3_bind_int64(st, 3, f->since);
	sqlite3_bind_int64(st, 4, f->after_seq);
	sqlite3_bind_int64(st, 5,
			   f->limit == 0	? 100
			   : f->limit > INT_MAX ? INT_MAX
						: (int64_t)f->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_inbox *r;

		if (len == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			v = nv;
		}
		r = &v[len++];
		memset(r, 0, sizeof(*r));
		r->seq = sqlite3_column_int64(st, 0);
		sq_copy(r->id, sizeof(r->id), st, 1);
		sq_copy(r->receiver, sizeof(r->receiver), st, 2);
		sq_copy(r->sender, sizeof(r->sender), st, 3);
		sq_copy(r->via, sizeof(r->via), st, 4);
		sq_copy(r->bsn, sizeof(r->bsn), st, 5);
		sq_copy(r->fhir_version, sizeof(r->fhir_version), st, 6);
		r->accepted_at = sqlite3_column_int64(st, 7);
		r->resources = (unsigned)sqlite3_column_int64(st, 8);
		r->doc_len = (size_t)sqlite3_column_int64(st, 9);
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "inbox_list", rc);
out:
	sqlite3_finalize(st);
	if (err != GW_OK) {
		free(v);
		return err;
	}
	*out = v;
	*n = len;
	return GW_OK;
}

static enum gw_err
sq_prune_inbound(void *conn, int64_t before, size_t max, bool retention,
		 size_t *count)
{
	/* Their inbox rows and index versions go with them (ON DELETE
	   CASCADE), in the same transaction; smaller chunks, as each
	   message takes its index rows. */
	return sq_delete_chunked(conn,
				 "DELETE FROM messages WHERE seq IN"
				 " (SELECT seq FROM messages INDEXED BY"
				 " messages_accepted WHERE accepted_at < ?1"
				 " AND direction = 'inbound' LIMIT ?2)",
				 before, SQ_PRUNE_CHUNK / 4, max, retention,
				 "prune_inbound", count);
}

/* A pull record of sq_audit_rollup's batch. */
struct sq_pull {
	const struct store_audit_rec *r;
};

/* Pull records by hour and organisation. */
static int
sq_cmp_pull(const void *a, const void *b)
{
	const struct store_audit_rec *x = ((const struct sq_pull *)a)->r;
	const struct store_audit_rec *y = ((const struct sq_pull *)b)->r;
	int64_t hx = x->at / 3600000, hy = y->at / 3600000;

	if (hx != hy)
		return hx < hy ? -1 : 1;
	return strcmp(x->ura, y->ura);
}

/* Pull records by organisation, patient and day. */
static int
sq_cmp_pat(const void *a, const void *b)
{
	const struct store_audit_rec *x = ((const struct sq_pull *)a)->r;
	const struct store_audit_rec *y = ((const struct sq_pull *)b)->r;
	int64_t dx = x->at / 86400000, dy = y->at / 86400000;
	int d;

	if ((d = strcmp(x->ura, y->ura)) != 0 ||
	    (d = strcmp(x->bsn, y->bsn)) != 0)
		return d;
	return dx < dy ? -1 : dx > dy;
}

/* Step a statement bound by the caller, once, and reset it. */
static enum gw_err
sq_step_done(struct sq *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? GW_OK : sq_fail(c, what, rc);
}

/*
 * Count the pull records of recs in the report's roll-ups as the row
 * trigger would (SQ_REP_AUDIT), once per key: rep_pull per (hour,
 * organisation), rep_pat per (day, organisation, BSN) and rep_pat_last
 * per (organisation, BSN) with its last day. Inside the writer's
 * transaction, with its rep_writer row there (SQ_STEP12).
 */
static enum gw_err
sq_audit_rollup(struct sq *c, const struct store_audit_rec *recs, size_t n)
{
	struct sq_pull *v;
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	size_t m = 0, i, j;

	if ((v = malloc((n > 0 ? n : 1) * sizeof(*v))) == NULL)
		return GW_NOMEM;
	for (i = 0; i < n; i++)
		if (store_audit_is_pull(&recs[i]))
			v[m++].r = &recs[i];
	qsort(v, m, sizeof(*v), sq_cmp_pull);
	for (i = 0; i < m && err == GW_OK; i = j) {
		for (j = i + 1; j < m && sq_cmp_pull(&v[i], &v[j]) == 0; j++)
			;
		if ((err = sq_stmt(c, SQ_REP_PULL, &st)) != GW_OK)
			break;
		sqlite3_bind_int64(st, 1, v[i].r->at / 3600000);
		sq_bind_text(st, 2, v[i].r->ura);
		sqlite3_bind_int64(st, 3, (int64_t)(j - i));
		err = sq_step_done(c, st, "rep_pull");
	}
	qsort(v, m, sizeof(*v), sq_cmp_pat);
	for (i = 0; i < m && err == GW_OK; i = j) {
		for (j = i + 1; j < m && sq_cmp_pat(&v[i], &v[j]) == 0; j++)
			;
		if (v[i].r->bsn[0] == '\0')
			continue;
		if ((err = sq_stmt(c, SQ_REP_PAT, &st)) != GW_OK)
			break;
		sqlite3_bind_int64(st, 1, v[i].r->at / 86400000);
		sq_bind_text(st, 2, v[i].r->ura);
		sq_bind_text(st, 3, v[i].r->bsn);
		err = sq_step_done(c, st, "rep_pat");
		/* The pair's last day: that of the last run of the pair. */
		if (err != GW_OK ||
		    (j < m && strcmp(v[j].r->ura, v[i].r->ura) == 0 &&
		     strcmp(v[j].r->bsn, v[i].r->bsn) == 0))
			continue;
		if ((err = sq_stmt(c, SQ_REP_PAT_LAST, &st)) != GW_OK)
			break;
		sq_bind_text(st, 1, v[i].r->ura);
		sq_bind_text(st, 2, v[i].r->bsn);
		sqlite3_bind_int64(st, 3, v[i].r->at / 86400000);
		err = sq_step_done(c, st, "rep_pat_last");
	}
	free(v);
	return err;
}

static enum gw_err
sq_audit_append(void *conn, struct store_audit_rec *recs, size_t n)
{
	struct sq *c = conn;
	bool relax = c->audit_relaxed && !c->relaxed;
	sqlite3_stmt *st = NULL;
	enum gw_err err;

	/* No accept waits on this commit's fsync: the next accept commit's
	   (or checkpoint's) makes it durable. */
	if (relax && (err = sq_exec(c, "PRAGMA synchronous = NORMAL")) != GW_OK)
		return err;
	if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
		goto out;
	c->chain_known = false;
	/* The trigger stands aside while rep_writer has its row: the batch
	   is counted once per key instead (SQ_STEP12). */
	if ((err = sq_stmt(c, SQ_REP_WRITER_ON, &st)) != GW_OK)
		goto out;
	sqlite3_bind_int64(st, 1, util_wall_ms());
	if ((err = sq_step_done(c, st, "rep_writer")) != GW_OK ||
	    (err = sq_audit_rollup(c, recs, n)) != GW_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((err = sq_audit_write(c, &recs[i])) != GW_OK)
			goto out;
	if ((err = sq_run(c, SQ_REP_WRITER_OFF)) != GW_OK)
		goto out;
	err = sq_commit(c);
out:
	if (err != GW_OK)
		sq_rollback(c);
	c->chain_known = false;
	if (relax)
		(void)sq_exec(c, "PRAGMA synchronous = FULL");
	return err;
}

static enum gw_err
sq_findings_add(void *conn, const struct store_finding *f, size_t n)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	if ((err = sq_run(c, SQ_BEGIN)) != GW_OK)
		return err;
	rc = sqlite3_prepare_v2(
	    c->db,
	    "INSERT INTO rep_find (" SQ_FIND_KEYS ", n)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)" SQ_UPS(SQ_FIND_KEYS),
	    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "findings_add", rc);
		goto out;
	}
	for (size_t i = 0; i < n && err == GW_OK; i++) {
		sqlite3_bind_int64(st, 1, f[i].hour);
		sqlite3_bind_text(st, 2, f[i].sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, f[i].severity, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, f[i].rule, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, f[i].profile, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, f[i].n);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			err = sq_fail(c, "findings_add", rc);
		sqlite3_reset(st);
	}
	if (err == GW_OK)
		err = sq_commit(c);
out:
	sqlite3_finalize(st);
	if (err != GW_OK)
		sq_rollback(c);
	return err;
}

/* Columns read by sq_audit_read, in order. */
#define SQ_AUDIT_COLS                                                          \
	"seq, at, ura, cert_serial, cert_issuer, bsn, interaction, query,"     \
	" count, status, request_id, prev_hash, hash"

static void
sq_audit_read(sqlite3_stmt *st, struct store_audit_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->seq = sqlite3_column_int64(st, 0);
	r->at = sqlite3_column_int64(st, 1);
	sq_copy(r->ura, sizeof(r->ura), st, 2);
	sq_copy(r->cert_serial, sizeof(r->cert_serial), st, 3);
	sq_copy(r->cert_issuer, sizeof(r->cert_issuer), st, 4);
	sq_copy(r->bsn, sizeof(r->bsn), st, 5);
	sq_copy(r->interaction, sizeof(r->interaction), st, 6);
	sq_copy(r->query, sizeof(r->query), st, 7);
	r->count = (unsigned)sqlite3_column_int64(st, 8);
	r->status = sqlite3_column_int(st, 9);
	sq_copy(r->request_id, sizeof(r->request_id), st, 10);
	sq_copy(r->prev_hash, sizeof(r->prev_hash), st, 11);
	sq_copy(r->hash, sizeof(r->hash), st, 12);
}

static enum gw_err
sq_audit_list(void *conn, const struct store_audit_filter *f,
	      struct store_audit_rec **out, size_t *n)
{
	struct sq *c = conn;
	struct store_audit_rec *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	size_t len = 0, cap = 0;
	enum gw_err err = GW_OK;
	char sql[512];
	int rc;

	*out = NULL;
	*n = 0;
	/* Only the filters given, so the (bsn, seq) or (ura, seq) index
	   serves the range in seq order. */
	snprintf(sql, sizeof(sql),
		 "SELECT " SQ_AUDIT_COLS " FROM audit WHERE seq > ?1%s%s%s"
		 " ORDER BY seq LIMIT ?5",
		 f->bsn != NULL ? " AND bsn = ?2" : "",
		 f->ura != NULL ? " AND ura = ?3" : "",
		 f->since > 0 ? " AND at >= ?4" : "");
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	sqlite3_bind_int64(st, 1, f->after_seq);
	if (f->bsn != NULL)
		sq_bind_text(st, 2, f->bsn);
	if (f->ura != NULL)
		sq_bind_text(st, 3, f->ura);
	if (f->since > 0)
		sqlite3_bind_int64(st, 4, f->since);
	sqlite3_bind_int64(st, 5,
			   f->limit == 0	? 100
			   : f->limit > INT_MAX ? INT_MAX
						: (int64_t)f->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			v = nv;
		}
		sq_audit_read(st, &v[len++]);
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "audit_list", rc);
out:
	sqlite3_finalize(st);
	if (err != GW_OK) {
		free(v);
		return err;
	}
	*out = v;
	*n = len;
	return GW_OK;
}

/* Mark the chain broken at seq; GW_INVALID. */
static enum gw_err sq_audit_broken(struct store_audit_check *out, int64_t seq,
				   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum gw_err
sq_audit_broken(struct store_audit_check *out, int64_t seq, const char *fmt,
		...)
{
	va_list ap;

	out->broken_seq = seq;
	va_start(ap, fmt);
	vsnprintf(out->problem, sizeof(out->problem), fmt, ap);
	va_end(ap);
	return GW_INVALID;
}

static enum gw_err
sq_audit_verify(void *conn, struct store_audit_check *out)
{
	struct sq *c = conn;
	struct store_audit_rec r;
	sqlite3_stmt *st = NULL;
	char prev[65], h[65];
	int64_t expect = 1, head = 0;
	enum gw_err err = GW_OK;
	int rc;

	util_strlcpy(prev, STORE_AUDIT_GENESIS, sizeof(prev));
	rc = sqlite3_prepare_v2(
	    c->db, "SELECT " SQ_AUDIT_COLS " FROM audit ORDER BY seq", -1, &st,
	    NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sq_audit_read(st, &r);
		out->records++;
		if (out->first_seq == 0)
			out->first_seq = r.seq;
		if (r.seq != expect) {
			err = sq_audit_broken(
			    out, expect,
			    "deleted: seq %lld..%lld missing before seq %lld",
			    (long long)expect, (long long)r.seq - 1,
			    (long long)r.seq);
			goto out;
		}
		store_audit_hash(&r, h);
		if (strcmp(h, r.hash) != 0) {
			err = sq_audit_broken(out, r.seq,
					      "altered: the record's hash does "
					      "not match its content");
			goto out;
		}
		if (strcmp(r.prev_hash, prev) != 0) {
			err = sq_audit_broken(
			    out, r.seq,
			    "chain broken: prev_hash is not the hash of seq "
			    "%lld (a record before it was altered and "
			    "re-hashed, removed or reordered)",
			    (long long)r.seq - 1);
			goto out;
		}
		memcpy(prev, r.hash, sizeof(prev));
		out->last_seq = r.seq;
		memcpy(out->last_hash, r.hash, sizeof(out->last_hash));
		expect = r.seq + 1;
	}
	if (rc != SQLITE_DONE) {
		err = sq_fail(c, "audit_verify", rc);
		goto out;
	}
	/* Records deleted at the end leave the seqs they were given. */
	if ((err = sq_int(c,
			  "SELECT coalesce((SELECT seq FROM sqlite_sequence"
			  " WHERE name = 'audit'), 0)",
			  &head)) != GW_OK)
		goto out;
	if (head > out->last_seq)
		err = sq_audit_broken(out, out->last_seq + 1,
				      "deleted: seq %lld..%lld missing at the "
				      "end",
				      (long long)out->last_seq + 1,
				      (long long)head);
out:
	sqlite3_finalize(st);
	return err;
}

/*
 * Raw table access of store copy (store_copy.c). Identifiers come from
 * store_copy.c's table list, never from outside data.
 */
static enum gw_err
sq_raw_begin(void *conn, bool write)
{
	struct sq *c = conn;
	int64_t v;

	if (write)
		return sq_exec(c, "BEGIN IMMEDIATE");
	if (sq_exec(c, "BEGIN") != GW_OK)
		return GW_PERM;
	/* A deferred transaction takes its snapshot at its first read:
	   now, so every table is read as of one moment. */
	return sq_int(c, "SELECT count(*) FROM sqlite_master", &v);
}

static enum gw_err
sq_raw_end(void *conn, bool commit)
{
	struct sq *c = conn;

	if (c->raw_put != NULL) {
		sqlite3_finalize(c->raw_put);
		c->raw_put = NULL;
		c->raw_table[0] = '\0';
	}
	if (sqlite3_get_autocommit(c->db))
		return commit ? GW_PERM : GW_OK;
	if (!commit) {
		(void)sq_exec(c, "ROLLBACK");
		return GW_OK;
	}
	return sq_exec(c, "COMMIT");
}

static enum gw_err
sq_raw_columns(void *conn, char ***names, size_t *n)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	char **v = NULL, **nv;
	size_t cnt = 0, cap = 0;
	enum gw_err err = GW_OK;
	int rc;

	*names = NULL;
	*n = 0;
	rc = sqlite3_prepare_v2(c->db,
				"SELECT m.name || '.' || p.name FROM"
				" sqlite_master m, pragma_table_info(m.name) p"
				" WHERE m.type = 'table' ORDER BY 1",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "raw_columns", rc);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			v = nv;
		}
		if ((v[cnt] = strdup(
			 (const char *)sqlite3_column_text(st, 0))) == NULL) {
			err = GW_NOMEM;
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "raw_columns", rc);
out:
	sqlite3_finalize(st);
	if (err != GW_OK) {
		store_raw_names_free(v, cnt);
		return err;
	}
	*names = v;
	*n = cnt;
	return GW_OK;
}

/* "a", "b", ... of cols into b (with sep between; keys: BINARY
 * collation for text, the byte order PostgreSQL's COLLATE "C" gives). */
static bool
sq_raw_list(char *b, size_t size, const struct store_col *cols, size_t n,
	    bool order)
{
	size_t len = strlen(b);

	for (size_t i = 0; i < n; i++) {
		int w = snprintf(b + len, size - len, "%s\"%s\"%s",
				 i > 0 ? ", " : "", cols[i].name,
				 order && cols[i].type == STORE_VAL_TEXT
				     ? " COLLATE BINARY"
				     : "");

		if (w < 0 || (size_t)w >= size - len)
			return false;
		len += (size_t)w;
	}
	return true;
}

static enum gw_err
sq_raw_select(void *conn, const char *table, const struct store_col *cols,
	      size_t ncols, size_t nkeys, store_raw_row_fn fn, void *arg)
{
	struct sq *c = conn;
	struct store_val v[STORE_RAW_COLS_MAX];
	char sql[2048] = "SELECT ";
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	size_t len;
	int rc;

	if (ncols > STORE_RAW_COLS_MAX ||
	    !sq_raw_list(sql, sizeof(sql), cols, ncols, false))
		return GW_INVALID;
	len = strlen(sql);
	snprintf(sql + len, sizeof(sql) - len, " FROM \"%s\" ORDER BY ", table);
	if (!sq_raw_list(sql, sizeof(sql), cols, nkeys, true))
		return GW_INVALID;
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "raw_select", rc);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (size_t i = 0; i < ncols; i++) {
			int k = (int)i;

			memset(&v[i], 0, sizeof(v[i]));
			if (sqlite3_column_type(st, k) == SQLITE_NULL)
				continue;
			v[i].type = cols[i].type;
			switch (cols[i].type) {
			case STORE_VAL_INT:
				v[i].i = sqlite3_column_int64(st, k);
				break;
			case STORE_VAL_TEXT:
				v[i].p = sqlite3_column_text(st, k);
				v[i].len = (size_t)sqlite3_column_bytes(st, k);
				break;
			case STORE_VAL_BLOB:
				v[i].p = sqlite3_column_blob(st, k);
				v[i].len = (size_t)sqlite3_column_bytes(st, k);
				break;
			case STORE_VAL_NULL:
				break;
			}
			if (v[i].p == NULL && v[i].type != STORE_VAL_INT &&
			    sqlite3_errcode(c->db) == SQLITE_NOMEM) {
				err = GW_NOMEM;
				goto out;
			}
		}
		if ((err = fn(arg, v, ncols)) != GW_OK)
			goto out;
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "raw_select", rc);
out:
	sqlite3_finalize(st);
	return err;
}

static enum gw_err
sq_raw_put(void *conn, const char *table, const struct store_col *cols,
	   size_t ncols, const struct store_val *v)
{
	struct sq *c = conn;
	enum gw_err err = GW_OK;
	int rc;

	if (v == NULL || strcmp(c->raw_table, table) != 0) {
		sqlite3_finalize(c->raw_put);
		c->raw_put = NULL;
		c->raw_table[0] = '\0';
		if (v == NULL)
			return GW_OK;
	}
	if (c->raw_put == NULL) {
		char sql[2048] = "INSERT INTO ";
		size_t len = strlen(sql);

		snprintf(sql + len, sizeof(sql) - len, "\"%s\" (", table);
		if (ncols > STORE_RAW_COLS_MAX ||
		    strlen(table) >= sizeof(c->raw_table) ||
		    !sq_raw_list(sql, sizeof(sql), cols, ncols, false))
			return GW_INVALID;
		for (size_t i = 0; i < ncols; i++) {
			len = strlen(sql);
			snprintf(sql + len, sizeof(sql) - len, "%s",
				 i == 0 ? ") VALUES (?" : ", ?");
		}
		len = strlen(sql);
		if (snprintf(sql + len, sizeof(sql) - len, ")") != 1)
			return GW_INVALID;
		rc = sqlite3_prepare_v3(c->db, sql, -1,
					SQLITE_PREPARE_PERSISTENT, &c->raw_put,
					NULL);
		if (rc != SQLITE_OK)
			return sq_fail(c, "raw_put", rc);
		util_strlcpy(c->raw_table, table, sizeof(c->raw_table));
	}
	sqlite3_reset(c->raw_put);
	sqlite3_clear_bindings(c->raw_put);
	for (size_t i = 0; i < ncols; i++) {
		int k = (int)i + 1;

		switch (v[i].type) {
		case STORE_VAL_NULL:
			rc = sqlite3_bind_null(c->raw_put, k);
			break;
		case STORE_VAL_INT:
			rc = sqlite3_bind_int64(c->raw_put, k, v[i].i);
			break;
		case STORE_VAL_TEXT:
			rc =
			    sqlite3_bind_text64(c->raw_put, k, v[i].p, v[i].len,
						SQLITE_STATIC, SQLITE_UTF8);
			break;
		default:
			rc = sqlite3_bind_blob64(c->raw_put, k, v[i].p,
						 v[i].len, SQLITE_STATIC);
			break;
		}
		if (rc != SQLITE_OK)
			return sq_fail(c, "raw_put", rc);
	}
	rc = sqlite3_step(c->raw_put);
	if (rc != SQLITE_DONE)
		err = sq_fail(c, "raw_put", rc);
	sqlite3_reset(c->raw_put);
	return err;
}

/* Delete every row of table; the append-only triggers of the audit
 * trail (those that RAISE on DELETE) are dropped for it and made again
 * from their own text, all in the open transaction. */
static enum gw_err
sq_raw_clear(void *conn, const char *table)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	char *saved[8] = {0}, *names[8] = {0};
	size_t ns = 0;
	char sql[256];
	enum gw_err err = GW_OK;
	int rc;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT name, sql FROM sqlite_master WHERE"
				" type = 'trigger' AND tbl_name = ?1 AND"
				" sql LIKE '%BEFORE DELETE%RAISE%'",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "raw_clear", rc);
		goto out;
	}
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && ns < 8) {
		if ((names[ns] = strdup(
			 (const char *)sqlite3_column_text(st, 0))) == NULL ||
		    (saved[ns] = strdup(
			 (const char *)sqlite3_column_text(st, 1))) == NULL) {
			free(names[ns]);
			err = GW_NOMEM;
			goto out;
		}
		ns++;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		err =
		    rc == SQLITE_ROW ? GW_INVALID : sq_fail(c, "raw_clear", rc);
		goto out;
	}
	for (size_t i = 0; i < ns; i++) {
		snprintf(sql, sizeof(sql), "DROP TRIGGER \"%s\"", names[i]);
		if ((err = sq_exec(c, sql)) != GW_OK)
			goto out;
	}
	snprintf(sql, sizeof(sql), "DELETE FROM \"%s\"", table);
	if ((err = sq_exec(c, sql)) != GW_OK)
		goto out;
	for (size_t i = 0; i < ns; i++)
		if ((err = sq_exec(c, saved[i])) != GW_OK)
			goto out;
out:
	sqlite3_finalize(st);
	for (size_t i = 0; i < ns; i++) {
		free(saved[i]);
		free(names[i]);
	}
	return err;
}

static enum gw_err
sq_raw_counter(void *conn, const char *table, int64_t *last, bool set)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	int rc;

	rc = sqlite3_prepare_v2(
	    c->db,
	    set ? "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2"
		  " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE"
		  " name = ?1)"
		: "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE"
		  " name = ?1), 0)",
	    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "raw_counter", rc);
		goto out;
	}
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	if (set)
		sqlite3_bind_int64(st, 2, *last);
	rc = sqlite3_step(st);
	if (!set && rc == SQLITE_ROW)
		*last = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE) {
		err = sq_fail(c, "raw_counter", rc);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (set) {
		/* The row inserted above, or the one the copied rows made:
		   the source's value either way. */
		rc = sqlite3_prepare_v2(c->db,
					"UPDATE sqlite_sequence SET seq = ?2"
					" WHERE name = ?1",
					-1, &st, NULL);
		if (rc != SQLITE_OK) {
			err = sq_fail(c, "raw_counter", rc);
			goto out;
		}
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, *last);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			err = sq_fail(c, "raw_counter", rc);
	}
out:
	sqlite3_finalize(st);
	return err;
}

/* sqlite3_progress_handler: non-zero interrupts the statement. */
static int
sq_progress(void *arg)
{
	const struct sq *c = arg;

	return c->deadline != 0 && (int64_t)util_mono_ms() >= c->deadline;
}

static void
sq_set_deadline(void *conn, int64_t mono_ms)
{
	struct sq *c = conn;

	c->deadline = mono_ms;
	/* Every 100 virtual machine steps (a clock read each: well under a
	   microsecond per check). */
	sqlite3_progress_handler(c->db, mono_ms != 0 ? 100 : 0,
				 mono_ms != 0 ? sq_progress : NULL, c);
}

/* ---- the report's aggregates (issue 17) ---- */

/* Run sql with ?1, ?2 bound to a, b (an empty range runs nothing) and
 * hand each row to fn as an aggregate of kind what. */
static enum gw_err
sq_agg_run(struct sq *c, const char *sql, int64_t a, int64_t b,
	   enum store_agg_what what, store_agg_fn fn, void *arg)
{
	sqlite3_stmt *st = NULL;
	enum gw_err err = GW_OK;
	int rc;

	if (b <= a)
		return GW_OK;
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(c, "prepare", rc);
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	while (err == GW_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_agg g = {.what = what};
		int last = sqlite3_column_count(st) - 1;

#define SQ_TXT(i) ((const char *)sqlite3_column_text(st, (i)))
		g.n = sqlite3_column_int64(st, last);
		if (g.n == 0)
			continue;
		if (what != STORE_AGG_PATIENTS)
			g.hour = sqlite3_column_int64(st, 0);
		switch (what) {
		case STORE_AGG_MESSAGES:
		case STORE_AGG_ROWS:
			g.kind = SQ_TXT(1);
			g.org = SQ_TXT(2);
			if (what == STORE_AGG_MESSAGES) {
				g.version = SQ_TXT(3);
				g.event = SQ_TXT(4);
			} else {
				g.state = SQ_TXT(3);
				g.cause = SQ_TXT(4);
			}
			break;
		case STORE_AGG_LATENCY:
			g.bucket = sqlite3_column_int64(st, 1);
			break;
		case STORE_AGG_PULLS:
			g.org = SQ_TXT(1);
			break;
		case STORE_AGG_PATIENTS:
			g.org = SQ_TXT(0);
			break;
		case STORE_AGG_FINDINGS:
			g.org = SQ_TXT(1);
			g.severity = SQ_TXT(2);
			g.rule = SQ_TXT(3);
			g.profile = SQ_TXT(4);
			break;
		}
#undef SQ_TXT
		err = fn(arg, &g);
	}
	if (err == GW_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = sq_fail(c, "report_agg", rc);
	sqlite3_finalize(st);
	return err;
}

/* One section: its roll-up over the whole hours, its rows at the ends. */
static enum gw_err
sq_agg_section(struct sq *c, int64_t u0, int64_t u1, const int64_t edge[2][2],
	       const char *rollup, const char *base, enum store_agg_what what,
	       store_agg_fn fn, void *arg)
{
	enum gw_err err;

	err = sq_agg_run(c, rollup, u0, u1, what, fn, arg);
	for (int i = 0; i < 2 && err == GW_OK; i++)
		err =
		    sq_agg_run(c, base, edge[i][0], edge[i][1], what, fn, arg);
	return err;
}

static enum gw_err
sq_report_agg(void *conn, const struct store_agg_range *r, store_agg_fn fn,
	      void *arg)
{
	struct sq *c = conn;
	sqlite3_stmt *st = NULL;
	enum gw_err err;
	int rc;

	/* One snapshot for every section. */
	if ((err = sq_exec(c, "BEGIN")) != GW_OK)
		return err;
	err =
	    sq_agg_section(c, r->h0, r->h1, r->hedge,
			   "SELECT " SQ_MSG_KEYS ", n FROM rep_msg WHERE"
			   " hour >= ?1 AND hour < ?2",
			   SQ_BASE_MSG(SQ_RANGE), STORE_AGG_MESSAGES, fn, arg);
	if (err == GW_OK)
		err = sq_agg_section(c, r->h0, r->h1, r->hedge,
				     "SELECT " SQ_ROW_KEYS ", n FROM rep_row"
				     " WHERE hour >= ?1 AND hour < ?2",
				     SQ_BASE_ROW(SQ_RANGE), STORE_AGG_ROWS, fn,
				     arg);
	/* latency by day (its buckets spread wide: per hour there would be
	   nearly a row per delivery) */
	if (err == GW_OK)
		err = sq_agg_section(c, r->d0, r->d1, r->dedge,
				     "SELECT day, bucket, n FROM rep_lat"
				     " WHERE day >= ?1 AND day < ?2",
				     SQ_BASE_LAT(SQ_RANGE), STORE_AGG_LATENCY,
				     fn, arg);
	if (err == GW_OK)
		err = sq_agg_section(c, r->h0, r->h1, r->hedge,
				     "SELECT hour, ura, n FROM rep_pull"
				     " WHERE hour >= ?1 AND hour < ?2",
				     SQ_BASE_PULL(SQ_ARANGE), STORE_AGG_PULLS,
				     fn, arg);
	/* findings: every hour the range touches (kept per hour only) */
	if (err == GW_OK && r->f1 > r->f0)
		err = sq_agg_run(c,
				 "SELECT " SQ_FIND_KEYS ", n FROM rep_find"
				 " WHERE hour >= ?1 AND hour < ?2",
				 r->f0, r->f1, STORE_AGG_FINDINGS, fn, arg);
	if (err != GW_OK)
		goto out;
	/* Distinct patients: the union of the whole days' sets (a range
	   open at its end: the pairs last read on or after its first whole
	   day, one row each) and the audit records of the partial days. */
	rc = sqlite3_prepare_v2(
	    c->db,
	    r->d1 == INT64_MAX
		? "SELECT ura, count(DISTINCT bsn) FROM (SELECT ura, bsn FROM"
		  " rep_pat_last WHERE last_day >= ?1 AND ?2 > 0 UNION ALL"
		  " SELECT ura, bsn FROM audit WHERE " SQ_PULLED(
		      "") " AND bsn <> '' AND ((at >= ?3 AND at < ?4) OR (at "
			  ">= ?5"
			  " AND at < ?6))) GROUP BY ura"
		: "SELECT ura, count(DISTINCT bsn) FROM (SELECT ura, bsn FROM"
		  " rep_pat WHERE day >= ?1 AND day < ?2 UNION ALL SELECT ura,"
		  " bsn FROM audit WHERE " SQ_PULLED(
		      "") " AND bsn <> ''"
			  " AND ((at >= ?3 AND at < ?4) OR (at >= ?5 AND at < "
			  "?6)))"
			  " GROUP BY ura",
	    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		err = sq_fail(c, "prepare", rc);
		goto out;
	}
	sqlite3_bind_int64(st, 1, r->d0);
	sqlite3_bind_int64(st, 2, r->d1);
	sqlite3_bind_int64(st, 3, r->dedge[0][0]);
	sqlite3_bind_int64(st, 4, r->dedge[0][1]);
	sqlite3_bind_int64(st, 5, r->dedge[1][0]);
	sqlite3_bind_int64(st, 6, r->dedge[1][1]);
	while (err == GW_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_agg g = {.what = STORE_AGG_PATIENTS};

		g.org = (const char *)sqlite3_column_text(st, 0);
		g.n = sqlite3_column_int64(st, 1);
		err = fn(arg, &g);
	}
	if (err == GW_OK && rc != SQLITE_DONE)
		err = sq_fail(c, "report_agg", rc);
out:
	sqlite3_finalize(st);
	sq_exec(c, "COMMIT");
	return err;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .conn_open = sq_open,
    .conn_close = sq_close,
    .schema_version = sq_schema_version,
    .accept_batch = sq_accept_batch,
    .audit_append = sq_audit_append,
    .audit_list = sq_audit_list,
    .audit_verify = sq_audit_verify,
    .claim = sq_claim,
    .finish = sq_finish,
    .recover = sq_recover,
    .renew = sq_renew,
    .next_due_at = sq_next_due_at,
    .get = sq_get,
    .list = sq_list,
    .act = sq_act,
    .prune = sq_prune,
    .stats = sq_stats,
    .expire = sq_expire,
    .reschedule = sq_reschedule,
    .holds = sq_holds,
    .hold_fail = sq_hold_fail,
    .hold_probe = sq_hold_probe,
    .hold_clear = sq_hold_clear,
    .upkeep = sq_upkeep,
    .check_files = sq_check_files,
    .index_secret = sq_index_secret,
    .report_agg = sq_report_agg,
    .findings_add = sq_findings_add,
    .res_snapshot = sq_res_snapshot,
    .res_txn = sq_res_txn,
    .res_find = sq_res_find,
    .inbox_list = sq_inbox_list,
    .prune_inbound = sq_prune_inbound,
    .raw_begin = sq_raw_begin,
    .raw_end = sq_raw_end,
    .raw_columns = sq_raw_columns,
    .raw_select = sq_raw_select,
    .raw_put = sq_raw_put,
    .raw_clear = sq_raw_clear,
    .raw_counter = sq_raw_counter,
    .set_deadline = sq_set_deadline,
};
