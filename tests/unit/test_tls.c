/* Unit tests for tls: URA extraction, policies and expiry on a PKI made by
 * certs/dev-pki.sh, context creation errors, and real in-memory
 * handshakes with the failure metric. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "util.h"

static char pki[64];

/* Interned paths of files in the PKI directory: stable for the whole
 * run, freed by group_teardown. */
static char *paths[128];
static size_t npaths;

static const char *
path(const char *name)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", pki, name);
	for (size_t i = 0; i < npaths; i++)
		if (strcmp(paths[i], buf) == 0)
			return paths[i];
	if (npaths == UTIL_ARRAY_LEN(paths) ||
	    (paths[npaths] = strdup(buf)) == NULL)
		fail_msg("path table full");
	return paths[npaths++];
}

static int
group_setup(void **state)
{
	const char *src = getenv("PZPGW_SRCDIR");
	char cmd[512];

	log_init(LOG_TO_STDERR, false, "test_tls");
	snprintf(pki, sizeof(pki), "/tmp/pzpgw-tls-XXXXXX");
	if (mkdtemp(pki) == NULL)
		return -1;
	/* dev-pki.sh refuses an existing PKI, not an empty directory */
	snprintf(cmd, sizeof(cmd),
		 "sh '%s/certs/dev-pki.sh' '%s' --extras >/dev/null",
		 src != NULL ? src : ".", pki);
	if (system(cmd) != 0) {
		fprintf(stderr, "dev-pki.sh failed (set PZPGW_SRCDIR)\n");
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
	metrics_reset();
	while (npaths > 0)
		free(paths[--npaths]);
	return system(cmd) == 0 ? 0 : -1;
}

static X509 *
load_cert(const char *file)
{
	FILE *f = fopen(path(file), "r");
	X509 *x;

	if (f == NULL)
		fail_msg("open %s", path(file));
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		fail_msg("no certificate in %s", path(file));
	return x;
}

/* A config with the gateway's certificate (in production one without
 * the test policy, which production refuses as its own); only the fields
 * tls uses. */
static struct config
make_cfg(enum config_env env, bool crl)
{
	bool prod = env == CONFIG_ENV_PRODUCTION;
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	util_strlcpy(cfg.ura, prod ? "90000006" : "90000001", sizeof(cfg.ura));
	cfg.tls_cert = (char *)path(prod ? "prod.crt" : "gateway.crt");
	cfg.tls_key = (char *)path(prod ? "prod.key" : "gateway.key");
	cfg.tls_trust = (char *)path("uzi-server-ca.pem");
	cfg.tls_crl = crl ? (char *)path("crl.pem") : NULL;
	cfg.environment = env;
	return cfg;
}

static void
test_ura_from_pki(void **state)
{
	static const struct {
		const char *file;
		enum gw_err want;
		const char *ura;
	} cases[] = {
	    {"gateway-leaf.crt", GW_OK, "90000001"},
	    {"hospital-leaf.crt", GW_OK, "90000002"},
	    {"gp1-leaf.crt", GW_OK, "90000003"},
	    {"gp2-leaf.crt", GW_OK, "90000004"},
	    {"expired-leaf.crt", GW_OK, "90000005"},
	    {"prod-leaf.crt", GW_OK, "90000006"},
	    {"permid-leaf.crt", GW_OK, "90000007"},
	    {"revoked-leaf.crt", GW_OK, "90000008"},
	    {"otherca-leaf.crt", GW_OK, "90000002"},
	    {"noura-leaf.crt", GW_NOTFOUND, ""},
	    {"badsan-leaf.crt", GW_INVALID, ""},
	    {"wrongtype-leaf.crt", GW_INVALID, ""},
	    {"root.crt", GW_NOTFOUND, ""},
	    {"uzi-server-ca.pem", GW_NOTFOUND, ""},
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		X509 *x = load_cert(cases[i].file);
		char ura[CONFIG_URA_LEN + 1] = "junk";
		enum gw_err err = tls_cert_ura(x, ura);

		if (err != cases[i].want || strcmp(ura, cases[i].ura) != 0)
			fail_msg("%s: got %s '%s', want %s '%s'", cases[i].file,
				 gw_strerror(err), ura,
				 gw_strerror(cases[i].want), cases[i].ura);
		X509_free(x);
	}
}

/* Synthetic subjectAltNames built with the OpenSSL API. */
enum name_kind {
	N_UZI,
	N_UZI_UTF8,
	N_PERMID,
	N_PERMID_NOASSIGNER,
	N_PERMID_INT,
	N_DNS
};

static void
add_name(GENERAL_NAMES *names, enum name_kind kind, const char *value)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_TYPE *t = ASN1_TYPE_new();
	ASN1_STRING *s;

	assert_non_null(gn);
	assert_non_null(t);
	if (kind == N_DNS) {
		s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, value, -1);
		GENERAL_NAME_set0_value(gn, GEN_DNS, s);
		ASN1_TYPE_free(t);
	} else if (kind == N_UZI || kind == N_UZI_UTF8) {
		s = kind == N_UZI ? ASN1_IA5STRING_new()
				  : ASN1_UTF8STRING_new();
		ASN1_STRING_set(s, value, -1);
		ASN1_TYPE_set(
		    t, kind == N_UZI ? V_ASN1_IA5STRING : V_ASN1_UTF8STRING, s);
		assert_true(GENERAL_NAME_set0_othername(
		    gn, OBJ_txt2obj(TLS_OID_UZI_OTHERNAME, 1), t));
	} else {
		STACK_OF(ASN1_TYPE) *seq = sk_ASN1_TYPE_new_null();
		ASN1_TYPE *idv = ASN1_TYPE_new(), *asg = NULL;
		unsigned char *der = NULL;
		int len;

		if (kind == N_PERMID_INT) {
			ASN1_INTEGER *n = ASN1_INTEGER_new();
			ASN1_INTEGER_set(n, 90000009);
			ASN1_TYPE_set(idv, V_ASN1_INTEGER, n);
		} else {
			s = ASN1_UTF8STRING_new();
			ASN1_STRING_set(s, value, -1);
			ASN1_TYPE_set(idv, V_ASN1_UTF8STRING, s);
		}
		sk_ASN1_TYPE_push(seq, idv);
		if (kind != N_PERMID_NOASSIGNER) {
			asg = ASN1_TYPE_new();
			ASN1_TYPE_set(asg, V_ASN1_OBJECT,
				      OBJ_txt2obj("2.16.528.1.1007.3.3", 1));
			sk_ASN1_TYPE_push(seq, asg);
		}
		len = i2d_ASN1_SEQUENCE_ANY(seq, &der);
		assert_true(len > 0);
		s = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
		ASN1_STRING_set(s, der, len);
		OPENSSL_free(der);
		sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
		ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
		assert_true(GENERAL_NAME_set0_othername(
		    gn, OBJ_txt2obj(TLS_OID_PERMANENT_ID, 1), t));
	}
	sk_GENERAL_NAME_push(names, gn);
}

#define UZI(ura)                                                               \
	"2.16.528.1.1003.1.3.5.5.5-1-10000099-S-" ura "-00.000-01000099"

static void
test_ura_synthetic(void **state)
{
	static const struct {
		const char *what;
		struct {
			enum name_kind kind;
			const char *value;
		} names[3];
		int nnames;
		enum gw_err want;
		const char *ura;
	} cases[] = {
	    {"uzi", {{N_UZI, UZI("12345678")}}, 1, GW_OK, "12345678"},
	    {"uzi after dns",
	     {{N_DNS, "x.test"}, {N_UZI, UZI("12345678")}},
	     2,
	     GW_OK,
	     "12345678"},
	    {"same ura twice",
	     {{N_UZI, UZI("12345678")}, {N_PERMID, "12345678"}},
	     2,
	     GW_OK,
	     "12345678"},
	    {"two different uras",
	     {{N_UZI, UZI("12345678")}, {N_PERMID, "87654321"}},
	     2,
	     GW_INVALID,
	     ""},
	    {"two different uzi names",
	     {{N_UZI, UZI("12345678")}, {N_UZI, UZI("12345679")}},
	     2,
	     GW_INVALID,
	     ""},
	    {"permid", {{N_PERMID, "12345678"}}, 1, GW_OK, "12345678"},
	    {"permid without assigner",
	     {{N_PERMID_NOASSIGNER, "23456789"}},
	     1,
	     GW_OK,
	     "23456789"},
	    {"permid not a ura", {{N_PERMID, "ABC-123"}}, 1, GW_NOTFOUND, ""},
	    {"permid 9 digits", {{N_PERMID, "123456789"}}, 1, GW_NOTFOUND, ""},
	    {"permid integer", {{N_PERMID_INT, ""}}, 1, GW_INVALID, ""},
	    {"uzi as utf8", {{N_UZI_UTF8, UZI("12345678")}}, 1, GW_INVALID, ""},
	    {"six fields",
	     {{N_UZI,
	       "2.16.528.1.1003.1.3.5.5.5-1-10000099-S-12345678-00.000"}},
	     1,
	     GW_INVALID,
	     ""},
	    {"eight fields",
	     {{N_UZI, UZI("12345678") "-1"}},
	     1,
	     GW_INVALID,
	     ""},
	    {"other namespace",
	     {{N_UZI, "2.16.528.1.1003.1.3.5.5.4-1-10000099-S-12345678-00.000-"
		      "01000099"}},
	     1,
	     GW_INVALID,
	     ""},
	    {"pass type N",
	     {{N_UZI, "2.16.528.1.1003.1.3.5.5.5-1-10000099-N-12345678-00.000-"
		      "01000099"}},
	     1,
	     GW_INVALID,
	     ""},
	    {"nine-digit ura", {{N_UZI, UZI("123456789")}}, 1, GW_INVALID, ""},
	    {"letters in ura", {{N_UZI, UZI("1234567a")}}, 1, GW_INVALID, ""},
	    {"empty uzi nr",
	     {{N_UZI, "2.16.528.1.1003.1.3.5.5.5-1--S-12345678-00.000-1"}},
	     1,
	     GW_INVALID,
	     ""},
	    {"space inside", {{N_UZI, UZI("1234 678")}}, 1, GW_INVALID, ""},
	    {"dns only", {{N_DNS, "x.test"}}, 1, GW_NOTFOUND, ""},
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		X509 *x = X509_new();
		GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
		char ura[CONFIG_URA_LEN + 1];
		enum gw_err err;

		for (int j = 0; j < cases[i].nnames; j++)
			add_name(names, cases[i].names[j].kind,
				 cases[i].names[j].value);
		assert_int_equal(
		    X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0), 1);
		err = tls_cert_ura(x, ura);
		if (err != cases[i].want || strcmp(ura, cases[i].ura) != 0)
			fail_msg("%s: got %s '%s', want %s '%s'", cases[i].what,
				 gw_strerror(err), ura,
				 gw_strerror(cases[i].want), cases[i].ura);
		GENERAL_NAMES_free(names);
		X509_free(x);
	}
	/* no subjectAltName at all */
	X509 *bare = X509_new();
	char ura[CONFIG_URA_LEN + 1];
	assert_int_equal(tls_cert_ura(bare, ura), GW_NOTFOUND);
	assert_string_equal(ura, "");
	X509_free(bare);
}

static void
test_policy_and_expiry(void **state)
{
	static const struct {
		const char *file;
		bool test;
	} cases[] = {
	    {"gateway-leaf.crt", true}, {"hospital-leaf.crt", true},
	    {"permid-leaf.crt", true},	{"prod-leaf.crt", false},
	    {"root.crt", false},
	};
	int64_t left;

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		X509 *x = load_cert(cases[i].file);
		bool got = tls_cert_is_test(x);

		if (got != cases[i].test)
			fail_msg("%s: got test=%d, want %d", cases[i].file, got,
				 cases[i].test);
		X509_free(x);
	}

	/* expired 2021-01-01T00:00:00Z exactly */
	assert_int_equal(tls_cert_file_expiry(path("expired.crt"), &left),
			 GW_OK);
	if (left != (int64_t)1609459200 - (int64_t)time(NULL) &&
	    left != (int64_t)1609459200 - (int64_t)time(NULL) + 1)
		fail_msg("expired: got %lld seconds left, want %lld",
			 (long long)left,
			 (long long)(1609459200 - (int64_t)time(NULL)));
	assert_true(left < 0);
	/* gateway: 825 days from now, give or take a minute */
	assert_int_equal(tls_cert_file_expiry(path("gateway.crt"), &left),
			 GW_OK);
	if (left < 825 * 86400 - 60 || left > 825 * 86400)
		fail_msg("gateway: got %lld seconds left, want ~%d",
			 (long long)left, 825 * 86400);
	assert_int_equal(tls_cert_file_expiry(path("missing.crt"), &left),
			 GW_NOTFOUND);
	assert_int_equal(tls_cert_file_expiry(path("gateway.key"), &left),
			 GW_PARSE);
}

/* Copy a file into the PKI directory with a mode. */
static void
copy_file(const char *from, const char *to, mode_t mode)
{
	char *data = NULL;
	size_t len = 0;

	assert_int_equal(util_read_file(path(from), 1 << 20, &data, &len),
			 GW_OK);
	assert_int_equal(util_write_file(path(to), data, len, 0600), GW_OK);
	assert_int_equal(chmod(path(to), mode), 0);
	free(data);
}

static void
test_server_ctx_errors(void **state)
{
	struct {
		const char *what;
		const char *cert, *key, *trust, *crl;
		enum gw_err want;
		const char *msg; /* substring of the message */
	} cases[] = {
	    {"valid", "gateway.crt", "gateway.key", "uzi-server-ca.pem", NULL,
	     GW_OK, ""},
	    {"valid with crl", "gateway.crt", "gateway.key",
	     "uzi-server-ca.pem", "crl.pem", GW_OK, ""},
	    {"missing cert", "nope.crt", "gateway.key", "uzi-server-ca.pem",
	     NULL, GW_NOTFOUND, "tls_cert"},
	    {"missing key", "gateway.crt", "nope.key", "uzi-server-ca.pem",
	     NULL, GW_NOTFOUND, "tls_key"},
	    {"missing trust", "gateway.crt", "gateway.key", "nope.pem", NULL,
	     GW_NOTFOUND, "tls_trust"},
	    {"missing crl", "gateway.crt", "gateway.key", "uzi-server-ca.pem",
	     "nope.pem", GW_NOTFOUND, "tls_crl"},
	    {"mismatched key", "gateway.crt", "hospital.key",
	     "uzi-server-ca.pem", NULL, GW_CRYPTO, "does not match"},
	    {"group-readable key", "gateway.crt", "loose.key",
	     "uzi-server-ca.pem", NULL, GW_CONFIG, "0640"},
	    {"key as cert", "gateway.key", "gateway.key", "uzi-server-ca.pem",
	     NULL, GW_PARSE, "tls_cert"},
	    {"crl as trust", "gateway.crt", "gateway.key", "crl.pem", NULL,
	     GW_PARSE, "no certificate"},
	    {"cert as crl", "gateway.crt", "gateway.key", "uzi-server-ca.pem",
	     "gateway.crt", GW_PARSE, "no CRL"},
	};
	char errbuf[512];

	copy_file("gateway.key", "loose.key", 0640);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct config cfg = make_cfg(CONFIG_ENV_TEST, false);
		SSL_CTX *ctx = (SSL_CTX *)1;
		enum gw_err err;

		cfg.tls_cert = (char *)path(cases[i].cert);
		cfg.tls_key = (char *)path(cases[i].key);
		cfg.tls_trust = (char *)path(cases[i].trust);
		cfg.tls_crl = cases[i].crl ? (char *)path(cases[i].crl) : NULL;
		err = tls_server_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf));
		if (err != cases[i].want ||
		    strstr(errbuf, cases[i].msg) == NULL)
			fail_msg("%s: got %s '%s', want %s '...%s...'",
				 cases[i].what, gw_strerror(err), errbuf,
				 gw_strerror(cases[i].want), cases[i].msg);
		if (err == GW_OK) {
			assert_non_null(ctx);
			assert_int_equal(SSL_CTX_get_min_proto_version(ctx),
					 TLS1_2_VERSION);
			assert_true(SSL_CTX_get_options(ctx) &
				    SSL_OP_NO_RENEGOTIATION);
			SSL_CTX_free(ctx);
		} else {
			assert_null(ctx);
			/* messages name the file that is wrong */
			if (strstr(errbuf, pki) == NULL)
				fail_msg("%s: message '%s' names no file",
					 cases[i].what, errbuf);
		}
		ctx = NULL;
		err = tls_client_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf));
		if (err != cases[i].want)
			fail_msg("%s (client): got %s '%s', want %s",
				 cases[i].what, gw_strerror(err), errbuf,
				 gw_strerror(cases[i].want));
		SSL_CTX_free(ctx);
	}
	unlink(path("loose.key"));
}

/* Production refuses its own test-policy certificate, on the server and
 * on the client (delivery) side; a test gateway keeps it. */
static void
test_own_test_cert_in_production(void **state)
{
	struct config cfg = make_cfg(CONFIG_ENV_PRODUCTION, false);
	SSL_CTX *ctx = (SSL_CTX *)1;
	char errbuf[512], want[512];
	bool test = false;

	cfg.tls_cert = (char *)path("gateway.crt");
	cfg.tls_key = (char *)path("gateway.key");
	util_strlcpy(cfg.ura, "90000001", sizeof(cfg.ura));
	snprintf(want, sizeof(want),
		 "tls_cert %s carries the UZI test policy "
		 "2.16.528.1.1007.99.212; environment production refuses it",
		 path("gateway.crt"));
	assert_int_equal(tls_server_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf)),
			 GW_CONFIG);
	assert_null(ctx);
	assert_string_equal(errbuf, want);
	ctx = (SSL_CTX *)1;
	assert_int_equal(tls_client_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf)),
			 GW_CONFIG);
	assert_null(ctx);
	assert_string_equal(errbuf, want);

	/* the same certificate in the test environment is fine */
	cfg.environment = CONFIG_ENV_TEST;
	assert_int_equal(tls_server_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf)),
			 GW_OK);
	SSL_CTX_free(ctx);

	/* and production with a production-policy certificate */
	cfg = make_cfg(CONFIG_ENV_PRODUCTION, false);
	assert_int_equal(tls_server_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf)),
			 GW_OK);
	SSL_CTX_free(ctx);
	assert_int_equal(tls_client_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf)),
			 GW_OK);
	SSL_CTX_free(ctx);

	/* the file form config check-config uses */
	assert_int_equal(tls_cert_file_is_test(path("gateway.crt"), &test),
			 GW_OK);
	assert_true(test);
	assert_int_equal(tls_cert_file_is_test(path("prod.crt"), &test), GW_OK);
	assert_false(test);
	assert_int_equal(tls_cert_file_is_test(path("gateway.key"), &test),
			 GW_PARSE);
	assert_false(test);
	assert_int_equal(tls_cert_file_is_test(path("nope.crt"), &test),
			 GW_NOTFOUND);
}

/* The enabled suites are exactly the NCSC "good" ones, in our order. */
static void
test_cipher_settings(void **state)
{
	static const char *const want[] = {
	    "TLS_AES_256_GCM_SHA384",	   "TLS_CHACHA20_POLY1305_SHA256",
	    "TLS_AES_128_GCM_SHA256",	   "ECDHE-ECDSA-AES256-GCM-SHA384",
	    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305",
	    "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256",
	    "ECDHE-RSA-AES128-GCM-SHA256",
	};
	struct config cfg = make_cfg(CONFIG_ENV_TEST, false);
	char errbuf[256];
	SSL_CTX *ctx = NULL;
	STACK_OF(SSL_CIPHER) * ciphers;

	assert_int_equal(tls_server_ctx_new(&cfg, &ctx, errbuf, sizeof(errbuf)),
			 GW_OK);
	ciphers = SSL_CTX_get_ciphers(ctx); /* borrowed */
	assert_non_null(ciphers);
	for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
		const char *name = SSL_CIPHER_get_name(c);
		int kx = SSL_CIPHER_get_kx_nid(c);

		if ((size_t)i >= UTIL_ARRAY_LEN(want) ||
		    strcmp(name, want[i]) != 0)
			fail_msg("cipher %d: got %s, want %s", i, name,
				 (size_t)i < UTIL_ARRAY_LEN(want) ? want[i]
								  : "none");
		if (kx != NID_kx_ecdhe && kx != NID_kx_any)
			fail_msg("cipher %s: key exchange not ECDHE", name);
		if (!SSL_CIPHER_is_aead(c))
			fail_msg("cipher %s: not AEAD", name);
	}
	assert_int_equal(sk_SSL_CIPHER_num(ciphers), UTIL_ARRAY_LEN(want));
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx),
			 SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT |
			     SSL_VERIFY_CLIENT_ONCE);
	SSL_CTX_free(ctx);
}

/* A test client: its certificate chain and key (none when name is NULL),
 * no server verification, optional protocol restrictions. */
static SSL_CTX *
test_client(const char *name, int max_version, const char *ciphers12)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char file[128];

	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (name != NULL) {
		snprintf(file, sizeof(file), "%s.crt", name);
		assert_int_equal(
		    SSL_CTX_use_certificate_chain_file(ctx, path(file)), 1);
		snprintf(file, sizeof(file), "%s.key", name);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path(file),
							     SSL_FILETYPE_PEM),
				 1);
	}
	if (max_version != 0) {
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_min_proto_version(ctx, 0);
		SSL_CTX_set_max_proto_version(ctx, max_version);
	}
	if (ciphers12 != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers12), 1);
	return ctx;
}

struct hs {
	SSL *c, *s;
	int c_done, s_done; /* 1 ok, -1 failed, 0 still going */
};

/* Step one side; on failure let tls count it, as the HTTP layer does. */
static void
hs_step(SSL *ssl, int *done, bool server)
{
	int r, e;

	if (*done != 0)
		return;
	ERR_clear_error();
	r = SSL_do_handshake(ssl);
	if (r == 1) {
		*done = 1;
		return;
	}
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	*done = -1;
	if (server)
		tls_note_handshake_failure(ssl, 0);
	ERR_clear_error();
}

/* A complete handshake between the two contexts over a BIO pair. */
static void
handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct hs *h)
{
	BIO *bc = NULL, *bs = NULL;

	memset(h, 0, sizeof(*h));
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	h->c = SSL_new(cctx);
	h->s = SSL_new(sctx);
	assert_non_null(h->c);
	assert_non_null(h->s);
	SSL_set_bio(h->c, bc, bc);
	SSL_set_bio(h->s, bs, bs);
	SSL_set_connect_state(h->c);
	SSL_set_accept_state(h->s);
	for (int i = 0; i < 50 && (h->c_done == 0 || h->s_done == 0); i++) {
		hs_step(h->c, &h->c_done, false);
		hs_step(h->s, &h->s_done, true);
	}
	/* a connection that never finished counts like one that died */
	if (h->s_done == 0) {
		tls_note_handshake_failure(h->s, 0);
		ERR_clear_error();
	}
}

static void
hs_free(struct hs *h)
{
	SSL_free(h->c);
	SSL_free(h->s);
}

/* The failure series rendered; exactly one line, for reason. */
static void
check_metric(const char *what, const char *reason)
{
	struct buf b;
	char *text, *p, want[128];
	int lines = 0;

	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b), GW_OK);
	text = buf_steal(&b, NULL);
	if (text == NULL)
		text = strdup("");
	for (p = text;
	     (p = strstr(p, "\npzpgw_tls_handshake_failures_total{")) != NULL;
	     p++)
		lines++;
	snprintf(want, sizeof(want),
		 "\npzpgw_tls_handshake_failures_total{reason=\"%s\"} 1\n",
		 reason);
	if (reason[0] == '\0' ? lines != 0
			      : (lines != 1 || strstr(text, want) == NULL))
		fail_msg("%s: metrics got:\n%s\nwant one line%s", what, text,
			 want);
	free(text);
}

static void
test_handshakes(void **state)
{
	static const struct {
		const char *client; /* NULL: no certificate */
		enum config_env env;
		bool crl;
		int max_version;
		const char *ciphers12;
		const char *reason; /* "" when the handshake must succeed */
		const char *ura;
	} cases[] = {
	    {"gateway", CONFIG_ENV_TEST, false, 0, NULL, "", "90000001"},
	    {"hospital", CONFIG_ENV_TEST, false, 0, NULL, "", "90000002"},
	    {"gp1", CONFIG_ENV_TEST, false, 0, NULL, "", "90000003"},
	    {"gp2", CONFIG_ENV_TEST, true, 0, NULL, "", "90000004"},
	    {"permid", CONFIG_ENV_TEST, true, 0, NULL, "", "90000007"},
	    {"hospital", CONFIG_ENV_TEST, true, TLS1_2_VERSION, NULL, "",
	     "90000002"},
	    {"prod", CONFIG_ENV_PRODUCTION, false, 0, NULL, "", "90000006"},
	    {"revoked", CONFIG_ENV_TEST, false, 0, NULL, "", "90000008"},
	    {NULL, CONFIG_ENV_TEST, false, 0, NULL, "no_certificate", ""},
	    {NULL, CONFIG_ENV_TEST, false, TLS1_2_VERSION, NULL,
	     "no_certificate", ""},
	    {"otherca", CONFIG_ENV_TEST, false, 0, NULL, "untrusted", ""},
	    {"expired", CONFIG_ENV_TEST, false, 0, NULL, "expired", ""},
	    {"revoked", CONFIG_ENV_TEST, true, 0, NULL, "revoked", ""},
	    {"revoked", CONFIG_ENV_TEST, true, TLS1_2_VERSION, NULL, "revoked",
	     ""},
	    {"noura", CONFIG_ENV_TEST, false, 0, NULL, "no_ura", ""},
	    {"badsan", CONFIG_ENV_TEST, false, 0, NULL, "bad_ura", ""},
	    {"wrongtype", CONFIG_ENV_TEST, false, 0, NULL, "bad_ura", ""},
	    {"prod", CONFIG_ENV_TEST, false, 0, NULL, "policy_mismatch", ""},
	    {"hospital", CONFIG_ENV_PRODUCTION, false, 0, NULL,
	     "policy_mismatch", ""},
	    {"hospital", CONFIG_ENV_TEST, false, TLS1_2_VERSION,
	     "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:AES128-SHA",
	     "protocol", ""},
	    {"hospital", CONFIG_ENV_TEST, false, TLS1_1_VERSION,
	     "DEFAULT:@SECLEVEL=0", "protocol", ""},
	};
	char errbuf[256];

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct config cfg = make_cfg(cases[i].env, cases[i].crl);
		SSL_CTX *sctx = NULL, *cctx;
		struct tls_peer peer;
		struct hs h;
		char what[128];
		const char *got;

		snprintf(what, sizeof(what), "case %zu: %s, %s%s, max 0x%x", i,
			 cases[i].client ? cases[i].client : "no cert",
			 config_env_name(cases[i].env),
			 cases[i].crl ? " with crl" : "",
			 (unsigned)cases[i].max_version);
		metrics_reset();
		assert_int_equal(
		    tls_server_ctx_new(&cfg, &sctx, errbuf, sizeof(errbuf)),
		    GW_OK);
		cctx = test_client(cases[i].client, cases[i].max_version,
				   cases[i].ciphers12);
		handshake(sctx, cctx, &h);
		got = tls_failure_reason(h.s);
		if (cases[i].reason[0] == '\0') {
			if (h.s_done != 1 || h.c_done != 1)
				fail_msg("%s: handshake failed (%s), want ok",
					 what, got ? got : "?");
			assert_int_equal(tls_peer_get(h.s, &peer), GW_OK);
			if (strcmp(peer.ura, cases[i].ura) != 0)
				fail_msg("%s: got peer ura %s, want %s", what,
					 peer.ura, cases[i].ura);
			assert_true(strstr(peer.subject, "O=") != NULL);
			/* The audit's certificate fields: the issuing CA
			   and the serial the client really presented. */
			assert_non_null(strstr(peer.issuer, "UZI-register"));
			{
				BIGNUM *want = ASN1_INTEGER_to_BN(
				    X509_get0_serialNumber(
					SSL_get_certificate(h.c)),
				    NULL);
				BIGNUM *have = NULL;

				assert_true(BN_hex2bn(&have, peer.serial) > 0);
				assert_int_equal(BN_cmp(want, have), 0);
				BN_free(want);
				BN_free(have);
			}
			assert_int_equal(peer.test_policy,
					 cases[i].env == CONFIG_ENV_TEST);
			assert_true(peer.not_after > (int64_t)time(NULL));
			/* asked again (the gate, then the handler): the
			 * remembered identity is the same */
			{
				struct tls_peer again;

				assert_int_equal(tls_peer_get(h.s, &again),
						 GW_OK);
				assert_memory_equal(&again, &peer,
						    sizeof(peer));
			}
			assert_null(got);
			if (cases[i].max_version == 0)
				assert_int_equal(SSL_version(h.s),
						 TLS1_3_VERSION);
		} else {
			if (h.s_done == 1)
				fail_msg("%s: handshake succeeded, want %s",
					 what, cases[i].reason);
			if (got == NULL || strcmp(got, cases[i].reason) != 0)
				fail_msg("%s: got reason %s, want %s", what,
					 got ? got : "(none)", cases[i].reason);
			assert_int_equal(tls_peer_get(h.s, &peer), GW_DENIED);
			assert_string_equal(peer.ura, "");
			/* the HTTP layer may report again: no double count */
			tls_note_handshake_failure(h.s, 0);
		}
		check_metric(what, cases[i].reason);
		hs_free(&h);
		SSL_CTX_free(cctx);
		SSL_CTX_free(sctx);
	}
	metrics_reset();
}

/* What a client may negotiate: versions, suites, groups, signatures. */
static void
test_negotiation(void **state)
{
	static const struct {
		int max_version;
		const char *suites13, *ciphers12, *groups, *sigalgs;
		const char *want; /* cipher chosen, NULL: must fail */
	} cases[] = {
	    {0, NULL, NULL, NULL, NULL, "TLS_AES_256_GCM_SHA384"},
	    {0, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256", NULL,
	     NULL, NULL, "TLS_CHACHA20_POLY1305_SHA256"},
	    {0, "TLS_AES_128_GCM_SHA256", NULL, NULL, NULL,
	     "TLS_AES_128_GCM_SHA256"},
	    {0, "TLS_AES_128_CCM_SHA256", NULL, NULL, NULL, NULL},
	    {0, NULL, NULL, "P-384", NULL, "TLS_AES_256_GCM_SHA384"},
	    {0, NULL, NULL, "P-256", NULL, "TLS_AES_256_GCM_SHA384"},
	    {0, NULL, NULL, "X448", NULL, "TLS_AES_256_GCM_SHA384"},
	    {0, NULL, NULL, "P-521", NULL, NULL},
	    {0, NULL, NULL, "ffdhe2048", NULL, NULL},
	    {TLS1_2_VERSION, NULL,
	     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
	     NULL, NULL, "ECDHE-ECDSA-AES256-GCM-SHA384"},
	    {TLS1_2_VERSION, NULL, "ECDHE-ECDSA-CHACHA20-POLY1305", NULL, NULL,
	     "ECDHE-ECDSA-CHACHA20-POLY1305"},
	    {TLS1_2_VERSION, NULL, "ECDHE-ECDSA-AES128-CCM", NULL, NULL, NULL},
	    {TLS1_2_VERSION, NULL, "ECDHE-ECDSA-AES256-SHA384", NULL, NULL,
	     NULL},
	    {TLS1_2_VERSION, NULL, "AES256-GCM-SHA384", NULL, NULL, NULL},
	    {TLS1_2_VERSION, NULL, "DHE-RSA-AES256-GCM-SHA384", NULL, NULL,
	     NULL},
	    {TLS1_2_VERSION, NULL, "DEFAULT:@SECLEVEL=0", NULL, "ECDSA+SHA1",
	     NULL},
	    {TLS1_VERSION, NULL, "DEFAULT:@SECLEVEL=0", NULL, NULL, NULL},
	};
	char errbuf[256];

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct config cfg = make_cfg(CONFIG_ENV_TEST, false);
		SSL_CTX *sctx = NULL, *cctx;
		struct hs h;
		const char *got;

		metrics_reset();
		assert_int_equal(
		    tls_server_ctx_new(&cfg, &sctx, errbuf, sizeof(errbuf)),
		    GW_OK);
		cctx = test_client("hospital", cases[i].max_version,
				   cases[i].ciphers12);
		if (cases[i].suites13 != NULL)
			assert_int_equal(
			    SSL_CTX_set_ciphersuites(cctx, cases[i].suites13),
			    1);
		if (cases[i].groups != NULL)
			assert_int_equal(
			    SSL_CTX_set1_groups_list(cctx, cases[i].groups), 1);
		if (cases[i].sigalgs != NULL)
			assert_int_equal(
			    SSL_CTX_set1_sigalgs_list(cctx, cases[i].sigalgs),
			    1);
		handshake(sctx, cctx, &h);
		if (cases[i].want == NULL) {
			if (h.s_done == 1)
				fail_msg("case %zu: got %s, want failure", i,
					 SSL_get_cipher_name(h.s));
			got = tls_failure_reason(h.s);
			if (got == NULL || strcmp(got, "protocol") != 0)
				fail_msg("case %zu: got reason %s, want "
					 "protocol",
					 i, got ? got : "(none)");
			check_metric("negotiation", "protocol");
		} else {
			if (h.s_done != 1 || h.c_done != 1)
				fail_msg("case %zu: handshake failed, want %s",
					 i, cases[i].want);
			got = SSL_get_cipher_name(h.s);
			if (strcmp(got, cases[i].want) != 0)
				fail_msg("case %zu: got cipher %s, want %s", i,
					 got, cases[i].want);
		}
		hs_free(&h);
		SSL_CTX_free(cctx);
		SSL_CTX_free(sctx);
	}
	metrics_reset();
}

/* Classification of failures reported by the HTTP layer (libevent hands
 * over the connection's OpenSSL error code). */
static void
test_note_failure(void **state)
{
	static const struct {
		unsigned long err;
		const char *reason;
	} cases[] = {
	    {ERR_PACK(ERR_LIB_SSL, 0, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE),
	     "no_certificate"},
	    {ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNSUPPORTED_PROTOCOL), "protocol"},
	    {ERR_PACK(ERR_LIB_SSL, 0, SSL_R_NO_SHARED_CIPHER), "protocol"},
	    {ERR_PACK(ERR_LIB_SSL, 0, SSL_R_HTTP_REQUEST), "protocol"},
	    {ERR_PACK(ERR_LIB_SSL, 0,
		      SSL_AD_REASON_OFFSET + SSL_AD_BAD_CERTIFICATE),
	     "peer_alert"},
	    {ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNEXPECTED_EOF_WHILE_READING),
	     "closed"},
	    {0, "closed"},
	    {ERR_PACK(ERR_LIB_EVP, 0, 1), "other"},
	};
	struct config cfg = make_cfg(CONFIG_ENV_TEST, false);
	SSL_CTX *sctx = NULL, *cctx = SSL_CTX_new(TLS_client_method());
	char errbuf[256];
	SSL *ssl;

	assert_int_equal(
	    tls_server_ctx_new(&cfg, &sctx, errbuf, sizeof(errbuf)), GW_OK);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		metrics_reset();
		ERR_clear_error();
		ssl = SSL_new(sctx);
		SSL_set_accept_state(ssl);
		assert_null(tls_failure_reason(ssl));
		tls_note_handshake_failure(ssl, cases[i].err);
		tls_note_handshake_failure(ssl, cases[i].err); /* once only */
		if (tls_failure_reason(ssl) == NULL ||
		    strcmp(tls_failure_reason(ssl), cases[i].reason) != 0)
			fail_msg("case %zu: got %s, want %s", i,
				 tls_failure_reason(ssl)
				     ? tls_failure_reason(ssl)
				     : "(none)",
				 cases[i].reason);
		check_metric("note", cases[i].reason);
		SSL_free(ssl);
	}
	/* the client side records a reason but counts nothing */
	metrics_reset();
	ssl = SSL_new(cctx);
	SSL_set_connect_state(ssl);
	tls_note_handshake_failure(
	    ssl, ERR_PACK(ERR_LIB_SSL, 0, SSL_R_UNSUPPORTED_PROTOCOL));
	assert_string_equal(tls_failure_reason(ssl), "protocol");
	check_metric("client", "");
	tls_note_handshake_failure(NULL, 0);
	assert_null(tls_failure_reason(NULL));
	SSL_free(ssl);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	metrics_reset();
}

/* Gateway to gateway: both sides with tls contexts. */
static void
test_client_ctx(void **state)
{
	struct config scfg = make_cfg(CONFIG_ENV_TEST, true);
	struct config ccfg = make_cfg(CONFIG_ENV_TEST, true);
	SSL_CTX *sctx = NULL, *cctx = NULL;
	struct tls_peer peer;
	char errbuf[256];
	struct hs h;

	metrics_reset();
	ccfg.tls_cert = (char *)path("hospital.crt");
	ccfg.tls_key = (char *)path("hospital.key");
	assert_int_equal(
	    tls_server_ctx_new(&scfg, &sctx, errbuf, sizeof(errbuf)), GW_OK);
	assert_int_equal(
	    tls_client_ctx_new(&ccfg, &cctx, errbuf, sizeof(errbuf)), GW_OK);
	handshake(sctx, cctx, &h);
	assert_int_equal(h.c_done, 1);
	assert_int_equal(h.s_done, 1);
	assert_int_equal(tls_peer_get(h.c, &peer), GW_OK);
	assert_string_equal(peer.ura, "90000001");
	assert_int_equal(tls_peer_get(h.s, &peer), GW_OK);
	assert_string_equal(peer.ura, "90000002");
	hs_free(&h);
	SSL_CTX_free(sctx);

	/* a server whose certificate has no URA: the client refuses it */
	scfg.tls_cert = (char *)path("noura.crt");
	scfg.tls_key = (char *)path("noura.key");
	assert_int_equal(
	    tls_server_ctx_new(&scfg, &sctx, errbuf, sizeof(errbuf)), GW_OK);
	handshake(sctx, cctx, &h);
	assert_int_equal(h.c_done, -1);
	assert_true(h.s_done != 1);
	assert_non_null(tls_failure_reason(h.c));
	assert_string_equal(tls_failure_reason(h.c), "no_ura");
	assert_int_equal(tls_peer_get(h.c, &peer), GW_DENIED);
	hs_free(&h);
	SSL_CTX_free(sctx);

	/* a server from another CA: untrusted */
	scfg.tls_cert = (char *)path("otherca.crt");
	scfg.tls_key = (char *)path("otherca.key");
	assert_int_equal(
	    tls_server_ctx_new(&scfg, &sctx, errbuf, sizeof(errbuf)), GW_OK);
	handshake(sctx, cctx, &h);
	assert_int_equal(h.c_done, -1);
	assert_string_equal(tls_failure_reason(h.c), "untrusted");
	hs_free(&h);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	metrics_reset();
}

/* Number of certificates in a PEM file. */
static int
count_certs(const char *file)
{
	FILE *f = fopen(path(file), "r");
	X509 *x;
	int n = 0;

	assert_non_null(f);
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		n++;
		X509_free(x);
	}
	ERR_clear_error();
	fclose(f);
	return n;
}

static void
check_mode(const char *p, unsigned want)
{
	struct stat st;

	assert_int_equal(stat(p, &st), 0);
	if ((st.st_mode & 0777) != want)
		fail_msg("%s: got mode %04o, want %04o", p,
			 (unsigned)(st.st_mode & 0777), want);
}

/* The shape of what dev-pki.sh makes. */
static void
test_dev_pki(void **state)
{
	static const char *const keys[] = {
	    "root.key",	   "uzi-server-ca.key", "gateway.key",	 "hospital.key",
	    "gp1.key",	   "gp2.key",		"expired.key",	 "prod.key",
	    "noura.key",   "badsan.key",	"wrongtype.key", "permid.key",
	    "revoked.key", "otherca.key",
	};
	static const char *const chains[] = {"gateway.crt", "hospital.crt",
					     "gp1.crt", "gp2.crt", "ca.pem"};
	const char *src = getenv("PZPGW_SRCDIR");
	char cmd[512], other[sizeof(pki) + 16];
	X509 *root = load_cert("root.crt"),
	     *ca = load_cert("uzi-server-ca.pem");
	X509 *leaf = load_cert("gateway-leaf.crt");
	X509_NAME *subj;
	char cn[64], serial[64];
	int idx;

	check_mode(pki, 0700);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(keys); i++)
		check_mode(path(keys[i]), 0600);
	check_mode(path("gateway.crt"), 0644);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(chains); i++)
		if (count_certs(chains[i]) != 2)
			fail_msg("%s: got %d certificates, want 2", chains[i],
				 count_certs(chains[i]));
	assert_int_equal(count_certs("gateway-leaf.crt"), 1);

	/* root: self-signed CA; intermediate: CA with pathlen 0 under it */
	assert_true(X509_check_ca(root) > 0);
	assert_int_equal(X509_check_issued(root, root), X509_V_OK);
	assert_true(X509_check_ca(ca) > 0);
	assert_int_equal(X509_get_pathlen(ca), 0);
	assert_int_equal(X509_check_issued(root, ca), X509_V_OK);
	assert_int_equal(X509_check_issued(ca, leaf), X509_V_OK);

	/* gateway leaf: not a CA, server+client, localhost, serialNumber */
	assert_int_equal(X509_check_ca(leaf), 0);
	assert_true((X509_get_extended_key_usage(leaf) &
		     (XKU_SSL_SERVER | XKU_SSL_CLIENT)) ==
		    (XKU_SSL_SERVER | XKU_SSL_CLIENT));
	assert_true(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
	subj = X509_get_subject_name(leaf);
	assert_true(X509_NAME_get_text_by_NID(subj, NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "localhost");
	idx = X509_NAME_get_text_by_NID(subj, NID_serialNumber, serial,
					sizeof(serial));
	assert_int_equal(idx, 8);
	X509_free(leaf);
	X509_free(ca);
	X509_free(root);

	/* without --extras: no extras; refuses to overwrite; --force works */
	snprintf(other, sizeof(other), "%s/again", pki);
	snprintf(cmd, sizeof(cmd), "sh '%s/certs/dev-pki.sh' '%s' >/dev/null",
		 src != NULL ? src : ".", other);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(access(path("again/hospital.crt"), R_OK), 0);
	assert_int_equal(access(path("again/crl.pem"), R_OK), 0);
	assert_int_not_equal(access(path("again/expired.crt"), F_OK), 0);
	snprintf(cmd, sizeof(cmd),
		 "sh '%s/certs/dev-pki.sh' '%s' >/dev/null 2>&1",
		 src != NULL ? src : ".", other);
	assert_int_not_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd),
		 "sh '%s/certs/dev-pki.sh' '%s' --force >/dev/null",
		 src != NULL ? src : ".", other);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "sh '%s/certs/dev-pki.sh' >/dev/null 2>&1",
		 src != NULL ? src : ".");
	assert_int_not_equal(system(cmd), 0); /* usage */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ura_from_pki),
	    cmocka_unit_test(test_ura_synthetic),
	    cmocka_unit_test(test_policy_and_expiry),
	    cmocka_unit_test(test_own_test_cert_in_production),
	    cmocka_unit_test(test_server_ctx_errors),
	    cmocka_unit_test(test_cipher_settings),
	    cmocka_unit_test(test_handshakes),
	    cmocka_unit_test(test_negotiation),
	    cmocka_unit_test(test_note_failure),
	    cmocka_unit_test(test_client_ctx),
	    cmocka_unit_test(test_dev_pki),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
