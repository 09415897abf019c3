/*
 * The received-data index: index_prepare on real message Bundles (ids,
 * references, entered-in-error, BSN), and the store's side on real SQLite
 * files: versions, snapshots, history, hidden versions, scope per
 * receiver, the index committed atomically with its accept, the inbox
 * and inbound retention.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fjson.h"
#include "index.h"
#include "store.h"
#include "util.h"

#define GP1    "90000003"
#define GP2    "90000004"
#define SENDER "90000002"
#define VIA    "90000001"
#define BSN    "999911120"
#define T0     1700000000000LL

static const unsigned char secret1[INDEX_SECRET_LEN] = {1, 2, 3};
static const unsigned char secret2[INDEX_SECRET_LEN] = {9, 8, 7};

/* A message with a Patient, a Consent pointing at it by urn:uuid and at
 * a RelatedPerson by relative id, an Encounter by absolute URL with
 * _history, a contained resource pointing at the Patient, an external
 * reference, an Observation without identifier entered in error, meta
 * to be stripped, and the gateway's relay Provenance. */
static const char msg_text[] =
    "{\"resourceType\":\"Bundle\",\"type\":\"message\",\"entry\":["
    "{\"fullUrl\":\"urn:uuid:0000-mh\",\"resource\":{\"resourceType\":"
    "\"MessageHeader\",\"sender\":{\"identifier\":{\"system\":"
    "\"http://fhir.nl/fhir/NamingSystem/ura\",\"value\":\"" SENDER "\"}},"
    "\"focus\":[{\"reference\":\"urn:uuid:0000-pat\"}]}},"
    "{\"fullUrl\":\"urn:uuid:0000-pat\",\"resource\":{\"resourceType\":"
    "\"Patient\",\"id\":\"pat1\",\"meta\":{\"versionId\":\"7\","
    "\"lastUpdated\":\"2020-01-01T00:00:00Z\"},\"identifier\":[{\"system\":"
    "\"http://fhir.nl/fhir/NamingSystem/bsn\",\"value\":\"" BSN "\"}]}},"
    "{\"fullUrl\":\"http://example.org/fhir/RelatedPerson/rp1\",\"resource\":"
    "{\"resourceType\":\"RelatedPerson\",\"id\":\"rp1\",\"identifier\":[{"
    "\"value\":\"no-system\"},{\"system\":\"urn:rp\",\"value\":\"r-1\"}],"
    "\"patient\":{\"reference\":\"urn:uuid:0000-pat\"}}},"
    "{\"fullUrl\":\"urn:uuid:0000-enc\",\"resource\":{\"resourceType\":"
    "\"Encounter\",\"id\":\"enc1\",\"meta\":{\"profile\":[\"http://x/p\"],"
    "\"versionId\":\"2\"},\"identifier\":[{\"system\":\"urn:enc\","
    "\"value\":\"e-1\"}],\"status\":\"finished\",\"subject\":{"
    "\"reference\":\"Patient/pat1\"}}},"
    "{\"fullUrl\":\"urn:uuid:0000-con\",\"resource\":{\"resourceType\":"
    "\"Consent\",\"identifier\":[{\"system\":\"urn:con\",\"value\":\"c-1\"}],"
    "\"status\":\"active\",\"contained\":[{\"resourceType\":\"Basic\","
    "\"id\":\"b\",\"subject\":{\"reference\":\"urn:uuid:0000-pat\"}}],"
    "\"patient\":{\"reference\":\"urn:uuid:0000-pat\"},"
    "\"provision\":{\"actor\":[{\"reference\":{\"reference\":"
    "\"RelatedPerson/rp1\"}},{\"reference\":{\"reference\":"
    "\"Practitioner/elsewhere\"}}]},"
    "\"sourceReference\":{\"reference\":"
    "\"http://example.org/fhir/Encounter/enc1/_history/3\"}}},"
    "{\"fullUrl\":\"urn:uuid:0000-obs\",\"resource\":{\"resourceType\":"
    "\"Observation\",\"status\":\"entered-in-error\",\"subject\":{"
    "\"reference\":\"urn:uuid:0000-pat\"}}},"
    "{\"fullUrl\":\"urn:uuid:0000-prov\",\"resource\":{\"resourceType\":"
    "\"Provenance\",\"policy\":[\"http://pzpgw.nl/fhir/"
    "relayed-signature\"]}}]}";

static struct fj_doc *
parse(const char *text)
{
	struct fj_doc *doc = NULL;

	assert_int_equal(fj_parse(text, strlen(text), 0, &doc, NULL), GW_OK);
	return doc;
}

/* The entry of type in x, or fail. */
static const struct store_index_entry *
entry_of(const struct store_index *x, const char *type)
{
	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->entries[i].type, type) == 0)
			return &x->entries[i];
	fail_msg("no %s entry", type);
	return NULL;
}

/* A string at a path of member names in json (entry e's resource). */
static void
expect_str(const struct store_index_entry *e, const char *const *path,
	   const char *want)
{
	struct fj_doc *doc = NULL;
	const struct fj_node *n;
	const char *got;

	assert_int_equal(fj_parse(e->json, e->json_len, 0, &doc, NULL), GW_OK);
	n = doc->root;
	for (; *path != NULL; path++) {
		if (n != NULL && n->type == FJ_ARRAY)
			n = fj_at(n, (size_t)strtoul(*path, NULL, 10));
		else
			n = fj_get(n, *path);
	}
	got = n != NULL && n->type == FJ_STRING ? n->u.str.s : NULL;
	if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0)
		fail_msg("%s %s: got %s, want %s", e->type, path[-1],
			 got ? got : "(none)", want ? want : "(none)");
	fj_doc_free(doc);
}

/* The served form, byte for byte as the index has always written it
 * (a resource sent again must equal its stored version): the
 * logical id in place of "id" or appended, meta without versionId and
 * lastUpdated and left out when emptied (kept when not an object),
 * references rewritten at any depth and at the root, escaping kept.
 * The logical ids are HMAC-SHA256 under the secret as OpenSSL's HMAC()
 * computes them. */
static const char served_msg[] =
    "{\"resourceType\":\"Bundle\",\"type\":\"message\",\"entr"
    "y\":[{\"fullUrl\":\"urn:uuid:p\",\"resource\":{\"resourc"
    "eType\":\"Patient\",\"meta\":{\"versionId\":\"1\"},\"ide"
    "ntifier\":[{\"system\":\"http://fhir.nl/fhir/NamingSyste"
    "m/bsn\",\"value\":\"999911120\"}],\"reference\":\"urn:uu"
    "id:c\"}},{\"fullUrl\":\"urn:uuid:c\",\"resource\":{\"res"
    "ourceType\":\"Consent\",\"id\":\"x\",\"meta\":{},\"ident"
    "ifier\":[{\"system\":\"a\",\"value\":\"b\"}],\"patient\""
    ":{\"reference\":\"urn:uuid:p\",\"display\":\"\\u00e9\\\""
    "\\\\\\n\\u0001\"},\"contained\":[{\"resourceType\":\"Bas"
    "ic\",\"id\":\"q\",\"meta\":{\"lastUpdated\":\"2020\",\"t"
    "ag\":[{\"code\":\"t\"}]},\"subject\":{\"reference\":\"Co"
    "nsent/x\"}}],\"extension\":[{\"url\":\"u\",\"valueRefere"
    "nce\":{\"reference\":\"http://h/fhir/Patient/zz/_history"
    "/2\"}}]}},{\"fullUrl\":\"http://h/fhir/Patient/zz\",\"re"
    "source\":{\"resourceType\":\"Patient\",\"id\":\"zz\",\"m"
    "eta\":{\"profile\":[\"p\"],\"versionId\":\"3\",\"_lastUp"
    "dated\":{\"id\":\"1\"}},\"link\":[{\"other\":{\"referenc"
    "e\":\"urn:uuid:p\"}}],\"reference\":5,\"x\":[[],{},null,"
    "true,false,1.50e3,\"s\"]}},{\"fullUrl\":\"urn:uuid:e\",\""
    "resource\":{\"resourceType\":\"Encounter\",\"meta\":\"we"
    "ird\",\"id\":7}}]}";

static const char *const served_want[] = {
    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\""
    ":\"http://fhir.nl/fhir/NamingSystem/bsn\",\"value\":\"99"
    "9911120\"}],\"reference\":\"Consent/c1705d2ae9b5dd393d53"
    "72e8f168333d\",\"id\":\"c1705d2ae9b5dd396fd4abee8e6c6041"
    "\"}",
    "{\"resourceType\":\"Consent\",\"id\":\"c1705d2ae9b5dd393"
    "d5372e8f168333d\",\"identifier\":[{\"system\":\"a\",\"va"
    "lue\":\"b\"}],\"patient\":{\"reference\":\"Patient/c1705"
    "d2ae9b5dd396fd4abee8e6c6041\",\"display\":\"é\\\"\\\\\\n"
    "\\u0001\"},\"contained\":[{\"resourceType\":\"Basic\",\""
    "id\":\"q\",\"meta\":{\"lastUpdated\":\"2020\",\"tag\":[{"
    "\"code\":\"t\"}]},\"subject\":{\"reference\":\"Consent/c"
    "1705d2ae9b5dd393d5372e8f168333d\"}}],\"extension\":[{\"u"
    "rl\":\"u\",\"valueReference\":{\"reference\":\"Patient/c"
    "1705d2ae9b5dd39cb793897bb665dd9\"}}]}",
    "{\"resourceType\":\"Patient\",\"id\":\"c1705d2ae9b5dd39c"
    "b793897bb665dd9\",\"meta\":{\"profile\":[\"p\"]},\"link\""
    ":[{\"other\":{\"reference\":\"Patient/c1705d2ae9b5dd396f"
    "d4abee8e6c6041\"}}],\"reference\":5,\"x\":[[],{},null,tr"
    "ue,false,1.50e3,\"s\"]}",
    "{\"resourceType\":\"Encounter\",\"meta\":\"weird\",\"id\""
    ":\"c1705d2ae9b5dd391828de78a3029304\"}",
};

static void
test_served_form(void **state)
{
	static const char *const parts[] = {"resource", GP1, BSN, "Encounter",
					    "urn:uuid:e"};
	struct fj_doc *doc = parse(served_msg);
	struct index_set *x = NULL;
	const struct store_index *ix;
	unsigned char md[EVP_MAX_MD_SIZE], msg[256];
	unsigned int mdlen = 0;
	size_t len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1], id[INDEX_ID_LEN + 1];

	(void)state;
	assert_int_equal(index_prepare(doc->root, GP1, secret1, 0, &x), GW_OK);
	ix = index_get(x);
	assert_int_equal(ix->n, UTIL_ARRAY_LEN(served_want));
	for (size_t i = 0; i < ix->n; i++) {
		if (ix->entries[i].json_len != strlen(served_want[i]) ||
		    memcmp(ix->entries[i].json, served_want[i],
			   ix->entries[i].json_len) != 0)
			fail_msg("entry %zu: got %.*s, want %s", i,
				 (int)ix->entries[i].json_len,
				 ix->entries[i].json, served_want[i]);
	}
	/* The resource half of the Encounter's id, by HMAC(). */
	for (size_t i = 0; i < UTIL_ARRAY_LEN(parts); i++) {
		memcpy(msg + len, parts[i], strlen(parts[i]) + 1);
		len += strlen(parts[i]) + 1;
	}
	assert_non_null(HMAC(EVP_sha256(), secret1, INDEX_SECRET_LEN, msg, len,
			     md, &mdlen));
	util_hex(md, INDEX_ID_LEN / 4, hex);
	index_logical_id(secret1, GP1, BSN, "Encounter", "urn:uuid:e", id);
	assert_string_equal(id + INDEX_ID_LEN / 2, hex);
	assert_string_equal(entry_of(ix, "Encounter")->id, id);
	index_free(x);
	fj_doc_free(doc);
}

static void
test_prepare(void **state)
{
	struct fj_doc *doc = parse(msg_text);
	struct index_set *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	const struct store_index *x, *y;
	const struct store_index_entry *pat, *con, *enc, *obs, *rp;
	char want[128];

	(void)state;
	assert_int_equal(index_prepare(doc->root, GP1, secret1, 0, &a), GW_OK);
	assert_int_equal(index_prepare(doc->root, GP1, secret1, 0, &b), GW_OK);
	assert_int_equal(index_prepare(doc->root, GP2, secret1, 0, &c), GW_OK);
	assert_int_equal(index_prepare(doc->root, GP1, secret2, 0, &d), GW_OK);
	x = index_get(a);
	assert_string_equal(x->receiver, GP1);
	assert_string_equal(x->bsn, BSN);
	assert_string_equal(x->sender, SENDER);
	/* Every entry but the MessageHeader and the relay Provenance. */
	assert_int_equal(x->n, 5);
	pat = entry_of(x, "Patient");
	con = entry_of(x, "Consent");
	enc = entry_of(x, "Encounter");
	obs = entry_of(x, "Observation");
	rp = entry_of(x, "RelatedPerson");
	/* Keys: the first identifier with system and value, else fullUrl. */
	assert_string_equal(pat->key,
			    "http://fhir.nl/fhir/NamingSystem/bsn|" BSN);
	assert_string_equal(rp->key, "urn:rp|r-1");
	assert_string_equal(obs->key, "urn:uuid:0000-obs");
	/* Ids: stable per (receiver, patient, type, key), 32 hex, nothing of the
	   key in them, another per receiver and per secret. */
	for (size_t i = 0; i < x->n; i++) {
		assert_int_equal(strlen(x->entries[i].id), INDEX_ID_LEN);
		assert_int_equal(strspn(x->entries[i].id, "0123456789abcdef"),
				 INDEX_ID_LEN);
		assert_string_equal(x->entries[i].id,
				    index_get(b)->entries[i].id);
		assert_string_not_equal(x->entries[i].id,
					index_get(c)->entries[i].id);
		assert_string_not_equal(x->entries[i].id,
					index_get(d)->entries[i].id);
		assert_null(strstr(x->entries[i].id, BSN));
		assert_int_equal(x->entries[i].json_len,
				 index_get(b)->entries[i].json_len);
		assert_memory_equal(x->entries[i].json,
				    index_get(b)->entries[i].json,
				    x->entries[i].json_len);
	}
	/* One patient's ids share their first half (the store's unique
	   index then takes a message in one page); the second half
	   differs per resource. The same resource for another patient is
	   another resource, with another id in both halves. */
	for (size_t i = 1; i < x->n; i++) {
		assert_memory_equal(x->entries[i].id, x->entries[0].id,
				    INDEX_ID_LEN / 2);
		assert_memory_not_equal(x->entries[i].id + INDEX_ID_LEN / 2,
					x->entries[0].id + INDEX_ID_LEN / 2,
					INDEX_ID_LEN / 2);
	}
	{
		char p1[INDEX_ID_LEN + 1], p2[INDEX_ID_LEN + 1];

		index_logical_id(secret1, GP1, BSN, "RelatedPerson",
				 "urn:rp|r-1", p1);
		assert_string_equal(p1, rp->id);
		index_logical_id(secret1, GP1, "999999990", "RelatedPerson",
				 "urn:rp|r-1", p2);
		assert_memory_not_equal(p1, p2, INDEX_ID_LEN / 2);
		assert_memory_not_equal(p1 + INDEX_ID_LEN / 2,
					p2 + INDEX_ID_LEN / 2,
					INDEX_ID_LEN / 2);
	}
	/* Served id is the logical id; meta.versionId/lastUpdated gone,
	   meta.profile kept, an emptied meta dropped. */
	expect_str(pat, (const char *[]){"id", NULL}, pat->id);
	expect_str(pat, (const char *[]){"meta", "versionId", NULL}, NULL);
	expect_str(enc, (const char *[]){"meta", "versionId", NULL}, NULL);
	expect_str(enc, (const char *[]){"meta", "profile", "0", NULL},
		   "http://x/p");
	assert_null(strstr(pat->json, "\"meta\""));
	/* References: urn:uuid, relative Type/id, absolute with _history,
	   nested (Consent.provision.actor.reference.reference) and in a
	   contained resource; an external one unchanged. */
	snprintf(want, sizeof(want), "Patient/%s", pat->id);
	expect_str(con, (const char *[]){"patient", "reference", NULL}, want);
	expect_str(enc, (const char *[]){"subject", "reference", NULL}, want);
	expect_str(rp, (const char *[]){"patient", "reference", NULL}, want);
	expect_str(
	    con,
	    (const char *[]){"contained", "0", "subject", "reference", NULL},
	    want);
	snprintf(want, sizeof(want), "RelatedPerson/%s", rp->id);
	expect_str(con,
		   (const char *[]){"provision", "actor", "0", "reference",
				    "reference", NULL},
		   want);
	expect_str(con,
		   (const char *[]){"provision", "actor", "1", "reference",
				    "reference", NULL},
		   "Practitioner/elsewhere");
	snprintf(want, sizeof(want), "Encounter/%s", enc->id);
	expect_str(con, (const char *[]){"sourceReference", "reference", NULL},
		   want);
	/* No urn:uuid of the message is left in what is served. */
	for (size_t i = 0; i < x->n; i++)
		assert_null(strstr(x->entries[i].json, "urn:uuid:"));
	/* entered-in-error: hidden. */
	assert_true(obs->hidden);
	assert_false(con->hidden);
	assert_false(pat->hidden);

	/* The same message once more gives the same json byte for byte. */
	assert_memory_equal(con->json, entry_of(index_get(b), "Consent")->json,
			    con->json_len);
	y = index_get(c);
	assert_string_equal(y->receiver, GP2);
	index_free(a);
	index_free(b);
	index_free(c);
	index_free(d);
	fj_doc_free(doc);
}

static void
test_prepare_bsn_only(void **state)
{
	struct fj_doc *doc = parse(msg_text);
	struct fj_doc *none = parse("{\"resourceType\":\"Bundle\",\"entry\":[{"
				    "\"resource\":{\"resourceType\":"
				    "\"Patient\",\"identifier\":[{\"system\":"
				    "\"urn:other\",\"value\":\"1\"}]}}]}");
	struct index_set *a = NULL;

	(void)state;
	assert_int_equal(
	    index_prepare(doc->root, GP1, secret1, INDEX_BSN_ONLY, &a), GW_OK);
	assert_string_equal(index_get(a)->bsn, BSN);
	assert_int_equal(index_get(a)->n, 0);
	index_free(a);
	/* No BSN: "", and the Patient is still indexed by its key. */
	assert_int_equal(index_prepare(none->root, GP1, secret1, 0, &a), GW_OK);
	assert_string_equal(index_get(a)->bsn, "");
	assert_string_equal(index_get(a)->sender, "");
	assert_int_equal(index_get(a)->n, 1);
	assert_string_equal(index_get(a)->entries[0].key, "urn:other|1");
	index_free(a);
	assert_int_equal(
	    index_prepare(doc->root->u.kids.first, GP1, secret1, 0, &a),
	    GW_INVALID);
	assert_null(a);
	fj_doc_free(none);
	fj_doc_free(doc);
}

/* ---- the store side ---- */

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
	struct store_reader *r;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_options o = {0};

	assert_non_null(f);
	util_strlcpy(f->dir, "/tmp/pzpgw-index-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	o.path = f->path;
	o.create = true;
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	assert_int_equal(store_reader_open(f->s, &f->r), GW_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	const char *sfx[] = {"store.db", "store.db-wal", "store.db-shm",
			     "store.db" STORE_MARKER_SUFFIX};
	char p[160];

	store_reader_free(f->r);
	store_free(f->s);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(sfx); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A hand-made entry: type/id with content json. */
static struct store_index_entry
ent(const char *type, const char *id, const char *json, bool hidden)
{
	static char shas[64][65];
	static unsigned next;
	unsigned char md[32] = {0};
	char *sha = shas[next++ % 64];
	struct store_index_entry e = {.type = type,
				      .id = id,
				      .key = id,
				      .json = json,
				      .json_len = strlen(json),
				      .sha256 = sha,
				      .hidden = hidden};

	/* Not SHA-256, but one value per content is all the store uses. */
	for (size_t i = 0; json[i] != '\0'; i++)
		md[i % 32] =
		    (unsigned char)(md[i % 32] * 31u + (unsigned)json[i]);
	util_hex(md, sizeof(md), sha);
	return e;
}

/* Accept inbound message id for receiver with entries (n of them). */
static enum gw_err
accept_ix(struct store *s, const char *id, const char *receiver,
	  const char *bsn, const struct store_index_entry *e, size_t n,
	  int64_t at)
{
	struct store_index x = {.receiver = receiver,
				.bsn = bsn,
				.sender = SENDER,
				.entries = e,
				.n = n};
	struct store_accept r = {
	    .id = id,
	    .direction = STORE_INBOUND,
	    .sender_ura = VIA, /* a gateway relaying for SENDER */
	    .bundle_system = "urn:ietf:rfc:3986",
	    .bundle_value = id,
	    .patient_key = "pk",
	    .fhir_version = "4.0.1",
	    .doc = "{\"resourceType\":\"Bundle\"}",
	    .doc_len = 25,
	    .sha256 = id,
	    .accepted_at = at,
	    .answer_status = 202,
	    .index = &x,
	    .nindex = 1,
	};
	struct store_result res;
	enum gw_err err = store_accept(s, &r, &res);

	store_result_cleanup(&res);
	return err;
}

/* Versions of q as "type/id/vid[h][c]@msg" joined by spaces. */
static void
find(struct store_reader *rd, const struct store_res_query *q, char *out,
     size_t n)
{
	struct store_res *v = NULL;
	size_t nv = 0;

	assert_int_equal(store_res_find(rd, q, &v, &nv), GW_OK);
	out[0] = '\0';
	for (size_t i = 0; i < nv; i++) {
		size_t len = strlen(out);

		assert_int_equal(strlen(v[i].json), v[i].json_len);
		snprintf(out + len, n - len, "%s%s/%s/%lld%s%s@%s",
			 i > 0 ? " " : "", v[i].type, v[i].id,
			 (long long)v[i].vid, v[i].hidden ? "h" : "",
			 v[i].current ? "c" : "", v[i].msg_id);
		if (i > 0)
			assert_true(v[i].seq > v[i - 1].seq);
	}
	store_res_free(v, nv);
}

static int64_t
sql_count(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

#define EXPECT_FIND(rd, q, want)                                               \
	do {                                                                   \
		char got_[1024];                                               \
		find((rd), (q), got_, sizeof(got_));                           \
		if (strcmp(got_, (want)) != 0)                                 \
			fail_msg("got \"%s\", want \"%s\"", got_, (want));     \
	} while (0)

static void
test_versions(void **state)
{
	struct fixture *f = *state;
	struct store_index_entry m1[] = {
	    ent("Patient", "p", "{\"resourceType\":\"Patient\"}", false),
	    ent("Consent", "c", "{\"resourceType\":\"Consent\",\"v\":1}",
		false),
	    ent("Goal", "g", "{\"resourceType\":\"Goal\"}", false),
	};
	/* m2: Consent changed, Patient the same, Goal entered in error. */
	struct store_index_entry m2[] = {
	    ent("Patient", "p", "{\"resourceType\":\"Patient\"}", false),
	    ent("Consent", "c", "{\"resourceType\":\"Consent\",\"v\":2}",
		false),
	    ent("Goal", "g",
		"{\"resourceType\":\"Goal\",\"lifecycleStatus\":"
		"\"entered-in-error\"}",
		true),
	};
	struct store_res_query q = {.receiver = GP1};
	int64_t snap1 = -1, snap2 = -1;

	assert_int_equal(store_res_snapshot(f->r, &snap1), GW_OK);
	assert_int_equal(snap1, 0);
	assert_int_equal(accept_ix(f->s, "m1", GP1, BSN, m1, 3, T0), GW_OK);
	assert_int_equal(store_res_snapshot(f->r, &snap1), GW_OK);
	assert_true(snap1 > 0);
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m1 Consent/c/1c@m1 Goal/g/1c@m1");
	assert_int_equal(accept_ix(f->s, "m2", GP1, BSN, m2, 3, T0 + 1000),
			 GW_OK);
	assert_int_equal(store_res_snapshot(f->r, &snap2), GW_OK);
	assert_true(snap2 > snap1);
	/* Current: the unchanged Patient is still version 1, now carried
	   by m2; the Consent is version 2; the hidden Goal is left out. */
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m2 Consent/c/2c@m2");
	q.hidden = true;
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m2 Consent/c/2c@m2 Goal/g/2hc@m2");
	q.hidden = false;
	/* History of one resource keeps the old version. */
	q.type = "Consent";
	q.id = "c";
	q.history = true;
	EXPECT_FIND(f->r, &q, "Consent/c/1@m1 Consent/c/2c@m2");
	/* vread. */
	q.history = false;
	q.vid = 1;
	EXPECT_FIND(f->r, &q, "Consent/c/1@m1");
	q.vid = 3;
	EXPECT_FIND(f->r, &q, "");
	/* At the first snapshot the first versions are current still. */
	q = (struct store_res_query){.receiver = GP1, .snapshot = snap1};
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m2 Consent/c/1c@m1 Goal/g/1c@m1");
	/* Bare (the pull API's queries): the same versions, read without
	   their message. */
	q.bare = true;
	EXPECT_FIND(f->r, &q, "Patient/p/1c@ Consent/c/1c@ Goal/g/1c@");
	q = (struct store_res_query){.receiver = GP1,
				     .type = "Consent",
				     .id = "c",
				     .history = true,
				     .bare = true};
	EXPECT_FIND(f->r, &q, "Consent/c/1@ Consent/c/2c@");
	/* Scope: another receiver sees nothing of it. */
	q = (struct store_res_query){.receiver = GP2};
	EXPECT_FIND(f->r, &q, "");
	q.bare = true;
	EXPECT_FIND(f->r, &q, "");
	q = (struct store_res_query){
	    .receiver = GP2, .type = "Consent", .id = "c", .history = true};
	EXPECT_FIND(f->r, &q, "");
	/* Patient, type, since, paging. */
	q = (struct store_res_query){.receiver = GP1, .bsn = BSN};
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m2 Consent/c/2c@m2");
	q.bsn = "123456782";
	EXPECT_FIND(f->r, &q, "");
	q = (struct store_res_query){
	    .receiver = GP1, .history = true, .since = T0 + 1000};
	EXPECT_FIND(f->r, &q, "Consent/c/2c@m2");
	q = (struct store_res_query){.receiver = GP1, .limit = 1};
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m2");
	{
		struct store_res *v = NULL;
		size_t n = 0;

		assert_int_equal(store_res_find(f->r, &q, &v, &n), GW_OK);
		assert_int_equal(n, 1);
		q.after_seq = v[0].seq;
		assert_int_equal(v[0].updated, T0);
		assert_string_equal(v[0].json,
				    "{\"resourceType\":\"Patient\"}");
		assert_string_equal(v[0].bsn, BSN);
		assert_string_equal(v[0].sender, SENDER);
		assert_string_equal(v[0].receiver, GP1);
		store_res_free(v, n);
	}
	EXPECT_FIND(f->r, &q, "Consent/c/2c@m2");
	/* An id needs its type. */
	q = (struct store_res_query){.receiver = GP1, .id = "c"};
	{
		struct store_res *v = NULL;
		size_t n = 0;

		assert_int_equal(store_res_find(f->r, &q, &v, &n), GW_INVALID);
	}
	/* "The same content" is the JSON itself, not the hash given with
	   it: without one (index_prepare gives none) or with another, the
	   same text makes no new version; other text does. */
	m2[0].sha256 = NULL;
	m2[1].sha256 = "not-its-hash";
	m2[2] = ent("Goal", "g", "{\"resourceType\":\"Goal\",\"v\":3}", false);
	m2[2].sha256 = NULL;
	assert_int_equal(accept_ix(f->s, "m3", GP1, BSN, m2, 3, T0 + 2000),
			 GW_OK);
	q = (struct store_res_query){.receiver = GP1};
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m3 Consent/c/2c@m3 Goal/g/3c@m3");
	assert_int_equal(sql_count(f->path, "SELECT count(*) FROM res_versions"
					    " WHERE sha256 = ''"),
			 1);
}

/* Record an accept's outcome (group commit). */
static void
on_done(void *arg, const struct store_result *res)
{
	*(enum gw_err *)arg = res->err;
}

/* Fail every index insert for type "Fail" (a real failure inside the
 * accept's transaction). */
static void
add_fail_trigger(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
			 "CREATE TRIGGER fail_ix BEFORE INSERT ON res_versions"
			 " WHEN NEW.type = 'Fail' BEGIN SELECT RAISE(ABORT,"
			 " 'test'); END",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

static void
test_atomic(void **state)
{
	struct fixture *f = *state;
	struct store_index_entry good[] = {
	    ent("Patient", "p", "{\"resourceType\":\"Patient\"}", false),
	};
	struct store_index_entry bad[] = {
	    ent("Patient", "p2", "{\"resourceType\":\"Patient\",\"x\":1}",
		false),
	    ent("Fail", "f", "{\"resourceType\":\"Fail\"}", false),
	};
	struct store_index xs[3] = {
	    {.receiver = GP1,
	     .bsn = BSN,
	     .sender = "",
	     .entries = good,
	     .n = 1},
	    {.receiver = GP1, .bsn = BSN, .sender = "", .entries = bad, .n = 2},
	    {.receiver = GP2,
	     .bsn = BSN,
	     .sender = "",
	     .entries = good,
	     .n = 1},
	};
	struct store_accept r = {
	    .direction = STORE_INBOUND,
	    .sender_ura = SENDER,
	    .patient_key = "pk",
	    .fhir_version = "4.0.1",
	    .doc = "{}",
	    .doc_len = 2,
	    .sha256 = "s",
	    .answer_status = 202,
	    .nindex = 1,
	};
	enum gw_err done[3] = {GW_TEMP, GW_TEMP, GW_TEMP};
	const char *ids[3] = {"a1", "a2", "a3"};
	struct store_res_query q = {.receiver = GP1, .hidden = true};
	struct store_message *m = NULL;
	struct store_result res;
	sqlite3 *lock = NULL;

	add_fail_trigger(f->path);
	/* Three accepts in one group commit: the one whose index fails
	   fails alone, with nothing of it stored; the others commit with
	   their index. The write lock held here keeps the writer waiting
	   until all three are queued: the failing one and the one after
	   it share a batch (the batch is then run again with savepoints). */
	assert_int_equal(sqlite3_open(f->path, &lock), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 3; i++) {
		r.id = ids[i];
		r.bundle_value = ids[i];
		r.index = &xs[i];
		assert_int_equal(
		    store_submit_accept(f->s, &r, on_done, &done[i]), GW_OK);
	}
	(void)nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
	assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(lock);
	store_flush(f->s);
	assert_int_equal(store_dispatch(f->s), 3);
	assert_int_equal(done[0], GW_OK);
	assert_int_not_equal(done[1], GW_OK);
	assert_int_equal(done[2], GW_OK);
	assert_int_equal(store_get_document(f->s, "a2", &m), GW_NOTFOUND);
	EXPECT_FIND(f->r, &q, "Patient/p/1c@a1");
	q.receiver = GP2;
	EXPECT_FIND(f->r, &q, "Patient/p/1c@a3");
	assert_int_equal(sql_count(f->path, "SELECT count(*) FROM inbox"), 2);
	assert_int_equal(
	    sql_count(f->path, "SELECT count(*) FROM res_versions"), 2);
	/* A duplicate writes no index. */
	r.id = "a4";
	r.bundle_value = "a1";
	r.index = &xs[1];
	assert_int_equal(store_accept(f->s, &r, &res), GW_EXISTS);
	store_result_cleanup(&res);
	assert_int_equal(
	    sql_count(f->path, "SELECT count(*) FROM res_versions"), 2);
	/* Malformed indexes are refused before the store. */
	xs[0].receiver = "123";
	r.id = "a5";
	r.bundle_value = "a5";
	r.index = &xs[0];
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	store_result_cleanup(&res);
	xs[0].receiver = GP1;
	r.index = NULL;
	assert_int_equal(store_accept(f->s, &r, &res), GW_INVALID);
	store_result_cleanup(&res);
}

/* Bytes this process has written (all files), from /proc/self/io. */
static long long
io_written(void)
{
	char line[128];
	long long v = -1;
	FILE *f = fopen("/proc/self/io", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "wchar:", 6) == 0)
			v = strtoll(line + 6, NULL, 10);
	fclose(f);
	return v;
}

/* Messages of test_batch_writes: a document and 20 resources of 1.5 KB,
 * like the bench's (30 KB, F1's resources). */
#define BW_ENTRIES 20
#define BW_JSON	   1500
struct bw_msg {
	char id[16], bsn[16];
	char rid[BW_ENTRIES][INDEX_ID_LEN + 1];
	struct store_index_entry e[BW_ENTRIES];
	struct store_index x;
	struct store_accept r;
};

static void
bw_make(struct bw_msg *m, unsigned i, const char *doc, const char *json)
{
	char key[32];

	snprintf(m->id, sizeof(m->id), "bw%u", i);
	snprintf(m->bsn, sizeof(m->bsn), "%09u", 100000000u + i * 7919u);
	for (unsigned k = 0; k < BW_ENTRIES; k++) {
		snprintf(key, sizeof(key), "urn:k|%u", k);
		index_logical_id(secret1, GP1, m->bsn, "Observation", key,
				 m->rid[k]);
		m->e[k] = ent("Observation", m->rid[k], json + k, false);
	}
	m->x = (struct store_index){.receiver = GP1,
				    .bsn = m->bsn,
				    .sender = SENDER,
				    .entries = m->e,
				    .n = BW_ENTRIES};
	m->r = (struct store_accept){.id = m->id,
				     .direction = STORE_INBOUND,
				     .sender_ura = SENDER,
				     .bundle_system = "urn:ietf:rfc:3986",
				     .bundle_value = m->id,
				     .patient_key = m->bsn,
				     .fhir_version = "4.0.1",
				     .doc = doc,
				     .doc_len = strlen(doc),
				     .sha256 = m->id,
				     .answer_status = 202,
				     .index = &m->x,
				     .nindex = 1};
}

/*
 * What a group commit of indexed accepts writes, on a store that already
 * holds messages (so the index's pages exist before the batch): the
 * documents and index rows through the WAL, nothing more. A savepoint
 * per document made SQLite copy each page it changed that existed before
 * it into a statement journal: twice the bytes here.
 */
static void
test_batch_writes(void **state)
{
	struct fixture *f = *state;
	enum { PRE = 300, BATCH = 16 };
	static struct bw_msg m[PRE + BATCH];
	static char doc[30 * 1024], json[BW_JSON + BW_ENTRIES + 1];
	enum gw_err done[BATCH];
	struct store_result res;
	sqlite3 *lock = NULL;
	long long w0, per;

	memset(doc, 'd', sizeof(doc) - 1);
	memset(json, 'j', sizeof(json) - 1);
	for (unsigned i = 0; i < PRE; i++) {
		bw_make(&m[i], i, doc, json);
		assert_int_equal(store_accept(f->s, &m[i].r, &res), GW_OK);
		store_result_cleanup(&res);
	}
	for (unsigned i = PRE; i < PRE + BATCH; i++)
		bw_make(&m[i], i, doc, json);
	/* All in one batch: the writer waits for this lock. The WAL is
	   emptied first, so that no checkpoint (of the messages before)
	   runs inside the batch's commit. */
	assert_int_equal(sqlite3_open(f->path, &lock), SQLITE_OK);
	assert_int_equal(sqlite3_exec(lock, "PRAGMA wal_checkpoint(TRUNCATE)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	w0 = io_written();
	for (unsigned i = 0; i < BATCH; i++) {
		done[i] = GW_TEMP;
		assert_int_equal(
		    store_submit_accept(f->s, &m[PRE + i].r, on_done, &done[i]),
		    GW_OK);
	}
	(void)nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
	assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(lock);
	store_flush(f->s);
	per = (io_written() - w0) / BATCH / 1024;
	assert_int_equal(store_dispatch(f->s), BATCH);
	for (unsigned i = 0; i < BATCH; i++)
		assert_int_equal(done[i], GW_OK);
	assert_int_equal(
	    sql_count(f->path, "SELECT count(*) FROM res_versions"),
	    (PRE + BATCH) * BW_ENTRIES);
	print_message("batch of %d indexed accepts: %lld KB written each\n",
		      BATCH, per);
	/* Measured: 95 KB, and 199 KB with a savepoint per document. */
	if (per > 140)
		fail_msg("written per accept: got %lld KB, want at most 140",
			 per);
}

static void
test_inbox_retention(void **state)
{
	struct fixture *f = *state;
	struct store_index_entry m1[] = {
	    ent("Patient", "p", "{\"resourceType\":\"Patient\"}", false),
	    ent("Consent", "c", "{\"resourceType\":\"Consent\",\"v\":1}",
		false),
	};
	struct store_index_entry m2[] = {
	    ent("Patient", "p", "{\"resourceType\":\"Patient\"}", false),
	};
	struct store_index_entry m3[] = {
	    ent("Consent", "c", "{\"resourceType\":\"Consent\",\"v\":3}",
		false),
	};
	struct store_inbox_filter fl = {0};
	struct store_res_query q = {.receiver = GP1, .history = true};
	struct store_inbox *v = NULL;
	size_t n = 0, pruned = 0;

	assert_int_equal(accept_ix(f->s, "m1", GP1, BSN, m1, 2, T0), GW_OK);
	assert_int_equal(accept_ix(f->s, "m2", GP1, BSN, m2, 1, T0 + 10),
			 GW_OK);
	assert_int_equal(accept_ix(f->s, "m3", GP1, BSN, m3, 1, T0 + 20),
			 GW_OK);
	assert_int_equal(accept_ix(f->s, "x1", GP2, "123456782", m2, 1, T0),
			 GW_OK);
	assert_int_equal(store_inbox_list(f->s, &fl, &v, &n), GW_OK);
	assert_int_equal(n, 4);
	assert_string_equal(v[0].id, "m1");
	assert_string_equal(v[0].receiver, GP1);
	assert_string_equal(v[0].bsn, BSN);
	assert_string_equal(v[0].sender, SENDER);
	assert_string_equal(v[0].via, VIA);
	assert_int_equal(v[0].resources, 2);
	assert_int_equal(v[0].accepted_at, T0);
	free(v);
	fl.receiver = GP2;
	assert_int_equal(store_inbox_list(f->s, &fl, &v, &n), GW_OK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "x1");
	free(v);
	fl = (struct store_inbox_filter){.bsn = BSN, .since = T0 + 10};
	assert_int_equal(store_inbox_list(f->s, &fl, &v, &n), GW_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "m2");
	assert_string_equal(v[1].id, "m3");
	free(v);

	/* Retention up to m2 (exclusive): m1 and x1 go with their index
	   versions, except the Patient m2 carried again unchanged. */
	assert_int_equal(store_prune_inbound(f->s, T0 + 10, &pruned), GW_OK);
	assert_int_equal(pruned, 2);
	EXPECT_FIND(f->r, &q, "Patient/p/1c@m2 Consent/c/2c@m3");
	q.receiver = GP2;
	EXPECT_FIND(f->r, &q, "");
	fl = (struct store_inbox_filter){0};
	assert_int_equal(store_inbox_list(f->s, &fl, &v, &n), GW_OK);
	assert_int_equal(n, 2);
	free(v);
	assert_int_equal(sql_count(f->path, "SELECT count(*) FROM inbox"), 2);
	/* Outbound messages are not the inbound retention's. */
	{
		const char *to[1] = {GP2};
		struct store_accept r = {
		    .id = "out1",
		    .direction = STORE_OUTBOUND,
		    .sender_ura = SENDER,
		    .bundle_value = "out1",
		    .patient_key = "pk",
		    .fhir_version = "4.0.1",
		    .doc = "{}",
		    .doc_len = 2,
		    .sha256 = "s",
		    .accepted_at = T0,
		    .receivers = to,
		    .nreceivers = 1,
		};
		struct store_result res;
		struct store_message *m = NULL;

		assert_int_equal(store_accept(f->s, &r, &res), GW_OK);
		store_result_cleanup(&res);
		assert_int_equal(store_prune_inbound(f->s, T0 + 1000, &pruned),
				 GW_OK);
		assert_int_equal(pruned, 2);
		assert_int_equal(store_get_document(f->s, "out1", &m), GW_OK);
		store_message_free(m);
	}
	assert_int_equal(
	    sql_count(f->path, "SELECT count(*) FROM res_versions"), 0);
}

/* A clock stepped back: the newest version's message is older than the
 * one before it, and retention takes it. The next change is stored (the
 * version after the newest one left) and is current. */
static void
test_newest_pruned(void **state)
{
	struct fixture *f = *state;
	struct store_index_entry v1[] = {ent(
	    "Consent", "c", "{\"resourceType\":\"Consent\",\"v\":1}", false)};
	struct store_index_entry v2[] = {ent(
	    "Consent", "c", "{\"resourceType\":\"Consent\",\"v\":2}", false)};
	struct store_index_entry v3[] = {ent(
	    "Consent", "c", "{\"resourceType\":\"Consent\",\"v\":3}", false)};
	struct store_res_query q = {.receiver = GP1, .history = true};
	size_t pruned = 0;

	assert_int_equal(accept_ix(f->s, "m1", GP1, BSN, v1, 1, T0 + 100),
			 GW_OK);
	assert_int_equal(accept_ix(f->s, "m2", GP1, BSN, v2, 1, T0), GW_OK);
	assert_int_equal(store_prune_inbound(f->s, T0 + 50, &pruned), GW_OK);
	assert_int_equal(pruned, 1);
	/* Version 1 was superseded by the version retention took. */
	EXPECT_FIND(f->r, &q, "Consent/c/1@m1");
	assert_int_equal(accept_ix(f->s, "m3", GP1, BSN, v3, 1, T0 + 200),
			 GW_OK);
	EXPECT_FIND(f->r, &q, "Consent/c/1@m1 Consent/c/2c@m3");
	q.history = false;
	EXPECT_FIND(f->r, &q, "Consent/c/2c@m3");
}

/* Accept messages from..to-1, each for its own patient with three
 * resources of its own, in group commits. */
static void
fill(struct store *s, int from, int to)
{
	static char ids[3][32], bsn[16], mid[16];
	enum gw_err done = GW_OK;

	for (int i = from; i < to; i++) {
		struct store_index_entry e[3];
		struct store_index x = {.receiver = GP1,
					.bsn = bsn,
					.sender = SENDER,
					.entries = e,
					.n = 3};
		struct store_accept r = {
		    .id = mid,
		    .direction = STORE_INBOUND,
		    .sender_ura = SENDER,
		    .bundle_value = mid,
		    .patient_key = "pk",
		    .fhir_version = "4.0.1",
		    .doc = "{}",
		    .doc_len = 2,
		    .sha256 = "s",
		    .answer_status = 202,
		    .index = &x,
		    .nindex = 1,
		};

		snprintf(mid, sizeof(mid), "f%d", i);
		snprintf(bsn, sizeof(bsn), "%09d", i);
		for (int k = 0; k < 3; k++) {
			snprintf(ids[k], sizeof(ids[k]), "r%d-%d", i, k);
			e[k] = ent(k == 0 ? "Patient" : "Consent", ids[k],
				   "{\"resourceType\":\"Consent\"}", false);
		}
		assert_int_equal(store_submit_accept(s, &r, on_done, &done),
				 GW_OK);
		if (i % 256 == 255) {
			store_flush(s);
			store_dispatch(s);
		}
	}
	store_flush(s);
	store_dispatch(s);
	assert_int_equal(done, GW_OK);
}

/* Fastest of 30 reads of one resource by type and id, in us. */
static double
read_us(struct store_reader *rd, const char *id)
{
	struct store_res_query q = {
	    .receiver = GP1, .type = "Consent", .id = id, .snapshot = 1 << 30};
	double best = 1e12;

	for (int k = 0; k < 30; k++) {
		struct store_res *v = NULL;
		struct timespec t0, t1;
		size_t n = 0;
		double us;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(store_res_find(rd, &q, &v, &n), GW_OK);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_int_equal(n, 1);
		store_res_free(v, n);
		us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 +
		     (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
		if (us < best)
			best = us;
	}
	return best;
}

/* A read by type and id takes the same time with 20 times the data (it
 * once walked every version of the receiver in seq order). */
static void
test_read_scales(void **state)
{
	struct fixture *f = *state;
	double small, big;

	fill(f->s, 0, 200);
	small = read_us(f->r, "r100-1");
	fill(f->s, 200, 4000);
	big = read_us(f->r, "r100-1");
	print_message("read by id: %.0f us at 600 versions, %.0f us at "
		      "12000\n",
		      small, big);
	if (big > 4 * small + 100)
		fail_msg("read by id grew from %.0f to %.0f us", small, big);
}

/* The secret is made with the schema and stays: ids survive a restart. */
static void
test_secret(void **state)
{
	struct fixture *f = *state;
	struct store_options o = {.path = f->path};
	unsigned char first[INDEX_SECRET_LEN];
	const unsigned char *sec = store_index_secret(f->s);

	assert_non_null(sec);
	memcpy(first, sec, sizeof(first));
	assert_int_not_equal(memcmp(first, secret1, sizeof(first)), 0);
	store_reader_free(f->r);
	f->r = NULL;
	store_free(f->s);
	assert_int_equal(store_open(&o, &f->s), GW_OK);
	assert_memory_equal(store_index_secret(f->s), first, sizeof(first));
	assert_int_equal(store_reader_open(f->s, &f->r), GW_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SQLITE_SCHEMA);
	assert_int_equal(
	    sql_count(f->path, "SELECT count(*) FROM index_secret"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prepare),
	    cmocka_unit_test(test_served_form),
	    cmocka_unit_test(test_prepare_bsn_only),
	    cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_atomic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_writes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inbox_retention, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_newest_pruned, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_read_scales, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
