/*
 * Usage insight (`pzpgw report`): aggregate counts over the store's
 * outbox rows, inbound messages and audit records, fed one record at a
 * time, then written as text, JSON or CSV. Only organisation URAs,
 * states, versions, causes and counts are kept: never a BSN (patients
 * are only counted distinct per organisation), a name of a person or
 * content. Counts from 1 to 4 are written "<5" unless exact, so no
 * aggregate points at one patient.
 */
#ifndef GW_REPORT_H
#define GW_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

struct config;
struct store;
struct store_row;
struct store_inbox;
struct store_audit_rec;

enum report_by {
	REPORT_BY_NONE,
	REPORT_BY_HOUR,
	REPORT_BY_DAY,
	REPORT_BY_WEEK,
	REPORT_BY_MONTH
};
enum report_format { REPORT_TEXT, REPORT_JSON, REPORT_CSV };

/* Below this a count is written "<5" unless exact. */
#define REPORT_MIN_COUNT 5

struct report;

/* A report over records accepted in [from, to) (ms; 0: unbounded),
 * counted per period when by is not REPORT_BY_NONE. *out: caller frees
 * with report_free. */
enum gw_err report_new(int64_t from, int64_t to, enum report_by by,
		       struct report **out);
void report_free(struct report *r);

/* Count one outbox row; fhir_version (may be NULL) is its message's.
 * Rows outside [from, to) are skipped. */
enum gw_err report_add_row(struct report *r, const struct store_row *row,
			   const char *fhir_version);
/* Count one inbound message (received for a local organisation). */
enum gw_err report_add_inbox(struct report *r, const struct store_inbox *m);
/* Count one audit record: pull interactions (anything but "create" and
 * the console's "operator-*") per organisation, and the distinct
 * patients they touched. */
enum gw_err report_add_audit(struct report *r,
			     const struct store_audit_rec *rec);

/*
 * Fill r from the store s: every outbox row in r's range (with its
 * message's FHIR version), the inbound messages and the audit records.
 * Reads through the store's list operations, so it works on every
 * backend. The caller keeps s.
 */
enum gw_err report_collect(struct report *r, struct store *s);

/*
 * Write the report to fp. cfg (may be NULL) gives organisation names
 * ([organisation] and [peer] name). exact: write counts below
 * REPORT_MIN_COUNT as they are. Latency percentiles need
 * REPORT_MIN_COUNT deliveries unless exact. Returns GW_IO when fp fails.
 */
enum gw_err report_write(struct report *r, FILE *fp, enum report_format fmt,
			 bool exact, const struct config *cfg);

/* The nearest-rank percentile q (0 < q <= 100) of n sorted values. */
int64_t report_percentile(const int64_t *sorted, size_t n, unsigned q);

#endif
