/*
 * libFuzzer harness for search_parse: the first byte picks the searched
 * type and the flags, the rest is the form. Whatever parses must give a
 * canonical form that parses again, strictly, to itself; the query is
 * then matched and its includes taken over a few fixed resources.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "search.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {NULL,
				    "Patient",
				    "Encounter",
				    "Procedure",
				    "Consent",
				    "Goal",
				    "Observation",
				    "DeviceUseStatement",
				    "Device",
				    "CommunicationRequest",
				    "Communication",
				    "QuestionnaireResponse",
				    "RelatedPerson",
				    "Banana"};
#define NTYPES (sizeof(types) / sizeof(types[0]))

static const char *const texts[] = {
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"identifier\":[{"
    "\"system\":\"http://fhir.nl/fhir/NamingSystem/bsn\",\"value\":"
    "\"999911120\"}]}",
    "{\"resourceType\":\"Procedure\",\"id\":\"pr1\",\"code\":{\"coding\":[{"
    "\"system\":\"http://snomed.info/sct\",\"code\":\"713603004\"}]},"
    "\"subject\":{\"reference\":\"Patient/p1\"},\"encounter\":{"
    "\"reference\":\"Encounter/e1\"}}",
    "{\"resourceType\":\"Encounter\",\"id\":\"e1\",\"subject\":{"
    "\"reference\":\"Patient/p1\"},\"reasonReference\":[{\"reference\":"
    "\"Procedure/pr1\"},{\"reference\":\"http://x/fhir/Condition/c/"
    "_history/2\"},{\"display\":\"d\"}]}",
    "{\"resourceType\":\"Consent\",\"id\":\"c1\",\"scope\":{\"coding\":[{"
    "\"system\":\"http://terminology.hl7.org/CodeSystem/consentscope\","
    "\"code\":\"treatment\"}]},\"category\":[{\"coding\":[{\"code\":"
    "\"129125009\"}]},{\"text\":\"t\"}],\"patient\":{\"reference\":"
    "\"Patient/p1\"},\"provision\":{\"actor\":[{\"reference\":{"
    "\"reference\":\"RelatedPerson/r1\"}},{\"reference\":{\"reference\":"
    "\"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0\",\"type\":"
    "\"Patient\"}}]}}",
    "{\"resourceType\":\"DeviceUseStatement\",\"id\":\"d1\",\"subject\":{"
    "\"reference\":\"Patient/p1\"},\"device\":{\"reference\":"
    "\"Device/dv1\"}}",
    "{\"resourceType\":\"Device\",\"id\":\"dv1\",\"type\":{\"coding\":[{"
    "\"system\":\"http://snomed.info/sct\",\"code\":\"72506001\"}]}}",
    "{\"resourceType\":\"QuestionnaireResponse\",\"id\":\"q1\","
    "\"questionnaire\":\"https://fhir.iknl.nl/fhir/Questionnaire/"
    "ACP-zib2020|1\",\"subject\":{\"reference\":\"Patient/p1\"}}",
};
#define NTEXTS (sizeof(texts) / sizeof(texts[0]))

static struct fj_doc *docs[NTEXTS];

static const struct fj_node *
resolve(void *arg, const char *type, const char *id)
{
	size_t i;

	(void)arg;
	for (i = 0; i < NTEXTS; i++)
		if (fj_str_eq(fj_get(docs[i]->root, "resourceType"), type) &&
		    fj_str_eq(fj_get(docs[i]->root, "id"), id))
			return docs[i]->root;
	return NULL;
}

static enum gw_err
in_valueset(void *arg, const char *url, const char *system, const char *code,
	    bool *in)
{
	(void)arg;
	(void)system;
	if (strcmp(url, "vs") != 0)
		return GW_NOTFOUND;
	*in = strcmp(code, "72506001") == 0;
	return GW_OK;
}

static void
emit(void *arg, const char *type, const char *id)
{
	size_t *n = arg;

	if (type[0] == '\0' || id[0] == '\0')
		abort();
	(*n)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct search_env env = {resolve, in_valueset, NULL};
	struct search_query *q = NULL, *q2 = NULL;
	struct search_scope sc;
	const char *type;
	unsigned flags;
	json_t *oo;
	struct buf a, b;
	size_t i, n = 0;

	if (docs[0] == NULL)
		for (i = 0; i < NTEXTS; i++)
			if (fj_parse(texts[i], strlen(texts[i]), 0, &docs[i],
				     NULL) != GW_OK)
				abort();
	if (size == 0)
		return 0;
	type = types[data[0] % NTYPES];
	flags = (data[0] / NTYPES) & 3u;
	oo = fhir_outcome_new();
	if (search_parse(type, (const char *)data + 1, size - 1, flags, &q,
			 oo) != GW_OK) {
		if (q != NULL || fhir_outcome_errors(oo) == 0)
			abort();
		json_decref(oo);
		return 0;
	}
	json_decref(oo);
	search_scope_of(q, &sc);
	if (sc.count > SEARCH_COUNT_MAX)
		abort();
	buf_init(&a, 1u << 20);
	buf_init(&b, 1u << 20);
	if (search_canonical(q, &a) != GW_OK ||
	    search_parse(type, a.data, a.len, flags & ~SEARCH_LENIENT, &q2,
			 NULL) != GW_OK ||
	    search_canonical(q2, &b) != GW_OK || a.len != b.len ||
	    memcmp(a.data, b.data, a.len) != 0)
		abort();
	for (i = 0; i < NTEXTS; i++) {
		/* the canonical query means the same */
		if (search_match(q, docs[i]->root, 1717200000000LL, &env) !=
		    search_match(q2, docs[i]->root, 1717200000000LL, &env))
			abort();
		search_includes(q, docs[i]->root, emit, &n);
	}
	search_free(q);
	search_free(q2);
	buf_cleanup(&a);
	buf_cleanup(&b);
	return 0;
}
