/* Unit tests for fdate: parsing with precision, FHIRPath comparison and
 * the validator's limit comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fdate.h"

static void
test_parse(void **state)
{
	static const struct {
		const char *s;
		enum fdate_kind kind;
		int prec; /* 0: malformed */
	} cases[] = {
	    {"2020", FDATE_DATETIME, FDATE_YEAR},
	    {"2020-02", FDATE_DATETIME, FDATE_MONTH},
	    {"2020-02-29", FDATE_DATETIME, FDATE_DAY},
	    {"2020-02-29T10", FDATE_DATETIME, FDATE_HOUR},
	    {"2020-02-29T10:30", FDATE_DATETIME, FDATE_MINUTE},
	    {"2020-02-29T10:30:00.123+14:00", FDATE_DATETIME, FDATE_SECOND},
	    {"10:30:59", FDATE_TIME, FDATE_SECOND},
	    {"2020-13", FDATE_DATETIME, 0},
	    {"2020-01-32", FDATE_DATETIME, 0},
	    {"2020-01T10:00", FDATE_DATETIME, 0},
	    {"2020-01-01T10:00:00+15:00", FDATE_DATETIME, 0},
	    {"2020-01-01T10:00:00.", FDATE_DATETIME, 0},
	    {"24:00", FDATE_TIME, 0},
	    {"20", FDATE_DATETIME, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fdate d;
		bool ok = fdate_parse(cases[i].s, strlen(cases[i].s),
				      cases[i].kind, &d);
		int got = ok ? d.prec : 0;

		if (got != cases[i].prec)
			fail_msg("fdate_parse(%s): got precision %d, want %d",
				 cases[i].s, got, cases[i].prec);
	}
}

static void
test_compare(void **state)
{
	/* fhirpath: -2 for "uncomparable"; limit: the validator's result */
	static const struct {
		const char *a, *b;
		int fhirpath, limit;
	} cases[] = {
	    {"2020", "2021", -1, -1},
	    {"2020-01", "2020", -2, 0},
	    {"2020-01-02", "2020-01", -2, 0},
	    {"2020-01-01T00:00:00+01:00", "2019-12-31T23:00:00Z", 0, 0},
	    {"2020-01-01T00:00:00Z", "2020-01-01", -2, 0},
	    {"2020-01-02T00:00:00Z", "2020-01-01", 1, 1},
	    {"2020-01-01T00:00:00.0004Z", "2020-01-01T00:00:00Z", 0, 1},
	    {"2020-01-01T00:00:00.5Z", "2020-01-01T00:00:00Z", 1, 1},
	    {"2020-01-01T10:30", "2020-01-01T10:30:00Z", -2, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fdate a, b;
		int r = -2;

		assert_true(fdate_parse(cases[i].a, strlen(cases[i].a),
					FDATE_DATETIME, &a));
		assert_true(fdate_parse(cases[i].b, strlen(cases[i].b),
					FDATE_DATETIME, &b));
		if (!fdate_cmp(&a, &b, &r))
			r = -2;
		if (r != cases[i].fhirpath)
			fail_msg("fdate_cmp(%s, %s): got %d, want %d",
				 cases[i].a, cases[i].b, r, cases[i].fhirpath);
		r = fdate_cmp_limit(&a, &b);
		if (r != cases[i].limit)
			fail_msg("fdate_cmp_limit(%s, %s): got %d, want %d",
				 cases[i].a, cases[i].b, r, cases[i].limit);
	}
}

/* The instants a value stands for, as FHIR search reads it. */
static void
test_range(void **state)
{
	static const struct {
		const char *s;
		long long lo, hi; /* ms since the epoch; lo -1: refused */
	} cases[] = {
	    {"1970", 0, 31536000000LL},
	    {"2024", 1704067200000LL, 1735689600000LL},	   /* leap year */
	    {"2024-02", 1706745600000LL, 1709251200000LL}, /* 29 days */
	    {"2024-12", 1733011200000LL, 1735689600000LL},
	    {"2024-06-01", 1717200000000LL, 1717286400000LL},
	    {"2024-06-01T00:00Z", 1717200000000LL, 1717200060000LL},
	    {"2024-06-01T02:00:00+02:00", 1717200000000LL, 1717200001000LL},
	    {"2024-05-31T19:00:00-05:00", 1717200000000LL, 1717200001000LL},
	    {"2024-06-01T00:00:00", 1717200000000LL, 1717200001000LL},
	    {"2024-06-01T00:00:00.5Z", 1717200000500LL, 1717200000600LL},
	    {"2024-06-01T00:00:00.25Z", 1717200000250LL, 1717200000260LL},
	    {"2024-06-01T00:00:00.125Z", 1717200000125LL, 1717200000126LL},
	    {"2024-06-01T00:00:00.1259Z", 1717200000125LL, 1717200000126LL},
	    {"1969-12-31", -86400000LL, 0},
	};
	size_t i;
	struct fdate d;
	int64_t lo, hi;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!fdate_parse(cases[i].s, strlen(cases[i].s), FDATE_DATETIME,
				 &d) ||
		    !fdate_range_ms(&d, &lo, &hi))
			fail_msg("fdate_range_ms(%s): refused", cases[i].s);
		if (lo != cases[i].lo || hi != cases[i].hi)
			fail_msg("fdate_range_ms(%s): got [%lld, %lld), want "
				 "[%lld, %lld)",
				 cases[i].s, (long long)lo, (long long)hi,
				 cases[i].lo, cases[i].hi);
	}
	assert_true(fdate_parse("10:00", 5, FDATE_TIME, &d));
	assert_false(fdate_range_ms(&d, &lo, &hi));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_compare),
	    cmocka_unit_test(test_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
