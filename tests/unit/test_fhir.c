/* Unit tests for OperationOutcome building and rendering (fhir.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outcome.h"

static void
check_text(json_t *oo, const char *want)
{
	char *got = fhir_dump(oo);

	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("got %s, want %s", got ? got : "(null)", want);
	free(got);
}

static void
test_one_issue(void **state)
{
	json_t *oo =
	    fhir_outcome_one(FHIR_ERROR, "not-found", NULL, "no such endpoint");

	check_text(oo, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
		       "\"severity\":\"error\",\"code\":\"not-found\","
		       "\"diagnostics\":\"no such endpoint\"}]}");
	assert_int_equal(fhir_outcome_errors(oo), 1);
	json_decref(oo);
}

static void
test_expression_and_position(void **state)
{
	json_t *oo = fhir_outcome_new();

	assert_int_equal(fhir_outcome_add(oo, FHIR_ERROR, "value",
					  "Patient.gender", 12, 5,
					  "code '%s' is not in %s", "x\"y",
					  "administrative-gender"),
			 GW_OK);
	check_text(oo, "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
		       "\"extension\":[{\"url\":\"http://hl7.org/fhir/"
		       "StructureDefinition/operationoutcome-issue-line\","
		       "\"valueInteger\":12},{\"url\":\"http://hl7.org/fhir/"
		       "StructureDefinition/operationoutcome-issue-col\","
		       "\"valueInteger\":5}],\"severity\":\"error\",\"code\":"
		       "\"value\",\"diagnostics\":\"code 'x\\\"y' is not in "
		       "administrative-gender\",\"expression\":[\"Patient."
		       "gender\"]}]}");
	json_decref(oo);
}

static void
test_error_count_by_severity(void **state)
{
	static const struct {
		const char *severity;
		size_t errors;
	} cases[] = {
	    {FHIR_INFORMATION, 0},
	    {FHIR_WARNING, 0},
	    {FHIR_ERROR, 1},
	    {FHIR_FATAL, 2},
	};
	json_t *oo = fhir_outcome_new();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t got;

		fhir_outcome_add(oo, cases[i].severity, "invalid", NULL, 0, 0,
				 "case %zu", i);
		got = fhir_outcome_errors(oo);
		if (got != cases[i].errors)
			fail_msg("after %s: got %zu errors, want %zu",
				 cases[i].severity, got, cases[i].errors);
	}
	assert_int_equal(json_array_size(json_object_get(oo, "issue")), 4);
	json_decref(oo);
}

static void
test_long_message_is_cut_not_overflowed(void **state)
{
	char big[4096];
	json_t *oo;
	const char *diag;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	oo = fhir_outcome_one(FHIR_ERROR, "too-costly", NULL, "%s", big);
	diag = json_string_value(json_object_get(
	    json_array_get(json_object_get(oo, "issue"), 0), "diagnostics"));
	assert_non_null(diag);
	assert_true(strlen(diag) < 1024);
	json_decref(oo);
}

static void
test_not_an_outcome(void **state)
{
	json_t *notoo = json_object();

	assert_int_equal(
	    fhir_outcome_add(notoo, FHIR_ERROR, "invalid", NULL, 0, 0, "x"),
	    GW_INVALID);
	assert_int_equal(fhir_outcome_errors(notoo), 0);
	json_decref(notoo);
}

/* fhir_outcome_add_issues builds what fhir_outcome_add does issue by
 * issue, byte for byte: with and without position and expression, a
 * non-ASCII message and expression, a message past 1023 bytes (cut
 * alike), more distinct severities/codes than it shares, a message cut
 * inside a UTF-8 character (both write '?' for its byte) and an
 * expression that is not UTF-8 (both stop there with GW_NOMEM, the
 * issues before it added). */
static void
test_add_issues_same_as_add(void **state)
{
	static char codes[20][8];
	struct fhir_issue v[32];
	char longmsg[1500], bad[] = "cut \xc3 here";
	json_t *a = fhir_outcome_new(), *b = fhir_outcome_new();
	size_t n = 0;
	char *ta, *tb;
	enum gw_err ea = GW_OK, eb;

	(void)state;
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	v[n++] = (struct fhir_issue){FHIR_ERROR, "required", "Patient.name",
				     "one",	 3,	     9};
	v[n++] = (struct fhir_issue){FHIR_WARNING,  "invariant", NULL,
				     "no position", 0,		 0};
	v[n++] = (struct fhir_issue){FHIR_INFORMATION,
				     "informational",
				     "Patient.na\xc3\xafve",
				     "caf\xc3\xa9",
				     0,
				     4};
	v[n++] = (struct fhir_issue){FHIR_ERROR, "value", "X", longmsg, 7, 0};
	for (size_t i = 0; i < 20; i++) {
		snprintf(codes[i], sizeof(codes[i]), "c%zu", i);
		v[n++] = (struct fhir_issue){i % 2 ? FHIR_ERROR : FHIR_FATAL,
					     codes[i],
					     "Y",
					     "same",
					     (int)i + 1,
					     2};
	}
	v[n++] = (struct fhir_issue){FHIR_ERROR, "value", "Z", bad, 1, 1};
	v[n++] =
	    (struct fhir_issue){FHIR_ERROR, "value", "Z\xc3", "expr", 1, 1};
	v[n++] =
	    (struct fhir_issue){FHIR_ERROR, "value", "after", "never", 1, 1};
	for (size_t i = 0; i < n && ea == GW_OK; i++)
		ea = fhir_outcome_add(a, v[i].severity, v[i].code,
				      v[i].expression, v[i].line, v[i].col,
				      "%s", v[i].msg);
	eb = fhir_outcome_add_issues(b, v, n);
	assert_int_equal(ea, GW_NOMEM);
	assert_int_equal(eb, GW_NOMEM);
	assert_int_equal(json_array_size(json_object_get(b, "issue")), n - 2);
	ta = fhir_dump(a);
	tb = fhir_dump(b);
	assert_non_null(ta);
	assert_non_null(tb);
	assert_string_equal(ta, tb);
	/* the message cut inside a character is kept, the byte a '?' */
	assert_non_null(strstr(tb, "\"cut ? here\""));
	assert_int_equal(fhir_outcome_errors(b), fhir_outcome_errors(a));
	free(ta);
	free(tb);
	json_decref(a);
	json_decref(b);
	/* an object without an issue array is refused, as by the other */
	a = json_object();
	assert_int_equal(fhir_outcome_add_issues(a, v, 1), GW_INVALID);
	json_decref(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_issue),
	    cmocka_unit_test(test_expression_and_position),
	    cmocka_unit_test(test_error_count_by_severity),
	    cmocka_unit_test(test_long_message_is_cut_not_overflowed),
	    cmocka_unit_test(test_not_an_outcome),
	    cmocka_unit_test(test_add_issues_same_as_add),
	};

	return cmocka_run_group_tests_name("fhir", tests, NULL, NULL);
}
