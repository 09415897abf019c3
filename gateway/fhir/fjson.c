/*
 * fjson: strict JSON parser and writer for FHIR documents, keeping number
 * text and positions, with an arena per document. Written here because
 * jansson re-renders numbers and records no positions (see fjson.h).
 */
#include <assert.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fjson.h"
#include "hmap.h"
#include "util.h"

/* Values parsed between two looks at the clock (fj_parse_until): a few
 * thousand take well under a millisecond. */
#define FJ_DEADLINE_EVERY 4096u

/* ---- arena ---- */

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	/* data follows, aligned for any node */
	max_align_t data[];
};

#define ARENA_CHUNK 65536
#define ARENA_CACHE 32 /* standard chunks kept for the next documents */

/* Freed standard chunks, shared by all threads (a document parsed on the
 * loop thread is often freed by a worker). Reusing them spares the page
 * faults of fresh memory, a third of the cost of parsing a 20 KB
 * message. */
static pthread_mutex_t arena_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct arena_chunk *arena_cache;
static unsigned arena_ncache;

static struct arena_chunk *
arena_chunk_new(size_t need)
{
	struct arena_chunk *c = NULL;

	if (need == ARENA_CHUNK) {
		pthread_mutex_lock(&arena_cache_mu);
		if ((c = arena_cache) != NULL) {
			arena_cache = c->next;
			arena_ncache--;
		}
		pthread_mutex_unlock(&arena_cache_mu);
	}
	return c != NULL ? c : malloc(sizeof(*c) + need);
}

static void
arena_chunk_free(struct arena_chunk *c)
{
	if (c->cap == ARENA_CHUNK) {
		pthread_mutex_lock(&arena_cache_mu);
		if (arena_ncache < ARENA_CACHE) {
			c->next = arena_cache;
			arena_cache = c;
			arena_ncache++;
			c = NULL;
		}
		pthread_mutex_unlock(&arena_cache_mu);
	}
	free(c);
}

static void *
arena_alloc(struct fj_doc *doc, size_t n)
{
	struct arena_chunk *c = doc->arena;
	size_t align = sizeof(max_align_t), need;
	void *p;

	n = (n + align - 1) & ~(align - 1);
	if (c == NULL || c->cap - c->used < n) {
		need = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = arena_chunk_new(need);
		if (c == NULL)
			return NULL;
		c->used = 0;
		c->cap = need;
		c->next = doc->arena;
		doc->arena = c;
	}
	p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

struct fj_doc *
fj_doc_new(void)
{
	return calloc(1, sizeof(struct fj_doc));
}

void
fj_doc_free(struct fj_doc *doc)
{
	struct arena_chunk *c, *next;

	if (doc == NULL)
		return;
	for (c = doc->arena; c != NULL; c = next) {
		next = c->next;
		arena_chunk_free(c);
	}
	free(doc);
}

static struct fj_node *
node_new(struct fj_doc *doc, enum fj_type type)
{
	struct fj_node *n = arena_alloc(doc, sizeof(*n));

	if (n != NULL) {
		memset(n, 0, sizeof(*n));
		n->type = type;
	}
	return n;
}

static char *
arena_strndup(struct fj_doc *doc, const char *s, size_t len)
{
	char *p = arena_alloc(doc, len + 1);

	if (p != NULL) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* ---- UTF-8 ---- */

/*
 * Decode one UTF-8 sequence at s (at most n bytes). Returns its length and
 * the code point, or 0 when it is not valid UTF-8 (overlong, surrogate,
 * beyond U+10FFFF, truncated).
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static size_t
utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* ---- parser ---- */

struct parser {
	const char *text;
	size_t len, pos;
	uint32_t line;
	size_t line_start;
	unsigned flags;
	struct fj_doc *doc;
	struct fj_error *err;
	enum gw_err code;
	char *scratch; /* decoded string staging */
	size_t scratch_cap;
	uint64_t deadline; /* util_mono_ms(); 0: none */
	unsigned ticks;	   /* values since the clock was last read */
};

static void
perr(struct parser *p, const char *msg)
{
	if (p->code != GW_OK)
		return;
	p->code = GW_PARSE;
	if (p->err != NULL) {
		p->err->line = p->line;
		p->err->col = (uint32_t)(p->pos - p->line_start + 1);
		p->err->offset = p->pos;
		snprintf(p->err->msg, sizeof(p->err->msg), "%s", msg);
	}
}

static void
pnomem(struct parser *p)
{
	if (p->code != GW_OK)
		return;
	p->code = GW_NOMEM;
	if (p->err != NULL)
		snprintf(p->err->msg, sizeof(p->err->msg), "out of memory");
}

static void
skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->text[p->pos];

		if (c == '\n') {
			p->line++;
			p->line_start = ++p->pos;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			p->pos++;
		} else {
			break;
		}
	}
}

static bool
scratch_reserve(struct parser *p, size_t need)
{
	char *s;
	size_t cap;

	if (need <= p->scratch_cap)
		return true;
	cap = p->scratch_cap ? p->scratch_cap : 256;
	while (cap < need)
		cap *= 2;
	if ((s = realloc(p->scratch, cap)) == NULL)
		return false;
	p->scratch = s;
	p->scratch_cap = cap;
	return true;
}

static bool
read_u4(struct parser *p, uint32_t *out)
{
	uint32_t v = 0;

	if (p->len - p->pos < 4) {
		perr(p, "truncated \\u escape");
		return false;
	}
	for (int i = 0; i < 4; i++) {
		int h = util_hexval(p->text[p->pos + (size_t)i]);

		if (h < 0) {
			perr(p, "invalid \\u escape");
			return false;
		}
		v = (v << 4) | (uint32_t)h;
	}
	p->pos += 4;
	*out = v;
	return true;
}

/*
 * Parse a string at p->pos (on the opening quote). On success returns an
 * arena copy of the decoded bytes and its length.
 */
static const char *
parse_string(struct parser *p, size_t *outlen)
{
	size_t start, used = 0;

	p->pos++; /* opening quote */
	start = p->pos;
	/* Fast path: no escapes, plain ASCII or valid UTF-8. */
	for (;;) {
		unsigned char c;

		if (p->pos >= p->len) {
			perr(p, "unterminated string");
			return NULL;
		}
		c = (unsigned char)p->text[p->pos];
		if (c == '"') {
			const char *s = arena_strndup(p->doc, p->text + start,
						      p->pos - start);

			if (s == NULL) {
				pnomem(p);
				return NULL;
			}
			*outlen = p->pos - start;
			p->pos++;
			return s;
		}
		if (c == '\\')
			break;
		if (c < 0x20) {
			perr(p, "control character in string");
			return NULL;
		}
		if (c < 0x80) {
			p->pos++;
		} else {
			uint32_t cp;
			size_t n =
			    utf8_decode((const unsigned char *)p->text + p->pos,
					p->len - p->pos, &cp);

			if (n == 0) {
				perr(p, "invalid UTF-8");
				return NULL;
			}
			p->pos += n;
		}
	}
	/* Slow path: decode escapes into the scratch buffer. */
	used = p->pos - start;
	if (!scratch_reserve(p, used + 64)) {
		pnomem(p);
		return NULL;
	}
	memcpy(p->scratch, p->text + start, used);
	for (;;) {
		unsigned char c;

		if (p->pos >= p->len) {
			perr(p, "unterminated string");
			return NULL;
		}
		if (!scratch_reserve(p, used + 8)) {
			pnomem(p);
			return NULL;
		}
		c = (unsigned char)p->text[p->pos];
		if (c == '"') {
			const char *s = arena_strndup(p->doc, p->scratch, used);

			if (s == NULL) {
				pnomem(p);
				return NULL;
			}
			*outlen = used;
			p->pos++;
			return s;
		}
		if (c < 0x20) {
			perr(p, "control character in string");
			return NULL;
		}
		if (c != '\\') {
			uint32_t cp;
			size_t n =
			    utf8_decode((const unsigned char *)p->text + p->pos,
					p->len - p->pos, &cp);

			if (n == 0) {
				perr(p, "invalid UTF-8");
				return NULL;
			}
			memcpy(p->scratch + used, p->text + p->pos, n);
			used += n;
			p->pos += n;
			continue;
		}
		if (++p->pos >= p->len) {
			perr(p, "unterminated escape");
			return NULL;
		}
		c = (unsigned char)p->text[p->pos++];
		switch (c) {
		case '"':
		case '\\':
		case '/':
			p->scratch[used++] = (char)c;
			break;
		case 'b':
			p->scratch[used++] = '\b';
			break;
		case 'f':
			p->scratch[used++] = '\f';
			break;
		case 'n':
			p->scratch[used++] = '\n';
			break;
		case 'r':
			p->scratch[used++] = '\r';
			break;
		case 't':
			p->scratch[used++] = '\t';
			break;
		case 'u': {
			uint32_t cp, lo;

			if (!read_u4(p, &cp))
				return NULL;
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				perr(p, "lone low surrogate in \\u escape");
				return NULL;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (p->len - p->pos < 6 ||
				    p->text[p->pos] != '\\' ||
				    p->text[p->pos + 1] != 'u') {
					perr(p, "lone high surrogate in \\u "
						"escape");
					return NULL;
				}
				p->pos += 2;
				if (!read_u4(p, &lo))
					return NULL;
				if (lo < 0xdc00 || lo > 0xdfff) {
					perr(p, "invalid surrogate pair");
					return NULL;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			}
			used += utf8_encode(cp, p->scratch + used);
			break;
		}
		default:
			p->pos--;
			perr(p, "invalid escape");
			return NULL;
		}
	}
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Length of a JSON number at s (n bytes), 0 when there is none. */
static size_t
number_len(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n || !is_digit(s[i]))
		return 0;
	if (s[i] == '0')
		i++;
	else
		while (i < n && is_digit(s[i]))
			i++;
	if (i < n && s[i] == '.') {
		i++;
		if (i >= n || !is_digit(s[i]))
			return 0;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !is_digit(s[i]))
			return 0;
		while (i < n && is_digit(s[i]))
			i++;
	}
	return i;
}

static struct fj_node *parse_value(struct parser *p, int depth);

/*
 * The member names of one object being parsed, for the duplicate check.
 * Small objects (most of FHIR) are scanned; from KEYSET_MIN members on,
 * the names go into a hash map (hmap) so that an object with
 * many members is checked in linear time, not quadratic.
 */
#define KEYSET_MIN 16

/* True when obj already has a member named key; otherwise, once the set is
 * built, key is added to it (the parser stores that same key in the
 * member). *nomem on failure. */
static bool
key_seen(struct hmap *ks, const struct fj_node *obj, const char *key,
	 size_t keylen, bool *nomem)
{
	struct hmap_slot *slot;
	enum gw_err err;

	*nomem = false;
	if (ks->cap == 0 && obj->u.kids.count < KEYSET_MIN) {
		for (const struct fj_node *m = obj->u.kids.first; m != NULL;
		     m = m->next)
			if (m->keylen == keylen &&
			    memcmp(m->key, key, keylen) == 0)
				return true;
		return false;
	}
	if (ks->cap == 0) {
		for (const struct fj_node *m = obj->u.kids.first; m != NULL;
		     m = m->next)
			if (hmap_insert(ks, m->key, m->keylen, &slot) ==
			    GW_NOMEM) {
				*nomem = true;
				return false;
			}
	}
	err = hmap_insert(ks, key, keylen, &slot);
	*nomem = err == GW_NOMEM;
	return err == GW_EXISTS;
}

static void
kid_append(struct fj_node *parent, struct fj_node *kid)
{
	if (parent->u.kids.last != NULL)
		parent->u.kids.last->next = kid;
	else
		parent->u.kids.first = kid;
	parent->u.kids.last = kid;
	parent->u.kids.count++;
}

static struct fj_node *
parse_object(struct parser *p, struct fj_node *obj, int depth)
{
	struct hmap ks = HMAP_INIT(HMAP_STR);
	struct fj_node *ret = NULL;
	bool check = !(p->flags & FJ_ALLOW_DUPLICATES);

	p->pos++; /* { */
	skip_ws(p);
	if (p->pos < p->len && p->text[p->pos] == '}') {
		p->pos++;
		return obj;
	}
	for (;;) {
		const char *key;
		size_t keylen, keypos;
		uint32_t keyline;
		struct fj_node *val;
		bool nomem = false;

		skip_ws(p);
		if (p->pos >= p->len || p->text[p->pos] != '"') {
			perr(p, "expected a member name in quotes");
			goto done;
		}
		keypos = p->pos;
		keyline = p->line;
		if ((key = parse_string(p, &keylen)) == NULL)
			goto done;
		if (check && key_seen(&ks, obj, key, keylen, &nomem)) {
			p->pos = keypos;
			p->line = keyline;
			perr(p, "duplicate member name");
			goto done;
		}
		if (check && nomem) {
			pnomem(p);
			goto done;
		}
		skip_ws(p);
		if (p->pos >= p->len || p->text[p->pos] != ':') {
			perr(p, "expected ':' after member name");
			goto done;
		}
		p->pos++;
		skip_ws(p);
		if ((val = parse_value(p, depth + 1)) == NULL)
			goto done;
		val->key = key;
		val->keylen = keylen;
		kid_append(obj, val);
		skip_ws(p);
		if (p->pos < p->len && p->text[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->text[p->pos] == '}') {
			p->pos++;
			ret = obj;
			goto done;
		}
		perr(p, "expected ',' or '}' in object");
		goto done;
	}
done:
	hmap_free(&ks, NULL);
	return ret;
}

static struct fj_node *
parse_array(struct parser *p, struct fj_node *arr, int depth)
{
	p->pos++; /* [ */
	skip_ws(p);
	if (p->pos < p->len && p->text[p->pos] == ']') {
		p->pos++;
		return arr;
	}
	for (;;) {
		struct fj_node *val;

		skip_ws(p);
		if ((val = parse_value(p, depth + 1)) == NULL)
			return NULL;
		kid_append(arr, val);
		skip_ws(p);
		if (p->pos < p->len && p->text[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->text[p->pos] == ']') {
			p->pos++;
			return arr;
		}
		perr(p, "expected ',' or ']' in array");
		return NULL;
	}
}

static bool
match_word(struct parser *p, const char *w)
{
	size_t n = strlen(w);

	if (p->len - p->pos >= n && memcmp(p->text + p->pos, w, n) == 0) {
		p->pos += n;
		return true;
	}
	return false;
}

static struct fj_node *
parse_value(struct parser *p, int depth)
{
	struct fj_node *n;
	uint32_t line = p->line, col;
	char c;

	if (depth > FJ_MAX_DEPTH) {
		perr(p, "nesting too deep");
		return NULL;
	}
	if (p->deadline != 0 && ++p->ticks >= FJ_DEADLINE_EVERY) {
		p->ticks = 0;
		if (util_mono_ms() >= p->deadline) {
			if (p->code == GW_OK)
				p->code = GW_TEMP;
			return NULL;
		}
	}
	if (p->pos >= p->len) {
		perr(p, "unexpected end of input");
		return NULL;
	}
	col = (uint32_t)(p->pos - p->line_start + 1);
	c = p->text[p->pos];
	switch (c) {
	case '{':
		n = node_new(p->doc, FJ_OBJECT);
		break;
	case '[':
		n = node_new(p->doc, FJ_ARRAY);
		break;
	case '"':
		n = node_new(p->doc, FJ_STRING);
		break;
	case 't':
	case 'f':
		n = node_new(p->doc, FJ_BOOL);
		break;
	case 'n':
		n = node_new(p->doc, FJ_NULL);
		break;
	default:
		if (c == '-' || is_digit(c)) {
			n = node_new(p->doc, FJ_NUMBER);
			break;
		}
		perr(p, "unexpected character");
		return NULL;
	}
	if (n == NULL) {
		pnomem(p);
		return NULL;
	}
	n->line = line;
	n->col = col;
	switch (n->type) {
	case FJ_OBJECT:
		return parse_object(p, n, depth);
	case FJ_ARRAY:
		return parse_array(p, n, depth);
	case FJ_STRING:
		n->u.str.s = parse_string(p, &n->u.str.len);
		return n->u.str.s ? n : NULL;
	case FJ_BOOL:
		if (match_word(p, "true"))
			n->u.b = true;
		else if (match_word(p, "false"))
			n->u.b = false;
		else {
			perr(p, "invalid literal");
			return NULL;
		}
		return n;
	case FJ_NULL:
		if (!match_word(p, "null")) {
			perr(p, "invalid literal");
			return NULL;
		}
		return n;
	case FJ_NUMBER: {
		size_t len = number_len(p->text + p->pos, p->len - p->pos);

		if (len == 0) {
			perr(p, "invalid number");
			return NULL;
		}
		/* A number must end at a delimiter (rejects "01", "1x"). */
		if (p->pos + len < p->len) {
			char d = p->text[p->pos + len];

			if (d != ',' && d != '}' && d != ']' && d != ' ' &&
			    d != '\t' && d != '\r' && d != '\n') {
				perr(p, "invalid number");
				return NULL;
			}
		}
		n->u.str.s = arena_strndup(p->doc, p->text + p->pos, len);
		if (n->u.str.s == NULL) {
			pnomem(p);
			return NULL;
		}
		n->u.str.len = len;
		p->pos += len;
		return n;
	}
	}
	return NULL;
}

enum gw_err
fj_parse(const char *text, size_t len, unsigned flags, struct fj_doc **out,
	 struct fj_error *err)
{
	return fj_parse_until(text, len, flags, 0, out, err);
}

enum gw_err
fj_parse_until(const char *text, size_t len, unsigned flags,
	       uint64_t deadline_ms, struct fj_doc **out, struct fj_error *err)
{
	struct parser p = {.text = text,
			   .len = len,
			   .line = 1,
			   .flags = flags,
			   .err = err,
			   .deadline = deadline_ms};
	struct fj_node *root;

	*out = NULL;
	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if ((p.doc = fj_doc_new()) == NULL)
		return GW_NOMEM;
	/* A UTF-8 byte order mark is not JSON (RFC 8259 section 8.1). */
	skip_ws(&p);
	root = parse_value(&p, 0);
	if (root != NULL) {
		skip_ws(&p);
		if (p.pos != p.len)
			perr(&p, "unexpected data after the JSON value");
	}
	free(p.scratch);
	if (p.code != GW_OK) {
		fj_doc_free(p.doc);
		return p.code;
	}
	p.doc->root = root;
	*out = p.doc;
	return GW_OK;
}

/* ---- access ---- */

struct fj_node *
fj_get(const struct fj_node *obj, const char *key)
{
	size_t len;

	if (obj == NULL || obj->type != FJ_OBJECT)
		return NULL;
	len = strlen(key);
	for (struct fj_node *m = obj->u.kids.first; m != NULL; m = m->next)
		if (m->keylen == len && memcmp(m->key, key, len) == 0)
			return m;
	return NULL;
}

const char *
fj_get_str(const struct fj_node *obj, const char *key)
{
	const struct fj_node *n = fj_get(obj, key);

	return n != NULL && n->type == FJ_STRING ? n->u.str.s : NULL;
}

struct fj_node *
fj_at(const struct fj_node *arr, size_t i)
{
	struct fj_node *n;

	if (arr == NULL || arr->type != FJ_ARRAY)
		return NULL;
	for (n = arr->u.kids.first; n != NULL && i > 0; n = n->next)
		i--;
	return n;
}

bool
fj_str_eq(const struct fj_node *n, const char *s)
{
	size_t len;

	if (n == NULL || n->type != FJ_STRING)
		return false;
	len = strlen(s);
	return n->u.str.len == len && memcmp(n->u.str.s, s, len) == 0;
}

/* Member of obj named by s (n bytes, may hold NUL), or NULL. */
static const struct fj_node *
member_n(const struct fj_node *obj, const char *s, size_t n)
{
	const struct fj_node *m;

	for (m = obj->u.kids.first; m; m = m->next)
		if (m->keylen == n && memcmp(m->key, s, n) == 0)
			return m;
	return NULL;
}

static bool
number_equal(const struct fj_node *a, const struct fj_node *b,
	     enum fdec_mode mode)
{
	bool same_text = a->u.str.len == b->u.str.len &&
			 memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
	int r;

	if (mode == FDEC_DOUBLE && same_text)
		return true;
	if (fdec_cmp_text(a->u.str.s, a->u.str.len, b->u.str.s, b->u.str.len,
			  mode, &r))
		return r == 0;
	return same_text;
}

bool
fj_equal(const struct fj_node *a, const struct fj_node *b, enum fdec_mode mode)
{
	const struct fj_node *m, *o;

	if (a->type != b->type)
		return false;
	switch (a->type) {
	case FJ_NULL:
		return true;
	case FJ_BOOL:
		return a->u.b == b->u.b;
	case FJ_NUMBER:
		return number_equal(a, b, mode);
	case FJ_STRING:
		return a->u.str.len == b->u.str.len &&
		       memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
	case FJ_ARRAY:
		if (a->u.kids.count != b->u.kids.count)
			return false;
		for (m = a->u.kids.first, o = b->u.kids.first; m && o;
		     m = m->next, o = o->next)
			if (!fj_equal(m, o, mode))
				return false;
		return true;
	case FJ_OBJECT:
		if (a->u.kids.count != b->u.kids.count)
			return false;
		for (m = a->u.kids.first; m; m = m->next) {
			o = member_n(b, m->key, m->keylen);
			if (!o || !fj_equal(m, o, mode))
				return false;
		}
		return true;
	}
	return false;
}

/* ---- building ---- */

struct fj_node *
fj_new_null(struct fj_doc *doc)
{
	return node_new(doc, FJ_NULL);
}

struct fj_node *
fj_new_bool(struct fj_doc *doc, bool b)
{
	struct fj_node *n = node_new(doc, FJ_BOOL);

	if (n != NULL)
		n->u.b = b;
	return n;
}

struct fj_node *
fj_new_number(struct fj_doc *doc, const char *text)
{
	size_t len = strlen(text);
	struct fj_node *n;

	if (len == 0 || number_len(text, len) != len)
		return NULL;
	if ((n = node_new(doc, FJ_NUMBER)) == NULL)
		return NULL;
	if ((n->u.str.s = arena_strndup(doc, text, len)) == NULL)
		return NULL;
	n->u.str.len = len;
	return n;
}

struct fj_node *
fj_new_stringn(struct fj_doc *doc, const char *s, size_t len)
{
	struct fj_node *n = node_new(doc, FJ_STRING);

	if (n == NULL)
		return NULL;
	if ((n->u.str.s = arena_strndup(doc, s, len)) == NULL)
		return NULL;
	n->u.str.len = len;
	return n;
}

struct fj_node *
fj_new_string(struct fj_doc *doc, const char *s)
{
	return fj_new_stringn(doc, s, strlen(s));
}

struct fj_node *
fj_new_object(struct fj_doc *doc)
{
	return node_new(doc, FJ_OBJECT);
}

struct fj_node *
fj_new_array(struct fj_doc *doc)
{
	return node_new(doc, FJ_ARRAY);
}

/*
 * The copy of fj_copy and fj_copy_shared: with share, the keys and the
 * string and number texts stay those of n's document (they are never
 * written through a node, so two documents may point at them).
 */
static struct fj_node *
copy_node(struct fj_doc *doc, const struct fj_node *n, bool share)
{
	struct fj_node *c = node_new(doc, n->type);

	if (c == NULL)
		return NULL;
	c->line = n->line;
	c->col = n->col;
	switch (n->type) {
	case FJ_NULL:
		break;
	case FJ_BOOL:
		c->u.b = n->u.b;
		break;
	case FJ_NUMBER:
	case FJ_STRING:
		c->u.str.s = share
				 ? n->u.str.s
				 : arena_strndup(doc, n->u.str.s, n->u.str.len);
		if (c->u.str.s == NULL)
			return NULL;
		c->u.str.len = n->u.str.len;
		break;
	case FJ_ARRAY:
	case FJ_OBJECT:
		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next) {
			struct fj_node *kc = copy_node(doc, k, share);

			if (kc == NULL)
				return NULL;
			if (k->key != NULL) {
				kc->key = share ? k->key
						: arena_strndup(doc, k->key,
								k->keylen);
				if (kc->key == NULL)
					return NULL;
				kc->keylen = k->keylen;
			}
			kid_append(c, kc);
		}
		break;
	}
	return c;
}

struct fj_node *
fj_copy(struct fj_doc *doc, const struct fj_node *n)
{
	return copy_node(doc, n, false);
}

struct fj_node *
fj_copy_shared(struct fj_doc *doc, const struct fj_node *n)
{
	return copy_node(doc, n, true);
}

enum gw_err
fj_set(struct fj_doc *doc, struct fj_node *obj, const char *key,
       struct fj_node *val)
{
	struct fj_node *m, *prev = NULL;
	size_t len = strlen(key);

	if (obj == NULL || obj->type != FJ_OBJECT || val == NULL)
		return GW_INVALID;
	if ((val->key = arena_strndup(doc, key, len)) == NULL)
		return GW_NOMEM;
	val->keylen = len;
	for (m = obj->u.kids.first; m != NULL; prev = m, m = m->next) {
		if (m->keylen == len && memcmp(m->key, key, len) == 0) {
			val->next = m->next;
			if (prev != NULL)
				prev->next = val;
			else
				obj->u.kids.first = val;
			if (obj->u.kids.last == m)
				obj->u.kids.last = val;
			return GW_OK;
		}
	}
	val->next = NULL;
	kid_append(obj, val);
	return GW_OK;
}

bool
fj_remove(struct fj_node *obj, const char *key)
{
	struct fj_node *m, *prev = NULL;
	size_t len = strlen(key);

	if (obj == NULL || obj->type != FJ_OBJECT)
		return false;
	for (m = obj->u.kids.first; m != NULL; prev = m, m = m->next) {
		if (m->keylen == len && memcmp(m->key, key, len) == 0) {
			if (prev != NULL)
				prev->next = m->next;
			else
				obj->u.kids.first = m->next;
			if (obj->u.kids.last == m)
				obj->u.kids.last = prev;
			obj->u.kids.count--;
			m->next = NULL;
			return true;
		}
	}
	return false;
}

void
fj_append(struct fj_node *arr, struct fj_node *val)
{
	assert(arr->type == FJ_ARRAY);
	val->next = NULL;
	val->key = NULL;
	val->keylen = 0;
	kid_append(arr, val);
}

/* ---- output ---- */

/* Bytes a JSON string must escape: controls, quote, backslash. */
static const unsigned char json_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1,
};

/*
 * A string with the minimal escaping RFC 8785 section 3.2.2.2 prescribes:
 * UTF-8 as is, only '"', '\' and controls escaped, the short forms where
 * JSON has them, else \u00xx.
 */
static enum gw_err
dump_string(const char *s, size_t len, struct buf *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run;
	enum gw_err err;
	char esc[6] = {'\\'};

	if ((err = buf_addc(out, '"')) != GW_OK)
		return err;
	while (i < len) {
		size_t elen = 2;
		unsigned char c;

		for (run = i; i < len && !json_escape[(unsigned char)s[i]];)
			i++;
		if ((err = buf_add(out, s + run, i - run)) != GW_OK)
			return err;
		if (i == len)
			break;
		c = (unsigned char)s[i++];
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
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
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			elen = 6;
			break;
		}
		if ((err = buf_add(out, esc, elen)) != GW_OK)
			return err;
	}
	return buf_addc(out, '"');
}

/*
 * Order of two member names by UTF-16 code units (RFC 8785 3.2.3). UTF-8
 * byte order is code point order, which differs from UTF-16 order only
 * between a supplementary character (a surrogate pair, D800-DBFF first)
 * and one in U+E000-U+FFFF; so compare bytes and correct that one case
 * at the first difference. A name that is a prefix of another sorts
 * first.
 */
int
fj_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	const unsigned char *sa = (const unsigned char *)a;
	const unsigned char *sb = (const unsigned char *)b;
	size_t n = alen < blen ? alen : blen, i = 0;
	unsigned la, lb;

	while (i < n && sa[i] == sb[i])
		i++;
	if (i == n)
		return alen < blen ? -1 : alen > blen;
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
member_cmp(const void *x, const void *y)
{
	const struct fj_node *a = *(const struct fj_node *const *)x;
	const struct fj_node *b = *(const struct fj_node *const *)y;

	return fj_key_cmp(a->key, a->keylen, b->key, b->keylen);
}

/* Sort members by name: insertion sort for the small, often nearly
 * sorted objects of FHIR, qsort for large ones. */
static void
sort_members(const struct fj_node **m, size_t n)
{
	if (n > 64) {
		qsort(m, n, sizeof(const struct fj_node *), member_cmp);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		const struct fj_node *x = m[i];
		size_t j = i;

		while (j > 0 && fj_key_cmp(m[j - 1]->key, m[j - 1]->keylen,
					   x->key, x->keylen) > 0) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = x;
	}
}

/* True when member m's name is one of skip (NULL-terminated). */
static bool
skipped(const struct fj_node *m, const char *const *skip)
{
	for (; skip != NULL && *skip != NULL; skip++)
		if (m->keylen == strlen(*skip) &&
		    memcmp(m->key, *skip, m->keylen) == 0)
			return true;
	return false;
}

static enum gw_err dump_node(const struct fj_node *n, unsigned flags,
			     int indent, const char *const *skip,
			     struct buf *out);

static enum gw_err
dump_newline(unsigned flags, int indent, struct buf *out)
{
	enum gw_err err;

	if (!(flags & FJ_PRETTY))
		return GW_OK;
	if ((err = buf_addc(out, '\n')) != GW_OK)
		return err;
	for (int i = 0; i < indent; i++)
		if ((err = buf_add(out, "  ", 2)) != GW_OK)
			return err;
	return GW_OK;
}

static enum gw_err
dump_members(const struct fj_node *n, unsigned flags, int indent,
	     const char *const *skip, struct buf *out)
{
	const struct fj_node *stack[32];
	const struct fj_node **members = stack;
	size_t count = 0, i;
	enum gw_err err = GW_OK;

	if (n->u.kids.count > sizeof(stack) / sizeof(stack[0]) &&
	    (members = malloc(n->u.kids.count *
			      sizeof(const struct fj_node *))) == NULL)
		return GW_NOMEM;
	for (const struct fj_node *m = n->u.kids.first; m != NULL; m = m->next)
		if (!skipped(m, skip))
			members[count++] = m;
	if (flags & FJ_CANONICAL)
		sort_members(members, count);
	for (i = 0; i < count && err == GW_OK; i++) {
		if (i > 0)
			err = buf_addc(out, ',');
		if (err == GW_OK)
			err = dump_newline(flags, indent + 1, out);
		if (err == GW_OK)
			err = dump_string(members[i]->key, members[i]->keylen,
					  out);
		if (err == GW_OK)
			err = buf_add(out, (flags & FJ_PRETTY) ? ": " : ":",
				      (flags & FJ_PRETTY) ? 2 : 1);
		if (err == GW_OK)
			err =
			    dump_node(members[i], flags, indent + 1, NULL, out);
	}
	if (members != stack)
		free(members);
	return err;
}

static enum gw_err
dump_node(const struct fj_node *n, unsigned flags, int indent,
	  const char *const *skip, struct buf *out)
{
	enum gw_err err = GW_OK;

	switch (n->type) {
	case FJ_NULL:
		return buf_add(out, "null", 4);
	case FJ_BOOL:
		return n->u.b ? buf_add(out, "true", 4)
			      : buf_add(out, "false", 5);
	case FJ_NUMBER:
		return buf_add(out, n->u.str.s, n->u.str.len);
	case FJ_STRING:
		return dump_string(n->u.str.s, n->u.str.len, out);
	case FJ_ARRAY:
		if ((err = buf_addc(out, '[')) != GW_OK)
			return err;
		for (const struct fj_node *k = n->u.kids.first;
		     k != NULL && err == GW_OK; k = k->next) {
			if (k != n->u.kids.first)
				err = buf_addc(out, ',');
			if (err == GW_OK)
				err = dump_newline(flags, indent + 1, out);
			if (err == GW_OK)
				err =
				    dump_node(k, flags, indent + 1, NULL, out);
		}
		break;
	case FJ_OBJECT:
		if ((err = buf_addc(out, '{')) != GW_OK)
			return err;
		err = dump_members(n, flags, indent, skip, out);
		break;
	}
	if (err == GW_OK && n->u.kids.count > 0)
		err = dump_newline(flags, indent, out);
	if (err == GW_OK)
		err = buf_addc(out, n->type == FJ_ARRAY ? ']' : '}');
	return err;
}

enum gw_err
fj_dump_except(const struct fj_node *n, unsigned flags, const char *const *skip,
	       struct buf *out)
{
	size_t before = out->len;
	enum gw_err err = dump_node(n, flags, 0, skip, out);

	if (err == GW_OK && (flags & FJ_PRETTY))
		err = buf_addc(out, '\n');
	if (err != GW_OK && out->data != NULL) {
		/* All or nothing: drop what was written. */
		out->len = before;
		out->data[before] = '\0';
	}
	return err;
}

enum gw_err
fj_dump(const struct fj_node *n, unsigned flags, struct buf *out)
{
	return fj_dump_except(n, flags, NULL, out);
}

/* ---- jansson interop ---- */

json_t *
fj_to_jansson(const struct fj_node *n)
{
	json_t *j = NULL;

	switch (n->type) {
	case FJ_NULL:
		return json_null();
	case FJ_BOOL:
		return json_boolean(n->u.b);
	case FJ_STRING:
		return json_stringn(n->u.str.s, n->u.str.len);
	case FJ_NUMBER: {
		const char *s = n->u.str.s;
		char *end;

		if (strpbrk(s, ".eE") == NULL) {
			long long v = strtoll(s, &end, 10);

			if (*end == '\0')
				return json_integer(v);
		}
		return json_real(strtod(s, &end));
	}
	case FJ_ARRAY:
		if ((j = json_array()) == NULL)
			return NULL;
		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next)
			/* json_array_append_new steals the new value. */
			if (json_array_append_new(j, fj_to_jansson(k)) != 0)
				goto fail;
		return j;
	case FJ_OBJECT:
		if ((j = json_object()) == NULL)
			return NULL;
		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next)
			/* json_object_setn_new steals the new value. */
			if (json_object_setn_new(j, k->key, k->keylen,
						 fj_to_jansson(k)) != 0)
				goto fail;
		return j;
	}
fail:
	json_decref(j);
	return NULL;
}

struct fj_node *
fj_from_jansson(struct fj_doc *doc, const json_t *j)
{
	struct fj_node *n = NULL;
	char num[64];

	switch (json_typeof(j)) {
	case JSON_NULL:
		return fj_new_null(doc);
	case JSON_TRUE:
		return fj_new_bool(doc, true);
	case JSON_FALSE:
		return fj_new_bool(doc, false);
	case JSON_STRING:
		return fj_new_stringn(doc, json_string_value(j),
				      json_string_length(j));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(j));
		return fj_new_number(doc, num);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(j));
		return fj_new_number(doc, num);
	case JSON_ARRAY: {
		size_t i;
		const json_t *v;

		if ((n = fj_new_array(doc)) == NULL)
			return NULL;
		json_array_foreach(j, i, v)
		{
			struct fj_node *k = fj_from_jansson(doc, v);

			if (k == NULL)
				return NULL;
			fj_append(n, k);
		}
		return n;
	}
	case JSON_OBJECT: {
		const char *key;
		const json_t *v;

		if ((n = fj_new_object(doc)) == NULL)
			return NULL;
		json_object_foreach((json_t *)j, key, v)
		{
			struct fj_node *k = fj_from_jansson(doc, v);

			if (k == NULL || fj_set(doc, n, key, k) != GW_OK)
				return NULL;
		}
		return n;
	}
	}
	return NULL;
}
