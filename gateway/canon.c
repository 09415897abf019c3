/*
 * FHIR static canonicalisation over the fjson model: members sorted by
 * UTF-16 code units here, strings and numbers written by fjson; the root
 * members FHIR excludes are skipped while writing, never removed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"

/* Members of an object sorted without a heap allocation. */
#define CANON_STACK 32

/* Root members a canonical form leaves out. */
static const char *const canon_skip_bundle[] = {"text", "meta", "signature"};
static const char *const canon_skip_other[] = {"text", "meta"};

static void
canon_fail(struct fj_error *err, const struct fj_node *n, const char *msg,
	   const char *arg)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	if (n != NULL) {
		err->line = n->line;
		err->col = n->col;
	}
	snprintf(err->msg, sizeof(err->msg), "%s%s", msg, arg);
}

/* True when s (len bytes) is a number FHIR JSON allows:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)? and not a negative zero. */
static bool
canon_number_ok(const char *s, size_t len)
{
	size_t i = 0;
	bool neg = false, nonzero = false;

	if (i < len && s[i] == '-') {
		neg = true;
		i++;
	}
	if (i >= len || s[i] < '0' || s[i] > '9')
		return false;
	if (s[i] == '0') {
		i++;
		if (i < len && s[i] >= '0' && s[i] <= '9')
			return false; /* leading zero */
	} else {
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		nonzero = true;
	}
	if (i < len && s[i] == '.') {
		size_t digits = 0;
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
			if (s[i] != '0')
				nonzero = true;
		if (digits == 0)
			return false;
	}
	if (i != len)
		return false; /* exponent or anything else */
	return !(neg && !nonzero);
}

static enum gw_err
canon_check(const struct fj_node *n, struct fj_error *err)
{
	enum gw_err e;

	switch (n->type) {
	case FJ_NUMBER:
		if (!canon_number_ok(n->u.str.s, n->u.str.len)) {
			char num[32];
			size_t k = n->u.str.len < sizeof(num) - 1
				       ? n->u.str.len
				       : sizeof(num) - 1;
			memcpy(num, n->u.str.s, k);
			num[k] = '\0';
			canon_fail(err, n,
				   "number not allowed in FHIR (exponent, "
				   "leading zero or negative zero): ",
				   num);
			return GW_INVALID;
		}
		return GW_OK;
	case FJ_ARRAY:
	case FJ_OBJECT:
		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next)
			if ((e = canon_check(k, err)) != GW_OK)
				return e;
		return GW_OK;
	default:
		return GW_OK;
	}
}

/*
 * Order of two member names by UTF-16 code units (RFC 8785 3.2.3). UTF-8
 * byte order is code point order, which differs from UTF-16 order only
 * between a supplementary character (a surrogate pair, D800-DBFF first)
 * and one in U+E000-U+FFFF; so compare bytes and correct that one case
 * at the first difference.
 */
static int
canon_keycmp(const struct fj_node *a, const struct fj_node *b)
{
	const unsigned char *sa = (const unsigned char *)a->key;
	const unsigned char *sb = (const unsigned char *)b->key;
	size_t n = a->keylen < b->keylen ? a->keylen : b->keylen, i = 0;
	unsigned la, lb;

	while (i < n && sa[i] == sb[i])
		i++;
	if (i == n)
		return a->keylen < b->keylen ? -1 : a->keylen > b->keylen;
	/* Back up to the lead byte of the character that differs. */
	while (i > 0 && (sa[i] & 0xc0) == 0x80)
		i--;
	la = sa[i];
	lb = sb[i];
	if (la >= 0xf0 && lb >= 0xee && lb < 0xf0)
		return -1;
	if (lb >= 0xf0 && la >= 0xee && la < 0xf0)
		return 1;
	while (sa[i] == sb[i])
		i++;
	return sa[i] < sb[i] ? -1 : 1;
}

static int
canon_qsort_cmp(const void *x, const void *y)
{
	const struct fj_node *const *a = x;
	const struct fj_node *const *b = y;

	return canon_keycmp(*a, *b);
}

static bool
canon_skipped(const struct fj_node *m, bool bundle)
{
	const char *const *names =
	    bundle ? canon_skip_bundle : canon_skip_other;
	size_t n = bundle ? 3 : 2;

	for (size_t i = 0; i < n; i++)
		if (m->keylen == strlen(names[i]) &&
		    memcmp(m->key, names[i], m->keylen) == 0)
			return true;
	return false;
}

/* The output while it is being written: one growing block, handed to
 * the caller's buffer in one piece at the end. */
struct canon_w {
	char *p;
	size_t len, cap, max;
	enum gw_err err; /* first failure; later writes do nothing */
};

static bool
canon_grow(struct canon_w *w, size_t n)
{
	size_t cap;
	char *p;

	if (w->err != GW_OK)
		return false;
	if (n > w->max || w->len > w->max - n) {
		w->err = GW_TOOBIG;
		return false;
	}
	cap = w->cap ? w->cap : 16384;
	while (cap - w->len < n)
		cap *= 2;
	if ((p = realloc(w->p, cap)) == NULL) {
		w->err = GW_NOMEM;
		return false;
	}
	w->p = p;
	w->cap = cap;
	return true;
}

static inline void
canon_put(struct canon_w *w, const char *s, size_t n)
{
	if (w->cap - w->len < n && !canon_grow(w, n))
		return;
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static inline void
canon_putc(struct canon_w *w, char c)
{
	if (w->cap == w->len && !canon_grow(w, 1))
		return;
	w->p[w->len++] = c;
}

/* Bytes a JSON string must escape: controls, quote, backslash. */
static const unsigned char canon_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1,
};

/* A string the RFC 8785 way: UTF-8 as is, only '"', '\' and controls
 * escaped, the short forms where JSON has them, else \u00xx. */
static void
canon_string(struct canon_w *w, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run;
	char esc[6];

	canon_putc(w, '"');
	while (i < len) {
		for (run = i; i < len && !canon_escape[(unsigned char)s[i]];)
			i++;
		canon_put(w, s + run, i - run);
		if (i == len)
			break;
		esc[0] = '\\';
		switch (s[i]) {
		case '"':
		case '\\':
			esc[1] = s[i];
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[(unsigned char)s[i] >> 4];
			esc[5] = hex[(unsigned char)s[i] & 15];
			canon_put(w, esc, 6);
			i++;
			continue;
		}
		canon_put(w, esc, 2);
		i++;
	}
	canon_putc(w, '"');
}

/* Sort n members by name (insertion sort: FHIR objects are small and
 * often nearly sorted). */
static void
canon_sort(const struct fj_node **m, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		const struct fj_node *x = m[i];
		size_t j = i;
		while (j > 0 && canon_keycmp(m[j - 1], x) > 0) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = x;
	}
}

/*
 * Canonical form of n. Objects are sorted here (not by fj_dump) so the
 * order is canon_keycmp's at every level (a key that is a prefix of
 * another, "id" before "identifier", sorts first).
 * root: leave out the members FHIR excludes at the root.
 */
static void
canon_node(const struct fj_node *n, bool root, bool bundle, struct canon_w *w)
{
	const struct fj_node *stack[CANON_STACK], **members = stack;
	/* an array of pointers, not of nodes */
	const size_t psize = sizeof(members[0]); /* NOLINT */
	size_t count = 0, i;

	switch (n->type) {
	case FJ_NULL:
		canon_put(w, "null", 4);
		return;
	case FJ_BOOL:
		if (n->u.b)
			canon_put(w, "true", 4);
		else
			canon_put(w, "false", 5);
		return;
	case FJ_NUMBER:
		canon_put(w, n->u.str.s, n->u.str.len);
		return;
	case FJ_STRING:
		canon_string(w, n->u.str.s, n->u.str.len);
		return;
	case FJ_ARRAY:
		canon_putc(w, '[');
		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next) {
			if (k != n->u.kids.first)
				canon_putc(w, ',');
			canon_node(k, false, false, w);
		}
		canon_putc(w, ']');
		return;
	case FJ_OBJECT:
		break;
	}

	if (n->u.kids.count > CANON_STACK &&
	    (members = calloc(n->u.kids.count, psize)) == NULL) {
		if (w->err == GW_OK)
			w->err = GW_NOMEM;
		return;
	}
	for (const struct fj_node *m = n->u.kids.first;
	     m != NULL && count < n->u.kids.count; m = m->next)
		if (!root || !canon_skipped(m, bundle))
			members[count++] = m;
	if (count > 64)
		qsort(members, count, psize, canon_qsort_cmp);
	else
		canon_sort(members, count);
	canon_putc(w, '{');
	for (i = 0; i < count && w->err == GW_OK; i++) {
		if (i > 0)
			canon_putc(w, ',');
		canon_string(w, members[i]->key, members[i]->keylen);
		canon_putc(w, ':');
		canon_node(members[i], false, false, w);
	}
	canon_putc(w, '}');
	if (members != stack)
		free(members);
}

enum gw_err
canon_resource(const struct fj_node *res, struct buf *out, struct fj_error *err)
{
	const struct fj_node *rt;
	struct canon_w w = {NULL, 0, 0, 0, GW_OK};
	enum gw_err e;

	if (res == NULL || res->type != FJ_OBJECT) {
		canon_fail(err, res, "a resource must be a JSON object", "");
		return GW_INVALID;
	}
	rt = fj_get(res, "resourceType");
	if (rt == NULL || rt->type != FJ_STRING || rt->u.str.len == 0) {
		canon_fail(err, res, "resourceType missing", "");
		return GW_INVALID;
	}
	if ((e = canon_check(res, err)) != GW_OK)
		return e;
	w.max = out->max > out->len ? out->max - out->len : 0;
	canon_node(res, true, fj_str_eq(rt, "Bundle"), &w);
	e = w.err != GW_OK ? w.err : buf_add(out, w.p, w.len);
	free(w.p);
	return e;
}

enum gw_err
canon_text(const char *text, size_t len, struct buf *out, struct fj_error *err)
{
	struct fj_doc *doc = NULL;
	enum gw_err e;

	if ((e = fj_parse(text, len, 0, &doc, err)) != GW_OK)
		return e;
	e = canon_resource(doc->root, out, err);
	fj_doc_free(doc);
	return e;
}
