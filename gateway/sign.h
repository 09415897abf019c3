/*
 * PZP-JWS: detached JWS (RFC 7515 appendix F) over the FHIR static
 * canonical form of a Bundle, with the signer's certificate chain (x5c),
 * bound to the organisation's URA. The only module that touches keys.
 */
#ifndef GW_SIGN_H
#define GW_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "fjson.h"

#define SIGN_URA_SYSTEM	      "http://fhir.nl/fhir/NamingSystem/ura"
#define SIGN_TYPE_SYSTEM      "urn:iso-astm:E1762-95:2013"
#define SIGN_OID_VERIFICATION "1.2.840.10065.1.12.1.5"
#define SIGN_OID_AUTHOR	      "1.2.840.10065.1.12.1.1"
#define SIGN_SIGFORMAT	      "application/jose"
#define SIGN_HASH_LEN	      32 /* SHA-256 */
/* Provenance.policy of the Bundle entry in which a relaying gateway keeps
 * the sender's signature (sign_relay_keep). */
#define SIGN_RELAY_POLICY "http://pzpgw.nl/fhir/relayed-signature"

enum sign_alg { SIGN_ALG_PS256, SIGN_ALG_RS256, SIGN_ALG_ES256 };
enum sign_fhir { SIGN_FHIR_R4, SIGN_FHIR_STU3 };
enum sign_purpose { SIGN_PURPOSE_VERIFICATION, SIGN_PURPOSE_AUTHOR };

/* "PS256", "RS256", "ES256". */
const char *sign_alg_name(enum sign_alg alg);
/* "verification" or "author". */
const char *sign_purpose_name(enum sign_purpose p);

/* Parse an RFC 3339 / FHIR instant (seconds required, a fraction is
 * ignored, Z or an offset) into unix seconds; false when malformed. */
bool sign_time_parse(const char *s, int64_t *out);

/* A signing key with its certificate chain and URA (opaque). */
struct sign_key;

/*
 * Load a signing key. key is a PEM file path or an OpenSSL store URI such
 * as "pkcs11:..." (an HSM through a configured provider); a key file that
 * group or others may access is refused. cert holds the signer
 * certificate first, optionally followed by its chain; chain (may be
 * NULL) adds more chain certificates. Both are read through the store API
 * too. alg is "PS256", "RS256" or "ES256", or NULL for the key's default
 * (PS256 for RSA, ES256 for P-256). The certificate must match the key,
 * allow digitalSignature (when it has keyUsage) and carry a URA. On failure a reason is written to errbuf and
 * GW_NOTFOUND/GW_IO (files), GW_DENIED (permissions) or GW_CRYPTO/
 * GW_INVALID results. Caller frees *out with sign_key_free.
 */
enum gw_err sign_key_load(const char *key, const char *cert, const char *chain,
			  const char *alg, struct sign_key **out, char *errbuf,
			  size_t errlen);

/* Release the key (its material is wiped by OpenSSL); NULL is a no-op. */
void sign_key_free(struct sign_key *key);

/* The signer's URA (borrowed from key). */
const char *sign_key_ura(const struct sign_key *key);
/* The algorithm the key signs with. */
enum sign_alg sign_key_alg(const struct sign_key *key);

struct sign_opts {
	enum sign_fhir fhir;	   /* where the signature goes */
	enum sign_purpose purpose; /* commitment type */
	int64_t when;		   /* sigT, unix seconds; 0: now */
};

/* What a signing produced. */
struct sign_output {
	char *jws;			   /* detached compact JWS */
	unsigned char hash[SIGN_HASH_LEN]; /* SHA-256 of canonical bytes */
	int64_t sigt;
};

/*
 * Sign the Bundle doc->root in place: its canonical form is signed and
 * the signature element (R4: Bundle.signature with data; STU3: with
 * blob) is set, replacing any earlier one. The certificate must be valid
 * at the signing time. out (may be NULL) receives the JWS (caller frees
 * with sign_output_cleanup). GW_INVALID when doc is not a Bundle or
 * cannot be canonicalised, GW_CRYPTO on a signing failure, GW_NOMEM;
 * errbuf says why. doc is unchanged on failure.
 */
enum gw_err sign_bundle(const struct sign_key *key, struct fj_doc *doc,
			const struct sign_opts *opts, struct sign_output *out,
			char *errbuf, size_t errlen);

/* Free what out holds; out may be reused. */
void sign_output_cleanup(struct sign_output *out);

/*
 * A new R4 Provenance carrying the signature of the signed R4 Bundle
 * bundle: target = the Bundle (reference Bundle/id and/or its
 * identifier), agent = the signer's URA, signature = a copy of
 * Bundle.signature. The Provenance is a separate document, never part of
 * the Bundle. Caller frees *out with fj_doc_free. GW_INVALID when bundle
 * carries no R4 signature or has neither id nor identifier.
 */
enum gw_err sign_provenance_new(const struct fj_node *bundle,
				struct fj_doc **out, char *errbuf,
				size_t errlen);

/* Trust anchors and CRLs for verification (opaque, read-only once made,
 * may be shared between threads). */
struct sign_trust;

/*
 * Load trust anchors (PEM certificates; partial chains allowed, so an
 * issuing CA may be the anchor) and ncrl PEM CRL files. Caller frees with
 * sign_trust_free. GW_NOTFOUND/GW_IO/GW_INVALID with errbuf filled.
 */
enum gw_err sign_trust_new(const char *anchors, const char *const *crls,
			   size_t ncrl, struct sign_trust **out, char *errbuf,
			   size_t errlen);
void sign_trust_free(struct sign_trust *trust);

struct sign_verify_opts {
	const struct sign_trust *trust; /* required, borrowed */
	const char *expect_ura;		/* NULL: not checked */
	int64_t skew;			/* seconds sigT may lie ahead */
	int64_t now;			/* unix seconds; 0: the clock */
};

/* Which check failed: who signed (CERT, UNTRUSTED, EXPIRED, REVOKED, URA)
 * or what was signed (the rest). policy.h says how each is answered. */
enum sign_check {
	SIGN_CHECK_OK = 0,
	SIGN_CHECK_MISSING,   /* no signature, or more than one */
	SIGN_CHECK_MALFORMED, /* signature element or JWS structure */
	SIGN_CHECK_ALG,	      /* algorithm not allowed */
	SIGN_CHECK_CANON,     /* canonicalisation not the one we use */
	SIGN_CHECK_DOCUMENT,  /* document cannot be canonicalised */
	SIGN_CHECK_TARGET,    /* Provenance does not target this Bundle */
	SIGN_CHECK_SIGNATURE, /* content changed or wrong key */
	SIGN_CHECK_TIME,      /* sigT in the future or unreadable */
	SIGN_CHECK_CERT,      /* certificate unusable (key type, usage) */
	SIGN_CHECK_UNTRUSTED, /* chain does not lead to a trust anchor */
	SIGN_CHECK_EXPIRED,   /* not valid at sigT or not valid now */
	SIGN_CHECK_REVOKED,   /* revoked, or revocation status unknown */
	SIGN_CHECK_URA,	      /* URA differs from who or the peer */
	SIGN_CHECK_COUNT
};

/* What a verification found. */
struct sign_result {
	enum sign_check check;
	char reason[256];
	char ura[CONFIG_URA_LEN + 1];	   /* URA of the signer certificate */
	int64_t sigt;			   /* signing time, unix seconds */
	unsigned char hash[SIGN_HASH_LEN]; /* SHA-256 of canonical bytes */
	bool have_hash;
	enum sign_alg alg;
	enum sign_purpose purpose;
	char *jws; /* the JWS that was checked, NULL if none; freed by
		      sign_result_cleanup */
};

/*
 * Verify the PZP-JWS signature of Bundle bundle, taken from provenance
 * when it is not NULL (an R4 Provenance targeting the Bundle), else from
 * Bundle.signature (R4 or STU3, told apart by the element's fields).
 * Returns GW_OK when every check passed, GW_CRYPTO when one failed
 * (res->check and res->reason say which), GW_NOMEM on internal failure.
 * res is always filled; release it with sign_result_cleanup.
 */
enum gw_err sign_verify(const struct fj_node *bundle,
			const struct fj_node *provenance,
			const struct sign_verify_opts *opts,
			struct sign_result *res);

void sign_result_cleanup(struct sign_result *res);

/*
 * Keep the sender's signature of the Bundle doc->root before a relaying
 * gateway signs it with sign_bundle (which replaces Bundle.signature): a
 * copy of Bundle.signature goes into a new last entry, a Provenance
 * (policy SIGN_RELAY_POLICY, target the Bundle's identifier, agent and
 * signature the sender's; R4 or STU3 form per fhir). The sender signed the
 * canonical form of the Bundle without that entry, which sign_verify_kept
 * recomputes; the relay's own signature, made afterwards, covers the entry
 * too. GW_INVALID (errbuf says why) when the Bundle has no signature or no
 * identifier, or already keeps one; GW_NOMEM. doc is unchanged on failure.
 */
enum gw_err sign_relay_keep(struct fj_doc *doc, enum sign_fhir fhir,
			    char *errbuf, size_t errlen);

/*
 * Verify the sender's signature a relaying gateway kept in Bundle bundle
 * (sign_relay_keep): against the canonical form of the Bundle without the
 * relay entry, checked as sign_verify checks a Provenance. GW_NOTFOUND when
 * the Bundle keeps none (res->check SIGN_CHECK_MISSING), otherwise as
 * sign_verify; a relay entry that is not the last entry, or more than one,
 * fails as SIGN_CHECK_MALFORMED. bundle is changed during the call (the
 * entry unlinked) and restored before it returns: no other thread may read
 * it meanwhile. res as for sign_verify.
 */
enum gw_err sign_verify_kept(struct fj_node *bundle,
			     const struct sign_verify_opts *opts,
			     struct sign_result *res);

/* Short stable name of a check ("signature", "untrusted", ...). */
const char *sign_check_name(enum sign_check check);

#endif
