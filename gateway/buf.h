/* Growable byte buffer with a hard maximum size, for anything fed from
 * outside. */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "err.h"

struct buf {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	size_t max; /* len never exceeds this */
};

/* Start an empty buffer that refuses to grow past max bytes. */
void buf_init(struct buf *b, size_t max);
/* Release the storage; b may be reused after buf_init. */
void buf_cleanup(struct buf *b);
/* Append; GW_TOOBIG past max, GW_NOMEM; b unchanged on failure. */
enum gw_err buf_add_slow(struct buf *b, const void *p, size_t n);
enum gw_err buf_adds(struct buf *b, const char *s);

/* The common case (room already there) inline: writers call these for
 * every token. data is NULL exactly when cap is 0; testing it too lets the
 * static analyzers see that the fast path never writes through NULL. */
static inline enum gw_err
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->data != NULL && b->cap - b->len > n && b->max - b->len >= n) {
		if (n > 0)
			memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = '\0';
		return GW_OK;
	}
	return buf_add_slow(b, p, n);
}

static inline enum gw_err
buf_addc(struct buf *b, char c)
{
	if (b->data != NULL && b->cap - b->len > 1 && b->max > b->len) {
		b->data[b->len++] = c;
		b->data[b->len] = '\0';
		return GW_OK;
	}
	return buf_add_slow(b, &c, 1);
}
enum gw_err buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand the data to the caller (caller frees); b becomes empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
