/*
 * Unit tests of the validator's verdicts where the HL7 reference validator
 * is the measure (issue 14): which profiles apply, Bundle rules,
 * extensions and references. Profiles: tests/data/validate/ig-apply and
 * ig-ext.
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
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/tests/data/validate/%s",
			 srcdir(), i == 0 ? "ig-apply" : "ig-ext");
		if (rules_add_path(set, path, errbuf, sizeof(errbuf)) !=
		    GW_OK) {
			fprintf(stderr, "rules %s: %s\n", path, errbuf);
			return -1;
		}
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
	/* a claim of a profile that is not loaded: no guessing either, not
	 * even among the built-in PZP profiles (this Procedure's code is
	 * the one ACP-Procedure fixes) */
	o = run("{\"resourceType\":\"Procedure\",\"meta\":{\"profile\":"
		"[\"http://example.org/fhir/StructureDefinition/not-loaded\"]},"
		"\"status\":\"completed\",\"code\":{\"coding\":[{\"system\":"
		"\"http://snomed.info/sct\",\"code\":\"713603004\"}]},"
		"\"subject\":{\"reference\":\"Patient/p\"}}",
		NULL);
	assert_int_equal(count(o, "information", "detected"), 0);
	assert_int_equal(count(o, "warning", "is not known"), 1);
	assert_string_equal(validate_last_profile(ctx),
			    "http://hl7.org/fhir/StructureDefinition/"
			    "Procedure");
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
	/* profiles listed per type: every type's count */
	snprintf(doc, sizeof(doc),
		 "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
		 "\"meta\":{\"profile\":[\"" AP "apply-bundle-typed\"]},"
		 "\"entry\":[{\"fullUrl\":\"urn:uuid:00000000-0000-4000-8000-"
		 "000000000001\",\"resource\":%s}]}",
		 "{\"resourceType\":\"Patient\",\"birthDate\":\"1950\"}");
	expect("typed, patient entry", doc, NULL, 0, NULL);
}

/* Bundles: bdl-7 (a fullUrl repeats only with another meta.versionId,
 * anyhow in a history), which references must resolve, link relations
 * that occur once. */
#define PAT0(v)                                                                \
	"{\"fullUrl\":\"http://x.example/fhir/Patient/p\",\"resource\":{"      \
	"\"resourceType\":\"Patient\",\"id\":\"p\",\"birthDate\":"             \
	"\"1950\",\"meta\":{\"versionId\":\"" v "\"}}"
#define PAT(v) PAT0(v) "}"
#define PATR(v)                                                                \
	PAT0(v)                                                                \
	",\"request\":{\"method\":\"PUT\",\"url\":\"Patient/p\"},"             \
	"\"response\":{\"status\":\"200\"}}"
#define MH(focus)                                                              \
	"{\"fullUrl\":\"http://x.example/fhir/MessageHeader/h\","              \
	"\"resource\":{\"resourceType\":\"MessageHeader\",\"id\":\"h\","       \
	"\"eventCoding\":{\"system\":\"http://x.example/e\",\"code\":"         \
	"\"x\"},\"source\":{\"endpoint\":\"http://x.example/\"},"              \
	"\"focus\":[{\"reference\":\"" focus "\"}]}"
#define URN "urn:uuid:4b1f1e2a-33c4-4d5e-8f60-718293a4b5c6"

static void
test_bundles(void **state)
{
	static const struct {
		const char *what, *doc;
		size_t nerr;
		const char *part;
	} cases[] = {
	    {"versions differ",
	     "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
	     "\"entry\":[" PAT("1") "," PAT("2") "]}",
	     0, NULL},
	    {"same version",
	     "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
	     "\"entry\":[" PAT("1") "," PAT("2") "," PAT("2") "]}",
	     1, "used by entry 1 too"},
	    {"history",
	     "{\"resourceType\":\"Bundle\",\"type\":\"history\","
	     "\"entry\":[" PATR("1") "," PATR("1") "]}",
	     0, NULL},
	    {"collection, relative",
	     "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
	     "\"entry\":[" MH("Patient/q") "}]}",
	     0, NULL},
	    {"transaction, relative",
	     "{\"resourceType\":\"Bundle\",\"type\":\"transaction\","
	     "\"entry\":[" MH(
		 "Patient/q") ",\"request\":{\"method\":"
			      "\"PUT\",\"url\":\"MessageHeader/h\"}}]}",
	     0, NULL},
	    {"message, relative",
	     "{\"resourceType\":\"Bundle\",\"type\":\"message\","
	     "\"timestamp\":\"2026-12-05T06:00:00Z\","
	     "\"entry\":[" MH("Patient/q") "}]}",
	     1, "does not resolve"},
	    {"collection, urn",
	     "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
	     "\"entry\":[" MH(URN) "}]}",
	     1, "does not resolve"},
	    {"links once",
	     "{\"resourceType\":\"Bundle\",\"type\":\"searchset\","
	     "\"link\":[{\"relation\":\"self\",\"url\":\"http://x/1\"},"
	     "{\"relation\":\"alternate\",\"url\":\"http://x/2\"},"
	     "{\"relation\":\"alternate\",\"url\":\"http://x/3\"}]}",
	     0, NULL},
	    {"two last",
	     "{\"resourceType\":\"Bundle\",\"type\":\"searchset\","
	     "\"link\":[{\"relation\":\"last\",\"url\":\"http://x/1\"},"
	     "{\"relation\":\"self\",\"url\":\"http://x/2\"},"
	     "{\"relation\":\"last\",\"url\":\"http://x/3\"}]}",
	     1, "'last' occurs more than once (also link 0)"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect(cases[i].what, cases[i].doc, NULL, cases[i].nerr,
		       cases[i].part);
}

/* Extensions: unknown ones, abstract context types, version-specific
 * contexts. */
#define EX "http://example.org/fhir/ext/StructureDefinition/"
#define WITH(res, url)                                                         \
	"{\"resourceType\":\"" res "\",\"extension\":[{\"url\":\"" url         \
	"\",\"valueString\":\"x\"}]}"

static void
test_extensions(void **state)
{
	/* findings compared: extension context errors, unknown-extension
	 * errors and warnings (other findings of the bare resources are
	 * not the point) */
	static const struct {
		const char *what, *doc;
		size_t ctx, unknown_err, unknown_warn;
	} cases[] = {
	    {"unknown hl7",
	     WITH("Basic", "http://hl7.org/fhir/StructureDefinition/nope"), 0,
	     1, 0},
	    {"unknown elsewhere",
	     WITH("Basic", "https://example.invalid/StructureDefinition/x"), 0,
	     0, 1},
	    {"canonical on ValueSet", WITH("ValueSet", EX "ext-canonical"), 0,
	     0, 0},
	    {"canonical on SearchParameter",
	     WITH("SearchParameter", EX "ext-canonical"), 0, 0, 0},
	    {"canonical on Basic", WITH("Basic", EX "ext-canonical"), 1, 0, 0},
	    {"metadata on ConceptMap", WITH("ConceptMap", EX "ext-metadata"), 0,
	     0, 0},
	    {"metadata on StructureMap",
	     WITH("StructureMap", EX "ext-metadata"), 1, 0, 0},
	    {"versioned on Patient", WITH("Patient", EX "ext-versioned"), 1, 0,
	     0},
	    {"versioned on Observation",
	     WITH("Observation", EX "ext-versioned"), 0, 0, 0},
	    {"R5 only", WITH("Patient", EX "ext-r5-only"), 1, 0, 0},
	};
	const struct rules_structure *sd;

	(void)state;
	sd = rules_structure(set, EX "ext-r5-only");
	assert_non_null(sd);
	assert_int_equal(sd->ncontexts, 1);
	assert_string_equal(sd->contexts[0].expr, RULES_CTX_NONE_HERE);
	sd = rules_structure(set, EX "ext-versioned");
	assert_non_null(sd);
	assert_int_equal(sd->ncontexts, 1);
	assert_string_equal(sd->contexts[0].expr, "Observation");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o = run(cases[i].doc, NULL);
		size_t ctx_n = count(o, "error", "not allowed to be used"),
		       ue = count(o, "error", "is unknown"),
		       uw = count(o, "warning", "is unknown");

		if (ctx_n != cases[i].ctx || ue != cases[i].unknown_err ||
		    uw != cases[i].unknown_warn) {
			fprintf(stderr,
				"%s: got %zu context errors, %zu unknown "
				"errors, %zu unknown warnings; want %zu, %zu, "
				"%zu\n",
				cases[i].what, ctx_n, ue, uw, cases[i].ctx,
				cases[i].unknown_err, cases[i].unknown_warn);
			fail();
		}
		json_decref(o);
	}
}

/* References: targetProfile judged on resolvable targets; a claimed
 * profile is judged at the target; a target with errors of its own gives
 * one information at the reference, not a cascade. */
#define SUBJ_BUNDLE(pat, ref)                                                  \
	"{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{"    \
	"\"fullUrl\":\"urn:uuid:00000000-0000-4000-8000-000000000001\","       \
	"\"resource\":" pat "},{\"fullUrl\":\"urn:uuid:00000000-0000-4000-"    \
	"8000-000000000002\",\"resource\":{\"resourceType\":"                  \
	"\"Observation\",\"meta\":{\"profile\":[\"" AP "apply-subject\"]},"    \
	"\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{"         \
	"\"reference\":\"" ref "\"}}}]}"
#define FIRST "urn:uuid:00000000-0000-4000-8000-000000000001"

static void
test_references(void **state)
{
	static const struct {
		const char *what, *doc;
		size_t nerr, ninfo;
		const char *part;
	} cases[] = {
	    {"conforms",
	     SUBJ_BUNDLE("{\"resourceType\":\"Patient\",\"gender\":\"male\","
			 "\"birthDate\":\"1950\"}",
			 FIRST),
	     0, 0, NULL},
	    {"outside the Bundle",
	     SUBJ_BUNDLE("{\"resourceType\":\"Patient\",\"birthDate\":"
			 "\"1950\"}",
			 "Patient/elsewhere"),
	     0, 0, NULL},
	    {"fine alone, not the target profile",
	     SUBJ_BUNDLE("{\"resourceType\":\"Patient\",\"birthDate\":"
			 "\"1950\"}",
			 FIRST),
	     1, 0, "does not conform to any allowed target profile"},
	    {"claims it",
	     SUBJ_BUNDLE("{\"resourceType\":\"Patient\",\"birthDate\":"
			 "\"1950\",\"meta\":{\"profile\":[\"" AP
			 "apply-patient-gender\"]}}",
			 FIRST),
	     1, 0, "gender"},
	    {"own errors", SUBJ_BUNDLE("{\"resourceType\":\"Patient\"}", FIRST),
	     1, 1, "birthDate"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o;
		size_t ni;

		expect(cases[i].what, cases[i].doc, NULL, cases[i].nerr,
		       cases[i].part);
		o = run(cases[i].doc, NULL);
		ni = count(o, "information", "has errors of its own");
		if (ni != cases[i].ninfo) {
			fprintf(stderr, "%s: got %zu informations, want %zu\n",
				cases[i].what, ni, cases[i].ninfo);
			fail();
		}
		json_decref(o);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_global_profiles),
	    cmocka_unit_test(test_no_guessing_among_loaded_profiles),
	    cmocka_unit_test(test_forced_beside_meta_profile),
	    cmocka_unit_test(test_entry_profile_candidates),
	    cmocka_unit_test(test_bundles),
	    cmocka_unit_test(test_extensions),
	    cmocka_unit_test(test_references),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
