/*
 * validate_core: what every part of the validator shares: the hash maps,
 * the element tree and type of each structure, the expression path, the
 * issue list, and helpers on JSON values and definition trees.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "validate_impl.h"

static const char *const prim_names[] = {
    "base64Binary", "boolean",	   "canonical", "code",	       "date",
    "dateTime",	    "decimal",	   "id",	"instant",     "integer",
    "integer64",    "markdown",	   "oid",	"positiveInt", "string",
    "time",	    "unsignedInt", "uri",	"url",	       "uuid",
    "xhtml",
};

/* ---- structure trees ---- */

static bool
vnode_push(struct vnode ***arr, size_t *n, size_t *cap, struct vnode *x)
{
	if (*n == *cap) {
		size_t ncap = *cap == 0 ? 4 : *cap * 2;
		struct vnode **na =
		    realloc(*arr, ncap * sizeof(struct vnode *));

		if (na == NULL)
			return false;
		*arr = na;
		*cap = ncap;
	}
	(*arr)[(*n)++] = x;
	return true;
}

void
v_vinv_free(struct vinv *inv)
{
	while (inv != NULL) {
		struct vinv *next = inv->next;

		for (size_t i = 0; i < inv->n; i++)
			free(inv->e[i].msg);
		free(inv);
		inv = next;
	}
}

bool
v_is_quantity_type(const char *t)
{
	static const char *const q[] = {
	    "Quantity",	      "Age",	      "Count", "Distance", "Duration",
	    "SimpleQuantity", "MoneyQuantity"};

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		if (strcmp(t, q[i]) == 0)
			return true;
	return false;
}

void
v_vstruct_free(struct vstruct *vs)
{
	if (vs == NULL)
		return;
	for (size_t i = 0; i < vs->sd->nelements; i++) {
		v_vinv_free(vs->nodes[i].inv);
		v_vinv_free(vs->nodes[i].dtinv);
		free(vs->nodes[i].kids);
		free(vs->nodes[i].slices);
		free(vs->nodes[i].req);
	}
	free(vs->nodes);
	free(vs);
}

static size_t
path_depth(const char *p)
{
	size_t d = 1;

	for (; *p != '\0'; p++)
		if (*p == '.')
			d++;
	return d;
}

static struct vstruct *
vstruct_build(const struct rules_structure *sd)
{
	struct vnode *stack[V_MAX_DEPTH + 2];
	struct vstruct *vs = calloc(1, sizeof(*vs));

	if (vs == NULL)
		return NULL;
	vs->sd = sd;
	if (sd->nelements == 0 ||
	    (vs->nodes = calloc(sd->nelements, sizeof(*vs->nodes))) == NULL)
		goto fail;
	memset(stack, 0, sizeof(stack));
	for (size_t i = 0; i < sd->nelements; i++) {
		const struct rules_element *e = &sd->elements[i];
		struct vnode *n = &vs->nodes[i];
		size_t d = path_depth(e->path);
		const char *dot = strrchr(e->path, '.');
		size_t nl;

		n->el = e;
		n->name = dot != NULL ? dot + 1 : e->path;
		nl = strlen(n->name);
		n->choice = nl > 3 && strcmp(n->name + nl - 3, "[x]") == 0;
		n->prefixlen = n->choice ? nl - 3 : nl;
		if (d > V_MAX_DEPTH)
			continue;
		if (i == 0 || d == 1) {
			if (vs->root == NULL) {
				vs->root = n;
				stack[1] = n;
			}
			continue;
		}
		if (e->slice_name != NULL && stack[d] != NULL &&
		    strcmp(stack[d]->el->path, e->path) == 0) {
			struct vnode *owner =
			    stack[d]->owner != NULL
				? (struct vnode *)stack[d]->owner
				: stack[d];
			struct vnode *same = NULL;

			/* a slice named twice: one slice, the later
			 * cardinality wins */
			for (size_t j = 0; j < owner->nslices; j++)
				if (strcmp(owner->slices[j]->el->slice_name,
					   e->slice_name) == 0)
					same = owner->slices[j];
			if (same != NULL) {
				same->card = e;
				n = same;
			} else {
				if (!vnode_push(&owner->slices, &owner->nslices,
						&owner->capslices, n))
					goto fail;
				n->owner = owner;
			}
		} else {
			struct vnode *parent = stack[d - 1];

			if (parent == NULL)
				continue;
			if (!vnode_push(&parent->kids, &parent->nkids,
					&parent->capkids, n))
				goto fail;
		}
		stack[d] = n;
		for (size_t k = d + 1; k < V_MAX_DEPTH + 2; k++)
			stack[k] = NULL;
	}
	if (vs->root == NULL)
		goto fail;
	/* contentReference targets, by element id (or path). */
	for (size_t i = 0; i < sd->nelements; i++) {
		const char *ref = sd->elements[i].content_ref;

		if (ref == NULL)
			continue;
		if (ref[0] == '#')
			ref++;
		for (size_t j = 0; j < sd->nelements; j++)
			if ((sd->elements[j].id != NULL &&
			     strcmp(sd->elements[j].id, ref) == 0) ||
			    (sd->elements[j].slice_name == NULL &&
			     strcmp(sd->elements[j].path, ref) == 0)) {
				vs->nodes[i].ref = &vs->nodes[j];
				break;
			}
		if (vs->nodes[i].ref == NULL) {
			/* "#Questionnaire.item" in a profile whose ids carry
			 * the type name: match on the path's tail. */
			const char *dot = strchr(ref, '.');

			for (size_t j = 0; dot != NULL && j < sd->nelements;
			     j++) {
				const char *p =
				    strchr(sd->elements[j].path, '.');

				if (p != NULL && strcmp(p, dot) == 0 &&
				    sd->elements[j].slice_name == NULL) {
					vs->nodes[i].ref = &vs->nodes[j];
					break;
				}
			}
		}
	}
	/* kids that need a look when absent */
	for (size_t i = 0; i < sd->nelements; i++) {
		struct vnode *n = &vs->nodes[i];

		for (size_t j = 0; j < n->nkids; j++) {
			const struct vnode *k = n->kids[j];
			size_t cap = n->nreq;
			bool need = k->el->min > 0;

			for (size_t t = 0; t < k->nslices && !need; t++)
				need = k->slices[t]->el->min > 0 ||
				       (k->slices[t]->card != NULL &&
					k->slices[t]->card->min > 0);
			if (need && !vnode_push(&n->req, &n->nreq, &cap,
						(struct vnode *)k))
				goto fail;
		}
	}
	return vs;
fail:
	if (vs->nodes == NULL) {
		free(vs);
		return NULL;
	}
	v_vstruct_free(vs);
	return NULL;
}

const struct vstruct *
v_vstruct_get(struct validate_ctx *ctx, const struct rules_structure *sd)
{
	struct vstruct *vs;

	if (sd == NULL)
		return NULL;
	if ((vs = hmap_get(&ctx->structs, sd, NULL)) != NULL)
		return vs;
	if ((vs = vstruct_build(sd)) == NULL)
		return NULL;
	if (hmap_put(&ctx->structs, sd, vs) != GW_OK) {
		v_vstruct_free(vs);
		return NULL;
	}
	return vs;
}

static char sd_unknown; /* rule_sd marker: no such structure */

const struct rules_structure *
v_rule_structure(struct validate_ctx *ctx, const char *url)
{
	const struct rules_structure *sd;
	void *hit;

	if (url == NULL)
		return NULL;
	if ((hit = hmap_get(&ctx->rule_sd, url, NULL)) != NULL)
		return hit == (void *)&sd_unknown ? NULL : hit;
	sd = rules_structure(ctx->set, url);
	/* without memory the answer is still right, only not kept */
	(void)hmap_put(&ctx->rule_sd, url,
		       sd != NULL ? (void *)sd : (void *)&sd_unknown);
	return sd;
}

bool
v_is_prim_name(const char *t)
{
	if (strncmp(t, "http://hl7.org/fhirpath/System.", 31) == 0)
		return true;
	for (size_t i = 0; i < sizeof(prim_names) / sizeof(prim_names[0]); i++)
		if (strcmp(prim_names[i], t) == 0)
			return true;
	return false;
}

const struct vtype *
v_vtype_get(struct validate_ctx *ctx, const char *name)
{
	const struct rules_structure *sd;
	struct vtype *t;
	bool found;

	t = hmap_get(&ctx->types, name, &found);
	if (found)
		return t;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	sd = rules_type(ctx->set, name);
	t->vs = v_vstruct_get(ctx, sd);
	if (v_is_prim_name(name) || (sd != NULL && sd->kind != NULL &&
				     strcmp(sd->kind, "primitive-type") == 0)) {
		t->kind = VK_PRIM;
		if (strcmp(name, "boolean") == 0 ||
		    strcmp(name, "http://hl7.org/fhirpath/System.Boolean") == 0)
			t->json = VJ_BOOL;
		else if (strcmp(name, "integer") == 0 ||
			 strcmp(name, "decimal") == 0 ||
			 strcmp(name, "positiveInt") == 0 ||
			 strcmp(name, "unsignedInt") == 0 ||
			 strcmp(name,
				"http://hl7.org/fhirpath/System.Integer") ==
			     0 ||
			 strcmp(name,
				"http://hl7.org/fhirpath/System.Decimal") == 0)
			t->json = VJ_NUMBER;
	} else if (strcmp(name, "Resource") == 0 ||
		   strcmp(name, "DomainResource") == 0 ||
		   (sd != NULL && sd->kind != NULL &&
		    strcmp(sd->kind, "resource") == 0))
		t->kind = VK_RESOURCE;
	else if (sd != NULL)
		t->kind = VK_COMPLEX;
	else
		t->kind = VK_UNKNOWN;
	if (strcmp(name, "Extension") == 0)
		t->flags |= VT_EXTENSION;
	else if (strcmp(name, "Reference") == 0)
		t->flags |= VT_REFERENCE;
	else if (strcmp(name, "Attachment") == 0)
		t->flags |= VT_ATTACHMENT;
	else if (strcmp(name, "Coding") == 0)
		t->flags |= VT_CODING;
	else if (strcmp(name, "xhtml") == 0)
		t->flags |= VT_XHTML;
	else if (strcmp(name, "BackboneElement") == 0 ||
		 strcmp(name, "Element") == 0)
		t->flags |= VT_BACKBONE;
	if (v_is_quantity_type(name))
		t->flags |= VT_QUANTITY;
	if (strcmp(name, "uri") == 0 || strcmp(name, "url") == 0)
		t->flags |= VT_URI;
	if (hmap_put(&ctx->types, name, t) != GW_OK) {
		free(t);
		return NULL;
	}
	/* the key copy is stable for the context's life */
	t->name = NULL;
	for (size_t i = 0; i < ctx->types.cap; i++)
		if (ctx->types.slot[i].val.ptr == t) {
			t->name = ctx->types.slot[i].key;
			break;
		}
	return t;
}

/* ---- issues and the expression path ---- */

size_t
v_path_push(struct vrun *r, const char *fmt, ...)
{
	size_t old = r->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->path + r->plen, sizeof(r->path) - r->plen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(r->path) - r->plen) {
		r->overflow = true;
		r->path[old] = '\0';
		return old;
	}
	r->plen += (size_t)n;
	return old;
}

/* Append sep and n bytes of name (no formatting: the walk's hot path). */
size_t
v_path_add(struct vrun *r, const char *sep, const char *name, size_t n)
{
	size_t old = r->plen, sl = strlen(sep);

	if (r->plen + sl + n + 1 > sizeof(r->path)) {
		r->overflow = true;
		return old;
	}
	memcpy(r->path + r->plen, sep, sl);
	memcpy(r->path + r->plen + sl, name, n);
	r->plen += sl + n;
	r->path[r->plen] = '\0';
	return old;
}

/* Append "[i]". */
size_t
v_path_index(struct vrun *r, size_t i)
{
	char tmp[24];
	size_t n = sizeof(tmp), old = r->plen;

	tmp[--n] = ']';
	do {
		tmp[--n] = (char)('0' + i % 10);
		i /= 10;
	} while (i > 0 && n > 1);
	tmp[--n] = '[';
	if (r->plen + (sizeof(tmp) - n) + 1 > sizeof(r->path)) {
		r->overflow = true;
		return old;
	}
	memcpy(r->path + r->plen, tmp + n, sizeof(tmp) - n);
	r->plen += sizeof(tmp) - n;
	r->path[r->plen] = '\0';
	return old;
}

/* The dedupe key of a finding is the text code "|" path "|" message
 * (the message without its profile note). It is hashed and compared
 * piece by piece, never built: a Bundle's full run makes dozens of
 * findings, and building, hashing twice and copying that key into a
 * string map cost a tenth of the run. The hash reads the key as one
 * stream of little-endian 8-byte words, so that where the pieces are cut
 * does not change it (two keys that are equal as text hash alike). */
struct vkhash {
	uint64_t h, acc;
	unsigned n; /* bytes in acc */
	size_t len;
};

static void
vk_mix(struct vkhash *k, uint64_t w)
{
	k->h = (k->h ^ w) * 0x100000001b3ULL;
	k->h ^= k->h >> 29;
}

static void
vk_add(struct vkhash *k, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	k->len += len;
	for (; len > 0 && k->n != 0; len--) {
		k->acc |= (uint64_t)*p++ << (8 * k->n);
		if (++k->n == 8) {
			vk_mix(k, k->acc);
			k->acc = 0;
			k->n = 0;
		}
	}
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w = 0;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		memcpy(&w, p, 8); /* the little-endian word, loaded at once */
#else
		for (unsigned i = 0; i < 8; i++)
			w |= (uint64_t)p[i] << (8 * i);
#endif
		vk_mix(k, w);
	}
	for (; len > 0; len--)
		k->acc |= (uint64_t)*p++ << (8 * k->n++);
}

static uint32_t
vk_end(struct vkhash *k)
{
	vk_mix(k, k->acc);
	vk_mix(k, (uint64_t)k->len);
	return (uint32_t)(k->h ^ (k->h >> 32));
}

/* Whether the texts a[0] a[1] ... and b[0] b[1] ... (n pieces each) are
 * equal. */
static bool
vk_equal(const char *const *a, const size_t *alen, const char *const *b,
	 const size_t *blen, size_t n)
{
	size_t i = 0, j = 0, ai = 0, bj = 0;

	for (;;) {
		size_t m;

		while (i < n && ai == alen[i]) {
			i++;
			ai = 0;
		}
		while (j < n && bj == blen[j]) {
			j++;
			bj = 0;
		}
		if (i == n || j == n)
			return i == n && j == n;
		m = alen[i] - ai < blen[j] - bj ? alen[i] - ai : blen[j] - bj;
		if (memcmp(a[i] + ai, b[j] + bj, m) != 0)
			return false;
		ai += m;
		bj += m;
	}
}

/* Whether issue is has the key (code, path, msg). */
static bool
vk_same(const struct vissue *is, const char *code, const char *path,
	size_t plen, const char *msg, size_t mlen)
{
	const char *a[5] = {is->code, "|", is->expr, "|", is->msg};
	const size_t alen[5] = {strlen(is->code), 1, is->exprlen, 1,
				is->keylen};
	const char *b[5] = {code, "|", path, "|", msg};
	const size_t blen[5] = {strlen(code), 1, plen, 1, mlen};

	if (alen[0] + alen[2] + alen[4] != blen[0] + blen[2] + blen[4])
		return false;
	return vk_equal(a, alen, b, blen, 5);
}

/* Index + 1 of the kept issue with hash h and that key, or the free slot
 * of the dedupe table where it would go (*slot). */
static size_t
vk_find(const struct vrun *r, uint32_t h, const char *code, size_t plen,
	const char *msg, size_t mlen, size_t *slot)
{
	size_t mask = r->capdedup - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		uint32_t x = r->dedup[i];

		if (x == 0) {
			*slot = i;
			return 0;
		}
		if (r->issues[x - 1].hash == h &&
		    vk_same(&r->issues[x - 1], code, r->path, plen, msg, mlen))
			return x;
	}
}

/* Room for one more kept issue: the issue array and the dedupe table
 * (at most half full). */
static bool
vk_room(struct vrun *r)
{
	if (r->nissues == r->capissues) {
		size_t ncap = r->capissues == 0 ? 16 : r->capissues * 2;
		struct vissue *n = realloc(r->issues, ncap * sizeof(*n));

		if (n == NULL)
			return false;
		r->issues = n;
		r->capissues = ncap;
	}
	if ((r->nissues + 1) * 2 > r->capdedup) {
		size_t ncap = r->capdedup == 0 ? 64 : r->capdedup * 2;
		uint32_t *t = calloc(ncap, sizeof(*t));

		if (t == NULL)
			return false;
		for (size_t i = 0; i < r->nissues; i++) {
			size_t s = r->issues[i].hash & (ncap - 1);

			while (t[s] != 0)
				s = (s + 1) & (ncap - 1);
			t[s] = (uint32_t)(i + 1);
		}
		free(r->dedup);
		r->dedup = t;
		r->capdedup = ncap;
	}
	return true;
}

void
v_issue(struct vrun *r, const char *sev, const char *code,
	const struct fj_node *at, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (r->scratch) {
		if (strcmp(sev, FHIR_ERROR) == 0 ||
		    strcmp(sev, FHIR_FATAL) == 0) {
			r->nerrors++;
			r->halted = r->nomem = true;
		}
		return;
	}
	/* No message is formatted, deduplicated or kept for a finding the
	 * quiet run's caller throws away. */
	if (r->quiet && strcmp(sev, FHIR_ERROR) != 0 &&
	    strcmp(sev, FHIR_FATAL) != 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	/* the text up to its first NUL, as a C string */
	v_issue_text(r, sev, code, at, msg, strnlen(msg, sizeof(msg)));
}

/* Whether s[0..n) is ASCII only. */
static bool
ascii_only(const char *s, size_t n)
{
	unsigned char any = 0;

	for (size_t i = 0; i < n; i++)
		any |= (unsigned char)s[i];
	return any < 0x80;
}

void
v_issue_text(struct vrun *r, const char *sev, const char *code,
	     const struct fj_node *at, const char *msg, size_t mlen)
{
	struct vkhash k = {.h = 1469598103934665603ULL};
	struct vissue *is;
	char fixed[767];
	size_t slot = 0, note = 0, plen = strlen(r->path);
	const char *url = NULL;
	uint32_t h;
	bool is_err =
	    strcmp(sev, FHIR_ERROR) == 0 || strcmp(sev, FHIR_FATAL) == 0;

	if (r->scratch) {
		if (is_err) {
			r->nerrors++;
			r->halted = r->nomem = true;
		}
		return;
	}
	if (r->quiet && !is_err)
		return;
	/* a message is at most 767 bytes, as when it is formatted */
	if (mlen > 767)
		mlen = 767;
	if (!ascii_only(msg, mlen)) {
		memcpy(fixed, msg, mlen);
		if (fhir_utf8_repair(fixed, mlen))
			msg = fixed;
	}
	vk_add(&k, code, strlen(code));
	vk_add(&k, "|", 1);
	vk_add(&k, r->path, plen);
	vk_add(&k, "|", 1);
	vk_add(&k, msg, mlen);
	h = vk_end(&k);
	/* The same finding (code, expression, message) once. */
	if (r->capdedup > 0 && vk_find(r, h, code, plen, msg, mlen, &slot) != 0)
		return;
	if (is_err)
		r->nerrors++;
	if (r->nissues >= V_MAX_ISSUES)
		return;
	if (!vk_room(r))
		goto nomem;
	(void)vk_find(r, h, code, plen, msg, mlen, &slot);
	/* name the profile (not part of the dedupe key: a rule shared by a
	 * profile and its parent is one finding); the kept message is
	 * bounded as the formatted one was (767 bytes) */
	if (r->cur_sd != NULL && r->cur_sd->constraint &&
	    r->cur_sd->url != NULL) {
		url = r->cur_sd->url;
		note = strlen(" (profile )") + strlen(url);
		if (mlen + note > 767)
			note = 767 - mlen;
	}
	is = &r->issues[r->nissues];
	memset(is, 0, sizeof(*is));
	/* one block: the expression, then the message */
	if ((is->expr = malloc(plen + 1 + mlen + note + 1)) == NULL)
		goto nomem;
	memcpy(is->expr, r->path, plen);
	is->expr[plen] = '\0';
	is->msg = is->expr + plen + 1;
	memcpy(is->msg, msg, mlen);
	if (url != NULL) {
		char tail[768];

		snprintf(tail, sizeof(tail), " (profile %s)", url);
		memcpy(is->msg + mlen, tail, note);
		/* a cut in the url, as in the message */
		(void)fhir_utf8_repair(is->msg + mlen, note);
	}
	is->msg[mlen + note] = '\0';
	is->sev = sev;
	is->code = code;
	is->exprlen = (uint32_t)plen;
	is->keylen = (uint32_t)mlen;
	is->hash = h;
	if (at != NULL) {
		is->line = at->line;
		is->col = at->col;
	}
	r->dedup[slot] = (uint32_t)(++r->nissues);
	return;
nomem:
	r->nomem = true;
}

void
v_run_cleanup(struct vrun *r)
{
	for (size_t i = 0; i < r->nissues; i++) {
		free(r->issues[i].expr); /* the message is in its block */
	}
	free(r->issues);
	free(r->dedup);
	for (size_t i = 0; i < V_DESC_CACHE; i++)
		free(r->desc[i].text);
	free(r->guesses);
	hmap_free(&r->noteval, NULL);
}

/* ---- JSON value helpers ---- */

const char *
v_jtype_name(const struct fj_node *n)
{
	static const char *const names[] = {"null",   "boolean", "number",
					    "string", "array",	 "object"};

	return names[n->type];
}

/* Pattern semantics: inst holds at least what pat holds; for arrays each
 * pattern element is matched by some instance element. */
bool
v_fj_contains_v(const struct fj_node *inst, const struct fj_node *pat)
{
	const struct fj_node *x, *y;

	if (pat->type == FJ_ARRAY) {
		if (inst->type != FJ_ARRAY) {
			/* a one-element pattern array against one value */
			for (x = pat->u.kids.first; x != NULL; x = x->next)
				if (!v_fj_contains_v(inst, x))
					return false;
			return true;
		}
		for (x = pat->u.kids.first; x != NULL; x = x->next) {
			for (y = inst->u.kids.first; y != NULL; y = y->next)
				if (v_fj_contains_v(y, x))
					break;
			if (y == NULL)
				return false;
		}
		return true;
	}
	if (pat->type == FJ_OBJECT) {
		if (inst->type != FJ_OBJECT)
			return false;
		for (x = pat->u.kids.first; x != NULL; x = x->next) {
			y = fj_get(inst, x->key);
			if (y == NULL || !v_fj_contains_v(y, x))
				return false;
		}
		return true;
	}
	return fj_equal(inst, pat, FDEC_DOUBLE);
}

/* Short text of a value for messages (never patient data beyond codes). */
void
v_short_json(const struct fj_node *n, char *out, size_t len)
{
	struct buf b;

	buf_init(&b, 4096);
	if (fj_dump(n, FJ_CANONICAL, &b) == GW_OK && b.data != NULL) {
		if (b.len >= len && len > 4) {
			memcpy(out, b.data, len - 4);
			memcpy(out + len - 4, "...", 4);
		} else {
			snprintf(out, len, "%s", b.data);
		}
	} else {
		snprintf(out, len, "(value)");
	}
	buf_cleanup(&b);
}

const char *
v_sd_label(const struct rules_structure *sd)
{
	if (sd == NULL)
		return "?";
	return sd->url != NULL ? sd->url : sd->name != NULL ? sd->name : "?";
}

/* Capitalised type name after a choice prefix: "valueQuantity" ->
 * "Quantity" matches type "Quantity"; "valueString" matches "string". */
static bool
choice_type_matches(const char *suffix, const char *type)
{
	if (suffix[0] == '\0' || type[0] == '\0')
		return false;
	if (suffix[0] != type[0] &&
	    !(type[0] >= 'a' && type[0] <= 'z' && suffix[0] == type[0] - 32))
		return false;
	return strcmp(suffix + 1, type + 1) == 0;
}

/* The kid of a member name; for choices *type is set to the chosen type. */
const struct vnode *
v_find_kid(struct vnode *const *kids, size_t nkids, const char *name,
	   const char **type)
{
	*type = NULL;
	for (size_t i = 0; i < nkids; i++) {
		const struct vnode *k = kids[i];

		if (k->name[0] != name[0])
			continue;
		if (!k->choice) {
			if (strcmp(k->name, name) == 0)
				return k;
			continue;
		}
		if (strncmp(k->name, name, k->prefixlen) != 0)
			continue;
		for (size_t t = 0; t < k->el->ntypes; t++)
			if (choice_type_matches(name + k->prefixlen,
						k->el->types[t].code)) {
				*type = k->el->types[t].code;
				return k;
			}
	}
	return NULL;
}

/* For a choice element, the type slice constraining type (e.g.
 * value[x]:valueQuantity), or d itself. */
const struct vnode *
v_choice_slice(const struct vnode *d, const char *type)
{
	for (size_t i = 0; i < d->nslices; i++) {
		const struct vnode *s = d->slices[i];

		if (s->el->ntypes == 1 &&
		    strcmp(s->el->types[0].code, type) == 0)
			return s;
	}
	return d;
}

/*
 * Report a cardinality finding (minimum: is_max false) at the element's
 * own path (the current path: "Consent.status" for a missing status),
 * so the reader sees which element to add or remove; the line and column
 * are at's (the parent object when the element is missing). parent_len
 * is kept for the callers: the path is never cut to it any more (issue
 * 14: the HL7 validator's parent expression made the finding hard to
 * act on).
 */
void
v_issue_card(struct vrun *r, size_t parent_len, const struct fj_node *at,
	     const char *what, bool is_max, unsigned limit, size_t found)
{
	(void)parent_len;
	if (is_max)
		v_issue(r, FHIR_ERROR, "structure", at,
			"%s: max allowed = %u, but found %zu", what, limit,
			found);
	else
		v_issue(r, FHIR_ERROR, "required", at,
			"%s: minimum required = %u, but only found %zu", what,
			limit, found);
}

/* Entry index + 1 of key in m, 0 when absent. */
size_t
v_idx_get(const struct hmap *m, const char *key)
{
	bool found;
	void *v = hmap_get(m, key, &found);

	return found ? (size_t)(uintptr_t)v : 0;
}
