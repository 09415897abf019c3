/*
 * libFuzzer harness for FHIR XML to JSON and back (xmlfhir): any input is
 * either refused or gives a document whose JSON text parses back with
 * fjson; when the writer accepts that document, its XML reads back (in
 * strict element order) to the same document, and writing that again
 * gives the same XML. Input that is JSON instead goes to the writer: what
 * it accepts reads back and writes the same XML again. Type information
 * comes from the R4 rules in schemas/ (PZPGW_SRCDIR or the current
 * directory); without them the conversion runs untyped and the writer is
 * not tried.
 */
#include <stdbool.h>
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

/*
 * The writer either refuses doc (leaving nothing written) or writes XML
 * that reads back: to doc itself when exact (doc came from XML), else
 * (doc came from JSON, whose divs come back as libxml2 writes them) to a
 * document that writes the same XML again.
 */
static void
roundtrip(const struct fj_doc *doc, bool exact)
{
	struct fj_doc *back = NULL;
	struct buf x1, x2;
	char err[256];

	buf_init(&x1, 1u << 26);
	buf_init(&x2, 1u << 26);
	if (xmlfhir_from_fjson(doc->root, set, &x1, err, sizeof(err)) !=
	    GW_OK) {
		if (x1.len != 0)
			abort();
		goto done;
	}
	if (xmlfhir_to_fjson_flags(x1.data, x1.len, set, XMLFHIR_STRICT_ORDER,
				   &back, err, sizeof(err)) != GW_OK ||
	    (exact && !fj_equal(doc->root, back->root, FDEC_EXACT)))
		abort();
	if (xmlfhir_from_fjson(back->root, set, &x2, err, sizeof(err)) !=
		GW_OK ||
	    x1.len != x2.len || memcmp(x1.data, x2.data, x1.len) != 0)
		abort();
done:
	fj_doc_free(back);
	buf_cleanup(&x2);
	buf_cleanup(&x1);
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
		/* not XML: JSON goes to the writer directly, with strings,
		 * numbers and shapes the reader never makes */
		if (set != NULL && size > 0 && data[0] == '{' &&
		    fj_parse((const char *)data, size, 0, &doc, NULL) ==
			GW_OK) {
			roundtrip(doc, false);
			fj_doc_free(doc);
		}
		return 0;
	}
	buf_init(&b, 1u << 26);
	if (fj_dump(doc->root, 0, &b) == GW_OK &&
	    fj_parse(b.data, b.len, FJ_ALLOW_DUPLICATES, &back, NULL) != GW_OK)
		abort();
	fj_doc_free(back);
	buf_cleanup(&b);
	if (set != NULL)
		roundtrip(doc, true);
	fj_doc_free(doc);
	return 0;
}
