/*
 * Unit tests of ucum.c: conversions of the common UCUM units (figures
 * from the UCUM definitions), and the expressions it refuses.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ucum.h"

static void
test_conversions(void **state)
{
	static const struct {
		double v;
		const char *from, *to;
		double want;
	} cases[] = {
	    {1, "kg", "g", 1000},
	    {2500, "g", "kg", 2.5},
	    {1, "[lb_av]", "g", 453.59237},
	    {1, "[lb_av]", "kg", 0.45359237},
	    {16, "[oz_av]", "[lb_av]", 1},
	    {1, "mg", "ug", 1000},
	    {1, "t", "kg", 1000},
	    {1, "[in_i]", "cm", 2.54},
	    {6, "[ft_i]", "m", 1.8288},
	    {1, "[mi_i]", "km", 1.609344},
	    {1, "L", "mL", 1000},
	    {1, "dL", "l", 0.1},
	    {1, "m3", "L", 1000},
	    {1, "cm3", "mL", 1},
	    {1, "h", "min", 60},
	    {1, "d", "s", 86400},
	    {1, "wk", "d", 7},
	    {1, "a", "d", 365.25},
	    {1, "mo", "d", 30.4375},
	    {1, "ms", "s", 0.001},
	    {1, "mmol", "umol", 1000},
	    {5.5, "mmol/L", "umol/mL", 5.5},
	    {100, "mg/dL", "g/L", 1},
	    {1, "kg/m2", "g/cm2", 0.1},
	    {60, "/min", "/s", 1},
	    {1, "/h", "/d", 24},
	    {1, "10*3/uL", "10*9/L", 1},
	    {1, "g.m-2", "kg/m2", 0.001},
	    {50, "%", "1", 0.5},
	    {1, "mg{total}", "g", 0.001},
	    {0, "Cel", "K", 273.15},
	    {37, "Cel", "K", 310.15},
	    {98.6, "[degF]", "Cel", 37},
	    {32, "[degF]", "Cel", 0},
	    {-40, "Cel", "[degF]", -40},
	    {300, "K", "Cel", 26.85},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double got = NAN;

		if (ucum_convert(cases[i].v, cases[i].from, cases[i].to,
				 &got) != GW_OK ||
		    fabs(got - cases[i].want) >
			1e-9 * fmax(1, fabs(cases[i].want)))
			fail_msg("%g %s -> %s: got %.12g, want %.12g",
				 cases[i].v, cases[i].from, cases[i].to, got,
				 cases[i].want);
	}
}

static void
test_refused(void **state)
{
	static const struct {
		const char *from, *to;
		enum gw_err want;
	} cases[] = {
	    /* other dimensions */
	    {"kg", "m", GW_INVALID},
	    {"mg/dL", "mmol/L", GW_INVALID}, /* needs a molar mass */
	    {"Cel", "g", GW_INVALID},
	    {"/min", "min", GW_INVALID},
	    /* outside the tables: never guessed */
	    {"kPa", "mm[Hg]", GW_PARSE},
	    {"[iU]", "[iU]", GW_PARSE},
	    {"cd", "cd", GW_PARSE}, /* not c + d: a day takes no prefix */
	    {"kh", "h", GW_PARSE},
	    {"k[lb_av]", "g", GW_PARSE},
	    {"mCel", "K", GW_PARSE},
	    {"Cel2", "K", GW_PARSE},
	    {"Cel/s", "K/s", GW_PARSE},
	    /* syntax */
	    {"", "g", GW_PARSE},
	    {"g/", "g", GW_PARSE},
	    {"g..m", "g.m", GW_PARSE},
	    {"m-", "m", GW_PARSE},
	    {"m10", "m", GW_PARSE},
	    {"mg{x", "mg", GW_PARSE},
	    {"[lb_av", "g", GW_PARSE},
	    {"10*", "1", GW_PARSE},
	    {"10*1000", "1", GW_PARSE},
	    {"m9.m9", "m", GW_PARSE}, /* power 18: no real unit */
	    {"g g", "g", GW_PARSE},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double got;
		enum gw_err err =
		    ucum_convert(1, cases[i].from, cases[i].to, &got);

		if (err != cases[i].want)
			fail_msg("%s -> %s: got %d, want %d", cases[i].from,
				 cases[i].to, (int)err, (int)cases[i].want);
	}
}

static void
test_parse_limits(void **state)
{
	char big[UCUM_MAX_LEN + 2];
	struct ucum_unit u, w;

	(void)state;
	memset(big, 'g', sizeof(big));
	assert_int_equal(ucum_parse(big, sizeof(big), &u), GW_TOOBIG);
	/* not NUL-terminated: only len bytes are read */
	assert_int_equal(ucum_parse("kgX", 2, &u), GW_OK);
	assert_true(fabs(u.factor - 1000) < 1e-9);
	assert_int_equal(ucum_parse("mg", 2, &w), GW_OK);
	assert_true(ucum_commensurable(&u, &w));
	assert_int_equal(ucum_parse("m", 1, &w), GW_OK);
	assert_false(ucum_commensurable(&u, &w));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conversions),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_parse_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
