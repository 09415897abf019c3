/*
 * libFuzzer harness for FHIR XML to JSON (xmlfhir): any input is either
 * refused or gives a document whose JSON text parses back with fjson.
 * Type information comes from the R4 rules in schemas/ (PZPGW_SRCDIR or
 * the current directory); without them the conversion runs untyped.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "xmlfhir.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rules_set *set;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *src = getenv("PZPGW_SRCDIR");
	char dir[4096], err[256];

	snprintf(dir, sizeof(dir), "%s/schemas", src ? src : ".");
	set = rules_set_new(RULES_R4);
	if (set != NULL &&
	    rules_load_dir(set, dir, err, sizeof(err)) != GW_OK) {
		rules_set_free(set);
		set = NULL;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fj_doc *doc = NULL, *back = NULL;
	char err[256];
	struct buf b;

	/* both modes: strict element order on odd sizes */
	if (xmlfhir_to_fjson_flags((const char *)data, size, set,
				   (size & 1) ? XMLFHIR_STRICT_ORDER : 0, &doc,
				   err, sizeof(err)) != GW_OK) {
		if (doc != NULL)
			abort();
		return 0;
	}
	buf_init(&b, 1u << 26);
	if (fj_dump(doc->root, 0, &b) == GW_OK &&
	    fj_parse(b.data, b.len, FJ_ALLOW_DUPLICATES, &back, NULL) != GW_OK)
		abort();
	fj_doc_free(back);
	buf_cleanup(&b);
	fj_doc_free(doc);
	return 0;
}
