/*
 * Unit tests of the validator's verdicts where the HL7 reference validator
 * is the measure (issue 14): which profiles apply, Bundle rules,
 * extensions and references. Profiles: tests/data/validate/ig-apply.
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

#define AP "http://example.org/fhir/apply/StructureDefinition/"

static struct rules_set *set;
static struct validate_ctx *ctx;

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
	snprintf(path, sizeof(path), "%s/tests/data/validate/ig-apply",
		 srcdir());
	if (rules_add_path(set, path, errbuf, sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "rules %s: %s\n", path, errbuf);
		return -1;
	}
	return validate_ctx_new(set, &ctx) == GW_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	validate_ctx_free(ctx);
	rules_set_free(set);
	return 0;
}

/* Validate text (profile may be NULL); returns a new OperationOutcome. */
static json_t *
run(const char *text, const char *profile)
{
	struct validate_opts opts = {.profile = profile};
	json_t *o = fhir_outcome_new();

	assert_non_null(o);
	assert_int_equal(validate_text(ctx, text, strlen(text), &opts, o),
			 GW_OK);
	return o;
}

/* Issues of severity sev whose diagnostics contain part (NULL: any). */
static size_t
count(const json_t *o, const char *sev, const char *part)
{
	const json_t *is;
	size_t i, n = 0;

	json_array_foreach(json_object_get(o, "issue"), i, is)
	{
		const char *d =
		    json_string_value(json_object_get(is, "diagnostics"));

		if (strcmp(json_string_value(json_object_get(is, "severity")),
			   sev) == 0 &&
		    (part == NULL || (d != NULL && strstr(d, part) != NULL)))
			n++;
	}
	return n;
}

static void
expect(const char *what, const char *doc, const char *profile, size_t nerr,
       const char *part)
{
	json_t *o = run(doc, profile);
	size_t got = count(o, "error", NULL);

	if (got != nerr || (part != NULL && count(o, "error", part) == 0)) {
		char *s = json_dumps(o, JSON_INDENT(1));

		fprintf(stderr,
			"%s: got %zu errors, want %zu (with '%s'):\n%s\n", what,
			got, nerr, part != NULL ? part : "", s);
		free(s);
		fail();
	}
	json_decref(o);
}

static void
test_global_profiles(void **state)
{
	(void)state;
	assert_string_equal(rules_global_profile(set, "Patient", 0),
			    AP "apply-patient");
	assert_null(rules_global_profile(set, "Patient", 1));
	assert_null(rules_global_profile(set, "Observation", 0));
	expect("global", "{\"resourceType\":\"Patient\"}", NULL, 1,
	       "birthDate");
	expect("global met",
	       "{\"resourceType\":\"Patient\","
	       "\"birthDate\":\"1950\"}",
	       NULL, 0, NULL);
}

static void
test_no_guessing_among_loaded_profiles(void **state)
{
	const char *obs = "{\"resourceType\":\"Observation\","
			  "\"status\":\"final\",\"code\":{\"coding\":[{"
			  "\"system\":\"http://loinc.org\","
			  "\"code\":\"8867-4\"}]}}";
	json_t *o;

	(void)state;
	o = run(obs, NULL);
	assert_int_equal(count(o, "error", NULL), 0);
	assert_int_equal(count(o, "information", "detected"), 0);
	assert_string_equal(validate_last_profile(ctx),
			    "http://hl7.org/fhir/StructureDefinition/"
			    "Observation");
	json_decref(o);
	/* claimed, the profile applies */
	expect("claimed",
	       "{\"resourceType\":\"Observation\",\"meta\":{\"profile\":[\"" AP
	       "apply-heart-rate\"]},\"status\":\"final\",\"code\":{"
	       "\"coding\":[{\"system\":\"http://loinc.org\","
	       "\"code\":\"8867-4\"}]}}",
	       NULL, 1, "value");
}

static void
test_forced_beside_meta_profile(void **state)
{
	(void)state;
	expect("forced + meta",
	       "{\"resourceType\":\"Patient\",\"birthDate\":\"1950\","
	       "\"meta\":{\"profile\":[\"" AP "apply-patient-gender\"]}}",
	       AP "apply-patient", 1, "gender");
}

static void
test_entry_profile_candidates(void **state)
{
	const char *head = "{\"resourceType\":\"Bundle\",\"type\":"
			   "\"collection\",\"meta\":{\"profile\":[\"" AP
			   "apply-bundle\"]},\"entry\":[{\"fullUrl\":"
			   "\"urn:uuid:00000000-0000-4000-8000-000000000001\","
			   "\"resource\":";
	char doc[1024];

	(void)state;
	snprintf(doc, sizeof(doc), "%s%s}]}", head,
		 "{\"resourceType\":\"Patient\",\"birthDate\":\"1950\"}");
	expect("patient entry", doc, NULL, 0, NULL);
	snprintf(doc, sizeof(doc), "%s%s}]}", head,
		 "{\"resourceType\":\"Observation\",\"status\":\"final\","
		 "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
		 "\"code\":\"48767-8\"}]},\"note\":[{\"text\":\"x\"}]}");
	expect("note entry", doc, NULL, 0, NULL);
	snprintf(doc, sizeof(doc), "%s%s}]}", head,
		 "{\"resourceType\":\"Device\"}");
	expect("device entry", doc, NULL, 1, "not allowed here");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_global_profiles),
	    cmocka_unit_test(test_no_guessing_among_loaded_profiles),
	    cmocka_unit_test(test_forced_beside_meta_profile),
	    cmocka_unit_test(test_entry_profile_candidates),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
