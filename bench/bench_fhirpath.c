/*
 * FHIRPath evaluation speed: the PZP invariant ACP-Patient-1 evaluated as
 * a boolean on a small Patient, as the validator evaluates invariants.
 * Prints the mean time of one evaluation (was test_speed of test_fhirpath).
 * usage: bench_fhirpath [EVALUATIONS]   (default 20000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fhirpath.h"
#include "fjson.h"

static const char patient_json[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"meta\":{\"profile\":[\"http://x/p\"]},"
    "\"text\":{\"status\":\"generated\",\"div\":\"<div "
    "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">x</div>\"},"
    "\"extension\":[{\"url\":\"http://e/a\",\"valueString\":\"A\"},"
    "{\"url\":\"http://e/b\",\"valueCodeableConcept\":{\"coding\":["
    "{\"system\":\"http://snomed.info/sct\",\"code\":\"123\"}]}}],"
    "\"identifier\":[{\"system\":\"http://fhir.nl/fhir/NamingSystem/bsn\","
    "\"value\":\"999911120\"}],"
    "\"active\":true,"
    "\"name\":[{\"use\":\"official\",\"family\":\"Jansen\","
    "\"given\":[\"Jan\",\"Piet\"],\"_given\":[null,{\"extension\":[{"
    "\"url\":\"http://hl7.org/fhir/StructureDefinition/"
    "iso21090-EN-qualifier\",\"valueCode\":\"CL\"}]}]},"
    "{\"use\":\"usual\",\"given\":[\"J\"]}],"
    "\"birthDate\":\"1950-03-04\",\"_birthDate\":{\"id\":\"bd\","
    "\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
    "patient-birthTime\",\"valueDateTime\":\"1950-03-04T10:00:00+01:00\"}]},"
    "\"_gender\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/"
    "StructureDefinition/data-absent-reason\",\"valueCode\":\"unknown\"}]},"
    "\"multipleBirthInteger\":2,"
    "\"contact\":[{\"relationship\":[{\"coding\":[{\"code\":\"24\"}]}],"
    "\"name\":{\"text\":\"Els\"}}],"
    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o1\","
    "\"name\":\"Huisarts\"}],"
    "\"managingOrganization\":{\"reference\":\"#o1\"}}";

#define PZP_PAT1                                                               \
	"extension.where(url='https://api.iknl.nl/docs/pzp/r4/"                \
	"StructureDefinition/ext-LegallyCapable-MedicalTreatmentDecisions')."  \
	"extension.where(url='legallyCapable').value = false implies "         \
	"(contact.where(relationship.coding.code = '24').exists() or "         \
	"contact.extension.where(url='http://hl7.org/fhir/"                    \
	"StructureDefinition/patient-relatedPerson').exists())"

static void
must(enum gw_err e, const char *what)
{
	if (e != GW_OK) {
		fprintf(stderr, "bench_fhirpath: %s: %s\n", what,
			gw_strerror(e));
		exit(2);
	}
}

int
main(int argc, char **argv)
{
	struct fj_doc *doc = NULL;
	struct fhirpath *fp = NULL;
	struct fhirpath_env env;
	enum fhirpath_bool b;
	struct timespec t0, t1;
	long i, n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	double us;

	if (n <= 0 || n > 100000000) {
		fprintf(stderr, "usage: bench_fhirpath [EVALUATIONS]\n");
		return 2;
	}
	must(fj_parse(patient_json, strlen(patient_json), 0, &doc, NULL),
	     "parse");
	memset(&env, 0, sizeof(env));
	env.resource = doc->root;
	must(fhirpath_compile(PZP_PAT1, &fp, NULL, 0), "compile");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		must(fhirpath_eval_bool(fp, doc->root, NULL, &env, &b),
		     "evaluate");
		if (b != FHIRPATH_TRUE) {
			fprintf(stderr, "bench_fhirpath: wrong result\n");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
	      (double)(t1.tv_nsec - t0.tv_nsec)) /
	     1e3 / (double)n;
	printf("fhirpath: ACP-Patient-1 on a Patient: %.2f us per "
	       "evaluation\n",
	       us);
	fhirpath_free(fp);
	fj_doc_free(doc);
	return 0;
}
