/* Unit tests for the transform driver and its helpers: canonical URLs,
 * encounter <-> context, Reference.type, Bundle walk and report paths,
 * refusals, PractitionerRole references, version names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outcome.h"
#include "transform_impl.h"

static struct fj_doc *
parse(const char *text)
{
	struct fj_doc *d = NULL;
	struct fj_error err;

	if (fj_parse(text, strlen(text), 0, &d, &err) != GW_OK)
		fail_msg("test input does not parse: %s: %s", err.msg, text);
	return d;
}

static char *
dump(const struct fj_node *n)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	if (fj_dump(n, FJ_CANONICAL, &b) != GW_OK)
		fail_msg("dump failed");
	return buf_steal(&b, NULL);
}

/* Fail unless the report has an issue of severity sev whose expression
 * is expr (NULL: any) and whose diagnostics contain diag (NULL: any). */
static void
want_issue(const json_t *rep, const char *sev, const char *expr,
	   const char *diag)
{
	const json_t *issues = json_object_get(rep, "issue");
	size_t i;
	const json_t *is;

	json_array_foreach(issues, i, is)
	{
		const char *s =
		    json_string_value(json_object_get(is, "severity"));
		const char *d =
		    json_string_value(json_object_get(is, "diagnostics"));
		const json_t *ex = json_object_get(is, "expression");
		const char *e = json_string_value(json_array_get(ex, 0));

		if (s == NULL || strcmp(s, sev) != 0)
			continue;
		if (expr != NULL && (e == NULL || strcmp(e, expr) != 0))
			continue;
		if (diag != NULL && (d == NULL || strstr(d, diag) == NULL))
			continue;
		return;
	}
	{
		char *t = fhir_dump(rep);

		fail_msg("no %s issue at %s (%s); report: %s", sev,
			 expr ? expr : "*", diag ? diag : "*", t);
	}
}

struct conv_case {
	const char *name;
	enum rules_fhir from, to;
	const char *in;
	const char *want; /* output, canonical JSON */
	enum gw_err rc;
	const char *issue_sev; /* NULL: no issue wanted */
	const char *issue_expr;
	const char *issue_diag;
	size_t issues; /* exact issue count */
};

#define PZP_R4 "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
#define NICTIZ "http://nictiz.nl/fhir/StructureDefinition/"

static const struct conv_case conv_cases[] = {
    {"same version changes nothing", RULES_R4, RULES_R4,
     "{\"resourceType\":\"Procedure\",\"encounter\":{\"reference\":\"E/1\","
     "\"type\":\"Encounter\"}}",
     "{\"encounter\":{\"reference\":\"E/1\",\"type\":\"Encounter\"},"
     "\"resourceType\":\"Procedure\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"extension URL renamed R4 -> STU3, nested too", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Patient\",\"maritalStatus\":{\"extension\":[{"
     "\"url\":\"" NICTIZ "ext-CodeSpecification\",\"valueCodeableConcept\":"
     "{\"extension\":[{\"url\":\"" NICTIZ "ext-Comment\",\"valueString\":"
     "\"x\"}]}}]}}",
     "{\"maritalStatus\":{\"extension\":[{\"url\":\"" NICTIZ
     "code-specification\",\"valueCodeableConcept\":{\"extension\":[{"
     "\"url\":\"" NICTIZ "Comment\",\"valueString\":\"x\"}]}}]},"
     "\"resourceType\":\"Patient\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"extension URL renamed STU3 -> R4 in modifierExtension", RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Basic\",\"modifierExtension\":[{\"url\":\"" NICTIZ
     "zib-AddressInformation-AddressType\",\"valueCode\":\"a\"}]}",
     "{\"modifierExtension\":[{\"url\":\"" NICTIZ
     "ext-AddressInformation.AddressType\",\"valueCode\":\"a\"}],"
     "\"resourceType\":\"Basic\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"unknown PZP profile left out and reported", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Basic\",\"meta\":{\"profile\":[\"" PZP_R4
     "ACP-Nothing\"]}}",
     "{\"resourceType\":\"Basic\"}", GW_OK, "warning", "Basic.meta.profile[0]",
     "no STU3 counterpart", 1},
    {"a known profile maps, a foreign one stays", RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Consent\",\"meta\":{\"profile\":[\"urn:p\","
     "\"https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
     "ACP-AdvanceDirective\"],\"versionId\":\"1\"}}",
     "{\"meta\":{\"profile\":[\"urn:p\",\"" PZP_R4
     "ACP-AdvanceDirective\"],\"versionId\":\"1\"},\"resourceType\":"
     "\"Consent\",\"scope\":{\"extension\":[{\"url\":\"" XF_DAR_URL
     "\",\"valueCode\":\"unknown\"}]}}",
     GW_OK, "warning", "Consent", "scope", 1},
    {"R4 Bundle.timestamp left out for STU3, reported", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
     "\"timestamp\":\"2020-10-01T10:00:00Z\"}",
     "{\"resourceType\":\"Bundle\",\"type\":\"collection\"}", GW_OK, "warning",
     "Bundle.timestamp", "no timestamp", 1},
    {"zib2017 nl-core extension (fhir.nl) left out for R4, reported",
     RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Basic\",\"extension\":[{\"url\":\"http://"
     "fhir.nl/fhir/StructureDefinition/nl-core-x\",\"valueString\":\"v\"}"
     "]}",
     "{\"resourceType\":\"Basic\"}", GW_OK, "warning", "Basic.extension[0]",
     "no R4 counterpart", 1},
    {"v2 table and v3 code system URLs to STU3's names, NullFlavor kept",
     RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Basic\",\"identifier\":[{\"type\":{\"coding\":"
     "[{\"system\":\"http://terminology.hl7.org/CodeSystem/v2-0203\","
     "\"code\":\"RI\"}]},\"system\":\"urn:ietf:rfc:3986\"}],\"code\":"
     "{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
     "v3-RoleCode\",\"code\":\"BRO\"},{\"system\":\"http://"
     "terminology.hl7.org/CodeSystem/v3-NullFlavor\",\"code\":\"UNK\"}]}}",
     "{\"code\":{\"coding\":[{\"code\":\"BRO\",\"system\":\"http://"
     "hl7.org/fhir/v3/RoleCode\"},{\"code\":\"UNK\",\"system\":\"http://"
     "terminology.hl7.org/CodeSystem/v3-NullFlavor\"}]},\"identifier\":[{"
     "\"system\":\"urn:ietf:rfc:3986\",\"type\":{\"coding\":[{\"code\":"
     "\"RI\",\"system\":\"http://hl7.org/fhir/v2/0203\"}]}}],"
     "\"resourceType\":\"Basic\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"v2 table and v3 code system URLs to R4's names, every one", RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Basic\",\"code\":{\"coding\":[{\"system\":"
     "\"http://hl7.org/fhir/v2/0203\",\"code\":\"RI\"},{\"system\":"
     "\"http://hl7.org/fhir/v3/NullFlavor\",\"code\":\"OTH\"},{"
     "\"system\":\"http://hl7.org/fhir/v3\",\"code\":\"x\"}]}}",
     "{\"code\":{\"coding\":[{\"code\":\"RI\",\"system\":\"http://"
     "terminology.hl7.org/CodeSystem/v2-0203\"},{\"code\":\"OTH\","
     "\"system\":\"http://terminology.hl7.org/CodeSystem/v3-NullFlavor\"},"
     "{\"code\":\"x\",\"system\":\"http://hl7.org/fhir/v3\"}]},"
     "\"resourceType\":\"Basic\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"encounter becomes context", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Procedure\",\"status\":\"completed\","
     "\"encounter\":{\"reference\":\"Encounter/1\"},\"note\":[]}",
     "{\"context\":{\"reference\":\"Encounter/1\"},\"note\":[],"
     "\"resourceType\":\"Procedure\",\"status\":\"completed\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"context becomes encounter", RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Observation\",\"context\":{\"reference\":"
     "\"Encounter/1\"}}",
     "{\"encounter\":{\"reference\":\"Encounter/1\"},"
     "\"resourceType\":\"Observation\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"context to an EpisodeOfCare is reported", RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Observation\",\"context\":{\"reference\":"
     "\"EpisodeOfCare/1\"}}",
     "{\"resourceType\":\"Observation\"}", GW_OK, "warning",
     "Observation.context", "EpisodeOfCare", 1},
    {"Consent.encounter is not touched (not in the list)", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Consent\",\"encounter\":1}",
     "{\"encounter\":1,\"resourceType\":\"Consent\"}", GW_OK, NULL, NULL, NULL,
     0},
    {"Reference.type removed and reported", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Goal\",\"subject\":{\"reference\":\"Patient/1\","
     "\"type\":\"Patient\"},\"address\":[{\"type\":\"postal\"}]}",
     "{\"address\":[{\"type\":\"postal\"}],\"resourceType\":\"Goal\","
     "\"subject\":{\"reference\":\"Patient/1\"}}",
     GW_OK, "warning", "Goal.subject", "Reference.type", 1},
    {"Bundle entries converted with their paths", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
     "{\"fullUrl\":\"urn:uuid:1\",\"resource\":{\"resourceType\":"
     "\"Patient\"}},{\"resource\":{\"resourceType\":\"Procedure\","
     "\"subject\":{\"reference\":\"urn:uuid:1\",\"type\":\"Patient\"},"
     "\"encounter\":{\"reference\":\"Encounter/2\"}}}]}",
     "{\"entry\":[{\"fullUrl\":\"urn:uuid:1\",\"resource\":{"
     "\"resourceType\":\"Patient\"}},{\"resource\":{\"context\":{"
     "\"reference\":\"Encounter/2\"},\"resourceType\":\"Procedure\","
     "\"subject\":{\"reference\":\"urn:uuid:1\"}}}],"
     "\"resourceType\":\"Bundle\",\"type\":\"collection\"}",
     GW_OK, "warning", "Bundle.entry[1].resource.subject", NULL, 1},
    {"contained resources converted", RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Basic\",\"contained\":[{\"resourceType\":"
     "\"Procedure\",\"id\":\"p\",\"context\":{\"reference\":\"E/1\"}}]}",
     "{\"contained\":[{\"encounter\":{\"reference\":\"E/1\"},\"id\":\"p\","
     "\"resourceType\":\"Procedure\"}],\"resourceType\":\"Basic\"}",
     GW_OK, NULL, NULL, NULL, 0},
    {"STU3 practitionerrole-reference on any Reference becomes the role "
     "reference, reported",
     RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Encounter\",\"participant\":[{\"individual\":{"
     "\"reference\":\"Practitioner/p\",\"extension\":[{\"url\":\"" NICTIZ
     "practitionerrole-reference\",\"valueReference\":{\"reference\":"
     "\"PractitionerRole/r\"}}]}}]}",
     "{\"participant\":[{\"individual\":{\"reference\":"
     "\"PractitionerRole/r\"}}],\"resourceType\":\"Encounter\"}",
     GW_OK, "warning", "Encounter.participant[0].individual",
     "Practitioner reference is left out", 1},
    {"an extension of a namespace only the source has is left out, "
     "reported",
     RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Basic\",\"note\":[{\"extension\":[{\"url\":"
     "\"" NICTIZ "zib-Nothing\",\"valueString\":\"x\"},{\"url\":\"urn:"
     "keep\"}]}]}",
     "{\"note\":[{\"extension\":[{\"url\":\"urn:keep\"}]}],"
     "\"resourceType\":\"Basic\"}",
     GW_OK, "warning", "Basic.note[0].extension[0]", "no R4 counterpart", 1},
    {"R4 ext- namespace left out going to STU3, the empty array too", RULES_R4,
     RULES_STU3,
     "{\"resourceType\":\"Goal\",\"extension\":[{\"url\":\"" NICTIZ
     "ext-Nothing\",\"valueString\":\"x\"}]}",
     "{\"resourceType\":\"Goal\"}", GW_OK, "warning", "Goal.extension[0]",
     "no STU3 counterpart", 1},
    {"not a resource refused", RULES_R4, RULES_STU3, "{\"a\":1}", NULL,
     GW_REJECT, "error", NULL, "resourceType", 1},
    {"an array refused", RULES_STU3, RULES_R4, "[]", NULL, GW_REJECT, "error",
     NULL, NULL, 1},
    {"R4-only type refused", RULES_R4, RULES_STU3,
     "{\"resourceType\":\"ServiceRequest\"}", NULL, GW_REJECT, "error",
     "ServiceRequest", "no mapping", 1},
    {"STU3-only type in a Bundle refused at its entry", RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Bundle\",\"entry\":[{\"resource\":{"
     "\"resourceType\":\"ProcedureRequest\"}}]}",
     NULL, GW_REJECT, "error", "Bundle.entry[0].resource", NULL, 1},
    {"entry resource that is not a resource refused", RULES_STU3, RULES_R4,
     "{\"resourceType\":\"Bundle\",\"entry\":[{\"resource\":7}]}", NULL,
     GW_REJECT, "error", "Bundle.entry[0].resource", NULL, 1},
};

static void
test_convert(void **state)
{
	for (size_t i = 0; i < sizeof(conv_cases) / sizeof(conv_cases[0]);
	     i++) {
		const struct conv_case *k = &conv_cases[i];
		struct fj_doc *d = parse(k->in);
		json_t *rep = fhir_outcome_new();
		enum gw_err rc = xf_convert(d, k->from, k->to, rep);
		size_t n = json_array_size(json_object_get(rep, "issue"));

		if (rc != k->rc)
			fail_msg("%s: got %s, want %s", k->name,
				 gw_strerror(rc), gw_strerror(k->rc));
		if (k->want != NULL) {
			char *got = dump(d->root);

			if (strcmp(got, k->want) != 0)
				fail_msg("%s:\n got  %s\n want %s", k->name,
					 got, k->want);
			free(got);
		}
		if (k->issue_sev != NULL)
			want_issue(rep, k->issue_sev, k->issue_expr,
				   k->issue_diag);
		if (n != k->issues)
			fail_msg("%s: got %zu issues, want %zu: %s", k->name, n,
				 k->issues, fhir_dump(rep));
		json_decref(rep);
		fj_doc_free(d);
	}
}

/* The same input converted twice gives the same bytes. */
static void
test_deterministic(void **state)
{
	const char *in = conv_cases[9].in;
	char *a, *b;
	struct fj_doc *d1 = parse(in), *d2 = parse(in);

	assert_int_equal(xf_convert(d1, RULES_R4, RULES_STU3, NULL), GW_OK);
	assert_int_equal(xf_convert(d2, RULES_R4, RULES_STU3, NULL), GW_OK);
	a = dump(d1->root);
	b = dump(d2->root);
	assert_string_equal(a, b);
	free(a);
	free(b);
	fj_doc_free(d1);
	fj_doc_free(d2);
}

static void
test_version_parse(void **state)
{
	static const struct {
		const char *s;
		bool ok;
		enum rules_fhir v;
	} cases[] = {
	    {"stu3", true, RULES_STU3},	 {"STU3", true, RULES_STU3},
	    {"3.0", true, RULES_STU3},	 {"3.0.2", true, RULES_STU3},
	    {"r4", true, RULES_R4},	 {"4.0", true, RULES_R4},
	    {"4.0.1", true, RULES_R4},	 {"4.0.", false, RULES_R4},
	    {"4.1", false, RULES_R4},	 {"5.0.0", false, RULES_R4},
	    {"", false, RULES_R4},	 {"r5", false, RULES_R4},
	    {"3.0.2x", false, RULES_R4}, {"3", false, RULES_R4},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rules_fhir v = (enum rules_fhir)99;
		bool ok = xf_version_parse(cases[i].s, &v);

		if (ok != cases[i].ok || (ok && v != cases[i].v))
			fail_msg("xf_version_parse(\"%s\"): got %d/%d, want "
				 "%d/%d",
				 cases[i].s, ok, v, cases[i].ok, cases[i].v);
	}
	assert_false(xf_version_parse(NULL, NULL));
}

static void
test_ext_helpers(void **state)
{
	struct fj_doc *d =
	    parse("{\"resourceType\":\"Basic\",\"a\":1,\"b\":2,\"extension\":"
		  "[{\"url\":\"u1\",\"valueString\":\"x\"}]}");
	struct xf_ctx c = {.doc = d, .from = RULES_R4, .to = RULES_STU3};
	struct fj_node *e;
	char *got;

	/* rename keeps position; renaming onto an existing member drops
	   the old one (no duplicate key) */
	assert_true(xf_rename(d->root, "a", "c"));
	assert_false(xf_rename(d->root, "zz", "y"));
	assert_true(xf_rename(d->root, "c", "b"));
	assert_non_null(xf_ext_find(d->root, "u1", false));
	assert_null(xf_ext_find(d->root, "u1", true));
	e = xf_ext_take(d->root, "u1", false);
	assert_non_null(e);
	assert_null(fj_get(d->root, "extension"));
	assert_int_equal(xf_ext_add(&c, d->root, "u2", true, "valueCoding",
				    xf_coding(&c, "s", "k", NULL)),
			 GW_OK);
	assert_int_equal(xf_ext_add(&c, d->root, "u3", true, "valueCode",
				    fj_new_string(d, "v")),
			 GW_OK);
	assert_int_equal(fj_set(d, d->root, "dar", xf_dar(&c, "unknown")),
			 GW_OK);
	got = dump(d->root);
	assert_string_equal(
	    got, "{\"b\":1,\"dar\":{\"url\":\"" XF_DAR_URL "\",\"valueCode\":"
		 "\"unknown\"},\"modifierExtension\":[{\"url\":\"u2\","
		 "\"valueCoding\":{\"code\":\"k\",\"system\":\"s\"}},{\"url\":"
		 "\"u3\",\"valueCode\":\"v\"}],\"resourceType\":\"Basic\"}");
	free(got);
	fj_doc_free(d);
}

#define ROLE_EXT NICTIZ "practitionerrole-reference"
static const char role_bundle[] =
    "{\"resourceType\":\"Bundle\",\"entry\":["
    "{\"fullUrl\":\"urn:uuid:r\",\"resource\":{\"resourceType\":"
    "\"PractitionerRole\",\"id\":\"r1\",\"practitioner\":{\"reference\":"
    "\"Practitioner/p1\",\"display\":\"Dr P\"}}},"
    "{\"resource\":{\"resourceType\":\"Practitioner\",\"id\":\"p1\"}},"
    "{\"resource\":{\"resourceType\":\"Consent\",\"x\":["
    "{\"reference\":\"PractitionerRole/r1\",\"display\":\"role\"},"
    "{\"reference\":\"urn:uuid:r\"},"
    "{\"reference\":\"Practitioner/p1\"},"
    "{\"reference\":\"PractitionerRole/elsewhere\",\"display\":\"d\"},"
    "{\"reference\":\"https://hospital.example.nl/fhir/PractitionerRole/9\","
    "\"display\":\"abs\"}]}}]}";

static void
test_role_ref(void **state)
{
	struct fj_doc *d = parse(role_bundle);
	json_t *rep = fhir_outcome_new();
	struct xf_ctx c = {.doc = d,
			   .from = RULES_R4,
			   .to = RULES_STU3,
			   .report = rep,
			   .bundle = d->root,
			   .path = "Bundle.entry[2].resource"};
	struct fj_node *x =
	    fj_get(fj_get(fj_at(fj_get(d->root, "entry"), 2), "resource"), "x");
	char *got;
	static const char *const want_stu3[] = {
	    "{\"display\":\"Dr P\",\"extension\":[{\"url\":\"" ROLE_EXT
	    "\",\"valueReference\":{\"display\":\"role\",\"reference\":"
	    "\"PractitionerRole/r1\"}}],\"reference\":\"Practitioner/p1\"}",
	    "{\"display\":\"Dr P\",\"extension\":[{\"url\":\"" ROLE_EXT
	    "\",\"valueReference\":{\"reference\":\"urn:uuid:r\"}}],"
	    "\"reference\":\"Practitioner/p1\"}",
	    "{\"reference\":\"Practitioner/p1\"}",
	    "{\"display\":\"d\",\"extension\":[{\"url\":\"" ROLE_EXT
	    "\",\"valueReference\":{\"display\":\"d\",\"reference\":"
	    "\"PractitionerRole/elsewhere\"}}]}",
	    "{\"display\":\"abs\",\"extension\":[{\"url\":\"" ROLE_EXT
	    "\",\"valueReference\":{\"display\":\"abs\",\"reference\":"
	    "\"https://hospital.example.nl/fhir/PractitionerRole/9\"}}]}",
	};
	static const char *const want_r4[] = {
	    "{\"display\":\"role\",\"reference\":\"PractitionerRole/r1\"}",
	    "{\"reference\":\"urn:uuid:r\"}",
	    "{\"reference\":\"Practitioner/p1\"}",
	    "{\"display\":\"d\",\"reference\":\"PractitionerRole/elsewhere\"}",
	    "{\"display\":\"abs\",\"reference\":"
	    "\"https://hospital.example.nl/fhir/PractitionerRole/9\"}",
	};

	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(xf_role_ref(&c, fj_at(x, i), "x"), GW_OK);
		got = dump(fj_at(x, i));
		if (strcmp(got, want_stu3[i]) != 0)
			fail_msg("to STU3 #%zu:\n got  %s\n want %s", i, got,
				 want_stu3[i]);
		free(got);
	}
	/* only the roles outside the Bundle are a loss (an absolute
	   reference too) */
	assert_int_equal(json_array_size(json_object_get(rep, "issue")), 2);
	want_issue(rep, "warning", "Bundle.entry[2].resource.x",
		   "PractitionerRole/elsewhere");
	want_issue(rep, "warning", "Bundle.entry[2].resource.x",
		   "https://hospital.example.nl/fhir/PractitionerRole/9");
	c.from = RULES_STU3;
	c.to = RULES_R4;
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(xf_role_ref(&c, fj_at(x, i), "x"), GW_OK);
		got = dump(fj_at(x, i));
		if (strcmp(got, want_r4[i]) != 0)
			fail_msg("back to R4 #%zu:\n got  %s\n want %s", i, got,
				 want_r4[i]);
		free(got);
	}
	json_decref(rep);
	fj_doc_free(d);
}

static void
test_resolve(void **state)
{
	/* walking the Bundle (xf_normalise) and over the entries taken once
	   (xf_convert) find the same */
	for (int take = 0; take < 2; take++) {
		struct fj_doc *d = parse(role_bundle);
		struct xf_ctx c = {.doc = d, .bundle = d->root};
		struct fj_node *en = fj_get(d->root, "entry");

		if (take) {
			assert_int_equal(xf_entries_take(&c), GW_OK);
			assert_int_equal(c.nents, 3);
		}
		assert_ptr_equal(xf_resolve(&c, "urn:uuid:r"),
				 fj_get(fj_at(en, 0), "resource"));
		assert_ptr_equal(xf_resolve(&c, "PractitionerRole/r1"),
				 fj_get(fj_at(en, 0), "resource"));
		assert_ptr_equal(xf_resolve(&c, "Practitioner/p1"),
				 fj_get(fj_at(en, 1), "resource"));
		assert_null(xf_resolve(&c, "Practitioner/p"));
		assert_null(xf_resolve(&c, "Practitioner/p1x"));
		assert_null(xf_resolve(&c, "PractitionerRole"));
		assert_null(xf_resolve(&c, "Consent/"));
		assert_null(xf_resolve(&c, ""));
		assert_null(xf_resolve(&c, NULL));
		c.bundle = NULL;
		assert_null(xf_resolve(&c, "urn:uuid:r"));
		free(c.ents);
		fj_doc_free(d);
	}
}

static void
test_url_tables(void **state)
{
	struct xf_ctx c = {.from = RULES_R4, .to = RULES_STU3};
	const struct xf_url_map *const tables[] = {
	    xf_urls_core, xf_urls_consent, xf_urls_zib, xf_urls_care, NULL};

	/* every row maps and, for the first row of an STU3 URL, maps back */
	for (size_t t = 0; tables[t] != NULL; t++) {
		for (const struct xf_url_map *m = tables[t]; m->r4 != NULL;
		     m++) {
			c.to = RULES_STU3;
			assert_string_equal(xf_url(&c, m->r4), m->stu3);
			c.to = RULES_R4;
			assert_non_null(xf_url(&c, m->stu3));
		}
	}
	c.to = RULES_STU3;
	assert_string_equal(xf_url(&c, "urn:x"), "urn:x");
	assert_null(xf_url(&c, NULL));
}

/* Paths longer than the report's buffer are cut, never overrun (the walks
 * build them without printf). */
static void
test_long_paths(void **state)
{
	char key[1500], *in;
	struct fj_doc *d;
	json_t *rep = fhir_outcome_new();
	const char *e;

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	in = malloc(strlen(key) * 2 + 256);
	assert_non_null(in);
	snprintf(in, strlen(key) * 2 + 256,
		 "{\"resourceType\":\"Basic\",\"%s\":[[{\"%s\":{\"reference\":"
		 "\"Patient/1\",\"type\":\"Patient\"}}]]}",
		 key, key);
	d = parse(in);
	assert_int_equal(xf_convert(d, RULES_R4, RULES_STU3, rep), GW_OK);
	e = json_string_value(json_array_get(
	    json_object_get(json_array_get(json_object_get(rep, "issue"), 0),
			    "expression"),
	    0));
	assert_non_null(e);
	assert_true(strlen(e) < XF_PATH_MAX + 128);
	assert_memory_equal(e, "Basic.kkkk", 10);
	json_decref(rep);
	fj_doc_free(d);
	free(in);
}

static void
test_normalise(void **state)
{
	static const char in[] =
	    "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
	    "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"p1\"}},"
	    "{\"fullUrl\":\"urn:uuid:keep\",\"resource\":{\"resourceType\":"
	    "\"Consent\",\"id\":\"c\",\"patient\":{\"reference\":"
	    "\"Patient/p1\"},\"x\":[{\"reference\":\"Patient/p2\"},"
	    "{\"reference\":\"Patient/p1\"}]}}]}";
	struct fj_doc *d = parse(in);
	json_t *rep = fhir_outcome_new();
	struct xf_norm_opts o = {.root_profile = "urn:prof",
				 .bundle_id = true,
				 .now_unix = 1764892800};
	const struct fj_node *e0, *c;
	const char *full;

	assert_int_equal(xf_normalise(d, RULES_R4, &o, rep), GW_OK);
	e0 = fj_at(fj_get(d->root, "entry"), 0);
	full = fj_get_str(e0, "fullUrl");
	assert_non_null(full);
	assert_int_equal(strlen(full), strlen("urn:uuid:") + 36);
	assert_memory_equal(full, "urn:uuid:", 9);
	c = fj_get(fj_at(fj_get(d->root, "entry"), 1), "resource");
	assert_string_equal(fj_get_str(fj_get(c, "patient"), "reference"),
			    full);
	assert_string_equal(fj_get_str(fj_at(fj_get(c, "x"), 1), "reference"),
			    full);
	/* a reference to no entry stays */
	assert_string_equal(fj_get_str(fj_at(fj_get(c, "x"), 0), "reference"),
			    "Patient/p2");
	assert_string_equal(
	    fj_get_str(fj_at(fj_get(d->root, "entry"), 1), "fullUrl"),
	    "urn:uuid:keep");
	assert_string_equal(fj_get_str(fj_get(d->root, "identifier"), "system"),
			    "urn:ietf:rfc:3986");
	assert_string_equal(fj_get_str(d->root, "timestamp"),
			    "2025-12-05T00:00:00Z");
	assert_true(fj_str_eq(
	    fj_at(fj_get(fj_get(d->root, "meta"), "profile"), 0), "urn:prof"));
	want_issue(rep, "information", "Bundle.entry[0].fullUrl", NULL);
	want_issue(rep, "information",
		   "Bundle.entry[1].resource.patient.reference", "Patient/p1");
	want_issue(rep, "information",
		   "Bundle.entry[1].resource.x[1].reference", NULL);
	want_issue(rep, "information", "Bundle.identifier", NULL);
	want_issue(rep, "information", "Bundle.timestamp", NULL);
	want_issue(rep, "information", "Bundle.meta.profile", "urn:prof");
	/* 2 references + fullUrl + identifier + timestamp + profile */
	assert_int_equal(json_array_size(json_object_get(rep, "issue")), 6);
	/* a second run changes nothing more */
	json_decref(rep);
	rep = fhir_outcome_new();
	assert_int_equal(xf_normalise(d, RULES_R4, &o, rep), GW_OK);
	assert_int_equal(json_array_size(json_object_get(rep, "issue")), 0);
	json_decref(rep);
	fj_doc_free(d);

	d = parse("[1]");
	rep = fhir_outcome_new();
	assert_int_equal(xf_normalise(d, RULES_STU3, NULL, rep), GW_REJECT);
	want_issue(rep, "error", NULL, "resourceType");
	json_decref(rep);
	fj_doc_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_convert),
	    cmocka_unit_test(test_deterministic),
	    cmocka_unit_test(test_version_parse),
	    cmocka_unit_test(test_ext_helpers),
	    cmocka_unit_test(test_role_ref),
	    cmocka_unit_test(test_resolve),
	    cmocka_unit_test(test_url_tables),
	    cmocka_unit_test(test_normalise),
	    cmocka_unit_test(test_long_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
