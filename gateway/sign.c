/*
 * PZP-JWS signing and verification with OpenSSL: key loading through the
 * store API, detached JWS over canonical FHIR JSON, chain/CRL/URA checks.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "buf.h"
#include "canon.h"
#include "sign.h"
#include "tls.h"
#include "util.h"

#define SIGN_MAX_CERTS	  10
#define SIGN_MAX_JWS	  (256 * 1024)
#define SIGN_MAX_CANON	  (64 * 1024 * 1024)
#define SIGN_MIN_RSA_BITS 2048
#define SIGN_ES256_LEN	  64
#define SIGN_PROV_TYPE_SYS                                                     \
	"http://terminology.hl7.org/CodeSystem/provenance-participant-type"

struct sign_key {
	EVP_PKEY *pkey;
	X509 *cert;
	STACK_OF(X509) * chain; /* certificates after the leaf */
	enum sign_alg alg;
	char ura[CONFIG_URA_LEN + 1];
	char *x5c;	/* JSON array text of the x5c header */
	char thumb[48]; /* x5t#S256, also the kid */
};

/* Certificates seen in x5c headers, parsed once: a peer sends the same
 * chain with every message, and parsing is the costliest step of a
 * verification after the signatures themselves. */
#define SIGN_CACHE 32

struct sign_cached {
	unsigned char md[SHA256_DIGEST_LENGTH]; /* of the DER bytes */
	X509 *cert;
	int ura_state; /* 0 unknown, 1 ura holds it, -1 none */
	char ura[CONFIG_URA_LEN + 1];
};

struct sign_trust {
	X509_STORE *store;
	bool have_crl;
	pthread_mutex_t lock; /* guards the cache */
	struct sign_cached cache[SIGN_CACHE];
	unsigned next; /* slot to replace next */
};

static const char *const sign_alg_names[] = {
    [SIGN_ALG_PS256] = "PS256",
    [SIGN_ALG_RS256] = "RS256",
    [SIGN_ALG_ES256] = "ES256",
};

const char *
sign_alg_name(enum sign_alg alg)
{
	if ((unsigned)alg >= UTIL_ARRAY_LEN(sign_alg_names))
		return "?";
	return sign_alg_names[alg];
}

const char *
sign_purpose_name(enum sign_purpose p)
{
	return p == SIGN_PURPOSE_AUTHOR ? "author" : "verification";
}

static const char *
sign_purpose_oid(enum sign_purpose p)
{
	return p == SIGN_PURPOSE_AUTHOR ? SIGN_OID_AUTHOR
					: SIGN_OID_VERIFICATION;
}

static bool
sign_alg_parse(const char *s, enum sign_alg *out)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(sign_alg_names); i++)
		if (strcmp(s, sign_alg_names[i]) == 0) {
			*out = (enum sign_alg)i;
			return true;
		}
	return false;
}

/* Write a message to errbuf, followed by OpenSSL's first queued error
 * when there is one; the queue is cleared. */
static void sign_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
sign_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	unsigned long e = ERR_peek_error();
	va_list ap;
	size_t n;

	if (errbuf == NULL || errlen == 0) {
		ERR_clear_error();
		return;
	}
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	n = strlen(errbuf);
	if (e != 0 && n + 3 < errlen) {
		char ebuf[200];
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		snprintf(errbuf + n, errlen - n, " (%s)", ebuf);
	}
	ERR_clear_error();
}

/* ---- time ---- */

static bool
sign_digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

bool
sign_time_parse(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, oh, om;
	size_t i = 19;
	int64_t t;

	if (strlen(s) < 20 || !sign_digits(s, 4, &y) || s[4] != '-' ||
	    !sign_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !sign_digits(s + 8, 2, &d) || s[10] != 'T' ||
	    !sign_digits(s + 11, 2, &h) || s[13] != ':' ||
	    !sign_digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !sign_digits(s + 17, 2, &sec))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return false;
	if (s[i] == '.') {
		i++;
		if (s[i] < '0' || s[i] > '9')
			return false;
		while (s[i] >= '0' && s[i] <= '9')
			i++;
	}
	t = util_days_from_civil(y, (int)mo, (int)d) * 86400 + h * 3600 +
	    mi * 60 + sec;
	if (s[i] == 'Z' && s[i + 1] == '\0') {
		*out = t;
		return true;
	}
	if ((s[i] != '+' && s[i] != '-') || !sign_digits(s + i + 1, 2, &oh) ||
	    s[i + 3] != ':' || !sign_digits(s + i + 4, 2, &om) ||
	    s[i + 6] != '\0' || oh > 23 || om > 59)
		return false;
	*out =
	    s[i] == '+' ? t - (oh * 3600 + om * 60) : t + oh * 3600 + om * 60;
	return true;
}

static int64_t
sign_now(int64_t now)
{
	return now != 0 ? now : util_wall_ms() / 1000;
}

/* ---- key loading ---- */

/* True when s starts with a URI scheme other than file: (so it names a
 * store object, not a file whose mode can be checked). */
static bool
sign_is_uri(const char *s)
{
	size_t i = 0;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	while (s[i] != '\0' && s[i] != ':' && s[i] != '/')
		i++;
	if (s[i] != ':' || i < 2)
		return false;
	return strncmp(s, "file:", 5) != 0;
}

static const char *
sign_file_path(const char *s)
{
	if (strncmp(s, "file://", 7) == 0)
		return s + 7;
	if (strncmp(s, "file:", 5) == 0)
		return s + 5;
	return s;
}

static enum gw_err
sign_check_file(const char *what, const char *uri, bool secret, char *errbuf,
		size_t errlen)
{
	struct stat st;
	const char *path;

	if (sign_is_uri(uri))
		return GW_OK;
	path = sign_file_path(uri);
	if (stat(path, &st) != 0) {
		snprintf(errbuf, errlen, "%s %s: cannot read", what, path);
		return GW_NOTFOUND;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(errbuf, errlen, "%s %s: not a regular file", what,
			 path);
		return GW_IO;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(errbuf, errlen,
			 "%s %s: accessible by group or others (mode %04o); "
			 "chmod 600 it",
			 what, path, (unsigned)(st.st_mode & 07777));
		return GW_DENIED;
	}
	return GW_OK;
}

/* Load the first private key (want_key) or every certificate from uri
 * through the OpenSSL store API. */
static enum gw_err
sign_store_load(const char *uri, bool want_key, EVP_PKEY **pkey,
		STACK_OF(X509) * certs, char *errbuf, size_t errlen)
{
	OSSL_STORE_CTX *sc;
	OSSL_STORE_INFO *info;
	enum gw_err err = GW_OK;
	int guard = 0;

	ERR_clear_error();
	if ((sc = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL)) == NULL) {
		sign_errf(errbuf, errlen, "%s: cannot open", uri);
		return GW_IO;
	}
	OSSL_STORE_expect(sc, want_key ? OSSL_STORE_INFO_PKEY
				       : OSSL_STORE_INFO_CERT);
	while (!OSSL_STORE_eof(sc) && guard++ < 1000) {
		if ((info = OSSL_STORE_load(sc)) == NULL) {
			if (OSSL_STORE_error(sc))
				break;
			continue;
		}
		if (want_key &&
		    OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
			*pkey = OSSL_STORE_INFO_get1_PKEY(info);
			OSSL_STORE_INFO_free(info);
			break;
		}
		if (!want_key &&
		    OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_CERT) {
			X509 *c = OSSL_STORE_INFO_get1_CERT(info);
			if (c == NULL || sk_X509_num(certs) >= SIGN_MAX_CERTS ||
			    !sk_X509_push(certs, c)) {
				X509_free(c);
				OSSL_STORE_INFO_free(info);
				snprintf(errbuf, errlen,
					 "%s: too many certificates", uri);
				err = GW_INVALID;
				goto done;
			}
		}
		OSSL_STORE_INFO_free(info);
	}
	if (want_key && *pkey == NULL) {
		sign_errf(errbuf, errlen, "%s: no private key found", uri);
		err = GW_CRYPTO;
	} else if (!want_key && sk_X509_num(certs) == 0) {
		sign_errf(errbuf, errlen, "%s: no certificate found", uri);
		err = GW_CRYPTO;
	}
done:
	OSSL_STORE_close(sc);
	ERR_clear_error();
	return err;
}

/* True when pkey can make or check signatures of alg. */
static bool
sign_key_fits(EVP_PKEY *pkey, enum sign_alg alg, char *why, size_t whylen)
{
	char group[64];

	if (alg == SIGN_ALG_ES256) {
		if (!EVP_PKEY_is_a(pkey, "EC")) {
			snprintf(why, whylen, "ES256 needs an EC P-256 key");
			return false;
		}
		if (!EVP_PKEY_get_utf8_string_param(
			pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
			NULL) ||
		    (strcmp(group, "prime256v1") != 0 &&
		     strcmp(group, "P-256") != 0)) {
			snprintf(why, whylen, "ES256 needs the P-256 curve");
			return false;
		}
		return true;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		snprintf(why, whylen, "%s needs an RSA key",
			 sign_alg_name(alg));
		return false;
	}
	if (EVP_PKEY_get_bits(pkey) < SIGN_MIN_RSA_BITS) {
		snprintf(why, whylen, "RSA key shorter than %d bits",
			 SIGN_MIN_RSA_BITS);
		return false;
	}
	return true;
}

static enum gw_err
sign_cert_der_b64(X509 *cert, bool url_thumb, struct buf *out)
{
	unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
	int n = i2d_X509(cert, &der);
	enum gw_err err;

	if (n <= 0)
		return GW_CRYPTO;
	if (url_thumb) {
		SHA256(der, (size_t)n, md);
		err = b64_encode(md, sizeof(md), true, out);
	} else {
		err = b64_encode(der, (size_t)n, false, out);
	}
	OPENSSL_free(der);
	return err;
}

enum gw_err
sign_key_load(const char *key, const char *cert, const char *chain,
	      const char *alg, struct sign_key **out, char *errbuf,
	      size_t errlen)
{
	struct sign_key *k;
	STACK_OF(X509) *certs = NULL;
	struct buf b;
	char why[128];
	enum gw_err err;
	int i;

	*out = NULL;
	buf_init(&b, 1024 * 1024);
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (certs = sk_X509_new_null()) == NULL ||
	    (k->chain = sk_X509_new_null()) == NULL) {
		err = GW_NOMEM;
		snprintf(errbuf, errlen, "out of memory");
		goto fail;
	}
	if ((err = sign_check_file("signing key", key, true, errbuf, errlen)) !=
		GW_OK ||
	    (err = sign_check_file("certificate", cert, false, errbuf,
				   errlen)) != GW_OK ||
	    (chain != NULL && (err = sign_check_file("chain", chain, false,
						     errbuf, errlen)) != GW_OK))
		goto fail;
	if ((err = sign_store_load(key, true, &k->pkey, NULL, errbuf,
				   errlen)) != GW_OK ||
	    (err = sign_store_load(cert, false, NULL, certs, errbuf, errlen)) !=
		GW_OK ||
	    (chain != NULL && (err = sign_store_load(chain, false, NULL, certs,
						     errbuf, errlen)) != GW_OK))
		goto fail;
	k->cert = sk_X509_shift(certs);
	/* The rest is the chain, without repeats of what came before. */
	while (sk_X509_num(certs) > 0) {
		X509 *c = sk_X509_shift(certs);
		bool dup = X509_cmp(c, k->cert) == 0;
		for (i = 0; !dup && i < sk_X509_num(k->chain); i++)
			dup = X509_cmp(c, sk_X509_value(k->chain, i)) == 0;
		if (dup || !sk_X509_push(k->chain, c)) {
			X509_free(c);
			if (!dup) {
				err = GW_NOMEM;
				goto fail;
			}
		}
	}
	if (X509_check_private_key(k->cert, k->pkey) != 1) {
		sign_errf(errbuf, errlen,
			  "certificate %s does not belong to key %s", cert,
			  key);
		err = GW_CRYPTO;
		goto fail;
	}
	if (alg != NULL) {
		if (!sign_alg_parse(alg, &k->alg)) {
			snprintf(errbuf, errlen,
				 "unknown algorithm '%s' (PS256, RS256, ES256)",
				 alg);
			err = GW_INVALID;
			goto fail;
		}
	} else {
		k->alg = EVP_PKEY_is_a(k->pkey, "RSA") ? SIGN_ALG_PS256
						       : SIGN_ALG_ES256;
	}
	if (!sign_key_fits(k->pkey, k->alg, why, sizeof(why))) {
		snprintf(errbuf, errlen, "key %s: %s", key, why);
		err = GW_INVALID;
		goto fail;
	}
	if ((X509_get_extension_flags(k->cert) & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(k->cert) & KU_DIGITAL_SIGNATURE)) {
		snprintf(errbuf, errlen,
			 "certificate %s: keyUsage lacks digitalSignature",
			 cert);
		err = GW_INVALID;
		goto fail;
	}
	if (tls_cert_ura(k->cert, k->ura) != GW_OK) {
		snprintf(errbuf, errlen, "certificate %s carries no URA", cert);
		err = GW_INVALID;
		goto fail;
	}
	/* Header parts that stay the same for every signature. */
	if ((err = sign_cert_der_b64(k->cert, true, &b)) != GW_OK)
		goto fail;
	util_strlcpy(k->thumb, b.data, sizeof(k->thumb));
	b.len = 0;
	if ((err = buf_adds(&b, "[\"")) != GW_OK ||
	    (err = sign_cert_der_b64(k->cert, false, &b)) != GW_OK)
		goto fail;
	for (i = 0; i < sk_X509_num(k->chain); i++)
		if ((err = buf_adds(&b, "\",\"")) != GW_OK ||
		    (err = sign_cert_der_b64(sk_X509_value(k->chain, i), false,
					     &b)) != GW_OK)
			goto fail;
	if ((err = buf_adds(&b, "\"]")) != GW_OK)
		goto fail;
	k->x5c = buf_steal(&b, NULL);
	sk_X509_pop_free(certs, X509_free);
	*out = k;
	return GW_OK;
fail:
	if (err == GW_NOMEM || err == GW_TOOBIG)
		snprintf(errbuf, errlen, "%s", gw_strerror(err));
	buf_cleanup(&b);
	sk_X509_pop_free(certs, X509_free);
	sign_key_free(k);
	ERR_clear_error();
	return err;
}

void
sign_key_free(struct sign_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey); /* OpenSSL clears the key material */
	X509_free(key->cert);
	sk_X509_pop_free(key->chain, X509_free);
	free(key->x5c);
	OPENSSL_cleanse(key, sizeof(*key));
	free(key);
}

const char *
sign_key_ura(const struct sign_key *key)
{
	return key->ura;
}

enum sign_alg
sign_key_alg(const struct sign_key *key)
{
	return key->alg;
}

/* ---- JWS primitives ---- */

/* Sign tbs with pkey per alg; the JWS signature bytes go to sig. */
static enum gw_err
sign_raw(EVP_PKEY *pkey, enum sign_alg alg, const char *tbs, size_t tbslen,
	 struct buf *sig)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL, rs[SIGN_ES256_LEN];
	const unsigned char *p;
	ECDSA_SIG *es = NULL;
	size_t len = 0;
	enum gw_err err = GW_CRYPTO;

	if ((mctx = EVP_MD_CTX_new()) == NULL)
		return GW_NOMEM;
	if (EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL, pkey) != 1)
		goto done;
	if (alg == SIGN_ALG_PS256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1))
		goto done;
	if (alg == SIGN_ALG_RS256 &&
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
		goto done;
	if (EVP_DigestSign(mctx, NULL, &len, (const unsigned char *)tbs,
			   tbslen) != 1 ||
	    (der = OPENSSL_malloc(len)) == NULL ||
	    EVP_DigestSign(mctx, der, &len, (const unsigned char *)tbs,
			   tbslen) != 1)
		goto done;
	if (alg == SIGN_ALG_ES256) {
		/* JWS wants r||s, 32 bytes each, not DER. */
		const BIGNUM *r, *s;
		p = der;
		if ((es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
			goto done;
		ECDSA_SIG_get0(es, &r, &s);
		if (BN_bn2binpad(r, rs, 32) != 32 ||
		    BN_bn2binpad(s, rs + 32, 32) != 32)
			goto done;
		err = buf_add(sig, rs, sizeof(rs));
	} else {
		err = buf_add(sig, der, len);
	}
done:
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(mctx);
	return err;
}

/* Check a JWS signature over tbs. Returns 1 valid, 0 invalid, -1 when
 * the signature bytes are malformed for alg. */
static int
sign_raw_verify(EVP_PKEY *pkey, enum sign_alg alg, const char *tbs,
		size_t tbslen, const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	int derlen, ok = 0;

	if (alg == SIGN_ALG_ES256) {
		if (siglen != SIGN_ES256_LEN)
			return -1;
		if ((es = ECDSA_SIG_new()) == NULL ||
		    (r = BN_bin2bn(sig, 32, NULL)) == NULL ||
		    (s = BN_bin2bn(sig + 32, 32, NULL)) == NULL ||
		    ECDSA_SIG_set0(es, r, s) != 1) {
			BN_free(r);
			BN_free(s);
			goto done;
		}
		if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
			goto done;
		sig = der;
		siglen = (size_t)derlen;
	}
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, &pctx, EVP_sha256(), NULL, pkey) != 1)
		goto done;
	if (alg == SIGN_ALG_PS256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1))
		goto done;
	if (alg == SIGN_ALG_RS256 &&
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
		goto done;
	ok = EVP_DigestVerify(mctx, sig, siglen, (const unsigned char *)tbs,
			      tbslen) == 1;
done:
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(mctx);
	ERR_clear_error();
	return ok;
}

/* ---- signing ---- */

static enum gw_err
sign_set_str(struct fj_doc *doc, struct fj_node *obj, const char *key,
	     const char *val)
{
	struct fj_node *n = fj_new_string(doc, val);

	return n == NULL ? GW_NOMEM : fj_set(doc, obj, key, n);
}

/* {"system": system, "value": value} */
static struct fj_node *
sign_new_identifier(struct fj_doc *doc, const char *system, const char *value)
{
	struct fj_node *id = fj_new_object(doc);

	if (id == NULL || sign_set_str(doc, id, "system", system) != GW_OK ||
	    sign_set_str(doc, id, "value", value) != GW_OK)
		return NULL;
	return id;
}

/* The Signature element for the JWS text jws. */
static struct fj_node *
sign_new_element(struct fj_doc *doc, const struct sign_key *key,
		 const struct sign_opts *opts, const char *when,
		 const char *data)
{
	struct fj_node *sig, *types, *coding, *who, *id;
	bool r4 = opts->fhir == SIGN_FHIR_R4;

	if ((sig = fj_new_object(doc)) == NULL ||
	    (types = fj_new_array(doc)) == NULL ||
	    (coding = fj_new_object(doc)) == NULL ||
	    (who = fj_new_object(doc)) == NULL ||
	    (id = sign_new_identifier(doc, SIGN_URA_SYSTEM, key->ura)) == NULL)
		return NULL;
	if (sign_set_str(doc, coding, "system", SIGN_TYPE_SYSTEM) != GW_OK ||
	    sign_set_str(doc, coding, "code",
			 sign_purpose_oid(opts->purpose)) != GW_OK ||
	    sign_set_str(doc, coding, "display",
			 opts->purpose == SIGN_PURPOSE_AUTHOR
			     ? "Author's Signature"
			     : "Verification Signature") != GW_OK)
		return NULL;
	fj_append(types, coding);
	if (fj_set(doc, sig, "type", types) != GW_OK ||
	    sign_set_str(doc, sig, "when", when) != GW_OK ||
	    fj_set(doc, who, "identifier", id) != GW_OK ||
	    fj_set(doc, sig, r4 ? "who" : "whoReference", who) != GW_OK)
		return NULL;
	if (r4) {
		if (sign_set_str(doc, sig, "targetFormat",
				 CANON_TARGET_FORMAT) != GW_OK ||
		    sign_set_str(doc, sig, "sigFormat", SIGN_SIGFORMAT) !=
			GW_OK ||
		    sign_set_str(doc, sig, "data", data) != GW_OK)
			return NULL;
	} else {
		if (sign_set_str(doc, sig, "contentType", SIGN_SIGFORMAT) !=
			GW_OK ||
		    sign_set_str(doc, sig, "blob", data) != GW_OK)
			return NULL;
	}
	return sig;
}

enum gw_err
sign_bundle(const struct sign_key *key, struct fj_doc *doc,
	    const struct sign_opts *opts, struct sign_output *out, char *errbuf,
	    size_t errlen)
{
	struct buf canon, tbs, sig, jws, data;
	struct fj_node *elem;
	struct fj_error ferr;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char when[32];
	int64_t t = sign_now(opts->when);
	size_t hdrlen;
	enum gw_err err;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	buf_init(&canon, SIGN_MAX_CANON);
	buf_init(&tbs, SIGN_MAX_CANON / 3 * 4 + 65536);
	buf_init(&sig, SIGN_MAX_JWS);
	buf_init(&jws, SIGN_MAX_JWS);
	buf_init(&data, SIGN_MAX_JWS / 3 * 4 + 4);
	if (doc == NULL || doc->root == NULL ||
	    !fj_str_eq(fj_get(doc->root, "resourceType"), "Bundle")) {
		snprintf(errbuf, errlen, "not a FHIR Bundle");
		err = GW_INVALID;
		goto done;
	}
	if (ASN1_TIME_cmp_time_t(X509_get0_notBefore(key->cert), (time_t)t) >
		0 ||
	    ASN1_TIME_cmp_time_t(X509_get0_notAfter(key->cert), (time_t)t) <
		0) {
		snprintf(errbuf, errlen,
			 "signing certificate not valid at the signing time");
		err = GW_CRYPTO;
		goto done;
	}
	if ((err = canon_resource(doc->root, &canon, &ferr)) != GW_OK) {
		if (err == GW_INVALID)
			snprintf(errbuf, errlen, "%u:%u: %s", ferr.line,
				 ferr.col, ferr.msg);
		else
			snprintf(errbuf, errlen, "canonical form: %s",
				 gw_strerror(err));
		goto done;
	}
	SHA256((const unsigned char *)canon.data, canon.len, md);
	util_rfc3339(t, when, sizeof(when));

	/* Protected header; every value is plain ASCII that needs no
   * escaping (base64, OIDs, fixed names, a timestamp). */
	if ((err = buf_printf(&sig,
			      "{\"alg\":\"%s\",\"typ\":\"JOSE\",\"kid\":\"%s\","
			      "\"x5t#S256\":\"%s\",\"sigT\":\"%s\","
			      "\"canon\":\"%s\",\"srCms\":[{\"commId\":{"
			      "\"id\":\"urn:oid:%s\"}}],\"x5c\":",
			      sign_alg_name(key->alg), key->thumb, key->thumb,
			      when, CANON_URI,
			      sign_purpose_oid(opts->purpose))) != GW_OK ||
	    (err = buf_adds(&sig, key->x5c)) != GW_OK ||
	    (err = buf_addc(&sig, '}')) != GW_OK ||
	    (err = b64_encode(sig.data, sig.len, true, &tbs)) != GW_OK)
		goto done;
	hdrlen = tbs.len;
	sig.len = 0;
	if ((err = buf_addc(&tbs, '.')) != GW_OK ||
	    (err = b64_encode(canon.data, canon.len, true, &tbs)) != GW_OK)
		goto done;
	if ((err = sign_raw(key->pkey, key->alg, tbs.data, tbs.len, &sig)) !=
	    GW_OK) {
		sign_errf(errbuf, errlen, "signing failed");
		goto done;
	}
	if ((err = buf_add(&jws, tbs.data, hdrlen)) != GW_OK ||
	    (err = buf_adds(&jws, "..")) != GW_OK ||
	    (err = b64_encode(sig.data, sig.len, true, &jws)) != GW_OK ||
	    (err = b64_encode(jws.data, jws.len, false, &data)) != GW_OK)
		goto done;
	if ((elem = sign_new_element(doc, key, opts, when, data.data)) ==
	    NULL) {
		err = GW_NOMEM;
		goto done;
	}
	if ((err = fj_set(doc, doc->root, "signature", elem)) != GW_OK)
		goto done;
	if (out != NULL) {
		out->jws = buf_steal(&jws, NULL);
		memcpy(out->hash, md, sizeof(md));
		out->sigt = t;
		if (out->jws == NULL) {
			err = GW_NOMEM;
			goto done;
		}
	}
	err = GW_OK;
done:
	if (err == GW_NOMEM || err == GW_TOOBIG)
		snprintf(errbuf, errlen, "%s", gw_strerror(err));
	buf_cleanup(&canon);
	buf_cleanup(&tbs);
	buf_cleanup(&sig);
	buf_cleanup(&jws);
	buf_cleanup(&data);
	return err;
}

void
sign_output_cleanup(struct sign_output *out)
{
	free(out->jws);
	out->jws = NULL;
}

enum gw_err
sign_provenance_new(const struct fj_node *bundle, struct fj_doc **out,
		    char *errbuf, size_t errlen)
{
	const struct fj_node *sig, *ident, *who;
	const char *id, *when;
	struct fj_doc *doc = NULL;
	struct fj_node *root, *targets, *target, *agents, *agent, *type,
	    *codings, *coding, *sigs, *n;
	char uuid[40], ref[128];

	*out = NULL;
	sig = fj_get(bundle, "signature");
	if (sig == NULL || sig->type != FJ_OBJECT ||
	    fj_get_str(sig, "data") == NULL ||
	    (when = fj_get_str(sig, "when")) == NULL ||
	    (who = fj_get(sig, "who")) == NULL) {
		snprintf(errbuf, errlen, "the Bundle carries no R4 signature");
		return GW_INVALID;
	}
	id = fj_get_str(bundle, "id");
	ident = fj_get(bundle, "identifier");
	if (id == NULL && (ident == NULL || ident->type != FJ_OBJECT)) {
		snprintf(errbuf, errlen,
			 "the Bundle has neither id nor identifier to target");
		return GW_INVALID;
	}
	if ((doc = fj_doc_new()) == NULL || (root = fj_new_object(doc)) == NULL)
		goto nomem;
	doc->root = root;
	util_uuid(uuid);
	if (sign_set_str(doc, root, "resourceType", "Provenance") != GW_OK ||
	    sign_set_str(doc, root, "id", uuid) != GW_OK ||
	    (targets = fj_new_array(doc)) == NULL ||
	    (target = fj_new_object(doc)) == NULL)
		goto nomem;
	if (id != NULL) {
		snprintf(ref, sizeof(ref), "Bundle/%s", id);
		if (sign_set_str(doc, target, "reference", ref) != GW_OK)
			goto nomem;
	}
	if (ident != NULL && ident->type == FJ_OBJECT &&
	    ((n = fj_copy(doc, ident)) == NULL ||
	     fj_set(doc, target, "identifier", n) != GW_OK))
		goto nomem;
	fj_append(targets, target);
	if (fj_set(doc, root, "target", targets) != GW_OK ||
	    sign_set_str(doc, root, "recorded", when) != GW_OK ||
	    (agents = fj_new_array(doc)) == NULL ||
	    (agent = fj_new_object(doc)) == NULL ||
	    (type = fj_new_object(doc)) == NULL ||
	    (codings = fj_new_array(doc)) == NULL ||
	    (coding = fj_new_object(doc)) == NULL ||
	    sign_set_str(doc, coding, "system", SIGN_PROV_TYPE_SYS) != GW_OK ||
	    sign_set_str(doc, coding, "code", "author") != GW_OK)
		goto nomem;
	fj_append(codings, coding);
	if (fj_set(doc, type, "coding", codings) != GW_OK ||
	    fj_set(doc, agent, "type", type) != GW_OK ||
	    (n = fj_copy(doc, who)) == NULL ||
	    fj_set(doc, agent, "who", n) != GW_OK)
		goto nomem;
	fj_append(agents, agent);
	if (fj_set(doc, root, "agent", agents) != GW_OK ||
	    (sigs = fj_new_array(doc)) == NULL ||
	    (n = fj_copy(doc, sig)) == NULL)
		goto nomem;
	fj_append(sigs, n);
	if (fj_set(doc, root, "signature", sigs) != GW_OK)
		goto nomem;
	*out = doc;
	return GW_OK;
nomem:
	fj_doc_free(doc);
	snprintf(errbuf, errlen, "out of memory");
	return GW_NOMEM;
}

/* ---- trust ---- */

static int
sign_store_count(X509_STORE *store, X509_LOOKUP_TYPE type)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	int n = 0;

	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++)
		if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) == type)
			n++;
	return n;
}

/* Fill cert's cached extension data (key identifiers, flags) now, before
 * other threads see it: OpenSSL fills it lazily on first use, and a
 * worker reading it while another fills it is a data race (seen with
 * ThreadSanitizer on the signer certificate cache). */
static void
sign_cert_settle(X509 *cert)
{
	(void)X509_check_purpose(cert, -1, 0);
	ERR_clear_error();
}

/* The same for every certificate in a store about to be shared. */
static void
sign_store_settle(X509_STORE *store)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);

	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		if (x != NULL)
			sign_cert_settle(x);
	}
}

enum gw_err
sign_trust_new(const char *anchors, const char *const *crls, size_t ncrl,
	       struct sign_trust **out, char *errbuf, size_t errlen)
{
	struct sign_trust *t;
	enum gw_err err;
	int before;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto nomem;
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		goto nomem;
	}
	if ((t->store = X509_STORE_new()) == NULL) {
		sign_trust_free(t);
		goto nomem;
	}
	if ((err = sign_check_file("trust anchors", anchors, false, errbuf,
				   errlen)) != GW_OK)
		goto fail;
	if (X509_STORE_load_file(t->store, anchors) != 1 ||
	    sign_store_count(t->store, X509_LU_X509) == 0) {
		sign_errf(errbuf, errlen, "%s: no trust anchor loaded",
			  anchors);
		err = GW_INVALID;
		goto fail;
	}
	for (size_t i = 0; i < ncrl; i++) {
		if ((err = sign_check_file("CRL", crls[i], false, errbuf,
					   errlen)) != GW_OK)
			goto fail;
		before = sign_store_count(t->store, X509_LU_CRL);
		if (X509_STORE_load_file(t->store, crls[i]) != 1 ||
		    sign_store_count(t->store, X509_LU_CRL) <= before) {
			sign_errf(errbuf, errlen, "%s: no CRL loaded", crls[i]);
			err = GW_INVALID;
			goto fail;
		}
		t->have_crl = true;
	}
	sign_store_settle(t->store);
	ERR_clear_error();
	*out = t;
	return GW_OK;
fail:
	sign_trust_free(t);
	ERR_clear_error();
	return err;
nomem:
	snprintf(errbuf, errlen, "out of memory");
	return GW_NOMEM;
}

void
sign_trust_free(struct sign_trust *trust)
{
	if (trust == NULL)
		return;
	for (size_t i = 0; i < SIGN_CACHE; i++)
		X509_free(trust->cache[i].cert);
	pthread_mutex_destroy(&trust->lock);
	X509_STORE_free(trust->store);
	free(trust);
}

/* The cache lives in a shared, otherwise read-only trust object; it has
 * its own lock, so verifications through a const pointer may fill it. */
static struct sign_trust *
sign_trust_mut(const struct sign_trust *trust)
{
	return (struct sign_trust *)(uintptr_t)trust;
}

/* A certificate parsed from len DER bytes (all of them), from the cache
 * when seen before. New reference, NULL when not a certificate. */
static X509 *
sign_cert_parse(const struct sign_trust *ctrust, const unsigned char *der,
		size_t len)
{
	struct sign_trust *t = sign_trust_mut(ctrust);
	unsigned char md[SHA256_DIGEST_LENGTH];
	const unsigned char *p = der;
	struct sign_cached *slot;
	X509 *c = NULL;

	SHA256(der, len, md);
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < SIGN_CACHE && c == NULL; i++)
		if (t->cache[i].cert != NULL &&
		    memcmp(t->cache[i].md, md, sizeof(md)) == 0 &&
		    X509_up_ref(t->cache[i].cert) == 1)
			c = t->cache[i].cert;
	pthread_mutex_unlock(&t->lock);
	if (c != NULL)
		return c;
	if ((c = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
		X509_free(c);
		ERR_clear_error();
		return NULL;
	}
	sign_cert_settle(c);
	pthread_mutex_lock(&t->lock);
	slot = &t->cache[t->next++ % SIGN_CACHE];
	X509_free(slot->cert);
	memset(slot, 0, sizeof(*slot));
	if (X509_up_ref(c) == 1) {
		memcpy(slot->md, md, sizeof(md));
		slot->cert = c;
	}
	pthread_mutex_unlock(&t->lock);
	return c;
}

/* The URA of cert, remembered with a cached certificate. */
static enum gw_err
sign_cert_ura(const struct sign_trust *ctrust, X509 *cert,
	      char ura[CONFIG_URA_LEN + 1])
{
	struct sign_trust *t = sign_trust_mut(ctrust);
	enum gw_err err = GW_NOTFOUND;
	int state = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < SIGN_CACHE; i++)
		if (t->cache[i].cert == cert) {
			state = t->cache[i].ura_state;
			util_strlcpy(ura, t->cache[i].ura, CONFIG_URA_LEN + 1);
		}
	pthread_mutex_unlock(&t->lock);
	if (state != 0)
		return state > 0 ? GW_OK : GW_NOTFOUND;
	err = tls_cert_ura(cert, ura);
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < SIGN_CACHE; i++)
		if (t->cache[i].cert == cert) {
			t->cache[i].ura_state = err == GW_OK ? 1 : -1;
			util_strlcpy(t->cache[i].ura, err == GW_OK ? ura : "",
				     sizeof(t->cache[i].ura));
		}
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* ---- verification ---- */

static const char *const sign_check_names[SIGN_CHECK_COUNT] = {
    [SIGN_CHECK_OK] = "ok",
    [SIGN_CHECK_MISSING] = "missing",
    [SIGN_CHECK_MALFORMED] = "malformed",
    [SIGN_CHECK_ALG] = "algorithm",
    [SIGN_CHECK_CANON] = "canonicalization",
    [SIGN_CHECK_DOCUMENT] = "document",
    [SIGN_CHECK_TARGET] = "target",
    [SIGN_CHECK_SIGNATURE] = "signature",
    [SIGN_CHECK_TIME] = "time",
    [SIGN_CHECK_CERT] = "certificate",
    [SIGN_CHECK_UNTRUSTED] = "untrusted",
    [SIGN_CHECK_EXPIRED] = "expired",
    [SIGN_CHECK_REVOKED] = "revoked",
    [SIGN_CHECK_URA] = "ura",
};

const char *
sign_check_name(enum sign_check check)
{
	if ((unsigned)check >= SIGN_CHECK_COUNT)
		return "?";
	return sign_check_names[check];
}

static void sign_fail(struct sign_result *res, enum sign_check check,
		      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
sign_fail(struct sign_result *res, enum sign_check check, const char *fmt, ...)
{
	va_list ap;

	res->check = check;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

/* The signature element to check, or NULL with res filled. */
static const struct fj_node *
sign_find_element(const struct fj_node *bundle, const struct fj_node *prov,
		  struct sign_result *res)
{
	const struct fj_node *sig, *targets;
	const char *id;
	char ref[160];
	bool match = false;

	if (prov == NULL) {
		sig = fj_get(bundle, "signature");
		if (sig == NULL) {
			sign_fail(res, SIGN_CHECK_MISSING,
				  "Bundle.signature is missing");
			return NULL;
		}
		if (sig->type == FJ_ARRAY) {
			sign_fail(res, SIGN_CHECK_MISSING,
				  "Bundle.signature must be one element, "
				  "not an array");
			return NULL;
		}
		return sig;
	}
	if (prov->type != FJ_OBJECT ||
	    !fj_str_eq(fj_get(prov, "resourceType"), "Provenance")) {
		sign_fail(res, SIGN_CHECK_MALFORMED, "not a Provenance");
		return NULL;
	}
	sig = fj_get(prov, "signature");
	if (sig == NULL || sig->type != FJ_ARRAY || sig->u.kids.count != 1) {
		sign_fail(res, SIGN_CHECK_MISSING,
			  "Provenance.signature must hold exactly one "
			  "signature");
		return NULL;
	}
	/* The Provenance must point at this Bundle. */
	id = fj_get_str(bundle, "id");
	targets = fj_get(prov, "target");
	if (targets != NULL && targets->type == FJ_ARRAY) {
		for (const struct fj_node *t = targets->u.kids.first;
		     t != NULL && !match; t = t->next) {
			const struct fj_node *ti = fj_get(t, "identifier");
			const struct fj_node *bi = fj_get(bundle, "identifier");
			const char *r = fj_get_str(t, "reference");
			if (id != NULL && r != NULL) {
				snprintf(ref, sizeof(ref), "Bundle/%s", id);
				match = strcmp(r, ref) == 0;
			}
			if (!match && ti != NULL && bi != NULL &&
			    fj_get_str(ti, "value") != NULL &&
			    fj_get_str(bi, "value") != NULL) {
				const char *ts = fj_get_str(ti, "system");
				const char *bs = fj_get_str(bi, "system");
				match = strcmp(fj_get_str(ti, "value"),
					       fj_get_str(bi, "value")) == 0 &&
					(ts == NULL) == (bs == NULL) &&
					(ts == NULL || strcmp(ts, bs) == 0);
			}
		}
	}
	if (!match) {
		sign_fail(res, SIGN_CHECK_TARGET,
			  "Provenance.target does not name this Bundle");
		return NULL;
	}
	return sig->u.kids.first;
}

/* The commitment type of a Signature element, or false. */
static bool
sign_element_purpose(const struct fj_node *sig, enum sign_purpose *out)
{
	const struct fj_node *types = fj_get(sig, "type");

	if (types == NULL || types->type != FJ_ARRAY)
		return false;
	for (const struct fj_node *c = types->u.kids.first; c != NULL;
	     c = c->next) {
		if (!fj_str_eq(fj_get(c, "system"), SIGN_TYPE_SYSTEM))
			continue;
		if (fj_str_eq(fj_get(c, "code"), SIGN_OID_VERIFICATION)) {
			*out = SIGN_PURPOSE_VERIFICATION;
			return true;
		}
		if (fj_str_eq(fj_get(c, "code"), SIGN_OID_AUTHOR)) {
			*out = SIGN_PURPOSE_AUTHOR;
			return true;
		}
	}
	return false;
}

/* The canonicalization parameter of a targetFormat media type. */
static bool
sign_target_canon(const char *tf, char *out, size_t n)
{
	const char *p = strchr(tf, ';');
	size_t len;

	if (p == NULL ||
	    strncmp(tf, "application/fhir+json", (size_t)(p - tf)) != 0 ||
	    p - tf != (long)strlen("application/fhir+json"))
		return false;
	while (p != NULL) {
		p++;
		while (*p == ' ')
			p++;
		if (strncmp(p, "canonicalization=", 17) == 0) {
			p += 17;
			len = strcspn(p, ";");
			if (len >= n || len == 0)
				return false;
			memcpy(out, p, len);
			out[len] = '\0';
			return true;
		}
		p = strchr(p, ';');
	}
	return false;
}

/* Names the protected header may list in crit: those checked here. */
static bool
sign_crit_ok(json_t *crit)
{
	static const char *const known[] = {"sigT", "srCms", "canon"};
	size_t i;
	json_t *v;

	if (!json_is_array(crit) || json_array_size(crit) == 0)
		return false;
	json_array_foreach(crit, i, v)
	{
		bool ok = false;
		for (size_t k = 0; k < UTIL_ARRAY_LEN(known); k++)
			if (json_is_string(v) &&
			    strcmp(json_string_value(v), known[k]) == 0)
				ok = true;
		if (!ok)
			return false;
	}
	return true;
}

/* Map an X509 verification error to a check. */
static enum sign_check
sign_x509_check(int e)
{
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return SIGN_CHECK_EXPIRED;
	case X509_V_ERR_CERT_REVOKED:
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
		return SIGN_CHECK_REVOKED;
	default:
		return SIGN_CHECK_UNTRUSTED;
	}
}

/*
 * Verify the chain now (with the CRLs when there are any), then that
 * every certificate of the chain built was also within its validity at
 * sigt: signatures do not depend on the time, so one chain building
 * serves both moments.
 */
static bool
sign_chain_ok(const struct sign_trust *trust, X509 *leaf,
	      STACK_OF(X509) * untrusted, int64_t now, int64_t sigt,
	      struct sign_result *res)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	STACK_OF(X509) * chain;
	bool ok = false;
	int e;

	if (ctx == NULL ||
	    X509_STORE_CTX_init(ctx, trust->store, leaf, untrusted) != 1) {
		sign_fail(res, SIGN_CHECK_UNTRUSTED, "out of memory");
		goto done;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, (time_t)now);
	X509_VERIFY_PARAM_set_flags(
	    param, X509_V_FLAG_PARTIAL_CHAIN |
		       (trust->have_crl ? X509_V_FLAG_CRL_CHECK : 0));
	if (X509_verify_cert(ctx) != 1) {
		e = X509_STORE_CTX_get_error(ctx);
		sign_fail(res, sign_x509_check(e), "signer certificate: %s",
			  X509_verify_cert_error_string(e));
		goto done;
	}
	chain = X509_STORE_CTX_get0_chain(ctx);
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		if (ASN1_TIME_cmp_time_t(X509_get0_notBefore(c), (time_t)sigt) >
			0 ||
		    ASN1_TIME_cmp_time_t(X509_get0_notAfter(c), (time_t)sigt) <
			0) {
			sign_fail(res, SIGN_CHECK_EXPIRED,
				  "%s certificate not valid at the signing "
				  "time",
				  i == 0 ? "signer" : "issuing CA");
			goto done;
		}
	}
	ok = true;
done:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* sign_verify; kept allows the STU3 signature form in a Provenance (a
 * relay entry of an STU3 Bundle). */
static enum gw_err
sign_verify_one(const struct fj_node *bundle, const struct fj_node *provenance,
		bool kept, const struct sign_verify_opts *opts,
		struct sign_result *res)
{
	const struct fj_node *sig, *who, *ident;
	const char *fmt, *data, *dot1, *dot2, *s;
	struct buf jws, hdr, tbs, raw, canon;
	json_t *h = NULL, *x5c, *v;
	json_error_t jerr;
	STACK_OF(X509) *certs = NULL;
	X509 *leaf;
	struct fj_error ferr;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char canon_uri[160], ura[CONFIG_URA_LEN + 1];
	enum sign_purpose purpose;
	int64_t now = sign_now(opts->now), when;
	bool r4;
	size_t i;
	int rc;
	enum gw_err err = GW_CRYPTO;

	memset(res, 0, sizeof(*res));
	res->check = SIGN_CHECK_MALFORMED;
	buf_init(&jws, SIGN_MAX_JWS);
	buf_init(&hdr, SIGN_MAX_JWS);
	buf_init(&tbs, SIGN_MAX_CANON / 3 * 4 + SIGN_MAX_JWS);
	buf_init(&raw, 4096);
	buf_init(&canon, SIGN_MAX_CANON);

	if (bundle == NULL || bundle->type != FJ_OBJECT ||
	    !fj_str_eq(fj_get(bundle, "resourceType"), "Bundle")) {
		sign_fail(res, SIGN_CHECK_DOCUMENT, "not a FHIR Bundle");
		goto done;
	}
	if ((sig = sign_find_element(bundle, provenance, res)) == NULL)
		goto done;
	if (sig->type != FJ_OBJECT) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "signature is not an object");
		goto done;
	}

	/* The element: R4 (sigFormat/data) or STU3 (contentType/blob). */
	r4 = fj_get(sig, "data") != NULL || fj_get(sig, "sigFormat") != NULL;
	fmt = fj_get_str(sig, r4 ? "sigFormat" : "contentType");
	data = fj_get_str(sig, r4 ? "data" : "blob");
	if (provenance != NULL && !r4 && !kept) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "Provenance.signature needs sigFormat and data");
		goto done;
	}
	if (fmt == NULL || strcmp(fmt, SIGN_SIGFORMAT) != 0) {
		sign_fail(res, SIGN_CHECK_MALFORMED, "signature %s is not %s",
			  r4 ? "sigFormat" : "contentType", SIGN_SIGFORMAT);
		goto done;
	}
	if (data == NULL) {
		sign_fail(res, SIGN_CHECK_MISSING, "signature %s is missing",
			  r4 ? "data" : "blob");
		goto done;
	}
	if (!sign_element_purpose(sig, &purpose)) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "signature type has no %s commitment code",
			  SIGN_TYPE_SYSTEM);
		goto done;
	}
	res->purpose = purpose;
	who = fj_get(sig, r4 ? "who" : "whoReference");
	ident = who != NULL ? fj_get(who, "identifier") : NULL;
	if (ident == NULL ||
	    !fj_str_eq(fj_get(ident, "system"), SIGN_URA_SYSTEM) ||
	    fj_get_str(ident, "value") == NULL) {
		sign_fail(res, SIGN_CHECK_URA,
			  "signature %s.identifier carries no URA",
			  r4 ? "who" : "whoReference");
		goto done;
	}
	if (r4) {
		const char *tf = fj_get_str(sig, "targetFormat");
		if (tf == NULL ||
		    !sign_target_canon(tf, canon_uri, sizeof(canon_uri))) {
			sign_fail(res, SIGN_CHECK_CANON,
				  "signature targetFormat names no "
				  "canonicalization");
			goto done;
		}
	} else {
		util_strlcpy(canon_uri, CANON_URI, sizeof(canon_uri));
	}
	if (strcmp(canon_uri, CANON_URI) != 0) {
		sign_fail(res, SIGN_CHECK_CANON,
			  "canonicalization %.100s is not supported",
			  canon_uri);
		goto done;
	}

	/* The JWS: header..signature */
	if (b64_decode(data, strlen(data), false, &jws) != GW_OK ||
	    strlen(jws.data) != jws.len) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "signature data is not base64 of a JWS");
		goto done;
	}
	if ((res->jws = strdup(jws.data)) == NULL)
		goto nomem;
	dot1 = strchr(jws.data, '.');
	dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
	if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "not a compact JWS (three parts)");
		goto done;
	}
	if (dot2 != dot1 + 1) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "JWS payload part is not empty (must be detached)");
		goto done;
	}
	if (b64_decode(jws.data, (size_t)(dot1 - jws.data), true, &hdr) !=
	    GW_OK) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "JWS header is not base64url");
		goto done;
	}
	if ((h = json_loadb(hdr.data, hdr.len, JSON_REJECT_DUPLICATES,
			    &jerr)) == NULL ||
	    !json_is_object(h)) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "JWS header is not a JSON object");
		goto done;
	}

	/* Header checks. */
	v = json_object_get(h, "alg");
	if (!json_is_string(v) ||
	    !sign_alg_parse(json_string_value(v), &res->alg)) {
		sign_fail(res, SIGN_CHECK_ALG,
			  "JWS alg %.40s is not allowed (PS256, RS256, ES256)",
			  json_is_string(v) ? json_string_value(v) : "(none)");
		goto done;
	}
	if (b64_decode(dot2 + 1, strlen(dot2 + 1), true, &raw) != GW_OK ||
	    raw.len == 0) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "JWS signature missing or not base64url");
		goto done;
	}
	if ((v = json_object_get(h, "crit")) != NULL && !sign_crit_ok(v)) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "JWS crit names a parameter not understood");
		goto done;
	}
	if ((v = json_object_get(h, "b64")) != NULL && !json_is_true(v)) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "unencoded JWS payloads (b64) are not supported");
		goto done;
	}
	v = json_object_get(h, "canon");
	if (!json_is_string(v) ||
	    strcmp(json_string_value(v), canon_uri) != 0) {
		sign_fail(res, SIGN_CHECK_CANON,
			  "JWS canon does not match the targetFormat "
			  "canonicalization");
		goto done;
	}
	v = json_object_get(h, "sigT");
	if (!json_is_string(v) ||
	    !sign_time_parse(json_string_value(v), &res->sigt)) {
		sign_fail(res, SIGN_CHECK_TIME,
			  "JWS sigT missing or unreadable");
		goto done;
	}
	if ((s = fj_get_str(sig, "when")) == NULL ||
	    !sign_time_parse(s, &when) || when != res->sigt) {
		sign_fail(res, SIGN_CHECK_TIME,
			  "signature when differs from JWS sigT");
		goto done;
	}
	if ((v = json_object_get(h, "srCms")) != NULL) {
		json_t *c = json_array_get(v, 0);
		const char *oid = json_string_value(
		    json_object_get(json_object_get(c, "commId"), "id"));
		char want[64];
		snprintf(want, sizeof(want), "urn:oid:%s",
			 sign_purpose_oid(purpose));
		if (oid == NULL || strcmp(oid, want) != 0) {
			sign_fail(res, SIGN_CHECK_MALFORMED,
				  "JWS srCms commitment differs from the "
				  "signature type");
			goto done;
		}
	}
	x5c = json_object_get(h, "x5c");
	if (!json_is_array(x5c) || json_array_size(x5c) == 0 ||
	    json_array_size(x5c) > SIGN_MAX_CERTS) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "JWS x5c missing (1 to %d certificates)",
			  SIGN_MAX_CERTS);
		goto done;
	}
	if ((certs = sk_X509_new_null()) == NULL)
		goto nomem;
	json_array_foreach(x5c, i, v)
	{
		struct buf der;
		X509 *c = NULL;
		buf_init(&der, 64 * 1024);
		if (json_is_string(v) &&
		    b64_decode(json_string_value(v), json_string_length(v),
			       false, &der) == GW_OK)
			c = sign_cert_parse(opts->trust,
					    (const unsigned char *)der.data,
					    der.len);
		buf_cleanup(&der);
		if (c == NULL || !sk_X509_push(certs, c)) {
			X509_free(c);
			sign_fail(res, SIGN_CHECK_MALFORMED,
				  "JWS x5c[%zu] is not a certificate", i);
			goto done;
		}
	}
	leaf = sk_X509_value(certs, 0);
	if ((v = json_object_get(h, "x5t#S256")) != NULL) {
		struct buf th;
		bool same;
		buf_init(&th, 128);
		same = sign_cert_der_b64(leaf, true, &th) == GW_OK &&
		       json_is_string(v) &&
		       strcmp(th.data, json_string_value(v)) == 0;
		buf_cleanup(&th);
		if (!same) {
			sign_fail(res, SIGN_CHECK_MALFORMED,
				  "JWS x5t#S256 does not match x5c[0]");
			goto done;
		}
	}

	/* The signature over the recomputed canonical bytes. */
	if ((err = canon_resource(bundle, &canon, &ferr)) != GW_OK) {
		if (err == GW_NOMEM)
			goto nomem;
		sign_fail(res, SIGN_CHECK_DOCUMENT, "%u:%u: %s", ferr.line,
			  ferr.col, ferr.msg);
		err = GW_CRYPTO;
		goto done;
	}
	err = GW_CRYPTO;
	SHA256((const unsigned char *)canon.data, canon.len, md);
	memcpy(res->hash, md, sizeof(md));
	res->have_hash = true;
	{
		char why[128];
		if (X509_get0_pubkey(leaf) == NULL) {
			sign_fail(res, SIGN_CHECK_CERT,
				  "signer key of an unsupported type");
			goto done;
		}
		if (!sign_key_fits(X509_get0_pubkey(leaf), res->alg, why,
				   sizeof(why))) {
			sign_fail(res, SIGN_CHECK_CERT, "signer key: %s", why);
			goto done;
		}
	}
	if (buf_add(&tbs, jws.data, (size_t)(dot1 - jws.data)) != GW_OK ||
	    buf_addc(&tbs, '.') != GW_OK ||
	    b64_encode(canon.data, canon.len, true, &tbs) != GW_OK)
		goto nomem;
	rc = sign_raw_verify(X509_get0_pubkey(leaf), res->alg, tbs.data,
			     tbs.len, (const unsigned char *)raw.data, raw.len);
	if (rc < 0) {
		sign_fail(res, SIGN_CHECK_MALFORMED,
			  "JWS signature has the wrong length for %s",
			  sign_alg_name(res->alg));
		goto done;
	}
	if (rc == 0) {
		sign_fail(res, SIGN_CHECK_SIGNATURE,
			  "signature does not match the content (changed "
			  "document or wrong certificate)");
		goto done;
	}

	/* Time, chain, usage, revocation. */
	if (res->sigt > now + opts->skew) {
		sign_fail(res, SIGN_CHECK_TIME,
			  "sigT lies in the future by %lld s",
			  (long long)(res->sigt - now));
		goto done;
	}
	sk_X509_shift(certs); /* the leaf stays referenced by leaf */
	rc = sign_chain_ok(opts->trust, leaf, certs, now, res->sigt, res);
	if (!sk_X509_unshift(certs, leaf)) {
		X509_free(leaf);
		goto nomem;
	}
	if (!rc)
		goto done;
	if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)) {
		sign_fail(res, SIGN_CHECK_CERT,
			  "signer certificate keyUsage lacks digitalSignature");
		goto done;
	}

	/* Identity: the certificate's URA is who signed. */
	if (sign_cert_ura(opts->trust, leaf, ura) != GW_OK) {
		sign_fail(res, SIGN_CHECK_URA,
			  "signer certificate carries no URA");
		goto done;
	}
	util_strlcpy(res->ura, ura, sizeof(res->ura));
	if (strcmp(ura, fj_get_str(ident, "value")) != 0) {
		sign_fail(res, SIGN_CHECK_URA,
			  "signer URA %s differs from signature who %.20s", ura,
			  fj_get_str(ident, "value"));
		goto done;
	}
	if (opts->expect_ura != NULL && strcmp(ura, opts->expect_ura) != 0) {
		sign_fail(res, SIGN_CHECK_URA,
			  "signer URA %s is not the expected %.20s", ura,
			  opts->expect_ura);
		goto done;
	}
	res->check = SIGN_CHECK_OK;
	snprintf(res->reason, sizeof(res->reason), "valid");
	err = GW_OK;
	goto done;
nomem:
	sign_fail(res, SIGN_CHECK_MALFORMED, "out of memory");
	err = GW_NOMEM;
done:
	json_decref(h);
	sk_X509_pop_free(certs, X509_free);
	buf_cleanup(&jws);
	buf_cleanup(&hdr);
	buf_cleanup(&tbs);
	buf_cleanup(&raw);
	buf_cleanup(&canon);
	ERR_clear_error();
	return err;
}

enum gw_err
sign_verify(const struct fj_node *bundle, const struct fj_node *provenance,
	    const struct sign_verify_opts *opts, struct sign_result *res)
{
	return sign_verify_one(bundle, provenance, false, opts, res);
}

/* True when entry e holds a Provenance with policy SIGN_RELAY_POLICY. */
static bool
sign_is_relay_entry(const struct fj_node *e)
{
	const struct fj_node *res = fj_get(e, "resource");
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

/* The relay entry of bundle and the entry before it (NULL when it is the
 * first). 0: none, 1: found, -1: one that is not last, or several. */
static int
sign_find_relay(const struct fj_node *bundle, struct fj_node **entry,
		struct fj_node **prev)
{
	const struct fj_node *entries = fj_get(bundle, "entry");
	struct fj_node *before = NULL;
	int found = 0;

	*entry = *prev = NULL;
	if (entries == NULL || entries->type != FJ_ARRAY)
		return 0;
	for (struct fj_node *e = entries->u.kids.first; e != NULL;
	     before = e, e = e->next) {
		if (!sign_is_relay_entry(e))
			continue;
		if (found || e->next != NULL)
			return -1;
		found = 1;
		*entry = e;
		*prev = before;
	}
	return found;
}

enum gw_err
sign_verify_kept(struct fj_node *bundle, const struct sign_verify_opts *opts,
		 struct sign_result *res)
{
	struct fj_node *entries = fj_get(bundle, "entry"), *entry, *prev;
	enum gw_err err;
	int found = sign_find_relay(bundle, &entry, &prev);

	if (found <= 0) {
		memset(res, 0, sizeof(*res));
		sign_fail(
		    res, found == 0 ? SIGN_CHECK_MISSING : SIGN_CHECK_MALFORMED,
		    found == 0 ? "no kept sender signature"
			       : "a relayed signature's Provenance must "
				 "be the one last entry");
		return found == 0 ? GW_NOTFOUND : GW_CRYPTO;
	}
	if (opts->trust == NULL) {
		memset(res, 0, sizeof(*res));
		sign_fail(res, SIGN_CHECK_UNTRUSTED, "no trust anchors");
		return GW_CRYPTO;
	}
	/* The sender signed the Bundle as it was before the relay added the
	 * entry: unlink it while the canonical form is computed. */
	if (prev != NULL)
		prev->next = NULL;
	else
		entries->u.kids.first = NULL;
	entries->u.kids.last = prev;
	entries->u.kids.count--;
	err =
	    sign_verify_one(bundle, fj_get(entry, "resource"), true, opts, res);
	if (prev != NULL)
		prev->next = entry;
	else
		entries->u.kids.first = entry;
	entries->u.kids.last = entry;
	entries->u.kids.count++;
	return err;
}

enum gw_err
sign_relay_keep(struct fj_doc *doc, enum sign_fhir fhir, char *errbuf,
		size_t errlen)
{
	struct fj_node *root = doc->root, *entries, *entry, *prov, *targets,
		       *target, *agents, *agent, *policies, *sigs, *n, *who;
	const struct fj_node *sig = fj_get(root, "signature");
	const struct fj_node *ident = fj_get(root, "identifier");
	const struct fj_node *sig_who;
	struct fj_node *relay, *relay_prev;
	const char *when = fj_get_str(sig, "when");
	bool r4 = fhir == SIGN_FHIR_R4;
	char urn[48] = "urn:uuid:";

	sig_who = fj_get(sig, r4 ? "who" : "whoReference");
	if (sig == NULL || sig->type != FJ_OBJECT || when == NULL ||
	    sig_who == NULL || ident == NULL || ident->type != FJ_OBJECT) {
		snprintf(errbuf, errlen,
			 "the Bundle carries no signature or no identifier");
		return GW_INVALID;
	}
	entries = fj_get(root, "entry");
	if (entries == NULL || entries->type != FJ_ARRAY) {
		snprintf(errbuf, errlen, "the Bundle has no entries");
		return GW_INVALID;
	}
	if (sign_find_relay(root, &relay, &relay_prev) != 0) {
		snprintf(errbuf, errlen,
			 "the Bundle already keeps a sender signature");
		return GW_INVALID;
	}
	util_uuid(urn + 9);
	/* Built apart, appended last: nothing changes on failure. */
	if ((entry = fj_new_object(doc)) == NULL ||
	    (prov = fj_new_object(doc)) == NULL ||
	    (targets = fj_new_array(doc)) == NULL ||
	    (target = fj_new_object(doc)) == NULL ||
	    (agents = fj_new_array(doc)) == NULL ||
	    (agent = fj_new_object(doc)) == NULL ||
	    (policies = fj_new_array(doc)) == NULL ||
	    (sigs = fj_new_array(doc)) == NULL)
		goto nomem;
	if (sign_set_str(doc, entry, "fullUrl", urn) != GW_OK ||
	    sign_set_str(doc, prov, "resourceType", "Provenance") != GW_OK ||
	    (n = fj_copy(doc, ident)) == NULL ||
	    fj_set(doc, target, "identifier", n) != GW_OK)
		goto nomem;
	fj_append(targets, target);
	if (fj_set(doc, prov, "target", targets) != GW_OK ||
	    sign_set_str(doc, prov, "recorded", when) != GW_OK ||
	    (n = fj_new_string(doc, SIGN_RELAY_POLICY)) == NULL)
		goto nomem;
	fj_append(policies, n);
	if (fj_set(doc, prov, "policy", policies) != GW_OK)
		goto nomem;
	/* The agent is the sender, named as its signature names it. */
	if ((who = fj_new_object(doc)) == NULL ||
	    (n = fj_copy(doc, fj_get(sig_who, "identifier"))) == NULL ||
	    fj_set(doc, who, "identifier", n) != GW_OK ||
	    fj_set(doc, agent, r4 ? "who" : "whoReference", who) != GW_OK)
		goto nomem;
	if (r4) {
		struct fj_node *type, *codings, *coding;

		if ((type = fj_new_object(doc)) == NULL ||
		    (codings = fj_new_array(doc)) == NULL ||
		    (coding = fj_new_object(doc)) == NULL ||
		    sign_set_str(doc, coding, "system", SIGN_PROV_TYPE_SYS) !=
			GW_OK ||
		    sign_set_str(doc, coding, "code", "author") != GW_OK)
			goto nomem;
		fj_append(codings, coding);
		if (fj_set(doc, type, "coding", codings) != GW_OK ||
		    fj_set(doc, agent, "type", type) != GW_OK)
			goto nomem;
	}
	fj_append(agents, agent);
	if (fj_set(doc, prov, "agent", agents) != GW_OK ||
	    (n = fj_copy(doc, sig)) == NULL)
		goto nomem;
	fj_append(sigs, n);
	if (fj_set(doc, prov, "signature", sigs) != GW_OK ||
	    fj_set(doc, entry, "resource", prov) != GW_OK)
		goto nomem;
	fj_append(entries, entry);
	return GW_OK;
nomem:
	snprintf(errbuf, errlen, "out of memory");
	return GW_NOMEM;
}

void
sign_result_cleanup(struct sign_result *res)
{
	free(res->jws);
	res->jws = NULL;
}
