/*
 * PostgreSQL backend of the store (libpq): the same tables, versions and
 * queries as store_sqlite.c, one libpq connection per store connection.
 * Parameters go typed (text, int8, bytea), so a query may leave one unused
 * and a NULL is typed; documents travel as binary bytea. Accepts commit
 * with synchronous_commit on; delivery-state updates on the caller's
 * connection with it off (relaxed_state, as SQLite's synchronous=NORMAL).
 * Claims lock their rows with FOR UPDATE SKIP LOCKED. The audit chain's
 * head is a row (audit_head) locked by every transaction that extends it.
 */
#include <errno.h>
#include <limits.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "store.h"
#include "util.h"

#define PG_PENDING "('due', 'inflight', 'held')"

/* Lane flags of every pending row (see SQ_RELANE_ALL). */
#define PG_RELANE_ALL                                                          \
	"UPDATE outbox SET waiting = (message_seq > (SELECT"                   \
	" min(p.message_seq) FROM outbox p WHERE p.receiver_ura ="             \
	" outbox.receiver_ura AND p.patient_key = outbox.patient_key AND"      \
	" p.state IN " PG_PENDING "))::int WHERE state IN " PG_PENDING

/* Only the flags that are wrong (see SQ_RELANE_FIX). */
#define PG_RELANE_FIX                                                          \
	"UPDATE outbox SET waiting = 0 WHERE waiting <> 0 AND state "          \
	"IN " PG_PENDING                                                       \
	" AND (receiver_ura, patient_key, message_seq) IN (SELECT"             \
	" receiver_ura, patient_key, min(message_seq) FROM outbox WHERE state" \
	" IN " PG_PENDING " GROUP BY receiver_ura, patient_key);"              \
	"UPDATE outbox SET waiting = 1 WHERE waiting <> 1 AND state "          \
	"IN " PG_PENDING                                                       \
	" AND message_seq > (SELECT min(p.message_seq) FROM outbox"            \
	" p WHERE p.receiver_ura = outbox.receiver_ura AND p.patient_key ="    \
	" outbox.patient_key AND p.state IN " PG_PENDING ")"

/* clang-format off */
/*
 * Schema 9: the report's roll-ups, as in store_sqlite.c (SQ_HOUR there
 * says what each table counts), kept by plpgsql triggers. One more
 * column, shard (the backend's pid modulo 8): counters are upserted by
 * every accept and state change, and one row per key would make the
 * transactions of several connections (nodes) wait on each other's
 * row locks; the report sums the shards.
 */
#define PG_NOTICE_SYS "'" STORE_NOTICE_SYSTEM "'"
#define PG_SHARD "(pg_backend_pid() % 8)"
#define PG_HOUR(m) "(" m ".accepted_at / 3600000)"
#define PG_DAY(m) "(" m ".accepted_at / 86400000)"
#define PG_KIND(m)                                                             \
	"(CASE WHEN " m ".bundle_system = " PG_NOTICE_SYS                      \
	" THEN 'notice' ELSE " m ".direction END)"
#define PG_CAUSE(r)                                                            \
	"(CASE WHEN " r ".state = 'dead' OR (" r ".state IN ('due', 'held')"   \
	" AND " r ".attempts > 0 AND coalesce(" r ".last_attempt_at, 0) <> 0)" \
	" THEN CASE WHEN strpos(" r ".last_error, 'max age exceeded') > 0"     \
	" THEN 'max age exceeded' WHEN coalesce(" r ".last_status, 0) <> 0"    \
	" THEN 'HTTP ' || " r ".last_status WHEN strpos(" r ".last_error,"     \
	" 'document missing') > 0 THEN 'document missing' ELSE 'no answer"     \
	" (connection, TLS or local)' END ELSE '' END)"
#define PG_BUCKET(x)                                                           \
	"(CASE WHEN " x " < 1000 THEN " x " ELSE (length(" x "::text) - 4) *"  \
	" 900 + 900 + substr(" x "::text, 1, 3)::bigint END)"
#define PG_LAT_OF(r, m) "(" r ".delivered_at - " m ".accepted_at)"
#define PG_LAT_WHERE(r, m)                                                     \
	r ".state = 'delivered' AND " m ".direction = 'outbound' AND " m       \
	".bundle_system <> " PG_NOTICE_SYS " AND coalesce(" r                  \
	".delivered_at, 0) <> 0 AND " r ".delivered_at >= " m ".accepted_at"
#define PG_MSG_KEYS "hour, kind, sender_ura, fhir_version, event"
#define PG_ROW_KEYS "hour, kind, receiver_ura, state, cause"
#define PG_FIND_KEYS "hour, sender_ura, severity, rule, profile"
#define PG_UPS(t, keys)                                                        \
	" ON CONFLICT (shard, " keys ") DO UPDATE SET n = " t ".n +"           \
	" excluded.n"
#define PG_BASE_MSG(range)                                                     \
	"SELECT " PG_HOUR("m") ", " PG_KIND("m") ", CASE WHEN"                 \
	" m.bundle_system = " PG_NOTICE_SYS " THEN '' ELSE m.sender_ura END,"  \
	" CASE WHEN m.bundle_system = " PG_NOTICE_SYS " THEN '' ELSE"          \
	" m.fhir_version END, m.event, count(*) FROM messages m WHERE"         \
	" m.direction = 'outbound'" range " GROUP BY 1, 2, 3, 4, 5 UNION ALL"  \
	" SELECT " PG_HOUR("m") ", 'inbound', (SELECT"                         \
	" coalesce(nullif(i.sender_ura, ''), m.sender_ura) FROM inbox i WHERE" \
	" i.message_seq = m.seq ORDER BY i.receiver_ura LIMIT 1),"             \
	" m.fhir_version, m.event, count(*) FROM messages m WHERE"             \
	" m.direction = 'inbound' AND EXISTS (SELECT 1 FROM inbox i WHERE"     \
	" i.message_seq = m.seq)" range " GROUP BY 1, 2, 3, 4, 5"
#define PG_BASE_ROW(range)                                                     \
	"SELECT " PG_HOUR("m") ", " PG_KIND("m") ", o.receiver_ura, o.state, " \
	PG_CAUSE("o") ", count(*) FROM outbox o JOIN messages m ON m.seq ="    \
	" o.message_seq WHERE true" range " GROUP BY 1, 2, 3, 4, 5 UNION ALL"  \
	" SELECT " PG_HOUR("m") ", 'inbound', i.receiver_ura, '', '',"         \
	" count(*) FROM inbox i JOIN messages m ON m.seq = i.message_seq"      \
	" WHERE m.direction = 'inbound'" range " GROUP BY 1, 2, 3, 4, 5"
#define PG_BASE_LAT(range)                                                     \
	"SELECT " PG_DAY("m") ", " PG_BUCKET(PG_LAT_OF("o", "m")) ","          \
	" count(*) FROM outbox o JOIN messages m ON m.seq = o.message_seq"     \
	" WHERE " PG_LAT_WHERE("o", "m") range " GROUP BY 1, 2"
/* An audit record counted as a pull: not a push ("create") and not an
 * operator's action in the console ("operator-retry", ...). */
#define PG_PULLED(p)                                                           \
	"(" p "interaction <> 'create' AND substr(" p "interaction, 1, 9) <>"     \
	" 'operator-')"
#define PG_BASE_PULL(range)                                                    \
	"SELECT at / 3600000, ura, count(*) FROM audit WHERE "       \
	PG_PULLED("") range " GROUP BY 1, 2"
/* plpgsql: message m's own count, its rows and deliveries (s: +1/-1);
 * ins: only an outbound message's own count (its rows, inserted maybe
 * by the same statement, count themselves: AFTER triggers fire at the
 * statement's end, when they are there). */
#define PG_REP_M                                                               \
	"CREATE FUNCTION pzpgw_rep_m(m messages, s integer, ins boolean)"      \
	" RETURNS void LANGUAGE plpgsql AS $f$BEGIN"                           \
	" INSERT INTO rep_msg (shard, " PG_MSG_KEYS ", n) SELECT " PG_SHARD    \
	", " PG_HOUR("m") ", " PG_KIND("m") ", CASE WHEN m.bundle_system = "   \
	PG_NOTICE_SYS " THEN '' ELSE m.sender_ura END, CASE WHEN"              \
	" m.bundle_system = " PG_NOTICE_SYS " THEN '' ELSE m.fhir_version"     \
	" END, m.event, s WHERE m.direction = 'outbound'"                      \
	PG_UPS("rep_msg", PG_MSG_KEYS) "; IF ins THEN RETURN; END IF;"         \
	" INSERT INTO rep_msg (shard, " PG_MSG_KEYS ", n) SELECT " PG_SHARD    \
	", " PG_HOUR("m") ", 'inbound', (SELECT coalesce(nullif(i.sender_ura," \
	" ''), m.sender_ura) FROM inbox i WHERE i.message_seq = m.seq ORDER"   \
	" BY i.receiver_ura LIMIT 1), m.fhir_version, m.event, s WHERE"        \
	" m.direction = 'inbound' AND EXISTS (SELECT 1 FROM inbox i WHERE"     \
	" i.message_seq = m.seq)" PG_UPS("rep_msg", PG_MSG_KEYS) ";"           \
	" INSERT INTO rep_row (shard, " PG_ROW_KEYS ", n) SELECT " PG_SHARD    \
	", " PG_HOUR("m") ", " PG_KIND("m") ", o.receiver_ura, o.state, "      \
	PG_CAUSE("o") ", sum(s) FROM outbox o WHERE o.message_seq = m.seq"     \
	" GROUP BY 1, 2, 3, 4, 5, 6" PG_UPS("rep_row", PG_ROW_KEYS) ";"        \
	" INSERT INTO rep_row (shard, " PG_ROW_KEYS ", n) SELECT " PG_SHARD    \
	", " PG_HOUR("m") ", 'inbound', i.receiver_ura, '', '', sum(s) FROM"   \
	" inbox i WHERE i.message_seq = m.seq AND m.direction = 'inbound'"     \
	" GROUP BY 1, 2, 3, 4, 5, 6" PG_UPS("rep_row", PG_ROW_KEYS) ";"        \
	" INSERT INTO rep_lat (shard, day, bucket, n) SELECT " PG_SHARD ", "   \
	PG_DAY("m") ", " PG_BUCKET(PG_LAT_OF("o", "m")) ", sum(s) FROM"        \
	" outbox o WHERE o.message_seq = m.seq AND " PG_LAT_WHERE("o", "m")    \
	" GROUP BY 1, 2, 3" PG_UPS("rep_lat", "day, bucket") "; END$f$;"
/* plpgsql: one outbox row o (nothing when its message is gone). */
#define PG_REP_O                                                               \
	"CREATE FUNCTION pzpgw_rep_o(o outbox, s integer) RETURNS void"        \
	" LANGUAGE plpgsql AS $f$BEGIN"                                        \
	" INSERT INTO rep_row (shard, " PG_ROW_KEYS ", n) SELECT " PG_SHARD    \
	", " PG_HOUR("m") ", " PG_KIND("m") ", o.receiver_ura, o.state, "      \
	PG_CAUSE("o") ", s FROM messages m WHERE m.seq = o.message_seq"        \
	PG_UPS("rep_row", PG_ROW_KEYS) ";"                                     \
	" INSERT INTO rep_lat (shard, day, bucket, n) SELECT " PG_SHARD ", "   \
	PG_DAY("m") ", " PG_BUCKET(PG_LAT_OF("o", "m")) ", s FROM messages"    \
	" m WHERE m.seq = o.message_seq AND " PG_LAT_WHERE("o", "m")           \
	PG_UPS("rep_lat", "day, bucket") "; END$f$;"
/* plpgsql: one inbox row i; left: its message's inbox rows when i is
 * the one that makes or ends the message's count. */
#define PG_REP_I                                                               \
	"CREATE FUNCTION pzpgw_rep_i(i inbox, s integer, lft bigint) RETURNS"  \
	" void LANGUAGE plpgsql AS $f$BEGIN"                                   \
	" INSERT INTO rep_row (shard, " PG_ROW_KEYS ", n) SELECT " PG_SHARD    \
	", " PG_HOUR("m") ", 'inbound', i.receiver_ura, '', '', s FROM"        \
	" messages m WHERE m.seq = i.message_seq AND m.direction = 'inbound'"  \
	PG_UPS("rep_row", PG_ROW_KEYS) ";"                                     \
	" INSERT INTO rep_msg (shard, " PG_MSG_KEYS ", n) SELECT " PG_SHARD    \
	", " PG_HOUR("m") ", 'inbound', coalesce(nullif(i.sender_ura, ''),"    \
	" m.sender_ura), m.fhir_version, m.event, s FROM messages m WHERE"     \
	" m.seq = i.message_seq AND m.direction = 'inbound' AND (SELECT"       \
	" count(*) FROM inbox x WHERE x.message_seq = i.message_seq) = lft"    \
	PG_UPS("rep_msg", PG_MSG_KEYS) "; END$f$;"
/* Step 10: the roll-ups, filled from the rows there are, the functions
 * and triggers that keep them, and the event of a message. */
#define PG_STEP10                                                               \
	"ALTER TABLE messages ADD COLUMN event TEXT NOT NULL DEFAULT '';"      \
	"CREATE TABLE rep_msg (shard INTEGER NOT NULL, hour BIGINT NOT NULL,"  \
	" kind TEXT NOT NULL, sender_ura TEXT NOT NULL,"                       \
	" fhir_version TEXT NOT NULL, event TEXT NOT NULL, n BIGINT NOT NULL," \
	" PRIMARY KEY (shard, " PG_MSG_KEYS "));"                              \
	"CREATE INDEX rep_msg_hour ON rep_msg (hour);"                         \
	"CREATE TABLE rep_row (shard INTEGER NOT NULL, hour BIGINT NOT NULL,"  \
	" kind TEXT NOT NULL, receiver_ura TEXT NOT NULL, state TEXT NOT"      \
	" NULL, cause TEXT NOT NULL, n BIGINT NOT NULL,"                       \
	" PRIMARY KEY (shard, " PG_ROW_KEYS "));"                              \
	"CREATE INDEX rep_row_hour ON rep_row (hour);"                         \
	"CREATE TABLE rep_lat (shard INTEGER NOT NULL, day BIGINT NOT NULL,"   \
	" bucket BIGINT NOT NULL, n BIGINT NOT NULL,"                          \
	" PRIMARY KEY (shard, day, bucket));"                                  \
	"CREATE INDEX rep_lat_day ON rep_lat (day);"                           \
	"CREATE TABLE rep_pull (shard INTEGER NOT NULL, hour BIGINT NOT NULL," \
	" ura TEXT NOT NULL, n BIGINT NOT NULL,"                               \
	" PRIMARY KEY (shard, hour, ura));"                                    \
	"CREATE INDEX rep_pull_hour ON rep_pull (hour);"                       \
	"CREATE TABLE rep_pat (day BIGINT NOT NULL, ura TEXT NOT NULL,"        \
	" bsn TEXT NOT NULL, PRIMARY KEY (day, ura, bsn));"                    \
	"CREATE TABLE rep_pat_last (ura TEXT NOT NULL, bsn TEXT NOT NULL,"     \
	" last_day BIGINT NOT NULL, PRIMARY KEY (ura, bsn));"                  \
	/* findings of refused pushes, written by the daemons every few     \
	   seconds (pg_findings_add; no shard: a node's one upsert per key  \
	   and flush seldom meets another's) */                             \
	"CREATE TABLE rep_find (hour BIGINT NOT NULL, sender_ura TEXT NOT"     \
	" NULL, severity TEXT NOT NULL, rule TEXT NOT NULL, profile TEXT NOT"  \
	" NULL, n BIGINT NOT NULL, PRIMARY KEY (" PG_FIND_KEYS "));"           \
	"INSERT INTO rep_msg (shard, " PG_MSG_KEYS ", n) SELECT 0, * FROM ("   \
	PG_BASE_MSG("") ") b;"                                                 \
	"INSERT INTO rep_row (shard, " PG_ROW_KEYS ", n) SELECT 0, * FROM ("   \
	PG_BASE_ROW("") ") b;"                                                 \
	"INSERT INTO rep_lat (shard, day, bucket, n) SELECT 0, * FROM ("       \
	PG_BASE_LAT("") ") b;"                                                 \
	"INSERT INTO rep_pull (shard, hour, ura, n) SELECT 0, * FROM ("        \
	PG_BASE_PULL("") ") b;"                                                \
	"INSERT INTO rep_pat (day, ura, bsn) SELECT DISTINCT at / 86400000,"   \
	" ura, bsn FROM audit WHERE " PG_PULLED("") " AND bsn <> '';"    \
	"INSERT INTO rep_pat_last (ura, bsn, last_day) SELECT ura, bsn,"       \
	" max(at / 86400000) FROM audit WHERE " PG_PULLED("") " AND"     \
	" bsn <> '' GROUP BY ura, bsn;"                                        \
	PG_REP_M PG_REP_O PG_REP_I                                             \
	/* rep_pruning: a row only inside a retention prune's own          \
	   transaction (pg_delete_chunked; no other transaction sees it),  \
	   whose deletes the roll-ups keep counting: usage outlives        \
	   retention; a purge's do not */                                  \
	"CREATE TABLE rep_pruning (since BIGINT NOT NULL);"                    \
	"CREATE FUNCTION pzpgw_rep_messages() RETURNS trigger LANGUAGE"        \
	" plpgsql AS $f$BEGIN IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM"   \
	" rep_pruning) THEN RETURN OLD; END IF; IF TG_OP <> 'INSERT' THEN"     \
	" PERFORM"                                                             \
	" pzpgw_rep_m(OLD, -1, false); END IF; IF TG_OP <> 'DELETE' THEN"      \
	" PERFORM pzpgw_rep_m(NEW, 1, TG_OP = 'INSERT'); RETURN NULL;"         \
	" END IF; RETURN OLD; END$f$;"                                         \
	"CREATE TRIGGER rep_messages AFTER INSERT OR UPDATE OF accepted_at,"   \
	" direction, bundle_system, sender_ura, fhir_version, event ON"        \
	" messages FOR EACH ROW EXECUTE FUNCTION pzpgw_rep_messages();"        \
	/* before: its rows still there (the cascade's own triggers then    \
	   find no message and count nothing) */                            \
	"CREATE TRIGGER rep_messages_delete BEFORE DELETE ON messages"         \
	" FOR EACH ROW EXECUTE FUNCTION pzpgw_rep_messages();"                 \
	"CREATE FUNCTION pzpgw_rep_outbox() RETURNS trigger LANGUAGE plpgsql"  \
	" AS $f$BEGIN IF TG_OP <> 'INSERT' THEN PERFORM"                       \
	" pzpgw_rep_o(OLD, -1); END IF; IF TG_OP <> 'DELETE' THEN PERFORM"     \
	" pzpgw_rep_o(NEW, 1); END IF; RETURN NULL; END$f$;"                   \
	"CREATE TRIGGER rep_outbox AFTER INSERT OR DELETE OR UPDATE OF state," \
	" receiver_ura, message_seq, delivered_at, attempts,"                  \
	" last_attempt_at, last_status, last_error ON outbox FOR EACH ROW"     \
	" EXECUTE FUNCTION pzpgw_rep_outbox();"                                \
	"CREATE FUNCTION pzpgw_rep_inbox() RETURNS trigger LANGUAGE plpgsql"   \
	" AS $f$BEGIN IF TG_OP = 'INSERT' THEN PERFORM"                        \
	" pzpgw_rep_i(NEW, 1, 1); ELSE PERFORM pzpgw_rep_i(OLD, -1, 0);"       \
	" END IF; RETURN NULL; END$f$;"                                        \
	"CREATE TRIGGER rep_inbox AFTER INSERT OR DELETE ON inbox FOR EACH"    \
	" ROW EXECUTE FUNCTION pzpgw_rep_inbox();"                             \
	"CREATE FUNCTION pzpgw_rep_audit() RETURNS trigger LANGUAGE plpgsql"   \
	" AS $f$BEGIN INSERT INTO rep_pull (shard, hour, ura, n) VALUES ("     \
	PG_SHARD ", NEW.at / 3600000, NEW.ura, 1)"                             \
	PG_UPS("rep_pull", "hour, ura") "; IF NEW.bsn <> '' THEN INSERT INTO"  \
	" rep_pat (day, ura, bsn) VALUES (NEW.at / 86400000, NEW.ura,"         \
	" NEW.bsn) ON CONFLICT DO NOTHING; INSERT INTO rep_pat_last (ura,"     \
	" bsn, last_day) VALUES (NEW.ura, NEW.bsn, NEW.at / 86400000) ON"      \
	" CONFLICT (ura, bsn) DO UPDATE SET last_day ="                        \
	" greatest(rep_pat_last.last_day, excluded.last_day); END IF;"         \
	" RETURN NULL; END$f$;"                                                \
	"CREATE TRIGGER rep_audit AFTER INSERT ON audit FOR EACH ROW WHEN"     \
	" " PG_PULLED("NEW.") " EXECUTE FUNCTION pzpgw_rep_audit();"
/*
 * Step 11: an accept's inbox rows are counted by the writer, once per
 * batch and key (pg_accept_rollup), rather than by the row trigger, whose
 * two upserts and plpgsql call were about 0.2 ms of server time per
 * document. The writer's transaction says so (PG_ROLLUP_CLIENT, also set
 * by its audit batches since step 12, whatever the setting's name says);
 * every other insert (store copy, an older node) is still counted here,
 * and deletes always are.
 */
#define PG_ROLLUP_GUC "pzpgw.inbox_rollup"
#define PG_ROLLUP_CLIENT "SET LOCAL " PG_ROLLUP_GUC " = 'writer'"
#define PG_NOT_WRITER                                                          \
	"coalesce(current_setting('" PG_ROLLUP_GUC "', true), '') <> 'writer'"
#define PG_STEP11                                                              \
	"DROP TRIGGER rep_inbox ON inbox;"                                     \
	"CREATE TRIGGER rep_inbox AFTER DELETE ON inbox FOR EACH ROW"          \
	" EXECUTE FUNCTION pzpgw_rep_inbox();"                                 \
	"CREATE TRIGGER rep_inbox_insert AFTER INSERT ON inbox FOR EACH ROW"   \
	" WHEN (" PG_NOT_WRITER ") EXECUTE FUNCTION pzpgw_rep_inbox();"
/*
 * Step 12: the writer's audit batches count their pull records the same
 * way (pg_audit_rollup: three statements a batch where the trigger made
 * three upserts a record); the records of an accept's transaction are
 * pushes, which the trigger does not count either.
 */
#define PG_STEP12                                                              \
	"DROP TRIGGER rep_audit ON audit;"                                     \
	"CREATE TRIGGER rep_audit AFTER INSERT ON audit FOR EACH ROW WHEN ("   \
	PG_PULLED("NEW.") " AND " PG_NOT_WRITER ") EXECUTE FUNCTION"           \
	" pzpgw_rep_audit();"
/* clang-format on */

/* Schema steps with SQLite's numbering: PG_MIGRATIONS[i] takes version i
 * to i + 1. SQLite's queue_counts (3) has no counterpart: with several
 * nodes one row per receiver would serialise every accept and claim, and
 * the (state, receiver) index answers the gauges. */
static const char *const pg_migrations[] = {
    /* 1: messages (with the idempotency key) and the outbox. */
    "CREATE TABLE pzpgw_schema ("
    " k INTEGER PRIMARY KEY CHECK (k = 1),"
    " version INTEGER NOT NULL);"
    "INSERT INTO pzpgw_schema (k, version) VALUES (1, 0);"
    "CREATE TABLE messages ("
    " seq BIGSERIAL PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " direction TEXT NOT NULL CHECK (direction IN"
    "  ('outbound', 'inbound')),"
    " sender_ura TEXT NOT NULL,"
    " bundle_system TEXT NOT NULL,"
    " bundle_value TEXT NOT NULL,"
    " patient_key TEXT NOT NULL,"
    " fhir_version TEXT NOT NULL,"
    " document BYTEA NOT NULL,"
    " jws TEXT,"
    " sha256 TEXT NOT NULL,"
    " accepted_at BIGINT NOT NULL,"
    " answer_status INTEGER NOT NULL,"
    " answer_body TEXT,"
    " UNIQUE (direction, sender_ura, bundle_system, bundle_value));"
    "CREATE TABLE outbox ("
    " message_seq BIGINT NOT NULL"
    "  REFERENCES messages(seq) ON DELETE CASCADE,"
    " receiver_ura TEXT NOT NULL,"
    " patient_key TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN"
    "  ('due', 'inflight', 'delivered', 'dead', 'held')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at BIGINT NOT NULL,"
    " first_attempt_at BIGINT,"
    " last_attempt_at BIGINT,"
    " last_status INTEGER,"
    " last_error TEXT,"
    " outcome TEXT,"
    " delivered_at BIGINT,"
    " PRIMARY KEY (message_seq, receiver_ura));"
    "CREATE INDEX outbox_order ON outbox"
    " (receiver_ura, patient_key, message_seq)"
    " WHERE state IN ('due', 'inflight', 'held');",
    /* 2: replay counter and the lane flag. */
    "ALTER TABLE outbox ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN waiting INTEGER NOT NULL DEFAULT "
    "0;" PG_RELANE_ALL ";"
    "CREATE INDEX outbox_ready ON outbox (next_attempt_at)"
    " WHERE state = 'due' AND waiting = 0;"
    "CREATE INDEX outbox_state_receiver ON outbox (state, receiver_ura);"
    "CREATE INDEX outbox_delivered ON outbox (delivered_at)"
    " WHERE state = 'delivered';",
    /* 3: maximum age restarted by an operator; acceptance time index. */
    "CREATE INDEX messages_accepted ON messages (accepted_at);"
    "ALTER TABLE outbox ADD COLUMN age_from BIGINT;",
    /* 4: the received-data index (the secret is inserted by
       pg_migrate, from RAND_bytes). */
    "CREATE TABLE index_secret ("
    " k INTEGER PRIMARY KEY CHECK (k = 1),"
    " secret BYTEA NOT NULL CHECK (octet_length(secret) = 32));"
    "CREATE TABLE inbox ("
    " message_seq BIGINT NOT NULL"
    "  REFERENCES messages(seq) ON DELETE CASCADE,"
    " receiver_ura TEXT NOT NULL,"
    " bsn TEXT NOT NULL,"
    " sender_ura TEXT NOT NULL,"
    " resources INTEGER NOT NULL,"
    " PRIMARY KEY (message_seq, receiver_ura));"
    "CREATE INDEX inbox_receiver ON inbox (receiver_ura, message_seq);"
    "CREATE INDEX inbox_bsn ON inbox (bsn, message_seq);"
    "CREATE TABLE res_versions ("
    " seq BIGSERIAL PRIMARY KEY,"
    " receiver_ura TEXT NOT NULL,"
    " bsn TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " vid BIGINT NOT NULL,"
    " res_key TEXT NOT NULL,"
    " message_seq BIGINT NOT NULL"
    "  REFERENCES messages(seq) ON DELETE CASCADE,"
    " updated BIGINT NOT NULL,"
    " hidden INTEGER NOT NULL,"
    " superseded_seq BIGINT,"
    " sha256 TEXT NOT NULL,"
    " json TEXT NOT NULL,"
    " UNIQUE (receiver_ura, id, vid));"
    "CREATE INDEX res_patient ON res_versions (receiver_ura, bsn, seq);"
    "CREATE INDEX res_receiver ON res_versions (receiver_ura, seq);"
    "CREATE INDEX res_updated ON res_versions (receiver_ura, updated);"
    "CREATE INDEX res_message ON res_versions (message_seq);",
    /* 5: the audit trail, append-only by trigger (also TRUNCATE).
       audit_head holds the last seq ever given and its hash: every
       transaction that appends locks it, so the chain has one order
       however many connections (or nodes) write, and records deleted
       at the end leave a gap verify sees. */
    "CREATE TABLE audit ("
    " seq BIGINT PRIMARY KEY,"
    " at BIGINT NOT NULL,"
    " ura TEXT NOT NULL,"
    " cert_serial TEXT NOT NULL,"
    " cert_issuer TEXT NOT NULL,"
    " bsn TEXT NOT NULL,"
    " interaction TEXT NOT NULL,"
    " query TEXT NOT NULL,"
    " count BIGINT NOT NULL,"
    " status INTEGER NOT NULL,"
    " request_id TEXT NOT NULL,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE INDEX audit_at ON audit (at);"
    "CREATE INDEX audit_bsn ON audit (bsn, seq) WHERE bsn <> '';"
    "CREATE INDEX audit_ura ON audit (ura, seq);"
    "CREATE TABLE audit_head ("
    " k INTEGER PRIMARY KEY CHECK (k = 1),"
    " seq BIGINT NOT NULL,"
    " hash TEXT);"
    "INSERT INTO audit_head (k, seq, hash) VALUES (1, 0, NULL);"
    "CREATE FUNCTION pzpgw_audit_append_only() RETURNS trigger"
    " LANGUAGE plpgsql AS $f$BEGIN"
    " RAISE EXCEPTION 'audit records are append-only'; END$f$;"
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit"
    " FOR EACH ROW EXECUTE FUNCTION pzpgw_audit_append_only();"
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
    " FOR EACH STATEMENT EXECUTE FUNCTION pzpgw_audit_append_only();",
    /* 6: the transform report beside a message. */
    "ALTER TABLE messages ADD COLUMN transform_report TEXT;",
#if STORE_SQLITE_SCHEMA >= 7
    /* 7 (i11-search's NOTE): searches by patient always name a type. */
    "DROP INDEX res_patient;"
    "CREATE INDEX res_patient_type ON res_versions"
    " (receiver_ura, bsn, type, seq);",
#endif
    /* 8: the delivery lease. A claim names its node and an expiry; a
       node recovers its own rows at start, and any node takes back a
       row whose lease expired (its node died mid-delivery). */
    "ALTER TABLE outbox ADD COLUMN lease_owner TEXT;"
    "ALTER TABLE outbox ADD COLUMN lease_until BIGINT;"
    "CREATE INDEX outbox_lease ON outbox (lease_until)"
    " WHERE state = 'inflight';",
#if STORE_SQLITE_SCHEMA >= 9
    /* 9: a receiver's hold shared by the nodes (store_hold_fail): a row
       per held receiver, deleted when it answers again; probe_owner and
       probe_until are the claim of its one probe. */
    "CREATE TABLE receiver_hold ("
    " receiver_ura TEXT PRIMARY KEY,"
    " hold_until BIGINT NOT NULL,"
    " fails INTEGER NOT NULL,"
    " reason TEXT NOT NULL,"
    " probe_owner TEXT,"
    " probe_until BIGINT,"
    " updated_at BIGINT NOT NULL);",
#endif
#if STORE_SQLITE_SCHEMA >= 10
    /* 10: the report's roll-ups (PG_STEP10). */
    PG_STEP10,
#endif
#if STORE_SQLITE_SCHEMA >= 11
    /* 11: inbox rows of accepts counted by the writer (PG_STEP11). */
    PG_STEP11,
#endif
#if STORE_SQLITE_SCHEMA >= 12
    /* 12: pull audit records counted by the writer (PG_STEP12). */
    PG_STEP12,
#endif
};

/* A new SQLite schema version needs its PostgreSQL step here too. */
_Static_assert(sizeof(pg_migrations) / sizeof(pg_migrations[0]) ==
		   STORE_SQLITE_SCHEMA,
	       "pg_migrations has one step per STORE_SQLITE_SCHEMA version");

/* Advisory lock key of schema migrations (two nodes starting at once
 * migrate one after the other): "pzpgw" in ASCII. */
#define PG_MIGRATE_LOCK "482068318071"

/* How long a node starting waits for another session holding its name
 * to end (a node killed a moment ago) before it refuses to start. */
#define PG_NODE_WAIT_MS 5000

/* Type OIDs of parameters (pg_type.h is a server header). */
#define PG_BOOL	      16
#define PG_BYTEA      17
#define PG_INT8	      20
#define PG_TEXT	      25
#define PG_INT8_ARRAY 1016
#define PG_TEXT_ARRAY 1009

#define PG_ARGS_MAX 16

/* Typed parameters of one statement. */
struct pg_args {
	int n;
	Oid types[PG_ARGS_MAX];
	const char *vals[PG_ARGS_MAX];
	int lens[PG_ARGS_MAX];
	int fmts[PG_ARGS_MAX];
	char num[PG_ARGS_MAX][24];
};

/* Prepared statements kept per connection. */
#define PG_PREP_CACHE 48

/* One connection. */
struct pg {
	PGconn *db;
	bool relaxed;	    /* synchronous_commit off for this session */
	bool audit_relaxed; /* audit-only commits without waiting */
	bool readonly;	    /* the CLI's read-only opening */
	bool txn;	    /* a transaction is open */
	bool deadlock;	    /* a statement failed with 40P01 (pg_fail) */
	bool node_claim;    /* holds the lock on its node's name */
	bool node_lost;	    /* ... lost it after a reconnect: said once */
	char node[STORE_NODE_MAX + 1]; /* the owner of its leases */
	int64_t lease_ms;
	/* The daemon's connections wait at most wait_ms for an answer of
	   the server (pg_await; 0: as long as it takes, the CLI's). A
	   server that stopped answering with the connection open (frozen,
	   or cut off by the network) then costs a thread that long once:
	   the connection is given up (hung) and tried again no sooner than
	   retry_at (util_mono_ms). */
	unsigned wait_ms;
	bool hung;
	uint64_t retry_at;
	/* The audit chain's head within the open transaction (see
	   sq_audit_write); saved to audit_head before the commit. */
	bool chain_known;
	int64_t chain_seq, chain_start;
	char chain_hash[65];
	/* Rows of a claim whose COMMIT got no answer (the connection
	   broke): it may have committed, leaving rows in flight that no
	   attempt holds. Put back to due (if still so marked) before the
	   next claim. */
	struct pg_lost {
		int64_t seq;
		char receiver[STORE_URA_MAX + 1];
	} * lost;
	size_t nlost;
	int64_t lost_at; /* their last_attempt_at */
	/* Statements with parameters, prepared once per connection (the
	   server then skips parsing and planning: the index entry's
	   statement planned every time cost more than it ran). */
	struct {
		char *sql;
		unsigned n; /* its name: "pz<n>" */
	} prep[PG_PREP_CACHE];
	unsigned prep_next; /* the slot replaced next */
	unsigned prep_seq;  /* names given so far */
	/* store copy's COPY FROM STDIN into raw_table (pg_raw_put): open,
	   and the rows buffered for it. */
	bool raw_copy;
	char raw_table[64];
	char *raw_buf;
	size_t raw_len, raw_cap;
};

static const char *const pg_states[STORE_STATE_COUNT] = {
    [STORE_DUE] = "due",
    [STORE_INFLIGHT] = "inflight",
    [STORE_DELIVERED] = "delivered",
    [STORE_DEAD] = "dead",
    [STORE_HELD] = "held",
};

static void
pa_text(struct pg_args *a, const char *s)
{
	a->types[a->n] = PG_TEXT;
	a->vals[a->n] = s;
	a->lens[a->n] = 0;
	a->fmts[a->n] = 0;
	a->n++;
}

static void
pa_i64(struct pg_args *a, int64_t v)
{
	snprintf(a->num[a->n], sizeof(a->num[a->n]), "%lld", (long long)v);
	a->types[a->n] = PG_INT8;
	a->vals[a->n] = a->num[a->n];
	a->lens[a->n] = 0;
	a->fmts[a->n] = 0;
	a->n++;
}

/* An int8 parameter that is NULL (no value). */
static void
pa_null_i64(struct pg_args *a)
{
	a->types[a->n] = PG_INT8;
	a->vals[a->n] = NULL;
	a->lens[a->n] = 0;
	a->fmts[a->n] = 0;
	a->n++;
}

static void
pa_bool(struct pg_args *a, bool v)
{
	a->types[a->n] = PG_BOOL;
	a->vals[a->n] = v ? "t" : "f";
	a->lens[a->n] = 0;
	a->fmts[a->n] = 0;
	a->n++;
}

/* Binary bytea (len fits an int: documents are limited far below). */
static void
pa_bytes(struct pg_args *a, const void *p, size_t len)
{
	a->types[a->n] = PG_BYTEA;
	a->vals[a->n] = len > 0 ? p : "";
	a->lens[a->n] = len > INT_MAX ? INT_MAX : (int)len;
	a->fmts[a->n] = 1;
	a->n++;
}

/* Map a failed result: connection loss, serialisation and lock waits
 * are temporary, a full disk or I/O trouble an I/O error, constraint and
 * data errors invalid input, the rest (a missing table, a bug)
 * permanent. */
static enum gw_err
pg_err_of(const PGresult *r, PGconn *db)
{
	const char *st =
	    r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (st == NULL || PQstatus(db) == CONNECTION_BAD)
		return GW_TEMP;
	if (strncmp(st, "08", 2) == 0 || strncmp(st, "40", 2) == 0 ||
	    strncmp(st, "57P", 3) == 0 || strcmp(st, "55P03") == 0 ||
	    strcmp(st, "25006") == 0 || strcmp(st, "57014") == 0)
		return GW_TEMP;
	if (strcmp(st, "53200") == 0)
		return GW_NOMEM;
	if (strncmp(st, "53", 2) == 0 || strncmp(st, "58", 2) == 0)
		return GW_IO;
	if (strncmp(st, "23", 2) == 0 || strncmp(st, "22", 2) == 0)
		return GW_INVALID;
	return GW_PERM;
}

/* Temporary failures (the server unreachable) are said at most once per
 * PG_TEMP_LOG_MS over every connection of the process (pg_fail):
 * pg_temp_said is util_mono_ms of the last line, pg_temp_quiet the
 * failures since that were not said. */
#define PG_TEMP_LOG_MS 5000
static atomic_uint_fast64_t pg_temp_said;
static atomic_uint_fast64_t pg_temp_quiet;

/* Log a failed statement. Only the SQLSTATE and, outside data and
 * constraint errors (whose messages quote values), the server's primary
 * message: never a parameter. */
static enum gw_err
pg_fail(struct pg *c, const char *op, const PGresult *r)
{
	const char *st =
	    r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg =
	    r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char what[64], detail[160];
	enum gw_err err = pg_err_of(r, c->db);

	if (st != NULL && strcmp(st, "40P01") == 0)
		c->deadlock = true;
	if (c->hung) /* libpq says the connection pg_give_up shut */
		msg = "no answer from the server in time";
	else if (msg == NULL)
		msg = PQerrorMessage(c->db);
	if (err == GW_INVALID)
		msg = "(data or constraint error)";
	/* A server that is down fails every connection's every try (the
	   upkeep ping alone ten a second): one line per PG_TEMP_LOG_MS
	   across the connections, saying how many it stands for. */
	if (err == GW_TEMP) {
		uint_fast64_t now = util_mono_ms(),
			      last = atomic_load(&pg_temp_said);

		if (last != 0 && now - last < PG_TEMP_LOG_MS) {
			atomic_fetch_add(&pg_temp_quiet, 1);
			return err;
		}
		if (!atomic_compare_exchange_strong(&pg_temp_said, &last,
						    now)) {
			atomic_fetch_add(&pg_temp_quiet, 1);
			return err;
		}
	}
	log_safe(what, sizeof(what), op);
	log_safe(detail, sizeof(detail), msg);
	if (err == GW_TEMP)
		log_warnx(
		    "event=store_error backend=postgresql op=%s "
		    "sqlstate=%s detail=%s unsaid=%llu",
		    what, st != NULL ? st : "none", detail,
		    (unsigned long long)atomic_exchange(&pg_temp_quiet, 0));
	else
		log_warnx("event=store_error backend=postgresql op=%s "
			  "sqlstate=%s detail=%s",
			  what, st != NULL ? st : "none", detail);
	return err;
}

/* Between two tries to reconnect a connection given up (pg_await). */
#define PG_RETRY_MS 1000

/* Give up c's connection: the server did not answer within c->wait_ms.
 * Shutting the socket down makes libpq see the connection end, so what
 * it still waits for fails at once (GW_TEMP) and the next statement
 * outside a transaction reconnects (pg_q), no sooner than PG_RETRY_MS
 * from now. */
static void
pg_give_up(struct pg *c)
{
	int fd = PQsocket(c->db);

	c->hung = true;
	c->retry_at = util_mono_ms() + PG_RETRY_MS;
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR);
}

/* Wait for the socket of c to be ready for events, until `until`
 * (util_mono_ms): 1 ready, 0 the time is up, -1 no socket. */
static int
pg_poll(struct pg *c, short events, uint64_t until)
{
	for (;;) {
		struct pollfd pfd = {.fd = PQsocket(c->db), .events = events};
		uint64_t now = util_mono_ms();
		int n;

		if (pfd.fd < 0)
			return -1;
		if (now >= until)
			return 0;
		n = poll(&pfd, 1,
			 until - now > INT_MAX ? INT_MAX : (int)(until - now));
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/*
 * Wait until the next result of what was sent on c can be read without
 * blocking (PQgetResult), sending what libpq still holds (the
 * connection is non-blocking when c->wait_ms is set: pg_open). Without
 * wait_ms, libpq's own blocking wait does this. When the server has not
 * answered within c->wait_ms the connection is given up (pg_give_up):
 * PQgetResult then fails at once rather than waiting for ever.
 */
static void
pg_await(struct pg *c)
{
	uint64_t until;

	if (c->wait_ms == 0)
		return;
	until = util_mono_ms() + c->wait_ms;
	for (;;) {
		int fl = PQflush(c->db);
		int ready;

		if (fl < 0 || PQstatus(c->db) != CONNECTION_OK)
			return; /* broken: PQgetResult says so */
		if (fl == 0 && !PQisBusy(c->db))
			return;
		ready = pg_poll(c, fl == 1 ? POLLIN | POLLOUT : POLLIN, until);
		if (ready == 0) {
			pg_give_up(c);
			return;
		}
		if (ready < 0 || PQconsumeInput(c->db) != 1)
			return;
	}
}

/* The next result of c, waiting at most c->wait_ms (pg_await). */
static PGresult *
pg_result(struct pg *c)
{
	pg_await(c);
	return PQgetResult(c->db);
}

/* Every result of what was sent on c (sent: its send call succeeded), as
 * PQexec gives them: the first failure, else the last result. NULL when
 * nothing could be sent or read. Each send and pg_collect is the one way
 * statements run outside pipelines, with or without wait_ms (without,
 * PQgetResult blocks as PQexec would). */
static PGresult *
pg_collect(struct pg *c, int sent)
{
	PGresult *keep = NULL, *r;

	if (sent != 1)
		return NULL;
	while ((r = pg_result(c)) != NULL) {
		ExecStatusType st =
		    keep != NULL ? PQresultStatus(keep) : PGRES_COMMAND_OK;

		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
		    st != PGRES_EMPTY_QUERY) {
			PQclear(r); /* the failure is kept */
			continue;
		}
		PQclear(keep);
		keep = r;
	}
	return keep;
}

/* sql (no parameters; several statements allowed) on c, as PQexec. */
static PGresult *
pg_exec(struct pg *c, const char *sql)
{
	return pg_collect(c, PQsendQuery(c->db, sql));
}

/*
 * Reconnect c's broken connection (PQreset). With wait_ms, without
 * blocking for longer than that: a server that accepts the connection
 * but does not answer (frozen) would otherwise hold the thread for
 * libpq's connect timeout at every try. false: not connected.
 */
static bool
pg_reconnect(struct pg *c)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	uint64_t until;

	if (c->wait_ms == 0) {
		PQreset(c->db);
		return PQstatus(c->db) == CONNECTION_OK;
	}
	if (util_mono_ms() < c->retry_at)
		return false;
	c->retry_at = util_mono_ms() + PG_RETRY_MS;
	c->hung = false; /* until this try, too, gets no answer */
	until = util_mono_ms() + c->wait_ms;
	if (PQresetStart(c->db) != 1)
		return false;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			return false;
		if (pg_poll(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			    until) != 1) {
			pg_give_up(c);
			return false;
		}
		st = PQresetPoll(c->db);
	}
	return PQsetnonblocking(c->db, 1) == 0;
}

/* Forget every prepared statement (a new session has none). */
static void
pg_prep_forget(struct pg *c)
{
	for (unsigned i = 0; i < PG_PREP_CACHE; i++) {
		free(c->prep[i].sql);
		c->prep[i].sql = NULL;
	}
}

/* The name of sql prepared on c with a's types, preparing it on a miss
 * (the slot replaced is deallocated). NULL when preparing failed: the
 * caller then runs it unprepared, which reports the error. */
static const char *
pg_prepared(struct pg *c, const char *sql, const struct pg_args *a, char *name,
	    size_t n)
{
	unsigned k;
	PGresult *r;
	char *copy;

	for (k = 0; k < PG_PREP_CACHE; k++) {
		if (c->prep[k].sql != NULL &&
		    strcmp(c->prep[k].sql, sql) == 0) {
			snprintf(name, n, "pz%u", c->prep[k].n);
			return name;
		}
	}
	if ((copy = strdup(sql)) == NULL)
		return NULL;
	snprintf(name, n, "pz%u", c->prep_seq);
	r = pg_collect(c, PQsendPrepare(c->db, name, sql, a->n, a->types));
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		free(copy);
		return NULL;
	}
	PQclear(r);
	k = c->prep_next++ % PG_PREP_CACHE;
	if (c->prep[k].sql != NULL) {
		char old[24], dealloc[48];

		snprintf(old, sizeof(old), "pz%u", c->prep[k].n);
		snprintf(dealloc, sizeof(dealloc), "DEALLOCATE %s", old);
		PQclear(pg_exec(c, dealloc));
		free(c->prep[k].sql);
	}
	c->prep[k].sql = copy;
	c->prep[k].n = c->prep_seq++;
	return name;
}

/* Take the session lock on c->node's name (see node_claim); false when
 * another session holds it (or the query failed). */
static bool
pg_node_lock(struct pg *c)
{
	const char *vals[1] = {c->node};
	PGresult *r;
	bool got;

	static const char sql[] = "SELECT pg_try_advisory_lock("
				  "hashtextextended('pzpgw node ' || $1::text,"
				  " 0))";

	r = pg_collect(
	    c, PQsendQueryParams(c->db, sql, 1, NULL, vals, NULL, NULL, 0));
	got = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	      strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return got;
}

/*
 * Values this session stores compressed (a message's document, ~30 KB)
 * with lz4 rather than pglz: pglz took most of a message row's INSERT
 * (0.68 ms of it; lz4 0.16 ms). Either is read back whatever the
 * session says. A server built without lz4 refuses the setting and
 * keeps pglz.
 */
static void
pg_session_compress(struct pg *c)
{
	PQclear(pg_exec(c, "SET default_toast_compression = lz4"));
}

/* Reconnect c's broken connection and set its session up again as
 * pg_open did: a new session has no prepared statement and none of the
 * settings. false: still not connected. */
static bool
pg_revive(struct pg *c)
{
	pg_prep_forget(c);
	if (!pg_reconnect(c))
		return false;
	pg_session_compress(c);
	if (c->relaxed)
		PQclear(pg_exec(c, "SET synchronous_commit = off"));
	if (c->readonly)
		PQclear(pg_exec(c, "SET default_transaction_read_only = on"));
	if (c->node_claim && !pg_node_lock(c) && !c->node_lost) {
		c->node_lost = true;
		log_warnx("event=node_name_in_use node=%s "
			  "message=\"after a reconnect another live "
			  "node holds this node's name: give each "
			  "node its own [process] node\"",
			  c->node);
	}
	return true;
}

/*
 * Run sql with a (may be NULL). *out (may be NULL: cleared here) gets
 * the result of a statement that succeeded. A connection found broken
 * outside a transaction is reset first, so a restarted database costs
 * the statements that were running, not the store.
 */
static enum gw_err
pg_q(struct pg *c, const char *op, const char *sql, const struct pg_args *a,
     PGresult **out)
{
	PGresult *r;
	ExecStatusType st;
	enum gw_err err;

	if (out != NULL)
		*out = NULL;
	if (PQstatus(c->db) != CONNECTION_OK && !c->txn && !pg_revive(c))
		return pg_fail(c, "reconnect", NULL);
	if (a != NULL && a->n > 0) {
		char name[24];
		const char *pn = pg_prepared(c, sql, a, name, sizeof(name));

		if (pn != NULL)
			r = pg_collect(c, PQsendQueryPrepared(c->db, pn, a->n,
							      a->vals, a->lens,
							      a->fmts, 0));
		else
			r = pg_collect(
			    c, PQsendQueryParams(c->db, sql, a->n, a->types,
						 a->vals, a->lens, a->fmts, 0));
	} else
		r = pg_exec(c, sql);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out != NULL)
			*out = r;
		else
			PQclear(r);
		return GW_OK;
	}
	err = r == NULL ? GW_NOMEM : pg_fail(c, op, r);
	if (r == NULL) {
		(void)pg_fail(c, op, NULL);
		/* Not sent (pg_collect): a connection lost is temporary. */
		if (PQstatus(c->db) != CONNECTION_OK || c->hung)
			err = GW_TEMP;
	}
	PQclear(r);
	return err;
}

/* The number of rows a command changed. */
static int64_t
pg_changes(PGresult *r)
{
	const char *t = PQcmdTuples(r);

	return t != NULL && t[0] != '\0' ? strtoll(t, NULL, 10) : 0;
}

static int64_t
pg_i64(PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* A heap copy of a text column, NULL when NULL. */
static char *
pg_text(PGresult *r, int row, int col, bool *nomem)
{
	char *s;

	if (PQgetisnull(r, row, col))
		return NULL;
	if ((s = strdup(PQgetvalue(r, row, col))) == NULL)
		*nomem = true;
	return s;
}

static void
pg_copy(char *dst, size_t n, PGresult *r, int row, int col)
{
	util_strlcpy(dst, PQgetvalue(r, row, col), n);
}

/*
 * A pipeline (libpq's pipeline mode): statements sent without waiting
 * for each other's results, their results read at pg_pipe_end, one round
 * trip in all. The writer's round trips were most of a PostgreSQL
 * accept's time (a document's inbox row, outbox rows, ~20 index entries
 * and audit records each waited for the server). The statements run in
 * order inside the open transaction; the first failure is reported and
 * the server skips the later ones. When the pipeline cannot start, each
 * statement runs at once (pg_q), with the same effect.
 */
#define PG_PIPE_NEW 16

struct pg_pipe {
	const char *op;
	size_t sent;		     /* statements sent, each one result */
	enum gw_err err;	     /* the first failure */
	bool on;		     /* in pipeline mode */
	int64_t *rows;		     /* may be NULL: the first column of the */
	size_t nrows, got;	     /* results with rows, in order */
	unsigned nnew;		     /* prepared in this pipeline: */
	unsigned fresh[PG_PIPE_NEW]; /* their cache slots */
};

/* Keep r's first value when p keeps them (0 when r has no row). */
static void
pg_pipe_row(struct pg_pipe *p, PGresult *r)
{
	if (p->rows == NULL || PQresultStatus(r) != PGRES_TUPLES_OK)
		return;
	if (p->got < p->nrows)
		p->rows[p->got] = PQntuples(r) == 1 ? pg_i64(r, 0, 0) : 0;
	p->got++;
}

static void
pg_pipe_begin(struct pg *c, struct pg_pipe *p, const char *op)
{
	memset(p, 0, sizeof(*p));
	p->op = op;
	p->on =
	    PQstatus(c->db) == CONNECTION_OK && PQenterPipelineMode(c->db) == 1;
}

/* The cache slot of sql prepared on c, or -1. */
static int
pg_prep_find(const struct pg *c, const char *sql)
{
	for (unsigned k = 0; k < PG_PREP_CACHE; k++)
		if (c->prep[k].sql != NULL && strcmp(c->prep[k].sql, sql) == 0)
			return (int)k;
	return -1;
}

/* Prepare sql in the pipeline (PQsendPrepare): its slot is remembered
 * so that a failed pipeline, where the server skipped the PREPARE,
 * forgets it again. false: run it unprepared. */
static bool
pg_pipe_prepare(struct pg *c, struct pg_pipe *p, const char *sql,
		const struct pg_args *a, char *name, size_t n)
{
	unsigned k;
	char *copy;

	if (p->nnew == PG_PIPE_NEW || (copy = strdup(sql)) == NULL)
		return false;
	snprintf(name, n, "pz%u", c->prep_seq);
	if (PQsendPrepare(c->db, name, sql, a->n, a->types) != 1) {
		free(copy);
		return false;
	}
	p->sent++;
	k = c->prep_next++ % PG_PREP_CACHE;
	if (c->prep[k].sql != NULL) {
		char dealloc[48];

		/* After the statements queued before it that use it. */
		snprintf(dealloc, sizeof(dealloc), "DEALLOCATE pz%u",
			 c->prep[k].n);
		if (PQsendQueryParams(c->db, dealloc, 0, NULL, NULL, NULL, NULL,
				      0) == 1)
			p->sent++;
		free(c->prep[k].sql);
	}
	c->prep[k].sql = copy;
	c->prep[k].n = c->prep_seq++;
	p->fresh[p->nnew++] = k;
	return true;
}

/* Send sql with a (a->n > 0) into the pipeline. */
static void
pg_pipe_send(struct pg *c, struct pg_pipe *p, const char *sql,
	     const struct pg_args *a)
{
	char name[24];
	int k, ok;

	if (p->err != GW_OK)
		return;
	if (!p->on) {
		PGresult *r = NULL;

		p->err = pg_q(c, p->op, sql, a, p->rows != NULL ? &r : NULL);
		if (r != NULL)
			pg_pipe_row(p, r);
		PQclear(r);
		return;
	}
	if ((k = pg_prep_find(c, sql)) >= 0)
		snprintf(name, sizeof(name), "pz%u", c->prep[k].n);
	if (k >= 0 || pg_pipe_prepare(c, p, sql, a, name, sizeof(name)))
		ok = PQsendQueryPrepared(c->db, name, a->n, a->vals, a->lens,
					 a->fmts, 0);
	else
		ok = PQsendQueryParams(c->db, sql, a->n, a->types, a->vals,
				       a->lens, a->fmts, 0);
	if (ok != 1)
		p->err = pg_fail(c, p->op, NULL);
	else
		p->sent++;
}

/* Read every result of the pipeline and leave pipeline mode: the first
 * failure (GW_OK when all ran). */
static enum gw_err
pg_pipe_end(struct pg *c, struct pg_pipe *p)
{
	size_t nulls = 0;
	bool synced = false;

	if (!p->on)
		return p->err;
	if (PQpipelineSync(c->db) != 1) {
		if (p->err == GW_OK)
			p->err = pg_fail(c, p->op, NULL);
	} else {
		/* Each statement's result ends with a NULL; the sync's
		   result ends the pipeline. */
		while (!synced && nulls <= p->sent + 1) {
			PGresult *r = pg_result(c);
			ExecStatusType st;

			if (r == NULL) {
				if (PQstatus(c->db) != CONNECTION_OK)
					break;
				nulls++;
				continue;
			}
			st = PQresultStatus(r);
			pg_pipe_row(p, r);
			if (st == PGRES_PIPELINE_SYNC)
				synced = true;
			else if (st != PGRES_COMMAND_OK &&
				 st != PGRES_TUPLES_OK &&
				 st != PGRES_PIPELINE_ABORTED &&
				 p->err == GW_OK)
				p->err = pg_fail(c, p->op, r);
			PQclear(r);
		}
		if (!synced && p->err == GW_OK)
			p->err = pg_fail(c, p->op, NULL);
	}
	(void)PQexitPipelineMode(c->db);
	if (p->err != GW_OK) {
		for (unsigned i = 0; i < p->nnew; i++) {
			free(c->prep[p->fresh[i]].sql);
			c->prep[p->fresh[i]].sql = NULL;
		}
	}
	p->on = false;
	return p->err;
}

static enum gw_err
pg_begin(struct pg *c)
{
	enum gw_err err = pg_q(c, "begin", "BEGIN", NULL, NULL);

	c->txn = err == GW_OK;
	return err;
}

static void
pg_rollback(struct pg *c)
{
	if (PQtransactionStatus(c->db) != PQTRANS_IDLE &&
	    PQstatus(c->db) == CONNECTION_OK)
		PQclear(pg_exec(c, "ROLLBACK"));
	c->txn = false;
}

static enum gw_err
pg_commit(struct pg *c)
{
	enum gw_err err = pg_q(c, "commit", "COMMIT", NULL, NULL);

	if (err != GW_OK)
		pg_rollback(c);
	c->txn = false;
	return err;
}

/* The schema version: 0 when no table of ours exists. Whether it exists
 * is read from pg_class with the statement's snapshot, not by name
 * through the catalog cache (to_regclass): a node that found no table,
 * then waited for another's migration on the advisory lock, still had
 * the cache's "no such relation" (a wait on an advisory lock reads no
 * catalog invalidations) and ran step 1 again (42P07: two nodes started
 * at once on an empty database, one refused to start). */
static enum gw_err
pg_version(struct pg *c, int64_t *v)
{
	PGresult *r = NULL;
	enum gw_err err;

	*v = 0;
	err = pg_q(c, "version",
		   "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM"
		   " pg_catalog.pg_class WHERE relname = 'pzpgw_schema'"
		   " AND pg_catalog.pg_table_is_visible(oid)) THEN 0 END",
		   NULL, &r);
	if (err != GW_OK)
		return err;
	if (!PQgetisnull(r, 0, 0)) {
		PQclear(r);
		return GW_OK;
	}
	PQclear(r);
	if ((err = pg_q(c, "version",
			"SELECT version FROM pzpgw_schema WHERE k = 1", NULL,
			&r)) != GW_OK)
		return err;
	*v = PQntuples(r) == 1 ? pg_i64(r, 0, 0) : -1;
	PQclear(r);
	return GW_OK;
}

/* Bring the schema to STORE_SQLITE_SCHEMA, one step per transaction,
 * under an advisory lock (another node may be migrating the same
 * database). */
static enum gw_err
pg_migrate(struct pg *c, bool create, bool quiet)
{
	struct pg_args a = {0};
	unsigned char secret[32];
	enum gw_err err;
	char sql[96];
	int64_t v, from = -1;

	for (;;) {
		if ((err = pg_version(c, &v)) != GW_OK)
			return err;
		if (v == STORE_SQLITE_SCHEMA)
			return GW_OK;
		if (v == 0 && !create && from < 0)
			return GW_NOTFOUND;
		if ((err = pg_begin(c)) != GW_OK)
			return err;
		if ((err = pg_q(c, "migrate",
				"SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK
				")",
				NULL, NULL)) != GW_OK ||
		    (err = pg_version(c, &v)) != GW_OK)
			goto fail;
		if (v > STORE_SQLITE_SCHEMA) {
			log_warnx("event=store_schema_too_new version=%lld "
				  "known=%d",
				  (long long)v, STORE_SQLITE_SCHEMA);
			err = GW_CONFIG;
			goto fail;
		}
		if (v == STORE_SQLITE_SCHEMA) {
			pg_rollback(c);
			return GW_OK;
		}
		if (v < 0) {
			err = GW_PERM;
			goto fail;
		}
		if ((err = pg_q(c, "migrate", pg_migrations[v], NULL, NULL)) !=
		    GW_OK)
			goto fail;
		if (v == 3) {
			if (RAND_bytes(secret, sizeof(secret)) != 1) {
				err = GW_IO;
				goto fail;
			}
			a.n = 0;
			pa_bytes(&a, secret, sizeof(secret));
			err = pg_q(c, "migrate",
				   "INSERT INTO index_secret (k, secret)"
				   " VALUES (1, $1)",
				   &a, NULL);
			OPENSSL_cleanse(secret, sizeof(secret));
			if (err != GW_OK)
				goto fail;
		}
		snprintf(sql, sizeof(sql),
			 "UPDATE pzpgw_schema SET version = %lld WHERE k = 1",
			 (long long)v + 1);
		if ((err = pg_q(c, "migrate", sql, NULL, NULL)) != GW_OK)
			goto fail;
		if ((err = pg_commit(c)) != GW_OK)
			return err;
		if (from < 0)
			from = v;
		if (from == 0 || quiet)
			log_debug("event=store_schema_created backend="
				  "postgresql version=%lld",
				  (long long)v + 1);
		else
			log_info("event=store_schema_migrated backend="
				 "postgresql from=%lld to=%lld",
				 (long long)v, (long long)v + 1);
	}
fail:
	pg_rollback(c);
	return err;
}

/* Server notices (e.g. "relation exists, skipping") are no log lines. */
static void
pg_notice_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static void
pg_close(void *conn)
{
	struct pg *c = conn;

	if (c == NULL)
		return;
	PQfinish(c->db);
	pg_prep_forget(c);
	free(c->raw_buf);
	free(c->lost);
	free(c);
}

/*
 * Connect with opts->pg_url (a libpq connection string or URI, which may
 * carry sslmode=verify-full and sslrootcert) and the password read from
 * the password file, which overrides any in the URL. A connect timeout
 * of 5 s unless the URL sets one: a database that is down must not hang
 * the gateway's start or a reconnect for long.
 */
static enum gw_err
pg_open(const struct store_options *opts, bool main, void **out)
{
	const char *keys[5], *vals[5];
	struct pg *c = NULL;
	enum gw_err err;
	int64_t v;
	int k = 0;

	*out = NULL;
	if (opts->pg_url == NULL || opts->pg_url[0] == '\0')
		return GW_CONFIG;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return GW_NOMEM;
	keys[k] = "connect_timeout";
	vals[k++] = "5";
	keys[k] = "fallback_application_name";
	vals[k++] = "pzpgw";
	keys[k] = "dbname";
	vals[k++] = opts->pg_url;
	if (opts->pg_password != NULL) {
		keys[k] = "password";
		vals[k++] = opts->pg_password;
	}
	keys[k] = NULL;
	vals[k] = NULL;
	c->db = PQconnectdbParams(keys, vals, 1);
	if (c->db == NULL) {
		err = GW_NOMEM;
		goto fail;
	}
	if (PQstatus(c->db) != CONNECTION_OK) {
		char detail[200];

		/* libpq's message names host and user, never the password. */
		log_warnx(
		    "event=store_error backend=postgresql op=connect "
		    "detail=\"%s\"",
		    log_quoted(detail, sizeof(detail), PQerrorMessage(c->db)));
		err = GW_TEMP;
		goto fail;
	}
	PQsetNoticeProcessor(c->db, pg_notice_quiet, NULL);
	if ((err = pg_q(c, "session", "SET client_min_messages = warning", NULL,
			NULL)) != GW_OK)
		goto fail;
	pg_session_compress(c);
	c->audit_relaxed = opts->relaxed_state;
	c->lease_ms = opts->lease_ms > 0 ? opts->lease_ms : 60000;
	if (opts->node != NULL && opts->node[0] != '\0')
		util_strlcpy(c->node, opts->node, sizeof(c->node));
	else if (gethostname(c->node, sizeof(c->node)) != 0 ||
		 c->node[0] == '\0')
		util_strlcpy(c->node, "localhost", sizeof(c->node));
	c->node[sizeof(c->node) - 1] = '\0'; /* gethostname may truncate */
	if (opts->readonly) {
		c->readonly = true;
		if ((err = pg_q(c, "session",
				"SET default_transaction_read_only = on", NULL,
				NULL)) != GW_OK)
			goto fail;
		if ((err = pg_version(c, &v)) != GW_OK)
			goto fail;
		if (v != STORE_SQLITE_SCHEMA) {
			err = v == 0			? GW_NOTFOUND
			      : v > STORE_SQLITE_SCHEMA ? GW_CONFIG
							: GW_PERM;
			goto fail;
		}
		*out = c;
		return GW_OK;
	}
	if (main && opts->relaxed_state) {
		if ((err = pg_q(c, "session", "SET synchronous_commit = off",
				NULL, NULL)) != GW_OK)
			goto fail;
		c->relaxed = true;
	}
	if (main && opts->node_claim) {
		uint64_t until = util_mono_ms() + PG_NODE_WAIT_MS;

		while (!pg_node_lock(c)) {
			if (PQstatus(c->db) != CONNECTION_OK) {
				err = GW_TEMP;
				goto fail;
			}
			if (util_mono_ms() >= until) {
				log_warnx("event=node_name_in_use node=%s "
					  "message=\"another live node of this "
					  "database has this name: give each "
					  "node its own [process] node\"",
					  c->node);
				err = GW_EXISTS;
				goto fail;
			}
			struct timespec pause = {0, 100 * 1000 * 1000};

			nanosleep(&pause, NULL);
		}
		c->node_claim = true;
	}
	if (main) {
		if ((err = pg_migrate(c, opts->create, opts->quiet)) != GW_OK)
			goto fail;
	} else {
		if ((err = pg_version(c, &v)) != GW_OK)
			goto fail;
		if (v != STORE_SQLITE_SCHEMA) {
			err = v > STORE_SQLITE_SCHEMA ? GW_CONFIG : GW_PERM;
			goto fail;
		}
	}
	/* Bounded waits from here on (the migrations above may take long
	   on a large database). */
	if (opts->pg_wait_ms > 0 && PQsetnonblocking(c->db, 1) == 0)
		c->wait_ms = main && opts->pg_caller_wait_ms > 0
				 ? opts->pg_caller_wait_ms
				 : opts->pg_wait_ms;
	*out = c;
	return GW_OK;
fail:
	pg_close(c);
	return err;
}

static int
pg_schema_version(void *conn)
{
	int64_t v = -1;

	if (pg_version(conn, &v) != GW_OK)
		return -1;
	return (int)v;
}

static enum store_state
pg_state(const char *s)
{
	for (int i = 0; i < STORE_STATE_COUNT; i++)
		if (strcmp(s, pg_states[i]) == 0)
			return (enum store_state)i;
	return STORE_DEAD; /* a value the schema's CHECK forbids */
}

/* The direction from a direction and a bundle_system value (see
 * sq_dir: notices are outbound rows under STORE_NOTICE_SYSTEM). */
static enum store_direction
pg_dir(const char *d, const char *sys)
{
	if (strcmp(d, "inbound") == 0)
		return STORE_INBOUND;
	if (strcmp(sys, STORE_NOTICE_SYSTEM) == 0)
		return STORE_NOTICE;
	return STORE_OUTBOUND;
}

static const char *
pg_direction(enum store_direction d)
{
	return d == STORE_INBOUND ? "inbound" : "outbound";
}

/* Columns read by pg_row_read, in order (as SQ_ROW_COLS). */
#define PG_ROW_COLS                                                            \
	"o.message_seq, m.id, o.receiver_ura, m.sender_ura, m.direction,"      \
	" o.state, o.attempts, m.accepted_at, o.next_attempt_at,"              \
	" o.first_attempt_at, o.last_attempt_at, o.delivered_at,"              \
	" o.last_status, o.replays, o.last_error, o.outcome, o.waiting,"       \
	" coalesce(o.age_from, m.accepted_at), m.bundle_system"
#define PG_ROW_FROM " FROM outbox o JOIN messages m ON m.seq = o.message_seq "

#define PG_BLOCKED                                                             \
	"EXISTS (SELECT 1 FROM outbox p WHERE p.receiver_ura ="                \
	" o.receiver_ura AND p.patient_key = o.patient_key AND"                \
	" p.message_seq < o.message_seq AND"                                   \
	" p.state IN ('due', 'inflight', 'held'))"

static enum gw_err
pg_row_read(PGresult *res, int i, struct store_row *r)
{
	bool nomem = false;

	memset(r, 0, sizeof(*r));
	r->seq = pg_i64(res, i, 0);
	pg_copy(r->id, sizeof(r->id), res, i, 1);
	pg_copy(r->receiver, sizeof(r->receiver), res, i, 2);
	pg_copy(r->sender, sizeof(r->sender), res, i, 3);
	r->direction = pg_dir(PQgetvalue(res, i, 4), PQgetvalue(res, i, 18));
	r->state = pg_state(PQgetvalue(res, i, 5));
	r->attempts = (unsigned)pg_i64(res, i, 6);
	r->accepted_at = pg_i64(res, i, 7);
	r->next_attempt_at = pg_i64(res, i, 8);
	r->first_attempt_at = pg_i64(res, i, 9);
	r->last_attempt_at = pg_i64(res, i, 10);
	r->delivered_at = pg_i64(res, i, 11);
	r->last_status = (int)pg_i64(res, i, 12);
	r->replays = (unsigned)pg_i64(res, i, 13);
	r->last_error = pg_text(res, i, 14, &nomem);
	r->outcome = pg_text(res, i, 15, &nomem);
	r->waiting = pg_i64(res, i, 16) != 0;
	r->age_from = pg_i64(res, i, 17);
	return nomem ? GW_NOMEM : GW_OK;
}

/* Every row of res as store rows. */
static enum gw_err
pg_rows_collect(PGresult *res, struct store_row **rows, size_t *n)
{
	int nt = PQntuples(res);
	struct store_row *v;
	enum gw_err err = GW_OK;
	int i;

	*rows = NULL;
	*n = 0;
	if (nt == 0)
		return GW_OK;
	if ((v = calloc((size_t)nt, sizeof(*v))) == NULL)
		return GW_NOMEM;
	for (i = 0; i < nt && err == GW_OK; i++)
		err = pg_row_read(res, i, &v[i]);
	if (err != GW_OK) {
		store_rows_free(v, (size_t)i);
		return err;
	}
	*rows = v;
	*n = (size_t)nt;
	return GW_OK;
}

/*
 * One index entry (see sq_index_entry) in one statement, a round trip
 * instead of three: the newest version (cur); the same content, current,
 * becomes this message's too (carried); otherwise a new version (ins)
 * supersedes the current one.
 */
#define PG_INDEX_SQL                                                           \
	"WITH cur AS (SELECT seq, vid, superseded_seq IS NULL AS"              \
	" live, (superseded_seq IS NULL AND json = $10) AS same"               \
	" FROM res_versions WHERE receiver_ura = $1 AND type = $3"             \
	" AND id = $4 ORDER BY vid DESC LIMIT 1),"                             \
	" carried AS (UPDATE res_versions r SET message_seq = $6"              \
	" FROM cur WHERE r.seq = cur.seq AND cur.same),"                       \
	" ins AS (INSERT INTO res_versions (receiver_ura, bsn,"                \
	" type, id, vid, res_key, message_seq, updated, hidden,"               \
	" sha256, json) SELECT $1, $2, $3, $4,"                                \
	" coalesce((SELECT vid FROM cur), 0) + 1, $5, $6, $7, $8,"             \
	" $9, $10 WHERE NOT coalesce((SELECT same FROM cur), false)"           \
	" RETURNING seq)"                                                      \
	" UPDATE res_versions r SET superseded_seq = ins.seq"                  \
	" FROM cur, ins WHERE r.seq = cur.seq AND cur.live"

/* Two nodes may index the same resource (receiver, type, logical id) at
 * once (two messages of one patient, or a resource many messages carry):
 * each would make the same next version (a unique violation, answered
 * 500). The entry's statement runs after this lock, so it sees the other
 * one's version once that committed. */
#define PG_INDEX_LOCK                                                          \
	"SELECT pg_advisory_xact_lock(hashtextextended($1 || '|' || $2 ||"     \
	" '|' || $3, 16))"

static void
pg_index_lock_args(struct pg_args *a, const struct store_index *x,
		   const struct store_index_entry *e)
{
	memset(a, 0, sizeof(*a));
	pa_text(a, x->receiver);
	pa_text(a, e->type);
	pa_text(a, e->id);
}

/* The parameters of PG_INDEX_SQL for entry e; *json: caller frees (a
 * NUL-free text copy of the bytes given). */
static enum gw_err
pg_index_args(struct pg_args *a, int64_t seq, int64_t at,
	      const struct store_index *x, const struct store_index_entry *e,
	      char **json)
{
	memset(a, 0, sizeof(*a));
	if ((*json = strndup(e->json != NULL ? e->json : "", e->json_len)) ==
	    NULL)
		return GW_NOMEM;
	pa_text(a, x->receiver);
	pa_text(a, x->bsn);
	pa_text(a, e->type);
	pa_text(a, e->id);
	pa_text(a, e->key);
	pa_i64(a, seq);
	pa_i64(a, at);
	pa_i64(a, e->hidden ? 1 : 0);
	pa_text(a, e->sha256 != NULL ? e->sha256 : "");
	pa_text(a, *json);
	return GW_OK;
}

/*
 * A one-dimensional array parameter in binary form (the server's
 * array_recv): a header (dimensions, no NULLs, element type, length,
 * lower bound 1), then each element as a big-endian length and its
 * bytes. Values travel unescaped, so ~30 KB of resource JSON costs a
 * copy, not a quoting pass.
 */
struct pg_arr {
	unsigned char *buf;
	size_t len, cap;
	bool nomem;
};

static void
pg_arr_put(struct pg_arr *b, const void *p, size_t n)
{
	if (b->nomem)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 256;
		unsigned char *nb;

		while (cap < b->len + n)
			cap *= 2;
		if ((nb = realloc(b->buf, cap)) == NULL) {
			b->nomem = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->buf + b->len, p, n);
	b->len += n;
}

static void
pg_arr_u32(struct pg_arr *b, uint32_t v)
{
	unsigned char w[4] = {(unsigned char)(v >> 24),
			      (unsigned char)(v >> 16), (unsigned char)(v >> 8),
			      (unsigned char)v};

	pg_arr_put(b, w, sizeof(w));
}

/* Start an array of n elements of type elem (an OID). */
static void
pg_arr_begin(struct pg_arr *b, Oid elem, size_t n)
{
	memset(b, 0, sizeof(*b));
	pg_arr_u32(b, 1);	    /* dimensions */
	pg_arr_u32(b, 0);	    /* no NULL element */
	pg_arr_u32(b, elem);	    /* element type */
	pg_arr_u32(b, (uint32_t)n); /* length */
	pg_arr_u32(b, 1);	    /* lower bound */
}

/* A text element: s up to len bytes or its first NUL (text holds none;
 * the single statement's strndup cut there too). */
static void
pg_arr_text(struct pg_arr *b, const char *s, size_t len)
{
	if (s == NULL)
		len = 0;
	else
		len = strnlen(s, len);
	if (len > INT32_MAX) {
		b->nomem = true;
		return;
	}
	pg_arr_u32(b, (uint32_t)len);
	pg_arr_put(b, s, len);
}

static void
pg_arr_i64(struct pg_arr *b, int64_t v)
{
	uint64_t u = (uint64_t)v;

	pg_arr_u32(b, 8);
	pg_arr_u32(b, (uint32_t)(u >> 32));
	pg_arr_u32(b, (uint32_t)u);
}

/* GW_NOMEM when building any of the n arrays ran out of memory. */
static enum gw_err
pg_arrs_err(const struct pg_arr *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].nomem)
			return GW_NOMEM;
	return GW_OK;
}

static void
pg_arrs_free(struct pg_arr *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].buf);
}

/* b as a binary parameter of type oid (an array type); b keeps its
 * bytes until the statement is sent. */
static void
pa_arr(struct pg_args *a, Oid oid, const struct pg_arr *b)
{
	a->types[a->n] = oid;
	a->vals[a->n] = (const char *)b->buf;
	a->lens[a->n] = b->len > INT_MAX ? INT_MAX : (int)b->len;
	a->fmts[a->n] = 1;
	a->n++;
}

/*
 * The index entries of one receiver's part of a message in two
 * statements rather than two per entry (PG_INDEX_LOCK and PG_INDEX_SQL
 * for each of ~20 resources were about 0.5 ms of server time per
 * message). The locks first, in key order (a statement's snapshot is
 * taken before it waits, so the entries' statement must come after
 * them; the order keeps two nodes from taking them crosswise), then
 * every entry as PG_INDEX_SQL would do it one at a time: its newest
 * version, carried when the same content is current, else a new
 * version that supersedes the current one. Entries name distinct
 * resources (pg_index_distinct), so no row of the statement depends on
 * another's.
 */
#define PG_INDEX_LOCK_SET                                                      \
	"SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT"                \
	" hashtextextended($1 || '|' || t || '|' || i, 16) AS k FROM"          \
	" unnest($2::text[], $3::text[]) AS u(t, i) ORDER BY 1) s"
#define PG_INDEX_SET                                                           \
	"WITH e AS (SELECT * FROM unnest($5::text[], $6::text[], $7::text[],"  \
	" $8::int8[], $9::text[], $10::text[]) WITH ORDINALITY AS e(type, id," \
	" key, hidden, sha256, json, ord)),"                                   \
	" cur AS (SELECT e.ord, v.seq, v.vid, v.superseded_seq IS NULL AS"     \
	" live, (v.superseded_seq IS NULL AND v.json = e.json) AS same FROM e" \
	" JOIN LATERAL (SELECT seq, vid, superseded_seq, json FROM"            \
	" res_versions WHERE receiver_ura = $1 AND type = e.type AND id ="     \
	" e.id ORDER BY vid DESC LIMIT 1) v ON true),"                         \
	" carried AS (UPDATE res_versions r SET message_seq = $3 FROM cur"     \
	" WHERE r.seq = cur.seq AND cur.same),"                                \
	" ins AS (INSERT INTO res_versions (receiver_ura, bsn, type, id, vid," \
	" res_key, message_seq, updated, hidden, sha256, json) SELECT $1, $2," \
	" e.type, e.id, coalesce(cur.vid, 0) + 1, e.key, $3, $4, e.hidden,"    \
	" e.sha256, e.json FROM e LEFT JOIN cur ON cur.ord = e.ord WHERE NOT"  \
	" coalesce(cur.same, false) ORDER BY e.ord RETURNING seq, type, id)"   \
	" UPDATE res_versions r SET superseded_seq = ins.seq FROM ins JOIN e"  \
	" ON e.type = ins.type AND e.id = ins.id JOIN cur ON cur.ord = e.ord"  \
	" WHERE r.seq = cur.seq AND cur.live"

/* Whether x's entries name distinct resources (type, logical id): a
 * message carrying one twice is indexed an entry at a time, each seeing
 * the one before (n is ~20: the quadratic pass costs nothing). */
static bool
pg_index_distinct(const struct store_index *x)
{
	for (size_t i = 0; i < x->n; i++)
		for (size_t k = i + 1; k < x->n; k++)
			if (strcmp(x->entries[i].type, x->entries[k].type) ==
				0 &&
			    strcmp(x->entries[i].id, x->entries[k].id) == 0)
				return false;
	return true;
}

/* x's entries one at a time (PG_INDEX_LOCK, PG_INDEX_SQL), into p. */
static enum gw_err
pg_index_each(struct pg *c, struct pg_pipe *p, int64_t seq, int64_t at,
	      const struct store_index *x)
{
	enum gw_err err;

	for (size_t k = 0; k < x->n; k++) {
		struct pg_args a, la;
		char *json;

		if ((err = pg_index_args(&a, seq, at, x, &x->entries[k],
					 &json)) != GW_OK)
			return err;
		pg_index_lock_args(&la, x, &x->entries[k]);
		pg_pipe_send(c, p, PG_INDEX_LOCK, &la);
		pg_pipe_send(c, p, PG_INDEX_SQL, &a);
		free(json); /* libpq copied it when sending */
	}
	return GW_OK;
}

/* x's entries in two statements (PG_INDEX_LOCK_SET, PG_INDEX_SET), into
 * p; the arrays are freed once sent (libpq copied them). */
static enum gw_err
pg_index_set(struct pg *c, struct pg_pipe *p, int64_t seq, int64_t at,
	     const struct store_index *x)
{
	enum { TYPE, ID, KEY, HIDDEN, SHA, JSON, NARR };
	struct pg_arr v[NARR];
	struct pg_args a = {0};
	enum gw_err err = GW_OK;
	size_t i;

	for (i = 0; i < NARR; i++)
		pg_arr_begin(&v[i], i == HIDDEN ? PG_INT8 : PG_TEXT, x->n);
	for (i = 0; i < x->n; i++) {
		const struct store_index_entry *e = &x->entries[i];

		pg_arr_text(&v[TYPE], e->type, SIZE_MAX);
		pg_arr_text(&v[ID], e->id, SIZE_MAX);
		pg_arr_text(&v[KEY], e->key, SIZE_MAX);
		pg_arr_i64(&v[HIDDEN], e->hidden ? 1 : 0);
		pg_arr_text(&v[SHA], e->sha256 != NULL ? e->sha256 : "",
			    SIZE_MAX);
		pg_arr_text(&v[JSON], e->json, e->json_len);
	}
	if ((err = pg_arrs_err(v, NARR)) != GW_OK)
		goto out;
	pa_text(&a, x->receiver);
	pa_arr(&a, PG_TEXT_ARRAY, &v[TYPE]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[ID]);
	pg_pipe_send(c, p, PG_INDEX_LOCK_SET, &a);
	memset(&a, 0, sizeof(a));
	pa_text(&a, x->receiver);
	pa_text(&a, x->bsn);
	pa_i64(&a, seq);
	pa_i64(&a, at);
	pa_arr(&a, PG_TEXT_ARRAY, &v[TYPE]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[ID]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[KEY]);
	pa_arr(&a, PG_INT8_ARRAY, &v[HIDDEN]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[SHA]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[JSON]);
	pg_pipe_send(c, p, PG_INDEX_SET, &a);
out:
	pg_arrs_free(v, NARR);
	return err;
}

/* The inbox row and index entries of r, sent into the accept's
 * pipeline p (a message indexes about 20 resources). */
static enum gw_err
pg_index_write(struct pg *c, struct pg_pipe *p, int64_t seq,
	       const struct store_accept *r)
{
	enum gw_err err;

	for (size_t i = 0; i < r->nindex; i++) {
		const struct store_index *x = &r->index[i];
		struct pg_args a = {0};

		pa_i64(&a, seq);
		pa_text(&a, x->receiver);
		pa_text(&a, x->bsn);
		pa_i64(&a, (int64_t)x->n);
		pa_text(&a, x->sender);
		pg_pipe_send(c, p,
			     "INSERT INTO inbox (message_seq, receiver_ura,"
			     " bsn, resources, sender_ura) VALUES ($1, $2,"
			     " $3, $4, $5)",
			     &a);
		if (x->n == 0)
			continue;
		err = pg_index_distinct(x)
			  ? pg_index_set(c, p, seq, r->accepted_at, x)
			  : pg_index_each(c, p, seq, r->accepted_at, x);
		if (err != GW_OK)
			return err;
	}
	return GW_OK;
}

/* Read (and lock) the chain's head for the open transaction. */
static enum gw_err
pg_chain_load(struct pg *c)
{
	PGresult *r = NULL;
	enum gw_err err;

	if (c->chain_known)
		return GW_OK;
	if ((err = pg_q(c, "audit_head",
			"SELECT seq, hash FROM audit_head WHERE k = 1"
			" FOR UPDATE",
			NULL, &r)) != GW_OK)
		return err;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return GW_PERM;
	}
	c->chain_seq = pg_i64(r, 0, 0);
	c->chain_start = c->chain_seq;
	util_strlcpy(c->chain_hash,
		     PQgetisnull(r, 0, 1) ? STORE_AUDIT_GENESIS
					  : PQgetvalue(r, 0, 1),
		     sizeof(c->chain_hash));
	PQclear(r);
	c->chain_known = true;
	return GW_OK;
}

/* Write the head back before the commit when records were added. */
static enum gw_err
pg_chain_save(struct pg *c)
{
	struct pg_args a = {0};

	if (!c->chain_known || c->chain_seq == c->chain_start)
		return GW_OK;
	pa_i64(&a, c->chain_seq);
	pa_text(&a, c->chain_hash);
	return pg_q(c, "audit_head",
		    "UPDATE audit_head SET seq = $1, hash = $2 WHERE k = 1", &a,
		    NULL);
}

#define PG_AUDIT_SQL                                                           \
	"INSERT INTO audit (seq, at, ura, cert_serial, cert_issuer, bsn,"      \
	" interaction, query, count, status, request_id, prev_hash, hash)"     \
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"

/* Chain rec to the head known (pg_chain_load) and fill a with its
 * INSERT's parameters (pointing into rec); the head becomes rec. */
static void
pg_audit_chain(struct pg *c, struct store_audit_rec *rec, struct pg_args *a)
{
	memset(a, 0, sizeof(*a));
	rec->seq = c->chain_seq + 1;
	util_strlcpy(rec->prev_hash, c->chain_hash, sizeof(rec->prev_hash));
	store_audit_hash(rec, rec->hash);
	pa_i64(a, rec->seq);
	pa_i64(a, rec->at);
	pa_text(a, rec->ura);
	pa_text(a, rec->cert_serial);
	pa_text(a, rec->cert_issuer);
	pa_text(a, rec->bsn);
	pa_text(a, rec->interaction);
	pa_text(a, rec->query);
	pa_i64(a, rec->count);
	pa_i64(a, rec->status);
	pa_text(a, rec->request_id);
	pa_text(a, rec->prev_hash);
	pa_text(a, rec->hash);
	c->chain_seq = rec->seq;
	util_strlcpy(c->chain_hash, rec->hash, sizeof(c->chain_hash));
}

/* Append one audit record inside the open transaction (see
 * sq_audit_write). */
static enum gw_err
pg_audit_write(struct pg *c, struct store_audit_rec *rec)
{
	struct pg_args a;
	enum gw_err err;
	int64_t seq;
	char hash[sizeof(c->chain_hash)];

	if ((err = pg_chain_load(c)) != GW_OK)
		return err;
	seq = c->chain_seq;
	memcpy(hash, c->chain_hash, sizeof(hash));
	pg_audit_chain(c, rec, &a);
	if ((err = pg_q(c, "audit_insert", PG_AUDIT_SQL, &a, NULL)) != GW_OK) {
		c->chain_seq = seq; /* the head stays */
		memcpy(c->chain_hash, hash, sizeof(hash));
	}
	return err;
}

#define PG_MESSAGE_SQL                                                         \
	"INSERT INTO messages (id, direction, sender_ura, bundle_system,"      \
	" bundle_value, patient_key, fhir_version, document, jws, sha256,"     \
	" accepted_at, answer_status, answer_body, transform_report, event)"   \
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"     \
	" $14, $15) ON CONFLICT (direction, sender_ura, bundle_system,"        \
	" bundle_value) DO NOTHING RETURNING seq"

/* Insert a message row; *seq its seq, or 0 when its idempotency key is
 * taken (ON CONFLICT: also against another node's concurrent accept). */
static enum gw_err
pg_insert_message(struct pg *c, const char *op, struct pg_args *a, int64_t *seq)
{
	PGresult *r = NULL;
	enum gw_err err;

	*seq = 0;
	if ((err = pg_q(c, op, PG_MESSAGE_SQL, a, &r)) != GW_OK)
		return err;
	if (PQntuples(r) == 1)
		*seq = pg_i64(r, 0, 0);
	PQclear(r);
	return GW_OK;
}

/*
 * Lock the (receiver, patient) lane until the transaction ends. Each lane
 * row's "waiting" flag is computed from the other pending rows of its
 * lane, by the writer (a new row) and by the caller's connection (the
 * head leaving the pending states): in PostgreSQL both run at once, and
 * without the lock each may miss the other's uncommitted row, leaving a
 * follower waiting behind a head that is gone (seen: a lane stuck until
 * the next start). The statement after the lock sees every lane change
 * committed before it (READ COMMITTED takes a snapshot per statement).
 */
static enum gw_err
pg_lane_lock(struct pg *c, const char *receiver, const char *patient)
{
	struct pg_args a = {0};

	pa_text(&a, receiver);
	pa_text(&a, patient);
	return pg_q(c, "lane_lock",
		    "SELECT pg_advisory_xact_lock(hashtextextended("
		    "$1 || '|' || $2, 0))",
		    &a, NULL);
}

/* The outbox row of message seq for receiver, after its lane's lock (see
 * pg_lane_lock), sent into the pipeline p. */
static void
pg_insert_outbox(struct pg *c, struct pg_pipe *p, int64_t seq,
		 const char *receiver, const char *patient, int64_t at)
{
	struct pg_args a = {0};

	pa_text(&a, receiver);
	pa_text(&a, patient);
	pg_pipe_send(c, p,
		     "SELECT pg_advisory_xact_lock(hashtextextended("
		     "$1 || '|' || $2, 0))",
		     &a);
	memset(&a, 0, sizeof(a));
	pa_i64(&a, seq);
	pa_text(&a, receiver);
	pa_text(&a, patient);
	pa_i64(&a, at);
	pg_pipe_send(
	    c, p,
	    "INSERT INTO outbox (message_seq, receiver_ura, patient_key,"
	    " state, next_attempt_at, waiting) VALUES ($1, $2, $3,"
	    " 'due', $4, (EXISTS (SELECT 1 FROM outbox p WHERE"
	    " p.receiver_ura = $2 AND p.patient_key = $3 AND p.state"
	    " IN " PG_PENDING "))::int)",
	    &a);
}

static enum gw_err
pg_accept_notices(struct pg *c, const struct store_accept *r)
{
	struct pg_pipe p;
	enum gw_err err;
	int64_t seq;

	for (size_t i = 0; i < r->nnotices; i++) {
		const struct store_notice *nt = &r->notices[i];
		struct pg_args a = {0};

		pa_text(&a, nt->id);
		pa_text(&a, pg_direction(STORE_NOTICE));
		pa_text(&a, r->sender_ura);
		pa_text(&a, STORE_NOTICE_SYSTEM);
		pa_text(&a, nt->id);
		pa_text(&a, r->patient_key);
		pa_text(&a, r->fhir_version);
		pa_bytes(&a, nt->doc, nt->doc_len);
		pa_text(&a, NULL);
		pa_text(&a, nt->sha256);
		pa_i64(&a, r->accepted_at);
		pa_i64(&a, 0); /* nobody was answered */
		pa_text(&a, NULL);
		pa_text(&a, NULL);
		pa_text(&a, "");
		if ((err = pg_insert_message(c, "insert_notice", &a, &seq)) !=
		    GW_OK)
			return err;
		if (seq == 0)
			return GW_INVALID; /* a notice id is unique */
		pg_pipe_begin(c, &p, "insert_outbox");
		pg_insert_outbox(c, &p, seq, nt->receiver, r->patient_key,
				 r->accepted_at);
		if ((err = pg_pipe_end(c, &p)) != GW_OK)
			return err;
	}
	return GW_OK;
}

/* The parameters of PG_MESSAGE_SQL for r (pointing into r). */
static void
pg_message_args(struct pg_args *a, const struct store_accept *r)
{
	memset(a, 0, sizeof(*a));
	pa_text(a, r->id);
	pa_text(a, pg_direction(r->direction));
	pa_text(a, r->sender_ura);
	pa_text(a, r->bundle_system);
	pa_text(a, r->bundle_value);
	pa_text(a, r->patient_key);
	pa_text(a, r->fhir_version);
	pa_bytes(a, r->doc, r->doc_len);
	pa_text(a, r->jws);
	pa_text(a, r->sha256);
	pa_i64(a, r->accepted_at);
	pa_i64(a, r->answer_status);
	pa_text(a, r->answer_body);
	pa_text(a, r->report);
	pa_text(a, r->event != NULL ? r->event : "");
}

/* r's idempotency key is taken: the stored message's answer in res;
 * GW_EXISTS. */
static enum gw_err
pg_accept_found(struct pg *c, const struct store_accept *r,
		struct store_result *res)
{
	struct pg_args a = {0};
	PGresult *q = NULL;
	enum gw_err err;

	pa_text(&a, pg_direction(r->direction));
	pa_text(&a, r->sender_ura);
	pa_text(&a, r->bundle_system);
	pa_text(&a, r->bundle_value);
	if ((err = pg_q(c, "find_key",
			"SELECT id, answer_status, answer_body, sha256"
			" FROM messages WHERE direction = $1 AND"
			" sender_ura = $2 AND bundle_system = $3 AND"
			" bundle_value = $4",
			&a, &q)) != GW_OK)
		return err;
	if (PQntuples(q) != 1) {
		PQclear(q);
		return GW_TEMP; /* deleted meanwhile: try again */
	}
	pg_copy(res->id, sizeof(res->id), q, 0, 0);
	res->answer_status = (int)pg_i64(q, 0, 1);
	res->conflict =
	    r->sha256 != NULL && strcmp(PQgetvalue(q, 0, 3), r->sha256) != 0;
	err = GW_EXISTS;
	if (!PQgetisnull(q, 0, 2) &&
	    (res->answer_body = strdup(PQgetvalue(q, 0, 2))) == NULL)
		err = GW_NOMEM;
	PQclear(q);
	return err;
}

/* The outbox rows, inbox rows and index entries of r stored as seq,
 * sent into the pipeline p. */
static enum gw_err
pg_accept_rows(struct pg *c, struct pg_pipe *p, int64_t seq,
	       const struct store_accept *r)
{
	for (size_t i = 0; i < r->nreceivers; i++)
		pg_insert_outbox(c, p, seq, r->receivers[i], r->patient_key,
				 r->accepted_at);
	return pg_index_write(c, p, seq, r);
}

/* The rest of r's accept once its rows are in: its notices and its
 * answer. Its audit records are written by pg_accept_audit at the end
 * of the batch. */
static enum gw_err
pg_accept_done(struct pg *c, const struct store_accept *r,
	       struct store_result *res)
{
	enum gw_err err;

	if ((err = pg_accept_notices(c, r)) != GW_OK)
		return err;
	util_strlcpy(res->id, r->id, sizeof(res->id));
	res->answer_status = r->answer_status;
	if (r->answer_body != NULL &&
	    (res->answer_body = strdup(r->answer_body)) == NULL)
		return GW_NOMEM;
	return GW_OK;
}

/* Accept one document inside the open transaction (see sq_accept_one):
 * its message row, then its other rows in one round trip. */
static enum gw_err
pg_accept_one(struct pg *c, const struct store_accept *r,
	      struct store_result *res)
{
	struct pg_args a;
	struct pg_pipe p;
	enum gw_err err, txn;
	int64_t seq;

	pg_message_args(&a, r);
	if ((err = pg_insert_message(c, "insert_message", &a, &seq)) != GW_OK)
		return err;
	if (seq == 0)
		return pg_accept_found(c, r, res);
	pg_pipe_begin(c, &p, "accept_rows");
	err = pg_accept_rows(c, &p, seq, r);
	if ((txn = pg_pipe_end(c, &p)) != GW_OK || err != GW_OK)
		return err != GW_OK ? err : txn;
	return pg_accept_done(c, r, res);
}

/* Whether the connection's transaction is still usable after a failed
 * statement (lost connection: no). */
static bool
pg_txn_alive(struct pg *c)
{
	PGTransactionStatusType t = PQtransactionStatus(c->db);

	return PQstatus(c->db) == CONNECTION_OK &&
	       (t == PQTRANS_INTRANS || t == PQTRANS_INERROR);
}

/*
 * The documents of a batch (n > 1) in two round trips rather than two
 * each, for the pass without savepoints: their message rows in one
 * pipeline, then the other rows of those stored in another (the
 * writer's round trips, not the server's work, were most of a
 * PostgreSQL accept). The first failure ends the pass as in
 * pg_accept_pass: *failed, and the batch is tried again one document
 * at a time with savepoints.
 */
static enum gw_err
pg_accept_bulk(struct pg *c, const struct store_accept *const *reqs,
	       struct store_result *res, size_t n, bool *failed)
{
	struct pg_args a;
	struct pg_pipe p;
	int64_t *seqs;
	enum gw_err err = GW_OK, txn;
	size_t i;

	*failed = false;
	if ((seqs = calloc(n, sizeof(*seqs))) == NULL)
		return GW_NOMEM;
	pg_pipe_begin(c, &p, "insert_message");
	p.rows = seqs;
	p.nrows = n;
	for (i = 0; i < n; i++) {
		pg_message_args(&a, reqs[i]);
		pg_pipe_send(c, &p, PG_MESSAGE_SQL, &a);
	}
	if ((err = pg_pipe_end(c, &p)) == GW_OK && p.got != n)
		err = pg_fail(c, "insert_message", NULL);
	for (i = 0; i < n && err == GW_OK; i++) {
		if (seqs[i] != 0)
			continue;
		res[i].err = pg_accept_found(c, reqs[i], &res[i]);
		if (res[i].err != GW_EXISTS)
			err = res[i].err;
	}
	if (err == GW_OK) {
		pg_pipe_begin(c, &p, "accept_rows");
		for (i = 0; i < n && err == GW_OK; i++)
			if (seqs[i] != 0)
				err = pg_accept_rows(c, &p, seqs[i], reqs[i]);
		txn = pg_pipe_end(c, &p);
		if (err == GW_OK)
			err = txn;
	}
	for (i = 0; i < n && err == GW_OK; i++)
		if (seqs[i] != 0)
			err = res[i].err = pg_accept_done(c, reqs[i], &res[i]);
	free(seqs);
	if (err == GW_OK)
		return GW_OK;
	for (i = 0; i < n; i++) {
		store_result_cleanup(&res[i]);
		res[i].err = err;
	}
	if (!pg_txn_alive(c))
		return err;
	*failed = true;
	return GW_OK;
}

/*
 * The audit records of the accepts of a batch that were stored, chained
 * in batch order, written last: the chain's head row is locked from the
 * first record to the commit, and another node's batch waiting for it
 * may hold message keys or lanes this batch would wait for. Taken last,
 * it is held only for the records and the commit, and a batch holding it
 * waits for nothing else (two nodes accepting the same message at once
 * deadlocked on it: 40P01, the batch refused with 503).
 */
static enum gw_err
pg_accept_audit(struct pg *c, const struct store_accept *const *reqs,
		const struct store_result *res, size_t n)
{
	struct pg_pipe p;
	struct pg_args a = {0};
	enum gw_err err;
	size_t any = 0;

	for (size_t i = 0; i < n; i++)
		if (res[i].err == GW_OK)
			any += reqs[i]->naudit;
	if (any == 0)
		return GW_OK;
	if ((err = pg_chain_load(c)) != GW_OK)
		return err;
	/* The records, chained here, and the head: one round trip. */
	pg_pipe_begin(c, &p, "audit_insert");
	for (size_t i = 0; i < n; i++) {
		if (res[i].err != GW_OK)
			continue;
		for (size_t k = 0; k < reqs[i]->naudit; k++) {
			struct store_audit_rec rec = reqs[i]->audit[k];

			if (rec.at == 0)
				rec.at = reqs[i]->accepted_at;
			pg_audit_chain(c, &rec, &a);
			pg_pipe_send(c, &p, PG_AUDIT_SQL, &a);
		}
	}
	memset(&a, 0, sizeof(a));
	pa_i64(&a, c->chain_seq);
	pa_text(&a, c->chain_hash);
	pg_pipe_send(
	    c, &p, "UPDATE audit_head SET seq = $1, hash = $2 WHERE k = 1", &a);
	if ((err = pg_pipe_end(c, &p)) == GW_OK)
		c->chain_start = c->chain_seq; /* saved */
	return err;
}

/*
 * The roll-ups of inbox rows that pg_accept_rollup adds (PG_REP_I's two
 * upserts, for a batch): $1 hours, then rep_row's receivers or rep_msg's
 * senders, FHIR versions and events; one row per key, in key order. The
 * shard is the first of the 8 that no other open transaction uses (an
 * advisory lock until the commit; the second statement finds its own):
 * with the trigger's pid modulo 8, two nodes' writers sharing a shard
 * waited on each other's rows until the commit (seen as most of the
 * writers' lock waits with two nodes).
 */
#define PG_ROLLUP_SHARD                                                        \
	"(SELECT coalesce((SELECT g FROM generate_series(0, 7) g WHERE"        \
	" pg_try_advisory_xact_lock(1887072359, g) LIMIT 1), " PG_SHARD "))"
#define PG_ROLLUP_ROW                                                          \
	"INSERT INTO rep_row (shard, " PG_ROW_KEYS                             \
	", n) SELECT " PG_ROLLUP_SHARD                                         \
	", h, 'inbound', u, '', '', count(*) FROM"                             \
	" unnest($1::int8[], $2::text[]) AS x(h, u) GROUP BY h, u ORDER BY"    \
	" h, u" PG_UPS("rep_row", PG_ROW_KEYS)
#define PG_ROLLUP_MSG                                                          \
	"INSERT INTO rep_msg (shard, " PG_MSG_KEYS                             \
	", n) SELECT " PG_ROLLUP_SHARD                                         \
	", h, 'inbound', s, v, e, count(*) FROM"                               \
	" unnest($1::int8[], $2::text[], $3::text[], $4::text[]) AS x(h, s,"   \
	" v, e) GROUP BY h, s, v, e ORDER BY h, s, v, e" PG_UPS("rep_msg",     \
								PG_MSG_KEYS)

/*
 * Count the inbox rows of the batch's stored accepts in the report's
 * roll-ups, as the row trigger would (step 11): a row per local
 * receiver in rep_row, and the message once in rep_msg under the first
 * receiver's sender (the organisation the data comes from, else the
 * message's sender); inbound messages only. Before the audit chain's
 * head is locked (see pg_accept_audit). One round trip.
 */
static enum gw_err
pg_accept_rollup(struct pg *c, const struct store_accept *const *reqs,
		 const struct store_result *res, size_t n)
{
	enum { RH, RU, MH, MS, MV, ME, NARR };
	struct pg_arr v[NARR];
	struct pg_args a = {0};
	struct pg_pipe p;
	size_t rows = 0, msgs = 0, i;
	enum gw_err err = GW_OK;

	for (i = 0; i < n; i++) {
		if (res[i].err != GW_OK ||
		    reqs[i]->direction != STORE_INBOUND || reqs[i]->nindex == 0)
			continue;
		rows += reqs[i]->nindex;
		msgs++;
	}
	if (msgs == 0)
		return GW_OK;
	for (i = 0; i < NARR; i++)
		pg_arr_begin(&v[i], i == RH || i == MH ? PG_INT8 : PG_TEXT,
			     i == RH || i == RU ? rows : msgs);
	for (i = 0; i < n; i++) {
		const struct store_accept *r = reqs[i];
		const char *from;
		int64_t hour = r->accepted_at / 3600000;

		if (res[i].err != GW_OK || r->direction != STORE_INBOUND ||
		    r->nindex == 0)
			continue;
		for (size_t k = 0; k < r->nindex; k++) {
			pg_arr_i64(&v[RH], hour);
			pg_arr_text(&v[RU], r->index[k].receiver, SIZE_MAX);
		}
		from = r->index[0].sender;
		if (from == NULL || from[0] == '\0')
			from = r->sender_ura;
		pg_arr_i64(&v[MH], hour);
		pg_arr_text(&v[MS], from, SIZE_MAX);
		pg_arr_text(&v[MV], r->fhir_version, SIZE_MAX);
		pg_arr_text(&v[ME], r->event != NULL ? r->event : "", SIZE_MAX);
	}
	if ((err = pg_arrs_err(v, NARR)) != GW_OK)
		goto out;
	pg_pipe_begin(c, &p, "rollup");
	pa_arr(&a, PG_INT8_ARRAY, &v[RH]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[RU]);
	pg_pipe_send(c, &p, PG_ROLLUP_ROW, &a);
	memset(&a, 0, sizeof(a));
	pa_arr(&a, PG_INT8_ARRAY, &v[MH]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[MS]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[MV]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[ME]);
	pg_pipe_send(c, &p, PG_ROLLUP_MSG, &a);
	err = pg_pipe_end(c, &p);
out:
	pg_arrs_free(v, NARR);
	return err;
}

/* One pass over a batch (see sq_accept_pass). In PostgreSQL a failed
 * statement spoils the transaction, so without savepoints the first
 * failure ends the pass. */
static enum gw_err
pg_accept_pass(struct pg *c, const struct store_accept *const *reqs,
	       struct store_result *res, size_t n, bool savepoints,
	       bool *failed)
{
	enum gw_err err, txn;
	size_t todo = n;

	*failed = false;
	c->chain_known = false;
	c->deadlock = false;
	if (!savepoints && n > 1) {
		if ((err = pg_accept_bulk(c, reqs, res, n, failed)) != GW_OK ||
		    *failed)
			return err;
		todo = 0; /* stored: their audit records follow */
	}
	for (size_t i = 0, tries = 0; i < todo; i++, tries = 0) {
		int64_t chain_seq = c->chain_seq;
		bool chain_known = c->chain_known;
		char chain_hash[65];

	again:
		c->deadlock = false;
		memcpy(chain_hash, c->chain_hash, sizeof(chain_hash));
		if (savepoints && (txn = pg_q(c, "savepoint", "SAVEPOINT doc",
					      NULL, NULL)) != GW_OK)
			return txn;
		err = pg_accept_one(c, reqs[i], &res[i]);
		res[i].err = err;
		if (err == GW_OK || err == GW_EXISTS) {
			if (savepoints &&
			    (txn = pg_q(c, "release", "RELEASE doc", NULL,
					NULL)) != GW_OK)
				return txn;
			continue;
		}
		store_result_cleanup(&res[i]);
		res[i].err = err;
		if (!pg_txn_alive(c))
			return err;
		if (!savepoints) {
			*failed = true;
			return GW_OK;
		}
		c->chain_seq = chain_seq;
		c->chain_known = chain_known;
		memcpy(c->chain_hash, chain_hash, sizeof(chain_hash));
		if ((txn = pg_q(c, "rollback_to", "ROLLBACK TO doc", NULL,
				NULL)) != GW_OK ||
		    (txn = pg_q(c, "release", "RELEASE doc", NULL, NULL)) !=
			GW_OK)
			return txn;
		/* Another node's batch held a key or lane this one needed
		   while waiting for one of ours (the same message posted
		   to both nodes at once, lanes in opposite orders): the
		   server chose this statement to fail. Rolled back to the
		   savepoint, the other batch goes on; this document is
		   tried again (then found stored, or stored). */
		if (c->deadlock && ++tries < 3) {
			memset(&res[i], 0, sizeof(res[i]));
			goto again;
		}
	}
	/* A failure here fails the whole batch (a database error). */
	if ((txn = pg_accept_rollup(c, reqs, res, n)) != GW_OK ||
	    (txn = pg_accept_audit(c, reqs, res, n)) != GW_OK)
		return txn;
	return pg_chain_save(c);
}

/* Open an accept's transaction in one round trip: its commit waits for
 * the WAL flush (synchronous_commit on whatever the session says) and
 * the writer counts its inbox rows (PG_ROLLUP_CLIENT). */
static enum gw_err
pg_accept_begin(struct pg *c)
{
	enum gw_err err = pg_q(
	    c, "begin",
	    c->relaxed
		? "BEGIN; SET LOCAL synchronous_commit = on; " PG_ROLLUP_CLIENT
		: "BEGIN; " PG_ROLLUP_CLIENT,
	    NULL, NULL);

	c->txn = err == GW_OK;
	if (err != GW_OK)
		pg_rollback(c);
	return err;
}

/* The batch in one transaction, without savepoints first (see
 * sq_accept_batch); the commit waits for the WAL flush
 * (synchronous_commit on for this transaction whatever the session
 * says): acknowledged means durable. */
static enum gw_err
pg_accept_batch(void *conn, const struct store_accept *const *reqs,
		struct store_result *res, size_t n)
{
	struct pg *c = conn;
	enum gw_err txn;
	bool failed = false;

	if ((txn = pg_accept_begin(c)) != GW_OK)
		goto out;
	if ((txn = pg_accept_pass(c, reqs, res, n, false, &failed)) != GW_OK)
		goto out;
	if (failed) {
		pg_rollback(c);
		if (n == 1)
			goto out;
		for (size_t i = 0; i < n; i++) {
			store_result_cleanup(&res[i]);
			memset(&res[i], 0, sizeof(res[i]));
		}
		if ((txn = pg_accept_begin(c)) != GW_OK)
			goto out;
		if ((txn = pg_accept_pass(c, reqs, res, n, true, &failed)) !=
		    GW_OK)
			goto out;
	}
	txn = pg_commit(c);
out:
	c->chain_known = false;
	if (txn != GW_OK) {
		pg_rollback(c);
		for (size_t i = 0; i < n; i++) {
			store_result_cleanup(&res[i]);
			res[i].err = txn;
		}
	}
	return txn;
}

/* Remember the rows of a claim whose COMMIT failed (see struct pg). */
static void
pg_claim_lost(struct pg *c, const struct store_row *rows, size_t n, int64_t now)
{
	struct pg_lost *v;

	if (n == 0 || c->nlost > 0 || (v = calloc(n, sizeof(*v))) == NULL)
		return; /* the next start's recovery puts them back */
	for (size_t i = 0; i < n; i++) {
		v[i].seq = rows[i].seq;
		util_strlcpy(v[i].receiver, rows[i].receiver,
			     sizeof(v[i].receiver));
	}
	c->lost = v;
	c->nlost = n;
	c->lost_at = now;
}

/* Put the rows of a lost claim back to due when that claim did commit:
 * still in flight with the attempt time it gave them. */
static enum gw_err
pg_claim_unlose(struct pg *c)
{
	enum gw_err err = GW_OK;

	for (size_t i = 0; i < c->nlost && err == GW_OK; i++) {
		struct pg_args a = {0};

		pa_i64(&a, c->lost[i].seq);
		pa_text(&a, c->lost[i].receiver);
		pa_i64(&a, c->lost_at);
		pa_text(&a, c->node);
		err = pg_q(c, "claim_unlose",
			   "UPDATE outbox SET state = 'due' WHERE"
			   " message_seq = $1 AND receiver_ura = $2 AND"
			   " state = 'inflight' AND last_attempt_at = $3"
			   " AND lease_owner = $4",
			   &a, NULL);
	}
	if (err == GW_OK) {
		free(c->lost);
		c->lost = NULL;
		c->nlost = 0;
	}
	return err;
}

/*
 * Claim lane heads (see sq_claim), locking them with FOR UPDATE SKIP
 * LOCKED so two claimers never take the same row, with a lease (owner
 * c->node, expiry now + c->lease_ms). A row in flight whose lease ran out
 * (its node died mid-attempt) is claimable again by any node; it stays
 * its lane's head meanwhile, so a lane has one row in flight across
 * nodes. No attempt renews its lease: lease_ms outlasts an attempt.
 */
static enum gw_err
pg_claim(void *conn, const char *receiver, int64_t due_by, int64_t now,
	 size_t max, struct store_row **rows, size_t *n)
{
	static const char *const sel =
	    "SELECT " PG_ROW_COLS " FROM outbox o JOIN messages m"
	    " ON m.seq = o.message_seq WHERE o.waiting = 0"
	    " AND ((o.state = 'due' AND o.next_attempt_at <= $1)"
	    "  OR (o.state = 'inflight' AND o.lease_until <= $4))"
	    " AND ($2::text IS NULL OR o.receiver_ura = $2)"
	    " AND NOT " PG_BLOCKED
	    " ORDER BY o.next_attempt_at, o.message_seq LIMIT $3";
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	char sql[1024];
	enum gw_err err;
	size_t i;

	*rows = NULL;
	*n = 0;
	if (max == 0)
		return GW_OK;
	if ((err = pg_claim_unlose(c)) != GW_OK)
		return err;
	/* Look first without a transaction (most calls find nothing). */
	pa_i64(&a, due_by);
	pa_text(&a, receiver);
	pa_i64(&a, 1);
	pa_i64(&a, now);
	if ((err = pg_q(c, "claim", sel, &a, &r)) != GW_OK)
		return err;
	i = (size_t)PQntuples(r);
	PQclear(r);
	if (i == 0)
		return GW_OK;
	if ((err = pg_begin(c)) != GW_OK)
		return err;
	snprintf(sql, sizeof(sql), "%s FOR UPDATE OF o SKIP LOCKED", sel);
	memset(&a, 0, sizeof(a));
	pa_i64(&a, due_by);
	pa_text(&a, receiver);
	pa_i64(&a, max > INT_MAX ? INT_MAX : (int64_t)max);
	pa_i64(&a, now);
	if ((err = pg_q(c, "claim", sql, &a, &r)) != GW_OK)
		goto fail;
	err = pg_rows_collect(r, rows, n);
	PQclear(r);
	if (err != GW_OK)
		goto fail;
	for (i = 0; i < *n; i++) {
		struct store_row *w = &(*rows)[i];

		memset(&a, 0, sizeof(a));
		pa_i64(&a, w->seq);
		pa_text(&a, w->receiver);
		pa_i64(&a, now);
		pa_text(&a, c->node);
		pa_i64(&a, now + c->lease_ms);
		/* A row whose lease expired is taken over as it is: its
		   node died mid-attempt, which counts as that attempt. */
		if ((err = pg_q(c, "claim",
				"UPDATE outbox SET state = 'inflight',"
				" attempts = attempts + 1, first_attempt_at ="
				" coalesce(first_attempt_at, $3),"
				" last_attempt_at = $3, lease_owner = $4,"
				" lease_until = $5 WHERE message_seq = $1"
				" AND receiver_ura = $2 AND (state = 'due' OR"
				" (state = 'inflight' AND lease_until <= $3))",
				&a, NULL)) != GW_OK)
			goto fail;
		w->state = STORE_INFLIGHT;
		w->attempts++;
		if (w->first_attempt_at == 0)
			w->first_attempt_at = now;
		w->last_attempt_at = now;
	}
	if ((err = pg_commit(c)) != GW_OK) {
		pg_claim_lost(c, *rows, *n, now);
		goto fail;
	}
	return GW_OK;
fail:
	pg_rollback(c);
	store_rows_free(*rows, *n);
	*rows = NULL;
	*n = 0;
	return err;
}

/* The next pending row of (receiver, patient) becomes its lane head. */
static enum gw_err
pg_unblock_lane(struct pg *c, const char *receiver, const char *patient)
{
	struct pg_args a = {0};

	pa_text(&a, receiver);
	pa_text(&a, patient);
	return pg_q(c, "unblock",
		    "UPDATE outbox SET waiting = 0 WHERE waiting = 1 AND"
		    " message_seq = (SELECT min(p.message_seq) FROM outbox p"
		    " WHERE p.receiver_ura = $1 AND p.patient_key = $2 AND"
		    " p.state IN " PG_PENDING ") AND receiver_ura = $1",
		    &a, NULL);
}

static enum gw_err
pg_finish(void *conn, const char *id, const char *receiver, enum store_state to,
	  int status, const char *error, const char *outcome, int64_t at)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	char *patient = NULL;

	if ((err = pg_begin(c)) != GW_OK)
		return err;
	pa_text(&a, id);
	pa_text(&a, receiver);
	pa_text(&a, pg_states[to]);
	if (status > 0)
		pa_i64(&a, status);
	else
		pa_null_i64(&a);
	pa_text(&a, error);
	pa_text(&a, outcome);
	pa_i64(&a, at);
	/* A node whose lease expired and was taken over finishes nothing:
	   the row is the other node's attempt now (GW_NOTFOUND). */
	pa_text(&a, c->node);
	if ((err = pg_q(c, "finish",
			"UPDATE outbox SET state = $3, last_status = $4,"
			" last_error = $5, outcome = $6,"
			" next_attempt_at = CASE WHEN $3 = 'due' THEN $7"
			"  ELSE next_attempt_at END,"
			" delivered_at = CASE WHEN $3 = 'delivered' THEN $7"
			"  ELSE delivered_at END"
			" WHERE message_seq = (SELECT seq FROM messages"
			" WHERE id = $1) AND receiver_ura = $2 AND"
			" state = 'inflight' AND lease_owner"
			" IS NOT DISTINCT FROM $8 RETURNING patient_key",
			&a, &r)) != GW_OK)
		goto fail;
	if (PQntuples(r) != 1) {
		PQclear(r);
		err = GW_NOTFOUND;
		goto fail;
	}
	patient = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (patient == NULL) {
		err = GW_NOMEM;
		goto fail;
	}
	if (to != STORE_DUE &&
	    ((err = pg_lane_lock(c, receiver, patient)) != GW_OK ||
	     (err = pg_unblock_lane(c, receiver, patient)) != GW_OK))
		goto fail;
	free(patient);
	return pg_commit(c);
fail:
	free(patient);
	pg_rollback(c);
	return err;
}

/*
 * Rows in flight when the gateway stopped become due again. With one node
 * that is every in-flight row; with several, this node's own rows (its
 * name is unique among the nodes) and those whose lease has expired.
 */
static enum gw_err
pg_recover(void *conn, int64_t now, size_t *count)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;

	if ((err = pg_begin(c)) != GW_OK)
		return err;
	pa_i64(&a, now);
	pa_text(&a, c->node);
	if ((err = pg_q(c, "recover",
			"UPDATE outbox SET state = 'due',"
			" next_attempt_at = least(next_attempt_at, $1),"
			" lease_owner = NULL, lease_until = NULL"
			" WHERE state = 'inflight' AND (lease_owner IS NULL"
			" OR lease_owner = $2 OR lease_until <= $1)",
			&a, &r)) != GW_OK)
		goto fail;
	if (count != NULL)
		*count = (size_t)pg_changes(r);
	PQclear(r);
	if ((err = pg_q(c, "recover", PG_RELANE_FIX, NULL, NULL)) != GW_OK)
		goto fail;
	return pg_commit(c);
fail:
	pg_rollback(c);
	return err;
}

/* This node's lease of a row in flight runs until `until` (see
 * store_renew). */
static enum gw_err
pg_renew(void *conn, int64_t seq, const char *receiver, int64_t until)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	int64_t n;

	pa_i64(&a, seq);
	pa_text(&a, receiver);
	pa_i64(&a, until);
	pa_text(&a, c->node);
	if ((err = pg_q(c, "renew",
			"UPDATE outbox SET lease_until = $3 WHERE"
			" message_seq = $1 AND receiver_ura = $2 AND"
			" state = 'inflight' AND lease_owner = $4",
			&a, &r)) != GW_OK)
		return err;
	n = pg_changes(r);
	PQclear(r);
	return n == 1 ? GW_OK : GW_NOTFOUND;
}

/* The next due lane head, or the next lease to run out: also this
 * node's own, since a row can be in flight in the database with no
 * transfer behind it (a claim whose commit the server took as the
 * connection broke, when the node could not put it back); a live
 * transfer renews its lease long before that. Without its own, that
 * row's lane waited for the next start. */
static enum gw_err
pg_next_due_at(void *conn, const char *receiver, int64_t *at)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;

	pa_text(&a, receiver);
	if ((err = pg_q(c, "next_due",
			"SELECT min(t) FROM (SELECT min(o.next_attempt_at) t"
			" FROM outbox o WHERE o.state = 'due' AND"
			" o.waiting = 0 AND ($1::text IS NULL OR"
			" o.receiver_ura = $1) UNION ALL SELECT"
			" min(o.lease_until) FROM outbox o WHERE"
			" o.state = 'inflight' AND"
			" ($1::text IS NULL OR o.receiver_ura = $1)) x",
			&a, &r)) != GW_OK)
		return err;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		*at = pg_i64(r, 0, 0);
		err = GW_OK;
	} else {
		err = GW_NOTFOUND;
	}
	PQclear(r);
	return err;
}

static enum gw_err
pg_get(void *conn, const char *id, bool content, bool rows,
       struct store_message **out)
{
	struct pg *c = conn;
	struct store_message *m = NULL;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	bool nomem = false;

	*out = NULL;
	pa_text(&a, id);
	pa_bool(&a, content);
	if ((err = pg_q(c, "get",
			"SELECT seq, id, direction, sender_ura, bundle_system,"
			" bundle_value, patient_key, fhir_version, sha256,"
			" accepted_at, answer_status, answer_body,"
			" CASE WHEN $2 THEN document END,"
			" CASE WHEN $2 THEN jws END, transform_report"
			" FROM messages WHERE id = $1",
			&a, &r)) != GW_OK)
		return err;
	if (PQntuples(r) != 1) {
		err = GW_NOTFOUND;
		goto out;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	m->seq = pg_i64(r, 0, 0);
	pg_copy(m->id, sizeof(m->id), r, 0, 1);
	m->direction = pg_dir(PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 4));
	pg_copy(m->sender, sizeof(m->sender), r, 0, 3);
	m->bundle_system = pg_text(r, 0, 4, &nomem);
	m->bundle_value = pg_text(r, 0, 5, &nomem);
	m->patient_key = pg_text(r, 0, 6, &nomem);
	m->fhir_version = pg_text(r, 0, 7, &nomem);
	m->sha256 = pg_text(r, 0, 8, &nomem);
	m->accepted_at = pg_i64(r, 0, 9);
	m->answer_status = (int)pg_i64(r, 0, 10);
	m->answer_body = pg_text(r, 0, 11, &nomem);
	m->report = pg_text(r, 0, 14, &nomem);
	if (content && !PQgetisnull(r, 0, 12)) {
		size_t len = 0;
		unsigned char *b = PQunescapeBytea(
		    (const unsigned char *)PQgetvalue(r, 0, 12), &len);

		/* One spare NUL byte so text callers may print it. */
		if (b == NULL || (m->doc = malloc(len + 1)) == NULL) {
			nomem = true;
		} else {
			if (len > 0)
				memcpy(m->doc, b, len);
			((char *)m->doc)[len] = '\0';
			m->doc_len = len;
		}
		PQfreemem(b);
		m->jws = pg_text(r, 0, 13, &nomem);
	}
	if (nomem) {
		err = GW_NOMEM;
		goto out;
	}
	PQclear(r);
	r = NULL;
	if (rows) {
		memset(&a, 0, sizeof(a));
		pa_i64(&a, m->seq);
		if ((err = pg_q(c, "get",
				"SELECT " PG_ROW_COLS PG_ROW_FROM
				"WHERE o.message_seq = $1"
				" ORDER BY o.receiver_ura",
				&a, &r)) != GW_OK)
			goto out;
		err = pg_rows_collect(r, &m->rows, &m->nrows);
	}
out:
	PQclear(r);
	if (err != GW_OK)
		store_message_free(m);
	else
		*out = m;
	return err;
}

/* A LIMIT value: 0 means dflt; NULL (no limit) when dflt is 0 too. */
static void
pa_limit(struct pg_args *a, size_t limit, size_t dflt)
{
	size_t v = limit == 0 ? dflt : limit;

	if (v == 0)
		pa_null_i64(a);
	else
		pa_i64(a, v > INT_MAX ? INT_MAX : (int64_t)v);
}

static enum gw_err
pg_list(void *conn, const struct store_filter *f, struct store_row **rows,
	size_t *n)
{
	struct pg *c = conn;
	bool by_state = f->state >= 0 && f->state < STORE_STATE_COUNT;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	char sql[1024];

	*rows = NULL;
	*n = 0;
	snprintf(sql, sizeof(sql),
		 "SELECT " PG_ROW_COLS PG_ROW_FROM
		 "WHERE o.message_seq > $3%s%s"
		 " ORDER BY o.message_seq, o.receiver_ura LIMIT $4",
		 by_state ? " AND o.state = $1" : "",
		 f->receiver != NULL ? " AND o.receiver_ura = $2" : "");
	pa_text(&a, by_state ? pg_states[f->state] : NULL);
	pa_text(&a, f->receiver);
	pa_i64(&a, f->after_seq);
	pa_limit(&a, f->limit, 100);
	if ((err = pg_q(c, "list", sql, &a, &r)) != GW_OK)
		return err;
	err = pg_rows_collect(r, rows, n);
	PQclear(r);
	return err;
}

static enum gw_err
pg_act(void *conn, const char *id, const char *receiver,
       enum store_action action, int64_t now, size_t *changed)
{
	static const char *const sets[] = {
	    [STORE_RETRY] = "next_attempt_at = $3 WHERE state = 'due'",
	    [STORE_HOLD] = "state = 'held' WHERE state = 'due'",
	    [STORE_RELEASE] = "state = 'due', next_attempt_at = $3,"
			      " age_from = $3 WHERE state = 'held'",
	    [STORE_REPLAY] =
		"state = 'due', next_attempt_at = $3, age_from = $3,"
		" attempts = 0,"
		" first_attempt_at = NULL, last_attempt_at = NULL,"
		" delivered_at = NULL, last_status = NULL,"
		" last_error = NULL, outcome = NULL,"
		" replays = replays + 1"
		" WHERE state IN ('dead', 'delivered')",
	};
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	int64_t seq = 0, rows = 0;
	char sql[512];

	if ((unsigned)action >= UTIL_ARRAY_LEN(sets))
		return GW_INVALID;
	if ((err = pg_begin(c)) != GW_OK)
		return err;
	pa_text(&a, id);
	pa_text(&a, receiver);
	if ((err = pg_q(c, "act",
			"SELECT m.seq, (SELECT count(*) FROM outbox o"
			" WHERE o.message_seq = m.seq AND"
			" ($2::text IS NULL OR o.receiver_ura = $2))"
			" FROM messages m WHERE m.id = $1",
			&a, &r)) != GW_OK)
		goto out;
	if (PQntuples(r) == 1) {
		seq = pg_i64(r, 0, 0);
		rows = pg_i64(r, 0, 1);
	}
	PQclear(r);
	if (rows == 0) {
		err = GW_NOTFOUND;
		goto out;
	}
	snprintf(sql, sizeof(sql),
		 "UPDATE outbox SET %s AND message_seq = $1 AND"
		 " ($2::text IS NULL OR receiver_ura = $2)",
		 sets[action]);
	memset(&a, 0, sizeof(a));
	pa_i64(&a, seq);
	pa_text(&a, receiver);
	pa_i64(&a, now);
	if ((err = pg_q(c, "act", sql, &a, &r)) != GW_OK)
		goto out;
	rows = pg_changes(r);
	PQclear(r);
	if (changed != NULL)
		*changed = (size_t)rows;
	if (rows == 0) {
		err = GW_INVALID;
		goto out;
	}
	/* Replay puts an earlier row back in its lanes: recompute them,
	   with the lanes locked (see pg_lane_lock). */
	memset(&a, 0, sizeof(a));
	pa_i64(&a, seq);
	if ((err = pg_q(c, "act",
			"SELECT pg_advisory_xact_lock(hashtextextended("
			"receiver_ura || '|' || patient_key, 0)) FROM"
			" (SELECT receiver_ura, patient_key FROM outbox WHERE"
			" message_seq = $1 ORDER BY receiver_ura) l",
			&a, NULL)) != GW_OK)
		goto out;
	if ((err = pg_q(c, "act",
			PG_RELANE_ALL " AND (receiver_ura, patient_key)"
				      " IN (SELECT receiver_ura,"
				      " patient_key FROM outbox WHERE"
				      " message_seq = $1)",
			&a, NULL)) != GW_OK)
		goto out;
	err = pg_commit(c);
out:
	if (err != GW_OK)
		pg_rollback(c);
	return err;
}

/* Messages removed per prune transaction. */
#define PG_PRUNE_CHUNK 2000

/* Run sql (a DELETE with $1 = before, $2 = a LIMIT) in transactions of
 * at most chunk messages until none is left or max (0: no limit) are
 * gone (see sq_delete_chunked, also for retention's rep_pruning row;
 * autovacuum reclaims the space). */
static enum gw_err
pg_delete_chunked(struct pg *c, const char *sql, int64_t before, size_t chunk,
		  size_t max, bool retention, const char *op, size_t *count)
{
	enum gw_err err = GW_OK;
	size_t removed = 0, done = 0, want;

	do {
		struct pg_args a = {0};
		PGresult *r = NULL;

		want = max > 0 && max - removed < chunk ? max - removed : chunk;
		pa_i64(&a, before);
		pa_i64(&a, (int64_t)want);
		/* Without retention each statement commits alone. The
		   marker row is seen only by this transaction. */
		if (retention &&
		    ((err = pg_begin(c)) != GW_OK ||
		     (err = pg_q(c, op, "INSERT INTO rep_pruning VALUES (0)",
				 NULL, NULL)) != GW_OK))
			break;
		if ((err = pg_q(c, op, sql, &a, &r)) != GW_OK)
			break;
		done = (size_t)pg_changes(r);
		PQclear(r);
		if (retention && ((err = pg_q(c, op, "DELETE FROM rep_pruning",
					      NULL, NULL)) != GW_OK ||
				  (err = pg_commit(c)) != GW_OK))
			break;
		removed += done;
	} while (done > 0 && (max == 0 || removed < max));
	if (err != GW_OK && retention && c->txn)
		pg_rollback(c);
	if (count != NULL)
		*count = removed;
	return err;
}

static enum gw_err
pg_prune(void *conn, int64_t before, size_t max, bool retention, size_t *count)
{
	return pg_delete_chunked(
	    conn,
	    "DELETE FROM messages WHERE seq IN"
	    " (SELECT o.message_seq FROM outbox o"
	    "  WHERE o.state = 'delivered'"
	    "  AND o.delivered_at < $1 AND NOT EXISTS (SELECT 1 FROM outbox x"
	    "  WHERE x.message_seq = o.message_seq AND (x.state <> 'delivered'"
	    "  OR x.delivered_at >= $1)) LIMIT $2)"
	    " AND direction = 'outbound'",
	    before, PG_PRUNE_CHUNK, max, retention, "prune", count);
}

static enum gw_err
pg_stats(void *conn, struct store_stat **out, size_t *n)
{
	struct pg *c = conn;
	struct store_stat *v = NULL;
	PGresult *r = NULL;
	enum gw_err err;
	int nt;

	*out = NULL;
	*n = 0;
	if ((err = pg_q(c, "stats",
			"SELECT o.state, o.receiver_ura, count(*),"
			" (SELECT m.accepted_at FROM messages m WHERE"
			" m.seq = min(o.message_seq)) FROM outbox o"
			" WHERE o.state IN ('due', 'inflight', 'held',"
			" 'dead') GROUP BY o.state, o.receiver_ura"
			" ORDER BY o.state, o.receiver_ura",
			NULL, &r)) != GW_OK)
		return err;
	nt = PQntuples(r);
	if (nt > 0 && (v = calloc((size_t)nt, sizeof(*v))) == NULL) {
		PQclear(r);
		return GW_NOMEM;
	}
	for (int i = 0; i < nt; i++) {
		v[i].state = pg_state(PQgetvalue(r, i, 0));
		pg_copy(v[i].receiver, sizeof(v[i].receiver), r, i, 1);
		v[i].count = (uint64_t)pg_i64(r, i, 2);
		v[i].oldest_accepted_at = pg_i64(r, i, 3);
	}
	PQclear(r);
	*out = v;
	*n = (size_t)nt;
	return GW_OK;
}

/* Due rows of messages accepted before $1 (see SQ_EXPIRED). */
#define PG_EXPIRED                                                             \
	" FROM outbox o WHERE o.state = 'due' AND o.message_seq <="            \
	" coalesce((SELECT m.seq FROM messages m WHERE m.accepted_at < $1"     \
	" ORDER BY m.accepted_at DESC LIMIT 1), 0)"                            \
	" AND (SELECT m.accepted_at FROM messages m WHERE m.seq ="             \
	" o.message_seq) < $1 AND coalesce(o.age_from, 0) < $1"

static enum gw_err
pg_expire(void *conn, int64_t before, int64_t now, size_t max, size_t *count)
{
	struct pg *c = conn;
	struct pg_args a = {0}, u = {0};
	PGresult *lanes = NULL, *r = NULL;
	enum gw_err err;

	*count = 0;
	if ((err = pg_begin(c)) != GW_OK)
		return err;
	pa_i64(&a, before);
	pa_i64(&a, max > 0 ? (int64_t)max : INT64_MAX);
	if ((err = pg_q(c, "expire",
			"SELECT DISTINCT o.receiver_ura,"
			" o.patient_key" PG_EXPIRED " ORDER BY 1, 2 LIMIT $2",
			&a, &lanes)) != GW_OK)
		goto out;
	/* Lane by lane, each under its lane lock (taken in order, as
	   every other writer of lanes does): the rows that expire, then
	   whatever is left in the lane gets a new head. */
	for (int i = 0; i < PQntuples(lanes) && err == GW_OK; i++) {
		const char *rcv = PQgetvalue(lanes, i, 0);
		const char *pat = PQgetvalue(lanes, i, 1);

		if ((err = pg_lane_lock(c, rcv, pat)) != GW_OK)
			break;
		memset(&u, 0, sizeof(u));
		pa_i64(&u, before);
		pa_i64(&u, now);
		pa_text(&u, rcv);
		pa_text(&u, pat);
		if ((err = pg_q(
			 c, "expire",
			 "UPDATE outbox SET state = 'dead',"
			 " next_attempt_at = $2, last_error ="
			 " coalesce(last_error || '; ', '') ||"
			 " 'max age exceeded' WHERE receiver_ura = $3 AND"
			 " patient_key = $4 AND (message_seq, receiver_ura)"
			 " IN (SELECT o.message_seq, o.receiver_ura" PG_EXPIRED
			 " AND o.receiver_ura = $3 AND o.patient_key = $4)",
			 &u, &r)) != GW_OK)
			break;
		*count += (size_t)pg_changes(r);
		PQclear(r);
		r = NULL;
		err = pg_unblock_lane(c, rcv, pat);
	}
out:
	PQclear(lanes);
	if (err == GW_OK)
		err = pg_commit(c);
	if (err != GW_OK) {
		pg_rollback(c);
		*count = 0;
	}
	return err;
}

static enum gw_err
pg_reschedule(void *conn, const char *receiver, int64_t now, size_t *count)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;

	*count = 0;
	pa_text(&a, receiver);
	pa_i64(&a, now);
	if ((err = pg_q(c, "reschedule",
			"UPDATE outbox SET next_attempt_at = $2"
			" WHERE state = 'due' AND waiting = 0 AND"
			" receiver_ura = $1 AND next_attempt_at > $2",
			&a, &r)) != GW_OK)
		return err;
	*count = (size_t)pg_changes(r);
	PQclear(r);
	return GW_OK;
}

#define PG_HOLD_COLS                                                           \
	"receiver_ura, hold_until, fails, reason, coalesce(probe_owner, ''),"  \
	" coalesce(probe_until, 0)"

static void
pg_hold_read(PGresult *r, int i, struct store_hold *h)
{
	int64_t fails = pg_i64(r, i, 2);

	pg_copy(h->receiver, sizeof(h->receiver), r, i, 0);
	h->until = pg_i64(r, i, 1);
	h->fails = fails > 0 && fails < UINT_MAX ? (unsigned)fails : 0;
	pg_copy(h->reason, sizeof(h->reason), r, i, 3);
	pg_copy(h->prober, sizeof(h->prober), r, i, 4);
	h->probe_until = pg_i64(r, i, 5);
}

static enum gw_err
pg_holds(void *conn, struct store_hold **out, size_t *n)
{
	struct pg *c = conn;
	PGresult *r = NULL;
	enum gw_err err;
	int rows;

	if ((err = pg_q(c, "holds",
			"SELECT " PG_HOLD_COLS " FROM receiver_hold"
			" WHERE fails > 0 ORDER BY receiver_ura",
			NULL, &r)) != GW_OK)
		return err;
	rows = PQntuples(r);
	if (rows > 0 && (*out = calloc((size_t)rows, sizeof(**out))) == NULL) {
		PQclear(r);
		return GW_NOMEM;
	}
	for (int i = 0; i < rows; i++)
		pg_hold_read(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return GW_OK;
}

/* Insert the receiver's row when missing, lock it, then count the
 * failure unless its hold still runs (see store_hold_fail). */
static enum gw_err
pg_hold_fail(void *conn, const char *receiver, const char *reason, int64_t now,
	     const struct store_backoff *b, uint32_t rnd, int64_t not_before,
	     bool *changed, struct store_hold *out)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;

	if ((err = pg_begin(c)) != GW_OK)
		return err;
	pa_text(&a, receiver);
	pa_text(&a, reason);
	pa_i64(&a, now);
	if ((err = pg_q(c, "hold",
			"INSERT INTO receiver_hold (receiver_ura, hold_until,"
			" fails, reason, updated_at) VALUES ($1, 0, 0, $2, $3)"
			" ON CONFLICT (receiver_ura) DO NOTHING",
			&a, NULL)) != GW_OK)
		goto fail;
	memset(&a, 0, sizeof(a));
	pa_text(&a, receiver);
	if ((err = pg_q(c, "hold",
			"SELECT " PG_HOLD_COLS " FROM receiver_hold"
			" WHERE receiver_ura = $1 FOR UPDATE",
			&a, &r)) != GW_OK)
		goto fail;
	if (PQntuples(r) != 1) {
		PQclear(r);
		err = GW_TEMP;
		goto fail;
	}
	pg_hold_read(r, 0, out);
	PQclear(r);
	if (out->fails > 0 && out->until > now)
		return pg_commit(c);
	out->fails++;
	out->until = store_hold_until(b, out->fails, now, rnd, not_before);
	util_strlcpy(out->reason, reason, sizeof(out->reason));
	out->prober[0] = '\0';
	out->probe_until = 0;
	memset(&a, 0, sizeof(a));
	pa_text(&a, receiver);
	pa_i64(&a, out->until);
	pa_i64(&a, out->fails);
	pa_text(&a, reason);
	pa_i64(&a, now);
	if ((err = pg_q(c, "hold",
			"UPDATE receiver_hold SET hold_until = $2, fails = $3,"
			" reason = $4, probe_owner = NULL, probe_until = NULL,"
			" updated_at = $5 WHERE receiver_ura = $1",
			&a, NULL)) != GW_OK)
		goto fail;
	*changed = true;
	return pg_commit(c);
fail:
	pg_rollback(c);
	return err;
}

static enum gw_err
pg_hold_probe(void *conn, const char *receiver, int64_t now,
	      int64_t probe_until)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	bool held;

	pa_text(&a, receiver);
	pa_i64(&a, now);
	pa_text(&a, c->node);
	pa_i64(&a, probe_until);
	/* One node wins: the update re-reads the row under its lock. */
	if ((err = pg_q(c, "hold_probe",
			"UPDATE receiver_hold SET probe_owner = $3,"
			" probe_until = $4 WHERE receiver_ura = $1 AND"
			" fails > 0 AND hold_until <= $2 AND (probe_owner IS"
			" NULL OR probe_owner = $3 OR probe_until <= $2)",
			&a, &r)) != GW_OK)
		return err;
	held = pg_changes(r) == 1;
	PQclear(r);
	if (held)
		return GW_OK;
	memset(&a, 0, sizeof(a));
	pa_text(&a, receiver);
	if ((err = pg_q(c, "hold_probe",
			"SELECT 1 FROM receiver_hold WHERE receiver_ura = $1"
			" AND fails > 0",
			&a, &r)) != GW_OK)
		return err;
	held = PQntuples(r) > 0;
	PQclear(r);
	return held ? GW_EXISTS : GW_NOTFOUND;
}

static enum gw_err
pg_hold_clear(void *conn, const char *receiver, bool *was)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;

	pa_text(&a, receiver);
	if ((err = pg_q(c, "hold_clear",
			"DELETE FROM receiver_hold WHERE receiver_ura = $1"
			" RETURNING fails",
			&a, &r)) != GW_OK)
		return err;
	*was = PQntuples(r) > 0 && pg_i64(r, 0, 0) > 0;
	PQclear(r);
	return GW_OK;
}

/* Nothing to checkpoint (the server does); a broken connection is
 * reset here, so the upkeep thread notices a database back. */
static enum gw_err
pg_upkeep(void *conn, bool truncate, char *detail, size_t n)
{
	struct pg *c = conn;

	(void)truncate;
	if (PQstatus(c->db) == CONNECTION_OK || pg_revive(c))
		return GW_OK;
	if (detail != NULL && n > 0)
		log_safe(detail, n, PQerrorMessage(c->db));
	return GW_TEMP;
}

/* No files of ours to watch: the database server owns them. */
static enum store_file_state
pg_check_files(void *conn)
{
	(void)conn;
	return STORE_FILE_OK;
}

/* One round trip (pg_q reconnects a broken connection first). */
static enum gw_err
pg_ping(void *conn)
{
	return pg_q(conn, "ping", "SELECT 1", NULL, NULL);
}

static enum gw_err
pg_index_secret(void *conn, unsigned char *out, size_t n)
{
	struct pg *c = conn;
	PGresult *r = NULL;
	enum gw_err err;
	unsigned char *b;
	size_t len = 0;

	if ((err = pg_q(c, "index_secret",
			"SELECT secret FROM index_secret WHERE k = 1", NULL,
			&r)) != GW_OK)
		return err;
	err = GW_PERM; /* the migration always makes one */
	if (PQntuples(r) == 1 &&
	    (b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0),
				 &len)) != NULL) {
		if (len == n) {
			memcpy(out, b, n);
			err = GW_OK;
		}
		OPENSSL_cleanse(b, len);
		PQfreemem(b);
	}
	PQclear(r);
	return err;
}

static enum gw_err
pg_res_snapshot(void *conn, int64_t *seq)
{
	struct pg *c = conn;
	PGresult *r = NULL;
	enum gw_err err;

	if ((err = pg_q(c, "res_snapshot",
			"SELECT coalesce(max(seq), 0) FROM res_versions", NULL,
			&r)) != GW_OK)
		return err;
	*seq = pg_i64(r, 0, 0);
	PQclear(r);
	return GW_OK;
}

/* A read transaction sees one snapshot (REPEATABLE READ), as SQLite's
 * read transaction does. */
static enum gw_err
pg_res_txn(void *conn, bool begin)
{
	struct pg *c = conn;
	enum gw_err err;

	if (!begin && !c->txn)
		return GW_OK;
	if (!begin) {
		err = pg_commit(c);
		return err;
	}
	err =
	    pg_q(c, "res_begin",
		 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, NULL);
	c->txn = err == GW_OK;
	return err;
}

static enum gw_err
pg_res_find(void *conn, const struct store_res_query *q, struct store_res **out,
	    size_t *n)
{
	struct pg *c = conn;
	struct store_res *v = NULL;
	struct pg_args a = {0};
	PGresult *r = NULL;
	const char *current;
	enum gw_err err;
	char sql[1400];
	int nt;

	*out = NULL;
	*n = 0;
	if (q->receiver == NULL || (q->id != NULL && q->type == NULL))
		return GW_INVALID;
	current = q->snapshot > 0 ? "(r.superseded_seq IS NULL OR"
				    " r.superseded_seq > $6)"
				  : "(r.superseded_seq IS NULL)";
	snprintf(sql, sizeof(sql),
		 "SELECT r.seq, r.type, r.id, r.receiver_ura, r.bsn, %s,"
		 " r.vid, r.updated, r.hidden, (%s)::int, r.json"
		 " FROM res_versions r%s"
		 " WHERE r.receiver_ura = $1%s%s%s%s%s%s%s%s"
		 " AND r.seq > $8 ORDER BY %s LIMIT $9",
		 q->bare ? "'', ''"
			 : "m.id, coalesce(nullif(i.sender_ura, ''),"
			   " m.sender_ura)",
		 current,
		 q->bare ? ""
			 : " JOIN messages m ON m.seq = r.message_seq"
			   " LEFT JOIN inbox i ON i.message_seq ="
			   " r.message_seq AND i.receiver_ura ="
			   " r.receiver_ura",
		 q->bsn != NULL ? " AND r.bsn = $2" : "",
		 q->type != NULL ? " AND r.type = $3" : "",
		 q->id != NULL ? " AND r.id = $4" : "",
		 q->vid > 0 ? " AND r.vid = $5" : "",
		 q->snapshot > 0 ? " AND r.seq <= $6" : "",
		 !q->history && q->vid <= 0
		     ? (q->snapshot > 0 ? " AND (r.superseded_seq"
					  " IS NULL OR"
					  " r.superseded_seq > $6)"
					: " AND r.superseded_seq"
					  " IS NULL")
		     : "",
		 q->since > 0 ? " AND r.updated >= $7" : "",
		 q->hidden ? "" : " AND r.hidden = 0",
		 q->id != NULL ? "r.vid" : "r.seq");
	pa_text(&a, q->receiver);
	pa_text(&a, q->bsn);
	pa_text(&a, q->type);
	pa_text(&a, q->id);
	pa_i64(&a, q->vid);
	pa_i64(&a, q->snapshot);
	pa_i64(&a, q->since);
	pa_i64(&a, q->after_seq);
	pa_limit(&a, q->limit, 0);
	if ((err = pg_q(c, "res_find", sql, &a, &r)) != GW_OK)
		return err;
	nt = PQntuples(r);
	if (nt > 0 && (v = calloc((size_t)nt, sizeof(*v))) == NULL) {
		PQclear(r);
		return GW_NOMEM;
	}
	for (int i = 0; i < nt; i++) {
		struct store_res *x = &v[i];

		x->seq = pg_i64(r, i, 0);
		pg_copy(x->type, sizeof(x->type), r, i, 1);
		pg_copy(x->id, sizeof(x->id), r, i, 2);
		pg_copy(x->receiver, sizeof(x->receiver), r, i, 3);
		pg_copy(x->bsn, sizeof(x->bsn), r, i, 4);
		pg_copy(x->msg_id, sizeof(x->msg_id), r, i, 5);
		pg_copy(x->sender, sizeof(x->sender), r, i, 6);
		x->vid = pg_i64(r, i, 7);
		x->updated = pg_i64(r, i, 8);
		x->hidden = pg_i64(r, i, 9) != 0;
		x->current = pg_i64(r, i, 10) != 0;
		x->json_len = (size_t)PQgetlength(r, i, 11);
		if ((x->json = malloc(x->json_len + 1)) == NULL) {
			store_res_free(v, (size_t)i);
			PQclear(r);
			return GW_NOMEM;
		}
		memcpy(x->json, PQgetvalue(r, i, 11), x->json_len + 1);
	}
	PQclear(r);
	*out = v;
	*n = (size_t)nt;
	return GW_OK;
}

static enum gw_err
pg_inbox_list(void *conn, const struct store_inbox_filter *f,
	      struct store_inbox **out, size_t *n)
{
	struct pg *c = conn;
	struct store_inbox *v = NULL;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	char sql[1024];
	int nt;

	*out = NULL;
	*n = 0;
	snprintf(sql, sizeof(sql),
		 "SELECT m.seq, m.id, coalesce(i.receiver_ura, ''),"
		 " coalesce(nullif(i.sender_ura, ''), m.sender_ura),"
		 " m.sender_ura, coalesce(i.bsn, ''), m.fhir_version,"
		 " m.accepted_at, coalesce(i.resources, 0),"
		 " octet_length(m.document)"
		 " FROM messages m %s JOIN inbox i ON i.message_seq = m.seq"
		 " WHERE m.direction = 'inbound' AND m.seq > $4%s%s%s"
		 " ORDER BY m.seq, i.receiver_ura LIMIT $5",
		 f->receiver != NULL || f->bsn != NULL ? "" : "LEFT",
		 f->receiver != NULL ? " AND i.receiver_ura = $1" : "",
		 f->bsn != NULL ? " AND i.bsn = $2" : "",
		 f->since > 0 ? " AND m.accepted_at >= $3" : "");
	pa_text(&a, f->receiver);
	pa_text(&a, f->bsn);
	pa_i64(&a, f->since);
	pa_i64(&a, f->after_seq);
	pa_limit(&a, f->limit, 100);
	if ((err = pg_q(c, "inbox_list", sql, &a, &r)) != GW_OK)
		return err;
	nt = PQntuples(r);
	if (nt > 0 && (v = calloc((size_t)nt, sizeof(*v))) == NULL) {
		PQclear(r);
		return GW_NOMEM;
	}
	for (int i = 0; i < nt; i++) {
		struct store_inbox *x = &v[i];

		x->seq = pg_i64(r, i, 0);
		pg_copy(x->id, sizeof(x->id), r, i, 1);
		pg_copy(x->receiver, sizeof(x->receiver), r, i, 2);
		pg_copy(x->sender, sizeof(x->sender), r, i, 3);
		pg_copy(x->via, sizeof(x->via), r, i, 4);
		pg_copy(x->bsn, sizeof(x->bsn), r, i, 5);
		pg_copy(x->fhir_version, sizeof(x->fhir_version), r, i, 6);
		x->accepted_at = pg_i64(r, i, 7);
		x->resources = (unsigned)pg_i64(r, i, 8);
		x->doc_len = (size_t)pg_i64(r, i, 9);
	}
	PQclear(r);
	*out = v;
	*n = (size_t)nt;
	return GW_OK;
}

static enum gw_err
pg_prune_inbound(void *conn, int64_t before, size_t max, bool retention,
		 size_t *count)
{
	return pg_delete_chunked(conn,
				 "DELETE FROM messages WHERE seq IN"
				 " (SELECT seq FROM messages WHERE"
				 " accepted_at < $1 AND direction = 'inbound'"
				 " LIMIT $2)",
				 before, PG_PRUNE_CHUNK / 4, max, retention,
				 "prune_inbound", count);
}

/* What pg_audit_rollup adds (the trigger's statements for a batch), rows
 * in key order: PG_AUDIT_PULL from $1 hours and $2 organisations of the
 * pulls, PG_AUDIT_PAT and PG_AUDIT_PAT_LAST from $1 days, $2
 * organisations and $3 BSNs of those naming a patient. */
#define PG_AUDIT_PULL                                                          \
	"INSERT INTO rep_pull (shard, hour, ura, n) SELECT " PG_ROLLUP_SHARD   \
	", h, u, count(*) FROM unnest($1::int8[], $2::text[]) AS x(h, u)"      \
	" GROUP BY h, u ORDER BY h, u" PG_UPS("rep_pull", "hour, ura")
#define PG_AUDIT_PAT                                                           \
	"INSERT INTO rep_pat (day, ura, bsn) SELECT DISTINCT d, u, b FROM"     \
	" unnest($1::int8[], $2::text[], $3::text[]) AS x(d, u, b) ORDER BY"   \
	" d, u, b ON CONFLICT DO NOTHING"
#define PG_AUDIT_PAT_LAST                                                      \
	"INSERT INTO rep_pat_last (ura, bsn, last_day) SELECT u, b, max(d)"    \
	" FROM unnest($1::int8[], $2::text[], $3::text[]) AS x(d, u, b) GROUP" \
	" BY u, b ORDER BY u, b ON CONFLICT (ura, bsn) DO UPDATE SET"          \
	" last_day = greatest(rep_pat_last.last_day, excluded.last_day)"

/*
 * Count the pull records of recs in the report's roll-ups as the row
 * trigger would (pzpgw_rep_audit), once per key (step 12). One round
 * trip, before the audit chain's head is locked.
 */
static enum gw_err
pg_audit_rollup(struct pg *c, const struct store_audit_rec *recs, size_t n)
{
	enum { H, U, D, PU, PB, NARR };
	struct pg_arr v[NARR];
	struct pg_args a = {0};
	struct pg_pipe p;
	size_t pulls = 0, pats = 0, i;
	enum gw_err err = GW_OK;

	for (i = 0; i < n; i++)
		if (store_audit_is_pull(&recs[i])) {
			pulls++;
			pats += recs[i].bsn[0] != '\0';
		}
	if (pulls == 0)
		return GW_OK;
	for (i = 0; i < NARR; i++)
		pg_arr_begin(&v[i], i == H || i == D ? PG_INT8 : PG_TEXT,
			     i < D ? pulls : pats);
	for (i = 0; i < n; i++) {
		const struct store_audit_rec *r = &recs[i];

		if (!store_audit_is_pull(r))
			continue;
		pg_arr_i64(&v[H], r->at / 3600000);
		pg_arr_text(&v[U], r->ura, sizeof(r->ura));
		if (r->bsn[0] == '\0')
			continue;
		pg_arr_i64(&v[D], r->at / 86400000);
		pg_arr_text(&v[PU], r->ura, sizeof(r->ura));
		pg_arr_text(&v[PB], r->bsn, sizeof(r->bsn));
	}
	if ((err = pg_arrs_err(v, NARR)) != GW_OK)
		goto out;
	pg_pipe_begin(c, &p, "audit_rollup");
	pa_arr(&a, PG_INT8_ARRAY, &v[H]);
	pa_arr(&a, PG_TEXT_ARRAY, &v[U]);
	pg_pipe_send(c, &p, PG_AUDIT_PULL, &a);
	if (pats > 0) {
		memset(&a, 0, sizeof(a));
		pa_arr(&a, PG_INT8_ARRAY, &v[D]);
		pa_arr(&a, PG_TEXT_ARRAY, &v[PU]);
		pa_arr(&a, PG_TEXT_ARRAY, &v[PB]);
		pg_pipe_send(c, &p, PG_AUDIT_PAT, &a);
		pg_pipe_send(c, &p, PG_AUDIT_PAT_LAST, &a);
	}
	err = pg_pipe_end(c, &p);
out:
	pg_arrs_free(v, NARR);
	return err;
}

static enum gw_err
pg_audit_append(void *conn, struct store_audit_rec *recs, size_t n)
{
	struct pg *c = conn;
	enum gw_err err;

	/* No accept waits on this commit: the next accept's makes it
	   durable (WAL order). The batch counts its own pulls
	   (PG_ROLLUP_CLIENT, pg_audit_rollup). */
	err = pg_q(c, "begin",
		   c->audit_relaxed ? "BEGIN; SET LOCAL synchronous_commit ="
				      " off; " PG_ROLLUP_CLIENT
				    : "BEGIN; " PG_ROLLUP_CLIENT,
		   NULL, NULL);
	c->txn = err == GW_OK;
	if (err != GW_OK)
		goto out;
	if ((err = pg_audit_rollup(c, recs, n)) != GW_OK)
		goto out;
	c->chain_known = false;
	for (size_t i = 0; i < n; i++)
		if ((err = pg_audit_write(c, &recs[i])) != GW_OK)
			goto out;
	if ((err = pg_chain_save(c)) != GW_OK)
		goto out;
	err = pg_commit(c);
out:
	if (err != GW_OK)
		pg_rollback(c);
	c->chain_known = false;
	return err;
}

static enum gw_err
pg_findings_add(void *conn, const struct store_finding *f, size_t n)
{
	struct pg *c = conn;
	enum gw_err err;

	if ((err = pg_begin(c)) != GW_OK)
		return err;
	for (size_t i = 0; i < n && err == GW_OK; i++) {
		struct pg_args a = {0};

		pa_i64(&a, f[i].hour);
		pa_text(&a, f[i].sender);
		pa_text(&a, f[i].severity);
		pa_text(&a, f[i].rule);
		pa_text(&a, f[i].profile);
		pa_i64(&a, f[i].n);
		err =
		    pg_q(c, "findings_add",
			 "INSERT INTO rep_find (" PG_FIND_KEYS ", n) VALUES"
			 " ($1, $2, $3, $4, $5, $6) ON CONFLICT (" PG_FIND_KEYS
			 ") DO UPDATE SET n = rep_find.n + excluded.n",
			 &a, NULL);
	}
	if (err == GW_OK)
		err = pg_commit(c);
	if (err != GW_OK)
		pg_rollback(c);
	return err;
}

#define PG_AUDIT_COLS                                                          \
	"seq, at, ura, cert_serial, cert_issuer, bsn, interaction, query,"     \
	" count, status, request_id, prev_hash, hash"

static void
pg_audit_read(PGresult *res, int i, struct store_audit_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->seq = pg_i64(res, i, 0);
	r->at = pg_i64(res, i, 1);
	pg_copy(r->ura, sizeof(r->ura), res, i, 2);
	pg_copy(r->cert_serial, sizeof(r->cert_serial), res, i, 3);
	pg_copy(r->cert_issuer, sizeof(r->cert_issuer), res, i, 4);
	pg_copy(r->bsn, sizeof(r->bsn), res, i, 5);
	pg_copy(r->interaction, sizeof(r->interaction), res, i, 6);
	pg_copy(r->query, sizeof(r->query), res, i, 7);
	r->count = (unsigned)pg_i64(res, i, 8);
	r->status = (int)pg_i64(res, i, 9);
	pg_copy(r->request_id, sizeof(r->request_id), res, i, 10);
	pg_copy(r->prev_hash, sizeof(r->prev_hash), res, i, 11);
	pg_copy(r->hash, sizeof(r->hash), res, i, 12);
}

static enum gw_err
pg_audit_list(void *conn, const struct store_audit_filter *f,
	      struct store_audit_rec **out, size_t *n)
{
	struct pg *c = conn;
	struct store_audit_rec *v = NULL;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	char sql[512];
	int nt;

	*out = NULL;
	*n = 0;
	snprintf(sql, sizeof(sql),
		 "SELECT " PG_AUDIT_COLS " FROM audit WHERE seq > $1%s%s%s"
		 " ORDER BY seq LIMIT $5",
		 f->bsn != NULL ? " AND bsn = $2" : "",
		 f->ura != NULL ? " AND ura = $3" : "",
		 f->since > 0 ? " AND at >= $4" : "");
	pa_i64(&a, f->after_seq);
	pa_text(&a, f->bsn);
	pa_text(&a, f->ura);
	pa_i64(&a, f->since);
	pa_limit(&a, f->limit, 100);
	if ((err = pg_q(c, "audit_list", sql, &a, &r)) != GW_OK)
		return err;
	nt = PQntuples(r);
	if (nt > 0 && (v = calloc((size_t)nt, sizeof(*v))) == NULL) {
		PQclear(r);
		return GW_NOMEM;
	}
	for (int i = 0; i < nt; i++)
		pg_audit_read(r, i, &v[i]);
	PQclear(r);
	*out = v;
	*n = (size_t)nt;
	return GW_OK;
}

static enum gw_err pg_audit_broken(struct store_audit_check *out, int64_t seq,
				   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum gw_err
pg_audit_broken(struct store_audit_check *out, int64_t seq, const char *fmt,
		...)
{
	va_list ap;

	out->broken_seq = seq;
	va_start(ap, fmt);
	vsnprintf(out->problem, sizeof(out->problem), fmt, ap);
	va_end(ap);
	return GW_INVALID;
}

/* Walk the chain (see sq_audit_verify) in pages of PG_VERIFY_PAGE
 * records, so a long trail never sits in memory at once. */
#define PG_VERIFY_PAGE 10000

static enum gw_err
pg_audit_verify(void *conn, struct store_audit_check *out)
{
	struct pg *c = conn;
	struct store_audit_rec rec;
	PGresult *r = NULL;
	char prev[65], h[65];
	int64_t expect = 1, head = 0, after = 0;
	enum gw_err err = GW_OK;
	int nt;

	util_strlcpy(prev, STORE_AUDIT_GENESIS, sizeof(prev));
	do {
		struct pg_args a = {0};

		pa_i64(&a, after);
		pa_i64(&a, PG_VERIFY_PAGE);
		if ((err = pg_q(c, "audit_verify",
				"SELECT " PG_AUDIT_COLS " FROM audit WHERE"
				" seq > $1 ORDER BY seq LIMIT $2",
				&a, &r)) != GW_OK)
			return err;
		nt = PQntuples(r);
		for (int i = 0; i < nt; i++) {
			pg_audit_read(r, i, &rec);
			after = rec.seq;
			out->records++;
			if (out->first_seq == 0)
				out->first_seq = rec.seq;
			if (rec.seq != expect) {
				err = pg_audit_broken(
				    out, expect,
				    "deleted: seq %lld..%lld missing before "
				    "seq %lld",
				    (long long)expect, (long long)rec.seq - 1,
				    (long long)rec.seq);
				goto out;
			}
			store_audit_hash(&rec, h);
			if (strcmp(h, rec.hash) != 0) {
				err = pg_audit_broken(
				    out, rec.seq,
				    "altered: the record's hash does not "
				    "match its content");
				goto out;
			}
			if (strcmp(rec.prev_hash, prev) != 0) {
				err = pg_audit_broken(
				    out, rec.seq,
				    "chain broken: prev_hash is not the hash "
				    "of seq %lld (a record before it was "
				    "altered and re-hashed, removed or "
				    "reordered)",
				    (long long)rec.seq - 1);
				goto out;
			}
			memcpy(prev, rec.hash, sizeof(prev));
			out->last_seq = rec.seq;
			memcpy(out->last_hash, rec.hash,
			       sizeof(out->last_hash));
			expect = rec.seq + 1;
		}
		PQclear(r);
		r = NULL;
	} while (nt == PG_VERIFY_PAGE);
	if ((err = pg_q(c, "audit_verify",
			"SELECT seq FROM audit_head WHERE k = 1", NULL, &r)) !=
	    GW_OK)
		goto out;
	head = PQntuples(r) == 1 ? pg_i64(r, 0, 0) : 0;
	if (head > out->last_seq)
		err = pg_audit_broken(out, out->last_seq + 1,
				      "deleted: seq %lld..%lld missing at the "
				      "end",
				      (long long)out->last_seq + 1,
				      (long long)head);
out:
	PQclear(r);
	return err;
}

/*
 * Raw table access of store copy (store_copy.c). Identifiers come from
 * store_copy.c's table list, never from outside data. Rows go in with
 * COPY ... FROM STDIN (text format), in chunks of PG_RAW_CHUNK bytes:
 * one statement per table instead of a round trip per row.
 */
#define PG_RAW_CHUNK (256 * 1024)

static enum gw_err
pg_raw_begin(void *conn, bool write)
{
	struct pg *c = conn;
	enum gw_err err;

	if (write)
		return pg_begin(c);
	err =
	    pg_q(c, "raw_begin",
		 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, NULL);
	c->txn = err == GW_OK;
	/* The snapshot is taken at the first statement: now. */
	if (err == GW_OK)
		err = pg_q(c, "raw_begin", "SELECT 1", NULL, NULL);
	return err;
}

/* End a COPY in progress: flush the buffer, then the end of data (or,
 * abort: its failure) and its result. */
static enum gw_err
pg_raw_copy_end(struct pg *c, bool abort)
{
	enum gw_err err = GW_OK;
	PGresult *r;

	if (!c->raw_copy)
		return GW_OK;
	c->raw_copy = false;
	c->raw_table[0] = '\0';
	if (!abort && c->raw_len > 0 &&
	    PQputCopyData(c->db, c->raw_buf, (int)c->raw_len) != 1)
		abort = true;
	c->raw_len = 0;
	if (PQputCopyEnd(c->db, abort ? "store copy stopped" : NULL) != 1)
		err = pg_fail(c, "raw_put", NULL);
	while ((r = PQgetResult(c->db)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && err == GW_OK)
			err = abort ? GW_PERM : pg_fail(c, "raw_put", r);
		PQclear(r);
	}
	return abort && err == GW_OK ? GW_PERM : err;
}

static enum gw_err
pg_raw_end(void *conn, bool commit)
{
	struct pg *c = conn;
	enum gw_err err = pg_raw_copy_end(c, !commit);

	if (!c->txn)
		return commit ? GW_PERM : GW_OK;
	if (!commit || err != GW_OK) {
		pg_rollback(c);
		return commit ? err : GW_OK;
	}
	return pg_commit(c);
}

static enum gw_err
pg_raw_columns(void *conn, char ***names, size_t *n)
{
	struct pg *c = conn;
	PGresult *r = NULL;
	enum gw_err err;
	char **v;
	int rows;

	*names = NULL;
	*n = 0;
	if ((err = pg_q(c, "raw_columns",
			"SELECT table_name || '.' || column_name FROM"
			" information_schema.columns WHERE table_schema ="
			" current_schema() ORDER BY 1",
			NULL, &r)) != GW_OK)
		return err;
	rows = PQntuples(r);
	if ((v = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*v))) == NULL) {
		PQclear(r);
		return GW_NOMEM;
	}
	for (int i = 0; i < rows; i++) {
		if ((v[i] = strdup(PQgetvalue(r, i, 0))) == NULL) {
			store_raw_names_free(v, (size_t)i);
			PQclear(r);
			return GW_NOMEM;
		}
	}
	PQclear(r);
	*names = v;
	*n = (size_t)rows;
	return GW_OK;
}

/* "a", "b", ... of cols into b (keys in byte order: COLLATE "C"). */
static bool
pg_raw_list(char *b, size_t size, const struct store_col *cols, size_t n,
	    bool order)
{
	size_t len = strlen(b);

	for (size_t i = 0; i < n; i++) {
		int w = snprintf(b + len, size - len, "%s\"%s\"%s",
				 i > 0 ? ", " : "", cols[i].name,
				 order && cols[i].type == STORE_VAL_TEXT
				     ? " COLLATE \"C\""
				     : "");

		if (w < 0 || (size_t)w >= size - len)
			return false;
		len += (size_t)w;
	}
	return true;
}

/* The values of row 0 of r (one row of single-row mode, binary format)
 * into v, pointing into r: integers big-endian of their column's width,
 * text and bytea as their bytes. */
static enum gw_err
pg_raw_row(PGresult *r, const struct store_col *cols, size_t ncols,
	   struct store_val *v)
{
	for (size_t i = 0; i < ncols; i++) {
		int k = (int)i, len = PQgetlength(r, 0, k);
		const unsigned char *b;
		uint64_t x;

		memset(&v[i], 0, sizeof(v[i]));
		if (PQgetisnull(r, 0, k))
			continue;
		b = (const unsigned char *)PQgetvalue(r, 0, k);
		v[i].type = cols[i].type;
		switch (cols[i].type) {
		case STORE_VAL_INT:
			if (len != 2 && len != 4 && len != 8)
				return GW_PARSE;
			/* Sign-extended from the first byte. */
			x = (b[0] & 0x80) != 0 ? UINT64_MAX : 0;
			for (int n = 0; n < len; n++)
				x = (x << 8) | b[n];
			v[i].i = (int64_t)x;
			break;
		case STORE_VAL_TEXT:
		case STORE_VAL_BLOB:
			v[i].p = b;
			v[i].len = (size_t)len;
			break;
		case STORE_VAL_NULL:
			break;
		}
	}
	return GW_OK;
}

static enum gw_err
pg_raw_select(void *conn, const char *table, const struct store_col *cols,
	      size_t ncols, size_t nkeys, store_raw_row_fn fn, void *arg)
{
	struct pg *c = conn;
	struct store_val v[STORE_RAW_COLS_MAX];
	char sql[2048] = "SELECT ";
	enum gw_err err = GW_OK;
	PGresult *r;
	size_t len;

	if (ncols > STORE_RAW_COLS_MAX ||
	    !pg_raw_list(sql, sizeof(sql), cols, ncols, false))
		return GW_INVALID;
	len = strlen(sql);
	snprintf(sql + len, sizeof(sql) - len, " FROM \"%s\" ORDER BY ", table);
	if (!pg_raw_list(sql, sizeof(sql), cols, nkeys, true))
		return GW_INVALID;
	/* Row by row (single-row mode): a table of a million messages is
	   never held in memory at once. Binary results: documents as
	   their bytes, not twice as many hex digits. */
	if (PQsendQueryParams(c->db, sql, 0, NULL, NULL, NULL, NULL, 1) != 1 ||
	    PQsetSingleRowMode(c->db) != 1)
		return pg_fail(c, "raw_select", NULL);
	while ((r = PQgetResult(c->db)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_SINGLE_TUPLE && err == GW_OK) {
			err = pg_raw_row(r, cols, ncols, v);
			if (err == GW_OK)
				err = fn(arg, v, ncols);
		} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK &&
			   err == GW_OK)
			err = pg_fail(c, "raw_select", r);
		/* After a failure the rest is read and dropped: the
		   connection must be idle again. */
		PQclear(r);
	}
	return err;
}

/* Room for n more bytes in the COPY buffer. */
static bool
pg_raw_room(struct pg *c, size_t n)
{
	size_t cap;
	char *nb;

	if (c->raw_len + n <= c->raw_cap)
		return true;
	cap = c->raw_cap * 2 + n + PG_RAW_CHUNK;
	if ((nb = realloc(c->raw_buf, cap)) == NULL)
		return false;
	c->raw_buf = nb;
	c->raw_cap = cap;
	return true;
}

/* Append s (len bytes) to the COPY buffer, escaped for COPY's text
 * format. */
static bool
pg_raw_text(struct pg *c, const char *s, size_t len)
{
	if (!pg_raw_room(c, 2 * len))
		return false;
	for (size_t i = 0; i < len; i++) {
		char e = 0;

		switch (s[i]) {
		case '\\':
			e = '\\';
			break;
		case '\n':
			e = 'n';
			break;
		case '\r':
			e = 'r';
			break;
		case '\t':
			e = 't';
			break;
		default:
			break;
		}
		if (e != 0) {
			c->raw_buf[c->raw_len++] = '\\';
			c->raw_buf[c->raw_len++] = e;
		} else
			c->raw_buf[c->raw_len++] = s[i];
	}
	return true;
}

/* One row as a line of COPY's text format: bytea as \x hex (its
 * backslash escaped), NULL as \N. */
static bool
pg_raw_line(struct pg *c, const struct store_val *v, size_t ncols)
{
	static const char hex[] = "0123456789abcdef";
	char num[24];

	for (size_t i = 0; i < ncols; i++) {
		if (!pg_raw_room(c, 4))
			return false;
		if (i > 0)
			c->raw_buf[c->raw_len++] = '\t';
		switch (v[i].type) {
		case STORE_VAL_NULL:
			c->raw_buf[c->raw_len++] = '\\';
			c->raw_buf[c->raw_len++] = 'N';
			break;
		case STORE_VAL_INT:
			snprintf(num, sizeof(num), "%lld", (long long)v[i].i);
			if (!pg_raw_text(c, num, strlen(num)))
				return false;
			break;
		case STORE_VAL_TEXT:
			if (!pg_raw_text(c, v[i].p, v[i].len))
				return false;
			break;
		case STORE_VAL_BLOB:
			if (!pg_raw_room(c, 3 + 2 * v[i].len))
				return false;
			c->raw_buf[c->raw_len++] = '\\';
			c->raw_buf[c->raw_len++] = '\\';
			c->raw_buf[c->raw_len++] = 'x';
			for (size_t k = 0; k < v[i].len; k++) {
				unsigned char b =
				    ((const unsigned char *)v[i].p)[k];

				c->raw_buf[c->raw_len++] = hex[b >> 4];
				c->raw_buf[c->raw_len++] = hex[b & 15];
			}
			break;
		}
	}
	if (!pg_raw_room(c, 1))
		return false;
	c->raw_buf[c->raw_len++] = '\n';
	return true;
}

static enum gw_err
pg_raw_put(void *conn, const char *table, const struct store_col *cols,
	   size_t ncols, const struct store_val *v)
{
	struct pg *c = conn;
	enum gw_err err;
	PGresult *r;

	if (v == NULL || (c->raw_copy && strcmp(c->raw_table, table) != 0)) {
		if ((err = pg_raw_copy_end(c, false)) != GW_OK || v == NULL)
			return err;
	}
	if (!c->raw_copy) {
		char sql[2048];
		size_t len;

		if (ncols > STORE_RAW_COLS_MAX ||
		    strlen(table) >= sizeof(c->raw_table))
			return GW_INVALID;
		snprintf(sql, sizeof(sql), "COPY \"%s\" (", table);
		if (!pg_raw_list(sql, sizeof(sql), cols, ncols, false))
			return GW_INVALID;
		len = strlen(sql);
		if (snprintf(sql + len, sizeof(sql) - len, ") FROM STDIN") >=
		    (int)(sizeof(sql) - len))
			return GW_INVALID;
		r = PQexec(c->db, sql);
		if (PQresultStatus(r) != PGRES_COPY_IN) {
			err = pg_fail(c, "raw_put", r);
			PQclear(r);
			return err;
		}
		PQclear(r);
		c->raw_copy = true;
		c->raw_len = 0;
		util_strlcpy(c->raw_table, table, sizeof(c->raw_table));
	}
	if (!pg_raw_line(c, v, ncols))
		return GW_NOMEM;
	if (c->raw_len >= PG_RAW_CHUNK) {
		if (PQputCopyData(c->db, c->raw_buf, (int)c->raw_len) != 1)
			return pg_fail(c, "raw_put", NULL);
		c->raw_len = 0;
	}
	return GW_OK;
}

/* Delete every row of table; its append-only triggers (the audit
 * trail's) are disabled for that, in the open transaction. */
static enum gw_err
pg_raw_clear(void *conn, const char *table)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	char sql[512];
	enum gw_err err;
	bool guarded;

	pa_text(&a, table);
	if ((err = pg_q(c, "raw_clear",
			"SELECT count(*) FROM pg_trigger WHERE tgrelid ="
			" $1::regclass AND tgfoid ="
			" 'pzpgw_audit_append_only'::regproc",
			&a, &r)) != GW_OK)
		return err;
	guarded = pg_i64(r, 0, 0) > 0;
	PQclear(r);
	if (guarded) {
		snprintf(sql, sizeof(sql),
			 "ALTER TABLE \"%s\" DISABLE TRIGGER USER", table);
		if ((err = pg_q(c, "raw_clear", sql, NULL, NULL)) != GW_OK)
			return err;
	}
	snprintf(sql, sizeof(sql), "DELETE FROM \"%s\"", table);
	if ((err = pg_q(c, "raw_clear", sql, NULL, NULL)) != GW_OK)
		return err;
	if (guarded) {
		snprintf(sql, sizeof(sql),
			 "ALTER TABLE \"%s\" ENABLE TRIGGER USER", table);
		err = pg_q(c, "raw_clear", sql, NULL, NULL);
	}
	return err;
}

/* The audit trail's counter is audit_head (the last seq given and the
 * hash the next record chains to); the others are serial sequences. */
static enum gw_err
pg_raw_counter(void *conn, const char *table, int64_t *last, bool set)
{
	struct pg *c = conn;
	struct pg_args a = {0};
	PGresult *r = NULL;
	enum gw_err err;
	bool audit = strcmp(table, "audit") == 0;

	if (audit && set) {
		pa_i64(&a, *last);
		return pg_q(c, "raw_counter",
			    "UPDATE audit_head SET seq = $1, hash = (SELECT"
			    " hash FROM audit ORDER BY seq DESC LIMIT 1)"
			    " WHERE k = 1",
			    &a, NULL);
	}
	if (audit)
		err = pg_q(c, "raw_counter",
			   "SELECT seq FROM audit_head WHERE k = 1", NULL, &r);
	else if (set) {
		pa_text(&a, table);
		pa_i64(&a, *last);
		return pg_q(c, "raw_counter",
			    "SELECT setval(pg_get_serial_sequence($1, 'seq'),"
			    " greatest($2, 1), $2 > 0)",
			    &a, NULL);
	} else {
		pa_text(&a, table);
		err = pg_q(c, "raw_counter",
			   "SELECT coalesce((SELECT last_value FROM"
			   " pg_sequences WHERE format('%I.%I', schemaname,"
			   " sequencename) = pg_get_serial_sequence($1,"
			   " 'seq')), 0)",
			   &a, &r);
	}
	if (err != GW_OK)
		return err;
	*last = PQntuples(r) > 0 ? pg_i64(r, 0, 0) : 0;
	PQclear(r);
	return GW_OK;
}

/* Sessions of gateways (application name pzpgw, libpq's fallback
 * pg_open sets) on this database other than this one. */
static enum gw_err
pg_raw_sessions(void *conn, int64_t *n)
{
	struct pg *c = conn;
	PGresult *r = NULL;
	enum gw_err err;

	*n = 0;
	if ((err = pg_q(c, "raw_sessions",
			"SELECT count(*) FROM pg_stat_activity WHERE datname ="
			" current_database() AND pid <> pg_backend_pid() AND"
			" application_name LIKE 'pzpgw%'",
			NULL, &r)) != GW_OK)
		return err;
	*n = pg_i64(r, 0, 0);
	PQclear(r);
	return GW_OK;
}

/* statement_timeout for the time left until mono_ms (at least 1 ms). */
static void
pg_set_deadline(void *conn, int64_t mono_ms)
{
	struct pg *c = conn;
	int64_t left = mono_ms != 0 ? mono_ms - (int64_t)util_mono_ms() : 0;
	char sql[64];

	if (mono_ms != 0 && left < 1)
		left = 1;
	snprintf(sql, sizeof(sql), "SET statement_timeout = %lld",
		 (long long)left);
	(void)pg_q(c, "set_deadline", sql, NULL, NULL);
}

/* ---- the report's aggregates (issue 17) ---- */

/* The columns every part of the report's query gives: what (enum
 * store_agg_what), hour (or day), kind, org, version or state, event or
 * cause, bucket, n. */
#define PG_AGG_MSG    "SELECT 0, c1, c2, c3, c4, c5, 0, c6 FROM ("
#define PG_AGG_ROW    "SELECT 1, c1, c2, c3, c4, c5, 0, c6 FROM ("
#define PG_AGG_COLS6  ") b (c1, c2, c3, c4, c5, c6)"
#define PG_RANGE_LIT  " AND m.accepted_at >= %lld AND m.accepted_at < %lld"
#define PG_ARANGE_LIT " AND at >= %lld AND at < %lld"

/* Append one part (UNION ALL after the first) unless [a, b) is empty. */
#define PG_AGG_PART(f, first, a, b, ...)                                       \
	do {                                                                   \
		if ((b) > (a)) {                                               \
			fputs(*(first) ? "" : " UNION ALL ", (f));             \
			*(first) = false;                                      \
			fprintf((f), __VA_ARGS__);                             \
		}                                                              \
	} while (0)

/* The report's query: every section's roll-up over whole units and rows
 * of the partial ones, in one statement (numbers only, formatted in). */
static void
pg_agg_sql(FILE *f, const struct store_agg_range *r)
{
	bool first = true;
	long long a, b;

	PG_AGG_PART(f, &first, r->h0, r->h1,
		    "SELECT 0, hour, kind, sender_ura, fhir_version, event, 0,"
		    " n FROM rep_msg WHERE hour >= %lld AND hour < %lld",
		    (long long)r->h0, (long long)r->h1);
	PG_AGG_PART(f, &first, r->h0, r->h1,
		    "SELECT 1, hour, kind, receiver_ura, state, cause, 0, n"
		    " FROM rep_row WHERE hour >= %lld AND hour < %lld",
		    (long long)r->h0, (long long)r->h1);
	PG_AGG_PART(f, &first, r->d0, r->d1,
		    "SELECT 2, day, '', '', '', '', bucket, n FROM rep_lat"
		    " WHERE day >= %lld AND day < %lld",
		    (long long)r->d0, (long long)r->d1);
	PG_AGG_PART(f, &first, r->h0, r->h1,
		    "SELECT 3, hour, '', ura, '', '', 0, n FROM rep_pull"
		    " WHERE hour >= %lld AND hour < %lld",
		    (long long)r->h0, (long long)r->h1);
	/* findings: every hour the range touches (kept per hour only) */
	PG_AGG_PART(f, &first, r->f0, r->f1,
		    "SELECT 5, hour, severity, sender_ura, rule, profile, 0, n"
		    " FROM rep_find WHERE hour >= %lld AND hour < %lld",
		    (long long)r->f0, (long long)r->f1);
	for (int i = 0; i < 2; i++) {
		a = r->hedge[i][0];
		b = r->hedge[i][1];
		PG_AGG_PART(f, &first, a, b,
			    PG_AGG_MSG PG_BASE_MSG(PG_RANGE_LIT) PG_AGG_COLS6,
			    a, b, a, b);
		PG_AGG_PART(f, &first, a, b,
			    PG_AGG_ROW PG_BASE_ROW(PG_RANGE_LIT) PG_AGG_COLS6,
			    a, b, a, b);
		PG_AGG_PART(
		    f, &first, a, b,
		    "SELECT 3, c1, '', c2, '', '', 0, c3 FROM (" PG_BASE_PULL(
			PG_ARANGE_LIT) ") b (c1, c2, c3)",
		    a, b);
		a = r->dedge[i][0];
		b = r->dedge[i][1];
		PG_AGG_PART(
		    f, &first, a, b,
		    "SELECT 2, c1, '', '', '', '', c2, c3 FROM (" PG_BASE_LAT(
			PG_RANGE_LIT) ") b (c1, c2, c3)",
		    a, b);
	}
	/* Distinct patients: the whole days' sets (open at its end: the
	   pairs last read on or after its first whole day) and the partial
	   days' audit records. */
	if (!first)
		fputs(" UNION ALL ", f);
	if (r->d1 == INT64_MAX)
		fprintf(f,
			"SELECT 4, 0, '', ura, '', '', 0, count(DISTINCT bsn)"
			" FROM (SELECT ura, bsn FROM rep_pat_last WHERE"
			" last_day >= %lld",
			(long long)r->d0);
	else
		fprintf(f,
			"SELECT 4, 0, '', ura, '', '', 0, count(DISTINCT bsn)"
			" FROM (SELECT ura, bsn FROM rep_pat WHERE day >= %lld"
			" AND day < %lld",
			(long long)r->d0, (long long)r->d1);
	fprintf(f,
		" UNION ALL SELECT ura, bsn FROM audit WHERE " PG_PULLED(
		    "") " AND bsn <> '' AND ((at >= %lld AND at < %lld) OR"
			" (at >= %lld AND at < %lld))) p GROUP BY ura",
		(long long)r->dedge[0][0], (long long)r->dedge[0][1],
		(long long)r->dedge[1][0], (long long)r->dedge[1][1]);
}

/* Hand the rows of one result to fn. */
static enum gw_err
pg_agg_rows(PGresult *res, store_agg_fn fn, void *arg)
{
	enum gw_err err = GW_OK;

	for (int i = 0; i < PQntuples(res) && err == GW_OK; i++) {
		struct store_agg g = {
		    .what = (enum store_agg_what)pg_i64(res, i, 0),
		    .hour = pg_i64(res, i, 1),
		    .kind = PQgetvalue(res, i, 2),
		    .org = PQgetvalue(res, i, 3),
		    .bucket = pg_i64(res, i, 6),
		    .n = pg_i64(res, i, 7),
		};

		if (g.what == STORE_AGG_MESSAGES) {
			g.version = PQgetvalue(res, i, 4);
			g.event = PQgetvalue(res, i, 5);
		} else if (g.what == STORE_AGG_FINDINGS) {
			g.severity = g.kind;
			g.rule = PQgetvalue(res, i, 4);
			g.profile = PQgetvalue(res, i, 5);
		} else {
			g.state = PQgetvalue(res, i, 4);
			g.cause = PQgetvalue(res, i, 5);
		}
		if (g.n != 0)
			err = fn(arg, &g);
	}
	return err;
}

/*
 * One round trip: a fresh CLI process pays one per statement (and one
 * more to prepare each), 5-10 ms each on a busy server, so the whole
 * read is one simple-protocol string: its read-only transaction, the
 * planner settings and one UNION ALL of every section (the shards of a
 * key come as rows of their own: the caller adds them up). The partial
 * hours and days read a few thousand messages by acceptance time and
 * their rows by key; the planner made that a hash join over the whole
 * outbox (170 ms at 1M), hence no hash or merge joins.
 */
static enum gw_err
pg_report_agg(void *conn, const struct store_agg_range *r, store_agg_fn fn,
	      void *arg)
{
	struct pg *c = conn;
	PGresult *res;
	enum gw_err err = GW_OK;
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);

	if (f == NULL)
		return GW_NOMEM;
	fputs("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
	      " SET LOCAL enable_hashjoin = off;"
	      " SET LOCAL enable_mergejoin = off; ",
	      f);
	pg_agg_sql(f, r);
	fputs("; COMMIT", f);
	if (fclose(f) != 0 || sql == NULL) {
		free(sql);
		return GW_NOMEM;
	}
	if (PQsendQuery(c->db, sql) != 1) {
		free(sql);
		return pg_fail(c, "report_agg", NULL);
	}
	free(sql);
	/* Every result in turn, to the end, whatever failed. */
	while ((res = pg_result(c)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_TUPLES_OK && err == GW_OK)
			err = pg_agg_rows(res, fn, arg);
		else if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK &&
			 err == GW_OK)
			err = pg_fail(c, "report_agg", res);
		PQclear(res);
	}
	/* A failed statement leaves the transaction open (aborted). */
	pg_rollback(c);
	return err;
}

const struct store_ops store_pg_ops = {
    .name = "postgresql",
    .conn_open = pg_open,
    .conn_close = pg_close,
    .schema_version = pg_schema_version,
    .accept_batch = pg_accept_batch,
    .audit_append = pg_audit_append,
    .audit_list = pg_audit_list,
    .audit_verify = pg_audit_verify,
    .claim = pg_claim,
    .finish = pg_finish,
    .recover = pg_recover,
    .renew = pg_renew,
    .next_due_at = pg_next_due_at,
    .get = pg_get,
    .list = pg_list,
    .act = pg_act,
    .prune = pg_prune,
    .stats = pg_stats,
    .expire = pg_expire,
    .reschedule = pg_reschedule,
    .holds = pg_holds,
    .hold_fail = pg_hold_fail,
    .hold_probe = pg_hold_probe,
    .hold_clear = pg_hold_clear,
    .upkeep = pg_upkeep,
    .check_files = pg_check_files,
    .ping = pg_ping,
    .index_secret = pg_index_secret,
    .report_agg = pg_report_agg,
    .findings_add = pg_findings_add,
    .res_snapshot = pg_res_snapshot,
    .res_txn = pg_res_txn,
    .res_find = pg_res_find,
    .inbox_list = pg_inbox_list,
    .prune_inbound = pg_prune_inbound,
    .raw_begin = pg_raw_begin,
    .raw_end = pg_raw_end,
    .raw_columns = pg_raw_columns,
    .raw_select = pg_raw_select,
    .raw_put = pg_raw_put,
    .raw_clear = pg_raw_clear,
    .raw_counter = pg_raw_counter,
    .raw_sessions = pg_raw_sessions,
    .set_deadline = pg_set_deadline,
};
