/*
 * libFuzzer harness for index_prepare, the received-data index of a
 * message: any JSON either is refused or gives entries whose served JSON
 * parses back, carries the logical id as its id, and whose ids and keys
 * fit the store's limits (no hash: the store compares the text).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fjson.h"
#include "index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char secret[INDEX_SECRET_LEN] = {42};
	struct fj_doc *doc = NULL, *back = NULL;
	struct index_set *x = NULL;
	const struct store_index *ix;

	if (fj_parse((const char *)data, size, 0, &doc, NULL) != GW_OK)
		return 0;
	if (index_prepare(doc->root, "90000003", secret, 0, &x) != GW_OK)
		goto out;
	ix = index_get(x);
	if (strlen(ix->bsn) > STORE_BSN_MAX ||
	    (ix->sender[0] != '\0' && strlen(ix->sender) != 8))
		abort();
	for (size_t i = 0; i < ix->n; i++) {
		const struct store_index_entry *e = &ix->entries[i];

		if (strlen(e->id) != INDEX_ID_LEN ||
		    strlen(e->type) > STORE_TYPE_MAX ||
		    strlen(e->key) > STORE_KEY_MAX || e->sha256 != NULL)
			abort();
		if (fj_parse(e->json, e->json_len, 0, &back, NULL) != GW_OK ||
		    !fj_str_eq(fj_get(back->root, "id"), e->id))
			abort();
		fj_doc_free(back);
		back = NULL;
	}
out:
	index_free(x);
	fj_doc_free(doc);
	return 0;
}
