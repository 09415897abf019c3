/*
 * libFuzzer harness for the compiled rule-file reader (schemas/NAME.rules):
 * any input is either refused or loads into a set whose every structure,
 * element and value set code can be walked, with codes findable.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "rules_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
walk(const struct rules_set *set)
{
	const struct rules_structure *st;
	const struct rules_valueset *vs;
	size_t sum = 0;

	for (size_t i = 0; (st = rules_structure_at(set, i)) != NULL; i++) {
		if (rules_structure(set, st->url) == NULL)
			abort();
		for (size_t k = 0; k < st->nelements; k++) {
			const struct rules_element *e = &st->elements[k];

			sum += strlen(e->id) + strlen(e->path);
			for (size_t t = 0; t < e->ntypes; t++) {
				sum += strlen(e->types[t].code);
				for (size_t p = 0; p < e->types[t].nprofiles;
				     p++)
					sum += strlen(e->types[t].profiles[p]);
				for (size_t p = 0; p < e->types[t].ntargets;
				     p++)
					sum += strlen(e->types[t].targets[p]);
			}
			for (size_t c = 0; c < e->nconstraints; c++)
				sum += strlen(e->constraints[c].key);
			if (e->slicing != NULL)
				for (size_t d = 0; d < e->slicing->ndisc; d++)
					sum += strlen(e->slicing->disc[d].path);
			if (e->fixed != NULL)
				sum += e->fixed->keylen;
			if (e->pattern != NULL)
				sum += e->pattern->keylen;
		}
	}
	for (size_t i = 0; (vs = rs_valueset_at(set, i)) != NULL; i++) {
		if (rules_valueset(set, vs->url) != vs)
			continue; /* a duplicate URL: the first one stays */
		for (size_t k = 0; k < vs->ncodes; k++)
			if (!rules_valueset_has(vs, vs->codes[k].system,
						vs->codes[k].code))
				abort();
	}
	return sum;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_set *set = rules_set_new(RULES_R4);
	char err[256];
	char *text = malloc(size + 1);

	if (set == NULL || text == NULL) {
		free(text);
		rules_set_free(set);
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	/* the set owns text from here on */
	if (rs_load_text(set, text, size, "fuzz", err, sizeof(err)) == GW_OK)
		(void)walk(set);
	rules_set_free(set);
	return 0;
}
