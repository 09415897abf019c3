/* `pzpgw check-config`: load a configuration the way the daemon does and
 * report every problem as file:line: message, then check that the
 * gateway's own certificates verify against its trust, then the warnings.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "cli.h"
#include "config.h"
#include "tls.h"
#include "util.h"
#include "version.h"

#define PROBE_TIMEOUT_MS 10000
#define PROBE_BODY_MAX	 4096 /* of a refusal, for its diagnostics */

/* One probe of a peer's endpoint (--probe). */
struct probe {
	const struct config *cfg;
	char
	    ura[CONFIG_URA_LEN + 1]; /* what the server's certificate carries */
	char tls_error[256];
	bool head_accepted; /* the receiver asked for the body */
	char body[PROBE_BODY_MAX];
	size_t body_len;
};

static void
print_config_error(void *arg, const char *file, int line, const char *msg)
{
	int *count = arg;

	(*count)++;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

/* A warning: printed, not counted as an error (the exit stays 0). */
static void
print_config_warning(void *arg, const char *file, int line, const char *msg)
{
	(void)arg;
	(void)line;
	fprintf(stderr, "%s: warning: %s\n", file, msg);
}

/* The chain as deliveries check it; the URA is kept, not compared, so
 * that a mismatch can be reported with both values. */
static int
probe_verify_cb(X509_STORE_CTX *xs, void *arg)
{
	struct probe *pr = arg;
	X509 *leaf;

	if (X509_verify_cert(xs) != 1) {
		snprintf(pr->tls_error, sizeof(pr->tls_error),
			 "server certificate: %s",
			 X509_verify_cert_error_string(
			     X509_STORE_CTX_get_error(xs)));
		return 0;
	}
	leaf = X509_STORE_CTX_get0_cert(xs);
	if (leaf == NULL || tls_cert_ura(leaf, pr->ura) != GW_OK)
		pr->ura[0] = '\0';
	return 1;
}

static CURLcode
probe_ssl_ctx_cb(CURL *easy, void *sslctx, void *arg)
{
	struct probe *pr = arg;
	char err[200];

	if (tls_client_ctx_setup(pr->cfg, sslctx, err, sizeof(err)) != GW_OK) {
		snprintf(pr->tls_error, sizeof(pr->tls_error),
			 "client TLS setup: %s", err);
		return CURLE_SSL_CERTPROBLEM;
	}
	SSL_CTX_set_session_cache_mode(sslctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_cert_verify_callback(sslctx, probe_verify_cb, pr);
	return CURLE_OK;
}

/* Asked for the body: the receiver took the head (route, permission,
 * media type). Nothing is sent: the transfer ends here. */
static size_t
probe_read_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct probe *pr = arg;

	pr->head_accepted = true;
	return CURL_READFUNC_ABORT;
}

static size_t
probe_write_cb(char *ptr, size_t size, size_t n, void *arg)
{
	struct probe *pr = arg;
	size_t len = size * n, room = sizeof(pr->body) - 1 - pr->body_len;

	memcpy(pr->body + pr->body_len, ptr, len < room ? len : room);
	pr->body_len += len < room ? len : room;
	pr->body[pr->body_len] = '\0';
	return len;
}

/*
 * --probe: for one peer with an endpoint, do what a delivery does up to
 * the body: mutual TLS with the gateway's certificate and trust, then
 * POST {endpoint}/$process-message with "Expect: 100-continue". A pzpgw
 * receiver decides route, permission and media type from the head and
 * answers 403/404/405/415 before asking for the body; when it asks, the
 * probe stops without sending anything. Errors (what every delivery
 * would meet) go to err, an unreachable peer to warn.
 */
static void
probe_peer(const struct config *cfg, const struct config_peer *p, int *errors)
{
	struct probe pr = {.cfg = cfg};
	struct curl_slist *h = NULL, *t;
	char url[2048], errbuf[CURL_ERROR_SIZE] = "";
	size_t len = strlen(p->endpoint);
	long status = 0;
	CURLcode rc = CURLE_OK;
	CURL *c;
	static const char *const hdrs[] = {
	    "Content-Type: application/fhir+json",
	    "Accept: application/fhir+json",
	    "Expect: 100-continue",
	    "X-Request-Id: pzpgw-check-config-probe",
	};

	while (len > 0 && p->endpoint[len - 1] == '/')
		len--;
	snprintf(url, sizeof(url), "%.*s/$process-message", (int)len,
		 p->endpoint);
	if ((c = curl_easy_init()) == NULL)
		return;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(hdrs); i++) {
		if ((t = curl_slist_append(h, hdrs[i])) == NULL) {
			rc = CURLE_OUT_OF_MEMORY;
			break;
		}
		h = t;
	}
#define SET(opt, val)                                                          \
	do {                                                                   \
		if (rc == CURLE_OK)                                            \
			rc = curl_easy_setopt(c, opt, val);                    \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_POST, 1L);
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)2);
	SET(CURLOPT_READFUNCTION, probe_read_cb);
	SET(CURLOPT_READDATA, &pr);
	SET(CURLOPT_EXPECT_100_TIMEOUT_MS, (long)PROBE_TIMEOUT_MS);
	SET(CURLOPT_HTTPHEADER, h);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_USERAGENT, "pzpgw-check-config/" PZPGW_VERSION);
	SET(CURLOPT_WRITEFUNCTION, probe_write_cb);
	SET(CURLOPT_WRITEDATA, &pr);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, (long)PROBE_TIMEOUT_MS);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CAINFO, cfg->tls_trust);
	SET(CURLOPT_CAPATH, (char *)NULL);
	SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
	SET(CURLOPT_SSL_CTX_FUNCTION, probe_ssl_ctx_cb);
	SET(CURLOPT_SSL_CTX_DATA, &pr);
#undef SET
	if (rc == CURLE_OK)
		rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);

	if (pr.ura[0] != '\0' && strcmp(pr.ura, p->server_ura) != 0) {
		/* The handshake was the deliverer's up to the URA check. */
		fprintf(
		    stderr,
		    "%s:%d: [peer %s] server_ura: the server at %s presents "
		    "URA %s, not %s: every delivery fails with \"server "
		    "URA %s, expected %s\" (if it is the gateway that serves "
		    "%s, set server_ura = %s)\n",
		    cfg->path, p->line, p->ura, p->endpoint, pr.ura,
		    p->server_ura, pr.ura, p->server_ura, p->ura, pr.ura);
		(*errors)++;
	} else if (pr.head_accepted) {
		printf("%s: [peer %s] %s: reachable, server URA %s, "
		       "$process-message takes this gateway's messages\n",
		       cfg->path, p->ura, p->endpoint, pr.ura);
	} else if (status == 0) {
		/* Down now is what retries are for; the route may be right. */
		fprintf(stderr, "%s: warning: [peer %s] %s: no answer: %s\n",
			cfg->path, p->ura, url,
			pr.tls_error[0]	 ? pr.tls_error
			: errbuf[0] != 0 ? errbuf
					 : curl_easy_strerror(rc));
	} else {
		const char *why =
		    status == 404 || status == 405
			? "the endpoint is not the FHIR base of a pzpgw "
			  "gateway (write https://host:port/fhir)"
		    : status == 403 || status == 401
			? "the receiving gateway does not take messages from "
			  "this gateway: its [peer] section for this gateway's "
			  "URA needs allow = push (and relay for the senders)"
			: "deliveries would get the same answer";

		json_t *oo = json_loadb(pr.body, pr.body_len, 0, NULL);
		const char *d = json_string_value(json_object_get(
		    json_array_get(json_object_get(oo, "issue"), 0),
		    "diagnostics"));
		char clean[256];
		const char *diag = NULL;

		/* Another server's text on the operator's terminal: no
		 * control characters, and not too long. */
		if (d != NULL) {
			size_t i;

			for (i = 0; i < sizeof(clean) - 1 && d[i] != '\0'; i++)
				clean[i] =
				    (unsigned char)d[i] < 0x20 || d[i] == 0x7f
					? '?'
					: d[i];
			clean[i] = '\0';
			diag = clean;
		}

		fprintf(
		    stderr,
		    "%s:%d: [peer %s] endpoint: POST %s answered %ld before "
		    "any body was sent: %s%s%s%s\n",
		    cfg->path, p->line, p->ura, url, status, why,
		    diag != NULL ? " (the receiver: \"" : "",
		    diag != NULL ? diag : "", diag != NULL ? "\")" : "");
		json_decref(oo);
		(*errors)++;
	}
}

/*
 * A port below 1024 needs CAP_NET_BIND_SERVICE, which the packaged
 * systemd unit does not hold (CapabilityBoundingSet= is empty): said
 * here, before a start fails at bind with EACCES.
 */
static void
warn_low_ports(const struct config *cfg)
{
	static const char dropin[] =
	    "/usr/share/doc/pzpgw/examples/low-port.conf";
	const struct {
		const char *section;
		unsigned port;
	} ports[] = {
	    {"listen", cfg->listen_port},
	    {"admin", cfg->admin_port},
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(ports); i++) {
		if (ports[i].port == 0 || ports[i].port >= 1024)
			continue;
		fprintf(stderr,
			"%s: warning: [%s] port %u is below 1024: binding it "
			"needs CAP_NET_BIND_SERVICE, which the packaged "
			"pzpgw.service does not hold; add the drop-in %s "
			"(README \"Operating\")\n",
			cfg->path, ports[i].section, ports[i].port, dropin);
	}
}

int
cli_check_config(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	struct config *cfg = NULL;
	int ch, errors = 0;
	bool probe = false;
	static const struct option opts[] = {
	    {"probe", no_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	enum gw_err err;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'p':
			probe = true;
			break;
		default:
			return cli_usage("check-config", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage("check-config", "unexpected argument '%s'",
				 argv[optind]);
	err = config_load(path, print_config_error, &errors, &cfg);
	if (err == GW_NOTFOUND || err == GW_IO) {
		if (errors == 0)
			fprintf(stderr, "%s: %s\n", path, gw_strerror(err));
		return CLI_USAGE;
	}
	if (err != GW_OK) {
		fprintf(stderr, "%s: %d error%s\n", path, errors,
			errors == 1 ? "" : "s");
		return CLI_FAIL;
	}
	/* Only here, not at the daemon's start: configurations that ran
	 * before keep starting (a gateway whose own chain does not verify
	 * may be meant to run while a CA is changed), but check-config
	 * names what makes deliveries or peers fail. */
	(void)config_check_routes(cfg, print_config_error, &errors);
	(void)tls_check_own_chains(cfg, print_config_error, &errors);
	config_warnings(cfg, print_config_warning, NULL);
	warn_low_ports(cfg);
	if (probe && errors == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		for (size_t i = 0; i < cfg->npeers; i++)
			if (cfg->peers[i].endpoint != NULL)
				probe_peer(cfg, &cfg->peers[i], &errors);
		curl_global_cleanup();
	}
	if (errors > 0) {
		fprintf(stderr, "%s: %d error%s\n", path, errors,
			errors == 1 ? "" : "s");
		config_free(cfg);
		return CLI_FAIL;
	}
	printf("%s: configuration ok (organisation %s, %zu peer%s)\n", path,
	       cfg->ura, cfg->npeers, cfg->npeers == 1 ? "" : "s");
	config_free(cfg);
	return CLI_OK;
}
