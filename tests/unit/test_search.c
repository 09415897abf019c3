/* Unit tests for the search module: parsing (errors, leniency, limits),
 * token/reference/chained/date matching over the PZP R4 examples in
 * tests/data/valid/r4, the scope, _include and the canonical form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fjson.h"
#include "outcome.h"
#include "rules.h"
#include "search.h"
#include "util.h"
#include "validate.h"

#define ICD_VS                                                                 \
	"https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalDeviceProductType-ICD"
#define GOAL_VS "https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalPolicyGoal"
#define SCT	"http://snomed.info/sct"
#define BSN	"http://fhir.nl/fhir/NamingSystem/bsn"

/* 2024-05-01T10:00:00Z, when most of the corpus was "stored" */
#define T0 1714557600000LL
/* the Procedure: 2024-06-01T00:00:00Z */
#define T_PROC 1717200000000LL

struct corpus {
	struct fj_doc *doc[32];
	const char *id[32];
	int64_t updated[32];
	size_t n;
};

static struct corpus C;
/* the R4 rules in schemas/: the value sets for :in, the validator */
static struct rules_set *R4;

static void
load(const char *rel)
{
	const char *src = getenv("PZPGW_SRCDIR");
	char path[4096], *text;
	size_t len;
	struct fj_doc *doc = NULL;
	struct fj_error err;
	const char *type;

	snprintf(path, sizeof(path), "%s/tests/data/valid/r4/%s",
		 src != NULL ? src : ".", rel);
	if (util_read_file(path, 1 << 22, &text, &len) != GW_OK)
		fail_msg("cannot read %s (set PZPGW_SRCDIR)", path);
	if (fj_parse(text, len, 0, &doc, &err) != GW_OK)
		fail_msg("%s: %s", path, err.msg);
	free(text);
	assert_true(C.n < UTIL_ARRAY_LEN(C.doc));
	C.doc[C.n] = doc;
	C.id[C.n] = fj_get_str(doc->root, "id");
	type = fj_get_str(doc->root, "resourceType");
	C.updated[C.n] = strcmp(type, "Procedure") == 0 ? T_PROC : T0;
	C.n++;
}

static int
setup(void **state)
{
	static const char *files[] = {
	    "Communication-F1-ACP-Communication-01-10-2020.json",
	    "CommunicationRequest-F1-ACP-InformRelativesRequest-01-10-2020."
	    "json",
	    "Consent-F1-ACP-TreatmentDirective-116762002.json",
	    "Consent-F1-ACP-TreatmentDirective-305351004.json",
	    "Consent-F1-ACP-TreatmentDirective-400231000146108.json",
	    "Consent-F1-ACP-TreatmentDirective-40617009.json",
	    "Consent-F1-ACP-TreatmentDirective-89666000.json",
	    "Consent-F2-ACP-TreatmentDirective-305351004.json",
	    "Device-F1-ACP-MedicalDevice.Product-ICD.json",
	    "DeviceUseStatement-F1-ACP-MedicalDevice-ICD.json",
	    "Encounter-F1-ACP-Encounter-01-10-2020.json",
	    "Goal-F1-ACP-Medical-Policy-Goal.json",
	    "Observation-F1-ACP-ACPSenseOfPurpose.json",
	    "Observation-F1-ACP-OrganDonationChoiceRegistration-Yes.json",
	    "Observation-F1-ACP-PositionRegardingEuthanasia-Unknown.json",
	    "Observation-F1-ACP-SpecificCareWishes.json",
	    "Patient-F1-ACP-Patient-HendrikHartman.json",
	    "Practitioner-F1-ACP-HealthProfessional-Practitioner-DrVanHuissen."
	    "json",
	    "PractitionerRole-F1-ACP-HealthProfessional-PractitionerRole-"
	    "DrVanHuissen.json",
	    "Procedure-F1-ACP-Procedure-01-10-2020.json",
	    "RelatedPerson-F1-ACP-ContactPerson-MichielHartman.json",
	};
	const char *src = getenv("PZPGW_SRCDIR");
	char path[4096], errbuf[512];
	struct fj_doc *qr;
	struct fj_node *subj;
	size_t i;

	snprintf(path, sizeof(path), "%s/schemas", src != NULL ? src : ".");
	R4 = rules_set_new(RULES_R4);
	if (R4 == NULL ||
	    rules_load_dir(R4, path, errbuf, sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "rules %s: %s\n", path, errbuf);
		return -1;
	}

	for (i = 0; i < UTIL_ARRAY_LEN(files); i++) {
		char rel[256];

		snprintf(rel, sizeof(rel), "pzp-1.0.0-rc1/%s", files[i]);
		load(rel);
	}
	/* another patient's (P1) advance directive and place of death */
	load("pzp-1.0.0-rc1-own/Consent-P1-ACP-AdvanceDirective-DNR.json");
	load("pzp-1.0.0-rc1-own/"
	     "Observation-P1-ACP-PreferredPlaceOfDeath-Home.json");
	/* the ACP form, given the subject a stored one has */
	load("QuestionnaireResponse-HendrikHartman-20201001.json");
	qr = C.doc[C.n - 1];
	subj = fj_new_object(qr);
	assert_non_null(subj);
	assert_int_equal(
	    fj_set(qr, subj, "reference",
		   fj_new_string(qr, "Patient/F1-ACP-Patient-HendrikHartman")),
	    GW_OK);
	assert_int_equal(fj_set(qr, qr->root, "subject", subj), GW_OK);
	C.updated[C.n - 1] = T0 + 500;
	return 0;
}

static int
teardown(void **state)
{
	size_t i;

	for (i = 0; i < C.n; i++)
		fj_doc_free(C.doc[i]);
	memset(&C, 0, sizeof(C));
	rules_set_free(R4);
	R4 = NULL;
	return 0;
}

/* search_env for the corpus: resolve by type and id; value sets from the
 * R4 rules (the PZP ones under both canonical bases), as the pull API
 * does. */
static const struct fj_node *
resolve(void *arg, const char *type, const char *id)
{
	size_t i;

	for (i = 0; i < C.n; i++)
		if (strcmp(C.id[i], id) == 0 &&
		    fj_str_eq(fj_get(C.doc[i]->root, "resourceType"), type))
			return C.doc[i]->root;
	return NULL;
}

static enum gw_err
in_valueset(void *arg, const char *url, const char *system, const char *code,
	    bool *in)
{
	const struct rules_valueset *vs = rules_valueset(R4, url);

	if (vs == NULL)
		return GW_NOTFOUND;
	*in = rules_valueset_has(vs, system, code);
	return GW_OK;
}

static const struct search_env env = {resolve, in_valueset, NULL};

/* The ids of the corpus resources q matches, without the common
 * "F1-ACP-" prefix, sorted, space-separated (caller frees). */
static char *
matches(const struct search_query *q, const struct search_env *e)
{
	const char *ids[32];
	size_t n = 0, i, j;
	struct buf b;

	for (i = 0; i < C.n; i++)
		if (search_match(q, C.doc[i]->root, C.updated[i], e))
			ids[n++] = strncmp(C.id[i], "F1-ACP-", 7) == 0
				       ? C.id[i] + 7
				       : C.id[i];
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(ids[j - 1], ids[j]) > 0; j--) {
			const char *t = ids[j];

			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	buf_init(&b, 1 << 16);
	buf_adds(&b, "");
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_addc(&b, ' ');
		buf_adds(&b, ids[i]);
	}
	return buf_steal(&b, NULL);
}

/* The IG's searches (data-exchange page and CapabilityStatement) and
 * the FHIR semantics around them, each with the resources it must
 * return. */
static void
test_match(void **state)
{
	static const struct {
		const char *type, *query;
		const char *want; /* sorted ids */
	} cases[] = {
	    /* 1a */
	    {"Procedure",
	     "patient=F1-ACP-Patient-HendrikHartman&code=" SCT
	     "|713603004&_include=Procedure:encounter",
	     "Procedure-01-10-2020"},
	    {"Procedure", "patient=Patient/F1-ACP-Patient-HendrikHartman",
	     "Procedure-01-10-2020"},
	    {"Procedure", "subject:Patient=F1-ACP-Patient-HendrikHartman",
	     "Procedure-01-10-2020"},
	    {"Procedure", "patient=P1-ACP-Patient-HendrikHartman", ""},
	    {"Procedure", "patient=Practitioner/F1-ACP-Patient-HendrikHartman",
	     ""},
	    /* token forms: code, |code, system|, system|code */
	    {"Procedure", "code=713603004", "Procedure-01-10-2020"},
	    {"Procedure", "code=|713603004", ""},
	    {"Procedure", "code=" SCT "|", "Procedure-01-10-2020"},
	    {"Procedure", "code=http://loinc.org|713603004", ""},
	    {"Procedure", "code=" SCT "|71360300", ""},
	    /* 1b: the chain through reason-reference */
	    {"Encounter",
	     "patient=F1-ACP-Patient-HendrikHartman&reason-reference:"
	     "Procedure.code=" SCT "|713603004&_include=Encounter:reason-"
	     "reference",
	     "Encounter-01-10-2020"},
	    {"Encounter", "reason-reference:Procedure.code=" SCT "|1", ""},
	    {"Encounter",
	     "reason-reference=Procedure/F1-ACP-Procedure-01-10-2020",
	     "Encounter-01-10-2020"},
	    {"Encounter", "reason-reference=F1-ACP-Procedure-01-10-2020",
	     "Encounter-01-10-2020"},
	    {"Encounter",
	     "reason-reference=Observation/F1-ACP-Procedure-01-"
	     "10-2020",
	     ""},
	    /* an absolute URL matches on its Type/id; a type modifier
	     * narrows it */
	    {"Encounter",
	     "reason-reference=https://b.example/fhir/Procedure/F1-ACP-"
	     "Procedure-01-10-2020",
	     "Encounter-01-10-2020"},
	    {"Encounter",
	     "reason-reference:Observation=https://b.example/fhir/Procedure/"
	     "F1-ACP-Procedure-01-10-2020",
	     ""},
	    /* 2: treatment directives (five F1, one F2, all of patient F1) */
	    {"Consent",
	     "patient=F1-ACP-Patient-HendrikHartman&scope=http://"
	     "terminology.hl7.org/CodeSystem/consentscope|treatment&category="
	     "http://snomed.info/sct|129125009&_include=Consent:actor",
	     "F2-ACP-TreatmentDirective-305351004 TreatmentDirective-116762002 "
	     "TreatmentDirective-305351004 TreatmentDirective-400231000146108 "
	     "TreatmentDirective-40617009 TreatmentDirective-89666000"},
	    /* 3: the advance directive is patient P1's */
	    {"Consent",
	     "patient=F1-ACP-Patient-HendrikHartman&scope=http://"
	     "terminology.hl7.org/CodeSystem/consentscope|adr&category=http://"
	     "terminology.hl7.org/CodeSystem/consentcategorycodes|acd",
	     ""},
	    {"Consent",
	     "patient=P1-ACP-Patient-HendrikHartman&scope=http://"
	     "terminology.hl7.org/CodeSystem/consentscope|adr&category=http://"
	     "terminology.hl7.org/CodeSystem/consentcategorycodes|acd",
	     "P1-ACP-AdvanceDirective-DNR"},
	    /* comma: OR; repeated: AND */
	    {"Consent", "scope=adr,nonsense&_id=P1-ACP-AdvanceDirective-DNR,x",
	     "P1-ACP-AdvanceDirective-DNR"},
	    {"Consent", "scope=adr&scope=treatment", ""},
	    {"Consent", "category=acd&category=129125009", ""},
	    /* 4 */
	    {"Goal",
	     "patient=F1-ACP-Patient-HendrikHartman&description:in=" GOAL_VS,
	     "Medical-Policy-Goal"},
	    {"Goal", "description:in=http://example.org/unknown-vs", ""},
	    {"Goal", "category=" SCT "|1351964001", ""},
	    /* 5: comma-separated codes, the first with a system */
	    {"Observation",
	     "patient=F1-ACP-Patient-HendrikHartman&code=" SCT
	     "|153851000146100,395091006,340171000146104,247751003",
	     "ACPSenseOfPurpose PositionRegardingEuthanasia-Unknown "
	     "SpecificCareWishes"},
	    {"Observation", "code=" SCT "|395091006",
	     "P1-ACP-PreferredPlaceOfDeath-Home"},
	    /* 6: the chain to Device.type, with :in and plain */
	    {"DeviceUseStatement",
	     "patient=F1-ACP-Patient-HendrikHartman&device.type:in=" ICD_VS
	     "&_include=DeviceUseStatement:device",
	     "MedicalDevice-ICD"},
	    {"DeviceUseStatement", "device.type=" SCT "|72506001",
	     "MedicalDevice-ICD"},
	    {"DeviceUseStatement", "device.type=" SCT "|72506002", ""},
	    {"DeviceUseStatement", "device=F1-ACP-MedicalDevice.Product-ICD",
	     "MedicalDevice-ICD"},
	    {"Device", "type:in=" ICD_VS, "MedicalDevice.Product-ICD"},
	    {"Device",
	     "type:in=https://api.iknl.nl/docs/pzp/r4/ValueSet/ACP-"
	     "MedicalDeviceProductType-ICD",
	     "MedicalDevice.Product-ICD"},
	    {"Device", "type:in=" GOAL_VS, ""},
	    {"Device", "type=72506001", "MedicalDevice.Product-ICD"},
	    /* 7 and the IG's custom reason-code */
	    {"Communication",
	     "patient=F1-ACP-Patient-HendrikHartman&reason-code=" SCT
	     "|713603004",
	     "Communication-01-10-2020"},
	    {"CommunicationRequest",
	     "patient=F1-ACP-Patient-HendrikHartman&category=" SCT "|223449006",
	     "InformRelativesRequest-01-10-2020"},
	    /* the form: a versionless canonical matches a versioned one */
	    {"QuestionnaireResponse",
	     "subject=Patient/F1-ACP-Patient-HendrikHartman&questionnaire="
	     "https://fhir.iknl.nl/fhir/Questionnaire/ACP-zib2020",
	     "HendrikHartman-20201001"},
	    {"QuestionnaireResponse",
	     "questionnaire=https://fhir.iknl.nl/fhir/Questionnaire/ACP-"
	     "zib2020|0.1.3-beta3",
	     "HendrikHartman-20201001"},
	    {"QuestionnaireResponse",
	     "questionnaire=https://fhir.iknl.nl/fhir/Questionnaire/ACP-"
	     "zib2020|9",
	     ""},
	    {"QuestionnaireResponse",
	     "questionnaire=https://fhir.iknl.nl/fhir/Questionnaire/ACP", ""},
	    /* the patient by BSN, and resources by their patient's BSN */
	    {"Patient", "identifier=" BSN "|999911120",
	     "Patient-HendrikHartman"},
	    {"Patient", "identifier=" BSN "|999911121", ""},
	    {"Patient", "identifier=999911120", "Patient-HendrikHartman"},
	    {"Goal", "patient.identifier=" BSN "|999911120",
	     "Medical-Policy-Goal"},
	    {"Goal", "subject:Patient.identifier=" BSN "|999911121", ""},
	    /* _lastUpdated: the corpus is at 2024-05-01T10:00:00Z, the
	     * Procedure on 2024-06-01 */
	    {"Procedure", "_lastUpdated=2024-06", "Procedure-01-10-2020"},
	    {"Procedure", "_lastUpdated=2024-05", ""},
	    {"Procedure", "_lastUpdated=gt2024-05-31", "Procedure-01-10-2020"},
	    {"Procedure", "_lastUpdated=gt2024-06-01", ""},
	    {"Procedure", "_lastUpdated=ge2024-06-01T00:00:00Z",
	     "Procedure-01-10-2020"},
	    {"Procedure", "_lastUpdated=gt2024-06-01T00:00:00Z", ""},
	    {"Procedure", "_lastUpdated=lt2024-06-01T00:00:00.001Z",
	     "Procedure-01-10-2020"},
	    {"Procedure", "_lastUpdated=le2024-05-31T23:59:59Z", ""},
	    {"Procedure", "_lastUpdated=ne2024", ""},
	    {"Procedure", "_lastUpdated=eb2025,sa2023", "Procedure-01-10-2020"},
	    /* +02:00 sent without percent-encoding arrives as a space */
	    {"Procedure", "_lastUpdated=ge2024-06-01T02:00:00+02:00",
	     "Procedure-01-10-2020"},
	    {"Procedure", "_lastUpdated=ge2024-05-01&_lastUpdated=lt2024-06-01",
	     ""},
	    {"QuestionnaireResponse", "_lastUpdated=2024-05-01T10:00:00.5Z",
	     "HendrikHartman-20201001"},
	    {"QuestionnaireResponse", "_lastUpdated=2024-05-01T10:00:00Z",
	     "HendrikHartman-20201001"},
	    {"QuestionnaireResponse", "_lastUpdated=2024-05-01T10:00:00.4Z",
	     ""},
	    /* gt/le: past, or not past, the whole second named */
	    {"QuestionnaireResponse", "_lastUpdated=gt2024-05-01T10:00:00Z",
	     ""},
	    {"QuestionnaireResponse", "_lastUpdated=le2024-05-01T10:00:00Z",
	     "HendrikHartman-20201001"},
	    {"QuestionnaireResponse", "_lastUpdated=lt2024-05-01T10:00:00Z",
	     ""},
	    {"QuestionnaireResponse", "_lastUpdated=ne2024-05-01T10:00:00Z",
	     ""},
	    {"QuestionnaireResponse", "_lastUpdated=ne2024-05-01T10:00:01Z",
	     "HendrikHartman-20201001"},
	    /* percent-encoding, '+', empty values */
	    {"Procedure", "code=http%3A%2F%2Fsnomed.info%2Fsct%7C713603004",
	     "Procedure-01-10-2020"},
	    {"Procedure", "code=&patient=&_id=F1-ACP-Procedure-01-10-2020",
	     "Procedure-01-10-2020"},
	    {"Procedure", "&&code=713603004&", "Procedure-01-10-2020"},
	    {"Procedure",
	     "_id=F1-ACP-Procedure-01-10-2020&_format=xml&_pretty="
	     "true&_sort=-_lastUpdated&_count=5",
	     "Procedure-01-10-2020"},
	    {"Encounter", "_id=F1-ACP-Procedure-01-10-2020", ""},
	};
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct search_query *q = NULL;
		json_t *oo = fhir_outcome_new();
		enum gw_err rc =
		    search_parse(cases[i].type, cases[i].query,
				 strlen(cases[i].query), 0, &q, oo);
		char *got, *issues;

		if (rc != GW_OK) {
			issues = fhir_dump(oo);
			fail_msg("%s?%s: got %s (%s), want success",
				 cases[i].type, cases[i].query, gw_strerror(rc),
				 issues);
		}
		got = matches(q, &env);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s?%s: got [%s], want [%s]", cases[i].type,
				 cases[i].query, got, cases[i].want);
		free(got);
		search_free(q);
		json_decref(oo);
	}
}

/* Without resolve, a chain cannot be followed: nothing matches, except
 * patient.identifier on the BSN that the store read was narrowed to. */
static void
test_chain_unresolved(void **state)
{
	static const struct search_env none = {NULL, NULL, NULL};
	struct search_query *q = NULL;
	const char *qs[] = {"patient.identifier=" BSN "|999911120",
			    "device.type=" SCT "|72506001",
			    "patient.identifier=http://x|999911120"};
	const char *want[] = {"Medical-Policy-Goal", "", ""};
	const char *types[] = {"Goal", "DeviceUseStatement", "Goal"};
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(qs); i++) {
		char *got;

		assert_int_equal(
		    search_parse(types[i], qs[i], strlen(qs[i]), 0, &q, NULL),
		    GW_OK);
		got = matches(q, &none);
		if (strcmp(got, want[i]) != 0)
			fail_msg("%s without resolve: got [%s], want [%s]",
				 qs[i], got, want[i]);
		free(got);
		search_free(q);
	}
}

/* Parse failures: status, the issue's severity, code and expression. */
static void
test_errors(void **state)
{
	static const struct {
		const char *type, *query;
		unsigned flags;
		enum gw_err rc;
		const char *severity, *code, *expr; /* first issue, or NULL */
	} cases[] = {
	    {"Procedure", "foo=1", 0, GW_INVALID, "error", "not-supported",
	     "parameter foo"},
	    {"Procedure", "foo=1", SEARCH_LENIENT, GW_OK, "warning",
	     "not-supported", "parameter foo"},
	    {"Procedure", "code:text=acp", 0, GW_INVALID, "error",
	     "not-supported", "parameter code:text"},
	    {"Procedure", "code:not=1", SEARCH_LENIENT, GW_OK, "warning",
	     "not-supported", "parameter code:not"},
	    {"Procedure", "code:in=" ICD_VS, 0, GW_OK, NULL, NULL, NULL},
	    {"Consent", "scope:missing=true", 0, GW_INVALID, "error",
	     "not-supported", "parameter scope:missing"},
	    {"Procedure", "_summary=count", 0, GW_INVALID, "error",
	     "not-supported", "parameter _summary"},
	    {"Procedure", "_revinclude=Encounter:reason-reference", 0,
	     GW_INVALID, "error", "not-supported", "parameter _revinclude"},
	    {"Procedure", "_lastUpdated=2024-13-01", SEARCH_LENIENT, GW_INVALID,
	     "error", "invalid", "parameter _lastUpdated"},
	    {"Procedure", "_lastUpdated=ap2024", 0, GW_INVALID, "error",
	     "not-supported", "parameter _lastUpdated"},
	    {"Procedure", "_lastUpdated=xx2024", 0, GW_INVALID, "error",
	     "invalid", "parameter _lastUpdated"},
	    {"Procedure", "_lastUpdated:missing=true", 0, GW_INVALID, "error",
	     "not-supported", "parameter _lastUpdated:missing"},
	    {"Procedure", "_count=ten", 0, GW_INVALID, "error", "invalid",
	     "parameter _count"},
	    {"Procedure", "_count=-1", 0, GW_INVALID, "error", "invalid",
	     "parameter _count"},
	    {"Procedure", "_count=5&_count=6", 0, GW_INVALID, "error",
	     "invalid", "parameter _count"},
	    {"Procedure", "_count=1000", 0, GW_OK, NULL, NULL, NULL},
	    {"Procedure", "_sort=code", 0, GW_INVALID, "error", "not-supported",
	     "parameter _sort"},
	    {"Procedure", "_include=Consent:actor", 0, GW_INVALID, "error",
	     "invalid", "parameter _include"},
	    {"Procedure", "_include=Procedure:performer", 0, GW_INVALID,
	     "error", "not-supported", "parameter _include"},
	    {"Procedure", "_include=Procedure:encounter:Patient", 0, GW_INVALID,
	     "error", "invalid", "parameter _include"},
	    {"Procedure", "_include:iterate=Procedure:encounter", 0, GW_INVALID,
	     "error", "not-supported", "parameter _include:iterate"},
	    /* the data exchange page's own spelling is not FHIR: say how */
	    {"Procedure", "_include:Procedure:encounter", 0, GW_INVALID,
	     "error", "not-supported",
	     "parameter _include:Procedure:encounter"},
	    {"Procedure", "_include:Procedure:encounter", SEARCH_LENIENT, GW_OK,
	     "warning", "not-supported", NULL},
	    {"Procedure", "_include:Procedure:encounter=x", 0, GW_INVALID,
	     "error", "not-supported", NULL},
	    {"Encounter", "reason-reference.code=" SCT "|713603004", 0,
	     GW_INVALID, "error", "invalid", "parameter reason-reference.code"},
	    {"Encounter", "reason-reference:Patient=x", 0, GW_OK, NULL, NULL,
	     NULL},
	    {"Goal", "patient:Device=x", 0, GW_INVALID, "error", "invalid",
	     "parameter patient:Device"},
	    {"Goal", "patient.name=x", 0, GW_INVALID, "error", "not-supported",
	     "parameter patient.name"},
	    {"Goal", "patient.identifier.system=x", 0, GW_INVALID, "error",
	     "not-supported", NULL},
	    {"Goal", "patient=a/b/c", 0, GW_INVALID, "error", "invalid",
	     "parameter patient"},
	    {"Goal", "patient=Patient/", 0, GW_INVALID, "error", "invalid",
	     "parameter patient"},
	    {"Goal", "patient=x,,y", 0, GW_INVALID, "error", "invalid",
	     "parameter patient"},
	    {"Goal", "category=|", 0, GW_INVALID, "error", "invalid",
	     "parameter category"},
	    {"Goal", "category=%zz", 0, GW_INVALID, "error", "invalid", NULL},
	    {"Goal", "category=a%00b", 0, GW_INVALID, "error", "invalid", NULL},
	    {"Goal", "category=a%2", 0, GW_INVALID, "error", "invalid", NULL},
	    {"Goal", "=x", 0, GW_INVALID, "error", "invalid", NULL},
	    {"Goal", "_since=2024", 0, GW_INVALID, "error", "not-supported",
	     "parameter _since"},
	    {"Goal", "_since=2024&_count=3", SEARCH_HISTORY, GW_OK, NULL, NULL,
	     NULL},
	    {"Goal", "category=x", SEARCH_HISTORY, GW_INVALID, "error",
	     "not-supported", "parameter category"},
	    {NULL, "_since=2024-05-01T10:00:00Z&_count=10", 0, GW_OK, NULL,
	     NULL, NULL},
	    {NULL, "_since=gt2024", 0, GW_INVALID, "error", "invalid",
	     "parameter _since"},
	    {NULL, "_id=x", 0, GW_INVALID, "error", "not-supported",
	     "parameter _id"},
	    {NULL, "_include=Procedure:encounter", 0, GW_INVALID, "error",
	     "not-supported", "parameter _include"},
	    /* read-only and unknown types */
	    {"RelatedPerson", "", 0, GW_NOTFOUND, "error", "not-supported",
	     NULL},
	    {"Banana", "", 0, GW_NOTFOUND, "error", "not-supported", NULL},
	    /* a name that is no UTF-8 still makes a readable issue */
	    {"Goal", "%ff%fe=1", 0, GW_INVALID, "error", "not-supported",
	     "parameter ??"},
	};
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct search_query *q = NULL;
		json_t *oo = fhir_outcome_new(), *issue;
		enum gw_err rc = search_parse(cases[i].type, cases[i].query,
					      strlen(cases[i].query),
					      cases[i].flags, &q, oo);
		char *dump = fhir_dump(oo);

		if (rc != cases[i].rc)
			fail_msg("%s?%s: got %s, want %s (%s)", cases[i].type,
				 cases[i].query, gw_strerror(rc),
				 gw_strerror(cases[i].rc), dump);
		if ((rc == GW_OK) != (q != NULL))
			fail_msg("%s?%s: query %p with %s", cases[i].type,
				 cases[i].query, (void *)q, gw_strerror(rc));
		issue = json_array_get(json_object_get(oo, "issue"), 0);
		if (cases[i].severity == NULL && issue != NULL)
			fail_msg("%s?%s: got issues %s, want none",
				 cases[i].type, cases[i].query, dump);
		if (cases[i].severity != NULL) {
			const char *sev = json_string_value(
			    json_object_get(issue, "severity"));
			const char *code =
			    json_string_value(json_object_get(issue, "code"));
			const char *expr = json_string_value(json_array_get(
			    json_object_get(issue, "expression"), 0));

			if (sev == NULL || strcmp(sev, cases[i].severity) ||
			    strcmp(code, cases[i].code) ||
			    (cases[i].expr != NULL &&
			     (expr == NULL || strcmp(expr, cases[i].expr))))
				fail_msg("%s?%s: got %s, want %s %s %s",
					 cases[i].type, cases[i].query, dump,
					 cases[i].severity, cases[i].code,
					 cases[i].expr ? cases[i].expr : "");
		}
		free(dump);
		search_free(q);
		json_decref(oo);
	}
}

/* Lenient: what is ignored does not narrow the match. */
static void
test_lenient_ignores(void **state)
{
	struct search_query *q = NULL;
	const char *qs = "code:not=713603004&foo=bar&_elements=id";
	char *got;

	assert_int_equal(
	    search_parse("Procedure", qs, strlen(qs), SEARCH_LENIENT, &q, NULL),
	    GW_OK);
	got = matches(q, &env);
	assert_string_equal(got, "Procedure-01-10-2020");
	free(got);
	search_free(q);
}

static void
test_limits(void **state)
{
	struct search_query *q = NULL;
	struct buf b;
	json_t *oo = fhir_outcome_new();
	size_t i;

	/* longer than the form limit */
	buf_init(&b, 1 << 20);
	buf_adds(&b, "code=");
	for (i = 0; i < 9000; i++)
		buf_addc(&b, 'a');
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo),
			 GW_INVALID);
	assert_null(q);
	buf_cleanup(&b);
	/* a value longer than 2048 bytes */
	buf_init(&b, 1 << 20);
	buf_adds(&b, "code=");
	for (i = 0; i < 2100; i++)
		buf_addc(&b, 'a');
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo),
			 GW_INVALID);
	buf_cleanup(&b);
	/* 65 parameters */
	buf_init(&b, 1 << 20);
	for (i = 0; i < 65; i++)
		buf_printf(&b, "%scategory=c%zu", i ? "&" : "", i);
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo),
			 GW_INVALID);
	buf_cleanup(&b);
	/* 63 parameters and _count fill a link; 64 would not fit */
	buf_init(&b, 1 << 20);
	for (i = 0; i < 63; i++)
		buf_printf(&b, "%scategory=c%zu", i ? "&" : "", i);
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo), GW_OK);
	search_free(q);
	buf_adds(&b, "&_count=5");
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo), GW_OK);
	search_free(q);
	buf_adds(&b, "&category=x");
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo),
			 GW_INVALID);
	buf_cleanup(&b);
	/* 129 pairs, even empty ones */
	buf_init(&b, 1 << 20);
	for (i = 0; i < 128; i++)
		buf_addc(&b, '&');
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo),
			 GW_INVALID);
	buf_cleanup(&b);
	/* short enough as sent, too long once re-encoded for a link */
	buf_init(&b, 1 << 20);
	buf_adds(&b, "category=");
	for (i = 0; i < 1500; i++)
		buf_addc(&b, '|');
	buf_adds(&b, "&category=");
	for (i = 0; i < 1500; i++)
		buf_addc(&b, '|');
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo),
			 GW_INVALID);
	buf_cleanup(&b);
	/* 33 alternatives */
	buf_init(&b, 1 << 20);
	buf_adds(&b, "category=");
	for (i = 0; i < 33; i++)
		buf_printf(&b, "%sc%zu", i ? "," : "", i);
	assert_int_equal(search_parse("Goal", b.data, b.len, 0, &q, oo),
			 GW_INVALID);
	buf_cleanup(&b);
	/* 32 alternatives are fine, and the last one counts */
	buf_init(&b, 1 << 20);
	buf_adds(&b, "category=");
	for (i = 0; i < 31; i++)
		buf_printf(&b, "c%zu,", i);
	buf_adds(&b, "129125009");
	assert_int_equal(search_parse("Consent", b.data, b.len, 0, &q, oo),
			 GW_OK);
	{
		char *got = matches(q, &env);

		assert_non_null(strstr(got, "F2-ACP-TreatmentDirective"));
		free(got);
	}
	search_free(q);
	buf_cleanup(&b);
	/* a form that is not NUL-terminated where len ends */
	assert_int_equal(
	    search_parse("Goal", "category=xyz&foo=1", 12, 0, &q, NULL), GW_OK);
	search_free(q);
	json_decref(oo);
}

/* Escapes: \, keeps a comma inside a value, \| a bar. */
static void
test_escapes(void **state)
{
	struct search_query *q = NULL;
	struct fj_doc *doc = NULL;
	const char *res =
	    "{\"resourceType\":\"Goal\",\"id\":\"g\",\"category\":[{"
	    "\"coding\":[{\"system\":\"urn:a|b\",\"code\":\"x,y\"}]}]}";
	static const struct {
		const char *q;
		bool want;
	} cases[] = {
	    {"category=x\\,y", true},
	    {"category=x,y", false},
	    {"category=urn:a\\|b|x\\,y", true},
	    {"category=urn:a|x\\,y", false},
	    {"category=urn%3Aa%5C%7Cb%7Cx%5C%2Cy", true},
	};
	size_t i;

	assert_int_equal(fj_parse(res, strlen(res), 0, &doc, NULL), GW_OK);
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		bool got;

		assert_int_equal(search_parse("Goal", cases[i].q,
					      strlen(cases[i].q), 0, &q, NULL),
				 GW_OK);
		got = search_match(q, doc->root, T0, &env);
		if (got != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].q, got,
				 cases[i].want);
		search_free(q);
	}
	fj_doc_free(doc);
}

static void
test_scope(void **state)
{
	static const struct {
		const char *type, *query;
		unsigned flags;
		const char *patient_id, *bsn, *id;
		int64_t since;
		size_t count;
		bool desc;
	} cases[] = {
	    {"Consent", "patient=p1&scope=adr", 0, "p1", NULL, NULL, 0, 50,
	     false},
	    {"Consent", "patient=Patient/p1", 0, "p1", NULL, NULL, 0, 50,
	     false},
	    {"Goal", "subject=Patient/p1&_count=7&_sort=-_lastUpdated", 0, "p1",
	     NULL, NULL, 0, 7, true},
	    /* subject=p1 may be a Group: no patient scope */
	    {"Goal", "subject=p1", 0, NULL, NULL, NULL, 0, 50, false},
	    {"Goal", "patient=p1,p2", 0, NULL, NULL, NULL, 0, 50, false},
	    {"Goal", "patient.identifier=" BSN "|123456782", 0, NULL,
	     "123456782", NULL, 0, 50, false},
	    {"Goal", "patient.identifier=urn:x|123456782", 0, NULL, NULL, NULL,
	     0, 50, false},
	    {"Goal", "patient.identifier=" BSN "|1,2", 0, NULL, NULL, NULL, 0,
	     50, false},
	    {"Patient", "identifier=" BSN "|123456782", 0, NULL, "123456782",
	     NULL, 0, 50, false},
	    {"Patient", "_id=abc", 0, NULL, NULL, "abc", 0, 50, false},
	    {"Patient", "_id=abc,def", 0, NULL, NULL, NULL, 0, 50, false},
	    {"Goal", "_lastUpdated=ge2024-06-01", 0, NULL, NULL, NULL, T_PROC,
	     50, false},
	    {"Goal", "_lastUpdated=gt2024-05-31", 0, NULL, NULL, NULL, T_PROC,
	     50, false},
	    {"Goal", "_lastUpdated=sa2024-05-31", 0, NULL, NULL, NULL, T_PROC,
	     50, false},
	    {"Goal", "_lastUpdated=ge2024-05-31,ge2024-06-01", 0, NULL, NULL,
	     NULL, 0, 50, false},
	    {"Goal", "_lastUpdated=2024-06-01T00:00:00Z", 0, NULL, NULL, NULL,
	     T_PROC, 50, false},
	    {"Goal", "_lastUpdated=lt2024-06-01", 0, NULL, NULL, NULL, 0, 50,
	     false},
	    {"Goal", "_lastUpdated=ge2024-05&_lastUpdated=ge2024-06", 0, NULL,
	     NULL, NULL, T_PROC, 50, false},
	    {"Goal", "_count=0", 0, NULL, NULL, NULL, 0, 0, false},
	    {"Goal", "_count=9999", 0, NULL, NULL, NULL, 0, 250, false},
	    {NULL, "_since=2024-06-01T00:00:00Z&_count=3", 0, NULL, NULL, NULL,
	     T_PROC, 3, false},
	    {"Goal", "_since=2024-06-01T00:00:00Z", SEARCH_HISTORY, NULL, NULL,
	     NULL, T_PROC, 50, false},
	};
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct search_query *q = NULL;
		struct search_scope sc;

		if (search_parse(cases[i].type, cases[i].query,
				 strlen(cases[i].query), cases[i].flags, &q,
				 NULL) != GW_OK)
			fail_msg("%s: does not parse", cases[i].query);
		search_scope_of(q, &sc);
#define SAME(a, b) ((a) == NULL ? (b) == NULL : (b) != NULL && !strcmp(a, b))
		if (!SAME(cases[i].type, sc.type) ||
		    !SAME(cases[i].patient_id, sc.patient_id) ||
		    !SAME(cases[i].bsn, sc.patient_bsn) ||
		    !SAME(cases[i].id, sc.id) || sc.since != cases[i].since ||
		    sc.count != cases[i].count || sc.sort_desc != cases[i].desc)
			fail_msg("%s: got patient %s bsn %s id %s since %lld "
				 "count %zu desc %d",
				 cases[i].query,
				 sc.patient_id ? sc.patient_id : "-",
				 sc.patient_bsn ? sc.patient_bsn : "-",
				 sc.id ? sc.id : "-", (long long)sc.since,
				 sc.count, sc.sort_desc);
#undef SAME
		search_free(q);
	}
}

struct emitted {
	char s[1024];
};

static void
emit(void *arg, const char *type, const char *id)
{
	struct emitted *e = arg;
	size_t n = strlen(e->s);

	snprintf(e->s + n, sizeof(e->s) - n, "%s%s/%s", n ? " " : "", type, id);
}

static void
test_includes(void **state)
{
	static const struct {
		const char *type, *query, *id, *want;
	} cases[] = {
	    {"Procedure", "_include=Procedure:encounter",
	     "F1-ACP-Procedure-01-10-2020",
	     "Encounter/F1-ACP-Encounter-01-10-2020"},
	    {"Procedure", "_include=Procedure:encounter:Encounter",
	     "F1-ACP-Procedure-01-10-2020",
	     "Encounter/F1-ACP-Encounter-01-10-2020"},
	    {"Procedure", "code=1", "F1-ACP-Procedure-01-10-2020", ""},
	    {"Encounter", "_include=Encounter:reason-reference",
	     "F1-ACP-Encounter-01-10-2020",
	     "Procedure/F1-ACP-Procedure-01-10-2020"},
	    {"Encounter", "_include=Encounter:reason-reference:Observation",
	     "F1-ACP-Encounter-01-10-2020", ""},
	    {"Consent", "_include=Consent:actor",
	     "F1-ACP-TreatmentDirective-116762002",
	     "Patient/F1-ACP-Patient-HendrikHartman "
	     "PractitionerRole/F1-ACP-HealthProfessional-PractitionerRole-"
	     "DrVanHuissen"},
	    {"Consent", "_include=Consent:actor:Patient",
	     "F1-ACP-TreatmentDirective-116762002",
	     "Patient/F1-ACP-Patient-HendrikHartman"},
	    {"Consent", "_include=Consent:actor", "P1-ACP-AdvanceDirective-DNR",
	     "RelatedPerson/P1-ACP-ContactPerson-MichielHartman"},
	    {"DeviceUseStatement",
	     "_include=DeviceUseStatement:device&_include=DeviceUseStatement:"
	     "device",
	     "F1-ACP-MedicalDevice-ICD",
	     "Device/F1-ACP-MedicalDevice.Product-ICD"},
	    /* a resource of another type gives nothing */
	    {"Procedure", "_include=Procedure:encounter",
	     "F1-ACP-Encounter-01-10-2020", ""},
	};
	/* only Type/id references name a stored resource: not an absolute
	 * URL (another server's), a version, or a contained one */
	const char *other =
	    "{\"resourceType\":\"Procedure\",\"encounter\":{\"reference\":"
	    "\"http://other.example/fhir/Encounter/e1\"}}";
	const char *versioned =
	    "{\"resourceType\":\"Procedure\",\"encounter\":{\"reference\":"
	    "\"Encounter/e1/_history/2\"}}";
	const char *contained =
	    "{\"resourceType\":\"Procedure\",\"encounter\":{\"reference\":"
	    "\"#e1\"}}";
	const char *docs[] = {other, versioned, contained};
	size_t i, k;

	for (i = 0; i < UTIL_ARRAY_LEN(docs); i++) {
		struct search_query *q = NULL;
		struct fj_doc *doc = NULL;
		struct emitted e;
		const char *qs = "_include=Procedure:encounter";

		memset(&e, 0, sizeof(e));
		assert_int_equal(
		    fj_parse(docs[i], strlen(docs[i]), 0, &doc, NULL), GW_OK);
		assert_int_equal(
		    search_parse("Procedure", qs, strlen(qs), 0, &q, NULL),
		    GW_OK);
		search_includes(q, doc->root, emit, &e);
		if (e.s[0] != '\0')
			fail_msg("%s: got [%s], want nothing", docs[i], e.s);
		search_free(q);
		fj_doc_free(doc);
	}
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct search_query *q = NULL;
		struct emitted e;

		memset(&e, 0, sizeof(e));
		assert_int_equal(search_parse(cases[i].type, cases[i].query,
					      strlen(cases[i].query), 0, &q,
					      NULL),
				 GW_OK);
		for (k = 0; k < C.n; k++)
			if (strcmp(C.id[k], cases[i].id) == 0)
				break;
		assert_true(k < C.n);
		search_includes(q, C.doc[k]->root, emit, &e);
		if (strcmp(e.s, cases[i].want) != 0)
			fail_msg("%s?%s on %s: got [%s], want [%s]",
				 cases[i].type, cases[i].query, cases[i].id,
				 e.s, cases[i].want);
		search_free(q);
	}
}

/* The canonical form: sorted, re-encoded, _count in; parsing it again
 * gives itself. */
static void
test_canonical(void **state)
{
	static const struct {
		const char *type, *query, *want;
	} cases[] = {
	    {"Procedure",
	     "patient=p1&code=http://snomed.info/sct|713603004&_include="
	     "Procedure:encounter",
	     "_count=50&_include=Procedure:encounter&code=http://snomed.info/"
	     "sct%7C713603004&patient=p1"},
	    {"Goal", "description:in=a+b&_count=3&category=z&category=a",
	     "_count=3&category=a&category=z&description:in=a%20b"},
	    {"Goal",
	     "_lastUpdated=ge2024-06-01T02:00:00%2B02:00&_sort=-_lastUpdated&_"
	     "format=xml",
	     "_count=50&_format=xml&_lastUpdated=ge2024-06-01T02:00:00%2B02:00&"
	     "_sort=-_lastUpdated"},
	    /* what lenient parsing ignored is not in the links */
	    {"Goal", "foo=1&category=a%26b%3Dc",
	     "_count=50&category=a%26b%3Dc"},
	    {"Goal", "code=", "_count=50"},
	    {NULL, "_since=2024-06-01T00:00:00Z",
	     "_count=50&_since=2024-06-01T00:00:00Z"},
	};
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct search_query *q = NULL, *q2 = NULL;
		struct buf a, b;

		buf_init(&a, 1 << 16);
		buf_init(&b, 1 << 16);
		assert_int_equal(search_parse(cases[i].type, cases[i].query,
					      strlen(cases[i].query),
					      SEARCH_LENIENT, &q, NULL),
				 GW_OK);
		assert_int_equal(search_canonical(q, &a), GW_OK);
		if (strcmp(a.data, cases[i].want) != 0)
			fail_msg("%s: got %s, want %s", cases[i].query, a.data,
				 cases[i].want);
		assert_int_equal(
		    search_parse(cases[i].type, a.data, a.len, 0, &q2, NULL),
		    GW_OK);
		assert_int_equal(search_canonical(q2, &b), GW_OK);
		assert_string_equal(a.data, b.data);
		/* too small a buffer: an error, and the buffer as it was */
		buf_cleanup(&b);
		buf_init(&b, 8);
		buf_adds(&b, "x");
		assert_int_equal(search_canonical(q, &b), GW_TOOBIG);
		assert_string_equal(b.data, "x");
		search_free(q);
		search_free(q2);
		buf_cleanup(&a);
		buf_cleanup(&b);
	}
}

static json_t *
find_type(json_t *arr, const char *type)
{
	size_t i;
	json_t *r;

	json_array_foreach(arr, i, r)
	{
		if (strcmp(json_string_value(json_object_get(r, "type")),
			   type) == 0)
			return r;
	}
	return NULL;
}

/* The capability names exactly what search_parse takes: every search
 * parameter listed parses, and the IG's SHALL parameters are there. */
static void
test_capability(void **state)
{
	static const char *const shall[] = {
	    "Encounter patient",
	    "Encounter reason-reference",
	    "Procedure patient",
	    "Procedure code",
	    "Consent patient",
	    "Consent scope",
	    "Consent category",
	    "Goal patient",
	    "Goal category",
	    "Observation patient",
	    "Observation code",
	    "DeviceUseStatement patient",
	    "DeviceUseStatement device",
	    "Device type",
	    "CommunicationRequest patient",
	    "CommunicationRequest category",
	    "QuestionnaireResponse patient",
	    "QuestionnaireResponse questionnaire",
	    "Patient identifier",
	};
	json_t *cap = search_capability(), *r, *p, *inc;
	size_t i, j, k;

	assert_non_null(cap);
	json_array_foreach(cap, i, r)
	{
		const char *type =
		    json_string_value(json_object_get(r, "type"));
		bool search = false;

		json_array_foreach(json_object_get(r, "interaction"), j, p)
		{
			if (strcmp(
				json_string_value(json_object_get(p, "code")),
				"search-type") == 0)
				search = true;
		}
		json_array_foreach(json_object_get(r, "searchParam"), j, p)
		{
			const char *name =
			    json_string_value(json_object_get(p, "name"));
			char q[128];
			struct search_query *sq = NULL;

			assert_non_null(json_object_get(p, "definition"));
			assert_non_null(json_object_get(p, "type"));
			snprintf(q, sizeof(q), "%s=%s", name,
				 strcmp(name, "_lastUpdated") == 0 ? "2024"
								   : "x");
			if (search_parse(type, q, strlen(q), 0, &sq, NULL) !=
			    GW_OK)
				fail_msg("%s?%s listed but refused", type, q);
			search_free(sq);
		}
		json_array_foreach(json_object_get(r, "searchInclude"), j, inc)
		{
			char q[128];
			struct search_query *sq = NULL;

			snprintf(q, sizeof(q), "_include=%s",
				 json_string_value(inc));
			if (search_parse(type, q, strlen(q), 0, &sq, NULL) !=
			    GW_OK)
				fail_msg("%s?%s listed but refused", type, q);
			search_free(sq);
		}
		if (!search &&
		    search_parse(type, "", 0, 0, &(struct search_query *){NULL},
				 NULL) != GW_NOTFOUND)
			fail_msg("%s: searchable but not listed so", type);
	}
	for (k = 0; k < UTIL_ARRAY_LEN(shall); k++) {
		char type[64];
		const char *name = strchr(shall[k], ' ') + 1;
		bool found = false;

		snprintf(type, sizeof(type), "%.*s", (int)(name - 1 - shall[k]),
			 shall[k]);
		r = find_type(cap, type);
		assert_non_null(r);
		json_array_foreach(json_object_get(r, "searchParam"), j, p)
		{
			if (strcmp(
				json_string_value(json_object_get(p, "name")),
				name) == 0)
				found = true;
		}
		if (!found)
			fail_msg("%s: missing", shall[k]);
	}
	assert_non_null(find_type(cap, "RelatedPerson"));
	assert_null(
	    json_object_get(find_type(cap, "RelatedPerson"), "searchParam"));
	json_decref(cap);
}

/* A CapabilityStatement around search_capability() is valid R4. */
static void
test_capability_valid(void **state)
{
	json_t *cs = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:[s, s], s:{s:s}, s:[{s:s, s:o}]}",
	    "resourceType", "CapabilityStatement", "status", "active", "date",
	    "2026-12-05", "kind", "instance", "fhirVersion", "4.0.1", "format",
	    "json", "xml", "implementation", "description", "pzpgw", "rest",
	    "mode", "server", "resource", search_capability());
	json_t *oo = fhir_outcome_new();
	struct fj_doc *doc = fj_doc_new();
	struct fj_node *root;
	struct validate_ctx *ctx = NULL;
	char *dump;

	assert_non_null(cs);
	assert_non_null(doc);
	root = fj_from_jansson(doc, cs);
	assert_non_null(root);
	assert_int_equal(validate_ctx_new(R4, &ctx), GW_OK);
	assert_int_equal(validate_document(ctx, root, NULL, oo), GW_OK);
	if (fhir_outcome_errors(oo) != 0) {
		dump = fhir_dump(oo);
		fail_msg("the capability is not valid R4: %s", dump);
	}
	validate_ctx_free(ctx);
	fj_doc_free(doc);
	json_decref(oo);
	json_decref(cs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_chain_unresolved),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_lenient_ignores),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_scope),
	    cmocka_unit_test(test_includes),
	    cmocka_unit_test(test_canonical),
	    cmocka_unit_test(test_capability),
	    cmocka_unit_test(test_capability_valid),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
