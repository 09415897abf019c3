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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_issue),
	    cmocka_unit_test(test_expression_and_position),
	    cmocka_unit_test(test_error_count_by_severity),
	    cmocka_unit_test(test_long_message_is_cut_not_overflowed),
	    cmocka_unit_test(test_not_an_outcome),
	};

	return cmocka_run_group_tests_name("fhir", tests, NULL, NULL);
}
