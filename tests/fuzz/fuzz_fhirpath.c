/* libFuzzer harness for the FHIRPath compiler and evaluator: any input is
 * compiled as an expression and, when it compiles, evaluated over a fixed
 * Patient with every environment variable and callback set. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char resource[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"meta\":{\"profile\":"
    "[\"http://x/p\"]},\"text\":{\"status\":\"generated\",\"div\":\"<div>"
    "x</div>\"},\"extension\":[{\"url\":\"http://e/a\",\"valueString\":"
    "\"A\"},{\"url\":\"http://e/b\",\"valueCodeableConcept\":{\"coding\":"
    "[{\"system\":\"http://snomed.info/sct\",\"code\":\"123\"}]}}],"
    "\"active\":true,\"name\":[{\"family\":\"Jansen\",\"given\":[\"Jan\","
    "\"Piet\"],\"_given\":[null,{\"extension\":[{\"url\":\"q\","
    "\"valueCode\":\"CL\"}]}]}],\"birthDate\":\"1950-03-04\","
    "\"_gender\":{\"id\":\"g\"},\"multipleBirthInteger\":2,"
    "\"deceasedDateTime\":\"2024-01-01T10:00:00+01:00\","
    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o1\"}],"
    "\"managingOrganization\":{\"reference\":\"#o1\"},"
    "\"photo\":[{\"size\":12.50}]}";

static struct fj_doc *doc;

static const char *
type_of(void *arg, const struct fj_node *parent, const char *ptype,
	const char *member)
{
	(void)arg;
	(void)parent;
	if (ptype && strcmp(ptype, "Patient") == 0 &&
	    strcmp(member, "name") == 0)
		return "HumanName";
	if (strcmp(member, "birthDate") == 0)
		return "date";
	return NULL;
}

static enum gw_err
resolve(void *arg, const char *ref, const struct fj_node **out,
	const char **out_type)
{
	(void)arg;
	(void)out_type;
	*out = strcmp(ref, "#o1") == 0 ? doc->root : NULL;
	return GW_OK;
}

static enum gw_err
member_of(void *arg, const struct fj_node *node, const char *type,
	  const char *vs, bool *out)
{
	(void)arg;
	(void)node;
	(void)type;
	*out = strlen(vs) % 2 == 0;
	return strlen(vs) % 3 == 0 ? GW_INVALID : GW_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fhirpath *fp = NULL;
	struct fhirpath_result *r = NULL;
	struct fhirpath_env env;
	enum fhirpath_bool b;
	char *expr, err[128];
	struct buf out;

	if (!doc &&
	    fj_parse(resource, strlen(resource), 0, &doc, NULL) != GW_OK)
		abort();
	if (size > 4096)
		return 0;
	expr = malloc(size + 1);
	if (!expr)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	if (fhirpath_compile(expr, &fp, err, sizeof(err)) == GW_OK) {
		memset(&env, 0, sizeof(env));
		env.resource = doc->root;
		env.type_of = type_of;
		env.resolve = resolve;
		env.member_of = member_of;
		env.now = 1700000000;
		env.errbuf = err;
		env.errlen = sizeof(err);
		(void)fhirpath_eval_bool(fp, doc->root, NULL, &env, &b);
		if (fhirpath_eval(fp, fj_get(doc->root, "name"), "HumanName",
				  &env, &r) == GW_OK) {
			buf_init(&out, 1 << 20);
			(void)fhirpath_result_dump(r, &out);
			buf_cleanup(&out);
		}
		fhirpath_result_free(r);
	}
	fhirpath_free(fp);
	free(expr);
	return 0;
}
