/*
 * store_backup.c against real SQLite files: a backup taken while another
 * connection keeps committing finishes and is one snapshot (every message
 * up to some seq, none after); the check of a file sorts stores from
 * everything else; STORE.lock is exclusive and names its holder.
 */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_backup.h"
#include "util.h"
#include "store_v1.h"

#define SENDER	 "12345678"
#define RECEIVER "00000001"
#define BIG_DOC	 (128 * 1024)
#define BIG_N	 300

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	atomic_int accepted;
	atomic_bool stop;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_options o = {0};

	assert_non_null(f);
	util_strlcpy(f->dir, "/tmp/pzpgw-backup-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	o.path = f->path;
	o.create = true;
	o.quiet = true;
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	store_free(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
accept_one(struct store *s, int n, const char *doc, size_t len)
{
	const char *rc[1] = {RECEIVER};
	char id[32], patient[16];
	struct store_accept r = {
	    .id = id,
	    .direction = STORE_OUTBOUND,
	    .sender_ura = SENDER,
	    .bundle_system = "urn:ietf:rfc:3986",
	    .bundle_value = id,
	    .patient_key = patient,
	    .fhir_version = "4.0.1",
	    .doc = doc,
	    .doc_len = len,
	    .sha256 = "ab12",
	    .answer_status = 202,
	    .receivers = rc,
	    .nreceivers = 1,
	};
	struct store_result res;

	snprintf(id, sizeof(id), "m%d", n);
	snprintf(patient, sizeof(patient), "p%d", n % 5);
	assert_int_equal(store_accept(s, &r, &res), GW_OK);
	store_result_cleanup(&res);
}

/* Another connection committing one small message after another. */
static void *
writer(void *arg)
{
	struct fx *f = arg;
	static const char doc[] = "{\"resourceType\":\"Bundle\"}";

	for (int n = BIG_N; !atomic_load(&f->stop); n++) {
		accept_one(f->s, n, doc, sizeof(doc) - 1);
		atomic_fetch_add(&f->accepted, 1);
	}
	return NULL;
}

static void
on_alarm(int sig)
{
	(void)sig;
	/* A copy that restarts at every commit never ends. */
	fprintf(stderr, "store_backup did not finish under writes\n");
	_exit(3);
}

static void
test_snapshot_under_writes(void **state)
{
	struct fx *f = *state;
	struct store_copy_info info;
	char dest[160], err[256] = "";
	char *doc = malloc(BIG_DOC);
	int64_t max_seq = 0, count = 0;
	int before, during;
	pthread_t t;
	sqlite3 *db;

	assert_non_null(doc);
	/* ~40 MB of pages: the copy takes many steps. */
	for (int i = 0; i < BIG_N; i++) {
		memset(doc, 'a' + i % 26, BIG_DOC);
		accept_one(f->s, i, doc, BIG_DOC);
	}
	free(doc);
	snprintf(dest, sizeof(dest), "%s/copy.db", f->dir);
	assert_int_equal(pthread_create(&t, NULL, writer, f), 0);
	while (atomic_load(&f->accepted) < 3)
		usleep(1000);
	signal(SIGALRM, on_alarm);
	alarm(120);
	before = atomic_load(&f->accepted);
	if (store_backup(f->path, dest, &info, err, sizeof(err)) != GW_OK)
		fail_msg("store_backup: %s", err);
	during = atomic_load(&f->accepted) - before;
	alarm(0);
	atomic_store(&f->stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* The writer went on meanwhile, or this proves nothing. */
	if (during < 1)
		fail_msg("got %d commits during the backup, want some", during);
	assert_int_equal(info.schema, STORE_SQLITE_SCHEMA);
	assert_true(info.bytes > (uint64_t)BIG_N * BIG_DOC);
	/* One snapshot: messages 1..k without a gap, at least every one
	   committed before the backup began. */
	assert_int_equal(sqlite3_open_v2(dest, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(db,
						    "SELECT count(*), max(seq) "
						    "FROM messages",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		count = sqlite3_column_int64(st, 0);
		max_seq = sqlite3_column_int64(st, 1);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	if (count != max_seq)
		fail_msg("got %lld messages up to seq %lld, want no gap",
			 (long long)count, (long long)max_seq);
	if (count < BIG_N + before)
		fail_msg("got %lld messages, want at least %d (committed "
			 "before the backup)",
			 (long long)count, BIG_N + before);
	assert_int_equal(store_copy_rows(&info, "messages"), count);
	{
		struct stat sb;

		assert_int_equal(stat(dest, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void
sql(const char *path, const char *q)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
test_check_file(void **state)
{
	struct fx *f = *state;
	struct store_copy_info info;
	char p[160], err[256];

	snprintf(p, sizeof(p), "%s/missing.db", f->dir);
	assert_int_equal(store_check_file(p, &info), GW_NOTFOUND);
	snprintf(p, sizeof(p), "%s/empty.db", f->dir);
	write_file(p, "");
	assert_int_equal(store_check_file(p, &info), GW_NOTFOUND);
	snprintf(p, sizeof(p), "%s/junk.db", f->dir);
	write_file(p, "this is no database, not even close to one ........");
	assert_int_equal(store_check_file(p, &info), GW_INVALID);
	assert_true(info.problem[0] != '\0');
	snprintf(p, sizeof(p), "%s/other.db", f->dir);
	sql(p, "CREATE TABLE t (x); PRAGMA user_version = 3");
	assert_int_equal(store_check_file(p, &info), GW_INVALID);
	assert_string_equal(info.problem, "not a pzpgw store");
	/* A real store, then one a newer binary made. */
	accept_one(f->s, 1, "{}", 2);
	snprintf(p, sizeof(p), "%s/copy.db", f->dir);
	assert_int_equal(store_backup(f->path, p, &info, err, sizeof(err)),
			 GW_OK);
	assert_int_equal(store_check_file(p, &info), GW_OK);
	assert_int_equal(store_copy_rows(&info, "messages"), 1);
	assert_int_equal(store_copy_rows(&info, "no_such_table"), -1);
	sql(p, "PRAGMA user_version = 99");
	assert_int_equal(store_check_file(p, &info), GW_CONFIG);
	/* The store itself as DEST: refused, untouched. */
	assert_int_equal(
	    store_backup(f->path, f->path, &info, err, sizeof(err)), GW_PERM);
}

static void
test_lock(void **state)
{
	struct fx *f = *state;
	int a, b;
	long holder;

	assert_int_equal(store_lock_take(f->path, &a, &holder), GW_OK);
	/* flock is per open file: a second open, even in this process, is
	   another holder. */
	assert_int_equal(store_lock_take(f->path, &b, &holder), GW_EXISTS);
	assert_int_equal(b, -1);
	if (holder != (long)getpid())
		fail_msg("got holder %ld, want %ld", holder, (long)getpid());
	close(a);
	assert_int_equal(store_lock_take(f->path, &b, &holder), GW_OK);
	close(b);
}

/* schema_v1: store_v1.h */

static bool
has_message(const char *path, const char *id)
{
	struct store_options o = {
	    .path = path, .readonly = true, .quiet = true};
	struct store_message *m = NULL;
	struct store *s = NULL;
	enum gw_err e;

	assert_int_equal(store_open(&o, &s), GW_OK);
	e = store_show(s, id, false, &m);
	store_message_free(m);
	store_free(s);
	assert_true(e == GW_OK || e == GW_NOTFOUND);
	return e == GW_OK;
}

static void
test_restore_older_schema(void **state)
{
	struct fx *f = *state;
	struct store_options o = {.quiet = true};
	struct store_restore_info info;
	char v1[160], err[256] = "";
	struct store *s = NULL;
	long holder;
	int lock;

	accept_one(f->s, 1, "{}", 2); /* "m1": not in the backup */
	store_free(f->s);
	f->s = NULL;
	snprintf(v1, sizeof(v1), "%s/v1.db", f->dir);
	sql(v1, schema_v1);
	/* Another process has the store (a running gateway): refused. */
	assert_int_equal(store_lock_take(f->path, &lock, &holder), GW_OK);
	assert_int_equal(
	    store_restore(v1, f->path, true, &info, &holder, err, sizeof(err)),
	    GW_EXISTS);
	assert_int_equal(holder, (long)getpid());
	close(lock);
	assert_true(has_message(f->path, "m1"));
	/* m1 would be lost: refused without force, with the count. */
	assert_int_equal(
	    store_restore(v1, f->path, false, &info, &holder, err, sizeof(err)),
	    GW_DENIED);
	assert_int_equal(info.only_in_old, 1);
	assert_true(has_message(f->path, "m1"));
	assert_int_equal(
	    store_restore(v1, f->path, true, &info, &holder, err, sizeof(err)),
	    GW_OK);
	assert_int_equal(info.src.schema, 1);
	assert_true(info.kept[0] != '\0');
	assert_true(has_message(info.kept, "m1"));
	/* The next opening migrates the restored store, rows kept. */
	o.path = f->path;
	assert_int_equal(store_open(&o, &s), GW_OK);
	assert_int_equal(store_schema_version(s), STORE_SQLITE_SCHEMA);
	store_free(s);
	assert_true(has_message(f->path, "old-1"));
	assert_true(has_message(f->path, "old-2"));
	assert_false(has_message(f->path, "m1"));
}

/* A gateway killed after a commit: its -wal holds the commit (no
 * checkpoint ran). Restore keeps the old store with that -wal, so the
 * kept copy has the message, and the restored store gets none of it. */
static void
test_restore_after_crash_keeps_the_wal(void **state)
{
	struct fx *f = *state;
	struct store_restore_info info;
	char backup[160], wal[4200], err[256] = "";
	struct stat sb;
	long holder;
	pid_t pid;
	int status;

	snprintf(backup, sizeof(backup), "%s/backup.db", f->dir);
	accept_one(f->s, 1, "{}", 2);
	assert_int_equal(
	    store_backup(f->path, backup, &info.src, err, sizeof(err)), GW_OK);
	store_free(f->s);
	f->s = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store_options o = {.path = f->path, .quiet = true};
		struct store *s = NULL;

		if (store_open(&o, &s) != GW_OK)
			_exit(2);
		accept_one(s, 2, "{}", 2);
		_exit(0); /* no close, no checkpoint: like kill -9 */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_true(sb.st_size > 0);
	assert_int_equal(store_restore(backup, f->path, true, &info, &holder,
				       err, sizeof(err)),
			 GW_OK);
	assert_int_equal(info.only_in_old, 1);
	/* The restored store stands alone; the kept one has its -wal. */
	assert_int_equal(stat(wal, &sb), -1);
	snprintf(wal, sizeof(wal), "%s-wal", info.kept);
	assert_int_equal(stat(wal, &sb), 0);
	assert_true(has_message(info.kept, "m2"));
	assert_true(has_message(f->path, "m1"));
	assert_false(has_message(f->path, "m2"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_snapshot_under_writes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_check_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_older_schema, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_restore_after_crash_keeps_the_wal, setup, teardown),
	};

	log_init(LOG_TO_STDERR, false, "test_store_backup");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
