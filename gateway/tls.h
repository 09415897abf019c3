/*
 * OpenSSL contexts for the organisation listener and for outbound
 * delivery, and the organisation identity (URA) read from UZI-style
 * certificates. The only TLS stack in the gateway is OpenSSL.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "err.h"

/* OIDs of the Dutch UZI server certificates. */
#define TLS_OID_UZI_OTHERNAME "2.5.5.5"
#define TLS_OID_PERMANENT_ID  "1.3.6.1.5.5.7.8.3"
#define TLS_OID_POLICY_TEST   "2.16.528.1.1007.99.212"

/* Who is on the other end of a verified connection. */
struct tls_peer {
	char ura[CONFIG_URA_LEN + 1];
	char subject[256]; /* one-line subject DN, for logs */
	char serial[65];   /* serial number, hex (audit) */
	char issuer[257];  /* one-line issuer DN (audit) */
	bool test_policy;  /* carries the test-environment policy */
	int64_t not_after; /* unix seconds */
};

/*
 * The organisation listener's context: TLS 1.2/1.3 with the NCSC "good"
 * cipher settings, cfg's certificate and key, a client certificate
 * required and verified against cfg->tls_trust only (trust pinned at the
 * configured issuing CA, partial chains allowed), cfg->tls_crl when set.
 * A client certificate without a URA, or whose policy does not match
 * cfg->environment, fails the handshake. In production cfg's own
 * certificate must not carry the test policy (GW_CONFIG). Handshake
 * failures are counted in the metric
 * pzpgw_tls_handshake_failures_total{reason=...}.
 * On failure a message is written to errbuf. Caller frees with
 * SSL_CTX_free.
 */
enum gw_err tls_server_ctx_new(const struct config *cfg, SSL_CTX **out,
			       char *errbuf, size_t errlen);

/*
 * A client context for outbound connections to other gateways: the same
 * protocol and cipher settings, cfg's certificate and key as client
 * certificate, server verified against cfg->tls_trust with the same
 * identity checks, and the same refusal of a test-policy certificate of
 * its own in production. Caller frees with SSL_CTX_free.
 */
enum gw_err tls_client_ctx_new(const struct config *cfg, SSL_CTX **out,
			       char *errbuf, size_t errlen);

/*
 * Apply the client settings of tls_client_ctx_new to an existing ctx, e.g.
 * libcurl's from CURLOPT_SSL_CTX_FUNCTION: protocol and ciphers, own
 * certificate and key, a trust store of cfg->tls_trust only (replacing
 * ctx's), and the verify callback requiring a URA and the environment's
 * policy. Host name checks stay with the caller (curl, SSL_set1_host),
 * and so does comparing tls_peer_get's URA with the expected server URA.
 * Client-side refusals are recorded (tls_failure_reason), not counted.
 */
enum gw_err tls_client_ctx_setup(const struct config *cfg, SSL_CTX *ctx,
				 char *errbuf, size_t errlen);

/*
 * Count a failed handshake on a server-side ssl made from a
 * tls_server_ctx_new context: call it once when a connection dies before
 * the handshake completed. Failures the verify callback already counted
 * (untrusted, expired, revoked, no_ura, bad_ura, policy_mismatch, ...) are
 * not counted twice; otherwise the reason comes from
 * SSL_get_verify_result and from err, the first OpenSSL error of the
 * connection (e.g. from bufferevent_get_openssl_error), or when err is 0
 * the oldest error in this thread's queue: no_certificate, protocol,
 * peer_alert, closed (no error at all) or other.
 */
void tls_note_handshake_failure(SSL *ssl, unsigned long err);

/* The failure reason recorded on ssl ("expired", "no_ura", ... as in the
 * metric), or NULL when none. Static string. */
const char *tls_failure_reason(SSL *ssl);

/* Identity of the verified peer of ssl. GW_DENIED when there is none.
 * Read from the certificate once and kept with ssl (freed by SSL_free):
 * loop-thread use per ssl, like the connection itself. */
enum gw_err tls_peer_get(SSL *ssl, struct tls_peer *out);

/*
 * The URA carried by cert: subjectAltName otherName 2.5.5.5 (IA5String
 * "<oid>-<version>-<uzi>-S-<URA>-<role>-<agb>", pass type S for server
 * certificates) or otherName permanentIdentifier 1.3.6.1.5.5.7.8.3.
 * GW_NOTFOUND when none, GW_INVALID when malformed or of another pass
 * type; ura is left empty then.
 */
enum gw_err tls_cert_ura(X509 *cert, char ura[CONFIG_URA_LEN + 1]);

/* True when cert carries the test-environment certificate policy. */
bool tls_cert_is_test(X509 *cert);

/* Seconds until the first certificate in the PEM file expires (negative
 * when expired). */
enum gw_err tls_cert_file_expiry(const char *path, int64_t *seconds_left);

/* Whether the first certificate in the PEM file carries the test policy
 * (tls_cert_is_test). GW_PARSE when there is no certificate to read. */
enum gw_err tls_cert_file_is_test(const char *path, bool *is_test);

/*
 * check-config: verify the gateway's own [listen] certificate (as TLS
 * server and client) and [signing] certificate (with [signing] chain)
 * against the pinned [listen] trust and crl, as the peers that trust the
 * same CA will. Each failure goes to fn (file cfg->path, line 0).
 * Returns the number of failures. Reads files only; no network.
 */
int tls_check_own_chains(const struct config *cfg, config_err_fn fn, void *arg);

#endif
