/*
 * libFuzzer harness for the message envelope (message.c): any JSON is
 * read by message_parse without harm, and an envelope that parses keeps
 * its event and receivers through message_convert to the other version's
 * form and back (the daemon converts STU3 messages on intake and for
 * STU3 receivers).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fjson.h"
#include "message.h"
#include "outcome.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether a and b name the same event and receivers in the same order. */
static int
same(const struct message_info *a, const struct message_info *b)
{
	if (a->nreceivers != b->nreceivers ||
	    (a->event == NULL) != (b->event == NULL) ||
	    (a->event != NULL && strcmp(a->event, b->event) != 0) ||
	    strcmp(a->sender, b->sender) != 0)
		return 0;
	for (size_t i = 0; i < a->nreceivers; i++)
		if (strcmp(a->receivers[i], b->receivers[i]) != 0)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message_info before, after;
	struct fj_doc *doc = NULL;
	json_t *oo = fhir_outcome_new();
	json_t *rep = fhir_outcome_new();
	int ok;

	if (oo == NULL || rep == NULL ||
	    fj_parse((const char *)data, size, 0, &doc, NULL) != GW_OK)
		goto done;
	ok = message_parse(doc->root, &before, oo) == GW_OK;
	/* The first byte picks the direction the fuzzer tries first. */
	for (int k = 0; k < 2; k++) {
		bool to_r4 = ((size > 0 ? data[0] : 0) + k) % 2 == 0;

		if (message_convert(doc, to_r4, rep) == GW_NOMEM)
			goto done;
		json_decref(oo);
		if ((oo = fhir_outcome_new()) == NULL)
			goto done;
		/* A valid envelope stays valid, naming the same parties. */
		if (ok && (message_parse(doc->root, &after, oo) != GW_OK ||
			   !same(&before, &after)))
			abort();
	}
done:
	json_decref(oo);
	json_decref(rep);
	fj_doc_free(doc);
	return 0;
}
