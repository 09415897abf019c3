/*
 * Regression test: an extension inside an element defined by
 * contentReference (Questionnaire.item.item) has its context checked
 * without dereferencing the element's missing type (it crashed before).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outcome.h"
#include "rules.h"
#include "validate.h"

#define HIDDEN "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"

static struct rules_set *set;
static struct validate_ctx *vctx;

static const char *
srcdir(void)
{
	const char *d = getenv("PZPGW_SRCDIR");

	return d != NULL && d[0] != '\0' ? d : ".";
}

static int
setup(void **state)
{
	char path[4096], errbuf[512];

	(void)state;
	if ((set = rules_set_new(RULES_R4)) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/schemas", srcdir());
	if (rules_load_dir(set, path, errbuf, sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "rules %s: %s\n", path, errbuf);
		return -1;
	}
	return validate_ctx_new(set, &vctx) == GW_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	validate_ctx_free(vctx);
	rules_set_free(set);
	return 0;
}

/* Number of issues whose diagnostics contain needle and, when expr is not
 * NULL, whose first expression is expr. */
static size_t
count_issues(const json_t *outcome, const char *needle, const char *expr)
{
	const json_t *issues = json_object_get(outcome, "issue"), *is;
	size_t i, n = 0;

	json_array_foreach(issues, i, is)
	{
		const char *d =
		    json_string_value(json_object_get(is, "diagnostics"));
		const char *e = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));

		if (d == NULL || strstr(d, needle) == NULL)
			continue;
		if (expr == NULL || (e != NULL && strcmp(e, expr) == 0))
			n++;
	}
	return n;
}

/* Validate doc; returns the outcome (caller decrefs). */
static json_t *
run(const char *doc)
{
	json_t *outcome = fhir_outcome_new();

	assert_non_null(outcome);
	assert_int_equal(validate_text(vctx, doc, strlen(doc), NULL, outcome),
			 GW_OK);
	return outcome;
}

/* Questionnaire.item.item (contentReference to Questionnaire.item) is one
 * of the extension's listed contexts: allowed, and no crash. */
static void
test_ext_in_content_reference_element(void **state)
{
	static const char doc[] =
	    "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\","
	    "\"item\":[{\"linkId\":\"1\",\"type\":\"group\","
	    "\"item\":[{\"linkId\":\"1.1\",\"type\":\"string\","
	    "\"extension\":[{\"url\":\"" HIDDEN "\","
	    "\"valueBoolean\":true}]}]}]}";
	json_t *outcome;
	size_t n;

	(void)state;
	outcome = run(doc);
	n = count_issues(outcome, "is not allowed to be used at this point",
			 NULL);
	if (n != 0)
		fprintf(stderr, "got %zu context issues, want 0\n", n);
	assert_int_equal(n, 0);
	json_decref(outcome);
}

/* Deeper nesting, and the extension on the contentReference element's
 * parent too: validation completes and reports through the outcome. */
static void
test_ext_deeper_content_reference(void **state)
{
	static const char doc[] =
	    "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\","
	    "\"item\":[{\"linkId\":\"1\",\"type\":\"group\","
	    "\"extension\":[{\"url\":\"" HIDDEN "\",\"valueBoolean\":true}],"
	    "\"item\":[{\"linkId\":\"1.1\",\"type\":\"group\","
	    "\"item\":[{\"linkId\":\"1.1.1\",\"type\":\"string\","
	    "\"extension\":[{\"url\":\"" HIDDEN "\","
	    "\"valueBoolean\":true}]}]}]}]}";
	json_t *outcome;

	(void)state;
	outcome = run(doc);
	/* the Questionnaire.item one is allowed in any case */
	assert_int_equal(count_issues(outcome, "is not allowed",
				      "Questionnaire.item[0].extension[0]"),
			 0);
	json_decref(outcome);
}

/* An extension whose contexts name a resource element, placed on a
 * contentReference element of another path: reported, no crash. */
static void
test_ext_wrong_place_content_reference(void **state)
{
	static const char doc[] =
	    "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\","
	    "\"item\":[{\"linkId\":\"1\",\"type\":\"group\","
	    "\"item\":[{\"linkId\":\"1.1\",\"type\":\"string\","
	    "\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
	    "allergyintolerance-certainty\",\"valueCodeableConcept\":"
	    "{\"text\":\"x\"}}]}]}]}";
	json_t *outcome;
	size_t n;

	(void)state;
	outcome = run(doc);
	n = count_issues(outcome, "is not allowed to be used at this point",
			 NULL);
	if (n != 1)
		fprintf(stderr, "got %zu context issues, want 1\n", n);
	assert_int_equal(n, 1);
	json_decref(outcome);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ext_in_content_reference_element),
	    cmocka_unit_test(test_ext_deeper_content_reference),
	    cmocka_unit_test(test_ext_wrong_place_content_reference),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
