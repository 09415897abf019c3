/*
 * Store tests against real SQLite files in a temporary directory: accept,
 * idempotency, ordered claims, backoff, operator actions, pruning,
 * migrations, group commit and survival of kill -9. With
 * PZPGW_TEST_PG_URL (and PZPGW_TEST_PG_PASSWORD_FILE) set, as `make
 * test-unit-pg` does with a server of tests/pg/pg.sh, the same tests run
 * a second time against PostgreSQL (store_pg.c), each on an empty schema;
 * the few about SQLite's own files are skipped there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libpq-fe.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "metrics.h"
#include "store.h"
#include "util.h"
#include "store_v1.h"

#define R1     "00000001"
#define R2     "00000002"
#define SENDER "12345678"
#define T0     1700000000000LL

/* The PostgreSQL run: the server from the environment. */
static bool on_pg;
static const char *pg_url, *pg_pwfile;

/* Options naming the backend of this run (with a store's path). */
#define TEST_PG .pg_url = on_pg ? pg_url : NULL, .pg_password_file = pg_pwfile

static void
pg_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* A connection of the test itself to the server. */
static PGconn *
pg_connect(void)
{
	char pw[256] = "";
	const char *keys[] = {"dbname", "password", NULL};
	const char *vals[] = {pg_url, pw, NULL};
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
	return c;
}

/* Run sql on the server; the first column of the first row, or -1. */
static int64_t
pg_sql(const char *sql)
{
	PGconn *c = pg_connect();
	PGresult *r = PQexec(c, sql);
	int64_t v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		 PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("postgresql: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return v;
}

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
	util_strlcpy(f->dir, "/tmp/pzpgw-store-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	o.path = f->path;
	o.create = true;
	if (on_pg) {
		/* Every test on an empty database. */
		(void)pg_sql("DROP SCHEMA IF EXISTS public CASCADE;"
			     " CREATE SCHEMA public");
		o.pg_url = pg_url;
		o.pg_password_file = pg_pwfile;
	}
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	*state = f;
	return 0;
}

static void
rm_dir(const char *dir)
{
	const char *sfx[] = {"store.db",
			     "store.db-wal",
			     "store.db-shm",
			     "store.db" STORE_MARKER_SUFFIX,
			     "acks",
			     "pw",
			     "b.db",
			     "b.db.lock",
			     "b.db" STORE_MARKER_SUFFIX};
	char p[160];

	for (size_t i = 0; i < UTIL_ARRAY_LEN(sfx); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_free(f->s);
	rm_dir(f->dir);
	free(f);
	return 0;
}

/* A request for message id about patient, addressed to receivers. */
static struct store_accept
req(const char *id, const char *value, const char *patient,
    const char *const *receivers, size_t n, int64_t at)
{
	struct store_accept r = {
	    .id = id,
	    .direction = STORE_OUTBOUND,
	    .sender_ura = SENDER,
	    .bundle_system = "urn:ietf:rfc:3986",
	    .bundle_value = value,
	    .patient_key = patient,
	    .fhir_version = "4.0.1",
	    .doc = "{\"resourceType\":\"Bundle\"}",
	    .doc_len = 25,
	    .jws = "eyJhbGciOiJFUzI1NiJ9..sig",
	    .sha256 = "ab12",
	    .accepted_at = at,
	    .answer_status = 202,
	    .answer_body = "{\"id\":\"x\"}",
	    .receivers = receivers,
	    .nreceivers = n,
	};
	return r;
}

static void
must_accept(struct store *s, const char *id, const char *patient,
	    const char *receiver, int64_t at)
{
	const char *rc[1] = {receiver};
	struct store_accept r = req(id, id, patient, rc, 1, at);
	struct store_result res;

	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);
}

/* Claim everything claimable at now; the ids in claim order joined by
 * spaces into out. */
static void
claim_ids(struct store *s, const char *receiver, int64_t now, char *out,
	  size_t n)
{
	struct store_row *rows = NULL;
	size_t nrows = 0;

	assert_int_equal(store_claim(s, receiver, now, now, 100, &rows, &nrows),
			 GW_OK);
	out[0] = '\0';
	for (size_t i = 0; i < nrows; i++) {
		assert_int_equal(rows[i].state, STORE_INFLIGHT);
		if (i > 0)
			strncat(out, " ", n - strlen(out) - 1);
		strncat(out, rows[i].id, n - strlen(out) - 1);
		strncat(out, "/", n - strlen(out) - 1);
		strncat(out, rows[i].receiver, n - strlen(out) - 1);
	}
	store_rows_free(rows, nrows);
}

static enum store_state
row_state(struct store *s, const char *id, const char *receiver,
	  struct store_row *copy)
{
	struct store_message *m = NULL;
	enum store_state st = STORE_STATE_COUNT;

	assert_int_equal(store_show(s, id, false, &m), GW_OK);
	for (size_t i = 0; i < m->nrows; i++) {
		if (strcmp(m->rows[i].receiver, receiver) == 0) {
			st = m->rows[i].state;
			if (copy != NULL) {
				*copy = m->rows[i];
				copy->last_error = NULL;
				copy->outcome = NULL;
			}
		}
	}
	store_message_free(m);
	return st;
}

static void
test_accept_read_back(void **state)
{
	struct fixture *f = *state;
	const char *rc[2] = {R1, R2};
	struct store_accept r = req("m1", "b1", "p1", rc, 2, T0);
	struct store_message *m = NULL;
	struct store_result res;

	assert_int_equal(store_schema_version(f->s), STORE_SQLITE_SCHEMA);
	assert_string_equal(store_backend(f->s),
			    on_pg ? "postgresql" : "sqlite");
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	assert_string_equal(res.id, "m1");
	assert_int_equal(res.answer_status, 202);
	store_result_cleanup(&res);

	assert_int_equal(store_get_document(f->s, "m1", &m), GW_OK);
	assert_int_equal(m->doc_len, r.doc_len);
	assert_memory_equal(m->doc, r.doc, r.doc_len);
	assert_string_equal(m->jws, r.jws);
	assert_string_equal(m->sha256, "ab12");
	assert_string_equal(m->sender, SENDER);
	assert_string_equal(m->bundle_value, "b1");
	assert_string_equal(m->fhir_version, "4.0.1");
	assert_int_equal(m->accepted_at, T0);
	assert_int_equal(m->nrows, 0);
	store_message_free(m);

	/* show: rows, and no content unless asked. */
	assert_int_equal(store_show(f->s, "m1", false, &m), GW_OK);
	assert_null(m->doc);
	assert_null(m->jws);
	assert_int_equal(m->nrows, 2);
	assert_string_equal(m->rows[0].receiver, R1);
	assert_string_equal(m->rows[1].receiver, R2);
	assert_int_equal(m->rows[0].state, STORE_DUE);
	assert_int_equal(m->rows[0].next_attempt_at, T0);
	store_message_free(m);

	assert_int_equal(store_get_document(f->s, "nope", &m), GW_NOTFOUND);
	assert_null(m);

	/* Malformed requests are refused before the database. */
	r.id = "m2";
	r.bundle_value = "b2";
	r.sender_ura = "123";
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	r.sender_ura = SENDER;
	rc[1] = R1; /* the same receiver twice */
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	r.nreceivers = 0; /* outbound without receivers */
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	/* Inbound needs no receivers. */
	r.direction = STORE_INBOUND;
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
}

static void
test_duplicate(void **state)
{
	struct fixture *f = *state;
	const char *rc[1] = {R1};
	struct store_accept r = req("m1", "b1", "p1", rc, 1, T0);
	struct store_row *rows = NULL;
	struct store_filter flt = {.state = -1};
	struct store_result res;
	size_t n;

	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	/* Same sender and identifier, new id and answer: the original. */
	r.id = "m2";
	r.answer_status = 500;
	r.answer_body = "other";
	assert_int_equal(store_accept(f->s, &r, &res), GW_EXISTS);
	assert_string_equal(res.id, "m1");
	assert_int_equal(res.answer_status, 202);
	assert_string_equal(res.answer_body, "{\"id\":\"x\"}");
	store_result_cleanup(&res);
	assert_int_equal(store_list(f->s, &flt, &rows, &n), GW_OK);
	assert_int_equal(n, 1);
	store_rows_free(rows, n);

	/* Another identifier system or direction is another key. */
	r.bundle_system = "urn:other";
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	r.id = "m3";
	r.bundle_system = "urn:ietf:rfc:3986";
	r.direction = STORE_INBOUND;
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	/* A reused message id with a new key is refused, nothing stored. */
	r.bundle_value = "b9";
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	store_result_cleanup(&res);
	{
		struct store_message *m = NULL;

		assert_int_equal(store_show(f->s, "m3", false, &m), GW_OK);
		assert_string_equal(m->bundle_value, "b1");
		store_message_free(m);
	}
}

static void
test_order(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	char got[512];
	int64_t at;

	must_accept(s, "a1", "p1", R1, T0);
	must_accept(s, "a2", "p1", R1, T0 + 1);
	must_accept(s, "b1", "p2", R1, T0 + 2);
	must_accept(s, "c1", "p1", R2, T0 + 3);
	must_accept(s, "a3", "p1", R1, T0 + 4);

	assert_int_equal(store_next_due_at(s, &at), GW_OK);
	assert_int_equal(at, T0);
	/* Only the first row per (receiver, patient) is claimable. */
	claim_ids(s, NULL, T0 + 10, got, sizeof(got));
	assert_string_equal(got, "a1/" R1 " b1/" R1 " c1/" R2);
	claim_ids(s, NULL, T0 + 10, got, sizeof(got));
	assert_string_equal(got, "");
	/* Nothing claimable while the heads are in flight (on
	   PostgreSQL: until their leases run out). */
	if (on_pg) {
		assert_int_equal(store_next_due_at(s, &at), GW_OK);
		assert_true(at > T0 + 10);
	} else {
		assert_int_equal(store_next_due_at(s, &at), GW_NOTFOUND);
	}

	/* A temporary failure keeps a2 waiting behind a1. */
	assert_int_equal(store_failed_temp(s, "a1", R1, 503, "busy", T0 + 1000),
			 GW_OK);
	claim_ids(s, NULL, T0 + 20, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(store_next_due_at(s, &at), GW_OK);
	assert_int_equal(at, T0 + 1000);
	assert_int_equal(store_next_due_at_for(s, R1, &at), GW_OK);
	assert_int_equal(at, T0 + 1000);
	/* c1 for R2 is in flight: nothing waits for R2 (on PostgreSQL:
	   but its lease's end). */
	if (on_pg) {
		assert_int_equal(store_next_due_at_for(s, R2, &at), GW_OK);
		assert_true(at > T0 + 1000);
	} else {
		assert_int_equal(store_next_due_at_for(s, R2, &at),
				 GW_NOTFOUND);
	}
	claim_ids(s, R1, T0 + 1000, got, sizeof(got));
	assert_string_equal(got, "a1/" R1);
	assert_int_equal(store_delivered(s, "a1", R1, 200, T0 + 1001), GW_OK);
	/* Delivered twice is refused: the row is no longer in flight. */
	assert_int_equal(store_delivered(s, "a1", R1, 200, T0 + 1001),
			 GW_NOTFOUND);
	claim_ids(s, R1, T0 + 1002, got, sizeof(got));
	assert_string_equal(got, "a2/" R1);
	/* A dead row releases the next one as well. */
	assert_int_equal(store_failed_perm(s, "a2", R1, 400, "rejected",
					   "{\"resourceType\":"
					   "\"OperationOutcome\"}"),
			 GW_OK);
	claim_ids(s, R1, T0 + 1003, got, sizeof(got));
	assert_string_equal(got, "a3/" R1);
}

static void
test_order_held_blocks(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	char got[256];

	must_accept(s, "a1", "p1", R1, T0);
	must_accept(s, "a2", "p1", R1, T0 + 1);
	assert_int_equal(store_act(s, "a1", NULL, STORE_HOLD, T0, NULL), GW_OK);
	claim_ids(s, NULL, T0 + 10, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(store_act(s, "a1", NULL, STORE_RELEASE, T0 + 11, NULL),
			 GW_OK);
	claim_ids(s, NULL, T0 + 11, got, sizeof(got));
	assert_string_equal(got, "a1/" R1);
}

/* Lanes: replay puts an earlier row ahead of later ones; a held row in
 * the middle of a lane stops what follows; recover repairs hand-made
 * lane flags. */
static void
test_lanes(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	struct store_row row;
	char got[256], sql[256];
	sqlite3 *db = NULL;

	must_accept(s, "a1", "p1", R1, T0);
	must_accept(s, "a2", "p1", R1, T0 + 1);
	must_accept(s, "a3", "p1", R1, T0 + 2);
	assert_int_equal(row_state(s, "a1", R1, &row), STORE_DUE);
	assert_false(row.waiting);
	assert_int_equal(row_state(s, "a2", R1, &row), STORE_DUE);
	assert_true(row.waiting);

	/* a2 held: after a1 is delivered a2 leads the lane, a3 waits. */
	assert_int_equal(store_act(s, "a2", NULL, STORE_HOLD, T0, NULL), GW_OK);
	claim_ids(s, NULL, T0 + 10, got, sizeof(got));
	assert_string_equal(got, "a1/" R1);
	assert_int_equal(store_delivered(s, "a1", R1, 200, T0 + 11), GW_OK);
	claim_ids(s, NULL, T0 + 12, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(store_act(s, "a2", NULL, STORE_RELEASE, T0 + 13, NULL),
			 GW_OK);
	claim_ids(s, NULL, T0 + 13, got, sizeof(got));
	assert_string_equal(got, "a2/" R1);
	assert_int_equal(store_delivered(s, "a2", R1, 200, T0 + 14), GW_OK);

	/* Replay of a1 while a3 is due: a1 goes first again. */
	assert_int_equal(store_act(s, "a1", R1, STORE_REPLAY, T0 + 15, NULL),
			 GW_OK);
	assert_int_equal(row_state(s, "a3", R1, &row), STORE_DUE);
	assert_true(row.waiting);
	claim_ids(s, NULL, T0 + 20, got, sizeof(got));
	assert_string_equal(got, "a1/" R1);
	assert_int_equal(store_delivered(s, "a1", R1, 200, T0 + 21), GW_OK);

	/* Flags written by hand (wrongly): the claim still keeps the order,
	   and recover repairs them. */
	must_accept(s, "a4", "p1", R1, T0 + 22);
	snprintf(sql, sizeof(sql), "UPDATE outbox SET waiting = 1 - waiting");
	if (on_pg) {
		(void)pg_sql(sql);
	} else {
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
				 SQLITE_OK);
		sqlite3_close(db);
	}
	claim_ids(s, NULL, T0 + 30, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(store_recover(s, NULL), GW_OK);
	claim_ids(s, NULL, T0 + 30, got, sizeof(got));
	assert_string_equal(got, "a3/" R1);
	assert_int_equal(row_state(s, "a4", R1, &row), STORE_DUE);
	assert_true(row.waiting);
}

static void
test_claim_limit(void **state)
{
	struct fixture *f = *state;
	struct store_row *rows = NULL;
	char id[16], pat[16];
	size_t n;

	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		snprintf(pat, sizeof(pat), "p%d", i);
		must_accept(f->s, id, pat, i % 2 ? R1 : R2, T0 + i);
	}
	assert_int_equal(
	    store_claim(f->s, R1, T0 + 100, T0 + 100, 3, &rows, &n), GW_OK);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(rows[i].receiver, R1);
		assert_int_equal(rows[i].attempts, 1);
		assert_int_equal(rows[i].first_attempt_at, T0 + 100);
	}
	assert_string_equal(rows[0].id, "m1");
	assert_string_equal(rows[2].id, "m5");
	store_rows_free(rows, n);
	/* Not yet due. */
	assert_int_equal(store_claim(f->s, R2, T0 - 1, T0 - 1, 10, &rows, &n),
			 GW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(
	    store_claim(f->s, R2, T0 + 100, T0 + 100, 10, &rows, &n), GW_OK);
	assert_int_equal(n, 5);
	store_rows_free(rows, n);
}

/* A held receiver's probe claims its lane head before the row is due
 * (due_by far ahead): the attempt time recorded is the real one. */
static void
test_claim_early_attempt_time(void **state)
{
	struct fixture *f = *state;
	struct store_row *rows = NULL, row;
	size_t n;

	must_accept(f->s, "e1", "p1", R1, T0);
	assert_int_equal(store_claim(f->s, R1, INT64_MAX, T0 + 5, 1, &rows, &n),
			 GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].last_attempt_at, T0 + 5);
	store_rows_free(rows, n);
	assert_int_equal(row_state(f->s, "e1", R1, &row), STORE_INFLIGHT);
	if (row.last_attempt_at != T0 + 5 || row.first_attempt_at != T0 + 5)
		fail_msg("got last %lld first %lld, want %lld",
			 (long long)row.last_attempt_at,
			 (long long)row.first_attempt_at, (long long)(T0 + 5));
}

static void
test_backoff(void **state)
{
	const struct store_backoff b = {1000, 3600000, 7LL * 86400000};
	const struct {
		unsigned attempts;
		int64_t since, now;
		uint32_t rnd;
		bool alive;
		int64_t want_min, want_max; /* delay bounds */
	} cases[] = {
	    {1, 0, 0, 0, true, 1000, 1000},
	    {1, 0, 0, 1000, true, 1000, 1000}, /* jitter floored at min */
	    {2, 0, 0, 0, true, 2000, 2000},
	    {2, 0, 0, 1000, true, 1500, 1500},
	    {3, 0, 10, 0, true, 4000, 4000},
	    {3, 0, 10, 500, true, 3500, 3500},
	    {12, 0, 0, 0, true, 2048000, 2048000},
	    {13, 0, 0, 0, true, 3600000, 3600000}, /* capped at max */
	    {13, 0, 0, 1000, true, 2700000, 2700000},
	    {200, 0, 0, 0, true, 3600000, 3600000}, /* no overflow */
	    {UINT32_MAX, 0, 0, 77, true, 2700000, 3600000},
	    /* Never past the maximum age; dead at it. */
	    {13, 0, 7LL * 86400000 - 10, 0, true, 10, 10},
	    {13, 0, 7LL * 86400000, 0, false, 0, 0},
	    {1, 5000, 7LL * 86400000 + 5000, 0, false, 0, 0},
	};
	int64_t next;

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		bool alive =
		    store_next_attempt(&b, cases[i].attempts, cases[i].since,
				       cases[i].now, cases[i].rnd, &next);
		if (alive != cases[i].alive)
			fail_msg("case %zu: alive got %d, want %d", i, alive,
				 cases[i].alive);
		if (!alive)
			continue;
		if (next - cases[i].now < cases[i].want_min ||
		    next - cases[i].now > cases[i].want_max)
			fail_msg("case %zu: delay got %lld, want %lld..%lld", i,
				 (long long)(next - cases[i].now),
				 (long long)cases[i].want_min,
				 (long long)cases[i].want_max);
	}
	/* Every jitter value stays within [3/4 d, d] of d = 8 s. */
	for (uint32_t r = 0; r < 3000; r += 7) {
		assert_true(store_next_attempt(&b, 4, 0, 0, r, &next));
		assert_in_range(next, 6000, 8000);
	}
}

static void
test_failures(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	struct store_message *m = NULL;
	struct store_row row;
	char got[128];

	must_accept(s, "m1", "p1", R1, T0);
	must_accept(s, "m2", "p2", R1, T0);
	claim_ids(s, NULL, T0, got, sizeof(got));
	assert_string_equal(got, "m1/" R1 " m2/" R1);

	assert_int_equal(
	    store_failed_temp(s, "m1", R1, 0, "connect refused", T0 + 5000),
	    GW_OK);
	assert_int_equal(row_state(s, "m1", R1, &row), STORE_DUE);
	assert_int_equal(row.attempts, 1);
	assert_int_equal(row.next_attempt_at, T0 + 5000);
	claim_ids(s, NULL, T0 + 4999, got, sizeof(got));
	assert_string_equal(got, "");
	claim_ids(s, NULL, T0 + 5000, got, sizeof(got));
	assert_string_equal(got, "m1/" R1);
	assert_int_equal(row_state(s, "m1", R1, &row), STORE_INFLIGHT);
	assert_int_equal(row.attempts, 2);
	assert_int_equal(row.first_attempt_at, T0);
	assert_int_equal(row.last_attempt_at, T0 + 5000);

	assert_int_equal(store_failed_perm(s, "m2", R1, 422, "rejected",
					   "{\"resourceType\":"
					   "\"OperationOutcome\"}"),
			 GW_OK);
	assert_int_equal(store_show(s, "m2", false, &m), GW_OK);
	assert_int_equal(m->rows[0].state, STORE_DEAD);
	assert_int_equal(m->rows[0].last_status, 422);
	assert_string_equal(m->rows[0].last_error, "rejected");
	assert_string_equal(m->rows[0].outcome,
			    "{\"resourceType\":\"OperationOutcome\"}");
	store_message_free(m);
	/* Results only apply to rows in flight. */
	assert_int_equal(store_failed_temp(s, "m2", R1, 500, "x", T0),
			 GW_NOTFOUND);
	assert_int_equal(store_delivered(s, "zz", R1, 200, T0), GW_NOTFOUND);
}

static void
test_recover(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path, TEST_PG};
	char got[128];
	size_t n = 99;

	must_accept(f->s, "m1", "p1", R1, T0);
	must_accept(f->s, "m2", "p2", R2, T0);
	claim_ids(f->s, NULL, T0, got, sizeof(got));
	assert_string_equal(got, "m1/" R1 " m2/" R2);
	/* A restart: the new process finds the rows in flight. */
	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	assert_int_equal(store_recover(f->s, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(row_state(f->s, "m1", R1, NULL), STORE_DUE);
	claim_ids(f->s, NULL, util_wall_ms(), got, sizeof(got));
	assert_string_equal(got, "m1/" R1 " m2/" R2);
	assert_int_equal(store_recover(f->s, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(store_recover(f->s, &n), GW_OK);
	assert_int_equal(n, 0);
}

static void
test_actions(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	const char *rc[2] = {R1, R2};
	struct store_accept r = req("m1", "b1", "p1", rc, 2, T0);
	struct store_result res;
	struct store_row row;
	char got[128];
	size_t n;

	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	assert_int_equal(store_act(s, "nope", NULL, STORE_RETRY, T0, &n),
			 GW_NOTFOUND);
	assert_int_equal(store_act(s, "m1", "99999999", STORE_RETRY, T0, &n),
			 GW_NOTFOUND);
	/* retry: due -> due now */
	assert_int_equal(store_act(s, "m1", R1, STORE_RETRY, T0 + 7, &n),
			 GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(row_state(s, "m1", R1, &row), STORE_DUE);
	assert_int_equal(row.next_attempt_at, T0 + 7);
	/* replay of a due row is not allowed */
	assert_int_equal(store_act(s, "m1", NULL, STORE_REPLAY, T0, &n),
			 GW_INVALID);
	assert_int_equal(store_act(s, "m1", NULL, STORE_RELEASE, T0, &n),
			 GW_INVALID);
	/* hold both rows; hold again is refused */
	assert_int_equal(store_act(s, "m1", NULL, STORE_HOLD, T0, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(store_act(s, "m1", R1, STORE_HOLD, T0, &n),
			 GW_INVALID);
	assert_int_equal(store_act(s, "m1", R1, STORE_RETRY, T0, &n),
			 GW_INVALID);
	claim_ids(s, NULL, T0 + 100, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(store_act(s, "m1", R2, STORE_RELEASE, T0 + 50, &n),
			 GW_OK);
	assert_int_equal(row_state(s, "m1", R1, NULL), STORE_HELD);
	claim_ids(s, NULL, T0 + 100, got, sizeof(got));
	assert_string_equal(got, "m1/" R2);
	assert_int_equal(store_delivered(s, "m1", R2, 201, T0 + 101), GW_OK);
	/* replay of a delivered row: due again, same id, counters reset */
	assert_int_equal(store_act(s, "m1", R2, STORE_REPLAY, T0 + 200, &n),
			 GW_OK);
	assert_int_equal(row_state(s, "m1", R2, &row), STORE_DUE);
	assert_int_equal(row.attempts, 0);
	assert_int_equal(row.replays, 1);
	assert_int_equal(row.delivered_at, 0);
	assert_int_equal(row.next_attempt_at, T0 + 200);
	/* replay of a dead row */
	claim_ids(s, NULL, T0 + 300, got, sizeof(got));
	assert_string_equal(got, "m1/" R2);
	assert_int_equal(store_failed_perm(s, "m1", R2, 400, "bad", NULL),
			 GW_OK);
	assert_int_equal(store_act(s, "m1", R2, STORE_REPLAY, T0 + 400, &n),
			 GW_OK);
	assert_int_equal(row_state(s, "m1", R2, &row), STORE_DUE);
	assert_int_equal(row.replays, 2);
}

static int64_t
sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (on_pg)
		return pg_sql(sql);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
test_prune(void **state)
{
	struct fixture *f = *state;
	struct store *s = f->s;
	const char *both[2] = {R1, R2};
	struct store_accept r;
	struct store_result res;
	struct store_message *m = NULL;
	char big[4096], id[16], got[4096];
	size_t n;

	memset(big, 'x', sizeof(big));
	/* old1, old2: delivered long ago; new: delivered recently;
	   dead: dead letter; mixed: one receiver delivered, one dead. */
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "old%d", i);
		must_accept(s, id, id, R1, T0);
	}
	must_accept(s, "new", "pn", R1, T0);
	must_accept(s, "dead", "pd", R1, T0);
	r = req("mixed", "mixed", "pm", both, 2, T0);
	r.doc = big;
	r.doc_len = sizeof(big);
	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	r = req("in", "in", "pi", NULL, 0, T0);
	r.direction = STORE_INBOUND;
	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);

	claim_ids(s, NULL, T0, got, sizeof(got));
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "old%d", i);
		assert_int_equal(store_delivered(s, id, R1, 200, T0 + 10),
				 GW_OK);
	}
	assert_int_equal(store_delivered(s, "new", R1, 200, T0 + 5000), GW_OK);
	assert_int_equal(store_failed_perm(s, "dead", R1, 400, "x", NULL),
			 GW_OK);
	assert_int_equal(store_delivered(s, "mixed", R1, 200, T0 + 10), GW_OK);
	assert_int_equal(store_failed_perm(s, "mixed", R2, 400, "x", NULL),
			 GW_OK);

	assert_int_equal(store_prune(s, T0 + 1000, &n), GW_OK);
	assert_int_equal(n, 40);
	assert_int_equal(store_show(s, "old0", false, &m), GW_NOTFOUND);
	const char *kept[] = {"new", "dead", "mixed", "in"};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(kept); i++) {
		assert_int_equal(store_show(s, kept[i], false, &m), GW_OK);
		store_message_free(m);
	}
	/* Outbox rows went with their messages; space was reclaimed. */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM outbox"), 4);
	if (!on_pg) {
		assert_int_equal(sql_int(f->path, "PRAGMA auto_vacuum"), 2);
		assert_int_equal(sql_int(f->path, "PRAGMA freelist_count"), 0);
	}
	assert_int_equal(store_prune(s, T0 + 1000, &n), GW_OK);
	assert_int_equal(n, 0);
	/* Dead letters stay however old. */
	assert_int_equal(store_prune(s, INT64_MAX, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_show(s, "dead", false, &m), GW_OK);
	store_message_free(m);
}

/* The daemon's retention (store_retention) on the upkeep thread: it
 * returns at once, removes what store_prune would in batches of
 * STORE_PRUNE_BATCH, and the roll-ups keep counting what it removed
 * (store_prune, the operator's purge, takes it out). */
static void
test_retention_batches(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, TEST_PG, .background_upkeep = true};
	struct store_message *m = NULL;
	const int n = STORE_PRUNE_BATCH + 50;
	char id[16], got[4096];
	uint64_t t0;
	size_t left;

	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		must_accept(f->s, id, id, R1, T0);
	}
	must_accept(f->s, "purged", "pp", R1, T0);
	for (int i = 0; i <= n / 100; i++) /* 100 a claim */
		claim_ids(f->s, NULL, T0, got, sizeof(got));
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		assert_int_equal(store_delivered(f->s, id, R1, 200, T0 + 10),
				 GW_OK);
	}
	assert_int_equal(store_delivered(f->s, "purged", R1, 200, T0 + 5000),
			 GW_OK);
	assert_int_equal(store_retention(f->s, T0 + 1000, 0), GW_OK);
	t0 = util_mono_ms();
	do {
		struct timespec ts = {0, 20000000};

		assert_true(util_mono_ms() - t0 < 20000);
		nanosleep(&ts, NULL);
		left = store_show(f->s, "r0", false, &m) == GW_OK;
		store_message_free(m);
		m = NULL;
		snprintf(id, sizeof(id), "r%d", n - 1);
		if (store_show(f->s, id, false, &m) == GW_OK)
			left++;
		store_message_free(m);
		m = NULL;
	} while (left > 0);
	assert_int_equal(store_show(f->s, "purged", false, &m), GW_OK);
	store_message_free(m);
	if (on_pg)
		return; /* the e2e tests read PostgreSQL's roll-ups */
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM messages"), 1);
	assert_int_equal(sql_int(f->path, "SELECT sum(n) FROM rep_msg"), n + 1);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM rep_pruning"),
			 0);
	assert_int_equal(store_prune(f->s, T0 + 6000, &left), GW_OK);
	assert_int_equal(left, 1);
	assert_int_equal(sql_int(f->path, "SELECT sum(n) FROM rep_msg"), n);
}

/* schema_v1: store_v1.h */

static void
make_db(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("sql: %s", msg);
	sqlite3_close(db);
}

/* queue_counts agrees with a count of the outbox itself. */
static void
check_counts(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	if (on_pg) /* no queue_counts there: stats count the outbox */
		return;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(
		db,
		"SELECT count(*) FROM (SELECT state, receiver_ura, count(*)"
		" AS c FROM outbox GROUP BY state, receiver_ura) g FULL JOIN"
		" (SELECT * FROM queue_counts WHERE n != 0) q"
		" USING (state, receiver_ura) WHERE q.n IS NOT g.c",
		-1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* A store opened for writing leaves its marker; a missing store with a
 * marker is not made again by create = auto. */
static void
test_marker(void **state)
{
	struct fixture *f = *state;
	struct config cfg = {.store_path = f->path, .store_create = "auto"};
	struct store_options o;
	char marker[200];
	struct stat sb;

	if (on_pg) {
		skip(); /* SQLite's files */
		return;
	}

	snprintf(marker, sizeof(marker), "%s%s", f->path, STORE_MARKER_SUFFIX);
	assert_int_equal(stat(marker, &sb), 0);
	assert_true(store_marked(f->path));
	store_options_from_config(&o, &cfg);
	assert_false(o.create);
	assert_int_equal(unlink(marker), 0);
	assert_false(store_marked(f->path));
	store_options_from_config(&o, &cfg);
	assert_true(o.create);
	cfg.store_create = "no";
	store_options_from_config(&o, &cfg);
	assert_false(o.create);
	cfg.store_create = "yes";
	assert_int_equal(symlink("/nonexistent", marker), 0);
	assert_true(store_marked(f->path)); /* there, though dangling */
	store_options_from_config(&o, &cfg);
	assert_true(o.create);
	assert_false(store_marked(":memory:"));
}

static void
test_migrate(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path, TEST_PG};
	struct store_row *rows = NULL;
	struct store *s = NULL;
	char got[128];
	size_t n;

	if (on_pg) {
		skip(); /* SQLite's files */
		return;
	}

	store_free(f->s);
	f->s = NULL;
	rm_dir(f->dir);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	/* Missing file without create. */
	assert_int_equal(store_open(&o, &s), GW_NOTFOUND);
	make_db(f->path, schema_v1);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SQLITE_SCHEMA);
	assert_int_equal(
	    store_list(f->s, &(struct store_filter){.state = -1}, &rows, &n),
	    GW_OK);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].id, "old-1");
	assert_int_equal(rows[0].attempts, 3);
	assert_int_equal(rows[0].replays, 0);
	/* The migration marked old-2 as waiting behind old-1. */
	assert_false(rows[0].waiting);
	assert_true(rows[1].waiting);
	store_rows_free(rows, n);
	/* The queue still works, in order. */
	claim_ids(f->s, NULL, 6000, got, sizeof(got));
	assert_string_equal(got, "old-1/" R1);
	must_accept(f->s, "new", "p1", R1, 7000);
	store_free(f->s);
	f->s = NULL;
	/* The counts the migration made match the rows it found. */
	check_counts(f->path);

	/* Not a database at all. */
	{
		char junk[160];

		snprintf(junk, sizeof(junk), "%s/acks", f->dir);
		assert_int_equal(util_write_file(junk,
						 "not sqlite, just text "
						 "long enough to matter",
						 42, 0600),
				 GW_OK);
		o.path = junk;
		assert_int_equal(store_open(&o, &s), GW_PERM);
		assert_null(s);
		o.path = f->path;
	}
	/* A schema from the future is refused clearly. */
	make_db(f->path, "PRAGMA user_version = 99");
	assert_int_equal(store_open(&o, &s), GW_CONFIG);
	assert_null(s);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM messages"), 3);
	{
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
			 STORE_SQLITE_SCHEMA);
		make_db(f->path, sql);
	}
	assert_int_equal(store_open(&o, &f->s), GW_OK);
}

/* The query plan of sql on the store at path, its details joined. */
static void
query_plan(const char *path, const char *sql, char *out, size_t n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char q[1024];

	out[0] = '\0';
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);
		size_t at = strlen(out);

		snprintf(out + at, n - at, "%s; ", d != NULL ? d : "");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* A pull search reads a patient's versions of its one type straight from
 * an index, in seq order (schema 7): the shape store_res_find builds for
 * a search by patient. On (receiver, bsn, seq) SQLite fetched every row
 * of the patient to test its type. */
static void
test_patient_type_index(void **state)
{
	struct fixture *f = *state;
	char plan[1024];

	if (on_pg) { /* the same index, by name (the planner is not SQLite's) */
		assert_int_equal(pg_sql("SELECT count(*) FROM pg_indexes WHERE"
					" indexname = 'res_patient_type'"),
				 1);
		assert_int_equal(pg_sql("SELECT count(*) FROM pg_indexes WHERE"
					" indexname = 'res_patient'"),
				 0);
		return;
	}
	query_plan(f->path,
		   "SELECT r.seq, r.json FROM res_versions r"
		   " WHERE r.receiver_ura = '90000003' AND r.bsn = '999999990'"
		   " AND r.type = 'Consent' AND r.seq <= 9"
		   " AND (r.superseded_seq IS NULL OR r.superseded_seq > 9)"
		   " AND r.hidden = 0 AND r.seq > 0 ORDER BY r.seq LIMIT 10001",
		   plan, sizeof(plan));
	if (strstr(plan, "res_patient_type (receiver_ura=? AND bsn=? AND "
			 "type=? AND seq>? AND seq<?)") == NULL ||
	    strstr(plan, "TEMP B-TREE") != NULL)
		fail_msg("got plan \"%s\", want the (receiver_ura, bsn, type, "
			 "seq) index and no sort",
			 plan);
}

struct acks {
	size_t calls;
	size_t ok, exists;
	const char *path;
	char bad[STORE_ID_MAX + 1];
};

static void
on_done(void *arg, const struct store_result *res)
{
	struct acks *a = arg;

	a->calls++;
	if (res->err == GW_OK)
		a->ok++;
	else if (res->err == GW_EXISTS)
		a->exists++;
	/* Durable before the callback: another connection sees it. */
	if (a->calls % 97 == 1) {
		char sql[160];

		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM messages WHERE id = '%s'",
			 res->id);
		if (sql_int(a->path, sql) != 1)
			util_strlcpy(a->bad, res->id, sizeof(a->bad));
	}
}

/* Dispatch until want callbacks ran, waiting on the notify fd. */
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

static double
metric_value(const char *name)
{
	struct buf b;
	double v = -1;
	char *p;

	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b), GW_OK);
	if ((p = strstr(b.data, name)) != NULL) {
		p += strlen(name);
		if (*p == '{' && (p = strchr(p, '}')) != NULL)
			p++;
		if (p != NULL)
			v = strtod(p, NULL);
	}
	buf_cleanup(&b);
	return v;
}

static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path, TEST_PG};
	const char *rc[1] = {R1};
	struct acks a = {.path = f->path};
	struct store_filter flt = {.state = -1, .limit = 100000};
	struct store_row *rows = NULL;
	char id[32], pat[16];
	size_t n, total = 3000;

	metrics_reset();
	for (size_t i = 0; i < total; i++) {
		struct store_accept r;

		snprintf(id, sizeof(id), "g%zu", i);
		snprintf(pat, sizeof(pat), "p%zu", i % 7);
		r = req(id, id, pat, rc, 1, 0);
		/* Every 10th repeats the previous identifier. */
		if (i % 10 == 9) {
			snprintf(pat, sizeof(pat), "g%zu", i - 1);
			r.bundle_value = pat;
		}
		assert_int_equal(store_submit_accept(f->s, &r, on_done, &a),
				 GW_OK);
		if (i % 500 == 499)
			store_dispatch(f->s);
	}
	pump(f->s, &a, total);
	assert_int_equal(a.calls, total);
	assert_int_equal(a.exists, total / 10);
	assert_int_equal(a.ok, total - total / 10);
	assert_string_equal(a.bad, "");
	/* Nothing is called twice. */
	assert_int_equal(store_dispatch(f->s), 0);
	/* Commits were grouped: fewer commits than documents. */
	double sum = metric_value("pzpgw_store_commit_batch_size_sum");
	double count = metric_value("pzpgw_store_commit_batch_size_count");
	assert_true(sum == (double)total);
	assert_true(count >= 1 && count < (double)total);
	print_message("group commit: %zu accepts in %.0f commits\n", total,
		      count);

	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	assert_int_equal(store_list(f->s, &flt, &rows, &n), GW_OK);
	assert_int_equal(n, total - total / 10);
	store_rows_free(rows, n);
}

/*
 * Accepts committed together by the writer (PostgreSQL: a batch's rows
 * go in pipelines): 30 submitted at once, each with an audit record and
 * an outbox row, one repeating the previous one's key (answered as
 * stored) and one whose notice id is taken (fails alone, nothing of it
 * stored): the others stored with their rows, the audit chain whole
 * and one record per stored accept (none for the repeat).
 */
static void
test_batch_one_failing(void **state)
{
	struct fixture *f = *state;
	static const char task[] = "{\"resourceType\":\"Task\"}";
	struct store_notice taken = {.id = "bn",
				     .receiver = R2,
				     .doc = task,
				     .doc_len = sizeof(task) - 1,
				     .sha256 = "aa"};
	const char *rc[1] = {R1};
	struct store_accept r = req("bin", "bin", "pat", NULL, 0, T0);
	struct store_result res;
	struct store_audit_check chk;
	struct store_audit_rec rec[30];
	struct store_message *m = NULL;
	struct acks a = {.path = f->path};
	char id[30][16], val[16];

	r.direction = STORE_INBOUND;
	r.notices = &taken;
	r.nnotices = 1;
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	for (int i = 0; i < 30; i++) {
		snprintf(id[i], sizeof(id[i]), "b%d", i);
		snprintf(val, sizeof(val), "b%d", i == 20 ? 19 : i);
		r = req(id[i], val, i % 2 ? "p1" : "p2", rc, 1, T0 + i);
		memset(&rec[i], 0, sizeof(rec[i]));
		rec[i].at = T0 + i;
		util_strlcpy(rec[i].ura, SENDER, sizeof(rec[i].ura));
		util_strlcpy(rec[i].interaction, "create",
			     sizeof(rec[i].interaction));
		util_strlcpy(rec[i].request_id, id[i],
			     sizeof(rec[i].request_id));
		rec[i].status = 202;
		r.audit = &rec[i];
		r.naudit = 1;
		if (i == 10) {
			r.direction = STORE_INBOUND;
			r.receivers = NULL;
			r.nreceivers = 0;
			r.notices = &taken;
			r.nnotices = 1;
		}
		assert_int_equal(store_submit_accept(f->s, &r, on_done, &a),
				 GW_OK);
	}
	pump(f->s, &a, 30);
	assert_int_equal(a.calls, 30);
	assert_int_equal(a.exists, 1);
	assert_int_equal(a.ok, 28);
	assert_string_equal(a.bad, "");
	assert_int_equal(store_show(f->s, "b10", false, &m), GW_NOTFOUND);
	for (int i = 0; i < 30; i++) {
		if (i == 10 || i == 20)
			continue;
		assert_int_equal(store_show(f->s, id[i], false, &m), GW_OK);
		assert_int_equal(m->nrows, 1);
		store_message_free(m);
	}
	assert_int_equal(
	    sql_int(f->path, "SELECT count(*) FROM outbox WHERE receiver_ura"
			     " = '" R1 "'"),
	    28);
	assert_int_equal(store_audit_verify(f->s, &chk), GW_OK);
	assert_int_equal(chk.records, 28); /* the stored ones' */
}

/* Notified pull: notices commit with their inbound accept, each a message
 * of its own (direction notice) with one outbox row, claimed and read
 * back like any row; a duplicate accept stores none; a failing notice
 * takes its accept with it. */
static void
test_notices(void **state)
{
	struct fixture *f = *state;
	static const char task1[] = "{\"resourceType\":\"Task\",\"n\":1}";
	static const char task2[] = "{\"resourceType\":\"Task\",\"n\":2}";
	struct store_notice nt[2] = {
	    {.id = "n1",
	     .receiver = R1,
	     .doc = task1,
	     .doc_len = sizeof(task1) - 1,
	     .sha256 = "aa"},
	    {.id = "n2",
	     .receiver = R2,
	     .doc = task2,
	     .doc_len = sizeof(task2) - 1,
	     .sha256 = "bb"},
	};
	struct store_filter flt = {.state = -1};
	struct store_message *m = NULL;
	struct store_row *rows = NULL;
	struct store_accept r = req("in1", "v1", "pat", NULL, 0, T0);
	struct store_result res;
	struct acks a = {.path = f->path};
	char copy[64], ids[256];
	size_t n;

	r.direction = STORE_INBOUND;
	r.notices = nt;
	r.nnotices = 2;
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	assert_int_equal(store_list(f->s, &flt, &rows, &n), GW_OK);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rows[i].direction, STORE_NOTICE);
		assert_string_equal(rows[i].id, nt[i].id);
		assert_string_equal(rows[i].receiver, nt[i].receiver);
		assert_string_equal(rows[i].sender, SENDER);
		assert_int_equal(rows[i].state, STORE_DUE);
	}
	store_rows_free(rows, n);
	assert_string_equal(store_direction_name(STORE_NOTICE), "notice");

	/* The message itself has no row; the notice carries the Task. */
	assert_int_equal(store_show(f->s, "in1", false, &m), GW_OK);
	assert_int_equal(m->direction, STORE_INBOUND);
	assert_int_equal(m->nrows, 0);
	store_message_free(m);
	claim_ids(f->s, R1, T0, ids, sizeof(ids));
	assert_string_equal(ids, "n1/" R1);
	assert_int_equal(store_get_document(f->s, "n1", &m), GW_OK);
	assert_int_equal(m->direction, STORE_NOTICE);
	assert_string_equal(m->bundle_system, STORE_NOTICE_SYSTEM);
	assert_int_equal(m->doc_len, sizeof(task1) - 1);
	assert_memory_equal(m->doc, task1, m->doc_len);
	store_message_free(m);
	assert_int_equal(store_delivered(f->s, "n1", R1, 200, T0), GW_OK);

	/* The same message again (at least once): no new notice. */
	nt[0].id = "n3";
	nt[1].id = "n4";
	assert_int_equal(store_accept(f->s, &r, &res), GW_EXISTS);
	store_result_cleanup(&res);
	assert_int_equal(store_get_document(f->s, "n3", &m), GW_NOTFOUND);

	/* A notice that cannot be stored (its id is taken) fails the whole
	   accept: the message is not stored without its notices. */
	r.id = "in2";
	r.bundle_value = "v2";
	nt[0].id = "n2";
	assert_int_not_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	assert_int_equal(store_show(f->s, "in2", false, &m), GW_NOTFOUND);
	assert_int_equal(store_get_document(f->s, "n4", &m), GW_NOTFOUND);

	/* Through the writer thread: the notices are copied at submit. */
	r.id = "in3";
	r.bundle_value = "v3";
	util_strlcpy(copy, task2, sizeof(copy));
	nt[0] = (struct store_notice){.id = "n5",
				      .receiver = R1,
				      .doc = copy,
				      .doc_len = strlen(copy),
				      .sha256 = "cc"};
	r.nnotices = 1;
	assert_int_equal(store_submit_accept(f->s, &r, on_done, &a), GW_OK);
	memset(copy, 'x', sizeof(copy) - 1);
	nt[0].id = "zz";
	pump(f->s, &a, 1);
	assert_int_equal(a.ok, 1);
	assert_int_equal(store_get_document(f->s, "n5", &m), GW_OK);
	assert_int_equal(m->doc_len, sizeof(task2) - 1);
	assert_memory_equal(m->doc, task2, m->doc_len);
	store_message_free(m);

	/* Malformed: notices on an outbound accept, two for one receiver,
	   a notice id equal to the message's, the reserved system. */
	nt[0].id = "n6";
	nt[1] = nt[0];
	nt[1].id = "n7";
	r.id = "in4";
	r.bundle_value = "v4";
	r.nnotices = 2;
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	store_result_cleanup(&res);
	nt[1].receiver = R2;
	nt[1].id = "in4";
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	store_result_cleanup(&res);
	nt[1].id = "n7";
	r.direction = STORE_OUTBOUND;
	{
		const char *rc[1] = {R1};

		r.receivers = rc;
		r.nreceivers = 1;
		assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
		store_result_cleanup(&res);
		r.nnotices = 0;
		r.bundle_system = STORE_NOTICE_SYSTEM;
		assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
		store_result_cleanup(&res);
	}
}

static void
test_queue_full(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path, TEST_PG, .queue_max = 4};
	const char *rc[1] = {R1};
	struct acks a = {.path = f->path};
	struct store *s = NULL;
	char id[16];

	assert_int_equal(store_open(&o, &s), GW_OK);
	{
		/* Refused at once, and its callback never runs. */
		struct store_accept bad = req("bad", "bad", "p", rc, 1, 0);

		bad.sender_ura = "x";
		assert_int_equal(store_submit_accept(s, &bad, on_done, &a),
				 GW_INVALID);
	}
	for (int i = 0; i < 5; i++) {
		struct store_accept r;

		snprintf(id, sizeof(id), "q%d", i);
		r = req(id, id, "p", rc, 1, 0);
		assert_int_equal(store_submit_accept(s, &r, on_done, &a),
				 i < 4 ? GW_OK : GW_TEMP);
	}
	pump(s, &a, 4);
	assert_int_equal(a.ok, 4);
	/* store_free runs what is left: submit, then free at once. */
	{
		struct store_accept r = req("q9", "q9", "p", rc, 1, 0);

		assert_int_equal(store_submit_accept(s, &r, on_done, &a),
				 GW_OK);
	}
	store_free(s);
	assert_int_equal(a.calls, 5);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM messages"), 5);
}

/* Child: submit accepts forever, writing each acknowledged id to the ack
 * file with fsync before the next dispatch. */
static void
on_child_done(void *arg, const struct store_result *res)
{
	int fd = *(int *)arg;
	char line[STORE_ID_MAX + 2];
	int n;

	if (res->err != GW_OK)
		return;
	n = snprintf(line, sizeof(line), "%s\n", res->id);
	if (write(fd, line, (size_t)n) != n || fsync(fd) != 0)
		_exit(3);
}

static void
crash_child(const char *path, const char *acks, int round)
{
	/* As the daemon opens it: delivery updates without fsync. */
	struct store_options o = {
	    .path = path, .create = true, .relaxed_state = true, TEST_PG};
	const char *rc[2] = {R1, R2};
	struct store_row *rows = NULL;
	size_t n;
	struct pollfd p;
	struct store *s = NULL;
	char id[48], pat[16];
	int fd;

	fd = open(acks, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0 || store_open(&o, &s) != GW_OK)
		_exit(2);
	p.fd = store_notify_fd(s);
	p.events = POLLIN;
	for (unsigned i = 0;; i++) {
		for (int k = 0; k < 20; k++, i++) {
			struct store_accept r;

			snprintf(id, sizeof(id), "r%d-%u", round, i);
			snprintf(pat, sizeof(pat), "p%u", i % 13);
			r = req(id, id, pat, rc, 1 + i % 2, 0);
			(void)store_submit_accept(s, &r, on_child_done, &fd);
		}
		if (poll(&p, 1, 100) > 0)
			store_dispatch(s);
		/* Deliver some on the loop connection meanwhile. */
		if (store_claim(s, NULL, util_wall_ms(), util_wall_ms(), 8,
				&rows, &n) == GW_OK) {
			for (size_t k = 0; k < n; k++)
				(void)store_delivered(s, rows[k].id,
						      rows[k].receiver, 200,
						      util_wall_ms());
			store_rows_free(rows, n);
		}
	}
}

static void
test_crash(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path, TEST_PG};
	char acks[160], *data = NULL, *line, *save = NULL;
	size_t len, checked = 0;
	int status;

	store_free(f->s);
	f->s = NULL;
	snprintf(acks, sizeof(acks), "%s/acks", f->dir);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int round = 0; round < 4; round++) {
		struct timespec ts = {0, (50 + rand() % 250) * 1000000L};
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			crash_child(f->path, acks, round);
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
	}
	if (!on_pg)
		assert_int_equal(sql_int(f->path,
					 "SELECT count(*) FROM "
					 "pragma_integrity_check WHERE "
					 "integrity_check <> 'ok'"),
				 0);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	assert_int_equal(util_read_file(acks, 1 << 26, &data, &len), GW_OK);
	/* A line cut by the kill has no newline yet: drop it. */
	while (len > 0 && data[len - 1] != '\n')
		data[--len] = '\0';
	for (line = strtok_r(data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		struct store_message *m = NULL;

		if (store_get_document(f->s, line, &m) != GW_OK)
			fail_msg("acknowledged %s missing after kill -9", line);
		store_message_free(m);
		checked++;
	}
	free(data);
	print_message("crash: %zu acknowledged accepts all present\n", checked);
	assert_true(checked > 0);
}

static enum gw_err
fake_free(void *arg, const char *dir, uint64_t *bytes)
{
	*bytes = *(uint64_t *)arg;
	return GW_OK;
}

static void
test_disk(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, TEST_PG, .min_free = 1 << 20};
	struct store *s = NULL;
	uint64_t avail = 5 << 20;

	if (on_pg) {
		skip(); /* SQLite's files */
		return;
	}

	assert_true(store_disk_ok(f->s)); /* min_free 0: never blocks */
	assert_int_equal(store_open(&o, &s), GW_OK);
	assert_true(store_disk_ok(s)); /* real statvfs of /tmp */
	store_set_free_space_fn(s, fake_free, &avail);
	assert_true(store_disk_ok(s));
	avail = (1 << 20) - 1;
	assert_false(store_disk_ok(s));
	avail = 1 << 20;
	assert_true(store_disk_ok(s));
	store_free(s);
	o.min_free = UINT64_MAX;
	assert_int_equal(store_open(&o, &s), GW_OK);
	assert_false(store_disk_ok(s));
	store_free(s);
}

/* min_free must hold after the document about to be stored, counting
 * its copy in the WAL: refused (GW_TEMP, nothing stored) one byte short
 * of STORE_DISK_NEED, accepted with exactly that room. */
static void
test_disk_need(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, TEST_PG, .min_free = 1 << 20};
	const char *rc[1] = {R1};
	struct store_accept r = req("need-1", "need-1", "p", rc, 1, T0);
	struct store_message *m = NULL;
	struct store_result res;
	struct store *s = NULL;
	const char *why = NULL;
	uint64_t avail;

	if (on_pg) {
		skip(); /* SQLite's files */
		return;
	}

	assert_int_equal(store_open(&o, &s), GW_OK);
	store_set_free_space_fn(s, fake_free, &avail);
	avail = (1 << 20) + STORE_DISK_NEED(r.doc_len) - 1;
	assert_true(store_disk_ok(s)); /* above min_free, yet too little */
	assert_false(store_intake_ok(s, r.doc_len, &why));
	assert_string_equal(why, "disk_low");
	assert_int_equal(store_accept(s, &r, &res), GW_TEMP);
	store_result_cleanup(&res);
	assert_int_equal(store_show(s, "need-1", false, &m), GW_NOTFOUND);
	avail++;
	assert_true(store_intake_ok(s, r.doc_len, &why));
	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	store_free(s);
}

/* Background upkeep with an operator's long read transaction open: the
 * restart checkpoint gives up quickly instead of holding commits off for
 * the whole busy timeout, and once the reader is gone the log starts
 * again from its first frame. */
static void
test_upkeep_long_reader(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, TEST_PG, .background_upkeep = true};
	const char *rc[1] = {R1};
	struct acks a = {.path = f->path};
	static char doc[40000];
	uint64_t worst = 0, t0;
	sqlite3 *rd = NULL;
	int log = -1, done = -1;
	char id[32];

	if (on_pg) {
		skip(); /* SQLite's files */
		return;
	}

	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	{
		struct store_accept r = req("first", "first", "p", rc, 1, T0);

		assert_int_equal(store_submit_accept(f->s, &r, on_done, &a),
				 GW_OK);
		pump(f->s, &a, 1);
	}
	assert_int_equal(sqlite3_open(f->path, &rd), SQLITE_OK);
	/* The reader's snapshot must include frames still in the log (a
	 * reader of a fully copied log does not hold it): commit, then read
	 * at once, well before the next upkeep round. */
	{
		struct store_accept r = req("pin", "pin", "p", rc, 1, T0);
		struct store_result res;

		assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
		store_result_cleanup(&res);
	}
	assert_int_equal(sqlite3_exec(rd,
				      "BEGIN; SELECT count(*) FROM messages",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	memset(doc, 'x', sizeof(doc));
	/* About 4,000 pages of WAL: past the restart threshold. */
	for (int i = 0; i < 400; i++) {
		struct store_accept r;
		struct store_result res;

		snprintf(id, sizeof(id), "big-%d", i);
		r = req(id, id, "p", rc, 1, T0 + i);
		r.doc = doc;
		r.doc_len = sizeof(doc);
		t0 = util_mono_ms();
		assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
		store_result_cleanup(&res);
		if (util_mono_ms() - t0 > worst)
			worst = util_mono_ms() - t0;
	}
	assert_true(worst < 1000);
	assert_int_equal(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	/* A few upkeep rounds, then a commit starts the log again. */
	nanosleep(&(struct timespec){0, 500000000L}, NULL);
	{
		struct store_accept r = req("after", "after", "p", rc, 1, T0);
		struct store_result res;

		assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
		store_result_cleanup(&res);
	}
	assert_int_equal(sqlite3_wal_checkpoint_v2(
			     rd, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done),
			 SQLITE_OK);
	assert_true(log >= 0 && log < 2048);
	sqlite3_close(rd);
}

/* The last error of id's row (copied into out). */
static void
row_error(struct store *s, const char *id, char *out, size_t n)
{
	struct store_message *m = NULL;

	assert_int_equal(store_show(s, id, false, &m), GW_OK);
	assert_int_equal(m->nrows, 1);
	snprintf(out, n, "%s",
		 m->rows[0].last_error ? m->rows[0].last_error : "(null)");
	store_message_free(m);
}

/* Maximum age: due rows of messages accepted before the cut-off die,
 * attempted or not, keeping their last error; in-flight and later rows
 * stay, and the lane moves up. */
static void
test_expire(void **state)
{
	struct fixture *f = *state;
	struct store_row r;
	char got[128];
	size_t n = 99;

	must_accept(f->s, "old-1", "p1", R1, T0);
	must_accept(f->s, "old-2", "p1", R1, T0 + 10);
	must_accept(f->s, "new-3", "p1", R1, T0 + 5000);
	must_accept(f->s, "old-4", "p2", R2, T0 + 20);
	claim_ids(f->s, NULL, T0 + 30, got, sizeof(got));
	assert_string_equal(got, "old-1/" R1 " old-4/" R2);
	assert_int_equal(
	    store_failed_temp(f->s, "old-1", R1, 500, "HTTP 500", T0 + 40),
	    GW_OK);
	/* Nothing old enough yet. */
	assert_int_equal(store_expire(f->s, T0, T0 + 50, &n), GW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_expire(f->s, T0 + 1000, T0 + 1001, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(row_state(f->s, "old-1", R1, &r), STORE_DEAD);
	assert_int_equal(r.attempts, 1);
	row_error(f->s, "old-1", got, sizeof(got));
	assert_string_equal(got, "HTTP 500; max age exceeded");
	assert_int_equal(row_state(f->s, "old-2", R1, &r), STORE_DEAD);
	assert_int_equal(r.attempts, 0);
	row_error(f->s, "old-2", got, sizeof(got));
	assert_string_equal(got, "max age exceeded");
	assert_int_equal(row_state(f->s, "old-4", R2, NULL), STORE_INFLIGHT);
	assert_int_equal(row_state(f->s, "new-3", R1, &r), STORE_DUE);
	assert_false(r.waiting);
	check_counts(f->path);
	claim_ids(f->s, R1, T0 + 6000, got, sizeof(got));
	assert_string_equal(got, "new-3/" R1);
	assert_int_equal(store_expire(f->s, T0 + 1000, T0 + 7000, &n), GW_OK);
	assert_int_equal(n, 0);
	/* A replay restarts the maximum age: the replayed row is not
	 * expired by the same cut-off again, only by a later one. */
	assert_int_equal(
	    store_act(f->s, "old-2", R1, STORE_REPLAY, T0 + 8000, NULL), GW_OK);
	assert_int_equal(row_state(f->s, "old-2", R1, &r), STORE_DUE);
	assert_int_equal(r.age_from, T0 + 8000);
	assert_int_equal(store_expire(f->s, T0 + 1000, T0 + 8001, &n), GW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_expire(f->s, T0 + 9000, T0 + 9001, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(row_state(f->s, "old-2", R1, NULL), STORE_DEAD);
	check_counts(f->path);
}

/* Queue counts read by the upkeep thread (store_stats_recent): they
 * come to equal store_stats' within STORE_STATS_MS of a change, and a
 * caller gets its own copy. */
static size_t
stats_due(struct store_stat *v, size_t n, const char *receiver)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].state == STORE_DUE &&
		    strcmp(v[i].receiver, receiver) == 0)
			return (size_t)v[i].count;
	return 0;
}

static void
test_stats_recent(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, TEST_PG, .background_upkeep = true};
	struct store_stat *v = NULL, *w = NULL;
	size_t n = 0, m = 0;
	char id[16];
	uint64_t t0;

	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		must_accept(f->s, id, id, i < 5 ? R1 : R2, T0);
	}
	t0 = util_mono_ms();
	for (;;) {
		struct timespec ts = {0, 50000000};

		assert_int_equal(store_stats_recent(f->s, &v, &n), GW_OK);
		if (stats_due(v, n, R1) == 5 && stats_due(v, n, R2) == 2)
			break;
		free(v);
		v = NULL;
		assert_true(util_mono_ms() - t0 < 3 * STORE_STATS_MS);
		nanosleep(&ts, NULL);
	}
	assert_int_equal(store_stats(f->s, &w, &m), GW_OK);
	assert_int_equal(m, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].state, w[i].state);
		assert_string_equal(v[i].receiver, w[i].receiver);
		assert_int_equal(v[i].count, w[i].count);
		assert_int_equal(v[i].oldest_accepted_at,
				 w[i].oldest_accepted_at);
	}
	free(v);
	free(w);
}

/* Expiry off the event loop (store_expire_later): with background upkeep
 * it returns at once and the upkeep thread expires STORE_EXPIRE_BATCH
 * lanes per transaction; each call hands back the rows expired since the
 * last, so the sum over calls is every expired row, once; the rows behind
 * an expired lane head move up. */
static void
test_expire_later(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, TEST_PG, .background_upkeep = true};
	const int n = 2 * STORE_EXPIRE_BATCH + 30;
	struct store_row r;
	char id[16], got[128];
	size_t total = 0, k = 99;
	uint64_t t0;

	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "old-%d", i);
		snprintf(got, sizeof(got), "p%d", i);
		must_accept(f->s, id, got, R1, T0);
	}
	must_accept(f->s, "new", "p0", R1, T0 + 5000);
	/* Nothing expired yet: the first call only hands the cut-off. */
	assert_int_equal(store_expire_later(f->s, T0 + 1000, T0 + 6000, &k),
			 GW_OK);
	assert_int_equal(k, 0);
	t0 = util_mono_ms();
	while (total < (size_t)n) {
		struct timespec ts = {0, 20000000};

		assert_true(util_mono_ms() - t0 < 20000);
		nanosleep(&ts, NULL);
		assert_int_equal(
		    store_expire_later(f->s, T0 + 1000, T0 + 6000, &k), GW_OK);
		total += k;
	}
	assert_int_equal(total, n);
	for (int i = 0; i < n; i += 37) {
		snprintf(id, sizeof(id), "old-%d", i);
		assert_int_equal(row_state(f->s, id, R1, &r), STORE_DEAD);
	}
	assert_int_equal(row_state(f->s, "new", R1, &r), STORE_DUE);
	assert_false(r.waiting);
	claim_ids(f->s, R1, T0 + 6000, got, sizeof(got));
	assert_string_equal(got, "new/" R1);
	/* Nothing more comes back for the same cut-off. */
	{
		struct timespec ts = {0, 300000000};

		nanosleep(&ts, NULL);
	}
	assert_int_equal(store_expire_later(f->s, T0 + 1000, T0 + 6000, &k),
			 GW_OK);
	assert_int_equal(k, 0);
	if (!on_pg)
		check_counts(f->path);
}

/* A receiver answering again: its lane heads backing off become due
 * now; rows due already and other receivers' rows are untouched. */
static void
test_reschedule(void **state)
{
	struct fixture *f = *state;
	struct store_row r;
	char got[128];
	size_t n = 0;

	must_accept(f->s, "m1", "p1", R1, T0);
	must_accept(f->s, "m2", "p2", R1, T0);
	must_accept(f->s, "m3", "p3", R2, T0);
	claim_ids(f->s, NULL, T0 + 1, got, sizeof(got));
	assert_int_equal(
	    store_failed_temp(f->s, "m1", R1, 0, "refused", T0 + 3600000),
	    GW_OK);
	assert_int_equal(
	    store_failed_temp(f->s, "m3", R2, 0, "refused", T0 + 3600000),
	    GW_OK);
	assert_int_equal(store_failed_temp(f->s, "m2", R1, 0, "refused", T0),
			 GW_OK);
	assert_int_equal(store_reschedule(f->s, R1, T0 + 100, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(row_state(f->s, "m1", R1, &r), STORE_DUE);
	assert_int_equal(r.next_attempt_at, T0 + 100);
	assert_int_equal(row_state(f->s, "m3", R2, &r), STORE_DUE);
	assert_int_equal(r.next_attempt_at, T0 + 3600000);
	claim_ids(f->s, NULL, T0 + 100, got, sizeof(got));
	assert_string_equal(got, "m2/" R1 " m1/" R1);
}

/* Validation finding counts wait in memory for the writer: a repeated
 * key adds to its count, STORE_FINDINGS_MAX distinct keys fill it (the
 * next new key is refused with GW_TEMP, a waiting key still counts), and
 * after the writer's write there is room again. */
static void
test_findings_full(void **state)
{
	struct fixture *f = *state;
	struct store_finding fi = {.hour = T0 / 3600000, .n = 1};

	util_strlcpy(fi.sender, R1, sizeof(fi.sender));
	util_strlcpy(fi.severity, "error", sizeof(fi.severity));
	for (int i = 0; i < STORE_FINDINGS_MAX; i++) {
		snprintf(fi.rule, sizeof(fi.rule), "value Patient.x%d", i);
		assert_int_equal(store_count_finding(f->s, &fi), GW_OK);
	}
	util_strlcpy(fi.rule, "value Patient.new", sizeof(fi.rule));
	assert_int_equal(store_count_finding(f->s, &fi), GW_TEMP);
	util_strlcpy(fi.rule, "value Patient.x7", sizeof(fi.rule));
	assert_int_equal(store_count_finding(f->s, &fi), GW_OK);
	store_flush(f->s);
	util_strlcpy(fi.rule, "value Patient.new", sizeof(fi.rule));
	assert_int_equal(store_count_finding(f->s, &fi), GW_OK);
	memset(fi.rule, 'r', sizeof(fi.rule)); /* unterminated */
	assert_int_equal(store_count_finding(f->s, &fi), GW_INVALID);
	store_flush(f->s);
}

/* store_set_deadline: a statement still running past the deadline is
 * interrupted (SQLite: the progress handler), and 0 lifts the limit. */
static void
test_deadline(void **state)
{
	struct fixture *f = *state;
	struct store_stat *st = NULL;
	char id[16];
	size_t n = 0;

	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		must_accept(f->s, id, id, i % 2 ? R1 : R2, T0 + i);
	}
	store_set_deadline(f->s, (int64_t)util_mono_ms() - 1);
	if (!on_pg) {
		/* PostgreSQL: 1 ms of statement_timeout may or may not
		   cut a statement this small. */
		assert_int_not_equal(store_stats(f->s, &st, &n), GW_OK);
		free(st);
		st = NULL;
	}
	store_set_deadline(f->s, 0);
	assert_int_equal(store_stats(f->s, &st, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(st[0].count + st[1].count, 300);
	free(st);
}

/* A receiver's hold (schema 9): counted failures, a hold that a
 * transfer already under way does not extend, one probe at a time, and
 * (PostgreSQL) one probe between two nodes. */
static void
test_holds(void **state)
{
	struct fixture *f = *state;
	struct store_backoff b = {.min_ms = 1000, .max_ms = 8000};
	struct store_hold h, *all = NULL;
	struct store *other = NULL;
	bool changed = false, was = true;
	size_t n = 99;

	assert_int_equal(store_holds(f->s, &all, &n), GW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_hold_probe(f->s, R1, T0, T0 + 500), GW_NOTFOUND);
	/* First failure: held 1 s (the minimum; jitter never goes below). */
	assert_int_equal(store_hold_fail(f->s, R1, "unreachable", T0, &b, 0, 0,
					 &changed, &h),
			 GW_OK);
	assert_true(changed);
	assert_int_equal(h.fails, 1);
	assert_int_equal(h.until, T0 + 1000);
	assert_string_equal(h.reason, "unreachable");
	/* A transfer that was under way fails within the hold: no change. */
	assert_int_equal(
	    store_hold_fail(f->s, R1, "busy", T0 + 10, &b, 0, 0, &changed, &h),
	    GW_OK);
	assert_false(changed);
	assert_int_equal(h.fails, 1);
	assert_int_equal(h.until, T0 + 1000);
	/* No probe before the hold ends; then one. */
	assert_int_equal(store_hold_probe(f->s, R1, T0 + 999, T0 + 5000),
			 GW_EXISTS);
	assert_int_equal(store_hold_probe(f->s, R1, T0 + 1000, T0 + 5000),
			 GW_OK);
	assert_int_equal(store_holds(f->s, &all, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_string_equal(all[0].receiver, R1);
	assert_int_equal(all[0].probe_until, T0 + 5000);
	assert_true(all[0].prober[0] != '\0');
	free(all);
	all = NULL;
	/* The probe failed: doubled, Retry-After later still wins. */
	assert_int_equal(store_hold_fail(f->s, R1, "busy", T0 + 1100, &b, 0,
					 T0 + 9000, &changed, &h),
			 GW_OK);
	assert_true(changed);
	assert_int_equal(h.fails, 2);
	assert_int_equal(h.until, T0 + 9000);
	assert_string_equal(h.reason, "busy");
	assert_string_equal(h.prober, "");
	if (on_pg) {
		/* Two nodes when the hold ends: one probe between them. */
		struct store_options o = {
		    .path = f->path, TEST_PG, .node = "node-b"};
		char path_b[160];

		snprintf(path_b, sizeof(path_b), "%s/b.db", f->dir);
		o.path = path_b;
		assert_int_equal(store_open(&o, &other), GW_OK);
		assert_int_equal(store_holds(other, &all, &n), GW_OK);
		assert_int_equal(n, 1);
		assert_int_equal(all[0].fails, 2);
		free(all);
		all = NULL;
		assert_int_equal(
		    store_hold_probe(other, R1, T0 + 9000, T0 + 12000), GW_OK);
		assert_int_equal(
		    store_hold_probe(f->s, R1, T0 + 9001, T0 + 12000),
		    GW_EXISTS);
		/* Its node died mid-probe: the claim runs out. */
		assert_int_equal(
		    store_hold_probe(f->s, R1, T0 + 12000, T0 + 15000), GW_OK);
		store_free(other);
	}
	/* It answered: released once. */
	assert_int_equal(store_hold_clear(f->s, R1, &was), GW_OK);
	assert_true(was);
	assert_int_equal(store_hold_clear(f->s, R1, &was), GW_OK);
	assert_false(was);
	assert_int_equal(store_holds(f->s, &all, &n), GW_OK);
	assert_int_equal(n, 0);
}

/* store_renew: the row in flight keeps its lease; not once it left
 * flight, nor (PostgreSQL) from another node, nor after a takeover. */
static void
test_renew(void **state)
{
	struct fixture *f = *state;
	struct store_row *rows = NULL;
	struct store *b = NULL;
	int64_t now = util_wall_ms(), seq;
	size_t n = 0;

	must_accept(f->s, "k1", "p1", R1, T0);
	assert_int_equal(store_claim(f->s, R1, now, now, 10, &rows, &n), GW_OK);
	assert_int_equal(n, 1);
	seq = rows[0].seq;
	store_rows_free(rows, n);
	assert_int_equal(store_renew(f->s, seq, R1, now + 120000), GW_OK);
	assert_int_equal(store_renew(f->s, seq, R2, now + 120000), GW_NOTFOUND);
	if (on_pg) {
		struct store_options o = {.path = f->path,
					  TEST_PG,
					  .node = "node-b",
					  .lease_ms = 1000};
		char path_b[160];

		assert_true(store_lease_ms(f->s) > 0);
		snprintf(path_b, sizeof(path_b), "%s/b.db", f->dir);
		o.path = path_b;
		assert_int_equal(store_open(&o, &b), GW_OK);
		assert_int_equal(store_renew(b, seq, R1, now + 120000),
				 GW_NOTFOUND);
		/* Renewed: not expired for node b at the old lease's end. */
		assert_int_equal(
		    store_claim(b, R1, now + 61000, now + 61000, 10, &rows, &n),
		    GW_OK);
		assert_int_equal(n, 0);
		/* Expired: b takes it over, a's renewal finds it gone. */
		assert_int_equal(store_claim(b, R1, now + 121000, now + 121000,
					     10, &rows, &n),
				 GW_OK);
		assert_int_equal(n, 1);
		store_rows_free(rows, n);
		assert_int_equal(store_renew(f->s, seq, R1, now + 200000),
				 GW_NOTFOUND);
		store_free(b);
	} else {
		assert_int_equal(store_lease_ms(f->s), 0);
	}
	assert_int_equal(store_failed_temp(f->s, "k1", R1, 503, "busy", now),
			 on_pg ? GW_NOTFOUND : GW_OK);
	if (!on_pg)
		assert_int_equal(store_renew(f->s, seq, R1, now + 1),
				 GW_NOTFOUND);
}

static void
test_stats(void **state)
{
	struct fixture *f = *state;
	struct store_stat *st = NULL;
	char got[128];
	size_t n;

	must_accept(f->s, "m1", "p1", R1, T0);
	must_accept(f->s, "m2", "p1", R1, T0 + 5);
	must_accept(f->s, "m3", "p3", R2, T0 + 9);
	claim_ids(f->s, R2, T0 + 10, got, sizeof(got));
	assert_int_equal(store_stats(f->s, &st, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(st[0].state, STORE_DUE);
	assert_string_equal(st[0].receiver, R1);
	assert_int_equal(st[0].count, 2);
	assert_int_equal(st[0].oldest_accepted_at, T0);
	assert_int_equal(st[1].state, STORE_INFLIGHT);
	assert_string_equal(st[1].receiver, R2);
	assert_int_equal(st[1].count, 1);
	free(st);
	/* Delivered rows are history, not queue depth. */
	assert_int_equal(store_delivered(f->s, "m3", R2, 200, T0 + 11), GW_OK);
	assert_int_equal(store_stats(f->s, &st, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].state, STORE_DUE);
	free(st);
	metrics_reset();
	store_metrics_update(f->s, T0 + 2000);
	assert_true(metric_value("pzpgw_queue_depth{receiver=\"" R1
				 "\",state=\"due\"}") == 2.0);
	assert_true(metric_value("pzpgw_queue_oldest_age_seconds{receiver=\"" R1
				 "\",state=\"due\"}") == 2.0);
	metrics_reset();
	check_counts(f->path);
	/* Every kind of change keeps the counts exact: hold, release,
	 * dead, replay, recovery of in-flight rows, prune. */
	assert_int_equal(store_act(f->s, "m2", R1, STORE_HOLD, T0 + 12, NULL),
			 GW_OK);
	check_counts(f->path);
	claim_ids(f->s, R1, T0 + 13, got, sizeof(got));
	assert_string_equal(got, "m1/" R1);
	assert_int_equal(
	    store_failed_perm(f->s, "m1", R1, 400, "HTTP 400", NULL), GW_OK);
	check_counts(f->path);
	assert_int_equal(
	    store_act(f->s, "m2", R1, STORE_RELEASE, T0 + 14, NULL), GW_OK);
	assert_int_equal(store_act(f->s, "m1", R1, STORE_REPLAY, T0 + 14, NULL),
			 GW_OK);
	claim_ids(f->s, R1, T0 + 15, got, sizeof(got));
	assert_int_equal(store_recover(f->s, NULL), GW_OK);
	check_counts(f->path);
	assert_int_equal(store_stats(f->s, &st, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].state, STORE_DUE);
	assert_int_equal(st[0].count, 2);
	free(st);
	assert_int_equal(store_prune(f->s, T0 + 100, NULL), GW_OK);
	check_counts(f->path);
}

/* PostgreSQL: schema made and versioned as SQLite's, create/readonly
 * semantics, a newer schema refused, the password file's mode checked,
 * a server that is down a temporary error, the audit table
 * append-only. */
static void
test_pg_open(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path, TEST_PG};
	char pw[160], line[256];
	struct store *s = NULL;
	FILE *in, *out;

	if (!on_pg) {
		skip(); /* PostgreSQL only */
		return;
	}
	assert_int_equal(store_schema_version(f->s), STORE_SQLITE_SCHEMA);
	assert_int_equal(pg_sql("SELECT version FROM pzpgw_schema"),
			 STORE_SQLITE_SCHEMA);
	assert_int_equal(pg_sql("SELECT octet_length(secret) FROM"
				" index_secret"),
			 32);
	must_accept(f->s, "m1", "p1", R1, T0);
	store_free(f->s);
	f->s = NULL;
	/* Read only: opens, changes nothing. */
	o.readonly = true;
	assert_int_equal(store_open(&o, &s), GW_OK);
	store_free(s);
	o.readonly = false;
	/* A schema from a newer binary is refused, readonly or not. */
	(void)pg_sql("UPDATE pzpgw_schema SET version = 99");
	assert_int_equal(store_open(&o, &s), GW_CONFIG);
	o.readonly = true;
	assert_int_equal(store_open(&o, &s), GW_CONFIG);
	o.readonly = false;
	(void)pg_sql("UPDATE pzpgw_schema SET version = 6");
	/* The audit trail is append-only whoever asks. */
	{
		PGconn *c = pg_connect();
		PGresult *r = PQexec(
		    c, "INSERT INTO audit VALUES (1, 0, '', '', '', '', 'read',"
		       " '', 0, 200, '', '', '')");

		assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
		PQclear(r);
		r = PQexec(c, "DELETE FROM audit");

		assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
		PQclear(r);
		r = PQexec(c, "TRUNCATE audit");
		assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
		PQclear(r);
		PQfinish(c);
	}
	/* An empty database: no store unless create. */
	(void)pg_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
	assert_int_equal(store_open(&o, &s), GW_NOTFOUND);
	o.readonly = true;
	assert_int_equal(store_open(&o, &s), GW_NOTFOUND);
	o.readonly = false;
	o.create = true;
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SQLITE_SCHEMA);
	/* A password file others may read is refused. */
	snprintf(pw, sizeof(pw), "%s/pw", f->dir);
	assert_non_null(in = fopen(pg_pwfile, "r"));
	assert_non_null(fgets(line, sizeof(line), in));
	fclose(in);
	assert_non_null(out = fopen(pw, "w"));
	fputs(line, out);
	fclose(out);
	assert_int_equal(chmod(pw, 0644), 0);
	o.pg_password_file = pw;
	assert_int_equal(store_open(&o, &s), GW_CONFIG);
	assert_int_equal(chmod(pw, 0600), 0);
	assert_int_equal(store_open(&o, &s), GW_OK);
	store_free(s);
	unlink(pw);
	o.pg_password_file = pg_pwfile;
	/* Nobody listening: temporary. */
	o.pg_url = "postgresql://pzpgw@127.0.0.1:1/postgres";
	assert_int_equal(store_open(&o, &s), GW_TEMP);
}

/* PostgreSQL: the connection is lost between a claim and its result.
 * The result is kept (GW_OK), the row stays in flight meanwhile, and the
 * next due-time query reconnects and writes it. */
static void
test_pg_finish_deferred(void **state)
{
	struct fixture *f = *state;
	char got[64];
	int64_t at = 0;

	if (!on_pg) {
		skip(); /* PostgreSQL only */
		return;
	}
	must_accept(f->s, "d1", "p1", R1, T0);
	must_accept(f->s, "d2", "p1", R1, T0 + 1);
	claim_ids(f->s, NULL, T0 + 10, got, sizeof(got));
	assert_string_equal(got, "d1/" R1);
	/* The server drops every connection of the gateway. */
	assert_true(pg_sql("SELECT count(pg_terminate_backend(pid)) FROM"
			   " pg_stat_activity WHERE application_name ="
			   " 'pzpgw'") >= 1);
	assert_int_equal(store_delivered(f->s, "d1", R1, 200, T0 + 11), GW_OK);
	assert_int_equal(pg_sql("SELECT count(*) FROM outbox WHERE"
				" state = 'inflight'"),
			 1);
	/* Written before anything else is asked of the store. */
	assert_int_equal(store_next_due_at(f->s, &at), GW_OK);
	assert_int_equal(row_state(f->s, "d1", R1, NULL), STORE_DELIVERED);
	claim_ids(f->s, NULL, T0 + 20, got, sizeof(got));
	assert_string_equal(got, "d2/" R1);
}

/* Accept inbound message id carrying one Patient version json for R1. */
static void
accept_indexed(struct store *s, const char *id, const char *json)
{
	struct store_index_entry e = {.type = "Patient",
				      .id = "pat-1",
				      .key = "sys|1",
				      .json = json,
				      .json_len = strlen(json)};
	struct store_index x = {.receiver = R1,
				.bsn = "123456782",
				.sender = SENDER,
				.entries = &e,
				.n = 1};
	struct store_accept r = req(id, id, "p1", NULL, 0, T0);
	struct store_result res;

	r.direction = STORE_INBOUND;
	r.index = &x;
	r.nindex = 1;
	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);
}

/* The received-data index on either backend: the same content again
 * makes no version (the later message carries it), other content makes
 * version 2 and supersedes 1; history, current, snapshot and the inbox
 * agree. */
static void
test_index_versions(void **state)
{
	struct fixture *f = *state;
	struct store_res_query q = {
	    .receiver = R1, .type = "Patient", .id = "pat-1", .history = true};
	struct store_reader *rd = NULL;
	struct store_inbox *in = NULL;
	struct store_inbox_filter fi = {.receiver = R1};
	struct store_res *v = NULL;
	int64_t snap = 0;
	size_t n = 0;

	accept_indexed(f->s, "i1", "{\"a\":1}");
	accept_indexed(f->s, "i2", "{\"a\":1}");
	assert_int_equal(store_reader_open(f->s, &rd), GW_OK);
	assert_int_equal(store_res_snapshot(rd, &snap), GW_OK);
	accept_indexed(f->s, "i3", "{\"a\":2}");

	assert_int_equal(store_res_find(rd, &q, &v, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].vid, 1);
	assert_false(v[0].current);
	assert_string_equal(v[0].msg_id, "i2"); /* carried by i2 */
	assert_int_equal(v[1].vid, 2);
	assert_true(v[1].current);
	assert_string_equal(v[1].json, "{\"a\":2}");
	assert_string_equal(v[1].msg_id, "i3");
	assert_string_equal(v[1].bsn, "123456782");
	store_res_free(v, n);
	q.history = false;
	assert_int_equal(store_res_find(rd, &q, &v, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].vid, 2);
	store_res_free(v, n);
	/* At the snapshot taken before i3, version 1 is the current one. */
	q.snapshot = snap;
	assert_int_equal(store_res_find(rd, &q, &v, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].vid, 1);
	assert_true(v[0].current);
	store_res_free(v, n);
	store_reader_free(rd);

	assert_int_equal(store_inbox_list(f->s, &fi, &in, &n), GW_OK);
	assert_int_equal(n, 3);
	assert_string_equal(in[2].id, "i3");
	assert_int_equal(in[2].resources, 1);
	free(in);
}

/* The versions of R1's resource type/id, oldest first: "vid:msg_id:json"
 * with a "*" for the current one and "h" for a hidden one, joined by
 * spaces, into got. */
static void
res_history(struct store *s, const char *type, const char *id, char *got,
	    size_t n)
{
	struct store_res_query q = {.receiver = R1,
				    .type = type,
				    .id = id,
				    .history = true,
				    .hidden = true};
	struct store_reader *rd = NULL;
	struct store_res *v = NULL;
	size_t nv = 0, len = 0;

	got[0] = '\0';
	assert_int_equal(store_reader_open(s, &rd), GW_OK);
	assert_int_equal(store_res_find(rd, &q, &v, &nv), GW_OK);
	for (size_t i = 0; i < nv && len < n; i++)
		len += (size_t)snprintf(
		    got + len, n - len, "%s%lld:%s:%s%s%s", i > 0 ? " " : "",
		    (long long)v[i].vid, v[i].msg_id, v[i].json,
		    v[i].current ? "*" : "", v[i].hidden ? "h" : "");
	store_res_free(v, nv);
	store_reader_free(rd);
}

/*
 * Messages committed in one batch that index the same resources (the
 * Organization and Practitioner every message of a hospital carries):
 * each sees the versions of those before it in the batch: the same
 * content is carried by the later message, other content makes the
 * next version and supersedes the current one. A message that carries
 * one resource twice makes two versions of it, in its order; a hidden
 * entry is kept but not current for searches. PostgreSQL indexes a
 * message's entries in one statement (distinct resources) or one at a
 * time (a resource twice): both must agree with SQLite's.
 */
static void
test_index_batch(void **state)
{
	struct fixture *f = *state;
	struct acks a = {.path = f->path};
	struct store_index_entry e[6][5];
	struct store_index x[6];
	char ids[6][8], pat[6][16], patj[6][16], org[6][16];
	char got[512];
	size_t nm = 6;

	for (size_t i = 0; i < nm; i++) {
		struct store_accept r;
		size_t k = 0;

		snprintf(ids[i], sizeof(ids[i]), "b%zu", i);
		snprintf(pat[i], sizeof(pat[i]), "pat-%zu", i);
		snprintf(patj[i], sizeof(patj[i]), "{\"p\":%zu}", i);
		/* Its content changes every second message. */
		snprintf(org[i], sizeof(org[i]), "{\"o\":%zu}", i / 2);
		e[i][k++] =
		    (struct store_index_entry){.type = "Patient",
					       .id = pat[i],
					       .key = pat[i],
					       .json = patj[i],
					       .json_len = strlen(patj[i])};
		e[i][k++] =
		    (struct store_index_entry){.type = "Organization",
					       .id = "org-1",
					       .key = "ura|1",
					       .json = org[i],
					       .json_len = strlen(org[i])};
		e[i][k++] = (struct store_index_entry){.type = "Practitioner",
						       .id = "pr-1",
						       .key = "uzi|1",
						       .json = "{\"pr\":1}",
						       .json_len = 8};
		if (i == nm - 1) {
			e[i][k++] =
			    (struct store_index_entry){.type = "Condition",
						       .id = "c-1",
						       .key = "c|1",
						       .json = "{\"c\":1}",
						       .json_len = 7};
			e[i][k++] =
			    (struct store_index_entry){.type = "Condition",
						       .id = "c-1",
						       .key = "c|1",
						       .json = "{\"c\":2}",
						       .json_len = 7,
						       .hidden = true};
		}
		x[i] = (struct store_index){.receiver = R1,
					    .bsn = "123456782",
					    .sender = SENDER,
					    .entries = e[i],
					    .n = k};
		r = req(ids[i], ids[i], "p1", NULL, 0, T0 + (int64_t)i);
		r.direction = STORE_INBOUND;
		r.index = &x[i];
		r.nindex = 1;
		assert_int_equal(store_submit_accept(f->s, &r, on_done, &a),
				 GW_OK);
	}
	pump(f->s, &a, nm);
	assert_int_equal(a.ok, nm);

	res_history(f->s, "Organization", "org-1", got, sizeof(got));
	assert_string_equal(got, "1:b1:{\"o\":0} 2:b3:{\"o\":1} "
				 "3:b5:{\"o\":2}*");
	res_history(f->s, "Practitioner", "pr-1", got, sizeof(got));
	assert_string_equal(got, "1:b5:{\"pr\":1}*");
	res_history(f->s, "Patient", "pat-4", got, sizeof(got));
	assert_string_equal(got, "1:b4:{\"p\":4}*");
	res_history(f->s, "Condition", "c-1", got, sizeof(got));
	assert_string_equal(got, "1:b5:{\"c\":1} 2:b5:{\"c\":2}*h");

	/* The same message content again (new identifiers): every
	   resource carried, no new version. */
	e[0][1].json = org[5];
	e[0][1].json_len = strlen(org[5]);
	e[0][0].json = patj[4];
	e[0][0].json_len = strlen(patj[4]);
	e[0][0].id = pat[4];
	{
		struct store_accept r = req("b6", "b6", "p1", NULL, 0, T0 + 9);
		struct store_result res;

		r.direction = STORE_INBOUND;
		r.index = &x[0];
		r.nindex = 1;
		assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
		store_result_cleanup(&res);
	}
	res_history(f->s, "Organization", "org-1", got, sizeof(got));
	assert_string_equal(got, "1:b1:{\"o\":0} 2:b3:{\"o\":1} "
				 "3:b6:{\"o\":2}*");
	res_history(f->s, "Patient", "pat-4", got, sizeof(got));
	assert_string_equal(got, "1:b6:{\"p\":4}*");
	res_history(f->s, "Practitioner", "pr-1", got, sizeof(got));
	assert_string_equal(got, "1:b6:{\"pr\":1}*");
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* s's lines sorted, in place (at most 32 lines); returns s. */
static char *
sorted_lines(char *s)
{
	char *lines[32], copy[1024], *save = NULL, *t;
	size_t n = 0, len = 0;

	util_strlcpy(copy, s, sizeof(copy));
	for (t = strtok_r(copy, "\n", &save); t != NULL && n < 32;
	     t = strtok_r(NULL, "\n", &save))
		lines[n++] = t;
	qsort(lines, n, sizeof(lines[0]), cmp_str);
	s[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, 1024 - len, "%s\n", lines[i]);
	return s;
}

/* Append a's inbound messages and inbox rows as "M hour org version
 * event n" and "R hour org n" lines to the string arg. */
static enum gw_err
agg_inbound(void *arg, const struct store_agg *a)
{
	char *out = arg;
	size_t len = strlen(out);

	if (strcmp(a->kind, "inbound") != 0 || a->n == 0)
		return GW_OK;
	if (a->what == STORE_AGG_MESSAGES)
		snprintf(out + len, 1024 - len, "M %lld %s %s %s %lld\n",
			 (long long)a->hour, a->org, a->version, a->event,
			 (long long)a->n);
	else if (a->what == STORE_AGG_ROWS)
		snprintf(out + len, 1024 - len, "R %lld %s %lld\n",
			 (long long)a->hour, a->org, (long long)a->n);
	return GW_OK;
}

/*
 * The report's counts of received messages and their inbox rows, from
 * accepts committed by the writer in batches (PostgreSQL's writer adds
 * them once per batch and key since schema 11; SQLite's triggers count
 * them row by row): a message for two local receivers, messages in
 * another hour and with another event, one whose index names no sender
 * (counted under the message's sender), a repeat (not counted), one
 * without local receivers (no inbox row: not counted), and one that
 * fails in its batch (the batch goes again document by document:
 * counted once, the failing one not at all). The counts must be those
 * of the rows: a report of the whole range reads only the roll-ups.
 */
static void
test_rollup_inbound(void **state)
{
	struct fixture *f = *state;
	static const char task[] = "{\"resourceType\":\"Task\"}";
	struct store_notice taken = {.id = "ru-n",
				     .receiver = R2,
				     .doc = task,
				     .doc_len = sizeof(task) - 1,
				     .sha256 = "aa"};
	struct store_index_entry e = {.type = "Patient",
				      .id = "pat-1",
				      .key = "sys|1",
				      .json = "{}",
				      .json_len = 2};
	struct store_index two[2] = {{.receiver = R1,
				      .bsn = "1",
				      .sender = "90000077",
				      .entries = &e,
				      .n = 1},
				     {.receiver = R2,
				      .bsn = "1",
				      .sender = "90000077",
				      .entries = &e,
				      .n = 1}};
	struct store_index nosender = {
	    .receiver = R1, .bsn = "1", .sender = "", .entries = &e, .n = 1};
	struct store_accept r = req("ru-0", "ru-0", "p", NULL, 0, T0);
	struct store_result res;
	struct acks a = {.path = f->path};
	char id[12][8], got[1024] = "", want[1024];
	int64_t h = T0 / 3600000;

	/* "ru-n" taken: an accept with that notice fails alone. */
	r.direction = STORE_INBOUND;
	r.notices = &taken;
	r.nnotices = 1;
	assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
	store_result_cleanup(&res);
	for (int round = 0; round < 2; round++) {
		size_t calls = a.calls;

		for (int i = 0; i < 6; i++) {
			int k = round * 6 + i;

			snprintf(id[k], sizeof(id[k]), "ru%d", k);
			r = req(id[k], id[k], "p", NULL, 0,
				T0 + (i == 2 ? 3600000 : 0) + k);
			r.direction = STORE_INBOUND;
			r.index = two;
			r.nindex = 2;
			if (i == 1)
				r.event = "pzp-updated";
			if (i == 3) {
				r.index = &nosender;
				r.nindex = 1;
			}
			if (i == 4) {
				r.index = NULL;
				r.nindex = 0;
			}
			if (i == 5 && round == 0) /* repeats ru0 */
				r.bundle_value = id[0];
			if (i == 5 && round == 1) {
				r.notices = &taken; /* fails */
				r.nnotices = 1;
			}
			assert_int_equal(
			    store_submit_accept(f->s, &r, on_done, &a), GW_OK);
		}
		pump(f->s, &a, calls + 6);
	}
	assert_int_equal(a.ok, 10);
	assert_int_equal(a.exists, 1);
	assert_int_equal(store_report_agg(f->s, 0, 0, agg_inbound, got), GW_OK);
	/* Per round: ru0 (R1, R2), ru1 (event), ru2 (next hour), ru3 (no
	   sender: SENDER, R1 only); ru4 has no inbox row. */
	snprintf(want, sizeof(want),
		 "M %lld 90000077 4.0.1  2\n"
		 "M %lld 90000077 4.0.1 pzp-updated 2\n"
		 "M %lld 90000077 4.0.1  2\n"
		 "M %lld " SENDER " 4.0.1  2\n"
		 "R %lld " R1 " 6\n"
		 "R %lld " R2 " 4\n"
		 "R %lld " R1 " 2\n"
		 "R %lld " R2 " 2\n",
		 (long long)h, (long long)h, (long long)h + 1, (long long)h,
		 (long long)h, (long long)h, (long long)h + 1,
		 (long long)h + 1);
	assert_string_equal(sorted_lines(got), sorted_lines(want));
}

/* Append a's pulls and distinct patients as "P hour org n" and "D org n"
 * lines to the string arg. */
static enum gw_err
agg_pulls(void *arg, const struct store_agg *a)
{
	char *out = arg;
	size_t len = strlen(out);

	if (a->what == STORE_AGG_PULLS)
		snprintf(out + len, 1024 - len, "P %lld %s %lld\n",
			 (long long)a->hour, a->org, (long long)a->n);
	else if (a->what == STORE_AGG_PATIENTS)
		snprintf(out + len, 1024 - len, "D %s %lld\n", a->org,
			 (long long)a->n);
	return GW_OK;
}

static void
pulled(struct store *s, const char *ura, const char *bsn, const char *what,
       int64_t at)
{
	struct store_audit_rec r;

	memset(&r, 0, sizeof(r));
	util_strlcpy(r.ura, ura, sizeof(r.ura));
	util_strlcpy(r.bsn, bsn, sizeof(r.bsn));
	util_strlcpy(r.interaction, what, sizeof(r.interaction));
	util_strlcpy(r.query, "/fhir/Consent", sizeof(r.query));
	util_strlcpy(r.request_id, "rq", sizeof(r.request_id));
	r.status = 200;
	r.at = at;
	assert_int_equal(store_submit_audit(s, &r), GW_OK);
}

/*
 * The report's pulls and distinct patients from audit records the
 * writer commits in batches (since schema 12 it counts them once per
 * batch and key; the trigger did per record): two organisations, two
 * patients, three hours over two days, a refusal naming no patient
 * (a pull, no patient), a push and an operator's action (neither), in
 * two batches that meet on the same keys. The counts must be those of
 * the records, for the whole range (rep_pull, rep_pat_last) and for
 * each whole day (rep_pat).
 */
static void
test_rollup_pulls(void **state)
{
	struct fixture *f = *state;
	const int64_t d0 = T0 / 86400000 * 86400000, h = d0 / 3600000;
	const int64_t hour = 3600000, day = 86400000;
	char got[1024], want[1024];

	for (int batch = 0; batch < 2; batch++) {
		pulled(f->s, R1, "111", "search-type", d0 + 5 + batch);
		pulled(f->s, R1, "111", "read", d0 + 7);
		pulled(f->s, R1, "222", "search-type", d0 + hour + batch);
		pulled(f->s, R1, "", "read", d0 + 9); /* a 404, say */
		pulled(f->s, R2, "111", "search-type", d0 + day + batch);
		pulled(f->s, R1, "111", "search-type", d0 + day + hour);
		pulled(f->s, SENDER, "111", "create", d0 + 3);
		pulled(f->s, R1, "333", "operator-retry", d0 + 4);
		store_flush(f->s);
	}
	got[0] = '\0';
	assert_int_equal(store_report_agg(f->s, 0, 0, agg_pulls, got), GW_OK);
	snprintf(want, sizeof(want),
		 "P %lld " R1 " 6\n"
		 "P %lld " R1 " 2\n"
		 "P %lld " R2 " 2\n"
		 "P %lld " R1 " 2\n"
		 "D " R1 " 2\n"
		 "D " R2 " 1\n",
		 (long long)h, (long long)h + 1, (long long)h + 24,
		 (long long)h + 25);
	assert_string_equal(sorted_lines(got), sorted_lines(want));
	/* The first whole day: R1 read 111 and 222, R2 nobody. */
	got[0] = '\0';
	assert_int_equal(store_report_agg(f->s, d0, d0 + day, agg_pulls, got),
			 GW_OK);
	snprintf(want, sizeof(want),
		 "P %lld " R1 " 6\n"
		 "P %lld " R1 " 2\n"
		 "D " R1 " 2\n",
		 (long long)h, (long long)h + 1);
	assert_string_equal(sorted_lines(got), sorted_lines(want));
	got[0] = '\0';
	assert_int_equal(
	    store_report_agg(f->s, d0 + day, d0 + 2 * day, agg_pulls, got),
	    GW_OK);
	snprintf(want, sizeof(want),
		 "P %lld " R2 " 2\n"
		 "P %lld " R1 " 2\n"
		 "D " R1 " 1\n"
		 "D " R2 " 1\n",
		 (long long)h + 24, (long long)h + 25);
	assert_string_equal(sorted_lines(got), sorted_lines(want));
}

/*
 * PostgreSQL: two nodes' writers count their accepts in the roll-ups
 * without waiting for each other. Another transaction (a node) holds the
 * roll-up rows of the key an accept counts, in the shard of every
 * session of this store (the trigger's pid modulo 8), and those shards'
 * advisory locks (as a writer picking its shard holds it): the accept
 * must still commit at once, in a shard of its own, while that
 * transaction stays open.
 */
static void
test_pg_rollup_shards(void **state)
{
	struct fixture *f = *state;
	struct store_index_entry e = {.type = "Patient",
				      .id = "pat-1",
				      .key = "sys|1",
				      .json = "{}",
				      .json_len = 2};
	struct store_index x = {.receiver = R1,
				.bsn = "1",
				.sender = SENDER,
				.entries = &e,
				.n = 1};
	struct store_accept r = req("sh1", "sh1", "p", NULL, 0, T0);
	struct acks a = {.path = f->path};
	struct pollfd p = {.fd = store_notify_fd(f->s), .events = POLLIN};
	int64_t until;
	char sql[512];
	PGconn *c;
	PGresult *res;
	bool done;

	if (!on_pg) {
		skip(); /* PostgreSQL only */
		return;
	}
	r.direction = STORE_INBOUND;
	r.index = &x;
	r.nindex = 1;
	/* The first accept opens the writer's session. */
	assert_int_equal(store_submit_accept(f->s, &r, on_done, &a), GW_OK);
	pump(f->s, &a, 1);
	c = pg_connect();
	snprintf(sql, sizeof(sql),
		 "BEGIN; INSERT INTO rep_row (shard, hour, kind, receiver_ura,"
		 " state, cause, n) SELECT DISTINCT pid %% 8, %lld, 'inbound',"
		 " '" R1 "', '', '', 1 FROM pg_stat_activity WHERE"
		 " application_name = 'pzpgw' ON CONFLICT (shard, hour, kind,"
		 " receiver_ura, state, cause) DO UPDATE SET n = rep_row.n;"
		 " SELECT"
		 " pg_advisory_xact_lock(1887072359, s) FROM (SELECT DISTINCT"
		 " pid %% 8 AS s FROM pg_stat_activity WHERE application_name ="
		 " 'pzpgw') q",
		 (long long)(T0 / 3600000));
	res = PQexec(c, sql);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_true(PQntuples(res) >= 2 && PQntuples(res) < 8);
	PQclear(res);
	r.id = r.bundle_value = "sh2";
	assert_int_equal(store_submit_accept(f->s, &r, on_done, &a), GW_OK);
	until = util_wall_ms() + 3000;
	while (a.calls < 2 && util_wall_ms() < until)
		if (poll(&p, 1, 100) > 0)
			store_dispatch(f->s);
	done = a.calls == 2;
	/* Let a waiting writer go before asserting (teardown waits). */
	PQclear(PQexec(c, "ROLLBACK"));
	PQfinish(c);
	pump(f->s, &a, 2);
	assert_true(done); /* committed while the other held its rows */
	assert_int_equal(a.ok, 2);
	assert_int_equal(pg_sql("SELECT sum(n) FROM rep_row WHERE kind ="
				" 'inbound'"),
			 2);
}

/* Commit the test's transaction (and its lock) after a while. */
static void *
pg_commit_later(void *arg)
{
	PGconn *c = arg;

	nanosleep(&(struct timespec){0, 300000000L}, NULL);
	PQclear(PQexec(c, "COMMIT"));
	return NULL;
}

/*
 * PostgreSQL: a lane head delivered while the writer's transaction that
 * adds a row to the same lane is still open. The writer is held after
 * its outbox insert by a lock on the audit chain's head (its accept
 * carries an audit record); the head's finish must not miss that row:
 * once both committed the new row is the lane's head and claimable.
 */
static void
test_pg_lane_race(void **state)
{
	struct fixture *f = *state;
	const char *rc[1] = {R1};
	struct store_audit_rec rec = {.interaction = "create", .status = 202};
	struct store_accept r = req("l2", "l2", "p1", rc, 1, T0 + 1);
	struct acks a = {.path = f->path};
	PGconn *c;
	PGresult *res;
	pthread_t t;
	char got[64];

	if (!on_pg) {
		skip(); /* PostgreSQL only */
		return;
	}
	must_accept(f->s, "l1", "p1", R1, T0);
	claim_ids(f->s, NULL, T0 + 10, got, sizeof(got));
	assert_string_equal(got, "l1/" R1);
	c = pg_connect();
	res = PQexec(c, "BEGIN; SELECT seq FROM audit_head FOR UPDATE");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	util_strlcpy(rec.ura, SENDER, sizeof(rec.ura));
	r.audit = &rec;
	r.naudit = 1;
	assert_int_equal(store_submit_accept(f->s, &r, on_done, &a), GW_OK);
	/* Let the writer reach the lock, past its outbox insert. */
	nanosleep(&(struct timespec){0, 300000000L}, NULL);
	assert_int_equal(pthread_create(&t, NULL, pg_commit_later, c), 0);
	assert_int_equal(store_delivered(f->s, "l1", R1, 200, T0 + 11), GW_OK);
	pump(f->s, &a, 1);
	assert_int_equal(a.ok, 1);
	pthread_join(t, NULL);
	PQfinish(c);
	claim_ids(f->s, NULL, T0 + 20, got, sizeof(got));
	assert_string_equal(got, "l2/" R1);
}

/*
 * Two nodes on one database (PostgreSQL): a claim leases its rows to its
 * node. Another node starting recovers none of them, takes a row over
 * only once its lease expired (the lane's next row still waits), and the
 * first node's late result then changes nothing.
 */
static void
test_pg_lease(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {
	    .path = f->path, TEST_PG, .node = "node-a", .lease_ms = 1000};
	struct store *b = NULL;
	struct store_row *rows = NULL;
	char path_b[160], got[64];
	int64_t now, at = 0;
	size_t n = 99;

	if (!on_pg) {
		skip(); /* PostgreSQL only */
		return;
	}
	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	must_accept(f->s, "k1", "p1", R1, T0);
	must_accept(f->s, "k2", "p1", R1, T0 + 1);
	now = util_wall_ms();
	claim_ids(f->s, NULL, now, got, sizeof(got));
	assert_string_equal(got, "k1/" R1);
	/* Node a's own lease counts too: a claim it committed without
	   knowing (the connection broke at the commit) has no transfer
	   behind it, and its lane waits for nothing else. */
	assert_int_equal(store_next_due_at(f->s, &at), GW_OK);
	assert_int_equal(at, now + 1000);
	snprintf(path_b, sizeof(path_b), "%s/b.db", f->dir);
	o.path = path_b;
	o.node = "node-b";
	assert_int_equal(store_open(&o, &b), GW_OK);
	assert_int_equal(store_recover(b, &n), GW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(row_state(b, "k1", R1, NULL), STORE_INFLIGHT);
	/* Leased: node b waits for the expiry, then claims the head. */
	claim_ids(b, NULL, now + 999, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(store_next_due_at(b, &at), GW_OK);
	assert_int_equal(at, now + 1000);
	assert_int_equal(
	    store_claim(b, R1, now + 1000, now + 1000, 10, &rows, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].id, "k1");
	assert_int_equal(rows[0].attempts, 2);
	store_rows_free(rows, n);
	/* Node a's attempt outlived its lease: its result is void. */
	assert_int_equal(store_delivered(f->s, "k1", R1, 200, now + 1001),
			 GW_NOTFOUND);
	assert_int_equal(store_delivered(b, "k1", R1, 200, now + 1002), GW_OK);
	claim_ids(f->s, NULL, now + 1003, got, sizeof(got));
	assert_string_equal(got, "k2/" R1);
	store_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_accept_read_back, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_order_held_blocks, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_lanes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claim_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claim_early_attempt_time,
					    setup, teardown),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_actions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention_batches, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_marker, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_one_failing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_patient_type_index, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_notices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disk_need, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_later, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats_recent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reschedule, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_holds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upkeep_long_reader, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pg_rollup_shards, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_rollup_pulls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollup_inbound, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_index_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_versions, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_findings_full, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pg_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pg_finish_deferred, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pg_lane_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pg_lease, setup, teardown),
	};

	int failed;

	failed = cmocka_run_group_tests_name("store-sqlite", tests, NULL, NULL);
	pg_url = getenv("PZPGW_TEST_PG_URL");
	pg_pwfile = getenv("PZPGW_TEST_PG_PASSWORD_FILE");
	if (pg_url == NULL || pg_url[0] == '\0') {
		printf("store-postgresql: skipped (PZPGW_TEST_PG_URL unset; "
		       "make test-unit-pg starts a server)\n");
		return failed;
	}
	on_pg = true;
	failed +=
	    cmocka_run_group_tests_name("store-postgresql", tests, NULL, NULL);
	return failed;
}
