/*
 * libFuzzer harness for PZP-JWS verification of what a peer sends: the
 * input is a protected header (JSON), a newline, and signature bytes; the
 * harness makes the detached JWS and the Bundle.signature around them.
 * No signature can be valid (nobody holds a key the trust anchor, made
 * here and thrown away, has certified), so a success is a bypass.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "canon.h"
#include "policy.h"
#include "sign.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WHEN "2026-01-01T00:00:00Z"

static struct sign_trust *trust;

static const char bundle_text[] =
    "{\"resourceType\":\"Bundle\",\"id\":\"fuzz\",\"type\":\"collection\","
    "\"entry\":[{\"fullUrl\":\"urn:uuid:0f7c2d1e-1b64-4d52-8a0e-"
    "5c9b3e2f7a03\",\"resource\":{\"resourceType\":\"Observation\","
    "\"status\":\"final\",\"valueQuantity\":{\"value\":1.50}}}]}";

/* A throw-away self-signed CA as the only trust anchor. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/pzpgw-fuzz-verify.XXXXXX", errbuf[256];
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *c = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	FILE *fp;
	int fd;

	if (k == NULL || c == NULL)
		abort();
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_gmtime_adj(X509_getm_notBefore(c), -86400L * 3650);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 3650);
	X509_set_pubkey(c, k);
	name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"fuzz CA", -1, -1, 0);
	X509_set_issuer_name(c, name);
	X509V3_set_ctx(&v3, c, c, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  "critical,CA:TRUE");
	if (ext == NULL || X509_add_ext(c, ext, -1) != 1 ||
	    X509_sign(c, k, EVP_sha256()) == 0)
		abort();
	X509_EXTENSION_free(ext);
	if ((fd = mkstemp(path)) < 0 || (fp = fdopen(fd, "w")) == NULL ||
	    PEM_write_X509(fp, c) != 1 || fclose(fp) != 0)
		abort();
	if (sign_trust_new(path, NULL, 0, &trust, errbuf, sizeof(errbuf)) !=
	    GW_OK)
		abort();
	unlink(path);
	X509_free(c);
	EVP_PKEY_free(k);
	return 0;
}

static struct fj_node *
str(struct fj_doc *doc, const char *s)
{
	return fj_new_string(doc, s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	struct sign_verify_opts opts = {trust, NULL, 300, 0};
	struct sign_result res;
	struct fj_doc *doc = NULL;
	struct fj_node *sig, *types, *coding, *who, *id;
	struct buf jws, b64;
	enum gw_err err;
	int status;

	if (nl == NULL || size > 65536)
		return 0;
	buf_init(&jws, 1 << 20);
	buf_init(&b64, 1 << 20);
	if (b64_encode(data, (size_t)(nl - data), true, &jws) != GW_OK ||
	    buf_adds(&jws, "..") != GW_OK ||
	    b64_encode(nl + 1, size - (size_t)(nl - data) - 1, true, &jws) !=
		GW_OK ||
	    b64_encode(jws.data, jws.len, false, &b64) != GW_OK ||
	    fj_parse(bundle_text, sizeof(bundle_text) - 1, 0, &doc, NULL) !=
		GW_OK)
		abort();
	sig = fj_new_object(doc);
	types = fj_new_array(doc);
	coding = fj_new_object(doc);
	who = fj_new_object(doc);
	id = fj_new_object(doc);
	fj_set(doc, coding, "system", str(doc, SIGN_TYPE_SYSTEM));
	fj_set(doc, coding, "code", str(doc, SIGN_OID_VERIFICATION));
	fj_append(types, coding);
	fj_set(doc, id, "system", str(doc, SIGN_URA_SYSTEM));
	fj_set(doc, id, "value", str(doc, "90000002"));
	fj_set(doc, who, "identifier", id);
	fj_set(doc, sig, "type", types);
	fj_set(doc, sig, "when", str(doc, WHEN));
	fj_set(doc, sig, "who", who);
	fj_set(doc, sig, "targetFormat", str(doc, CANON_TARGET_FORMAT));
	fj_set(doc, sig, "sigFormat", str(doc, SIGN_SIGFORMAT));
	fj_set(doc, sig, "data", str(doc, b64.data));
	if (fj_set(doc, doc->root, "signature", sig) != GW_OK)
		abort();

	err = sign_verify(doc->root, NULL, &opts, &res);
	status = policy_sign_status(res.check);
	if (err == GW_OK || res.check == SIGN_CHECK_OK ||
	    (status != 401 && status != 422) || res.reason[0] == '\0')
		abort();
	sign_result_cleanup(&res);
	fj_doc_free(doc);
	buf_cleanup(&jws);
	buf_cleanup(&b64);
	return 0;
}
