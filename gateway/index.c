/*
 * The received-data index of one message for one local receiver: business
 * keys, keyed-hash logical ids, references rewritten to them (index.h).
 * Runs in an intake worker; the store commits the result with the accept.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "buf.h"
#include "hmap.h"
#include "index.h"
#include "sign.h"
#include "util.h"

/* Largest serialised resource (the message itself is bounded by
 * [limits] max_body, far below). */
#define INDEX_JSON_MAX ((size_t)1 << 30)

struct index_set {
	struct store_index idx;
	struct store_index_entry *entries;
	char receiver[STORE_URA_MAX + 1];
	char bsn[STORE_BSN_MAX + 1];
	char sender[STORE_URA_MAX + 1];
	/* Per entry: type, id, key, json (owned). */
	char **strs;
	size_t nstrs;
};

/* One entry of the message while the index is built. */
struct ix_ent {
	const struct fj_node *res;
	const char *type; /* borrowed from the bundle */
	char *key;	  /* owned until moved into the set */
	char id[INDEX_ID_LEN + 1];
};

/*
 * HMAC-SHA256 under one secret, keyed once: the SHA-256 states after the
 * inner and outer pads (RFC 2104), copied for each id. HMAC() keys and
 * looks its algorithm up on every call, which cost about 1.5 us of the
 * 2 per id (20 resources a message, two ids each).
 */
struct ix_mac {
	EVP_MD_CTX *in, *out, *tmp;
};

static void
mac_cleanup(struct ix_mac *m)
{
	EVP_MD_CTX_free(m->in);
	EVP_MD_CTX_free(m->out);
	EVP_MD_CTX_free(m->tmp);
	m->in = m->out = m->tmp = NULL;
}

/* Key m with secret (INDEX_SECRET_LEN bytes, shorter than SHA-256's
 * block); false without memory. */
static bool
mac_init(struct ix_mac *m, const unsigned char *secret)
{
	unsigned char ipad[64], opad[64];
	bool ok;

	_Static_assert(INDEX_SECRET_LEN <= sizeof(ipad), "key fits a block");
	memset(ipad, 0x36, sizeof(ipad));
	memset(opad, 0x5c, sizeof(opad));
	for (size_t i = 0; i < INDEX_SECRET_LEN; i++) {
		ipad[i] ^= secret[i];
		opad[i] ^= secret[i];
	}
	m->in = EVP_MD_CTX_new();
	m->out = EVP_MD_CTX_new();
	m->tmp = EVP_MD_CTX_new();
	ok = m->in != NULL && m->out != NULL && m->tmp != NULL &&
	     EVP_DigestInit_ex(m->in, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(m->in, ipad, sizeof(ipad)) == 1 &&
	     EVP_DigestInit_ex(m->out, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(m->out, opad, sizeof(opad)) == 1;
	OPENSSL_cleanse(ipad, sizeof(ipad));
	OPENSSL_cleanse(opad, sizeof(opad));
	if (!ok)
		mac_cleanup(m);
	return ok;
}

/* Hex of the first nhex / 2 bytes of HMAC-SHA256 under m's secret over
 * the n parts, each ended by a NUL (no two lists of parts give one
 * input); "" when it cannot be computed. */
static void
keyed_hex(struct ix_mac *m, const char *const *parts, size_t n, size_t nhex,
	  char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	out[0] = '\0';
	if (EVP_MD_CTX_copy_ex(m->tmp, m->in) != 1)
		return;
	for (size_t i = 0; i < n; i++)
		if (EVP_DigestUpdate(m->tmp, parts[i], strlen(parts[i]) + 1) !=
		    1)
			return;
	if (EVP_DigestFinal_ex(m->tmp, md, &mdlen) != 1 ||
	    EVP_MD_CTX_copy_ex(m->tmp, m->out) != 1 ||
	    EVP_DigestUpdate(m->tmp, md, mdlen) != 1 ||
	    EVP_DigestFinal_ex(m->tmp, md, &mdlen) != 1 || mdlen < nhex / 2)
		return;
	util_hex(md, nhex / 2, out);
}

/* The two halves of a logical id (INDEX_ID_LEN / 2 hex characters and a
 * NUL each). The first names the patient, the second the resource: the
 * ids of one patient's resources sort together, so the store's (receiver,
 * id) index takes a message's resources in one or two pages instead of
 * one random page each. */
static void
id_patient_half(struct ix_mac *m, const char *receiver, const char *bsn,
		char *out)
{
	const char *parts[] = {"patient", receiver, bsn};

	keyed_hex(m, parts, UTIL_ARRAY_LEN(parts), INDEX_ID_LEN / 2, out);
}

static void
id_resource_half(struct ix_mac *m, const char *receiver, const char *bsn,
		 const char *type, const char *key, char *out)
{
	const char *parts[] = {"resource", receiver, bsn, type, key};

	keyed_hex(m, parts, UTIL_ARRAY_LEN(parts), INDEX_ID_LEN / 2, out);
}

void
index_logical_id(const unsigned char *secret, const char *receiver,
		 const char *bsn, const char *type, const char *key, char *out)
{
	const size_t half = INDEX_ID_LEN / 2;
	struct ix_mac m;

	out[0] = '\0';
	if (!mac_init(&m, secret))
		return;
	id_patient_half(&m, receiver, bsn, out);
	if (out[0] != '\0') {
		id_resource_half(&m, receiver, bsn, type, key, out + half);
		if (out[half] == '\0')
			out[0] = '\0'; /* never usable: the accept fails */
	}
	mac_cleanup(&m);
}

const struct store_index *
index_get(const struct index_set *x)
{
	return &x->idx;
}

void
index_free(struct index_set *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->nstrs; i++)
		free(x->strs[i]);
	free(x->strs);
	free(x->entries);
	free(x);
}

/* True when entry e is the gateway's own relayed-signature Provenance
 * (sign_relay_keep): transport, not PZP data. */
static bool
is_relay_entry(const struct fj_node *res)
{
	const struct fj_node *pol = fj_get(res, "policy");

	if (!fj_str_eq(fj_get(res, "resourceType"), "Provenance") ||
	    pol == NULL || pol->type != FJ_ARRAY)
		return false;
	for (const struct fj_node *p = pol->u.kids.first; p != NULL;
	     p = p->next)
		if (fj_str_eq(p, SIGN_RELAY_POLICY))
			return true;
	return false;
}

/* The business key of an entry (heap, caller frees), or NULL without
 * memory. Longer than STORE_KEY_MAX: its SHA-256, so any key fits. */
static char *
entry_key(const struct fj_node *e, const struct fj_node *res, const char *type,
	  bool *nomem)
{
	const struct fj_node *ids = fj_get(res, "identifier");
	const char *sys = NULL, *val = NULL, *full, *rid;
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct buf b;
	char *key;
	size_t len;

	if (ids != NULL && ids->type == FJ_OBJECT)
		ids = NULL; /* one Identifier (not R4, but harmless) */
	for (const struct fj_node *id = ids != NULL && ids->type == FJ_ARRAY
					    ? ids->u.kids.first
					    : NULL;
	     id != NULL; id = id->next) {
		sys = fj_get_str(id, "system");
		val = fj_get_str(id, "value");
		if (sys != NULL && val != NULL && sys[0] != '\0' &&
		    val[0] != '\0')
			break;
		sys = val = NULL;
	}
	buf_init(&b, INDEX_JSON_MAX);
	full = fj_get_str(e, "fullUrl");
	rid = fj_get_str(res, "id");
	if (val != NULL) {
		if (buf_adds(&b, sys) != GW_OK || buf_addc(&b, '|') != GW_OK ||
		    buf_adds(&b, val) != GW_OK)
			goto nomem;
	} else if (full != NULL && full[0] != '\0') {
		if (buf_adds(&b, full) != GW_OK)
			goto nomem;
	} else if (rid != NULL) {
		if (buf_printf(&b, "%s/%s", type, rid) != GW_OK)
			goto nomem;
	} else {
		buf_cleanup(&b);
		return NULL; /* cannot be keyed: not indexed */
	}
	if (b.len > STORE_KEY_MAX) {
		SHA256((const unsigned char *)b.data, b.len, md);
		buf_cleanup(&b);
		if ((key = malloc(7 + 2 * sizeof(md) + 1)) == NULL) {
			*nomem = true;
			return NULL;
		}
		memcpy(key, "sha256:", 7);
		util_hex(md, sizeof(md), key + 7);
		return key;
	}
	key = buf_steal(&b, &len);
	if (key == NULL)
		*nomem = true;
	return key;
nomem:
	buf_cleanup(&b);
	*nomem = true;
	return NULL;
}

/* The BSN of a Patient resource into out, or false. */
static bool
patient_bsn(const struct fj_node *res, char *out, size_t n)
{
	const struct fj_node *ids = fj_get(res, "identifier");

	if (ids == NULL || ids->type != FJ_ARRAY)
		return false;
	for (const struct fj_node *id = ids->u.kids.first; id != NULL;
	     id = id->next) {
		const char *val = fj_get_str(id, "value");
		size_t len;

		if (!fj_str_eq(fj_get(id, "system"), INDEX_BSN_SYSTEM) ||
		    val == NULL)
			continue;
		len = strlen(val);
		if (len == 0 || len >= n || strspn(val, "0123456789") != len)
			continue;
		memcpy(out, val, len + 1);
		return true;
	}
	return false;
}

/* Map a reference value to the entry it names (index + 1), 0 when it
 * names none: the entry's fullUrl or "Type/id", also with a trailing
 * "/_history/vid" left out, or an absolute URL ending in "/Type/id". */
static size_t
ref_target(const struct hmap *m, const char *v)
{
	const char *hist, *p;
	size_t found, len, slashes = 0;
	struct hmap_slot *slot;

	if ((found = hmap_get_num(m, v)) != 0)
		return found;
	len = strlen(v);
	if ((hist = strstr(v, "/_history/")) != NULL) {
		len = (size_t)(hist - v);
		if ((slot = hmap_find(m, v, len)) != NULL)
			return slot->val.num;
	}
	if (strstr(v, "://") == NULL)
		return 0;
	/* The last two path segments of an absolute URL. */
	for (p = v + len; p > v; p--)
		if (p[-1] == '/' && ++slashes == 2)
			break;
	if (slashes != 2)
		return 0;
	slot = hmap_find(m, p, len - (size_t)(p - v));
	return slot != NULL ? slot->val.num : 0;
}

/* How one entry's served form is written (entry_write). */
struct ix_out {
	const struct hmap *m;	   /* names of the message's entries */
	const struct ix_ent *ents; /* the entries they map to */
	const struct ix_ent *ent;  /* the entry written */
	struct buf *b;
};

/* Where entry_write is in the resource: its root object, the root's meta
 * object, anywhere else. */
enum ix_level { IX_ROOT, IX_META, IX_DEEP };

static bool
key_is(const struct fj_node *k, const char *name, size_t len)
{
	return k->keylen == len && memcmp(k->key, name, len) == 0;
}

/* A member of meta the store sets when it serves. */
static bool
meta_dropped(const struct fj_node *k)
{
	return key_is(k, "versionId", 9) || key_is(k, "_versionId", 10) ||
	       key_is(k, "lastUpdated", 11) || key_is(k, "_lastUpdated", 12);
}

/* The JSON string s (escaped as fj_dump does). */
static enum gw_err
out_str(struct buf *b, const char *s, size_t len)
{
	struct fj_node n = {.type = FJ_STRING};

	n.u.str.s = s;
	n.u.str.len = len;
	return fj_dump(&n, 0, b);
}

static enum gw_err out_value(const struct ix_out *o, const struct fj_node *n,
			     enum ix_level level);

/* The members of object n: at the root the logical id in place of "id"
 * (appended when there is none) and meta without versionId/lastUpdated
 * (left out when that empties it); every string "reference" naming an
 * entry of the message rewritten to "Type/<logical id>". */
static enum gw_err
out_members(const struct ix_out *o, const struct fj_node *n,
	    enum ix_level level)
{
	char ref[STORE_TYPE_MAX + INDEX_ID_LEN + 2];
	enum gw_err err = GW_OK;
	bool first = true, has_id = false;
	size_t t;

	for (const struct fj_node *k = n->u.kids.first;
	     k != NULL && err == GW_OK; k = k->next) {
		bool meta = level == IX_ROOT && k->type == FJ_OBJECT &&
			    key_is(k, "meta", 4);

		if (level == IX_META && meta_dropped(k))
			continue;
		if (meta) {
			const struct fj_node *mk = k->u.kids.first;

			while (mk != NULL && meta_dropped(mk))
				mk = mk->next;
			if (mk == NULL)
				continue;
		}
		if (!first && (err = buf_addc(o->b, ',')) != GW_OK)
			break;
		first = false;
		if ((err = out_str(o->b, k->key, k->keylen)) != GW_OK ||
		    (err = buf_addc(o->b, ':')) != GW_OK)
			break;
		if (level == IX_ROOT && key_is(k, "id", 2)) {
			has_id = true;
			err = out_str(o->b, o->ent->id, strlen(o->ent->id));
		} else if (k->type == FJ_STRING && key_is(k, "reference", 9) &&
			   (t = ref_target(o->m, k->u.str.s)) != 0) {
			snprintf(ref, sizeof(ref), "%s/%s", o->ents[t - 1].type,
				 o->ents[t - 1].id);
			err = out_str(o->b, ref, strlen(ref));
		} else {
			err = out_value(o, k, meta ? IX_META : IX_DEEP);
		}
	}
	if (err != GW_OK || level != IX_ROOT || has_id)
		return err;
	if (!first && (err = buf_addc(o->b, ',')) != GW_OK)
		return err;
	if ((err = buf_adds(o->b, "\"id\":")) != GW_OK)
		return err;
	return out_str(o->b, o->ent->id, strlen(o->ent->id));
}

static enum gw_err
out_value(const struct ix_out *o, const struct fj_node *n, enum ix_level level)
{
	enum gw_err err;

	if (n->type == FJ_OBJECT) {
		if ((err = buf_addc(o->b, '{')) != GW_OK ||
		    (err = out_members(o, n, level)) != GW_OK)
			return err;
		return buf_addc(o->b, '}');
	}
	if (n->type != FJ_ARRAY)
		return fj_dump(n, 0, o->b);
	if ((err = buf_addc(o->b, '[')) != GW_OK)
		return err;
	for (const struct fj_node *k = n->u.kids.first; k != NULL; k = k->next)
		if ((k != n->u.kids.first &&
		     (err = buf_addc(o->b, ',')) != GW_OK) ||
		    (err = out_value(o, k, IX_DEEP)) != GW_OK)
			return err;
	return buf_addc(o->b, ']');
}

/* Keep a heap string in x (freed with it); false when out of memory
 * (s is then freed). */
static bool
keep(struct index_set *x, char *s, size_t cap)
{
	if (s == NULL || x->nstrs >= cap) {
		free(s);
		return false;
	}
	x->strs[x->nstrs++] = s;
	return true;
}

/* The served form of one entry into *e (strings kept in x): written
 * straight from the message's nodes with the substitutions of
 * out_members, no copy of the resource made and edited first. */
static enum gw_err
entry_build(struct index_set *x, size_t cap, const struct ix_ent *ent,
	    const struct hmap *m, const struct ix_ent *ents,
	    struct store_index_entry *e)
{
	enum gw_err err = GW_NOMEM;
	struct buf b;
	struct ix_out o = {.m = m, .ents = ents, .ent = ent, .b = &b};
	char *json;
	size_t len;

	buf_init(&b, INDEX_JSON_MAX);
	if (ent->res->type != FJ_OBJECT) {
		err = GW_INVALID;
		goto out;
	}
	if ((err = out_value(&o, ent->res, IX_ROOT)) != GW_OK)
		goto out;
	/* No hash of it: the store compares what is served with the
	   current version's text (the same resource sent again, its members
	   in the sender's one order, makes no new version); hashing every
	   resource cost a fifth of this function. */
	err = GW_NOMEM;
	json = buf_steal(&b, &len);
	e->json = json;
	e->json_len = len;
	if (!keep(x, json, cap))
		goto out;
	e->sha256 = NULL;
	e->hidden = fj_str_eq(fj_get(ent->res, "status"), "entered-in-error");
	err = GW_OK;
out:
	buf_cleanup(&b);
	return err;
}

/* Add the names an entry is referred to by: its fullUrl and "Type/id". */
static enum gw_err
map_entry(struct hmap *m, const struct fj_node *e, const struct ix_ent *ent,
	  size_t num)
{
	const char *full = fj_get_str(e, "fullUrl");
	const char *rid = fj_get_str(ent->res, "id");
	struct hmap_slot *slot;
	enum gw_err err;
	struct buf b;

	if (full != NULL && full[0] != '\0') {
		err = hmap_insert(m, full, strlen(full), &slot);
		if (err == GW_OK)
			slot->val.num = num;
		else if (err != GW_EXISTS)
			return err;
	}
	if (rid == NULL)
		return GW_OK;
	buf_init(&b, INDEX_JSON_MAX);
	if (buf_printf(&b, "%s/%s", ent->type, rid) != GW_OK) {
		buf_cleanup(&b);
		return GW_NOMEM;
	}
	/* The first entry of a name wins, as for a duplicate fullUrl. */
	err = hmap_insert(m, b.data, b.len, &slot);
	if (err == GW_OK)
		slot->val.num = num;
	buf_cleanup(&b);
	return err == GW_EXISTS ? GW_OK : err;
}

enum gw_err
index_prepare(const struct fj_node *bundle, const char *receiver,
	      const unsigned char *secret, unsigned flags,
	      struct index_set **out)
{
	const struct fj_node *entries = fj_get(bundle, "entry");
	struct hmap m = HMAP_INIT(HMAP_STR_OWN);
	struct ix_ent *ents = NULL;
	struct index_set *x = NULL;
	struct ix_mac mac = {0};
	char phalf[INDEX_ID_LEN / 2 + 1];
	enum gw_err err = GW_NOMEM;
	size_t n = 0, cap = 0;
	bool nomem = false;

	*out = NULL;
	if (entries == NULL || entries->type != FJ_ARRAY)
		return GW_INVALID;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return GW_NOMEM;
	util_strlcpy(x->receiver, receiver, sizeof(x->receiver));
	x->idx.receiver = x->receiver;
	x->idx.bsn = x->bsn;
	x->idx.sender = x->sender;
	for (const struct fj_node *e = entries->u.kids.first; e != NULL;
	     e = e->next) {
		const struct fj_node *res = fj_get(e, "resource");
		const char *sender;

		if (x->bsn[0] == '\0' &&
		    fj_str_eq(fj_get(res, "resourceType"), "Patient"))
			(void)patient_bsn(res, x->bsn, sizeof(x->bsn));
		if (x->sender[0] == '\0' &&
		    fj_str_eq(fj_get(res, "resourceType"), "MessageHeader") &&
		    (sender =
			 fj_get_str(fj_get(fj_get(res, "sender"), "identifier"),
				    "value")) != NULL &&
		    util_is_ura(sender))
			util_strlcpy(x->sender, sender, sizeof(x->sender));
	}
	if ((flags & INDEX_BSN_ONLY) != 0 || entries->u.kids.count == 0)
		goto done;

	if (!mac_init(&mac, secret))
		goto fail;
	id_patient_half(&mac, receiver, x->bsn, phalf);
	ents = calloc(entries->u.kids.count, sizeof(*ents));
	if (ents == NULL)
		goto fail;
	for (const struct fj_node *e = entries->u.kids.first; e != NULL;
	     e = e->next) {
		const struct fj_node *res = fj_get(e, "resource");
		const char *type = fj_get_str(res, "resourceType");
		struct ix_ent *ent = &ents[n];

		if (type == NULL || type[0] == '\0' ||
		    strlen(type) > STORE_TYPE_MAX ||
		    strcmp(type, "MessageHeader") == 0 || is_relay_entry(res))
			continue;
		if ((ent->key = entry_key(e, res, type, &nomem)) == NULL) {
			if (nomem)
				goto fail;
			continue;
		}
		ent->res = res;
		ent->type = type;
		/* index_logical_id, with the patient's half made once. */
		memcpy(ent->id, phalf, INDEX_ID_LEN / 2);
		id_resource_half(&mac, receiver, x->bsn, type, ent->key,
				 ent->id + INDEX_ID_LEN / 2);
		n++;
		if (phalf[0] == '\0' || ent->id[INDEX_ID_LEN / 2] == '\0')
			goto fail;
		if ((err = map_entry(&m, e, ent, n)) != GW_OK)
			goto fail;
	}
	if (n == 0)
		goto done;
	err = GW_NOMEM;
	/* Four strings per entry: type, id, key, json. */
	cap = 4 * n;
	x->strs = calloc(cap, sizeof(*x->strs));
	x->entries = calloc(n, sizeof(*x->entries));
	if (x->strs == NULL || x->entries == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct store_index_entry *se = &x->entries[i];
		char *type = strdup(ents[i].type), *id;

		se->type = type;
		if (!keep(x, type, cap))
			goto fail;
		id = strdup(ents[i].id);
		se->id = id;
		if (!keep(x, id, cap))
			goto fail;
		se->key = ents[i].key;
		if (!keep(x, ents[i].key, cap)) {
			ents[i].key = NULL;
			goto fail;
		}
		ents[i].key = NULL;
		if ((err = entry_build(x, cap, &ents[i], &m, ents, se)) !=
		    GW_OK)
			goto fail;
	}
	x->idx.entries = x->entries;
	x->idx.n = n;
done:
	for (size_t i = 0; i < n; i++)
		free(ents[i].key);
	free(ents);
	hmap_free(&m, NULL);
	mac_cleanup(&mac);
	*out = x;
	return GW_OK;
fail:
	for (size_t i = 0; ents != NULL && i < n; i++)
		free(ents[i].key);
	free(ents);
	hmap_free(&m, NULL);
	mac_cleanup(&mac);
	index_free(x);
	return err != GW_OK ? err : GW_NOMEM;
}
