/*
 * `pzpgw store copy`: every table of one store into another, either
 * backend to either, read in one snapshot and written in one transaction,
 * then checked table by table (row count and SHA-256 of the rows).
 */
#ifndef GW_STORE_COPY_H
#define GW_STORE_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

/* What the copy does with a table of the schema. */
enum store_copy_kind {
	STORE_COPY_ROWS,    /* every row copied and compared */
	STORE_COPY_REBUILT, /* derived: the destination remakes it (its
			       triggers, or the key counters the copy
			       sets); never copied */
};

/* One table the copy knows. ROWS tables list every column, the key
 * (ORDER BY) first; the columns of a REBUILT table are not listed. */
struct store_copy_table {
	const char *name;
	const struct store_col *cols;
	const char *why; /* REBUILT: by what */
	size_t ncols, nkeys;
	enum store_copy_kind kind;
	bool counter; /* its key comes from a counter the copy carries */
	bool own_row; /* a new store already has its row (not "data") */
};

/* The table list (in copy order: parents before children). */
extern const struct store_copy_table store_copy_tables[];
extern const size_t store_copy_ntables;

/* The check of one ROWS table: rows and digest read from the source
 * (as copied: leases cleared) and from the destination. */
struct store_copy_sum {
	const char *table; /* borrowed from store_copy_tables */
	int64_t rows, dest_rows;
	int64_t counter, dest_counter;
	char sha256[65], dest_sha256[65];
};

#define STORE_COPY_SUMS_MAX 32

struct store_copy_report {
	struct store_copy_sum sums[STORE_COPY_SUMS_MAX];
	size_t nsums;
	bool equal; /* every sum equal on both sides (committed when
		       store_copy_run returned GW_OK) */
	/* GW_EXISTS (destination not empty) or GW_INVALID (a table or
	   column the list does not know): its name. */
	char what[128];
};

/*
 * Check that every table and column of s is in store_copy_tables.
 * GW_INVALID with the first unknown "table" or "table.column" in what
 * (n bytes); GW_OK otherwise.
 */
enum gw_err store_copy_check(struct store *s, char *what, size_t n);

/*
 * Copy every ROWS table of from into to (both open, same schema
 * version; from may be open read-only and in use by a daemon). to must
 * hold no data unless force (then its rows are deleted first, in the
 * same transaction). Outbox rows in flight arrive due, without a lease.
 * Key counters (message, index and audit seqs) are carried over. The
 * destination's transaction commits only when every table's rows and
 * digest read back equal the source's: GW_OK with rep->equal; GW_PERM
 * with !rep->equal otherwise (nothing committed). GW_EXISTS: to has
 * data (rep->what names the table). GW_DENIED: gateways are connected
 * to to's database (rep->what: how many). Other errors: the
 * backends'.
 */
enum gw_err store_copy_run(struct store *from, struct store *to, bool force,
			   struct store_copy_report *rep);

#endif
