/*
 * The audit writer's timed waits against a wall clock that is off: with
 * this program's clock_gettime (a link-time fake) CLOCK_REALTIME reads an
 * hour ahead of the kernel's, as after the clock was set back. A record
 * gathered by the writer must still be committed within milliseconds,
 * not an hour later.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

/* The fake: the kernel's clocks, CLOCK_REALTIME an hour ahead. */
int
clock_gettime(clockid_t id, struct timespec *ts)
{
	long rc = syscall(SYS_clock_gettime, id, ts);

	if (rc == 0 && id == CLOCK_REALTIME)
		ts->tv_sec += 3600;
	return (int)rc;
}

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

static void
test_gather_wall_clock_ahead(void **state)
{
	char dir[64], path[128], p[160];
	const char *sfx[] = {"store.db", "store.db-wal", "store.db-shm",
			     "store.db" STORE_MARKER_SUFFIX};
	struct store_options o = {0};
	struct store_audit_rec r;
	struct store *s = NULL;
	int i;

	(void)state;
	util_strlcpy(dir, "/tmp/pzpgw-auditclk-XXXXXX", sizeof(dir));
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.db", dir);
	o.path = path;
	o.create = true;
	assert_int_equal(store_open(&o, &s), GW_OK);
	memset(&r, 0, sizeof(r));
	util_strlcpy(r.ura, "90000003", sizeof(r.ura));
	util_strlcpy(r.interaction, "read", sizeof(r.interaction));
	util_strlcpy(r.query, "/fhir/Goal/1", sizeof(r.query));
	util_strlcpy(r.request_id, "req-1", sizeof(r.request_id));
	r.status = 200;
	assert_int_equal(store_submit_audit(s, &r), GW_OK);
	/* No flush: the writer's own wait must end (2 s at most). */
	for (i = 0; i < 200 && audit_rows(path) < 1; i++)
		nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
	print_message("committed after about %d ms\n", i * 10);
	assert_int_equal(audit_rows(path), 1);
	store_free(s);
	for (size_t k = 0; k < UTIL_ARRAY_LEN(sfx); k++) {
		snprintf(p, sizeof(p), "%s/%s", dir, sfx[k]);
		unlink(p);
	}
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gather_wall_clock_ahead),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
