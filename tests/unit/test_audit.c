/*
 * The audit trail against real SQLite files: the hash chain, records
 * written with an accept in its transaction, append-only triggers, and
 * store_audit_verify finding records deleted, altered or reordered with
 * the sqlite3 library behind the store's back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

#define GP	"90000003"
#define SENDER	"90000009"
#define BSN	"999911120"
#define T0	1700000000000LL
#define NRECORD 5

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_options o = {0};

	assert_non_null(f);
	util_strlcpy(f->dir, "/tmp/pzpgw-audit-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	o.path = f->path;
	o.create = true;
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	const char *sfx[] = {"store.db", "store.db-wal", "store.db-shm",
			     "store.db" STORE_MARKER_SUFFIX};
	char p[160];

	store_free(f->s);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(sfx); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Run sql on the store file behind the store's back; the SQLite result
 * code, with the message in err (may be NULL). */
static int
sql_run(const char *path, const char *sql, char *err, size_t n)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (err != NULL)
		util_strlcpy(err, msg != NULL ? msg : "", n);
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc;
}

static struct store_audit_rec
rec(const char *interaction, const char *query, unsigned count, int status)
{
	struct store_audit_rec r;

	memset(&r, 0, sizeof(r));
	util_strlcpy(r.ura, GP, sizeof(r.ura));
	util_strlcpy(r.cert_serial, "1A2B", sizeof(r.cert_serial));
	util_strlcpy(r.cert_issuer, "CN=Test CA,O=Test", sizeof(r.cert_issuer));
	util_strlcpy(r.bsn, BSN, sizeof(r.bsn));
	util_strlcpy(r.interaction, interaction, sizeof(r.interaction));
	util_strlcpy(r.query, query, sizeof(r.query));
	util_strlcpy(r.request_id, "req-1", sizeof(r.request_id));
	r.count = count;
	r.status = status;
	return r;
}

/* NRECORD reads through the writer thread, committed. */
static void
submit_reads(struct store *s)
{
	char q[64];

	for (int i = 0; i < NRECORD; i++) {
		struct store_audit_rec r;

		snprintf(q, sizeof(q), "/fhir/Consent?_count=%d", i);
		r = rec("search-type", q, (unsigned)i, 200);
		r.at = T0 + i;
		assert_int_equal(store_submit_audit(s, &r), GW_OK);
	}
	store_flush(s);
}

static void
expect_broken(struct store *s, int64_t seq, const char *word)
{
	struct store_audit_check chk;

	assert_int_equal(store_audit_verify(s, &chk), GW_INVALID);
	print_message("verify: seq %lld: %s\n", (long long)chk.broken_seq,
		      chk.problem);
	assert_int_equal(chk.broken_seq, seq);
	assert_non_null(strstr(chk.problem, word));
}

/* The canonical form is fixed (README): a record an auditor hashes with
 * other tools gives this value (computed with Python's hashlib). */
static void
test_hash_vector(void **state)
{
	struct store_audit_rec r =
	    rec("search-type", "/fhir/Consent?patient=Patient/abc", 2, 200);
	char h[65];

	(void)state;
	r.seq = 1;
	r.at = T0;
	util_strlcpy(r.prev_hash, STORE_AUDIT_GENESIS, sizeof(r.prev_hash));
	store_audit_hash(&r, h);
	assert_string_equal(h, "f34e0ee70d5b3d63e183b73e843fe12c7eda3567f5b617"
			       "1b3baae2e649a451f7");
	/* Every field counts, also where a separator would be ambiguous. */
	util_strlcpy(r.cert_issuer, "CN=Test CA,O=Tes", sizeof(r.cert_issuer));
	util_strlcpy(r.bsn, "t" BSN, sizeof(r.bsn));
	store_audit_hash(&r, h);
	assert_string_not_equal(h, "f34e0ee70d5b3d63e183b73e843fe12c7eda3567f5"
				   "b6171b3baae2e649a451f7");
}

static void
test_chain(void **state)
{
	struct fixture *f = *state;
	struct store_audit_filter flt = {0};
	struct store_audit_rec *v = NULL;
	struct store_audit_check chk;
	char h[65];
	size_t n = 0;

	/* An empty trail holds. */
	assert_int_equal(store_audit_verify(f->s, &chk), GW_OK);
	assert_int_equal(chk.records, 0);
	submit_reads(f->s);
	assert_int_equal(store_audit_list(f->s, &flt, &v, &n), GW_OK);
	assert_int_equal(n, NRECORD);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].seq, (int64_t)i + 1);
		assert_int_equal(v[i].at, T0 + (int64_t)i);
		assert_int_equal(v[i].count, i);
		assert_string_equal(v[i].prev_hash, i == 0 ? STORE_AUDIT_GENESIS
							   : v[i - 1].hash);
		store_audit_hash(&v[i], h);
		assert_string_equal(v[i].hash, h);
	}
	free(v);
	assert_int_equal(store_audit_verify(f->s, &chk), GW_OK);
	assert_int_equal(chk.records, NRECORD);
	assert_int_equal(chk.first_seq, 1);
	assert_int_equal(chk.last_seq, NRECORD);

	/* Filters: organisation, patient, time, paging. */
	flt.ura = "90000004";
	assert_int_equal(store_audit_list(f->s, &flt, &v, &n), GW_OK);
	assert_int_equal(n, 0);
	free(v);
	flt.ura = GP;
	flt.bsn = BSN;
	flt.since = T0 + 3;
	assert_int_equal(store_audit_list(f->s, &flt, &v, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].seq, 4);
	free(v);
	flt.since = 0;
	flt.after_seq = 1;
	flt.limit = 2;
	assert_int_equal(store_audit_list(f->s, &flt, &v, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].seq, 2);
	assert_int_equal(v[1].seq, 3);
	free(v);

	/* Bad records are refused before they are queued. */
	{
		struct store_audit_rec bad = rec("", "/", 0, 200);

		assert_int_equal(store_submit_audit(f->s, &bad), GW_INVALID);
		bad = rec("read", "/", 0, 200);
		memset(bad.query, 'x', sizeof(bad.query));
		assert_int_equal(store_submit_audit(f->s, &bad), GW_INVALID);
	}
}

/* UPDATE and DELETE are refused whoever runs them. */
static void
test_append_only(void **state)
{
	struct fixture *f = *state;
	char err[160];

	submit_reads(f->s);
	assert_int_not_equal(sql_run(f->path,
				     "UPDATE audit SET count = 7 WHERE seq = 2",
				     err, sizeof(err)),
			     SQLITE_OK);
	assert_non_null(strstr(err, "append-only"));
	assert_int_not_equal(sql_run(f->path, "DELETE FROM audit WHERE seq = 2",
				     err, sizeof(err)),
			     SQLITE_OK);
	assert_non_null(strstr(err, "append-only"));
	assert_int_not_equal(
	    sql_run(f->path, "DELETE FROM audit", err, sizeof(err)), SQLITE_OK);
	assert_int_equal(sql_run(f->path, "SELECT 1", NULL, 0), SQLITE_OK);
	{
		struct store_audit_check chk;

		assert_int_equal(store_audit_verify(f->s, &chk), GW_OK);
		assert_int_equal(chk.records, NRECORD);
	}
}

/* Someone who drops the triggers first: every kind of change is found,
 * at the right record. */
static void
test_verify_delete(void **state)
{
	struct fixture *f = *state;

	submit_reads(f->s);
	assert_int_equal(sql_run(f->path,
				 "DROP TRIGGER audit_no_delete;"
				 "DELETE FROM audit WHERE seq = 3",
				 NULL, 0),
			 SQLITE_OK);
	expect_broken(f->s, 3, "deleted");
}

static void
test_verify_delete_first(void **state)
{
	struct fixture *f = *state;

	submit_reads(f->s);
	assert_int_equal(sql_run(f->path,
				 "DROP TRIGGER audit_no_delete;"
				 "DELETE FROM audit WHERE seq = 1",
				 NULL, 0),
			 SQLITE_OK);
	expect_broken(f->s, 1, "deleted");
}

/* The newest records deleted: seq keeps counting, so the gap stays
 * visible, also after more records are written. */
static void
test_verify_delete_last(void **state)
{
	struct fixture *f = *state;

	submit_reads(f->s);
	assert_int_equal(sql_run(f->path,
				 "DROP TRIGGER audit_no_delete;"
				 "DELETE FROM audit WHERE seq >= 4",
				 NULL, 0),
			 SQLITE_OK);
	expect_broken(f->s, 4, "at the end");
	submit_reads(f->s);
	expect_broken(f->s, 4, "deleted");
}

static void
test_verify_alter(void **state)
{
	struct fixture *f = *state;

	submit_reads(f->s);
	assert_int_equal(sql_run(f->path,
				 "DROP TRIGGER audit_no_update;"
				 "UPDATE audit SET ura = '90000004'"
				 " WHERE seq = 2",
				 NULL, 0),
			 SQLITE_OK);
	expect_broken(f->s, 2, "altered");
}

/* Altered and re-hashed: its successor's prev_hash gives it away. */
static void
test_verify_rehash(void **state)
{
	struct fixture *f = *state;
	struct store_audit_filter flt = {.after_seq = 1, .limit = 1};
	struct store_audit_rec *v = NULL;
	char sql[256], h[65];
	size_t n = 0;

	submit_reads(f->s);
	assert_int_equal(store_audit_list(f->s, &flt, &v, &n), GW_OK);
	assert_int_equal(n, 1);
	v[0].count = 99;
	store_audit_hash(&v[0], h);
	free(v);
	snprintf(sql, sizeof(sql),
		 "DROP TRIGGER audit_no_update;"
		 "UPDATE audit SET count = 99, hash = '%s' WHERE seq = 2",
		 h);
	assert_int_equal(sql_run(f->path, sql, NULL, 0), SQLITE_OK);
	expect_broken(f->s, 3, "chain broken");
}

/* Two records swapped (their seqs exchanged). */
static void
test_verify_reorder(void **state)
{
	struct fixture *f = *state;

	submit_reads(f->s);
	assert_int_equal(sql_run(f->path,
				 "DROP TRIGGER audit_no_update;"
				 "UPDATE audit SET seq = 100 WHERE seq = 2;"
				 "UPDATE audit SET seq = 2 WHERE seq = 3;"
				 "UPDATE audit SET seq = 3 WHERE seq = 100",
				 NULL, 0),
			 SQLITE_OK);
	expect_broken(f->s, 2, "altered");
}

static struct store_accept
inbound(const char *id, const struct store_audit_rec *audit, size_t naudit)
{
	struct store_accept r = {
	    .id = id,
	    .direction = STORE_INBOUND,
	    .sender_ura = SENDER,
	    .bundle_system = "urn:ietf:rfc:3986",
	    .bundle_value = id,
	    .patient_key = "p",
	    .fhir_version = "4.0.1",
	    .doc = "{\"resourceType\":\"Bundle\"}",
	    .doc_len = 25,
	    .sha256 = "ab12",
	    .accepted_at = T0 + 1000,
	    .answer_status = 202,
	    .audit = audit,
	    .naudit = naudit,
	};
	return r;
}

static long long
count_rows(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

struct acks {
	size_t calls, ok, exists;
};

static void
on_done(void *arg, const struct store_result *res)
{
	struct acks *a = arg;

	a->calls++;
	a->ok += res->err == GW_OK;
	a->exists += res->err == GW_EXISTS;
}

static void
pump(struct store *s, struct acks *a, size_t want)
{
	struct pollfd p = {.fd = store_notify_fd(s), .events = POLLIN};
	int64_t until = util_wall_ms() + 30000;

	while (a->calls < want) {
		assert_true(util_wall_ms() < until);
		if (poll(&p, 1, 1000) > 0)
			store_dispatch(s);
	}
}

/* A message for local receivers is recorded as "create" in the
 * transaction that stores it; a duplicate stores and records nothing. */
static void
test_accept_create(void **state)
{
	struct fixture *f = *state;
	struct store_audit_rec cr[2] = {
	    rec("create", "POST /fhir/$process-message receiver=" GP, 7, 202),
	    rec("create", "POST /fhir/$process-message receiver=90000004", 7,
		202)};
	struct store_audit_filter flt = {0};
	struct store_audit_rec *v = NULL;
	struct store_audit_check chk;
	struct store_result res;
	struct store_accept r;
	struct acks a = {0};
	size_t n = 0;

	util_strlcpy(cr[1].ura, "90000004", sizeof(cr[1].ura));
	r = inbound("m1", cr, 2);
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	r = inbound("m1-again", cr, 2);
	r.bundle_value = "m1";
	assert_int_equal(store_accept(f->s, &r, &res), GW_EXISTS);
	store_result_cleanup(&res);
	assert_int_equal(store_audit_list(f->s, &flt, &v, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].interaction, "create");
	assert_int_equal(v[0].at, T0 + 1000); /* the accept's time */
	assert_string_equal(v[1].ura, "90000004");
	free(v);

	/* Through the writer: accepts and reads interleaved, one chain. */
	for (int i = 0; i < 200; i++) {
		char id[16];

		snprintf(id, sizeof(id), "w%d", i);
		r = inbound(id, cr, 1);
		r.accepted_at = 0;
		assert_int_equal(store_submit_accept(f->s, &r, on_done, &a),
				 GW_OK);
		{
			struct store_audit_rec rd =
			    rec("read", "/fhir/x", 1, 200);

			assert_int_equal(store_submit_audit(f->s, &rd), GW_OK);
		}
	}
	pump(f->s, &a, 200);
	store_flush(f->s);
	assert_int_equal(a.ok, 200);
	assert_int_equal(store_audit_verify(f->s, &chk), GW_OK);
	assert_int_equal(chk.records, 2 + 400);
	assert_int_equal(
	    count_rows(
		f->path,
		"SELECT count(*) FROM audit WHERE interaction = 'create'"),
	    202);

	/* A malformed record refuses the accept. */
	cr[0].interaction[0] = '\0';
	r = inbound("m2", cr, 1);
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	store_result_cleanup(&res);
}

/* While the store cannot be written the records wait in order, the
 * queue fills and store_submit_audit refuses; then they are written,
 * none lost. */
static void
test_retry_and_full(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, .queue_max = 8, .busy_timeout_ms = 20};
	struct store_audit_check chk;
	struct store *s = NULL;
	sqlite3 *db = NULL;
	size_t queued = 0;
	enum gw_err err = GW_OK;

	assert_int_equal(store_open(&o, &s), GW_OK);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	for (int i = 0; i < 100 && err == GW_OK; i++) {
		struct store_audit_rec r = rec("read", "/fhir/Goal/1", 1, 200);

		if ((err = store_submit_audit(s, &r)) == GW_OK)
			queued++;
		nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
	}
	assert_int_equal(err, GW_TEMP);
	print_message("queued %zu records before GW_TEMP\n", queued);
	assert_true(queued >= 8 && queued < 100);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	store_flush(s);
	assert_int_equal(store_audit_verify(s, &chk), GW_OK);
	assert_int_equal(chk.records, queued);
	store_free(s);
}

/* The audit table's row count read behind the store's back. */
static long long
audit_rows(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Records submitted one by one, a millisecond apart (a pull API under
 * load), share commits: the writer gathers them for a few milliseconds,
 * so the WAL grows by fewer pages than there are records (one commit per
 * record writes at least one page each). They land without a flush, and
 * a flush writes what is gathered at once. */
static void
test_gather(void **state)
{
	struct fixture *f = *state;
	char wal[160];
	struct stat sb;
	long long frames, one, before;
	int i;

	/* The pages of one commit of one record. */
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	{
		struct store_audit_rec r = rec("read", "/fhir/Goal/0", 1, 200);

		assert_int_equal(stat(wal, &sb), 0);
		before = (long long)sb.st_size;
		assert_int_equal(store_submit_audit(f->s, &r), GW_OK);
		store_flush(f->s);
		assert_int_equal(stat(wal, &sb), 0);
		one = ((long long)sb.st_size - before) / (4096 + 24);
		before = (long long)sb.st_size;
	}
	for (i = 0; i < 40; i++) {
		struct store_audit_rec r = rec("read", "/fhir/Goal/1", 1, 200);

		assert_int_equal(store_submit_audit(f->s, &r), GW_OK);
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	for (i = 0; i < 500 && audit_rows(f->path) < 41; i++)
		nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
	assert_int_equal(audit_rows(f->path), 41);
	assert_int_equal(stat(wal, &sb), 0);
	frames = ((long long)sb.st_size - before) / (4096 + 24);
	print_message("one record: %lld WAL pages; 40 records: %lld, "
		      "want at most 15 commits' worth\n",
		      one, frames);
	assert_true(one > 0 && frames <= 15 * one);
	{
		struct store_audit_rec r = rec("read", "/fhir/Goal/2", 1, 200);

		assert_int_equal(store_submit_audit(f->s, &r), GW_OK);
	}
	store_flush(f->s);
	assert_int_equal(audit_rows(f->path), 42);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_vector),
	    cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_append_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_delete, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_verify_delete_first, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_verify_delete_last, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_verify_alter, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_rehash, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_verify_reorder, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_accept_create, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_retry_and_full, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_gather, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
