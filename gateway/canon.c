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

/* Append the canonical form of member name (key, len) through fjson's
 * string escaping. */
static enum gw_err
canon_name(const char *key, size_t len, struct buf *out)
{
	struct fj_node name;

	memset(&name, 0, sizeof(name));
	name.type = FJ_STRING;
	name.u.str.s = key;
	name.u.str.len = len;
	return fj_dump(&name, FJ_CANONICAL, out);
}

/*
 * Canonical form of n. Objects are sorted here rather than by fj_dump so
 * that the order is the one canon_keycmp defines at every level (a key
 * that is a prefix of another, "id" before "identifier", sorts first).
 * root: leave out the members FHIR excludes at the root.
 */
static enum gw_err
canon_node(const struct fj_node *n, bool root, bool bundle, struct buf *out)
{
	const struct fj_node *stack[CANON_STACK], **members = stack;
	/* an array of pointers, not of nodes */
	const size_t psize = sizeof(members[0]); /* NOLINT */
	size_t count = 0, i;
	enum gw_err e = GW_OK;

	if (n->type == FJ_ARRAY) {
		if ((e = buf_addc(out, '[')) != GW_OK)
			return e;
		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next)
			if ((k != n->u.kids.first &&
			     (e = buf_addc(out, ',')) != GW_OK) ||
			    (e = canon_node(k, false, false, out)) != GW_OK)
				return e;
		return buf_addc(out, ']');
	}
	if (n->type != FJ_OBJECT)
		return fj_dump(n, FJ_CANONICAL, out);

	if (n->u.kids.count > CANON_STACK &&
	    (members = calloc(n->u.kids.count, psize)) == NULL)
		return GW_NOMEM;
	for (const struct fj_node *m = n->u.kids.first;
	     m != NULL && count < n->u.kids.count; m = m->next)
		if (!root || !canon_skipped(m, bundle))
			members[count++] = m;
	if (count > 1)
		qsort(members, count, psize, canon_qsort_cmp);
	if ((e = buf_addc(out, '{')) != GW_OK)
		goto done;
	for (i = 0; i < count; i++)
		if ((i > 0 && (e = buf_addc(out, ',')) != GW_OK) ||
		    (e = canon_name(members[i]->key, members[i]->keylen,
				    out)) != GW_OK ||
		    (e = buf_addc(out, ':')) != GW_OK ||
		    (e = canon_node(members[i], false, false, out)) != GW_OK)
			goto done;
	e = buf_addc(out, '}');
done:
	if (members != stack)
		free(members);
	return e;
}

enum gw_err
canon_resource(const struct fj_node *res, struct buf *out, struct fj_error *err)
{
	const struct fj_node *rt;
	size_t start = out->len;
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
	if ((e = canon_node(res, true, fj_str_eq(rt, "Bundle"), out)) !=
	    GW_OK) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
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
