/* Bounded growable byte buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_cleanup(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static enum gw_err
buf_reserve(struct buf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return GW_TOOBIG;
	want = b->len + n + 1;
	if (want <= b->cap)
		return GW_OK;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap = cap > ((size_t)-1) / 2 ? want : cap * 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return GW_NOMEM;
	b->data = p;
	b->cap = cap;
	return GW_OK;
}

enum gw_err
buf_add_slow(struct buf *b, const void *p, size_t n)
{
	enum gw_err err;

	if ((err = buf_reserve(b, n)) != GW_OK)
		return err;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return GW_OK;
}

enum gw_err
buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

enum gw_err
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	enum gw_err err;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return GW_INVALID;
	if ((err = buf_reserve(b, (size_t)n)) != GW_OK)
		return err;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return GW_OK;
}

char *
buf_steal(struct buf *b, size_t *len)
{
	char *p = b->data;

	if (p == NULL)
		p = calloc(1, 1);
	if (len != NULL)
		*len = p ? b->len : 0;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
