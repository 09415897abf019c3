/*
 * Unit tests of the validator's verdicts where the HL7 reference validator
 * is the measure (issue 14, second half): narrative, example URLs,
 * messages a person can act on, quantities. Cases written from the FHIR
 * specification text.
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

/* Validate text; returns a new OperationOutcome. */
static json_t *
run_opts(const char *text, bool allow_examples)
{
	struct validate_opts opts = {.allow_example_urls = allow_examples};
	json_t *o = fhir_outcome_new();

	assert_non_null(o);
	assert_int_equal(validate_text(ctx, text, strlen(text), &opts, o),
			 GW_OK);
	return o;
}

static json_t *
run(const char *text)
{
	return run_opts(text, false);
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
dump(const json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(1));

	fprintf(stderr, "%s\n", s != NULL ? s : "?");
	free(s);
}

/* Narrative: XML's predefined entities and numeric references only;
 * no scripts, event handlers or external references (FHIR Narrative,
 * txt-1). */
static void
test_narrative(void **state)
{
#define NS "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">"
	static const struct {
		const char *div, *want; /* want: NULL = valid */
	} cases[] = {
	    {NS "<p>caf&#233; &#xE9; &amp; &lt; &gt; &quot; &apos;</p></div>",
	     NULL},
	    {NS "<p>Brand&reg;</p></div>", "HTML entity '&reg;'"},
	    {NS "<p>a&nbsp;b</p></div>", "HTML entity '&nbsp;'"},
	    {NS "<p>caf&eacute;</p></div>", "HTML entity '&eacute;'"},
	    {NS "<script>alert(1)</script><p>x</p></div>",
	     "illegal element name"},
	    {NS "<p onmouseover=\\\"x()\\\">x</p></div>",
	     "illegal attribute name"},
	    {NS "<a href=\\\"javascript:alert(1)\\\">x</a></div>",
	     "script URL"},
	    {NS "<a href=\\\" JavaScript:x()\\\">x</a></div>", "script URL"},
	    {NS "<a href=\\\"#c1\\\">x</a> <a "
		"href=\\\"https://www.hl7.org/fhir/\\\">y</a></div>",
	     NULL},
	    {NS "<p style=\\\"background:url(https://a.test/i.png)\\\">x</p>"
		"</div>",
	     "external reference in a style"},
	    {NS "<p style=\\\"background: URL( 'data:image/png;base64,AA==')"
		"\\\">x</p></div>",
	     NULL},
	    {NS "<p style=\\\"width:expression(alert(1))\\\">x</p></div>",
	     "script in a style"},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\" "
	     "xmlns:xl=\\\"http://www.w3.org/1999/xlink\\\"><a "
	     "xl:href=\\\"https://a.test/\\\">x</a></div>",
	     "another namespace"},
	    {NS "<p xml:lang=\\\"nl\\\">x</p></div>", NULL},
	};
	char doc[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o;

		snprintf(doc, sizeof(doc),
			 "{\"resourceType\":\"List\",\"status\":\"current\","
			 "\"mode\":\"working\",\"text\":{\"status\":"
			 "\"generated\",\"div\":\"%s\"}}",
			 cases[i].div);
		o = run(doc);
		if (cases[i].want == NULL
			? count(o, "error", NULL) != 0
			: count(o, "error", cases[i].want) != 1 ||
			      count(o, "error", NULL) != 1) {
			dump(o);
			fail_msg("case %zu: %s: want %s", i, cases[i].div,
				 cases[i].want != NULL ? cases[i].want
						       : "valid");
		}
		json_decref(o);
	}
#undef NS
}

/* Issues at expression expr (exact) whose diagnostics contain part. */
static size_t
count_at(const json_t *o, const char *sev, const char *expr, const char *part)
{
	const json_t *is;
	size_t i, n = 0;

	json_array_foreach(json_object_get(o, "issue"), i, is)
	{
		const char *d =
		    json_string_value(json_object_get(is, "diagnostics"));
		const char *e = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));

		if (strcmp(json_string_value(json_object_get(is, "severity")),
			   sev) == 0 &&
		    e != NULL && strcmp(e, expr) == 0 && d != NULL &&
		    strstr(d, part) != NULL)
			n++;
	}
	return n;
}

/* Example URLs: a uri/url value or a reference naming example.org or
 * example.com is an error unless the input is an example. */
static void
test_example_urls(void **state)
{
	static const struct {
		const char *system, *ref; /* identifier system, reference */
		const char *expr;	  /* where the error is; NULL none */
	} cases[] = {
	    {"http://example.org/ids", "Patient/1",
	     "Observation.identifier[0].system"},
	    {"urn:oid:2.16.840.1.113883.2.4.6.3",
	     "https://www.Example.COM/fhir/Patient/1",
	     "Observation.subject.reference"},
	    {"http://user@example.com:8080/x", "Patient/1",
	     "Observation.identifier[0].system"},
	    /* other hosts that only look alike */
	    {"http://example.org.zorg.test/ids",
	     "http://notexample.com/fhir/Patient/1", NULL},
	    {"http://zorg.test/example.org", "Patient/1", NULL},
	};
	char doc[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o;

		snprintf(doc, sizeof(doc),
			 "{\"resourceType\":\"Observation\",\"status\":"
			 "\"final\",\"identifier\":[{\"system\":\"%s\","
			 "\"value\":\"1\"}],\"code\":{\"text\":\"x\"},"
			 "\"subject\":{\"reference\":\"%s\"}}",
			 cases[i].system, cases[i].ref);
		o = run(doc);
		if (cases[i].expr == NULL ? count(o, "error", NULL) != 0
					  : count_at(o, "error", cases[i].expr,
						     "example URLs") != 1 ||
						count(o, "error", NULL) != 1) {
			dump(o);
			fail_msg("case %zu: want %s", i,
				 cases[i].expr ? cases[i].expr : "valid");
		}
		json_decref(o);
		/* an example may use them */
		o = run_opts(doc, true);
		if (count(o, "error", NULL) != 0) {
			dump(o);
			fail_msg("case %zu as an example: want valid", i);
		}
		json_decref(o);
	}
}

/* Findings say what to change: the code, the allowed codes of a small
 * value set, the expected date form, the element's own path. */
static void
test_messages(void **state)
{
	json_t *o;

	(void)state;
	o = run("{\"resourceType\":\"Patient\",\"gender\":\"mal\","
		"\"birthDate\":\"05-12-1950\"}");
	if (count_at(o, "error", "Patient.gender",
		     "the code 'mal' is not in the value set "
		     "'AdministrativeGender' "
		     "(http://hl7.org/fhir/ValueSet/administrative-gender), "
		     "required binding; allowed: 'female', 'male', 'other', "
		     "'unknown'") != 1 ||
	    count_at(o, "error", "Patient.birthDate",
		     "expected YYYY, YYYY-MM or YYYY-MM-DD, e.g. "
		     "2026-12-05") != 1) {
		dump(o);
		fail();
	}
	json_decref(o);
	o = run("{\"resourceType\":\"Observation\",\"code\":{\"text\":"
		"\"x\"},\"status\":\"final\",\"issued\":\"2026-12-05\","
		"\"component\":[{\"valueString\":\"x\"}]}");
	if (count_at(o, "error", "Observation.issued",
		     "expected YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm") !=
		1 ||
	    count_at(o, "error", "Observation.component[0].code",
		     "minimum required = 1") != 1) {
		dump(o);
		fail();
	}
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_narrative),
	    cmocka_unit_test(test_example_urls),
	    cmocka_unit_test(test_messages),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
