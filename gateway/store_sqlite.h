/*
 * What the SQLite backend (store_sqlite.c) lends to the other files that
 * open a store file themselves (store_backup.c), so both open it alike.
 */
#ifndef GW_STORE_SQLITE_H
#define GW_STORE_SQLITE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* The "file:" URI of path for sqlite3_open_v2 with SQLITE_OPEN_URI (or
 * ATTACH), with query (without its '?'; percent-encoded path, empty
 * authority so a path starting with "//" is never a host). False when it
 * does not fit in n bytes. */
bool store_sqlite_uri(const char *path, const char *query, char *out, size_t n);

/*
 * Open the store file at path read-only, writing nothing beside it:
 * without a -wal file no connection has it open and the file is
 * complete, so it is opened immutable (no -wal or -shm made, no locks);
 * with one, a gateway may be running and its WAL is read through
 * SQLite's read-only WAL support. On success *db is the caller's (close
 * it with sqlite3_close). Returns GW_OK, GW_NOTFOUND (no file, or an
 * empty one), GW_INVALID (not a regular file), GW_CONFIG (path too
 * long) or GW_IO (SQLite could not open it: *rc is its result code,
 * SQLITE_OK otherwise).
 */
enum gw_err store_sqlite_open_ro(const char *path, sqlite3 **db, int *rc);

#endif
