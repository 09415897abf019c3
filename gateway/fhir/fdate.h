/*
 * fdate: FHIR and FHIRPath dates, dateTimes, instants and times with their
 * precision: parsing and comparison, shared by FHIRPath and the
 * validator. No allocation: values are small structs the caller owns.
 */
#ifndef GW_FDATE_H
#define GW_FDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Precision: the last field present. */
enum fdate_prec {
	FDATE_YEAR = 1,
	FDATE_MONTH,
	FDATE_DAY,
	FDATE_HOUR,
	FDATE_MINUTE,
	FDATE_SECOND
};

/* What to parse: a date or dateTime (or instant), or a time of day. */
enum fdate_kind { FDATE_DATETIME, FDATE_TIME };

/* A date, dateTime or time with its precision. */
struct fdate {
	int prec;		 /* enum fdate_prec */
	bool has_date;		 /* false for a time */
	bool tz;		 /* a zone was given */
	int y, mo, d, h, mi, ms; /* ms: seconds * 1000 + milliseconds */
	int tzmin;		 /* zone offset in minutes */
	const char *frac;	 /* digits after the seconds' point (all of */
	size_t fraclen;		 /* them, borrowed from the text), or NULL */
};

/*
 * Parse n bytes of s: for FDATE_DATETIME an ISO 8601 date (YYYY, YYYY-MM,
 * YYYY-MM-DD) or dateTime (a date, then Thh(:mm(:ss(.f+)?)?)? and
 * optionally Z or +hh:mm), for FDATE_TIME hh(:mm(:ss(.f+)?)?)?, as FHIR
 * and FHIRPath write them. Fields are range-checked (month 1-12, day
 * 1-31, not against the month's length). False when malformed. o->frac
 * points into s.
 */
bool fdate_parse(const char *s, size_t n, enum fdate_kind kind,
		 struct fdate *o);

/*
 * Compare per FHIRPath: values with a time of day are compared on the
 * same clock (a missing zone counts as UTC) to the millisecond; when they
 * are equal as far as both go but one is more precise, the result is
 * unknown. Sets *r to -1, 0 or 1; false (*r unset) when uncomparable (a
 * date against a time, or unknown).
 */
bool fdate_cmp(const struct fdate *a, const struct fdate *b, int *r);

/*
 * Compare as the validator checks minValue/maxValue of dates, dateTimes
 * and instants (both parsed as FDATE_DATETIME): when both have a time,
 * as UTC seconds in a double with every fraction digit; else field by
 * field to the precision both have. -1, 0 or 1: 0 also when they differ
 * only below the precision of one (neither is then known to be smaller).
 */
int fdate_cmp_limit(const struct fdate *a, const struct fdate *b);

/*
 * The instants a date or dateTime (parsed as FDATE_DATETIME) stands for,
 * as FHIR search reads it: [*lo, *hi) in milliseconds since the epoch,
 * from its first to just past its last millisecond at its precision
 * (2020 is the whole year, 2020-03-01T10:00 that minute). A missing zone
 * counts as UTC. False for a time without a date.
 */
bool fdate_range_ms(const struct fdate *d, int64_t *lo, int64_t *hi);

#endif
