/*
 * Backup, check and restore of the SQLite store, and the lock a running
 * daemon holds on it (STORE.lock). Copies go through SQLite's backup API,
 * never a file copy, so a store in WAL mode is copied with what its WAL
 * holds and while the daemon keeps writing.
 */
#define _DEFAULT_SOURCE /* flock(), fchown() */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_backup.h"
#include "store_sqlite.h"
#include "util.h"

/* Pages copied per sqlite3_backup_step (4 MB at 4 KiB pages). */
#define SB_STEP_PAGES 1024
#define SB_PATH_MAX   PATH_MAX
#define SB_BUSY_TRIES 1000 /* of 10 ms */

static void sb_say(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The line saying what failed, into err when the caller wants one. */
static void
sb_say(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || n == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

static enum gw_err
sb_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return GW_OK;
	case SQLITE_NOMEM:
		return GW_NOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return GW_TEMP;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return GW_INVALID;
	default:
		return GW_IO;
	}
}

/* A store file read-only, writing nothing beside it (store_sqlite.h). */
static enum gw_err
sb_open_ro(const char *path, sqlite3 **db)
{
	enum gw_err err;
	int rc;

	err = store_sqlite_open_ro(path, db, &rc);
	if (err == GW_IO && rc != SQLITE_OK)
		return sb_err(rc);
	if (err == GW_CONFIG)
		return GW_IO;
	if (err == GW_OK)
		sqlite3_busy_timeout(*db, 5000);
	return err;
}

/* One integer from a one-row query. */
static enum gw_err
sb_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	*out = 0;
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? GW_NOTFOUND : sb_err(rc);
}

/* Schema version, size and rows per table of db into info. */
static enum gw_err
sb_describe(sqlite3 *db, struct store_copy_info *info)
{
	sqlite3_stmt *st = NULL;
	int64_t v, pages, size;
	enum gw_err err;
	int rc;

	if ((err = sb_int(db, "PRAGMA user_version", &v)) != GW_OK)
		return err;
	info->schema = v > INT32_MAX ? INT32_MAX : (int)v;
	if ((err = sb_int(db, "PRAGMA page_count", &pages)) != GW_OK ||
	    (err = sb_int(db, "PRAGMA page_size", &size)) != GW_OK)
		return err;
	info->bytes = (uint64_t)pages * (uint64_t)size;
	rc = sqlite3_prepare_v2(db,
				"SELECT name FROM sqlite_master WHERE type = "
				"'table' AND name NOT LIKE 'sqlite_%' "
				"ORDER BY name",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		char *sql;

		if (name == NULL || info->ntables == STORE_COPY_TABLES_MAX)
			continue;
		/* %w: the name quoted as an identifier (a file given to
		   restore is the operator's, not necessarily ours). */
		sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
		if (sql == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		util_strlcpy(info->tables[info->ntables].name, name,
			     sizeof(info->tables[0].name));
		err = sb_int(db, sql, &info->tables[info->ntables].rows);
		sqlite3_free(sql);
		if (err != GW_OK) {
			sqlite3_finalize(st);
			return err;
		}
		info->ntables++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? GW_OK : sb_err(rc);
}

int64_t
store_copy_rows(const struct store_copy_info *info, const char *name)
{
	for (size_t i = 0; i < info->ntables; i++)
		if (strcmp(info->tables[i].name, name) == 0)
			return info->tables[i].rows;
	return -1;
}

enum gw_err
store_check_file(const char *path, struct store_copy_info *info)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	enum gw_err err;
	int rc;

	memset(info, 0, sizeof(*info));
	if ((err = sb_open_ro(path, &db)) != GW_OK) {
		if (err == GW_INVALID)
			util_strlcpy(info->problem, "not a regular file",
				     sizeof(info->problem));
		goto out;
	}
	rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *first = (const char *)sqlite3_column_text(st, 0);

		if (first == NULL || strcmp(first, "ok") != 0) {
			util_strlcpy(info->problem, first ? first : "no answer",
				     sizeof(info->problem));
			err = GW_INVALID;
			goto out;
		}
	} else {
		/* Not even readable as a database (SQLITE_NOTADB, CORRUPT). */
		util_strlcpy(info->problem, sqlite3_errstr(rc),
			     sizeof(info->problem));
		err = sb_err(rc) == GW_IO ? GW_IO : GW_INVALID;
		goto out;
	}
	if ((err = sb_describe(db, info)) != GW_OK) {
		util_strlcpy(info->problem, sqlite3_errmsg(db),
			     sizeof(info->problem));
		goto out;
	}
	if (info->schema > STORE_SQLITE_SCHEMA) {
		snprintf(info->problem, sizeof(info->problem),
			 "schema version %d is newer than this binary's (%d)",
			 info->schema, STORE_SQLITE_SCHEMA);
		err = GW_CONFIG;
	} else if (info->schema < 1 || store_copy_rows(info, "messages") < 0) {
		util_strlcpy(info->problem, "not a pzpgw store",
			     sizeof(info->problem));
		err = GW_INVALID;
	}
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return err;
}

/* fsync the directory holding path (a rename in it to last). */
static enum gw_err
sb_sync_dir(const char *path)
{
	char dir[SB_PATH_MAX];
	char *slash;
	int fd, rc;

	util_strlcpy(dir, path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		util_strlcpy(dir, ".", sizeof(dir));
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return GW_IO;
	rc = fsync(fd);
	close(fd);
	return rc == 0 ? GW_OK : GW_IO;
}

/*
 * Copy the open source db into the file at tmp (created and locked by the
 * caller) in steps, inside one read transaction of the source: its pages
 * are one snapshot however many commits land meanwhile (without it each
 * step would see the daemon's commits and restart the copy).
 */
static enum gw_err
sb_copy(sqlite3 *src, const char *tmp, char *err, size_t errlen)
{
	sqlite3_backup *b = NULL;
	sqlite3 *dst = NULL;
	enum gw_err rc_err = GW_OK;
	int64_t v;
	int rc;

	if (sqlite3_exec(src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sb_int(src, "SELECT count(*) FROM sqlite_master", &v) != GW_OK) {
		sb_say(err, errlen, "cannot read the store: %s",
		       sqlite3_errmsg(src));
		rc_err = GW_IO;
		goto out;
	}
	rc = sqlite3_open_v2(tmp, &dst,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sb_say(err, errlen, "cannot open the copy: %s",
		       sqlite3_errstr(rc));
		rc_err = sb_err(rc);
		goto out;
	}
	/* The copy is a new file that is checked before it is used: a
	   rollback journal beside it would protect nothing. synchronous
	   FULL: the pages are on disk when the copy's transaction ends. */
	if (sqlite3_exec(dst,
			 "PRAGMA journal_mode = OFF; "
			 "PRAGMA synchronous = FULL",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    (b = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
		sb_say(err, errlen, "cannot start the backup: %s",
		       sqlite3_errmsg(dst));
		rc_err = GW_IO;
		goto out;
	}
	for (unsigned busy = 0;;) {
		rc = sqlite3_backup_step(b, SB_STEP_PAGES);
		if (rc == SQLITE_OK)
			continue;
		/* Busy is not expected (the read transaction is open and
		   the copy is ours alone); bounded anyway: 10 s. */
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
		    ++busy < SB_BUSY_TRIES) {
			sqlite3_sleep(10);
			continue;
		}
		break;
	}
	if (rc != SQLITE_DONE) {
		sb_say(err, errlen, "backup failed: %s", sqlite3_errstr(rc));
		rc_err = sb_err(rc) == GW_OK ? GW_IO : sb_err(rc);
	}
out:
	if (b != NULL && sqlite3_backup_finish(b) != SQLITE_OK &&
	    rc_err == GW_OK) {
		sb_say(err, errlen, "backup failed: %s", sqlite3_errmsg(dst));
		rc_err = GW_IO;
	}
	if (dst != NULL && sqlite3_close(dst) != SQLITE_OK && rc_err == GW_OK)
		rc_err = GW_IO;
	if (!sqlite3_get_autocommit(src))
		(void)sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
	return rc_err;
}

/*
 * Make tmp (dest + ".tmp", mode 0600) for a copy: locked with flock so
 * that two copies to the same place at once cannot interleave (the second
 * gets GW_EXISTS), emptied (a stale one from a copy that died is reused).
 */
static enum gw_err
sb_tmp_open(const char *tmp, int *fd)
{
	*fd = open(tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return GW_IO;
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
		enum gw_err e = errno == EWOULDBLOCK ? GW_EXISTS : GW_IO;

		close(*fd);
		*fd = -1;
		return e;
	}
	if (ftruncate(*fd, 0) != 0 || fchmod(*fd, 0600) != 0) {
		close(*fd);
		*fd = -1;
		return GW_IO;
	}
	return GW_OK;
}

/* Whether a and b name the same file (b may not exist). */
static bool
sb_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Copy the store at src to tmp, fsync, check; info filled. */
static enum gw_err
sb_copy_checked(sqlite3 *src, const char *tmp, int fd,
		struct store_copy_info *info, char *err, size_t errlen)
{
	enum gw_err e;

	if ((e = sb_copy(src, tmp, err, errlen)) != GW_OK)
		return e;
	if (fsync(fd) != 0) {
		sb_say(err, errlen, "cannot sync %s", tmp);
		return GW_IO;
	}
	e = store_check_file(tmp, info);
	if (e == GW_INVALID || e == GW_CONFIG)
		sb_say(err, errlen, "the copy fails its check: %s",
		       info->problem);
	else if (e != GW_OK)
		sb_say(err, errlen, "cannot check the copy: %s",
		       gw_strerror(e));
	return e == GW_CONFIG ? GW_INVALID : e;
}

enum gw_err
store_backup(const char *src, const char *dest, struct store_copy_info *info,
	     char *err, size_t errlen)
{
	char tmp[SB_PATH_MAX];
	sqlite3 *db = NULL;
	struct stat st;
	enum gw_err e;
	int fd = -1, rc;

	memset(info, 0, sizeof(*info));
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", dest) >= sizeof(tmp)) {
		sb_say(err, errlen, "path too long: %s", dest);
		return GW_IO;
	}
	if (stat(src, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		sb_say(err, errlen, "no store at %s", src);
		return GW_NOTFOUND;
	}
	if (sb_same_file(src, dest)) {
		sb_say(err, errlen, "%s is the store itself", dest);
		return GW_PERM;
	}
	/* Read-write without create, as the daemon's own connections: the
	   -wal and -shm of a running daemon are shared, and without one
	   SQLite makes them (owned like the store when run as root) and
	   removes them at close. Read-only would leave them behind. */
	rc = sqlite3_open_v2(src, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sb_say(err, errlen, "cannot open the store: %s",
		       sqlite3_errstr(rc));
		sqlite3_close(db);
		return sb_err(rc);
	}
	sqlite3_busy_timeout(db, 10000);
	if ((e = sb_tmp_open(tmp, &fd)) != GW_OK) {
		if (e == GW_EXISTS)
			sb_say(err, errlen, "another backup to %s is running",
			       dest);
		else
			sb_say(err, errlen, "cannot create %s: %s", tmp,
			       strerror(errno));
		sqlite3_close(db);
		return e;
	}
	e = sb_copy_checked(db, tmp, fd, info, err, errlen);
	sqlite3_close(db);
	if (e == GW_OK && rename(tmp, dest) != 0) {
		sb_say(err, errlen, "cannot rename the copy to %s: %s", dest,
		       strerror(errno));
		e = GW_IO;
	}
	if (e == GW_OK && sb_sync_dir(dest) != GW_OK) {
		sb_say(err, errlen, "cannot sync the directory of %s", dest);
		e = GW_IO;
	}
	/* A copy that failed goes: only a checked one may ever sit at
	   dest (or where an operator could take it for one). */
	if (e != GW_OK)
		unlink(tmp);
	close(fd);
	return e;
}

/* The owner of the directory holding path. */
static bool
sb_dir_owner(const char *path, uid_t *uid, gid_t *gid)
{
	char dir[SB_PATH_MAX];
	char *slash;
	struct stat st;

	util_strlcpy(dir, path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		util_strlcpy(dir, ".", sizeof(dir));
	if (stat(dir, &st) != 0)
		return false;
	*uid = st.st_uid;
	*gid = st.st_gid;
	return true;
}

/* The pid written in a lock file, 0 when none. */
static long
sb_lock_pid(int fd)
{
	char buf[24];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long long v;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return util_parse_ll(buf, 1, INT32_MAX, &v) == GW_OK ? (long)v : 0;
}

enum gw_err
store_lock_take(const char *store_path, int *fd, long *holder)
{
	char path[SB_PATH_MAX], pid[24];
	uid_t uid;
	gid_t gid;
	int len;

	*fd = -1;
	*holder = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s%s", store_path,
			     STORE_LOCK_SUFFIX) >= sizeof(path))
		return GW_IO;
	/* Never unlinked: removing a lock file lets two processes lock two
	   different files of the same name. */
	*fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (*fd < 0)
		return GW_IO;
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
		enum gw_err e = errno == EWOULDBLOCK ? GW_EXISTS : GW_IO;

		*holder = sb_lock_pid(*fd);
		close(*fd);
		*fd = -1;
		return e;
	}
	/* Made by root (restore): the daemon's user must open it later. */
	if (geteuid() == 0 && sb_dir_owner(store_path, &uid, &gid) &&
	    fchown(*fd, uid, gid) != 0) {
		close(*fd);
		*fd = -1;
		return GW_IO;
	}
	/* The pid is only for the messages of whoever finds it taken; the
	   lock is what counts, so a failed write is no failure. */
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(*fd, 0) == 0 &&
	    pwrite(*fd, pid, (size_t)len, 0) != (ssize_t)len)
		log_debug("event=store_lock_pid_not_written");
	return GW_OK;
}

/* Messages in the store at path that the database attached as "src" lacks;
 * -1 when the store cannot be read. */
static int64_t
sb_only_in(const char *path, const char *src)
{
	char uri[3 * SB_PATH_MAX + 64];
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int64_t n = -1;

	if (sb_open_ro(path, &db) != GW_OK)
		goto out;
	if (!store_sqlite_uri(src, "mode=ro&immutable=1", uri, sizeof(uri)))
		goto out;
	if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS src", -1, &st,
			       NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	if (sb_int(db,
		   "SELECT count(*) FROM main.messages WHERE id NOT IN "
		   "(SELECT id FROM src.messages)",
		   &n) != GW_OK)
		n = -1;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* path + suffix into out. */
static bool
sb_join(char *out, size_t n, const char *path, const char *suffix)
{
	int w = snprintf(out, n, "%s%s", path, suffix);

	return w > 0 && (size_t)w < n;
}

/* Undo sb_keep_old when the new store could not be put in place. */
static void
sb_unkeep(const char *path, const char *kept)
{
	char a[SB_PATH_MAX], b[SB_PATH_MAX];

	if (sb_join(a, sizeof(a), kept, "-wal") &&
	    sb_join(b, sizeof(b), path, "-wal") && rename(a, b) != 0 &&
	    errno != ENOENT)
		return; /* keep the name: the -wal is only there now */
	(void)unlink(kept);
}

/*
 * Keep the store at path as kept: a hard link to the database (the path
 * itself is replaced by a rename afterwards, so it never goes missing),
 * its -wal moved beside it under the matching name (the committed
 * transactions a crash left there belong to that database, and would
 * corrupt any other one), its -shm removed (rebuilt from the -wal).
 */
static enum gw_err
sb_keep_old(const char *path, const char *kept)
{
	char a[SB_PATH_MAX], b[SB_PATH_MAX];

	/* EEXIST (the same second twice) undoes nothing: not ours. */
	if (link(path, kept) != 0)
		return GW_IO;
	if (!sb_join(a, sizeof(a), path, "-wal") ||
	    !sb_join(b, sizeof(b), kept, "-wal"))
		goto undo;
	if (rename(a, b) != 0 && errno != ENOENT)
		goto undo;
	if (!sb_join(a, sizeof(a), path, "-shm"))
		goto undo;
	if (unlink(a) != 0 && errno != ENOENT)
		goto undo;
	return GW_OK;
undo:
	sb_unkeep(path, kept);
	return GW_IO;
}

enum gw_err
store_restore(const char *src, const char *store_path, bool force,
	      struct store_restore_info *info, long *holder, char *err,
	      size_t errlen)
{
	char tmp[SB_PATH_MAX], stamp[32];
	struct stat old;
	sqlite3 *db = NULL;
	enum gw_err e;
	int lock = -1, fd = -1;
	uid_t uid;
	gid_t gid;
	time_t now = time(NULL);
	struct tm tm;

	memset(info, 0, sizeof(*info));
	info->only_in_old = -1;
	*holder = 0;
	if (sb_same_file(src, store_path)) {
		sb_say(err, errlen, "%s is the store itself", src);
		return GW_PERM;
	}
	e = store_check_file(src, &info->src);
	if (e == GW_NOTFOUND) {
		sb_say(err, errlen, "no backup at %s", src);
		return e;
	}
	if (e != GW_OK) {
		sb_say(err, errlen, "%s fails its check: %s", src,
		       info->src.problem[0] ? info->src.problem
					    : gw_strerror(e));
		return e == GW_IO ? GW_IO : e;
	}
	if ((e = store_lock_take(store_path, &lock, holder)) != GW_OK) {
		sb_say(err, errlen,
		       e == GW_EXISTS
			   ? "the store %s is in use by a running gateway"
			   : "cannot lock the store %s",
		       store_path);
		return e;
	}
	/* From here the lock keeps a daemon from starting on the store. */
	info->had_store = stat(store_path, &old) == 0;
	if (info->had_store) {
		info->only_in_old = sb_only_in(store_path, src);
		if (info->only_in_old > 0 && !force) {
			char n[24];

			snprintf(n, sizeof(n), "%lld",
				 (long long)info->only_in_old);
			sb_say(err, errlen,
			       "the store holds %s message(s) that %s lacks "
			       "(accepted after the backup was made)",
			       n, src);
			e = GW_DENIED;
			goto out;
		}
		uid = old.st_uid;
		gid = old.st_gid;
	} else if (!sb_dir_owner(store_path, &uid, &gid)) {
		sb_say(err, errlen, "no directory for %s", store_path);
		e = GW_IO;
		goto out;
	}
	if (!sb_join(tmp, sizeof(tmp), store_path, ".restore.tmp")) {
		e = GW_IO;
		goto out;
	}
	if ((e = sb_tmp_open(tmp, &fd)) != GW_OK) {
		sb_say(err, errlen, "cannot create %s", tmp);
		goto out;
	}
	/* Owned like the store it replaces (restore runs as root, the
	   daemon as its own user), mode 0600 or the old one's. */
	if ((geteuid() == 0 && fchown(fd, uid, gid) != 0) ||
	    (info->had_store && fchmod(fd, old.st_mode & 0660) != 0)) {
		sb_say(err, errlen, "cannot set the owner of %s: %s", tmp,
		       strerror(errno));
		e = GW_IO;
		goto out;
	}
	if ((e = sb_open_ro(src, &db)) != GW_OK) {
		sb_say(err, errlen, "cannot open %s", src);
		goto out;
	}
	if ((e = sb_copy_checked(db, tmp, fd, &info->src, err, errlen)) !=
	    GW_OK)
		goto out;
	if (info->had_store) {
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
		if (snprintf(info->kept, sizeof(info->kept),
			     "%s.before-restore-%s", store_path,
			     stamp) >= (int)sizeof(info->kept) ||
		    sb_keep_old(store_path, info->kept) != GW_OK) {
			sb_say(err, errlen,
			       "cannot keep the old store as %s: %s",
			       info->kept, strerror(errno));
			info->kept[0] = '\0';
			e = GW_IO;
			goto out;
		}
	}
	if (rename(tmp, store_path) != 0) {
		sb_say(err, errlen, "cannot rename the copy to %s: %s",
		       store_path, strerror(errno));
		/* The old store stays where it was: its -wal goes back
		   beside it, the kept name goes. */
		if (info->kept[0] != '\0')
			sb_unkeep(store_path, info->kept);
		info->kept[0] = '\0';
		e = GW_IO;
		goto out;
	}
	if (sb_sync_dir(store_path) != GW_OK) {
		sb_say(err, errlen, "cannot sync the directory of %s",
		       store_path);
		e = GW_IO;
	}
out:
	sqlite3_close(db);
	if (fd >= 0) {
		if (e != GW_OK)
			unlink(tmp);
		close(fd);
	}
	if (lock >= 0)
		close(lock);
	return e;
}
