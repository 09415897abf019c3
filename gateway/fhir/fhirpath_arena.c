/*
 * fhirpath_arena: the memory of one compiled expression or one evaluation,
 * freed at once; bounded, so an expression cannot take more than its limit.
 */
#include <stdlib.h>
#include <string.h>

#include "fhirpath_impl.h"

/* ---------------------------------------------------------------- arena */

void
fp_ar_init(struct arena *a, void *first, size_t firstlen, size_t max)
{
	memset(a, 0, sizeof(*a));
	a->buf = first;
	a->cap = first ? firstlen : 0;
	a->max = max;
	/* a compiled expression is small; an evaluation may grow */
	a->next = first ? AR_CHUNK / 4 : 1024;
}

void
fp_ar_cleanup(struct arena *a)
{
	struct chunk *c, *n;

	for (c = a->chunks; c; c = n) {
		n = c->next;
		free(c);
	}
	a->chunks = NULL;
}

void *
fp_ar_alloc(struct arena *a, size_t n)
{
	void *p;
	size_t sz;
	struct chunk *c;

	if (n > a->max) {
		a->err = GW_TOOBIG;
		return NULL;
	}
	n = (n + AR_ALIGN - 1) & ~(size_t)(AR_ALIGN - 1);
	if (n == 0)
		n = AR_ALIGN;
	if (!a->buf || n > a->cap - a->used) {
		sz = n + CHUNK_HDR > a->next ? n + CHUNK_HDR : a->next;
		if (a->next < AR_CHUNK)
			a->next *= 2;
		if (a->total + sz > a->max) {
			a->err = GW_TOOBIG;
			return NULL;
		}
		c = malloc(sz);
		if (!c) {
			a->err = GW_NOMEM;
			return NULL;
		}
		c->next = a->chunks;
		c->size = sz;
		a->chunks = c;
		a->total += sz;
		a->buf = (char *)c + CHUNK_HDR;
		a->cap = sz - CHUNK_HDR;
		a->used = 0;
	}
	p = a->buf + a->used;
	a->used += n;
	return p;
}

char *
fp_ar_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = fp_ar_alloc(a, n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}
