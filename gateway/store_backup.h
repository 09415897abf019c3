/*
 * Copies of the SQLite store an operator can trust: an online backup
 * (consistent while the daemon accepts), the check of a copy, restore, and
 * the lock a running daemon holds on its store (STORE.lock) so that a
 * restore never swaps the file under it.
 */
#ifndef GW_STORE_BACKUP_H
#define GW_STORE_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define STORE_LOCK_SUFFIX     ".lock"
#define STORE_COPY_TABLES_MAX 32

/* What a store file holds: never content, only counts. */
struct store_copy_info {
	int schema;	/* PRAGMA user_version: 0 for no store */
	uint64_t bytes; /* the database file's size */
	size_t ntables;
	struct {
		char name[64];
		int64_t rows;
	} tables[STORE_COPY_TABLES_MAX];
	/* The first line integrity_check reported, when it failed. */
	char problem[256];
};

/* Rows of table name in info, or -1 when it has no such table. */
int64_t store_copy_rows(const struct store_copy_info *info, const char *name);

/*
 * Open the store file at path read-only without writing anything beside
 * it, run PRAGMA integrity_check and describe it into *info. GW_OK when
 * the check passes and it is a store of a schema this binary knows;
 * GW_INVALID (info->problem says why) for a failed check or a file that is
 * not a store; GW_CONFIG for a schema newer than this binary's;
 * GW_NOTFOUND when there is no file; GW_IO otherwise.
 */
enum gw_err store_check_file(const char *path, struct store_copy_info *info);

/*
 * Online backup of the store at src into dest: SQLite's backup API in
 * steps inside one read transaction (a snapshot: the daemon keeps
 * committing meanwhile and the copy holds exactly what was committed when
 * it began), written to dest.tmp (mode 0600; a second backup to the same
 * dest at once is refused with GW_EXISTS), fsynced, checked with
 * store_check_file (*info), then renamed to dest and the directory synced.
 * GW_INVALID when the copy fails the check (dest is then left as it was,
 * the temporary file removed); GW_NOTFOUND when src is no store; GW_PERM
 * when dest names the store itself; GW_IO/GW_NOMEM/GW_TEMP otherwise.
 * err (may be NULL) gets a line saying what failed.
 */
enum gw_err store_backup(const char *src, const char *dest,
			 struct store_copy_info *info, char *err,
			 size_t errlen);

/*
 * The daemon's lock: STORE.lock beside the store, flock()ed exclusively
 * for the process's life with its pid written in it. GW_OK and *fd (close
 * it to release, or let the process end); GW_EXISTS when another process
 * holds it (*holder: its pid, or 0 when unknown); GW_IO otherwise.
 * Never blocks. A lock file made by root is given the store directory's
 * owner, so that the daemon's user can take it later.
 */
enum gw_err store_lock_take(const char *store_path, int *fd, long *holder);

/* What store_restore did. */
struct store_restore_info {
	struct store_copy_info src; /* the copy put in place */
	bool had_store;		    /* a store was at the path before */
	char kept[4096];	    /* where that one is now ("" if none) */
	/* Messages in the store that was replaced and not in src (counted
	   when that store could be read; -1 when it could not). */
	int64_t only_in_old;
};

/*
 * Put the backup src in place of the store at store_path: src checked
 * (store_check_file; a schema older than this binary's is fine, the next
 * start migrates it), refused with GW_EXISTS (*info.only_in_old unset,
 * holder in *holder) while another process holds STORE.lock, refused with
 * GW_DENIED when the current store holds messages src lacks and !force;
 * otherwise the current store (with its -wal) is kept as
 * STORE.before-restore-<UTC time> and a copy of src, owned like the store
 * it replaces, is renamed into place. GW_INVALID/GW_CONFIG from the check
 * of src; GW_IO/GW_NOMEM otherwise. err gets a line saying why.
 */
enum gw_err store_restore(const char *src, const char *store_path, bool force,
			  struct store_restore_info *info, long *holder,
			  char *err, size_t errlen);

#endif
