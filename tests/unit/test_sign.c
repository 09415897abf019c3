/* Unit tests for PZP-JWS: sign/verify round trips with the development
 * PKI (EC and RSA), and every check that must fail. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "b64.h"
#include "canon.h"
#include "policy.h"
#include "sign.h"
#include "util.h"

struct env {
	char dir[256];
	char pki[300];
	bool rsa;
	struct sign_trust *trust;
	struct sign_trust *trust_crl;
};

static const char *
srcdir(void)
{
	const char *s = getenv("PZPGW_SRCDIR");

	return s != NULL ? s : ".";
}

static int
setup(void **state, bool rsa)
{
	struct env *e = calloc(1, sizeof(*e));
	const char *crl[1];
	char cmd[1024], path[400], errbuf[256];

	if (e == NULL)
		return -1;
	e->rsa = rsa;
	snprintf(e->dir, sizeof(e->dir), "/tmp/pzpgw-test-sign.XXXXXX");
	if (mkdtemp(e->dir) == NULL)
		return -1;
	snprintf(e->pki, sizeof(e->pki), "%s/pki", e->dir);
	snprintf(cmd, sizeof(cmd),
		 "PZPGW_PKI_KEY=%s sh '%s/certs/dev-pki.sh' '%s' --extras "
		 ">/dev/null",
		 rsa ? "rsa" : "ec", srcdir(), e->pki);
	if (system(cmd) != 0) {
		fprintf(stderr, "dev-pki.sh failed\n");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/uzi-server-ca.pem", e->pki);
	if (sign_trust_new(path, NULL, 0, &e->trust, errbuf, sizeof(errbuf)) !=
	    GW_OK) {
		fprintf(stderr, "trust: %s\n", errbuf);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "%s/crl.pem", e->pki);
	crl[0] = cmd;
	if (sign_trust_new(path, crl, 1, &e->trust_crl, errbuf,
			   sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "trust with CRL: %s\n", errbuf);
		return -1;
	}
	*state = e;
	return 0;
}

static int
setup_ec(void **state)
{
	return setup(state, false);
}

static int
setup_rsa(void **state)
{
	return setup(state, true);
}

static int
teardown(void **state)
{
	struct env *e = *state;
	char cmd[400];

	sign_trust_free(e->trust);
	sign_trust_free(e->trust_crl);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", e->dir);
	free(e);
	return 0;
}

static struct fj_doc *
load_doc(const char *name)
{
	struct fj_doc *doc = NULL;
	char path[4096], *text;
	size_t len;

	snprintf(path, sizeof(path), "%s/tests/data/sign/%s", srcdir(), name);
	assert_int_equal(util_read_file(path, 1 << 22, &text, &len), GW_OK);
	assert_int_equal(fj_parse(text, len, 0, &doc, NULL), GW_OK);
	free(text);
	return doc;
}

static struct sign_key *
load_key(const struct env *e, const char *name)
{
	struct sign_key *k = NULL;
	char key[400], cert[400], errbuf[256];
	enum gw_err err;

	snprintf(key, sizeof(key), "%s/%s.key", e->pki, name);
	snprintf(cert, sizeof(cert), "%s/%s.crt", e->pki, name);
	err = sign_key_load(key, cert, NULL, NULL, &k, errbuf, sizeof(errbuf));
	if (err != GW_OK)
		fail_msg("load %s: got %s (%s), want success", name,
			 gw_strerror(err), errbuf);
	return k;
}

/* Load a Bundle and sign it with organisation name at time when. */
static struct fj_doc *
signed_doc(const struct env *e, const char *file, const char *name,
	   enum sign_fhir fhir, int64_t when)
{
	struct fj_doc *doc = load_doc(file);
	struct sign_key *k = load_key(e, name);
	struct sign_opts o = {fhir, SIGN_PURPOSE_VERIFICATION, when};
	char errbuf[256];
	enum gw_err err = sign_bundle(k, doc, &o, NULL, errbuf, sizeof(errbuf));

	if (err != GW_OK)
		fail_msg("sign with %s: got %s (%s)", name, gw_strerror(err),
			 errbuf);
	sign_key_free(k);
	return doc;
}

static enum sign_check
check_doc(const struct env *e, const struct fj_node *bundle,
	  const struct fj_node *prov, const struct sign_trust *trust,
	  const char *ura, int64_t now)
{
	struct sign_verify_opts o = {trust ? trust : e->trust, ura, 300, now};
	struct sign_result r;
	enum gw_err err = sign_verify(bundle, prov, &o, &r);
	enum sign_check c = r.check;

	assert_int_equal(err == GW_OK, c == SIGN_CHECK_OK);
	if (c != SIGN_CHECK_OK)
		assert_true(strlen(r.reason) > 0);
	sign_result_cleanup(&r);
	return c;
}

static void
want_check(enum sign_check got, enum sign_check want, const char *what)
{
	if (got != want)
		fail_msg("%s: got %s, want %s", what, sign_check_name(got),
			 sign_check_name(want));
}

static void
test_roundtrip(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc = load_doc("bundle-20k.json");
	struct sign_key *k = load_key(e, "hospital");
	struct sign_opts o = {SIGN_FHIR_R4, SIGN_PURPOSE_AUTHOR, 0};
	struct sign_output out;
	struct sign_verify_opts vo = {e->trust_crl, "90000002", 300, 0};
	struct sign_result r;
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct buf c;
	char errbuf[256];

	assert_string_equal(sign_key_ura(k), "90000002");
	assert_int_equal(sign_key_alg(k),
			 e->rsa ? SIGN_ALG_PS256 : SIGN_ALG_ES256);
	assert_int_equal(sign_bundle(k, doc, &o, &out, errbuf, sizeof(errbuf)),
			 GW_OK);
	assert_int_equal(sign_verify(doc->root, NULL, &vo, &r), GW_OK);
	assert_int_equal(r.check, SIGN_CHECK_OK);
	assert_string_equal(r.ura, "90000002");
	assert_int_equal(r.alg, sign_key_alg(k));
	assert_int_equal(r.purpose, SIGN_PURPOSE_AUTHOR);
	assert_int_equal(r.sigt, out.sigt);
	assert_string_equal(r.jws, out.jws);
	assert_true(llabs((long long)(out.sigt - util_wall_ms() / 1000)) < 60);
	/* The hash is that of the canonical bytes, computed independently. */
	buf_init(&c, 1 << 22);
	assert_int_equal(canon_resource(doc->root, &c, NULL), GW_OK);
	SHA256((const unsigned char *)c.data, c.len, md);
	assert_memory_equal(r.hash, md, sizeof(md));
	assert_memory_equal(out.hash, md, sizeof(md));
	assert_true(r.have_hash);
	/* Detached: header..signature */
	assert_non_null(strstr(out.jws, ".."));
	assert_int_equal(policy_sign_status(r.check), 200);

	buf_cleanup(&c);
	sign_result_cleanup(&r);
	sign_output_cleanup(&out);
	sign_key_free(k);
	fj_doc_free(doc);
}

static void
test_stu3_and_provenance(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc, *prov = NULL;
	const struct fj_node *sig;
	char errbuf[256];

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_STU3, 0);
	sig = fj_get(doc->root, "signature");
	assert_non_null(fj_get_str(sig, "blob"));
	assert_null(fj_get(sig, "data"));
	assert_true(fj_str_eq(fj_get(sig, "contentType"), "application/jose"));
	want_check(check_doc(e, doc->root, NULL, NULL, "90000002", 0),
		   SIGN_CHECK_OK, "STU3");
	/* STU3 has no Provenance form here */
	assert_int_equal(
	    sign_provenance_new(doc->root, &prov, errbuf, sizeof(errbuf)),
	    GW_INVALID);
	fj_doc_free(doc);

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	assert_int_equal(
	    sign_provenance_new(doc->root, &prov, errbuf, sizeof(errbuf)),
	    GW_OK);
	assert_true(
	    fj_str_eq(fj_get(prov->root, "resourceType"), "Provenance"));
	/* The Bundle's own signature can go: the Provenance carries it. */
	assert_true(fj_remove(doc->root, "signature"));
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_MISSING, "no signature");
	want_check(check_doc(e, doc->root, prov->root, NULL, "90000002", 0),
		   SIGN_CHECK_OK, "Provenance");
	/* Another Bundle is not the target. */
	assert_int_equal(
	    fj_set(doc, doc->root, "id", fj_new_string(doc, "another")), GW_OK);
	assert_true(fj_remove(doc->root, "identifier"));
	want_check(check_doc(e, doc->root, prov->root, NULL, NULL, 0),
		   SIGN_CHECK_TARGET, "Provenance of another Bundle");
	fj_doc_free(prov);
	fj_doc_free(doc);
}

/* Find entry i's resource. */
static struct fj_node *
resource(struct fj_doc *doc, size_t i)
{
	return fj_get(fj_at(fj_get(doc->root, "entry"), i), "resource");
}

static void
test_insignificant_changes(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc =
	    signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	struct fj_doc *again = NULL;
	struct fj_node *meta = fj_new_object(doc);
	struct buf text;

	/* meta and text are not signed */
	assert_int_equal(
	    fj_set(doc, meta, "versionId", fj_new_string(doc, "42")), GW_OK);
	assert_int_equal(fj_set(doc, doc->root, "meta", meta), GW_OK);
	assert_int_equal(
	    fj_set(doc, doc->root, "text", fj_new_string(doc, "changed")),
	    GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0), SIGN_CHECK_OK,
		   "meta/text changed");
	/* reformatted (pretty) and re-parsed */
	buf_init(&text, 1 << 22);
	assert_int_equal(fj_dump(doc->root, FJ_PRETTY, &text), GW_OK);
	assert_int_equal(fj_parse(text.data, text.len, 0, &again, NULL), GW_OK);
	want_check(check_doc(e, again->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_OK, "reformatted");
	buf_cleanup(&text);
	fj_doc_free(again);
	fj_doc_free(doc);
}

static void
test_content_changes(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc;
	struct fj_node *obs, *q;

	/* a changed value */
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	assert_int_equal(fj_set(doc, resource(doc, 1), "status",
				fj_new_string(doc, "inactive")),
			 GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_SIGNATURE, "changed value");
	assert_int_equal(policy_sign_status(SIGN_CHECK_SIGNATURE), 422);
	fj_doc_free(doc);

	/* 1.50 -> 1.5: same double, different FHIR decimal */
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	obs = resource(doc, 2);
	q = fj_get(obs, "valueQuantity");
	assert_non_null(q);
	assert_int_equal(fj_set(doc, q, "value", fj_new_number(doc, "1.5")),
			 GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_SIGNATURE, "1.50 to 1.5");
	fj_doc_free(doc);

	/* an added element */
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	assert_int_equal(fj_set(doc, resource(doc, 0), "deceasedBoolean",
				fj_new_bool(doc, true)),
			 GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_SIGNATURE, "added element");
	fj_doc_free(doc);

	/* a removed element */
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	assert_true(fj_remove(resource(doc, 0), "birthDate"));
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_SIGNATURE, "removed element");
	fj_doc_free(doc);
}

static void
test_copied_signature(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc =
	    signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	struct fj_doc *other = load_doc("bundle-20k.json");
	struct fj_node *copy = fj_copy(other, fj_get(doc->root, "signature"));

	assert_int_equal(fj_set(other, other->root, "signature", copy), GW_OK);
	want_check(check_doc(e, other->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_SIGNATURE, "signature copied onto another");
	fj_doc_free(other);
	fj_doc_free(doc);
}

/* Replace the JWS of a signed Bundle by edit(header) + ".." + sig. */
static void
rewrite_jws(struct fj_doc *doc, void (*edit)(json_t *h, char **sig))
{
	struct fj_node *s = fj_get(doc->root, "signature");
	const char *data = fj_get_str(s, "data");
	struct buf jws, hdr, out, enc;
	json_t *h;
	char *dot, *sig, *text;

	buf_init(&jws, 1 << 20);
	buf_init(&hdr, 1 << 20);
	buf_init(&out, 1 << 20);
	buf_init(&enc, 1 << 20);
	assert_int_equal(b64_decode(data, strlen(data), false, &jws), GW_OK);
	dot = strchr(jws.data, '.');
	assert_non_null(dot);
	assert_int_equal(
	    b64_decode(jws.data, (size_t)(dot - jws.data), true, &hdr), GW_OK);
	h = json_loads(hdr.data, 0, NULL);
	assert_non_null(h);
	sig = strdup(dot + 2);
	edit(h, &sig);
	text = json_dumps(h, JSON_COMPACT);
	assert_int_equal(b64_encode(text, strlen(text), true, &out), GW_OK);
	assert_int_equal(buf_printf(&out, "..%s", sig), GW_OK);
	assert_int_equal(b64_encode(out.data, out.len, false, &enc), GW_OK);
	assert_int_equal(fj_set(doc, s, "data", fj_new_string(doc, enc.data)),
			 GW_OK);
	free(text);
	free(sig);
	json_decref(h);
	buf_cleanup(&jws);
	buf_cleanup(&hdr);
	buf_cleanup(&out);
	buf_cleanup(&enc);
}

static void
edit_none(json_t *h, char **sig)
{
	json_object_set_new(h, "alg", json_string("none"));
	(*sig)[0] = '\0';
}

static void
edit_hs256(json_t *h, char **sig)
{
	json_object_set_new(h, "alg", json_string("HS256"));
}

static void
edit_extra(json_t *h, char **sig)
{
	json_object_set_new(h, "note", json_string("added later"));
}

static void
edit_canon(json_t *h, char **sig)
{
	json_object_set_new(h, "canon",
			    json_string("http://hl7.org/fhir/canonicalization/"
					"json#document"));
}

static void
edit_crit(json_t *h, char **sig)
{
	json_object_set_new(h, "crit", json_pack("[s]", "exp"));
}

static char *gp1_der_b64;

static void
edit_swap_cert(json_t *h, char **sig)
{
	json_array_set_new(json_object_get(h, "x5c"), 0,
			   json_string(gp1_der_b64));
	json_object_del(h, "x5t#S256");
}

static void
test_header_attacks(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc;
	struct sign_key *gp1;
	char path[400];
	FILE *fp;
	X509 *c;
	unsigned char *der = NULL;
	int n;
	struct buf b;

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	rewrite_jws(doc, edit_extra);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_SIGNATURE, "header parameter added");
	fj_doc_free(doc);

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	rewrite_jws(doc, edit_none);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0), SIGN_CHECK_ALG,
		   "alg none");
	fj_doc_free(doc);

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	rewrite_jws(doc, edit_hs256);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0), SIGN_CHECK_ALG,
		   "alg HS256");
	fj_doc_free(doc);

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	rewrite_jws(doc, edit_canon);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_CANON, "other canonicalization");
	fj_doc_free(doc);

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	rewrite_jws(doc, edit_crit);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_MALFORMED, "unknown crit");
	fj_doc_free(doc);

	/* Swapped certificate: gp1's certificate in x5c[0]. */
	snprintf(path, sizeof(path), "%s/gp1-leaf.crt", e->pki);
	assert_non_null(fp = fopen(path, "r"));
	assert_non_null(c = PEM_read_X509(fp, NULL, NULL, NULL));
	fclose(fp);
	assert_true((n = i2d_X509(c, &der)) > 0);
	buf_init(&b, 1 << 16);
	assert_int_equal(b64_encode(der, (size_t)n, false, &b), GW_OK);
	gp1_der_b64 = b.data;
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	rewrite_jws(doc, edit_swap_cert);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_SIGNATURE, "swapped certificate");
	fj_doc_free(doc);
	gp1_der_b64 = NULL;
	buf_cleanup(&b);
	OPENSSL_free(der);
	X509_free(c);
	/* The gp1 key itself still signs fine. */
	gp1 = load_key(e, "gp1");
	sign_key_free(gp1);
}

static void
test_identity_failures(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc;
	struct fj_node *who;

	/* expired: signed while valid, expired since */
	doc = signed_doc(e, "bundle-small.json", "expired", SIGN_FHIR_R4,
			 1590969600); /* 2020-06-01 */
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_EXPIRED, "expired certificate");
	assert_int_equal(policy_sign_status(SIGN_CHECK_EXPIRED), 401);
	fj_doc_free(doc);

	/* revoked: only with the CRL */
	doc = signed_doc(e, "bundle-small.json", "revoked", SIGN_FHIR_R4, 0);
	want_check(check_doc(e, doc->root, NULL, e->trust_crl, NULL, 0),
		   SIGN_CHECK_REVOKED, "revoked certificate");
	want_check(check_doc(e, doc->root, NULL, e->trust, NULL, 0),
		   SIGN_CHECK_OK, "revoked, no CRL configured");
	assert_int_equal(policy_sign_status(SIGN_CHECK_REVOKED), 401);
	fj_doc_free(doc);

	/* untrusted chain */
	doc = signed_doc(e, "bundle-small.json", "otherca", SIGN_FHIR_R4, 0);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_UNTRUSTED, "other CA");
	assert_int_equal(policy_sign_status(SIGN_CHECK_UNTRUSTED), 401);
	fj_doc_free(doc);

	/* wrong URA: expected by the caller, or claimed in who */
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	want_check(check_doc(e, doc->root, NULL, NULL, "90000003", 0),
		   SIGN_CHECK_URA, "expected URA");
	{
		struct sign_verify_opts o = {e->trust, "90000003", 300, 0};
		struct sign_result r;
		json_t *oo, *issue;
		assert_int_equal(sign_verify(doc->root, NULL, &o, &r),
				 GW_CRYPTO);
		assert_non_null(oo = policy_sign_outcome(&r));
		issue = json_array_get(json_object_get(oo, "issue"), 0);
		assert_string_equal(
		    json_string_value(json_object_get(issue, "code")),
		    "security");
		assert_non_null(strstr(
		    json_string_value(json_object_get(issue, "diagnostics")),
		    "ura"));
		json_decref(oo);
		sign_result_cleanup(&r);
	}
	assert_int_equal(policy_sign_status(SIGN_CHECK_URA), 401);
	who =
	    fj_get(fj_get(fj_get(doc->root, "signature"), "who"), "identifier");
	assert_int_equal(
	    fj_set(doc, who, "value", fj_new_string(doc, "90000003")), GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0), SIGN_CHECK_URA,
		   "who differs from certificate");
	fj_doc_free(doc);

	/* sigT in the future: an hour is too much, 200 s within skew */
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4,
			 util_wall_ms() / 1000 + 3600);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_TIME, "future sigT");
	fj_doc_free(doc);
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4,
			 util_wall_ms() / 1000 + 200);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0), SIGN_CHECK_OK,
		   "within skew");
	fj_doc_free(doc);
}

static void
test_malformed(void **state)
{
	struct env *e = *state;
	struct fj_doc *doc;
	struct fj_node *s, *arr;

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	s = fj_get(doc->root, "signature");
	assert_int_equal(fj_set(doc, s, "data", fj_new_string(doc, "%%%")),
			 GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_MALFORMED, "data not base64");
	/* "a.b.c": payload not detached (base64 of "a.b.c") */
	assert_int_equal(fj_set(doc, s, "data", fj_new_string(doc, "YS5iLmM=")),
			 GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_MALFORMED, "attached payload");
	assert_int_equal(policy_sign_status(SIGN_CHECK_MALFORMED), 422);
	fj_doc_free(doc);

	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	s = fj_get(doc->root, "signature");
	assert_int_equal(
	    fj_set(doc, s, "targetFormat",
		   fj_new_string(doc, "application/fhir+json;"
				      "canonicalization=urn:other")),
	    GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_CANON, "targetFormat");
	fj_doc_free(doc);

	/* two signatures */
	doc = signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	arr = fj_new_array(doc);
	fj_append(arr, fj_copy(doc, fj_get(doc->root, "signature")));
	fj_append(arr, fj_copy(doc, fj_get(doc->root, "signature")));
	assert_int_equal(fj_set(doc, doc->root, "signature", arr), GW_OK);
	want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
		   SIGN_CHECK_MISSING, "two signatures");
	fj_doc_free(doc);
}

static void
test_key_loading(void **state)
{
	struct env *e = *state;
	struct sign_key *k = NULL;
	struct fj_doc *doc;
	struct sign_opts o = {SIGN_FHIR_R4, SIGN_PURPOSE_VERIFICATION, 0};
	char key[400], cert[400], copy[400], errbuf[256], *text;
	size_t len;
	struct buf before, after;

	snprintf(key, sizeof(key), "%s/hospital.key", e->pki);
	snprintf(cert, sizeof(cert), "%s/hospital.crt", e->pki);
	snprintf(copy, sizeof(copy), "%s/loose.key", e->dir);
	assert_int_equal(util_read_file(key, 1 << 16, &text, &len), GW_OK);
	assert_int_equal(util_write_file(copy, text, len, 0640), GW_OK);
	OPENSSL_cleanse(text, len);
	free(text);
	assert_int_equal(chmod(copy, 0640), 0);
	assert_int_equal(
	    sign_key_load(copy, cert, NULL, NULL, &k, errbuf, sizeof(errbuf)),
	    GW_DENIED);
	assert_null(k);
	assert_non_null(strstr(errbuf, "group or others"));
	assert_int_equal(chmod(copy, 0600), 0);
	assert_int_equal(
	    sign_key_load(copy, cert, NULL, NULL, &k, errbuf, sizeof(errbuf)),
	    GW_OK);
	sign_key_free(k);
	k = NULL;

	/* wrong algorithm for the key, unknown algorithm */
	assert_int_equal(sign_key_load(key, cert, NULL,
				       e->rsa ? "ES256" : "PS256", &k, errbuf,
				       sizeof(errbuf)),
			 GW_INVALID);
	assert_int_equal(
	    sign_key_load(key, cert, NULL, "HS256", &k, errbuf, sizeof(errbuf)),
	    GW_INVALID);
	/* a certificate of another key; one without a URA */
	snprintf(cert, sizeof(cert), "%s/gp1.crt", e->pki);
	assert_int_equal(
	    sign_key_load(key, cert, NULL, NULL, &k, errbuf, sizeof(errbuf)),
	    GW_CRYPTO);
	snprintf(key, sizeof(key), "%s/noura.key", e->pki);
	snprintf(cert, sizeof(cert), "%s/noura.crt", e->pki);
	assert_int_equal(
	    sign_key_load(key, cert, NULL, NULL, &k, errbuf, sizeof(errbuf)),
	    GW_INVALID);
	assert_int_equal(sign_key_load("/nonexistent/k.key", cert, NULL, NULL,
				       &k, errbuf, sizeof(errbuf)),
			 GW_NOTFOUND);
	assert_null(k);

	/* RS256 when configured for an RSA key */
	if (e->rsa) {
		snprintf(key, sizeof(key), "%s/hospital.key", e->pki);
		snprintf(cert, sizeof(cert), "%s/hospital.crt", e->pki);
		assert_int_equal(sign_key_load(key, cert, NULL, "RS256", &k,
					       errbuf, sizeof(errbuf)),
				 GW_OK);
		doc = load_doc("bundle-small.json");
		assert_int_equal(
		    sign_bundle(k, doc, &o, NULL, errbuf, sizeof(errbuf)),
		    GW_OK);
		want_check(check_doc(e, doc->root, NULL, NULL, NULL, 0),
			   SIGN_CHECK_OK, "RS256");
		fj_doc_free(doc);
		sign_key_free(k);
		k = NULL;
	}

	/* signing what is not a Bundle fails and changes nothing; an
	 * expired certificate does not sign now */
	k = load_key(e, "hospital");
	doc = load_doc("bundle-small.json");
	assert_int_equal(fj_set(doc, doc->root, "resourceType",
				fj_new_string(doc, "Patient")),
			 GW_OK);
	buf_init(&before, 1 << 20);
	buf_init(&after, 1 << 20);
	assert_int_equal(fj_dump(doc->root, 0, &before), GW_OK);
	assert_int_equal(sign_bundle(k, doc, &o, NULL, errbuf, sizeof(errbuf)),
			 GW_INVALID);
	assert_int_equal(fj_dump(doc->root, 0, &after), GW_OK);
	assert_string_equal(before.data, after.data);
	buf_cleanup(&before);
	buf_cleanup(&after);
	fj_doc_free(doc);
	sign_key_free(k);
	k = load_key(e, "expired");
	doc = load_doc("bundle-small.json");
	assert_int_equal(sign_bundle(k, doc, &o, NULL, errbuf, sizeof(errbuf)),
			 GW_CRYPTO);
	assert_null(fj_get(doc->root, "signature"));
	fj_doc_free(doc);
	sign_key_free(k);
}

struct verify_job {
	const struct env *e;
	const struct fj_node *ok, *bad;
	int failures;
};

static void *
verify_thread(void *arg)
{
	struct verify_job *j = arg;
	struct sign_verify_opts o = {j->e->trust_crl, "90000002", 300, 0};
	struct sign_result r;

	for (int i = 0; i < 40; i++) {
		const struct fj_node *b = i % 2 ? j->bad : j->ok;
		enum gw_err err = sign_verify(b, NULL, &o, &r);
		if ((i % 2 == 0) != (err == GW_OK) ||
		    (i % 2 == 0 && strcmp(r.ura, "90000002") != 0))
			j->failures++;
		sign_result_cleanup(&r);
	}
	return NULL;
}

/* One trust object (and its certificate cache) shared by threads. */
static void
test_concurrent_verify(void **state)
{
	struct env *e = *state;
	struct fj_doc *ok =
	    signed_doc(e, "bundle-small.json", "hospital", SIGN_FHIR_R4, 0);
	struct fj_doc *bad =
	    signed_doc(e, "bundle-small.json", "gp1", SIGN_FHIR_R4, 0);
	struct verify_job jobs[4];
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct verify_job){e, ok->root, bad->root, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, verify_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].failures, 0);
	}
	fj_doc_free(ok);
	fj_doc_free(bad);
}

static void
test_time_parse(void **state)
{
	int64_t t;

	assert_true(sign_time_parse("1970-01-01T00:00:00Z", &t));
	assert_int_equal(t, 0);
	assert_true(sign_time_parse("2020-06-01T00:00:00Z", &t));
	assert_int_equal(t, 1590969600);
	assert_true(sign_time_parse("2020-06-01T02:00:00.123+02:00", &t));
	assert_int_equal(t, 1590969600);
	assert_true(sign_time_parse("2000-02-29T23:59:59-01:00", &t));
	assert_int_equal(t, 951872399);
	assert_false(sign_time_parse("2020-06-01", &t));
	assert_false(sign_time_parse("2020-06-01T00:00:00", &t));
	assert_false(sign_time_parse("2020-13-01T00:00:00Z", &t));
	assert_false(sign_time_parse("2020-06-01T00:00:00Zjunk", &t));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_stu3_and_provenance),
	    cmocka_unit_test(test_insignificant_changes),
	    cmocka_unit_test(test_content_changes),
	    cmocka_unit_test(test_copied_signature),
	    cmocka_unit_test(test_header_attacks),
	    cmocka_unit_test(test_identity_failures),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_key_loading),
	    cmocka_unit_test(test_concurrent_verify),
	};
	const struct CMUnitTest plain[] = {
	    cmocka_unit_test(test_time_parse),
	};
	int fails = 0;

	fails += cmocka_run_group_tests_name("plain", plain, NULL, NULL);
	fails += cmocka_run_group_tests_name("ec", tests, setup_ec, teardown);
	fails += cmocka_run_group_tests_name("rsa", tests, setup_rsa, teardown);
	return fails != 0;
}
