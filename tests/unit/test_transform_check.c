/*
 * Unit tests for xf_check, the check after the transform rules: a
 * document of the target version against that version's validator (the
 * rules in schemas/), with a data-absent-reason mark where a required
 * element of a markable type is missing, and a refusal naming the output
 * element otherwise. One table row per kind of finding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "outcome.h"
#include "transform.h"
#include "validate.h"
#include "both_versions.h"

/* The cases write JSON with single quotes; this makes it JSON. */
static char *
dq(const char *s)
{
	char *t = strdup(s);

	if (t == NULL)
		abort();
	for (char *p = t; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return t;
}

#define R4A "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
#define S3  "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
#define DARX                                                                   \
	"{'extension':[{'url':'http://hl7.org/fhir/StructureDefinition/"       \
	"data-absent-reason','valueCode':'unknown'}]}"
#define SCT  "http://snomed.info/sct"
#define NAME "'name':[{'family':'Hartman'}]"
#define ROLE                                                                   \
	"{'coding':[{'system':'urn:oid:2.16.840.1.113883.2.4.3.11.22.472',"    \
	"'code':'23','display':'Contactpersoon'}]}"

struct ckcase {
	const char *name;
	enum rules_fhir v; /* the version of the document (the target) */
	const char *in;
	enum gw_err rc;
	/* the output member that must now hold DARX (a JSON path of
	   member names below the root), or NULL */
	const char *marked[3];
	/* the issue wanted: severity, expression, a diagnostics part */
	const char *sev, *expr, *diag;
};

static const struct ckcase cases[] = {
    {"valid R4 ContactPerson: nothing to do",
     RULES_R4,
     "{'resourceType':'RelatedPerson','meta':{'profile':['" R4A
     "ACP-ContactPerson']},'patient':{'reference':'Patient/1'},"
     "'relationship':[" ROLE "]," NAME "}",
     GW_OK,
     {NULL},
     NULL,
     NULL,
     NULL},
    {"R4 required Reference missing: marked data-absent-reason",
     RULES_R4,
     "{'resourceType':'RelatedPerson','meta':{'profile':['" R4A
     "ACP-ContactPerson']},'relationship':[" ROLE "]," NAME "}",
     GW_OK,
     {"patient", NULL},
     "warning",
     "RelatedPerson.patient",
     "marked data-absent-reason 'unknown'"},
    {"R4 required slice missing: refused, naming the element",
     RULES_R4,
     "{'resourceType':'RelatedPerson','meta':{'profile':['" R4A
     "ACP-ContactPerson']},'patient':{'reference':'Patient/1'}," NAME "}",
     GW_REJECT,
     {NULL},
     "error",
     "RelatedPerson.relationship",
     "the R4 output would break this"},
    {"R4 code outside a required binding: refused",
     RULES_R4,
     "{'resourceType':'Observation','meta':{'profile':['" R4A
     "ACP-OrganDonationChoiceRegistration']},'status':'final',"
     "'code':{'coding':[{'system':'" SCT "','code':'570801000146104'}]},"
     "'subject':{'reference':'Patient/1'},"
     "'valueCodeableConcept':{'coding':[{'system':'" SCT
     "','code':'1234567'}]}}",
     GW_REJECT,
     {NULL},
     "error",
     NULL,
     "is not in the value set"},
    {"a missing modifier (status) is not marked: refused",
     RULES_R4,
     "{'resourceType':'Encounter','meta':{'profile':['" R4A
     "ACP-Encounter']},'class':{'system':'http://terminology.hl7.org/"
     "CodeSystem/v3-ActCode','code':'AMB'},'subject':{'reference':"
     "'Patient/1'}}",
     GW_REJECT,
     {NULL},
     "error",
     "Encounter.status",
     "minimum required = 1"},
    {"R4 required Coding missing: marked data-absent-reason",
     RULES_R4,
     "{'resourceType':'Encounter','meta':{'profile':['" R4A
     "ACP-Encounter']},'status':'finished','subject':{'reference':"
     "'Patient/1'}}",
     GW_OK,
     {"class", NULL},
     "warning",
     "Encounter.class",
     "the R4 profile requires this element"},
    {"a required primitive: marked in its _name companion",
     RULES_R4,
     "{'resourceType':'Bundle','id':'b1'}",
     GW_OK,
     {"_type", NULL},
     "warning",
     "Bundle.type",
     "marked data-absent-reason"},
    {"inside a Bundle entry: the output path names the entry",
     RULES_R4,
     "{'resourceType':'Bundle','type':'collection','entry':[{'fullUrl':"
     "'urn:uuid:7c1b4f4e-0b8e-4bb4-9d1e-1f2a3b4c5d6e','resource':{"
     "'resourceType':'RelatedPerson','meta':{'profile':['" R4A
     "ACP-ContactPerson']},'relationship':[" ROLE "]," NAME "}}]}",
     GW_OK,
     {"entry", "0", "patient"},
     "warning",
     "Bundle.entry[0].resource.ofType(RelatedPerson).patient",
     "marked data-absent-reason"},
    {"nested in backbone elements: provision.actor[0].role marked",
     RULES_R4,
     "{'resourceType':'Consent','status':'active','scope':{'text':'s'},"
     "'category':[{'text':'c'}],'policyRule':{'text':'p'},"
     "'provision':{'actor':[{'reference':{'reference':'Patient/1'}}]}}",
     GW_OK,
     {NULL},
     "warning",
     "Consent.provision.actor[0].role",
     "marked data-absent-reason"},
    {"valid STU3 ContactPerson: nothing to do",
     RULES_STU3,
     "{'resourceType':'RelatedPerson','meta':{'profile':['" S3
     "ACP-ContactPerson']},'patient':{'reference':'Patient/1'},"
     "'relationship':" ROLE "," NAME "}",
     GW_OK,
     {NULL},
     NULL,
     NULL,
     NULL},
};

/* The member path of c->marked in root (entry/N/resource walked for
 * Bundles). */
static const struct fj_node *
marked_node(const struct fj_node *root, const char *const *path)
{
	const struct fj_node *n = root;

	for (size_t i = 0; i < 3 && path[i] != NULL; i++) {
		if (path[i][0] >= '0' && path[i][0] <= '9') {
			n = fj_get(fj_at(n, (size_t)strtoul(path[i], NULL, 10)),
				   "resource");
			continue;
		}
		n = fj_get(n, path[i]);
	}
	return n;
}

static bool
has_issue(const json_t *rep, const struct ckcase *c)
{
	const json_t *is;
	size_t i;

	json_array_foreach(json_object_get(rep, "issue"), i, is)
	{
		const char *s =
		    json_string_value(json_object_get(is, "severity"));
		const char *e = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));
		const char *d =
		    json_string_value(json_object_get(is, "diagnostics"));

		if (s == NULL || strcmp(s, c->sev) != 0)
			continue;
		if (c->expr != NULL && (e == NULL || strcmp(e, c->expr) != 0))
			continue;
		if (c->diag != NULL &&
		    (d == NULL || strstr(d, c->diag) == NULL))
			continue;
		return true;
	}
	return false;
}

static void
test_cases(void **state)
{
	struct both_versions *s = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ckcase *c = &cases[i];
		int v = c->v == RULES_R4 ? 0 : 1;
		char *text = dq(c->in);
		struct fj_doc *doc = NULL;
		json_t *rep = fhir_outcome_new(), *after = fhir_outcome_new();
		enum gw_err rc;

		if (fj_parse(text, strlen(text), 0, &doc, NULL) != GW_OK)
			fail_msg("%s: input does not parse", c->name);
		rc = xf_check(doc, s->set[v], s->ctx[v], rep);
		if (rc != c->rc) {
			char *t = fhir_dump(rep);

			fail_msg("%s: got rc %d, want %d; report %s", c->name,
				 rc, c->rc, t);
		}
		if (c->sev == NULL &&
		    json_array_size(json_object_get(rep, "issue")) != 0) {
			char *t = fhir_dump(rep);

			fail_msg("%s: got issues %s, want none", c->name, t);
		}
		if (c->sev != NULL && !has_issue(rep, c)) {
			char *t = fhir_dump(rep);

			fail_msg(
			    "%s: got report %s, want a %s issue at %s (%s)",
			    c->name, t, c->sev, c->expr ? c->expr : "*",
			    c->diag ? c->diag : "*");
		}
		if (c->marked[0] != NULL) {
			const struct fj_node *m =
			    marked_node(doc->root, c->marked);
			const struct fj_node *x =
			    fj_at(fj_get(m, "extension"), 0);

			if (m == NULL || x == NULL ||
			    !fj_str_eq(fj_get(x, "valueCode"), "unknown"))
				fail_msg("%s: the element is not marked "
					 "data-absent-reason",
					 c->name);
		}
		/* GW_OK means the target's validator now accepts it */
		if (rc == GW_OK) {
			assert_int_equal(validate_document(s->ctx[v], doc->root,
							   NULL, after),
					 GW_OK);
			if (fhir_outcome_errors(after) != 0) {
				char *t = fhir_dump(after);

				fail_msg("%s: GW_OK but the validator says %s",
					 c->name, t);
			}
		}
		json_decref(after);
		json_decref(rep);
		fj_doc_free(doc);
		free(text);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	};

	return cmocka_run_group_tests(tests, both_versions_setup,
				      both_versions_teardown);
}
