/* Unit tests for fdecimal: exact comparison from the text, the double
 * mode the validator uses, and printing computed decimals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fdecimal.h"

static void
test_compare(void **state)
{
	/* -2: unreadable in that mode */
	static const struct {
		const char *a, *b;
		int exact, dbl;
	} cases[] = {
	    {"1.50", "1.5", 0, 0},
	    {"-0.0", "0", 0, 0},
	    {"1e2", "100.0", 0, 0},
	    {"-2", "-10", 1, 1},
	    {"0.1", "0.10000000000000000001", -1, 0},
	    {"99999999999999999999", "100000000000000000000", -1, 0},
	    {"1.2.3", "1", -2, 1},
	    {"1234567890123456789012345678901234567890123456789012345678901234"
	     "5",
	     "1", -2, 1},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int re = -2, rd = -2;

		if (!fdec_cmp_text(cases[i].a, strlen(cases[i].a), cases[i].b,
				   strlen(cases[i].b), FDEC_EXACT, &re))
			re = -2;
		assert_true(fdec_cmp_text(cases[i].a, strlen(cases[i].a),
					  cases[i].b, strlen(cases[i].b),
					  FDEC_DOUBLE, &rd));
		if (re != cases[i].exact || rd != cases[i].dbl)
			fail_msg("compare %s %s: got exact %d double %d, want "
				 "%d %d",
				 cases[i].a, cases[i].b, re, rd, cases[i].exact,
				 cases[i].dbl);
	}
}

static void
test_from_int(void **state)
{
	struct fdec a, b;

	fdec_from_int(-120, &a);
	assert_true(fdec_parse("-1.2e2", 6, &b));
	assert_int_equal(fdec_cmp(&a, &b), 0);
	fdec_from_int(INT64_MIN, &a);
	assert_true(fdec_parse("-9223372036854775808", 20, &b));
	assert_int_equal(fdec_cmp(&a, &b), 0);
}

static void
test_format(void **state)
{
	static const struct {
		double v;
		const char *want; /* NULL: needs an exponent */
	} cases[] = {
	    {3.0, "3.0"},
	    {0.5, "0.5"},
	    {-2.25, "-2.25"},
	    {1.0 / 3, "0.333333333333333"},
	    {1e14, "100000000000000.0"},
	    {1e20, NULL},
	    {1e-20, NULL},
	};
	size_t i;
	char out[64];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = fdec_format_double(cases[i].v, out, sizeof(out));

		if (ok != (cases[i].want != NULL) ||
		    (ok && strcmp(out, cases[i].want) != 0))
			fail_msg("format %g: got %s (%d), want %s", cases[i].v,
				 out, ok, cases[i].want ? cases[i].want : "-");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compare),
	    cmocka_unit_test(test_from_int),
	    cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
