/*
 * The received-data index of one message for one local receiver: business
 * keys, keyed-hash logical ids, references rewritten to them (index.h).
 * Runs in an intake worker; the store commits the result with the accept.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
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
	/* Per entry: type, id, key, json, sha256 (owned). */
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

/* Hex of the first nhex / 2 bytes of HMAC-SHA256 under secret over the
 * n parts, each ended by a NUL (no two lists of parts give one input);
 * "" when it cannot be computed. */
static void
keyed_hex(const unsigned char *secret, const char *const *parts, size_t n,
	  size_t nhex, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char *msg;
	size_t len = 0, at = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += strlen(parts[i]) + 1;
	if ((msg = malloc(len)) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(parts[i]) + 1;

		memcpy(msg + at, parts[i], l);
		at += l;
	}
	if (HMAC(EVP_sha256(), secret, INDEX_SECRET_LEN, msg, len, md,
		 &mdlen) != NULL &&
	    mdlen >= nhex / 2)
		util_hex(md, nhex / 2, out);
	free(msg);
}

/* The two halves of a logical id (INDEX_ID_LEN / 2 hex characters and a
 * NUL each). The first names the patient, the second the resource: the
 * ids of one patient's resources sort together, so the store's (receiver,
 * id) index takes a message's resources in one or two pages instead of
 * one random page each. */
static void
id_patient_half(const unsigned char *secret, const char *receiver,
		const char *bsn, char *out)
{
	const char *parts[] = {"patient", receiver, bsn};

	keyed_hex(secret, parts, UTIL_ARRAY_LEN(parts), INDEX_ID_LEN / 2, out);
}

static void
id_resource_half(const unsigned char *secret, const char *receiver,
		 const char *bsn, const char *type, const char *key, char *out)
{
	const char *parts[] = {"resource", receiver, bsn, type, key};

	keyed_hex(secret, parts, UTIL_ARRAY_LEN(parts), INDEX_ID_LEN / 2, out);
}

void
index_logical_id(const unsigned char *secret, const char *receiver,
		 const char *bsn, const char *type, const char *key, char *out)
{
	const size_t half = INDEX_ID_LEN / 2;

	id_patient_half(secret, receiver, bsn, out);
	if (out[0] == '\0')
		return;
	id_resource_half(secret, receiver, bsn, type, key, out + half);
	if (out[half] == '\0')
		out[0] = '\0'; /* never a usable id: the accept fails on it */
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

/* Rewrite every string member "reference" under n (any depth) that names
 * an entry of the message to "Type/<logical id>". */
static enum gw_err
rewrite_refs(struct fj_doc *doc, struct fj_node *n, const struct hmap *m,
	     const struct ix_ent *ents)
{
	char ref[STORE_TYPE_MAX + INDEX_ID_LEN + 2];
	struct fj_node *s;
	enum gw_err err;
	size_t t;

	if (n->type != FJ_OBJECT && n->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *k = n->u.kids.first; k != NULL; k = k->next) {
		if (n->type == FJ_OBJECT && k->type == FJ_STRING &&
		    k->keylen == 9 && memcmp(k->key, "reference", 9) == 0 &&
		    (t = ref_target(m, k->u.str.s)) != 0) {
			snprintf(ref, sizeof(ref), "%s/%s", ents[t - 1].type,
				 ents[t - 1].id);
			if ((s = fj_new_string(doc, ref)) == NULL)
				return GW_NOMEM;
			/* In place: the new node's text, same member. */
			k->u.str = s->u.str;
			continue;
		}
		if ((err = rewrite_refs(doc, k, m, ents)) != GW_OK)
			return err;
	}
	return GW_OK;
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

/* The served form of one entry into *e (strings kept in x). */
static enum gw_err
entry_build(struct index_set *x, size_t cap, struct fj_doc *doc,
	    const struct ix_ent *ent, const struct hmap *m,
	    const struct ix_ent *ents, struct store_index_entry *e)
{
	static const char *const meta_drop[] = {"versionId", "_versionId",
						"lastUpdated", "_lastUpdated"};
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct fj_node *res, *meta, *idn;
	enum gw_err err = GW_NOMEM;
	struct buf b;
	char *sha = NULL, *json;
	size_t len;

	buf_init(&b, INDEX_JSON_MAX);
	/* One scratch document for all entries (its arena is freed once). */
	if ((res = fj_copy(doc, ent->res)) == NULL)
		goto out;
	if ((idn = fj_new_string(doc, ent->id)) == NULL ||
	    fj_set(doc, res, "id", idn) != GW_OK)
		goto out;
	/* The store sets versionId and lastUpdated when it serves. */
	if ((meta = fj_get(res, "meta")) != NULL && meta->type == FJ_OBJECT) {
		for (size_t i = 0; i < UTIL_ARRAY_LEN(meta_drop); i++)
			(void)fj_remove(meta, meta_drop[i]);
		if (meta->u.kids.count == 0)
			(void)fj_remove(res, "meta");
	}
	if ((err = rewrite_refs(doc, res, m, ents)) != GW_OK)
		goto out;
	/* The hash of what is served: the same resource sent again (a
	   sender writes its members in one order) makes no new version. A
	   canonical form would also ignore member order, at twice the cost
	   of this step (a third of it went to sorting members). */
	if ((err = fj_dump(res, 0, &b)) != GW_OK)
		goto out;
	SHA256((const unsigned char *)b.data, b.len, md);
	err = GW_NOMEM;
	if ((sha = malloc(2 * sizeof(md) + 1)) == NULL)
		goto out;
	util_hex(md, sizeof(md), sha);
	json = buf_steal(&b, &len);
	e->json = json;
	e->json_len = len;
	if (!keep(x, json, cap))
		goto out;
	e->sha256 = sha;
	if (!keep(x, sha, cap)) {
		sha = NULL;
		goto out;
	}
	sha = NULL;
	e->hidden = fj_str_eq(fj_get(ent->res, "status"), "entered-in-error");
	err = GW_OK;
out:
	free(sha);
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
	struct fj_doc *scratch = NULL;
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

	id_patient_half(secret, receiver, x->bsn, phalf);
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
		id_resource_half(secret, receiver, x->bsn, type, ent->key,
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
	if ((scratch = fj_doc_new()) == NULL)
		goto fail;
	/* Five strings per entry: type, id, key, json, sha256. */
	cap = 5 * n;
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
		if ((err = entry_build(x, cap, scratch, &ents[i], &m, ents,
				       se)) != GW_OK)
			goto fail;
	}
	x->idx.entries = x->entries;
	x->idx.n = n;
done:
	for (size_t i = 0; i < n; i++)
		free(ents[i].key);
	free(ents);
	hmap_free(&m, NULL);
	fj_doc_free(scratch);
	*out = x;
	return GW_OK;
fail:
	for (size_t i = 0; ents != NULL && i < n; i++)
		free(ents[i].key);
	free(ents);
	hmap_free(&m, NULL);
	fj_doc_free(scratch);
	index_free(x);
	return err != GW_OK ? err : GW_NOMEM;
}
