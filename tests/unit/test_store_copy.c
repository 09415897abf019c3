/*
 * store copy (store_copy.c) against real stores: the table list covers
 * every table and column of the schema (a table added without it makes
 * this test fail), a populated store copies with its states, audit chain
 * and counters, and a destination holding data is refused. With
 * PZPGW_TEST_PG_URL set (make test-unit-pg) the destination (and the
 * source of the copy back) is PostgreSQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_copy.h"
#include "util.h"

#define R1     "00000001"
#define R2     "00000002"
#define SENDER "12345678"
#define T0     1700000000000LL

static bool on_pg;
static const char *pg_url, *pg_pwfile;

static void
pg_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Run sql on the test server (fails the test on an error). */
static void
pg_sql(const char *sql)
{
	char pw[256] = "";
	const char *keys[] = {"dbname", "password", NULL};
	const char *vals[] = {pg_url, pw, NULL};
	PGresult *r;
	PGconn *c;
	FILE *fp;

	if (pg_pwfile != NULL && (fp = fopen(pg_pwfile, "r")) != NULL) {
		if (fgets(pw, sizeof(pw), fp) == NULL)
			pw[0] = '\0';
		pw[strcspn(pw, "\r\n")] = '\0';
		fclose(fp);
	}
	c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("postgresql: %s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, pg_quiet, NULL);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("postgresql: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

static void
sq_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("sqlite: %s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

struct fixture {
	char dir[64];
	char path[3][128]; /* SQLite stores a, b, c */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	util_strlcpy(f->dir, "/tmp/pzpgw-copy-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	for (int i = 0; i < 3; i++) {
		char p[sizeof(f->path[i])];

		snprintf(p, sizeof(p), "%s/%c.db", f->dir, 'a' + i);
		memcpy(f->path[i], p, sizeof(p));
	}
	if (on_pg)
		pg_sql("DROP SCHEMA IF EXISTS public CASCADE;"
		       " CREATE SCHEMA public");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Open (creating) the SQLite store at path, or with pg the test
 * server's database (path then only places the lock). */
static struct store *
open_store(const char *path, bool pg, bool readonly)
{
	struct store_options o = {0};
	struct store *s = NULL;

	o.path = path;
	o.create = !readonly;
	o.readonly = readonly;
	o.quiet = true;
	if (pg) {
		o.pg_url = pg_url;
		o.pg_password_file = pg_pwfile;
	}
	assert_int_equal(store_open(&o, &s), GW_OK);
	return s;
}

/* Bytes COPY's text format escapes (tab, backslash, newline), and a
 * NUL. */
static const char doc[] = "{\"a\":\"tab\t back\\\\ nl\n\"}\0z";

static void
accept_one(struct store *s, const char *id, const char *patient,
	   const char *const *rc, size_t n, int64_t at)
{
	struct store_accept r = {
	    .id = id,
	    .direction = STORE_OUTBOUND,
	    .sender_ura = SENDER,
	    .bundle_system = "urn:ietf:rfc:3986",
	    .bundle_value = id,
	    .patient_key = patient,
	    .fhir_version = "4.0.1",
	    .doc = doc,
	    .doc_len = sizeof(doc) - 1,
	    .jws = "eyJhbGciOiJFUzI1NiJ9..sig",
	    .sha256 = "ab12",
	    .accepted_at = at,
	    .answer_status = 202,
	    .answer_body = "{\"id\":\"x\"}",
	    .receivers = rc,
	    .nreceivers = n,
	};
	struct store_result res;

	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);
}

/* Six messages to R1 and R2, R1's lane heads in flight, one delivered;
 * three audit records. */
static void
populate(struct store *s)
{
	const char *both[] = {R1, R2};
	struct store_row *rows = NULL;
	size_t n = 0;

	for (int i = 0; i < 6; i++) {
		char id[16], pat[16];

		snprintf(id, sizeof(id), "m%d", i);
		snprintf(pat, sizeof(pat), "p%d", i % 2);
		accept_one(s, id, pat, both, 2, T0 + i);
	}
	assert_int_equal(store_claim(s, R1, T0 + 10, T0 + 10, 10, &rows, &n),
			 GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(store_delivered(s, rows[0].id, R1, 200, T0 + 11),
			 GW_OK);
	store_rows_free(rows, n);
	for (int i = 0; i < 3; i++) {
		struct store_audit_rec r;

		memset(&r, 0, sizeof(r));
		r.at = T0 + 100 + i;
		util_strlcpy(r.ura, R1, sizeof(r.ura));
		util_strlcpy(r.cert_serial, "1A2B", sizeof(r.cert_serial));
		util_strlcpy(r.cert_issuer, "CN=Test CA",
			     sizeof(r.cert_issuer));
		util_strlcpy(r.bsn, "999911120", sizeof(r.bsn));
		util_strlcpy(r.interaction, "search-type",
			     sizeof(r.interaction));
		util_strlcpy(r.query, "/fhir/Consent?x=\t1", sizeof(r.query));
		util_strlcpy(r.request_id, "req", sizeof(r.request_id));
		r.count = (unsigned)i;
		r.status = 200;
		assert_int_equal(store_submit_audit(s, &r), GW_OK);
	}
	/* two keys of validation findings (rep_find: copied rows) */
	for (int i = 0; i < 3; i++) {
		struct store_finding fi = {.hour = T0 / 3600000, .n = 1};

		util_strlcpy(fi.sender, R2, sizeof(fi.sender));
		util_strlcpy(fi.severity, "error", sizeof(fi.severity));
		util_strlcpy(fi.rule, i < 2 ? "invariant pzp-1" : "value x",
			     sizeof(fi.rule));
		assert_int_equal(store_count_finding(s, &fi), GW_OK);
	}
	store_flush(s);
}

static enum store_state
state_of(struct store *s, const char *id, const char *receiver)
{
	struct store_message *m = NULL;
	enum store_state st = STORE_STATE_COUNT;

	assert_int_equal(store_show(s, id, false, &m), GW_OK);
	for (size_t i = 0; i < m->nrows; i++)
		if (strcmp(m->rows[i].receiver, receiver) == 0)
			st = m->rows[i].state;
	store_message_free(m);
	return st;
}

/* Every table and column of a new store is in the copy's list, and
 * every listed column exists. */
static void
test_table_list_covers_schema(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->path[0], on_pg, false);
	const struct store_ops *ops;
	char what[128], **names = NULL, want[128];
	size_t n = 0;
	void *conn;

	if (store_copy_check(s, what, sizeof(what)) != GW_OK)
		fail_msg("table or column %s of schema %d is not in "
			 "store_copy_tables: copy it (ROWS) or say what "
			 "rebuilds it (REBUILT)",
			 what, store_schema_version(s));
	ops = store_raw(s, &conn);
	assert_int_equal(ops->raw_columns(conn, &names, &n), GW_OK);
	for (size_t i = 0; i < store_copy_ntables; i++) {
		const struct store_copy_table *t = &store_copy_tables[i];

		for (size_t k = 0; k < t->ncols; k++) {
			bool found = false;

			snprintf(want, sizeof(want), "%s.%s", t->name,
				 t->cols[k].name);
			for (size_t j = 0; j < n && !found; j++)
				found = strcmp(names[j], want) == 0;
			if (!found)
				fail_msg("listed column %s is not in the "
					 "schema",
					 want);
		}
	}
	store_raw_names_free(names, n);
	store_free(s);
}

/* A table or column the list does not know: named, nothing copied. */
static void
test_unknown_table_refused(void **state)
{
	struct fixture *f = *state;
	struct store_copy_report rep;
	struct store *s, *d;
	char what[128];

	s = open_store(f->path[0], on_pg, false);
	store_free(s);
	if (on_pg)
		pg_sql("CREATE TABLE copy_unknown (ura TEXT)");
	else
		sq_sql(f->path[0], "CREATE TABLE copy_unknown (ura TEXT)");
	s = open_store(f->path[0], on_pg, false);
	assert_int_equal(store_copy_check(s, what, sizeof(what)), GW_INVALID);
	assert_string_equal(what, "copy_unknown");
	d = open_store(f->path[1], false, false);
	assert_int_equal(store_copy_run(s, d, false, &rep), GW_INVALID);
	assert_string_equal(rep.what, "copy_unknown");
	store_free(s);
	store_free(d);

	/* A new column of a known table, too. */
	s = open_store(f->path[2], false, false);
	store_free(s);
	sq_sql(f->path[2],
	       "ALTER TABLE outbox ADD COLUMN copy_unknown INTEGER");
	s = open_store(f->path[2], false, false);
	assert_int_equal(store_copy_check(s, what, sizeof(what)), GW_INVALID);
	assert_string_equal(what, "outbox.copy_unknown");
	store_free(s);
}

static void
sums_equal(const struct store_copy_report *a, const struct store_copy_report *b)
{
	assert_int_equal(a->nsums, b->nsums);
	for (size_t i = 0; i < a->nsums; i++) {
		assert_string_equal(a->sums[i].table, b->sums[i].table);
		assert_int_equal(a->sums[i].rows, b->sums[i].rows);
		assert_string_equal(a->sums[i].sha256, b->sums[i].sha256);
		assert_int_equal(a->sums[i].counter, b->sums[i].counter);
	}
}

/* SQLite -> destination (PostgreSQL on the pg run) -> SQLite: the same
 * rows and digests, states kept but in flight made due, the audit
 * chain verified on the copies; a destination with data refused. */
static void
test_copy_round_trip(void **state)
{
	struct fixture *f = *state;
	struct store_copy_report rep, back;
	struct store_audit_check chk;
	struct store *a, *b, *c;
	unsigned char secret[32];

	a = open_store(f->path[0], false, false);
	populate(a);
	assert_int_equal(state_of(a, "m1", R1), STORE_INFLIGHT);
	memcpy(secret, store_index_secret(a), sizeof(secret));
	store_free(a);
	a = open_store(f->path[0], false, true);
	b = open_store(f->path[1], on_pg, false);
	assert_int_equal(store_copy_run(a, b, false, &rep), GW_OK);
	assert_true(rep.equal);
	assert_int_equal(rep.nsums, 7);
	assert_string_equal(rep.sums[0].table, "messages");
	assert_int_equal(rep.sums[0].rows, 6);
	assert_int_equal(rep.sums[0].counter, 6);
	assert_string_equal(rep.sums[1].table, "outbox");
	assert_int_equal(rep.sums[1].rows, 12);
	assert_string_equal(rep.sums[5].table, "audit");
	assert_int_equal(rep.sums[5].rows, 3);
	assert_int_equal(rep.sums[5].counter, 3);
	assert_string_equal(rep.sums[6].table, "rep_find");
	assert_int_equal(rep.sums[6].rows, 2);

	/* On the copy: states, the chain, the index secret. */
	assert_int_equal(state_of(b, "m0", R1), STORE_DELIVERED);
	assert_int_equal(state_of(b, "m1", R1), STORE_DUE);
	assert_int_equal(state_of(b, "m2", R1), STORE_DUE);
	assert_int_equal(state_of(b, "m0", R2), STORE_DUE);
	assert_int_equal(store_audit_verify(b, &chk), GW_OK);
	assert_int_equal(chk.records, 3);
	assert_int_equal(chk.broken_seq, 0);
	store_free(b);
	/* Reopened, the copy's secret is the source's. */
	b = open_store(f->path[1], on_pg, false);
	assert_memory_equal(secret, store_index_secret(b), sizeof(secret));
	{
		/* A new record chains on the copied head. */
		struct store_audit_rec r;

		memset(&r, 0, sizeof(r));
		r.at = T0 + 200;
		util_strlcpy(r.ura, R1, sizeof(r.ura));
		util_strlcpy(r.interaction, "read", sizeof(r.interaction));
		util_strlcpy(r.query, "/fhir/Patient/1", sizeof(r.query));
		r.status = 200;
		assert_int_equal(store_submit_audit(b, &r), GW_OK);
		store_flush(b);
		assert_int_equal(store_audit_verify(b, &chk), GW_OK);
		assert_int_equal(chk.records, 4);
		assert_int_equal(chk.last_seq, 4);
		assert_int_equal(chk.broken_seq, 0);
	}

	/* On PostgreSQL, b's writer thread holds a second connection: a
	   gateway's session on the destination, refused even with force.
	   (SQLite: the command line takes the file's STORE.lock.) */
	if (on_pg) {
		assert_int_equal(store_copy_run(a, b, true, &back), GW_DENIED);
		assert_string_not_equal(back.what, "0");
	}
	store_free(b);
	b = open_store(f->path[1], on_pg, false);

	/* The destination has data now: refused, and unchanged. */
	assert_int_equal(store_copy_run(a, b, false, &back), GW_EXISTS);
	assert_string_equal(back.what, "messages");
	assert_int_equal(store_audit_verify(b, &chk), GW_OK);
	assert_int_equal(chk.records, 4);
	/* --force: replaced by the source's rows (audit included). */
	assert_int_equal(store_copy_run(a, b, true, &back), GW_OK);
	sums_equal(&rep, &back);
	assert_int_equal(store_audit_verify(b, &chk), GW_OK);
	assert_int_equal(chk.records, 3);
	store_free(b);

	/* And back to SQLite: the same digests. */
	b = open_store(f->path[1], on_pg, true);
	c = open_store(f->path[2], false, false);
	assert_int_equal(store_copy_run(b, c, false, &back), GW_OK);
	sums_equal(&rep, &back);
	store_free(c);
	store_free(b);
	store_free(a);
}

/* The read-back check is not taken on trust: a destination that
 * changes rows as they arrive (here a trigger) fails it, and nothing is
 * committed. */
static void
test_changed_rows_fail_the_check(void **state)
{
	struct fixture *f = *state;
	struct store_copy_report rep;
	struct store *a, *b;
	int64_t rows = -1;

	a = open_store(f->path[0], false, false);
	populate(a);
	store_free(a);
	b = open_store(f->path[1], false, false);
	store_free(b);
	sq_sql(f->path[1], "CREATE TRIGGER tamper AFTER INSERT ON outbox"
			   " BEGIN UPDATE outbox SET attempts = attempts + 1"
			   " WHERE message_seq = NEW.message_seq AND"
			   " receiver_ura = NEW.receiver_ura; END");
	a = open_store(f->path[0], false, true);
	b = open_store(f->path[1], false, false);
	assert_int_equal(store_copy_run(a, b, false, &rep), GW_PERM);
	assert_false(rep.equal);
	assert_string_equal(rep.sums[0].table, "messages");
	assert_string_equal(rep.sums[0].sha256, rep.sums[0].dest_sha256);
	assert_string_equal(rep.sums[1].table, "outbox");
	assert_int_equal(rep.sums[1].rows, rep.sums[1].dest_rows);
	assert_string_not_equal(rep.sums[1].sha256, rep.sums[1].dest_sha256);
	store_free(b);
	store_free(a);
	{
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_open(f->path[1], &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db,
						    "SELECT (SELECT count(*)"
						    " FROM messages) + (SELECT"
						    " count(*) FROM outbox)",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		rows = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	assert_int_equal(rows, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_table_list_covers_schema,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_table_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_copy_round_trip, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_changed_rows_fail_the_check,
					    setup, teardown),
	};
	int failed;

	failed =
	    cmocka_run_group_tests_name("store-copy-sqlite", tests, NULL, NULL);
	pg_url = getenv("PZPGW_TEST_PG_URL");
	pg_pwfile = getenv("PZPGW_TEST_PG_PASSWORD_FILE");
	if (pg_url == NULL || pg_url[0] == '\0') {
		printf("store-copy-postgresql: skipped (PZPGW_TEST_PG_URL "
		       "unset; make test-unit-pg starts a server)\n");
		return failed;
	}
	on_pg = true;
	failed += cmocka_run_group_tests_name("store-copy-postgresql", tests,
					      NULL, NULL);
	return failed;
}
