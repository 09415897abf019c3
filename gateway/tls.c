/*
 * OpenSSL contexts with the NCSC "good" TLS settings, trust pinned at the
 * configured UZI issuing CA, and the organisation identity (URA) read from
 * the subjectAltName of UZI server certificates.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "util.h"

#define TLS_METRIC	 "pzpgw_tls_handshake_failures_total"
#define TLS_MAX_PEM	 (1024 * 1024) /* certificate, trust and CRL files */
#define TLS_MAX_KEY	 (64 * 1024)   /* private key file */
#define TLS_UZI_NS	 "2.16.528.1.1003.1.3.5.5.5"
#define TLS_UZI_MAX	 160 /* longest 2.5.5.5 string accepted */
#define TLS_UZI_FIELDS	 7
#define TLS_VERIFY_DEPTH 4

/*
 * Cipher settings: NCSC, "ICT-beveiligingsrichtlijnen voor Transport Layer
 * Security (TLS)", version 2.1 (January 2021), security level "goed":
 * TLS 1.3 (TLS 1.2 is "voldoende" and kept for today's peers), key exchange
 * ECDHE only, authentication ECDSA or RSA, bulk encryption AES-256-GCM,
 * CHACHA20-POLY1305 or AES-128-GCM, hash SHA-384/SHA-256; groups
 * secp384r1, secp256r1, x448 and x25519; no compression, no
 * renegotiation, no 0-RTT. So no CBC, no static RSA key exchange, no
 * finite-field DHE and no SHA-1 anywhere. (The guideline notes server
 * cipher preference is optional when only "good" suites are offered; it
 * is set anyway so the order below decides.) A 2025 revision of the
 * guideline could not be consulted here: re-check these lists against it.
 */
static const char tls_ciphers_13[] =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
    "TLS_AES_128_GCM_SHA256";
static const char tls_ciphers_12[] =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
static const char tls_groups[] = "X25519:secp384r1:secp256r1:X448";
static const char tls_groups_nox448[] = "X25519:secp384r1:secp256r1";
/* Handshake signatures: SHA-2 only (no SHA-1, no MD5). */
static const char tls_sigalgs[] =
    "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:ed25519:ed448:"
    "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:"
    "rsa_pss_pss_sha256:rsa_pss_pss_sha384:rsa_pss_pss_sha512:"
    "RSA+SHA256:RSA+SHA384:RSA+SHA512";

/* Why a handshake failed: the reason label of the metric. */
enum tls_reason {
	TLS_R_NONE,
	TLS_R_NO_CERTIFICATE, /* the client sent no certificate */
	TLS_R_UNTRUSTED,      /* not issued under the pinned CA, bad chain */
	TLS_R_EXPIRED,	      /* outside its validity period */
	TLS_R_REVOKED,	      /* listed in the configured CRL */
	TLS_R_CRL,	      /* CRL missing, expired or broken */
	TLS_R_NO_URA,	      /* no URA in subjectAltName */
	TLS_R_BAD_URA,	      /* malformed UZI name, wrong pass type */
	TLS_R_POLICY,	      /* test policy vs environment mismatch */
	TLS_R_PROTOCOL,	      /* version, cipher or other TLS error */
	TLS_R_PEER_ALERT,     /* the peer aborted with an alert */
	TLS_R_CLOSED,	      /* connection closed during the handshake */
	TLS_R_OTHER,
	TLS_R_COUNT
};

static const char *const tls_reason_names[TLS_R_COUNT] = {
    [TLS_R_NONE] = "none",
    [TLS_R_NO_CERTIFICATE] = "no_certificate",
    [TLS_R_UNTRUSTED] = "untrusted",
    [TLS_R_EXPIRED] = "expired",
    [TLS_R_REVOKED] = "revoked",
    [TLS_R_CRL] = "crl",
    [TLS_R_NO_URA] = "no_ura",
    [TLS_R_BAD_URA] = "bad_ura",
    [TLS_R_POLICY] = "policy_mismatch",
    [TLS_R_PROTOCOL] = "protocol",
    [TLS_R_PEER_ALERT] = "peer_alert",
    [TLS_R_CLOSED] = "closed",
    [TLS_R_OTHER] = "other",
};

/* Per-connection state kept in SSL ex_data as an integer: the first
 * failure reason and whether it has been counted. */
#define TLS_ST_REASON  0xffu
#define TLS_ST_COUNTED 0x100u

/* Per-context settings kept in SSL_CTX ex_data as an integer. */
#define TLS_CTX_OURS	   0x1u
#define TLS_CTX_PRODUCTION 0x2u

static int tls_ssl_idx = -1;
static int tls_ctx_idx = -1;
static int tls_peer_idx = -1;
static CRYPTO_ONCE tls_once = CRYPTO_ONCE_STATIC_INIT;

/*
 * What tls_peer_get read from a connection's certificate, kept in the
 * SSL's ex_data (tls_peer_idx) with a reference to that certificate: each
 * request asks twice (the gate and the handler), and reading means
 * decoding the subjectAltName and printing two names through a BIO. A
 * connection keeps its certificate (no renegotiation), and the reference
 * held here keeps the pointer compared from being reused.
 */
struct tls_peer_memo {
	X509 *cert; /* owned reference */
	struct tls_peer peer;
};

static void
tls_peer_memo_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
		   long argl, void *argp)
{
	struct tls_peer_memo *m = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (m != NULL) {
		X509_free(m->cert);
		free(m);
	}
}

static void
tls_init_once(void)
{
	tls_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tls_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tls_peer_idx =
	    SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_peer_memo_free);
}

static bool
tls_init(void)
{
	return CRYPTO_THREAD_run_once(&tls_once, tls_init_once) &&
	       tls_ssl_idx >= 0 && tls_ctx_idx >= 0 && tls_peer_idx >= 0;
}

static void tls_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
tls_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* The oldest queued OpenSSL error as text (empty when none); clears the
 * queue so it does not leak into the next operation. */
static const char *
tls_ossl_err(char *buf, size_t n)
{
	unsigned long e = ERR_peek_error();

	buf[0] = '\0';
	if (e != 0) {
		ERR_error_string_n(e, buf, n);
		/* drop the "error:0A000086:" prefix for readable messages */
		const char *p = strrchr(buf, ':');
		if (p != NULL && p[1] != '\0')
			memmove(buf, p + 1, strlen(p + 1) + 1);
	}
	ERR_clear_error();
	return buf;
}

static void
tls_count(enum tls_reason r)
{
	char labels[64] = "";

	metrics_describe(TLS_METRIC, METRICS_COUNTER,
			 "TLS handshakes on the organisation listener that "
			 "failed, by reason.");
	metrics_label(labels, sizeof(labels), "reason", tls_reason_names[r]);
	metrics_add(TLS_METRIC, labels, 1);
}

/* Record the first failure reason on ssl; on the server side count it
 * once per connection. */
static void
tls_fail(SSL *ssl, enum tls_reason r)
{
	uintptr_t st = (uintptr_t)SSL_get_ex_data(ssl, tls_ssl_idx);

	if ((st & TLS_ST_REASON) == 0)
		st |= (uintptr_t)r;
	if (SSL_is_server(ssl) && (st & TLS_ST_COUNTED) == 0) {
		tls_count((enum tls_reason)(st & TLS_ST_REASON));
		st |= TLS_ST_COUNTED;
	}
	SSL_set_ex_data(ssl, tls_ssl_idx, (void *)st);
}

static enum tls_reason
tls_reason_x509(long verr)
{
	switch (verr) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
	case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
	case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
		return TLS_R_EXPIRED;
	case X509_V_ERR_CERT_REVOKED:
		return TLS_R_REVOKED;
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
	case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
		return TLS_R_CRL;
	case X509_V_ERR_APPLICATION_VERIFICATION:
		return TLS_R_OTHER;
	default:
		return TLS_R_UNTRUSTED;
	}
}

static enum tls_reason
tls_reason_err(unsigned long e)
{
	int r;

	if (e == 0)
		return TLS_R_CLOSED;
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return ERR_GET_LIB(e) == ERR_LIB_SYS ? TLS_R_CLOSED
						     : TLS_R_OTHER;
	r = ERR_GET_REASON(e);
	switch (r) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return TLS_R_NO_CERTIFICATE;
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		return TLS_R_UNTRUSTED;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return TLS_R_CLOSED;
	default:
		return r >= SSL_AD_REASON_OFFSET ? TLS_R_PEER_ALERT
						 : TLS_R_PROTOCOL;
	}
}

void
tls_note_handshake_failure(SSL *ssl, unsigned long err)
{
	uintptr_t st;
	enum tls_reason r;
	long verr;

	if (ssl == NULL || !tls_init())
		return;
	st = (uintptr_t)SSL_get_ex_data(ssl, tls_ssl_idx);
	if ((st & TLS_ST_COUNTED) != 0)
		return;
	r = (enum tls_reason)(st & TLS_ST_REASON);
	if (r == TLS_R_NONE) {
		verr = SSL_get_verify_result(ssl);
		if (verr != X509_V_OK && SSL_get0_peer_certificate(ssl) != NULL)
			r = tls_reason_x509(verr);
		else
			r = tls_reason_err(err != 0 ? err : ERR_peek_error());
	}
	tls_fail(ssl, r);
}

const char *
tls_failure_reason(SSL *ssl)
{
	uintptr_t st;

	if (ssl == NULL || !tls_init())
		return NULL;
	st = (uintptr_t)SSL_get_ex_data(ssl, tls_ssl_idx) & TLS_ST_REASON;
	if (st == TLS_R_NONE || st >= TLS_R_COUNT)
		return NULL;
	return tls_reason_names[st];
}

/* A name, one line (RFC 2253), made safe for a log field. */
static void
tls_name(const X509_NAME *name, char *out, size_t n)
{
	BIO *b;
	char *data = NULL;
	long len;
	size_t cut;

	out[0] = '\0';
	if (name == NULL || (b = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		len = BIO_get_mem_data(b, &data);
		if (len > 0 && data != NULL) {
			cut = (size_t)len < n - 1 ? (size_t)len : n - 1;
			memcpy(out, data, cut);
			out[cut] = '\0';
		}
	}
	BIO_free(b);
}

/* Subject of cert, one line, made safe for a log field. */
static void
tls_subject(X509 *cert, char *out, size_t n)
{
	out[0] = '\0';
	if (cert != NULL)
		tls_name(X509_get_subject_name(cert), out, n);
}

/* Serial number of cert in hex (upper case, as openssl x509 -serial). */
static void
tls_serial(X509 *cert, char *out, size_t n)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

	util_strlcpy(out, hex != NULL ? hex : "", n);
	OPENSSL_free(hex);
	BN_free(bn);
}

/*
 * Certificate checks on top of the chain: OpenSSL calls this for every
 * certificate and every error. Errors keep their first reason; at the
 * leaf (depth 0, chain fine) the URA and the environment's policy are
 * required.
 */
static int
tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
	    xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	X509 *cert = X509_STORE_CTX_get_current_cert(xs);
	enum tls_reason r = TLS_R_NONE;
	char ura[CONFIG_URA_LEN + 1];
	char subject[256], safe[256];
	uintptr_t flags;
	bool production;
	enum gw_err err;

	if (ssl == NULL)
		return ok;
	if (!ok) {
		r = tls_reason_x509(X509_STORE_CTX_get_error(xs));
	} else if (X509_STORE_CTX_get_error_depth(xs) == 0) {
		flags = (uintptr_t)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
						       tls_ctx_idx);
		production = (flags & TLS_CTX_PRODUCTION) != 0;
		err = tls_cert_ura(cert, ura);
		if (err == GW_NOTFOUND)
			r = TLS_R_NO_URA;
		else if (err != GW_OK)
			r = TLS_R_BAD_URA;
		else if (tls_cert_is_test(cert) == production)
			r = TLS_R_POLICY;
		if (r != TLS_R_NONE)
			X509_STORE_CTX_set_error(
			    xs, X509_V_ERR_APPLICATION_VERIFICATION);
	}
	if (r == TLS_R_NONE)
		return 1;
	tls_subject(cert, subject, sizeof(subject));
	log_info("event=tls_refused side=%s reason=%s depth=%d subject=%s",
		 SSL_is_server(ssl) ? "server" : "client", tls_reason_names[r],
		 X509_STORE_CTX_get_error_depth(xs),
		 log_safe(safe, sizeof(safe), subject));
	tls_fail(ssl, r);
	return 0;
}

/* Read a PEM file of at most max bytes; messages name the config key. */
static enum gw_err
tls_read(const char *what, const char *path, size_t max, char **data,
	 size_t *len, char *errbuf, size_t errlen)
{
	enum gw_err err;

	*data = NULL;
	if (path == NULL || path[0] == '\0') {
		tls_errf(errbuf, errlen, "%s is not set", what);
		return GW_CONFIG;
	}
	err = util_read_file(path, max, data, len);
	if (err == GW_NOTFOUND)
		tls_errf(errbuf, errlen, "%s %s: no such file", what, path);
	else if (err == GW_TOOBIG)
		tls_errf(errbuf, errlen, "%s %s: larger than %zu bytes", what,
			 path, max);
	else if (err != GW_OK)
		tls_errf(errbuf, errlen, "%s %s: cannot read: %s", what, path,
			 strerror(errno));
	return err;
}

/* Parse every certificate and CRL in a PEM file. */
static enum gw_err
tls_read_infos(const char *what, const char *path, STACK_OF(X509_INFO) * *out,
	       char *errbuf, size_t errlen)
{
	char *data = NULL, ebuf[160];
	size_t len = 0;
	BIO *b = NULL;
	enum gw_err err;

	*out = NULL;
	if ((err = tls_read(what, path, TLS_MAX_PEM, &data, &len, errbuf,
			    errlen)) != GW_OK)
		return err;
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	*out = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	if (*out == NULL) {
		tls_errf(errbuf, errlen, "%s %s: not PEM: %s", what, path,
			 tls_ossl_err(ebuf, sizeof(ebuf)));
		err = GW_PARSE;
	}
out:
	BIO_free(b);
	free(data);
	return err;
}

/* The pinned trust store: only the certificates of cfg->tls_trust, and
 * the CRLs of cfg->tls_crl when set. */
static enum gw_err
tls_store_new(const struct config *cfg, X509_STORE **out, char *errbuf,
	      size_t errlen)
{
	STACK_OF(X509_INFO) *infos = NULL;
	X509_STORE *store = NULL;
	X509_INFO *xi;
	const ASN1_TIME *next;
	unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN;
	int ncerts = 0, ncrls = 0;
	enum gw_err err;

	*out = NULL;
	if ((store = X509_STORE_new()) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	if ((err = tls_read_infos("tls_trust", cfg->tls_trust, &infos, errbuf,
				  errlen)) != GW_OK)
		goto out;
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		xi = sk_X509_INFO_value(infos, i);
		if (xi->x509 != NULL) {
			if (!X509_STORE_add_cert(store, xi->x509)) {
				err = GW_NOMEM;
				goto out;
			}
			ncerts++;
		}
	}
	if (ncerts == 0) {
		tls_errf(errbuf, errlen, "tls_trust %s: no certificate in it",
			 cfg->tls_trust);
		err = GW_PARSE;
		goto out;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	infos = NULL;

	if (cfg->tls_crl != NULL && cfg->tls_crl[0] != '\0') {
		if ((err = tls_read_infos("tls_crl", cfg->tls_crl, &infos,
					  errbuf, errlen)) != GW_OK)
			goto out;
		for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
			xi = sk_X509_INFO_value(infos, i);
			if (xi->crl == NULL)
				continue;
			if (!X509_STORE_add_crl(store, xi->crl)) {
				err = GW_NOMEM;
				goto out;
			}
			next = X509_CRL_get0_nextUpdate(xi->crl);
			if (next != NULL && X509_cmp_current_time(next) < 0)
				log_warnx("event=tls_crl_expired crl=%s "
					  "effect=every_handshake_fails",
					  cfg->tls_crl);
			ncrls++;
		}
		if (ncrls == 0) {
			tls_errf(errbuf, errlen, "tls_crl %s: no CRL in it",
				 cfg->tls_crl);
			err = GW_PARSE;
			goto out;
		}
		flags |= X509_V_FLAG_CRL_CHECK;
	}
	X509_STORE_set_flags(store, flags);
	X509_STORE_set_depth(store, TLS_VERIFY_DEPTH);
	*out = store;
	store = NULL;
out:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	X509_STORE_free(store);
	return err;
}

/* Declines to prompt for a passphrase: encrypted keys are refused. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

/* Load the own certificate chain and private key into ctx. */
static enum gw_err
tls_load_identity(const struct config *cfg, SSL_CTX *ctx, char *errbuf,
		  size_t errlen)
{
	char *data = NULL, ebuf[160];
	size_t len = 0;
	EVP_PKEY *pkey = NULL;
	BIO *b = NULL;
	struct stat st;
	enum gw_err err;
	int64_t left;

	/* A readable certificate first, for a clear message. */
	if ((err = tls_read("tls_cert", cfg->tls_cert, TLS_MAX_PEM, &data, &len,
			    errbuf, errlen)) != GW_OK)
		goto out;
	free(data);
	data = NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		tls_errf(errbuf, errlen, "tls_cert %s: %s", cfg->tls_cert,
			 tls_ossl_err(ebuf, sizeof(ebuf)));
		err = GW_PARSE;
		goto out;
	}

	if (cfg->tls_key == NULL || cfg->tls_key[0] == '\0') {
		tls_errf(errbuf, errlen, "tls_key is not set");
		err = GW_CONFIG;
		goto out;
	}
	if (stat(cfg->tls_key, &st) != 0) {
		err = errno == ENOENT ? GW_NOTFOUND : GW_IO;
		tls_errf(errbuf, errlen, "tls_key %s: %s", cfg->tls_key,
			 errno == ENOENT ? "no such file" : strerror(errno));
		goto out;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		tls_errf(errbuf, errlen,
			 "tls_key %s: group or others may access it (mode "
			 "%04o); make it mode 0600",
			 cfg->tls_key, (unsigned)(st.st_mode & 07777));
		err = GW_CONFIG;
		goto out;
	}
	if ((err = tls_read("tls_key", cfg->tls_key, TLS_MAX_KEY, &data, &len,
			    errbuf, errlen)) != GW_OK)
		goto out;
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(b, NULL, tls_no_passphrase, NULL);
	if (pkey == NULL) {
		tls_errf(errbuf, errlen,
			 "tls_key %s: no usable private key (PEM, not "
			 "encrypted): %s",
			 cfg->tls_key, tls_ossl_err(ebuf, sizeof(ebuf)));
		err = GW_PARSE;
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_errf(errbuf, errlen,
			 "tls_key %s does not match tls_cert %s: %s",
			 cfg->tls_key, cfg->tls_cert,
			 tls_ossl_err(ebuf, sizeof(ebuf)));
		err = GW_CRYPTO;
		goto out;
	}
	if (tls_cert_file_expiry(cfg->tls_cert, &left) == GW_OK) {
		if (left < 0)
			log_warnx("event=tls_cert_expired cert=%s",
				  cfg->tls_cert);
		else if (left < 30 * 86400)
			log_warnx("event=tls_cert_expiring cert=%s days=%lld",
				  cfg->tls_cert, (long long)(left / 86400));
	}
	err = GW_OK;
out:
	EVP_PKEY_free(pkey);
	BIO_free(b);
	if (data != NULL) {
		OPENSSL_cleanse(data, len);
		free(data);
	}
	return err;
}

/* Protocol versions, ciphers, groups and options shared by both sides. */
static enum gw_err
tls_protocol_setup(SSL_CTX *ctx, char *errbuf, size_t errlen)
{
	char ebuf[160];

	SSL_CTX_set_security_level(ctx, 2);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, tls_ciphers_13) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, tls_ciphers_12) != 1 ||
	    SSL_CTX_set1_sigalgs_list(ctx, tls_sigalgs) != 1) {
		tls_errf(errbuf, errlen, "tls protocol settings refused: %s",
			 tls_ossl_err(ebuf, sizeof(ebuf)));
		return GW_CRYPTO;
	}
	/* X448 may be missing from a restricted OpenSSL build. */
	if (SSL_CTX_set1_groups_list(ctx, tls_groups) != 1) {
		ERR_clear_error();
		if (SSL_CTX_set1_groups_list(ctx, tls_groups_nox448) != 1) {
			tls_errf(errbuf, errlen, "tls groups refused: %s",
				 tls_ossl_err(ebuf, sizeof(ebuf)));
			return GW_CRYPTO;
		}
	}
	/* OpenSSL 3 already refuses client-initiated renegotiation unless
   * SSL_OP_ALLOW_CLIENT_RENEGOTIATION; this refuses all of it. */
	SSL_CTX_set_options(ctx,
			    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_max_early_data(ctx, 0);
	SSL_CTX_set_recv_max_early_data(ctx, 0);
	return GW_OK;
}

/* Everything both contexts share: protocol, identity, pinned trust,
 * verification callback. */
static enum gw_err
tls_ctx_setup(const struct config *cfg, SSL_CTX *ctx, bool server, char *errbuf,
	      size_t errlen)
{
	X509_STORE *store = NULL;
	uintptr_t flags = TLS_CTX_OURS;
	enum gw_err err;
	int mode;

	if (!tls_init()) {
		tls_errf(errbuf, errlen, "tls: OpenSSL ex_data unavailable");
		return GW_NOMEM;
	}
	if ((err = tls_protocol_setup(ctx, errbuf, errlen)) != GW_OK ||
	    (err = tls_load_identity(cfg, ctx, errbuf, errlen)) != GW_OK ||
	    (err = tls_store_new(cfg, &store, errbuf, errlen)) != GW_OK)
		return err;
	SSL_CTX_set_cert_store(ctx, store); /* ctx owns it now */
	if (cfg->environment == CONFIG_ENV_PRODUCTION)
		flags |= TLS_CTX_PRODUCTION;
	if (!SSL_CTX_set_ex_data(ctx, tls_ctx_idx, (void *)flags)) {
		tls_errf(errbuf, errlen, "tls: cannot attach settings");
		return GW_NOMEM;
	}
	mode = SSL_VERIFY_PEER;
	if (server)
		mode |=
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE;
	SSL_CTX_set_verify(ctx, mode, tls_verify_cb);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	return GW_OK;
}

/*
 * Check the own certificate: in production it must not carry the test
 * policy (a production gateway would present, and sign as, a test
 * identity, which production peers refuse anyway, and test peers should
 * never be able to reach). It should carry a URA and, when configured,
 * the organisation's: a mismatch is worth a warning, not a refusal.
 */
static enum gw_err
tls_check_own(const struct config *cfg, SSL_CTX *ctx, char *errbuf,
	      size_t errlen)
{
	char ura[CONFIG_URA_LEN + 1];
	X509 *own = SSL_CTX_get0_certificate(ctx);

	if (own == NULL)
		return GW_OK;
	if (cfg->environment == CONFIG_ENV_PRODUCTION &&
	    tls_cert_is_test(own)) {
		tls_errf(errbuf, errlen,
			 "tls_cert %s carries the UZI test policy %s; "
			 "environment production refuses it",
			 cfg->tls_cert, TLS_OID_POLICY_TEST);
		return GW_CONFIG;
	}
	if (tls_cert_ura(own, ura) != GW_OK)
		log_warnx("event=tls_cert_no_ura cert=%s", cfg->tls_cert);
	else if (cfg->ura[0] != '\0' && strcmp(cfg->ura, ura) != 0)
		log_warnx("event=tls_cert_ura_mismatch cert=%s cert_ura=%s "
			  "organisation_ura=%s",
			  cfg->tls_cert, ura, cfg->ura);
	return GW_OK;
}

enum gw_err
tls_server_ctx_new(const struct config *cfg, SSL_CTX **out, char *errbuf,
		   size_t errlen)
{
	static const unsigned char sid_ctx[] = "pzpgw";
	STACK_OF(X509_NAME) *cas = NULL;
	SSL_CTX *ctx = NULL;
	char ebuf[160];
	enum gw_err err;

	*out = NULL;
	tls_errf(errbuf, errlen, "%s", "");
	metrics_describe(TLS_METRIC, METRICS_COUNTER,
			 "TLS handshakes on the organisation listener that "
			 "failed, by reason.");
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_errf(errbuf, errlen, "tls: %s",
			 tls_ossl_err(ebuf, sizeof(ebuf)));
		err = GW_NOMEM;
		goto out;
	}
	if ((err = tls_ctx_setup(cfg, ctx, true, errbuf, errlen)) != GW_OK)
		goto out;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Needed for session resumption with client certificates. */
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) !=
	    1) {
		err = GW_NOMEM;
		goto out;
	}
	SSL_CTX_set_timeout(ctx, 300);
	/* Tell clients which CA to pick their certificate for. */
	cas = SSL_load_client_CA_file(cfg->tls_trust);
	if (cas != NULL)
		SSL_CTX_set_client_CA_list(ctx, cas); /* ctx owns cas */
	ERR_clear_error();
	if ((err = tls_check_own(cfg, ctx, errbuf, errlen)) != GW_OK)
		goto out;
	*out = ctx;
	ctx = NULL;
	err = GW_OK;
out:
	SSL_CTX_free(ctx);
	return err;
}

enum gw_err
tls_client_ctx_setup(const struct config *cfg, SSL_CTX *ctx, char *errbuf,
		     size_t errlen)
{
	enum gw_err err;

	tls_errf(errbuf, errlen, "%s", "");
	if ((err = tls_ctx_setup(cfg, ctx, false, errbuf, errlen)) != GW_OK)
		return err;
	return tls_check_own(cfg, ctx, errbuf, errlen);
}

enum gw_err
tls_client_ctx_new(const struct config *cfg, SSL_CTX **out, char *errbuf,
		   size_t errlen)
{
	SSL_CTX *ctx = NULL;
	char ebuf[160];
	enum gw_err err;

	*out = NULL;
	tls_errf(errbuf, errlen, "%s", "");
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_errf(errbuf, errlen, "tls: %s",
			 tls_ossl_err(ebuf, sizeof(ebuf)));
		return GW_NOMEM;
	}
	if ((err = tls_client_ctx_setup(cfg, ctx, errbuf, errlen)) != GW_OK) {
		SSL_CTX_free(ctx);
		return err;
	}
	*out = ctx;
	return GW_OK;
}

/* t as unix seconds; 0 when it cannot be read. */
static int64_t
tls_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return util_days_from_civil((int64_t)tm.tm_year + 1900, tm.tm_mon + 1,
				    tm.tm_mday) *
		   86400 +
	       (int64_t)tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

enum gw_err
tls_peer_get(SSL *ssl, struct tls_peer *out)
{
	struct tls_peer_memo *m = NULL;
	X509 *cert;

	memset(out, 0, sizeof(*out));
	if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL)
		return GW_DENIED;
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return GW_DENIED;
	if (tls_peer_idx >= 0 &&
	    (m = SSL_get_ex_data(ssl, tls_peer_idx)) != NULL &&
	    m->cert == cert) {
		*out = m->peer;
		return GW_OK;
	}
	if (tls_cert_ura(cert, out->ura) != GW_OK) {
		out->ura[0] = '\0';
		return GW_DENIED;
	}
	tls_subject(cert, out->subject, sizeof(out->subject));
	tls_name(X509_get_issuer_name(cert), out->issuer, sizeof(out->issuer));
	tls_serial(cert, out->serial, sizeof(out->serial));
	out->test_policy = tls_cert_is_test(cert);
	out->not_after = tls_time_unix(X509_get0_notAfter(cert));
	/* Remember it (without memory, the next call reads it again). */
	if (tls_peer_idx < 0)
		return GW_OK;
	if (m == NULL) {
		if ((m = calloc(1, sizeof(*m))) == NULL)
			return GW_OK;
		if (!SSL_set_ex_data(ssl, tls_peer_idx, m)) {
			free(m);
			return GW_OK;
		}
	}
	if (X509_up_ref(cert) != 1)
		return GW_OK;
	X509_free(m->cert);
	m->cert = cert;
	m->peer = *out;
	return GW_OK;
}

static bool
tls_all_digits(const char *s, bool allow_empty)
{
	if (*s == '\0')
		return allow_empty;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * The URA in a UZI otherName 2.5.5.5 value: IA5String
 * "<oid>-<version>-<uzi-nr>-<pass type>-<URA>-<role>-<AGB>". GW_INVALID
 * for anything else, including pass types other than S (server).
 */
static enum gw_err
tls_uzi_ura(const ASN1_TYPE *v, char ura[CONFIG_URA_LEN + 1])
{
	char buf[TLS_UZI_MAX + 1];
	char *f[TLS_UZI_FIELDS], *p;
	const unsigned char *d;
	int len, n;

	if (v == NULL || v->type != V_ASN1_IA5STRING)
		return GW_INVALID;
	len = ASN1_STRING_length(v->value.ia5string);
	d = ASN1_STRING_get0_data(v->value.ia5string);
	if (d == NULL || len <= 0 || len > TLS_UZI_MAX)
		return GW_INVALID;
	for (int i = 0; i < len; i++)
		if (d[i] <= 0x20 || d[i] >= 0x7f)
			return GW_INVALID; /* no NUL, spaces, non-ASCII */
	memcpy(buf, d, (size_t)len);
	buf[len] = '\0';

	n = 0;
	f[n++] = buf;
	for (p = buf; *p != '\0'; p++) {
		if (*p != '-')
			continue;
		if (n == TLS_UZI_FIELDS)
			return GW_INVALID; /* too many fields */
		*p = '\0';
		f[n++] = p + 1;
	}
	if (n != TLS_UZI_FIELDS)
		return GW_INVALID;
	if (strcmp(f[0], TLS_UZI_NS) != 0 || !tls_all_digits(f[1], false) ||
	    !tls_all_digits(f[2], false))
		return GW_INVALID;
	if (strcmp(f[3], "S") != 0) {
		log_debug("event=tls_uzi_pass_type type=%.1s", f[3]);
		return GW_INVALID;
	}
	if (!util_is_ura(f[4]) || f[5][0] == '\0' ||
	    strspn(f[5], "0123456789.") != strlen(f[5]) ||
	    !tls_all_digits(f[6], true))
		return GW_INVALID;
	util_strlcpy(ura, f[4], CONFIG_URA_LEN + 1);
	return GW_OK;
}

/*
 * The URA in a permanentIdentifier (RFC 4043: SEQUENCE { identifierValue
 * UTF8String OPTIONAL, assigner OBJECT IDENTIFIER OPTIONAL }): the
 * identifierValue when it is 8 digits. GW_NOTFOUND for another kind of
 * identifier, GW_INVALID when the structure is broken.
 */
static enum gw_err
tls_permid_ura(const ASN1_TYPE *v, char ura[CONFIG_URA_LEN + 1])
{
	STACK_OF(ASN1_TYPE) *seq = NULL;
	const unsigned char *p, *end;
	const ASN1_STRING *idv = NULL;
	char buf[CONFIG_URA_LEN + 1];
	enum gw_err err = GW_INVALID;
	int nobj = 0;

	if (v == NULL || v->type != V_ASN1_SEQUENCE ||
	    v->value.sequence == NULL)
		return GW_INVALID;
	p = v->value.sequence->data;
	end = p + v->value.sequence->length;
	seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, v->value.sequence->length);
	if (seq == NULL || p != end || sk_ASN1_TYPE_num(seq) > 2)
		goto out;
	for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
		const ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, i);

		if (t->type == V_ASN1_UTF8STRING && idv == NULL && nobj == 0)
			idv = t->value.utf8string;
		else if (t->type == V_ASN1_OBJECT && nobj == 0)
			nobj++;
		else
			goto out; /* wrong type or order */
	}
	err = GW_NOTFOUND;
	if (idv == NULL || ASN1_STRING_length(idv) != CONFIG_URA_LEN)
		goto out;
	memcpy(buf, ASN1_STRING_get0_data(idv), CONFIG_URA_LEN);
	buf[CONFIG_URA_LEN] = '\0';
	if (!util_is_ura(buf))
		goto out;
	memcpy(ura, buf, sizeof(buf));
	err = GW_OK;
out:
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return err;
}

enum gw_err
tls_cert_ura(X509 *cert, char ura[CONFIG_URA_LEN + 1])
{
	GENERAL_NAMES *names = NULL;
	char found[CONFIG_URA_LEN + 1] = "", one[CONFIG_URA_LEN + 1];
	char oid[64];
	enum gw_err err = GW_NOTFOUND, e;
	int crit = -1;

	ura[0] = '\0';
	if (cert == NULL)
		return GW_NOTFOUND;
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (names == NULL) /* -1: absent; otherwise duplicate or broken */
		return crit == -1 ? GW_NOTFOUND : GW_INVALID;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);

		if (gn->type != GEN_OTHERNAME)
			continue;
		if (OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id,
				1) <= 0)
			continue;
		if (strcmp(oid, TLS_OID_UZI_OTHERNAME) == 0)
			e = tls_uzi_ura(gn->d.otherName->value, one);
		else if (strcmp(oid, TLS_OID_PERMANENT_ID) == 0)
			e = tls_permid_ura(gn->d.otherName->value, one);
		else
			continue;
		if (e == GW_NOTFOUND)
			continue;
		if (e != GW_OK) {
			err = e;
			goto out;
		}
		if (found[0] != '\0' && strcmp(found, one) != 0) {
			err = GW_INVALID; /* two different organisations */
			goto out;
		}
		memcpy(found, one, sizeof(found));
	}
	if (found[0] != '\0') {
		memcpy(ura, found, CONFIG_URA_LEN + 1);
		err = GW_OK;
	}
out:
	GENERAL_NAMES_free(names);
	return err;
}

bool
tls_cert_is_test(X509 *cert)
{
	CERTIFICATEPOLICIES *pols;
	char oid[64];
	bool test = false;

	if (cert == NULL)
		return false;
	pols = X509_get_ext_d2i(cert, NID_certificate_policies, NULL, NULL);
	if (pols == NULL)
		return false;
	for (int i = 0; i < sk_POLICYINFO_num(pols); i++) {
		const POLICYINFO *pi = sk_POLICYINFO_value(pols, i);

		if (OBJ_obj2txt(oid, sizeof(oid), pi->policyid, 1) > 0 &&
		    strcmp(oid, TLS_OID_POLICY_TEST) == 0)
			test = true;
	}
	CERTIFICATEPOLICIES_free(pols);
	return test;
}

/* The first certificate in the PEM file at path. Caller frees. */
static enum gw_err
tls_read_first_cert(const char *path, X509 **out)
{
	char *data = NULL;
	size_t len = 0;
	BIO *b = NULL;
	enum gw_err err;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return GW_NOTFOUND;
	if ((err = util_read_file(path, TLS_MAX_PEM, &data, &len)) != GW_OK)
		return err;
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	if ((*out = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		ERR_clear_error();
		err = GW_PARSE;
		goto out;
	}
	err = GW_OK;
out:
	BIO_free(b);
	free(data);
	return err;
}

enum gw_err
tls_cert_file_expiry(const char *path, int64_t *seconds_left)
{
	X509 *cert = NULL;
	enum gw_err err;

	*seconds_left = 0;
	if ((err = tls_read_first_cert(path, &cert)) != GW_OK)
		return err;
	*seconds_left =
	    tls_time_unix(X509_get0_notAfter(cert)) - (int64_t)time(NULL);
	X509_free(cert);
	return GW_OK;
}

enum gw_err
tls_cert_file_is_test(const char *path, bool *is_test)
{
	X509 *cert = NULL;
	enum gw_err err;

	*is_test = false;
	if ((err = tls_read_first_cert(path, &cert)) != GW_OK)
		return err;
	*is_test = tls_cert_is_test(cert);
	X509_free(cert);
	return GW_OK;
}

/*
 * Verify one of the gateway's own certificate files (leaf first, the
 * rest of the file and of chain_path as intermediates) against store for
 * purpose (0: any). On failure why says what OpenSSL found, at which
 * depth. GW_OK when it verifies, GW_INVALID when not, other errors when
 * a file cannot be read (why says which).
 */
static enum gw_err
tls_verify_own(X509_STORE *store, const char *what, const char *path,
	       const char *chain_path, int purpose, char *why, size_t n)
{
	STACK_OF(X509_INFO) *infos = NULL, *more = NULL;
	STACK_OF(X509) *chain = NULL;
	X509_STORE_CTX *xs = NULL;
	X509 *leaf = NULL;
	enum gw_err err;
	int rc;

	if ((err = tls_read_infos(what, path, &infos, why, n)) != GW_OK)
		goto out;
	if (chain_path != NULL && chain_path[0] != '\0' &&
	    (err = tls_read_infos("chain", chain_path, &more, why, n)) != GW_OK)
		goto out;
	if ((chain = sk_X509_new_null()) == NULL ||
	    (xs = X509_STORE_CTX_new()) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	for (int f = 0; f < 2; f++) {
		STACK_OF(X509_INFO) *s = f == 0 ? infos : more;

		for (int i = 0; i < sk_X509_INFO_num(s); i++) {
			X509 *x = sk_X509_INFO_value(s, i)->x509;

			if (x == NULL)
				continue;
			if (leaf == NULL)
				leaf = x;
			else if (!sk_X509_push(chain, x)) {
				err = GW_NOMEM;
				goto out;
			}
		}
	}
	if (leaf == NULL) {
		tls_errf(why, n, "%s %s: no certificate in it", what, path);
		err = GW_PARSE;
		goto out;
	}
	if (!X509_STORE_CTX_init(xs, store, leaf, chain)) {
		err = GW_NOMEM;
		goto out;
	}
	if (purpose != 0)
		X509_STORE_CTX_set_purpose(xs, purpose);
	rc = X509_verify_cert(xs);
	if (rc == 1) {
		err = GW_OK;
	} else {
		int e = X509_STORE_CTX_get_error(xs);

		tls_errf(why, n, "%s (depth %d)",
			 X509_verify_cert_error_string(e),
			 X509_STORE_CTX_get_error_depth(xs));
		err = GW_INVALID;
	}
out:
	X509_STORE_CTX_free(xs);
	/* The stack borrows the certificates of infos and more. */
	sk_X509_free(chain);
	sk_X509_INFO_pop_free(more, X509_INFO_free);
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	return err;
}

int
tls_check_own_chains(const struct config *cfg, config_err_fn fn, void *arg)
{
	static const struct {
		int purpose;
		const char *use;
	} uses[] = {
	    {X509_PURPOSE_SSL_SERVER, "as a TLS server"},
	    {X509_PURPOSE_SSL_CLIENT, "as a TLS client (deliveries)"},
	};
	X509_STORE *store = NULL;
	char why[512], msg[1024];
	int nerr = 0;

	if (cfg->tls_trust == NULL || cfg->tls_cert == NULL)
		return 0;
	/* Files that cannot be read as certificates or CRLs are left to
	 * the daemon's TLS and signing setup to report, as at its start. */
	if (tls_store_new(cfg, &store, why, sizeof(why)) != GW_OK)
		return 0;
	/* The peers pin the same issuing CA: what this store refuses, they
	 * refuse in the handshake with this gateway, both ways. */
	for (size_t i = 0; i < UTIL_ARRAY_LEN(uses); i++) {
		if (tls_verify_own(store, "[listen] certificate", cfg->tls_cert,
				   NULL, uses[i].purpose, why,
				   sizeof(why)) != GW_INVALID)
			continue;
		snprintf(msg, sizeof(msg),
			 "[listen] certificate %s does not verify against "
			 "[listen] trust %s%s%s %s: %s; organisations and "
			 "gateways that trust the same CA refuse this "
			 "gateway's connections",
			 cfg->tls_cert, cfg->tls_trust,
			 cfg->tls_crl != NULL ? " and crl " : "",
			 cfg->tls_crl != NULL ? cfg->tls_crl : "", uses[i].use,
			 why);
		fn(arg, cfg->path, 0, msg);
		nerr++;
		break;
	}
	/* A receiver checks the signature's x5c chain against the same
	 * trust and refuses the message (401) when it does not verify. */
	if (cfg->sign_cert != NULL &&
	    tls_verify_own(store, "[signing] certificate", cfg->sign_cert,
			   cfg->sign_chain, 0, why,
			   sizeof(why)) == GW_INVALID) {
		snprintf(msg, sizeof(msg),
			 "[signing] certificate %s%s%s does not verify against "
			 "[listen] trust %s: %s; receiving gateways refuse "
			 "messages signed with it (401)",
			 cfg->sign_cert, cfg->sign_chain ? " with chain " : "",
			 cfg->sign_chain ? cfg->sign_chain : "", cfg->tls_trust,
			 why);
		fn(arg, cfg->path, 0, msg);
		nerr++;
	}
	X509_STORE_free(store);
	return nerr;
}
