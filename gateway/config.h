/*
 * Configuration: one INI file (libinih) parsed into one struct config,
 * driven by a table of keys. Errors cite file:line. SIGHUP builds a new
 * struct and swaps it only when the whole file is good.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CONFIG_DEFAULT_PATH "/etc/pzpgw/pzpgw.conf"
#define CONFIG_URA_LEN	    8

enum config_env { CONFIG_ENV_TEST, CONFIG_ENV_PRODUCTION };

/* What a peer organisation may do (bit set, "allow = push, pull"). */
#define CONFIG_ALLOW_PUSH     0x1u /* send care plans to this gateway */
#define CONFIG_ALLOW_PULL     0x2u /* search and read stored care plans */
#define CONFIG_ALLOW_VALIDATE 0x4u /* use $validate */

/* One [peer URA] section. */
struct config_peer {
	char ura[CONFIG_URA_LEN + 1];
	char *name;
	char *endpoint; /* https URL deliveries to this URA go to */
	/* URA the endpoint's server certificate must carry; defaults to ura */
	char server_ura[CONFIG_URA_LEN + 1];
	unsigned allow; /* CONFIG_ALLOW_* */
	/* URAs this peer (a gateway) may relay messages for, "," or blank
	 * separated, or "*" for any; NULL: it sends only in its own name */
	char *relay;
	unsigned concurrency; /* parallel deliveries to this peer */
	/* What a pulling peer sees (provider.c): FHIR resource types and
	 * profile URLs separated by commas or blanks, or NULL: everything
	 * sent to it. */
	char *resources;
	/* "full" (default) or "social": the social-domain preset, widened
	 * by resources when both are set. */
	char *view;
	/* https URL a FHIR Task is POSTed to when new data for one of its
	 * patients arrives here (notified pull); NULL: none. Only for a
	 * peer this gateway serves (allow pull, no endpoint). */
	char *notify;
	/* "r4" (default) or "stu3": the FHIR version this peer's deliveries
	 * are converted to and its Provider API answers are in when its
	 * Accept header names none (issue 12). */
	char *fhir;
	int line;	 /* line of the section header */
	int notify_line; /* line of notify, 0 when unset */
};

struct config {
	char *path; /* the file this came from */

	/* Within each section the fields are ordered to pack the struct. */

	/* [organisation] */
	char *name;
	char ura[CONFIG_URA_LEN + 1];

	/* [listen]: the organisation listener, mutual TLS */
	unsigned listen_port;
	char *listen_address;
	char *tls_cert;	 /* PEM: server certificate (+ chain) */
	char *tls_key;	 /* PEM: its private key, mode 0600 */
	char *tls_trust; /* PEM: trusted issuing CA(s), pinned */
	char *tls_crl;	 /* PEM CRL file, optional */
	enum config_env environment;

	/* [admin]: health and metrics over plain HTTP; port 0 disables */
	unsigned admin_port;
	char *admin_address;
	/* The console's token (a file, first line; NULL: loopback trust
	   only) and the time a console page may spend in the store. */
	char *admin_token_file;
	uint64_t admin_time_limit_ms;

	/* [store] */
	char *store_path; /* SQLite file */
	/* Bytes of free disk below which intake answers 503. */
	uint64_t store_min_free;
	/* Days after which delivered rows are pruned. */
	unsigned store_retention_days;
	/* Received (inbound) messages with their index versions are pruned
	 * this long after acceptance; 0: kept ("keep", the default). */
	uint64_t store_inbound_retention_ms;
	/* Create the store when missing (else only `pzpgw queue init`). */
	char *store_create;  /* auto, yes or no (store_options_from_config) */
	char *store_backend; /* "sqlite" or "postgresql" */
	/* backend = postgresql: libpq connection string (never with a
	 * password) and the file holding the password (NULL: none). */
	char *store_url;
	char *store_password_file;

	/* [limits] */
	unsigned max_connections;
	uint64_t max_body;   /* bytes */
	uint64_t max_header; /* bytes, all request headers together */
	uint64_t read_timeout_ms;
	uint64_t write_timeout_ms;
	unsigned max_pending; /* requests being processed before 503 */
	/* Connections not yet past the TLS handshake (org listener) or
	 * their first request (admin listener): a pool of their own, each
	 * closed after handshake_timeout. */
	unsigned max_handshakes;
	uint64_t handshake_timeout_ms;
	/* Estimated bytes all requests being handled may hold together. */
	uint64_t max_memory;
	/* Time a document may take to check ($validate, $process-message)
	 * from its arrival; beyond it the request is answered 503. */
	uint64_t max_request_ms;

	/* [delivery] */
	unsigned delivery_concurrency; /* default per peer */
	uint64_t backoff_min_ms;
	uint64_t backoff_max_ms;
	uint64_t max_age_ms;
	uint64_t delivery_timeout_ms;

	/* [signing]: defaults to the TLS certificate and key */
	char *sign_key; /* PEM path or pkcs11: URI */
	char *sign_cert;
	char *sign_chain;
	char *sign_alg; /* PS256, RS256, ES256 or NULL for default */

	/* [process] */
	char *user;    /* drop to this user when started as root */
	char *log;     /* "syslog" or "stderr" */
	char *schemas; /* directory of compiled rules */
	char *node;    /* [process] node; NULL: the host name */

	struct config_peer *peers;
	size_t npeers;
};

/* Receives every problem found while loading: file, line (0 when not
 * tied to a line) and message. */
typedef void (*config_err_fn)(void *arg, const char *file, int line,
			      const char *msg);

/*
 * Parse path into a new struct config with defaults filled in and
 * relative paths taken relative to the file's directory. Every error is
 * reported through err (may be NULL); loading goes on to find them all.
 * Returns GW_OK and *out (caller frees with config_free), GW_NOTFOUND /
 * GW_IO when the file cannot be read, GW_CONFIG on any error (*out NULL).
 */
enum gw_err config_load(const char *path, config_err_fn err, void *arg,
			struct config **out);

/*
 * Report through warn (file, line 0, message) what a good configuration
 * allows but should not do, such as an admin listener reachable from
 * other hosts, [store] min_free below twice [limits] max_body, an
 * endpoint path that does not end in /fhir, or peers expecting different
 * server URAs from one host and port. Returns the number of warnings.
 */
int config_warnings(const struct config *cfg, config_err_fn warn, void *arg);

/*
 * check-config's stricter checks of the [peer] routes, which the daemon
 * does not apply (configurations it has always run keep starting): a
 * peer with both allow = pull and an endpoint. Each through err (file,
 * the section's line, message). Returns the number found.
 */
int config_check_routes(const struct config *cfg, config_err_fn err, void *arg);

/* Release cfg; NULL is a no-op. */
void config_free(struct config *cfg);

/* The [peer] section for ura, or NULL. Borrowed from cfg. */
/* Whether a request with Accept header accept (NULL: none) from peer p
 * (NULL: unknown) is answered in FHIR STU3: the Accept's fhirVersion
 * parameter (3.x STU3, anything else R4), else p's fhir. */
bool config_fhir_stu3(const struct config_peer *p, const char *accept);

const struct config_peer *config_peer_find(const struct config *cfg,
					   const char *ura);

/* True when a [peer] relay value (a copy of config_peer.relay, may be
 * NULL) lets that peer relay messages whose sender is ura. */
bool config_relay_allows(const char *relay, const char *ura);

/* One configuration key as the manual page pzpgw.conf(5) describes it
 * (cli_man.c). The pointers are borrowed from static tables. */
struct config_key_doc {
	const char *section; /* "organisation", ...; "peer" for [peer URA] */
	const char *name;
	const char *doc; /* what the key is for; NULL when the table lacks it */
	bool required;
	char type[128];	 /* "size in bytes, with k, M or G", ... */
	char def[96];	 /* the default, in words when derived; "" none */
	char bounds[72]; /* "1k..1G"; "" when the type bounds it */
};

/* Describe key i of the key tables (the fixed sections in file order,
 * then those of [peer URA]) into *out. Returns false past the last. */
bool config_key_describe(size_t i, struct config_key_doc *out);

/* What a section ("limits", ...; "peer") is for; NULL when unknown. */
const char *config_section_doc(const char *section);

/* "test" or "production". */
const char *config_env_name(enum config_env env);

#endif
