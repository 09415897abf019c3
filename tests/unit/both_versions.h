/*
 * The project's compiled rules of both FHIR versions, loaded once for a
 * cmocka group (index 0: R4, 1: STU3), with a validator context each:
 * the fixture of the transform tests (test_transform_check.c,
 * test_transform_roundtrip.c).
 */
#ifndef PZPGW_TEST_BOTH_VERSIONS_H
#define PZPGW_TEST_BOTH_VERSIONS_H

#include <stdio.h>
#include <stdlib.h>

#include "rules.h"
#include "validate.h"

struct both_versions {
	struct rules_set *set[2];
	struct validate_ctx *ctx[2];
};

/* The source tree: PZPGW_SRCDIR, else the working directory. */
static const char *
srcdir(void)
{
	const char *d = getenv("PZPGW_SRCDIR");

	return d != NULL && d[0] != '\0' ? d : ".";
}

/* cmocka group setup: *state becomes the loaded struct both_versions. */
static int
both_versions_setup(void **state)
{
	static struct both_versions s;
	char path[4096], errbuf[512];

	snprintf(path, sizeof(path), "%s/schemas", srcdir());
	for (int v = 0; v < 2; v++) {
		errbuf[0] = '\0';
		s.set[v] = rules_set_new(v == 0 ? RULES_R4 : RULES_STU3);
		if (s.set[v] == NULL ||
		    rules_load_dir(s.set[v], path, errbuf, sizeof(errbuf)) !=
			GW_OK ||
		    validate_ctx_new(s.set[v], &s.ctx[v]) != GW_OK) {
			fprintf(stderr, "rules %s: %s\n", path, errbuf);
			return -1;
		}
	}
	*state = &s;
	return 0;
}

static int
both_versions_teardown(void **state)
{
	struct both_versions *s = *state;

	for (int v = 0; v < 2; v++) {
		validate_ctx_free(s->ctx[v]);
		rules_set_free(s->set[v]);
	}
	return 0;
}

#endif
