/*
 * Configuration loader: reads the INI file with libinih through a line
 * counting reader, fills struct config from one table of keys and reports
 * every problem as file:line: message.
 */
/* realpath() is declared by glibc only beyond plain POSIX. */
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ini.h>

#include <libpq-fe.h>

#include "config.h"
#include "tls.h"
#include "util.h"

#define CONFIG_MAX_LINE	 1024	    /* characters on one line */
#define CONFIG_MAX_SIZE	 (1u << 20) /* bytes in the whole file */
#define CONFIG_MAX_PEERS 10000	    /* [peer] sections */
#define CONFIG_MSG_MAX	 512	    /* one error message */
#define CONFIG_QUOTE_MAX 64	    /* characters of a value in a message */
#define CONFIG_MAX_DIRS	 16	    /* directories check_writers remembers */

/* How a value is parsed and where it is stored. */
enum key_type {
	T_STR,	    /* char *, non-empty */
	T_PATH,	    /* char *, resolved against the file's directory */
	T_PORT,	    /* unsigned, min..max */
	T_SIZE,	    /* uint64_t bytes, util_parse_size */
	T_DURATION, /* uint64_t milliseconds, util_parse_duration */
	T_UINT,	    /* unsigned, min..max */
	T_BOOL,	    /* bool, util_parse_bool */
	T_ENUM,	    /* char *, one of choices (stored canonical) */
	T_ENV,	    /* enum config_env */
	T_URA,	    /* char[CONFIG_URA_LEN + 1] */
	T_LIST,	    /* unsigned bit set: bit i = choices[i] */
};

#define F_REQUIRED 0x01u  /* missing is an error */
#define F_FILE	   0x02u  /* must name an existing readable file */
#define F_SECRET   0x04u  /* no access for group or others */
#define F_PKCS11   0x08u  /* "pkcs11:" URI kept verbatim, not a file */
#define F_HTTPS	   0x10u  /* an https:// URL */
#define F_HOST	   0x20u  /* an address or host name */
#define F_URAS	   0x40u  /* "*" or URAs separated by commas or blanks */
#define F_KEEP	   0x80u  /* T_DURATION: "keep" is 0, no limit */
#define F_NOTIFY   0x100u /* with F_HTTPS: a notification URL */
#define F_RESOURCES                                                            \
	0x200u /* FHIR resource types and profile URLs, separated by commas or \
		 blanks */

struct key {
	const char *section; /* "organisation", ...; "peer" for peers */
	const char *name;
	enum key_type type;
	unsigned flags;
	size_t offset;	 /* in struct config or struct config_peer */
	const char *def; /* default as written in a file, or NULL */
	uint64_t min, max;
	const char *const *choices; /* NULL-terminated, T_ENUM/T_LIST */
	const char *doc;	    /* what the key is for (the manual) */
	const char *def_doc;	    /* the default in words when def is NULL or
			      * derived; NULL: def, else none */
};

/* Inline comments start with ';' or '#' after a blank. */
static char comment_prefixes[] = ";#";

static const char *const algs[] = {"PS256", "RS256", "ES256", NULL};
static const char *const logs[] = {"syslog", "stderr", NULL};
static const char *const creates[] = {"auto", "yes", "no", NULL};
static const char *const backends[] = {"sqlite", "postgresql", NULL};
static const char *const allows[] = {"push", "pull", "validate", NULL};
static const char *const views[] = {"full", "social", NULL};
static const char *const fhirs[] = {"r4", "stu3", NULL};

#define KIB  1024ull
#define MIB  (1024ull * KIB)
#define GIB  (1024ull * MIB)
#define SEC  1000ull
#define MIN  (60ull * SEC)
#define HOUR (60ull * MIN)
#define DAY  (24ull * HOUR)

#define C(f) offsetof(struct config, f)
#define P(f) offsetof(struct config_peer, f)

/*
 * Every key of the fixed sections. doc and def_doc are what the manual
 * page pzpgw.conf(5) says (`pzpgw help --man 5`, checked by make
 * check-man): a row without them does not compile without warnings.
 */
static const struct key cfg_keys[] = {
    {"organisation", "ura", T_URA, F_REQUIRED, C(ura), NULL, 0, 0, NULL,
     "This organisation's URA number, as its UZI server certificate "
     "carries it. Every message, audit record and metric names it.",
     NULL},
    {"organisation", "name", T_STR, F_REQUIRED, C(name), NULL, 0, 0, NULL,
     "The organisation's name: the CapabilityStatement's description and "
     "the audit trail's observer.",
     NULL},

    {"listen", "address", T_STR, F_HOST, C(listen_address), "127.0.0.1", 0, 0,
     NULL, "Address the organisation listener (HTTPS, mutual TLS) binds to.",
     NULL},
    {"listen", "port", T_PORT, 0, C(listen_port), "8443", 1, 65535, NULL,
     "Port of the organisation listener. Below 1024 the daemon must start "
     "as root or hold CAP_NET_BIND_SERVICE.",
     NULL},
    {"listen", "certificate", T_PATH, F_REQUIRED | F_FILE, C(tls_cert), NULL, 0,
     0, NULL,
     "PEM file: the gateway's UZI server certificate, optionally followed "
     "by its chain. It serves as TLS server and as client when delivering.",
     NULL},
    {"listen", "key", T_PATH, F_REQUIRED | F_FILE | F_SECRET, C(tls_key), NULL,
     0, 0, NULL, "PEM file: the private key of the certificate.", NULL},
    {"listen", "trust", T_PATH, F_REQUIRED | F_FILE, C(tls_trust), NULL, 0, 0,
     NULL,
     "PEM file: the issuing CAs that peers' certificates must come from "
     "(pinned, for clients and for the servers deliveries go to).",
     NULL},
    {"listen", "crl", T_PATH, F_FILE, C(tls_crl), NULL, 0, 0, NULL,
     "PEM file: a certificate revocation list of the trusted CAs.", "none"},
    {"listen", "environment", T_ENV, F_REQUIRED, C(environment), NULL, 0, 0,
     NULL,
     "Which UZI certificates are expected: production refuses a "
     "certificate that carries the UZI test policy.",
     NULL},

    {"admin", "address", T_STR, F_HOST, C(admin_address), "127.0.0.1", 0, 0,
     NULL,
     "Address of the admin listener (plain HTTP without authentication: "
     "/healthz, /readyz, /metrics); other than loopback is a warning.",
     NULL},
    {"admin", "port", T_PORT, 0, C(admin_port), "9090", 0, 65535, NULL,
     "Port of the admin listener; 0 turns it off.", NULL},
    {"admin", "token_file", T_PATH, F_FILE | F_SECRET, C(admin_token_file),
     NULL, 0, 0, NULL,
     "A file (mode 600, not readable by others) whose first line is the "
     "operator console's token: every console page then asks for it (a "
     "login form, or Authorization: Bearer for scripts). Without it the "
     "console answers loopback clients only.",
     "none"},
    {"admin", "time_limit", T_DURATION, 0, C(admin_time_limit_ms), "5s", 1,
     10 * MIN, NULL,
     "Longest time a console page may spend reading the store; past it the "
     "page answers 503.",
     NULL},

    {"store", "path", T_PATH, 0, C(store_path), "/var/lib/pzpgw/pzpgw.db", 0, 0,
     NULL,
     "The SQLite store (WAL mode): accepted messages, the outbox, received "
     "data, the audit trail. A marker file PATH.created is kept beside it.",
     NULL},
    {"store", "min_free", T_SIZE, 0, C(store_min_free), "256M", 0, 1024 * GIB,
     NULL, "Free disk space below which intake answers 503 with Retry-After.",
     NULL},
    {"store", "retention", T_UINT, 0, C(store_retention_days), "30", 1, 3650,
     NULL, "Days after which delivered outbox rows are deleted.", NULL},
    {"store", "create", T_ENUM, 0, C(store_create), "auto", 0, 0, creates,
     "auto: make a store at start only where there is neither a store nor "
     "its marker; yes: whenever it is missing; no: never (pzpgw queue init "
     "makes one).",
     NULL},
    {"store", "backend", T_ENUM, 0, C(store_backend), "sqlite", 0, 0, backends,
     "sqlite: the store is the file path names; postgresql: the database "
     "url names (path then only places the lock file STORE.lock).",
     NULL},
    {"store", "url", T_STR, 0, C(store_url), NULL, 0, 0, NULL,
     "With backend = postgresql: the libpq connection string or "
     "postgresql:// URI, e.g. host=db.example.nl dbname=pzpgw user=pzpgw "
     "sslmode=verify-full sslrootcert=/etc/pzpgw/db-ca.pem. A password in "
     "it is refused: use password_file.",
     "none"},
    {"store", "password_file", T_PATH, F_FILE | F_SECRET,
     C(store_password_file), NULL, 0, 0, NULL,
     "With backend = postgresql: a file (mode 600) whose first line is the "
     "database password, read at start and never logged.",
     "none"},
    {"store", "inbound_retention", T_DURATION, F_KEEP,
     C(store_inbound_retention_ms), "keep", HOUR, 36500 * DAY, NULL,
     "How long received messages, with the data served from them, are kept "
     "after they arrived; keep: without limit.",
     NULL},

    {"limits", "max_body", T_SIZE, 0, C(max_body), "10M", KIB, GIB, NULL,
     "Largest request body; a larger one is refused 413 before it is read.",
     NULL},
    {"limits", "max_header", T_SIZE, 0, C(max_header), "16k", KIB, MIB, NULL,
     "Largest size of all request headers together.", NULL},
    {"limits", "max_connections", T_UINT, 0, C(max_connections), "256", 1,
     65535, NULL, "Connections past the TLS handshake at one time.", NULL},
    {"limits", "read_timeout", T_DURATION, 0, C(read_timeout_ms), "30s", 100,
     HOUR, NULL, "Time a client may take to send a request.", NULL},
    {"limits", "write_timeout", T_DURATION, 0, C(write_timeout_ms), "30s", 100,
     HOUR, NULL, "Time a client may take to read an answer.", NULL},
    {"limits", "max_pending", T_UINT, 0, C(max_pending), "64", 1, 100000, NULL,
     "Requests being processed at one time; more are answered 503.", NULL},
    {"limits", "max_handshakes", T_UINT, 0, C(max_handshakes), "64", 1, 65535,
     NULL,
     "Connections still in the TLS handshake (admin listener: before their "
     "first request), a pool of their own.",
     NULL},
    {"limits", "handshake_timeout", T_DURATION, 0, C(handshake_timeout_ms),
     "10s", 100, 5 * MIN, NULL,
     "Time a connection may take to finish its handshake.", NULL},
    {"limits", "max_memory", T_SIZE, 0, C(max_memory), "512M", 16 * MIB,
     256 * GIB, NULL,
     "Memory the requests being handled may hold together, estimated at 10 "
     "times each body; beyond it requests are answered 503.",
     NULL},
    {"limits", "max_request_time", T_DURATION, 0, C(max_request_ms), "10s", 100,
     5 * MIN, NULL,
     "Time to parse and check one document ($validate, $process-message) "
     "from its arrival; beyond it the request is answered 503.",
     NULL},

    {"signing", "key", T_PATH, F_FILE | F_SECRET | F_PKCS11, C(sign_key), NULL,
     0, 0, NULL,
     "The key that signs what this gateway forwards (PZP-JWS): a PEM file "
     "or a pkcs11: URI.",
     "the [listen] key"},
    {"signing", "certificate", T_PATH, F_FILE, C(sign_cert), NULL, 0, 0, NULL,
     "PEM file: the signer certificate, optionally with its chain.",
     "the [listen] certificate"},
    {"signing", "chain", T_PATH, F_FILE, C(sign_chain), NULL, 0, 0, NULL,
     "PEM file: more chain certificates for the signature's x5c.", "none"},
    {"signing", "algorithm", T_ENUM, 0, C(sign_alg), NULL, 0, 0, algs,
     "JWS algorithm: PS256 or RS256 for an RSA key, ES256 for a P-256 key.",
     "from the key type"},

    {"delivery", "backoff_min", T_DURATION, 0, C(backoff_min_ms), "1s", 10, DAY,
     NULL,
     "Wait before the first retry of a failed delivery; the wait doubles, "
     "with jitter, up to backoff_max.",
     NULL},
    {"delivery", "backoff_max", T_DURATION, 0, C(backoff_max_ms), "1h", 10,
     30 * DAY, NULL, "Longest wait between retries; not below backoff_min.",
     NULL},
    {"delivery", "max_age", T_DURATION, 0, C(max_age_ms), "7d", SEC, 365 * DAY,
     NULL,
     "Age at which an undelivered message goes to the dead letter state, "
     "where it stays until an operator acts (pzpgw queue replay).",
     NULL},
    {"delivery", "timeout", T_DURATION, 0, C(delivery_timeout_ms), "30s", 100,
     HOUR, NULL, "Time one delivery attempt may take.", NULL},
    {"delivery", "concurrency", T_UINT, 0, C(delivery_concurrency), "4", 1, 64,
     NULL,
     "Deliveries in parallel to one peer, unless its [peer] concurrency "
     "says otherwise.",
     NULL},

    {"process", "user", T_STR, 0, C(user), NULL, 0, 0, NULL,
     "User the daemon drops to when started as root.",
     "none (the user it was started as)"},
    {"process", "log", T_ENUM, 0, C(log), "syslog", 0, 0, logs,
     "Where log lines go; serve -d logs to stderr.", NULL},
    {"process", "schemas", T_PATH, 0, C(schemas), "/usr/share/pzpgw/schemas", 0,
     0, NULL, "Directory of the compiled validation rules.", NULL},
    {"process", "node", T_STR, F_HOST, C(node), NULL, 0, 0, NULL,
     "This node's name among the nodes sharing one PostgreSQL store: the "
     "owner of the deliveries it has in flight (so each node needs its "
     "own), node= in log lines and a node label on every metric. Read at "
     "start only.",
     "the host name (and no label with an SQLite store)"},
};

/* Keys of a [peer URA] section; server_ura and concurrency get their
 * defaults when the whole file is read. */
static const struct key peer_keys[] = {
    {"peer", "name", T_STR, 0, P(name), NULL, 0, 0, NULL,
     "The organisation's name, for people reading the file.", "none"},
    {"peer", "endpoint", T_STR, F_HTTPS, P(endpoint), NULL, 0, 0, NULL,
     "FHIR base (https://host[:port]/fhir) of the gateway serving this "
     "organisation: deliveries to it are posted to "
     "{endpoint}/$process-message. Without one, and with allow = pull, "
     "this gateway serves it.",
     "none"},
    {"peer", "server_ura", T_URA, 0, P(server_ura), NULL, 0, 0, NULL,
     "URA the endpoint's server certificate must carry: for an "
     "organisation behind another's gateway, that gateway's URA.",
     "the section's URA"},
    {"peer", "allow", T_LIST, 0, P(allow), "", 0, 0, allows,
     "What this organisation may do here: push (send care plans), pull "
     "(search and read them), validate ($validate).",
     "nothing"},
    {"peer", "relay", T_STR, F_URAS, P(relay), NULL, 0, 0, NULL,
     "For a gateway: the organisations it may relay messages for, or * for "
     "any.",
     "none (it sends in its own name only)"},
    {"peer", "concurrency", T_UINT, 0, P(concurrency), NULL, 1, 64, NULL,
     "Deliveries in parallel to this peer.", "[delivery] concurrency"},
    {"peer", "notify", T_STR, F_HTTPS | F_NOTIFY, P(notify), NULL, 0, 0, NULL,
     "For an organisation this gateway serves (allow = pull, no endpoint): "
     "the https URL that gets a FHIR Task when new data for one of its "
     "patients arrives.",
     "none"},
    {"peer", "resources", T_STR, F_RESOURCES, P(resources), NULL, 0, 0, NULL,
     "FHIR resource types and profile URLs a pulling peer sees.",
     "everything sent to it"},
    {"peer", "view", T_ENUM, 0, P(view), "full", 0, 0, views,
     "full, or social: the social-domain preset, widened by resources when "
     "both are set.",
     NULL},
    {"peer", "fhir", T_ENUM, 0, P(fhir), "r4", 0, 0, fhirs,
     "FHIR version deliveries to this organisation are converted to, and "
     "its pull answers are in when its Accept header names none.",
     NULL},
};

#define N_CFG_KEYS  UTIL_ARRAY_LEN(cfg_keys)
#define N_PEER_KEYS UTIL_ARRAY_LEN(peer_keys)

static const char *const sections[] = {
    "organisation", "listen",  "admin",	   "store",
    "limits",	    "signing", "delivery", "process",
};

/* What each section of sections[] is for, in its order (the manual). */
static const char *const section_docs[] = {
    "The organisation this gateway acts for.",
    "The organisation listener: HTTPS with mutual TLS, where peers push "
    "messages, pull care plans and validate.",
    "Health and metrics over plain HTTP, without authentication.",
    "The embedded SQLite store: messages, outbox, received data, audit "
    "trail.",
    "Limits on what clients may send and hold; every one bounds memory or "
    "time taken from the network.",
    "The PZP-JWS signature this gateway puts on what it forwards.",
    "Delivery to other gateways: retries with backoff, then the dead letter "
    "state.",
    "The daemon process.",
};
_Static_assert(UTIL_ARRAY_LEN(section_docs) == UTIL_ARRAY_LEN(sections),
	       "one section_docs line per section");

#define N_SECTIONS ((int)UTIL_ARRAY_LEN(sections))
#define SECT_NONE  (-1) /* before the first section header */
#define SECT_SKIP  (-2) /* inside a section already reported as wrong */
#define SECT_PEER  (-3) /* inside a [peer URA] section */

struct loader {
	const char *file; /* as given by the caller, for messages */
	FILE *fp;
	config_err_fn err;
	void *arg;
	char *dir; /* directory relative paths are taken against */
	struct config *cfg;
	size_t peers_cap;
	int line;     /* line the reader handed out last */
	size_t bytes; /* read so far */
	bool stop;    /* the reader gives no more lines */
	bool nomem;
	bool ioerr;
	int nerrors;
	int sect; /* index into sections[] or SECT_* */
	int sect_line[UTIL_ARRAY_LEN(sections)];
	int key_line[UTIL_ARRAY_LEN(cfg_keys)];
	int peer_key_line[UTIL_ARRAY_LEN(peer_keys)];
	struct {
		char *path;
		bool holding; /* checked as a directory holding a file */
	} dirs_seen[CONFIG_MAX_DIRS]; /* checked by check_writers */
	size_t ndirs_seen;
};

static void report(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
report(struct loader *ld, int line, const char *fmt, ...)
{
	char msg[CONFIG_MSG_MAX];
	va_list ap;

	ld->nerrors++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->err != NULL)
		ld->err(ld->arg, ld->file, line, msg);
}

/* A value from the file made printable and short enough for a message. */
static const char *
quote(const char *s, char *out, size_t n)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 4 < n && i < CONFIG_QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < ' ' || c == 0x7f || c == '"') ? '?' : (char)c;
	}
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* 1073741824 -> "1G", 16384 -> "16k", 100 -> "100". */
static const char *
fmt_size(uint64_t v, char *out, size_t n)
{
	static const struct {
		uint64_t mul;
		const char *unit;
	} units[] = {{GIB, "G"}, {MIB, "M"}, {KIB, "k"}};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(units); i++) {
		if (v >= units[i].mul && v % units[i].mul == 0) {
			snprintf(out, n, "%llu%s",
				 (unsigned long long)(v / units[i].mul),
				 units[i].unit);
			return out;
		}
	}
	snprintf(out, n, "%llu", (unsigned long long)v);
	return out;
}

/* 3600000 -> "1h", 100 -> "100ms". */
static const char *
fmt_duration(uint64_t ms, char *out, size_t n)
{
	static const struct {
		uint64_t mul;
		const char *unit;
	} units[] = {{DAY, "d"}, {HOUR, "h"}, {MIN, "m"}, {SEC, "s"}};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(units); i++) {
		if (ms >= units[i].mul && ms % units[i].mul == 0) {
			snprintf(out, n, "%llu%s",
				 (unsigned long long)(ms / units[i].mul),
				 units[i].unit);
			return out;
		}
	}
	snprintf(out, n, "%llums", (unsigned long long)ms);
	return out;
}

/* "push, pull, validate" from a choices array. */
static const char *
fmt_choices(const char *const *choices, char *out, size_t n)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; choices[i] != NULL && used < n; i++)
		used += (size_t)snprintf(out + used, n - used, "%s%s",
					 i > 0 ? ", " : "", choices[i]);
	return out;
}

/* "[limits]" or "[peer 12345678]" for messages. */
static const char *
sect_label(const struct loader *ld, const struct key *k, char *out, size_t n)
{
	if (strcmp(k->section, "peer") == 0 && ld->cfg->npeers > 0)
		snprintf(out, n, "[peer %s]",
			 ld->cfg->peers[ld->cfg->npeers - 1].ura);
	else
		snprintf(out, n, "[%s]", k->section);
	return out;
}

/* dir + "/" + value unless value is absolute; NULL when out of memory. */
static char *
resolve(const char *dir, const char *value)
{
	size_t n;
	char *p;

	if (value[0] == '/' || dir == NULL)
		return strdup(value);
	n = strlen(dir) + strlen(value) + 2;
	if ((p = malloc(n)) == NULL)
		return NULL;
	snprintf(p, n, "%s/%s", dir, value);
	return p;
}

/* A part of a value, made printable for a message like quote(). */
static const char *
quote_part(const char *s, size_t len, char *out, size_t n)
{
	char part[CONFIG_QUOTE_MAX + 1];

	util_strlcpy(part, s, len < sizeof(part) ? len + 1 : sizeof(part));
	return quote(part, out, n);
}

static bool
is_hex(char c)
{
	return isxdigit((unsigned char)c) != 0;
}

/* A DNS name (letters, digits, '-', dots between labels; a label neither
 * empty nor starting or ending with '-') or a dotted IPv4 address. */
static bool
is_host_name(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) ||
			   (s[i] == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

/*
 * An endpoint: "https://" host [":" port] [path], host a DNS name, an
 * IPv4 address or an IPv6 address in brackets, port 1..65535. No
 * user-info (the peer is identified by its certificate, and "a@b" hides
 * which host is meant), no query or fragment (deliveries go to the
 * endpoint plus "/$process-message"). On false, why says what is wrong,
 * worded to follow the quoted value.
 */
static bool
check_endpoint(const char *s, bool notify, char *why, size_t n)
{
	const char *auth = s + 8, *end, *host_end, *p;
	char q[CONFIG_QUOTE_MAX + 8];

	if (strncasecmp(s, "https://", 8) != 0) {
		snprintf(why, n, "is not an https:// URL");
		return false;
	}
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
			snprintf(why, n,
				 "has a blank, control or non-ASCII character");
			return false;
		}
	}
	if (strpbrk(s, "?#") != NULL) {
		snprintf(why, n, "%s",
			 notify ? "has a query or fragment ('?' or '#'): the "
				  "Task is posted to exactly this URL, and the "
				  "gateway is known by its certificate, not by "
				  "a token in the URL"
				: "has a query or fragment ('?' or '#'): "
				  "deliveries go to the endpoint plus "
				  "/$process-message");
		return false;
	}
	end = auth + strcspn(auth, "/");
	if (memchr(auth, '@', (size_t)(end - auth)) != NULL) {
		snprintf(why, n,
			 "has user-info (\"user@\" or \"user:password@\") "
			 "before the host: peers are identified by their "
			 "certificates, and no password belongs in this file");
		return false;
	}
	if (auth == end || *auth == ':') {
		snprintf(why, n, "is not an https:// URL (no host)");
		return false;
	}
	if (*auth == '[') {
		const char *close = memchr(auth, ']', (size_t)(end - auth));
		char addr[INET6_ADDRSTRLEN];
		unsigned char bin[16];
		size_t len;

		if (close == NULL) {
			snprintf(why, n, "has '[' without a closing ']'");
			return false;
		}
		len = (size_t)(close - auth - 1);
		if (len > 0 && len < sizeof(addr)) {
			memcpy(addr, auth + 1, len);
			addr[len] = '\0';
		}
		if (len == 0 || len >= sizeof(addr) ||
		    inet_pton(AF_INET6, addr, bin) != 1) {
			snprintf(why, n,
				 "has \"[%s]\", which is not an IPv6 address",
				 quote_part(auth + 1, len, q, sizeof(q)));
			return false;
		}
		host_end = close + 1;
		if (host_end != end && *host_end != ':') {
			snprintf(why, n,
				 "has text after ']' that is not \":port\"");
			return false;
		}
	} else {
		size_t hlen = strcspn(auth, ":/");
		const char *colon = memchr(auth, ':', (size_t)(end - auth));

		host_end = auth + hlen;
		if (memchr(auth, '[', (size_t)(end - auth)) != NULL ||
		    memchr(auth, ']', (size_t)(end - auth)) != NULL) {
			snprintf(why, n,
				 "has '[' or ']' that does not enclose the "
				 "whole host (an IPv6 address is written "
				 "https://[2001:db8::1]:8443/)");
			return false;
		}
		if (colon != NULL &&
		    memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL) {
			snprintf(why, n,
				 "has an IPv6 address without brackets (write "
				 "https://[2001:db8::1]:8443/)");
			return false;
		}
		if (!is_host_name(auth, hlen)) {
			snprintf(why, n,
				 "has host \"%s\", which is not a host name or "
				 "IP address",
				 quote_part(auth, hlen, q, sizeof(q)));
			return false;
		}
	}
	if (*host_end == ':') {
		const char *port = host_end + 1;
		size_t plen = (size_t)(end - port);
		unsigned long v = 0;

		if (plen == 0) {
			snprintf(why, n, "has ':' without a port number");
			return false;
		}
		for (p = port; p < end && plen <= 5; p++) {
			if (!isdigit((unsigned char)*p)) {
				v = 0; /* reported below like port 0 */
				break;
			}
			v = v * 10 + (unsigned long)(*p - '0');
		}
		if (plen > 5 || v == 0 || v > 65535) {
			snprintf(why, n,
				 "has port \"%s\", which is not a port number "
				 "(1..65535)",
				 quote_part(port, plen, q, sizeof(q)));
			return false;
		}
	}
	/* The path: RFC 3986 pchar and '/', percent escapes complete. */
	for (p = end; *p != '\0'; p++) {
		if (*p == '%' && !(is_hex(p[1]) && is_hex(p[2]))) {
			snprintf(why, n,
				 "has '%%' not followed by two hex digits");
			return false;
		}
		if (!isalnum((unsigned char)*p) &&
		    strchr("-._~!$&'()*+,;=:@/%", *p) == NULL) {
			snprintf(why, n,
				 "has '%c' in its path, which a URL does not "
				 "allow",
				 *p);
			return false;
		}
	}
	return true;
}

/* "*", or one or more URAs separated by commas or blanks. */
static bool
is_ura_list(const char *s)
{
	char ura[CONFIG_URA_LEN + 1];
	size_t n, count = 0;

	if (strcmp(s, "*") == 0)
		return true;
	while (*s != '\0') {
		if ((n = strcspn(s, ", \t")) == 0) {
			s++;
			continue;
		}
		if (n != CONFIG_URA_LEN)
			return false;
		memcpy(ura, s, n);
		ura[n] = '\0';
		if (!util_is_ura(ura))
			return false;
		count++;
		s += n;
	}
	return count > 0;
}

/*
 * A [peer] resources value: FHIR resource type names ("Patient": a
 * capital letter, then letters and digits) and profile URLs (http:// or
 * https://, no blanks or commas), separated by commas or blanks. On
 * false, bad points at the first item that is neither.
 */
static bool
is_resource_list(const char *s, const char **bad)
{
	size_t n, count = 0;

	while (*s != '\0') {
		bool ok = true;

		if ((n = strcspn(s, ", \t")) == 0) {
			s++;
			continue;
		}
		if (strncmp(s, "http://", 7) == 0 ||
		    strncmp(s, "https://", 8) == 0) {
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)s[i] <= ' ' ||
				    (unsigned char)s[i] >= 0x7f)
					ok = false;
			ok = ok && n > 8 && n <= 255;
		} else {
			ok = isupper((unsigned char)s[0]) && n <= 64;
			for (size_t i = 1; ok && i < n; i++)
				ok = isalnum((unsigned char)s[i]) != 0;
		}
		if (!ok) {
			*bad = s;
			return false;
		}
		count++;
		s += n;
	}
	*bad = s;
	return count > 0;
}

static bool
is_host(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) &&
		    strchr(".:-_[]%", *s) == NULL)
			return false;
	return true;
}

/* Replace the string at field with a copy of value (path-resolved when
 * resolve_dir is not NULL). */
static bool
set_string(struct loader *ld, char **field, const char *value,
	   const char *resolve_dir)
{
	char *copy = resolve(resolve_dir, value);

	if (copy == NULL) {
		ld->nomem = true;
		return false;
	}
	free(*field);
	*field = copy;
	return true;
}

/*
 * Parse value for key k into the struct at base. line 0 means a built-in
 * default (any error there is a bug in the table). Reports and returns
 * false on a bad value.
 */
static bool
set_value(struct loader *ld, const struct key *k, void *base, const char *value,
	  int line)
{
	char *field = (char *)base + k->offset;
	char where[48], q[CONFIG_QUOTE_MAX + 8], lo[32], hi[32], list[64];
	char why[CONFIG_MSG_MAX / 2];
	enum gw_err e = GW_OK;
	long long ll;
	uint64_t u64;

	sect_label(ld, k, where, sizeof(where));
	quote(value, q, sizeof(q));
	if (value[0] == '\0' && k->type != T_LIST) {
		report(ld, line, "%s %s: empty value", where, k->name);
		return false;
	}
	switch (k->type) {
	case T_STR:
		if ((k->flags & F_HTTPS) &&
		    !check_endpoint(value, (k->flags & F_NOTIFY) != 0, why,
				    sizeof(why))) {
			report(ld, line, "%s %s: \"%s\" %s", where, k->name, q,
			       why);
			return false;
		}
		if ((k->flags & F_URAS) && !is_ura_list(value)) {
			report(ld, line,
			       "%s %s: \"%s\" is not \"*\" or a list of URA "
			       "numbers (8 digits each)",
			       where, k->name, q);
			return false;
		}
		if (k->flags & F_RESOURCES) {
			const char *bad;

			if (!is_resource_list(value, &bad)) {
				char qb[CONFIG_QUOTE_MAX + 8];

				report(ld, line,
				       "%s %s: \"%s\" is not a FHIR resource "
				       "type (\"Patient\") or a profile URL "
				       "(https://...); separate them with "
				       "commas or blanks",
				       where, k->name,
				       quote_part(bad, strcspn(bad, ", \t"), qb,
						  sizeof(qb)));
				return false;
			}
		}
		if ((k->flags & F_HOST) && !is_host(value)) {
			report(ld, line,
			       "%s %s: \"%s\" is not an IP address or host "
			       "name",
			       where, k->name, q);
			return false;
		}
		return set_string(ld, (char **)(void *)field, value, NULL);
	case T_PATH:
		if ((k->flags & F_PKCS11) && strncmp(value, "pkcs11:", 7) == 0)
			return set_string(ld, (char **)(void *)field, value,
					  NULL);
		return set_string(ld, (char **)(void *)field, value, ld->dir);
	case T_PORT:
	case T_UINT:
		e = util_parse_ll(value, (long long)k->min, (long long)k->max,
				  &ll);
		if (e == GW_OK) {
			unsigned v = (unsigned)ll;

			memcpy(field, &v, sizeof(v));
			return true;
		}
		if (k->type == T_PORT)
			report(
			    ld, line,
			    "%s %s: \"%s\" is not a port number (%llu..%llu)",
			    where, k->name, q, (unsigned long long)k->min,
			    (unsigned long long)k->max);
		else if (e == GW_PARSE)
			report(ld, line, "%s %s: \"%s\" is not a whole number",
			       where, k->name, q);
		else
			report(ld, line,
			       "%s %s: \"%s\" is out of range (%llu..%llu)",
			       where, k->name, q, (unsigned long long)k->min,
			       (unsigned long long)k->max);
		return false;
	case T_SIZE:
		e = util_parse_size(value, k->min, k->max, &u64);
		if (e == GW_OK) {
			memcpy(field, &u64, sizeof(u64));
			return true;
		}
		if (e == GW_PARSE)
			report(ld, line,
			       "%s %s: \"%s\" is not a size (examples: 512k, "
			       "10M)",
			       where, k->name, q);
		else
			report(ld, line,
			       "%s %s: \"%s\" is out of range (%s..%s)", where,
			       k->name, q, fmt_size(k->min, lo, sizeof(lo)),
			       fmt_size(k->max, hi, sizeof(hi)));
		return false;
	case T_DURATION:
		if ((k->flags & F_KEEP) && strcmp(value, "keep") == 0) {
			u64 = 0;
			memcpy(field, &u64, sizeof(u64));
			return true;
		}
		e = util_parse_duration(value, k->min, k->max, &u64);
		if (e == GW_OK) {
			memcpy(field, &u64, sizeof(u64));
			return true;
		}
		if (e == GW_PARSE)
			report(ld, line,
			       "%s %s: \"%s\" is not a duration (examples: "
			       "250ms, 30s, 5m, 1h, 7d)%s",
			       where, k->name, q,
			       (k->flags & F_KEEP) ? " or keep" : "");
		else
			report(ld, line,
			       "%s %s: \"%s\" is out of range (%s..%s)", where,
			       k->name, q, fmt_duration(k->min, lo, sizeof(lo)),
			       fmt_duration(k->max, hi, sizeof(hi)));
		return false;
	case T_BOOL: {
		bool b;

		if (util_parse_bool(value, &b) != GW_OK) {
			report(ld, line,
			       "%s %s: \"%s\" is not yes/no, true/false, "
			       "on/off or 1/0",
			       where, k->name, q);
			return false;
		}
		memcpy(field, &b, sizeof(b));
		return true;
	}
	case T_ENUM:
		for (size_t i = 0; k->choices[i] != NULL; i++)
			if (strcasecmp(value, k->choices[i]) == 0)
				return set_string(ld, (char **)(void *)field,
						  k->choices[i], NULL);
		report(ld, line, "%s %s: \"%s\" is not one of %s", where,
		       k->name, q, fmt_choices(k->choices, list, sizeof(list)));
		return false;
	case T_ENV: {
		enum config_env env;

		if (strcasecmp(value, "test") == 0) {
			env = CONFIG_ENV_TEST;
		} else if (strcasecmp(value, "production") == 0) {
			env = CONFIG_ENV_PRODUCTION;
		} else {
			report(ld, line,
			       "%s %s: \"%s\" is not one of test, production",
			       where, k->name, q);
			return false;
		}
		memcpy(field, &env, sizeof(env));
		return true;
	}
	case T_URA:
		if (!util_is_ura(value)) {
			report(ld, line,
			       "%s %s: \"%s\" is not a URA number (exactly 8 "
			       "digits)",
			       where, k->name, q);
			return false;
		}
		util_strlcpy(field, value, CONFIG_URA_LEN + 1);
		return true;
	case T_LIST: {
		unsigned bits = 0;
		const char *p = value;

		while (*p != '\0') {
			size_t n = strcspn(p, ", \t");
			size_t i;

			if (n == 0) {
				p++;
				continue;
			}
			for (i = 0; k->choices[i] != NULL; i++)
				if (strlen(k->choices[i]) == n &&
				    strncasecmp(p, k->choices[i], n) == 0)
					break;
			if (k->choices[i] == NULL) {
				char word[CONFIG_QUOTE_MAX + 1];

				util_strlcpy(word, p,
					     n < sizeof(word) ? n + 1
							      : sizeof(word));
				report(ld, line,
				       "%s %s: \"%s\" is not one of %s", where,
				       k->name, quote(word, q, sizeof(q)),
				       fmt_choices(k->choices, list,
						   sizeof(list)));
				return false;
			}
			bits |= 1u << i;
			p += n;
		}
		memcpy(field, &bits, sizeof(bits));
		return true;
	}
	}
	return false;
}

static const struct key *
find_key(const struct key *keys, size_t n, const char *section,
	 const char *name, size_t *index)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0) {
			*index = i;
			return &keys[i];
		}
	}
	return NULL;
}

static struct config_peer *
find_peer(struct config *cfg, const char *ura)
{
	for (size_t i = 0; i < cfg->npeers; i++)
		if (strcmp(cfg->peers[i].ura, ura) == 0)
			return &cfg->peers[i];
	return NULL;
}

/* A [peer URA] header: ura is the trimmed text after "peer". */
static void
begin_peer(struct loader *ld, const char *ura, int line)
{
	struct config *cfg = ld->cfg;
	struct config_peer *p;
	char q[CONFIG_QUOTE_MAX + 8];

	ld->sect = SECT_SKIP;
	if (!util_is_ura(ura)) {
		report(ld, line,
		       "[peer %s]: \"%s\" is not a URA number (exactly 8 "
		       "digits)",
		       quote(ura, q, sizeof(q)), q);
		return;
	}
	if ((p = find_peer(cfg, ura)) != NULL) {
		report(ld, line,
		       "duplicate section [peer %s] (first at line %d)", ura,
		       p->line);
		return;
	}
	if (cfg->npeers >= CONFIG_MAX_PEERS) {
		report(ld, line, "[peer %s]: too many [peer] sections (max %d)",
		       ura, CONFIG_MAX_PEERS);
		return;
	}
	if (cfg->npeers == ld->peers_cap) {
		size_t cap = ld->peers_cap == 0 ? 8 : ld->peers_cap * 2;

		p = realloc(cfg->peers, cap * sizeof(*p));
		if (p == NULL) {
			ld->nomem = true;
			return;
		}
		cfg->peers = p;
		ld->peers_cap = cap;
	}
	p = &cfg->peers[cfg->npeers++];
	memset(p, 0, sizeof(*p));
	util_strlcpy(p->ura, ura, sizeof(p->ura));
	p->line = line;
	memset(ld->peer_key_line, 0, sizeof(ld->peer_key_line));
	for (size_t i = 0; i < N_PEER_KEYS; i++)
		if (peer_keys[i].def != NULL &&
		    !set_value(ld, &peer_keys[i], p, peer_keys[i].def, 0))
			return;
	ld->sect = SECT_PEER;
}

/* A section header: name is the text between the brackets, trimmed. */
static void
begin_section(struct loader *ld, const char *name, int line)
{
	char q[CONFIG_QUOTE_MAX + 8];

	if (strncmp(name, "peer", 4) == 0 &&
	    (name[4] == '\0' || isspace((unsigned char)name[4]))) {
		const char *ura = name + 4;

		while (isspace((unsigned char)*ura))
			ura++;
		begin_peer(ld, ura, line);
		return;
	}
	ld->sect = SECT_SKIP;
	for (int i = 0; i < N_SECTIONS; i++) {
		if (strcmp(name, sections[i]) != 0)
			continue;
		if (ld->sect_line[i] != 0) {
			report(ld, line,
			       "duplicate section [%s] (first at line %d)",
			       name, ld->sect_line[i]);
			return;
		}
		ld->sect_line[i] = line;
		ld->sect = i;
		return;
	}
	report(ld, line,
	       "unknown section [%s] (known: organisation, listen, admin, "
	       "store, limits, signing, delivery, process, peer URA)",
	       quote(name, q, sizeof(q)));
}

/* Trim trailing white space in place. */
static void
rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/*
 * Look at one line (leading blanks already removed) before inih does:
 * section headers are handled here, syntax errors reported here. Returns
 * true when inih should see the line, false to hand it an empty one.
 */
static bool
classify(struct loader *ld, char *s)
{
	bool was_space = false;
	char *p;

	if (*s == '\0' || *s == '#' || *s == ';')
		return true;
	if (*s == '[') {
		char *end = strchr(s, ']');
		char *rest;

		if (end == NULL) {
			report(ld, ld->line, "section header without ']'");
			ld->sect = SECT_SKIP;
			return false;
		}
		*end = '\0';
		rest = end + 1;
		s++;
		while (isspace((unsigned char)*s))
			s++;
		rtrim(s);
		begin_section(ld, s, ld->line);
		while (isspace((unsigned char)*rest))
			rest++;
		if (*rest != '\0' && *rest != '#' && *rest != ';') {
			char q[CONFIG_QUOTE_MAX + 8];

			report(ld, ld->line,
			       "unexpected text after section header [%s]",
			       quote(s, q, sizeof(q)));
		}
		return false;
	}
	/* Same scan as inih: the first '=' or ':' before an inline comment
	 * (';' or '#' after a blank) separates key and value. */
	for (p = s; *p != '\0'; p++) {
		if (*p == '=' || *p == ':')
			return true;
		if (was_space && (*p == ';' || *p == '#'))
			break;
		was_space = isspace((unsigned char)*p);
	}
	report(ld, ld->line, "expected 'key = value' or '[section]'");
	return false;
}

/*
 * The ini_reader: hands inih one physical line per call so that its line
 * count and ours agree, counting lines for the handler. Lines too long
 * for inih's buffer and NUL bytes are reported and replaced by an empty
 * line. getc rather than fgets so that NUL bytes are seen.
 */
static char *
read_line(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	size_t n = 0, limit;
	bool any = false, toolong = false, nul = false;
	int c;

	if (ld->stop || num < 4)
		return NULL;
	limit = (size_t)num - 3;
	while ((c = getc(ld->fp)) != EOF) {
		any = true;
		if (++ld->bytes > CONFIG_MAX_SIZE) {
			report(ld, 0, "file is larger than %u bytes",
			       CONFIG_MAX_SIZE);
			ld->stop = true;
			return NULL;
		}
		if (c == '\n')
			break;
		if (c == '\0')
			nul = true;
		if (n >= limit) {
			toolong = true;
			continue;
		}
		str[n++] = (char)c;
	}
	if (!any) {
		if (ferror(ld->fp)) {
			report(ld, 0, "read error: %s", strerror(errno));
			ld->ioerr = true;
		}
		ld->stop = true;
		return NULL;
	}
	ld->line++;
	str[n] = '\0';
	if (toolong) {
		report(ld, ld->line, "line longer than %zu characters", limit);
		str[0] = '\0';
		return str;
	}
	if (nul) {
		report(ld, ld->line, "NUL byte in line");
		str[0] = '\0';
		return str;
	}
	if (ld->line == 1 && strncmp(str, "\xEF\xBB\xBF", 3) == 0)
		memmove(str, str + 3, n - 2);
	/* No leading blanks: inih would take an indented line for the
	 * continuation of the previous value. */
	n = strspn(str, " \t\r\f\v");
	if (n > 0)
		memmove(str, str + n, strlen(str + n) + 1);
	if (!classify(ld, str))
		str[0] = '\0';
	return str;
}

/* The ini_handler: one key = value line of the current section. */
static int
handle_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	const struct key *k;
	char q[CONFIG_QUOTE_MAX + 8], where[48];
	int *seen;
	size_t i;

	(void)section; /* ours, tracked by the reader, is the full name */
	if (ld->sect == SECT_SKIP)
		return 1;
	if (ld->sect == SECT_NONE) {
		report(ld, ld->line, "key \"%s\" outside any section",
		       quote(name, q, sizeof(q)));
		return 1;
	}
	if (name[0] == '\0') {
		report(ld, ld->line, "missing key name before '='");
		return 1;
	}
	if (ld->sect == SECT_PEER) {
		struct config_peer *p = &ld->cfg->peers[ld->cfg->npeers - 1];

		k = find_key(peer_keys, N_PEER_KEYS, "peer", name, &i);
		if (k == NULL) {
			report(ld, ld->line, "[peer %s] %s: unknown key",
			       p->ura, quote(name, q, sizeof(q)));
			return 1;
		}
		seen = &ld->peer_key_line[i];
		if (*seen != 0) {
			report(ld, ld->line,
			       "[peer %s] %s: duplicate key (first at line %d)",
			       p->ura, k->name, *seen);
			return 1;
		}
		*seen = ld->line;
		if (set_value(ld, k, p, value, ld->line) &&
		    (k->flags & F_NOTIFY))
			p->notify_line = ld->line;
		return 1;
	}
	k = find_key(cfg_keys, N_CFG_KEYS, sections[ld->sect], name, &i);
	if (k == NULL) {
		report(ld, ld->line, "[%s] %s: unknown key", sections[ld->sect],
		       quote(name, q, sizeof(q)));
		return 1;
	}
	seen = &ld->key_line[i];
	if (*seen != 0) {
		report(ld, ld->line, "%s %s: duplicate key (first at line %d)",
		       sect_label(ld, k, where, sizeof(where)), k->name, *seen);
		return 1;
	}
	*seen = ld->line;
	set_value(ld, k, ld->cfg, value, ld->line);
	return 1;
}

static int
section_index(const char *name)
{
	for (int i = 0; i < N_SECTIONS; i++)
		if (strcmp(sections[i], name) == 0)
			return i;
	return -1;
}

/* True the first time dir is seen (as a directory holding a file when
 * holding): each is checked and reported once however many files it
 * holds. */
static bool
dir_first_seen(struct loader *ld, const char *dir, bool holding)
{
	size_t i;

	for (i = 0; i < ld->ndirs_seen; i++) {
		if (strcmp(ld->dirs_seen[i].path, dir) != 0)
			continue;
		if (ld->dirs_seen[i].holding || !holding)
			return false;
		ld->dirs_seen[i].holding = true; /* stricter check now */
		return true;
	}
	if (i < CONFIG_MAX_DIRS &&
	    (ld->dirs_seen[i].path = strdup(dir)) != NULL) {
		ld->dirs_seen[i].holding = holding;
		ld->ndirs_seen++;
	}
	return true;
}

/*
 * Who can change what the gateway trusts. Anyone who can write the
 * configuration, a key, the trust anchors or the directory holding them
 * can make the gateway trust another CA or use another key, so, as with
 * sshd's StrictModes, the file (when st is not NULL) and the directory
 * holding it must be writable by their owner only: group write counts as
 * much as world write, since the gateway cannot tell who is in a group.
 * Directories further up must not be world-writable unless sticky (/tmp:
 * others cannot rename what is not theirs there); group write is left to
 * them, as checkouts made with umask 002 (user private groups) have it.
 * path is the file's resolved (symlink-free) path; what names it for
 * messages, e.g. "[listen] key: ".
 */
static void
check_writers(struct loader *ld, int line, const char *what, const char *path,
	      const struct stat *st)
{
	char dir[PATH_MAX];
	struct stat dst;
	bool holding = true;
	char *slash;

	if (st != NULL && (st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
		report(ld, line,
		       "%s%s is writable by group or others (mode %04o; chmod "
		       "go-w %s)",
		       what, path, (unsigned)(st->st_mode & 07777), path);
	if (util_strlcpy(dir, path, sizeof(dir)) >= sizeof(dir))
		return;
	while ((slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0'; /* the root directory */
		else
			*slash = '\0';
		if (!dir_first_seen(ld, dir, holding))
			return; /* it and everything above it: done before */
		if (stat(dir, &dst) == 0 &&
		    (holding ? (dst.st_mode & (S_IWGRP | S_IWOTH)) != 0
			     : (dst.st_mode & (S_IWOTH | S_ISVTX)) == S_IWOTH))
			report(ld, line,
			       "%sdirectory %s %s is writable by group or "
			       "others (mode %04o; chmod go-w %s)",
			       what, dir, holding ? "holding it" : "above it",
			       (unsigned)(dst.st_mode & 07777), dir);
		holding = false;
		if (slash == dir)
			break;
	}
}

/* The file at path exists, is a readable regular file and, for secrets,
 * is closed to group and others. */
static void
check_file(struct loader *ld, const struct key *k, const char *path, int line)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC)) == -1) {
		report(ld, line, "[%s] %s: %s: %s", k->section, k->name, path,
		       strerror(errno));
		return;
	}
	if (fstat(fd, &st) == -1) {
		report(ld, line, "[%s] %s: %s: %s", k->section, k->name, path,
		       strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		report(ld, line, "[%s] %s: %s is not a regular file",
		       k->section, k->name, path);
	} else if ((k->flags & F_SECRET) && (st.st_mode & 077) != 0) {
		report(ld, line,
		       "[%s] %s: %s is accessible by group or others "
		       "(chmod 600 %s)",
		       k->section, k->name, path, path);
	} else {
		char *real = realpath(path, NULL);
		char what[48];

		snprintf(what, sizeof(what), "[%s] %s: ", k->section, k->name);
		if (real != NULL)
			check_writers(ld, line, what, real, &st);
		free(real);
	}
	close(fd);
}

/*
 * [store] backend, url and password_file together: postgresql needs a url
 * that libpq can parse and that carries no password (it would sit in a
 * readable configuration and in process listings of tools given it); a
 * url or password file for sqlite is a mistake worth saying. The url is
 * not quoted in messages: it may hold a host name only the operator
 * should see in logs.
 */
static void
check_store_backend(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	bool pg = strcmp(cfg->store_backend, "postgresql") == 0;
	PQconninfoOption *opts, *o;
	char *why = NULL;
	size_t i = 0;
	int line;

	find_key(cfg_keys, N_CFG_KEYS, "store", "url", &i);
	line = ld->key_line[i];
	if (!pg) {
		if (cfg->store_url != NULL || cfg->store_password_file != NULL)
			report(ld, line,
			       "[store] url and password_file need backend = "
			       "postgresql");
		return;
	}
	if (cfg->store_url == NULL) {
		find_key(cfg_keys, N_CFG_KEYS, "store", "backend", &i);
		report(ld, ld->key_line[i],
		       "[store] backend = postgresql needs url");
		return;
	}
	if ((opts = PQconninfoParse(cfg->store_url, &why)) == NULL) {
		report(ld, line,
		       "[store] url: not a libpq connection string: %s",
		       why != NULL ? why : "out of memory");
		PQfreemem(why);
		return;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
		    o->val[0] != '\0')
			report(ld, line,
			       "[store] url: carries a password; put it in "
			       "password_file (mode 600) instead");
	PQconninfoFree(opts);
}

/*
 * Production refuses a test identity of its own: the UZI test policy
 * (tls_cert_is_test, the check peers' certificates get) on the
 * certificate the gateway presents or signs with. A file that cannot be
 * read as a certificate is left to the TLS and signing setup to report.
 */
static void
check_production_certs(struct loader *ld)
{
	static const char *const names[][2] = {{"listen", "certificate"},
					       {"signing", "certificate"}};
	int env_line;
	size_t i = 0;

	find_key(cfg_keys, N_CFG_KEYS, "listen", "environment", &i);
	env_line = ld->key_line[i];
	for (size_t n = 0; n < UTIL_ARRAY_LEN(names); n++) {
		const struct key *k = find_key(cfg_keys, N_CFG_KEYS,
					       names[n][0], names[n][1], &i);
		const char *path;
		bool test;

		memcpy(&path, (const char *)ld->cfg + k->offset, sizeof(path));
		if (ld->key_line[i] == 0 || path == NULL ||
		    tls_cert_file_is_test(path, &test) != GW_OK || !test)
			continue;
		report(ld, ld->key_line[i],
		       "[%s] %s: %s carries the UZI test policy %s, and "
		       "[listen] environment = production (line %d) refuses "
		       "a test certificate",
		       k->section, k->name, path, TLS_OID_POLICY_TEST,
		       env_line);
	}
}

/* After the last line: required keys, derived defaults, files and the
 * checks that involve several keys. */
static void
finish(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	bool reported[UTIL_ARRAY_LEN(sections)] = {false};
	int bmin, bmax;
	size_t i;

	for (i = 0; i < N_CFG_KEYS; i++) {
		const struct key *k = &cfg_keys[i];
		int s = section_index(k->section);
		char req[128];
		size_t used = 0;

		if (!(k->flags & F_REQUIRED) || ld->key_line[i] != 0)
			continue;
		if (ld->sect_line[s] != 0) {
			report(ld, ld->sect_line[s],
			       "[%s] %s: required key is missing", k->section,
			       k->name);
			continue;
		}
		if (reported[s])
			continue;
		reported[s] = true;
		req[0] = '\0';
		for (size_t j = i; j < N_CFG_KEYS && used < sizeof(req); j++)
			if ((cfg_keys[j].flags & F_REQUIRED) &&
			    strcmp(cfg_keys[j].section, k->section) == 0)
				used += (size_t)snprintf(
				    req + used, sizeof(req) - used, "%s%s",
				    used > 0 ? ", " : "", cfg_keys[j].name);
		report(ld, 0, "missing section [%s] (required keys: %s)",
		       k->section, req);
	}

	/* Files named in the file, where the value itself was good. */
	for (i = 0; i < N_CFG_KEYS; i++) {
		const struct key *k = &cfg_keys[i];
		const char *path;

		if (!(k->flags & F_FILE) || ld->key_line[i] == 0)
			continue;
		memcpy(&path, (const char *)cfg + k->offset, sizeof(path));
		if (path == NULL)
			continue;
		if ((k->flags & F_PKCS11) && strncmp(path, "pkcs11:", 7) == 0)
			continue;
		check_file(ld, k, path, ld->key_line[i]);
	}

	if (cfg->environment == CONFIG_ENV_PRODUCTION)
		check_production_certs(ld);

	check_store_backend(ld);

	if (cfg->sign_key == NULL && cfg->tls_key != NULL &&
	    (cfg->sign_key = strdup(cfg->tls_key)) == NULL)
		ld->nomem = true;
	if (cfg->sign_cert == NULL && cfg->tls_cert != NULL &&
	    (cfg->sign_cert = strdup(cfg->tls_cert)) == NULL)
		ld->nomem = true;

	find_key(cfg_keys, N_CFG_KEYS, "delivery", "backoff_min", &i);
	bmin = ld->key_line[i];
	find_key(cfg_keys, N_CFG_KEYS, "delivery", "backoff_max", &i);
	bmax = ld->key_line[i];
	if (cfg->backoff_min_ms > cfg->backoff_max_ms) {
		char a[32], b[32];

		report(ld, bmax > bmin ? bmax : bmin,
		       "[delivery] backoff_min (%s) is greater than "
		       "backoff_max (%s)",
		       fmt_duration(cfg->backoff_min_ms, a, sizeof(a)),
		       fmt_duration(cfg->backoff_max_ms, b, sizeof(b)));
	}

	if (cfg->admin_port != 0 && cfg->admin_port == cfg->listen_port &&
	    cfg->admin_address != NULL && cfg->listen_address != NULL &&
	    strcmp(cfg->admin_address, cfg->listen_address) == 0) {
		int line;

		find_key(cfg_keys, N_CFG_KEYS, "admin", "port", &i);
		line = ld->key_line[i];
		find_key(cfg_keys, N_CFG_KEYS, "listen", "port", &i);
		if (line == 0)
			line = ld->key_line[i];
		report(ld, line, "[admin] port: %u is also the [listen] port",
		       cfg->admin_port);
	}

	for (i = 0; i < cfg->npeers && cfg->ura[0] != '\0'; i++) {
		const struct config_peer *p = &cfg->peers[i];

		/* A gateway neither delivers to nor takes messages from
		 * itself: such a section would let its own certificate push
		 * as a peer, or send deliveries back into its own intake. */
		if (strcmp(p->ura, cfg->ura) == 0)
			report(ld, p->line,
			       "[peer %s]: %s is this gateway's own URA "
			       "([organisation] ura); remove the section",
			       p->ura, p->ura);
		else if (strcmp(p->server_ura, cfg->ura) == 0)
			report(ld, p->line,
			       "[peer %s] server_ura: %s is this gateway's own "
			       "URA ([organisation] ura): deliveries would "
			       "come back to it",
			       p->ura, p->server_ura);
	}

	/* A notification tells an organisation this gateway serves that it
	 * may pull: one with an endpoint gets the messages themselves. */
	for (i = 0; i < cfg->npeers; i++) {
		const struct config_peer *p = &cfg->peers[i];

		if (p->notify == NULL)
			continue;
		if (p->endpoint != NULL)
			report(
			    ld, p->notify_line,
			    "[peer %s] notify: only for an organisation this "
			    "gateway serves (no endpoint); messages for "
			    "%s go to its endpoint",
			    p->ura, p->ura);
		else if ((p->allow & CONFIG_ALLOW_PULL) == 0)
			report(ld, p->notify_line,
			       "[peer %s] notify: needs allow = pull (the "
			       "notified organisation pulls the data here)",
			       p->ura);
	}

	for (i = 0; i < cfg->npeers; i++) {
		struct config_peer *p = &cfg->peers[i];

		if (p->server_ura[0] == '\0')
			util_strlcpy(p->server_ura, p->ura,
				     sizeof(p->server_ura));
		if (p->concurrency == 0)
			p->concurrency = cfg->delivery_concurrency;
	}
}

enum gw_err
config_load(const char *path, config_err_fn err, void *arg, struct config **out)
{
	struct loader ld;
	struct stat st;
	enum gw_err rc = GW_CONFIG;
	char *slash, *dir = NULL;
	int r;

	*out = NULL;
	memset(&ld, 0, sizeof(ld));
	ld.file = path;
	ld.err = err;
	ld.arg = arg;
	ld.sect = SECT_NONE;
	if ((ld.fp = fopen(path, "r")) == NULL) {
		rc = errno == ENOENT ? GW_NOTFOUND : GW_IO;
		report(&ld, 0, "cannot open: %s", strerror(errno));
		return rc;
	}
	if (fstat(fileno(ld.fp), &st) == -1 || !S_ISREG(st.st_mode)) {
		report(&ld, 0, "not a regular file");
		rc = GW_IO;
		goto done;
	}
	{
		char *real = realpath(path, NULL);

		if (real == NULL && errno == ENOMEM)
			goto nomem;
		check_writers(&ld, 0, "", real != NULL ? real : path, &st);
		free(real);
	}
	if ((ld.cfg = calloc(1, sizeof(*ld.cfg))) == NULL ||
	    (ld.cfg->path = strdup(path)) == NULL ||
	    (dir = strdup(path)) == NULL)
		goto nomem;
	/* Relative paths in the file are taken against its directory,
	 * made absolute so that a later chdir does not change them. */
	if ((slash = strrchr(dir, '/')) == NULL)
		util_strlcpy(dir, ".", 2);
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((ld.dir = realpath(dir, NULL)) == NULL) {
		if (errno == ENOMEM)
			goto nomem;
		ld.dir = dir;
		dir = NULL;
	}
	if (strcmp(ld.dir, "/") == 0)
		ld.dir[0] = '\0'; /* "/" + "/" + x would double the slash */

	for (size_t i = 0; i < N_CFG_KEYS; i++) {
		if (cfg_keys[i].def != NULL &&
		    !set_value(&ld, &cfg_keys[i], ld.cfg, cfg_keys[i].def, 0)) {
			assert(ld.nomem); /* the defaults are valid */
			goto nomem;
		}
	}

	/* Debian's libinih sizes its line buffer from ini_max_line; one
	 * indented line must never continue the previous value. */
	ini_max_line = CONFIG_MAX_LINE + 3;
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;
	ini_inline_comment_prefixes = comment_prefixes;
	r = ini_parse_stream(read_line, &ld, handle_key, &ld);
	if (r == -2 || ld.nomem)
		goto nomem;
	if (ld.ioerr) {
		rc = GW_IO;
		goto done;
	}
	if (r > 0 && ld.nerrors == 0)
		report(&ld, r, "syntax error");
	finish(&ld);
	if (ld.nomem)
		goto nomem;
	if (ld.nerrors == 0) {
		*out = ld.cfg;
		ld.cfg = NULL;
		rc = GW_OK;
	}
	goto done;
nomem:
	report(&ld, 0, "out of memory");
	rc = GW_NOMEM;
done:
	config_free(ld.cfg);
	for (size_t i = 0; i < ld.ndirs_seen; i++)
		free(ld.dirs_seen[i].path);
	free(ld.dir);
	free(dir);
	fclose(ld.fp);
	return rc;
}

static void
free_strings(const struct key *keys, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		char *p;

		if (keys[i].type != T_STR && keys[i].type != T_PATH &&
		    keys[i].type != T_ENUM)
			continue;
		memcpy(&p, (char *)base + keys[i].offset, sizeof(p));
		free(p);
	}
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->npeers; i++)
		free_strings(peer_keys, N_PEER_KEYS, &cfg->peers[i]);
	free(cfg->peers);
	free_strings(cfg_keys, N_CFG_KEYS, cfg);
	free(cfg->path);
	free(cfg);
}

/* True when address can only be reached from this host. */
static bool
is_loopback(const char *address)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strcasecmp(address, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, address, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, address, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/*
 * The host and port of an endpoint that check_endpoint accepted, in
 * lower case with the port made explicit ("gw.example.nl:443"), and
 * where its path starts.
 */
static const char *
endpoint_authority(const char *ep, char *out, size_t n)
{
	const char *auth = ep + 8, *end = auth + strcspn(auth, "/");
	const char *close = memchr(auth, ']', (size_t)(end - auth));
	const char *after = close != NULL ? close + 1 : auth;
	size_t len = (size_t)(end - auth), i;

	if (len >= n - 5)
		len = n - 5;
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)auth[i]);
	out[i] = '\0';
	if (memchr(after, ':', (size_t)(end - after)) == NULL)
		util_strlcpy(out + i, ":443", n - i);
	return end;
}

/* Warnings about [peer] routes that make deliveries fail or die. */
static int
route_warnings(const struct config *cfg, config_err_fn warn, void *arg)
{
	char msg[2048], a[272], b[272];
	int n = 0;

	for (size_t i = 0; i < cfg->npeers; i++) {
		const struct config_peer *p = &cfg->peers[i];
		const char *path;
		size_t len;

		if (p->endpoint == NULL)
			continue;
		/* pzpgw serves its FHIR API under /fhir and deliveries go to
		 * the endpoint plus /$process-message: without the base they
		 * get 404. Another FHIR server or a proxy may use another
		 * base, so this is a warning. */
		path = endpoint_authority(p->endpoint, a, sizeof(a));
		len = strlen(path);
		while (len > 0 && path[len - 1] == '/')
			len--;
		if (len < 5 || strncmp(path + len - 5, "/fhir", 5) != 0) {
			snprintf(msg, sizeof(msg),
				 "[peer %s] (line %d) endpoint %s: the path "
				 "does not end in /fhir, the FHIR base of a "
				 "pzpgw gateway; deliveries go to %.*s/"
				 "$process-message, which a pzpgw gateway "
				 "answers 404 (write https://%s/fhir)",
				 p->ura, p->line, p->endpoint,
				 (int)(path - p->endpoint + len), p->endpoint,
				 a);
			if (warn != NULL)
				warn(arg, cfg->path, 0, msg);
			n++;
		}
		/* One server certificate carries one URA: peers delivered to
		 * the same host and port expecting different URAs cannot all
		 * be right. The likely mistake is a practice's section left
		 * with server_ura at its own URA while its endpoint is another
		 * organisation's gateway: every attempt then fails with
		 * "wrong server URA" until max_age. A peer that relays is a
		 * gateway itself, and its endpoint its own. */
		if (strcmp(p->server_ura, p->ura) != 0 || p->relay != NULL)
			continue;
		for (size_t j = 0; j < cfg->npeers; j++) {
			const struct config_peer *q = &cfg->peers[j];

			if (j == i || q->endpoint == NULL ||
			    strcmp(q->server_ura, p->server_ura) == 0)
				continue;
			endpoint_authority(q->endpoint, b, sizeof(b));
			if (strcmp(a, b) != 0)
				continue;
			snprintf(
			    msg, sizeof(msg),
			    "[peer %s] (line %d) server_ura: %s, the "
			    "section's own URA, while [peer %s] (line "
			    "%d) expects %s from the same endpoint host "
			    "%s; a server certificate carries one URA: if "
			    "%s is another organisation's gateway, set "
			    "server_ura = %s (otherwise every delivery "
			    "fails with \"wrong server URA\" and goes dead "
			    "after max_age)",
			    p->ura, p->line, p->server_ura, q->ura, q->line,
			    q->server_ura, a, a, q->server_ura);
			if (warn != NULL)
				warn(arg, cfg->path, 0, msg);
			n++;
			break;
		}
	}
	return n;
}

int
config_check_routes(const struct config *cfg, config_err_fn err, void *arg)
{
	char msg[CONFIG_MSG_MAX];
	int n = 0;

	/* Messages for a peer with an endpoint are delivered there, so it
	 * would pull here from an empty store: the section is both "served
	 * here" and "served there", and one of the two is a mistake. */
	for (size_t i = 0; i < cfg->npeers; i++) {
		const struct config_peer *p = &cfg->peers[i];

		if (p->endpoint == NULL || !(p->allow & CONFIG_ALLOW_PULL))
			continue;
		snprintf(msg, sizeof(msg),
			 "[peer %s]: allow = pull and an endpoint: messages "
			 "for %s are delivered to the endpoint, so nothing "
			 "arrives here to pull. Keep allow = pull without "
			 "endpoint when this gateway serves %s, or the "
			 "endpoint without pull when another gateway does",
			 p->ura, p->ura, p->ura);
		if (err != NULL)
			err(arg, cfg->path, p->line, msg);
		n++;
	}
	return n;
}

static int store_warnings(const struct config *cfg, config_err_fn fn,
			  void *arg);

int
config_warnings(const struct config *cfg, config_err_fn warn, void *arg)
{
	char msg[CONFIG_MSG_MAX];
	int n = 0;

	/* /metrics names organisations and traffic, and the admin listener
	 * has no TLS and no authentication. */
	if (cfg->admin_port != 0 && cfg->admin_address != NULL &&
	    !is_loopback(cfg->admin_address)) {
		snprintf(msg, sizeof(msg),
			 "[admin] address: %s is not a loopback address: "
			 "/healthz, /readyz and /metrics are plain HTTP "
			 "without authentication (the console asks for "
			 "[admin] token_file); keep them on 127.0.0.1 or "
			 "behind a firewall",
			 cfg->admin_address);
		if (warn != NULL)
			warn(arg, cfg->path, 0, msg);
		n++;
	}
	/* A view narrows what a peer pulls: on one that may not pull it
	 * does nothing, which is likely a mistake in the section. */
	for (size_t i = 0; i < cfg->npeers; i++) {
		const struct config_peer *p = &cfg->peers[i];
		bool narrowed =
		    p->resources != NULL ||
		    (p->view != NULL && strcmp(p->view, "full") != 0);

		if (!narrowed || (p->allow & CONFIG_ALLOW_PULL))
			continue;
		snprintf(msg, sizeof(msg),
			 "[peer %s] (line %d): resources or view without "
			 "allow = pull has no effect",
			 p->ura, p->line);
		if (warn != NULL)
			warn(arg, cfg->path, 0, msg);
		n++;
	}
	n += route_warnings(cfg, warn, arg);
	return n + store_warnings(cfg, warn, arg);
}

bool
config_fhir_stu3(const struct config_peer *p, const char *accept)
{
	const char *v = accept ? strstr(accept, "fhirVersion=") : NULL;

	if (v != NULL) {
		v += strlen("fhirVersion=");
		if (*v == '"')
			v++;
		return strncmp(v, "3.", 2) == 0;
	}
	return p != NULL && p->fhir != NULL && strcmp(p->fhir, "stu3") == 0;
}

const struct config_peer *
config_peer_find(const struct config *cfg, const char *ura)
{
	if (cfg == NULL || ura == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->npeers; i++)
		if (strcmp(cfg->peers[i].ura, ura) == 0)
			return &cfg->peers[i];
	return NULL;
}

bool
config_relay_allows(const char *relay, const char *ura)
{
	size_t n, len = strlen(ura);

	if (relay == NULL || len == 0)
		return false;
	if (strcmp(relay, "*") == 0)
		return true;
	while (*relay != '\0') {
		if ((n = strcspn(relay, ", \t")) == 0) {
			relay++;
			continue;
		}
		if (n == len && strncmp(relay, ura, n) == 0)
			return true;
		relay += n;
	}
	return false;
}

const char *
config_env_name(enum config_env env)
{
	return env == CONFIG_ENV_PRODUCTION ? "production" : "test";
}

static int
store_warnings(const struct config *cfg, config_err_fn fn, void *arg)
{
	char msg[CONFIG_MSG_MAX], free_s[32], body_s[32], want_s[32];

	/* Intake refuses a message that would take the disk below min_free
	   (counting its WAL growth); with less than two bodies of margin
	   one large message, or the WAL a checkpoint has not yet given
	   back, can fill the disk before the check refuses anything. */
	if (cfg->store_min_free >= 2 * cfg->max_body)
		return 0;
	snprintf(msg, sizeof(msg),
		 "[store] min_free (%s) is below twice [limits] "
		 "max_body (%s): set min_free to at least %s",
		 fmt_size(cfg->store_min_free, free_s, sizeof(free_s)),
		 fmt_size(cfg->max_body, body_s, sizeof(body_s)),
		 fmt_size(2 * cfg->max_body, want_s, sizeof(want_s)));
	if (fn != NULL)
		fn(arg, cfg->path, 0, msg);
	return 1;
}

const char *
config_section_doc(const char *section)
{
	if (strcmp(section, "peer") == 0)
		return "One section per other organisation, named by its URA "
		       "([peer 90000003]): where messages for it go and what "
		       "it "
		       "may do here.";
	for (size_t i = 0; i < UTIL_ARRAY_LEN(sections); i++)
		if (strcmp(sections[i], section) == 0)
			return section_docs[i];
	return NULL;
}

/* The value type of k in words, for the manual. */
static void
describe_type(const struct key *k, char *out, size_t n)
{
	char list[64];

	switch (k->type) {
	case T_STR:
		snprintf(out, n, "%s",
			 (k->flags & F_HTTPS)  ? "https URL"
			 : (k->flags & F_HOST) ? "IP address or host name"
			 : (k->flags & F_URAS) ? "* or URA numbers, separated "
						 "by commas or blanks"
			 : (k->flags & F_RESOURCES) ? "FHIR resource types and "
						      "profile URLs, separated "
						      "by commas or blanks"
						    : "text");
		break;
	case T_PATH:
		snprintf(out, n, "%s%s%s",
			 (k->flags & F_FILE) ? "file" : "path",
			 (k->flags & F_PKCS11) ? " or pkcs11: URI" : "",
			 (k->flags & F_SECRET)
			     ? " (a file group or others can read is refused)"
			     : "");
		break;
	case T_PORT:
		snprintf(out, n, "port number");
		break;
	case T_UINT:
		snprintf(out, n, "whole number");
		break;
	case T_SIZE:
		snprintf(out, n, "size in bytes, with k, M or G");
		break;
	case T_DURATION:
		snprintf(out, n, "duration with ms, s, m, h or d%s",
			 (k->flags & F_KEEP) ? ", or keep" : "");
		break;
	case T_BOOL:
		snprintf(out, n, "yes or no");
		break;
	case T_ENUM:
		snprintf(out, n, "one of %s",
			 fmt_choices(k->choices, list, sizeof(list)));
		break;
	case T_ENV:
		snprintf(out, n, "test or production");
		break;
	case T_URA:
		snprintf(out, n, "URA number (8 digits)");
		break;
	case T_LIST:
		snprintf(out, n,
			 "list of %s, separated by commas or blanks, or empty",
			 fmt_choices(k->choices, list, sizeof(list)));
		break;
	}
}

bool
config_key_describe(size_t i, struct config_key_doc *out)
{
	const struct key *k;
	char lo[32], hi[32];

	if (i >= N_CFG_KEYS + N_PEER_KEYS)
		return false;
	k = i < N_CFG_KEYS ? &cfg_keys[i] : &peer_keys[i - N_CFG_KEYS];
	memset(out, 0, sizeof(*out));
	out->section = k->section;
	out->name = k->name;
	out->doc = k->doc;
	out->required = (k->flags & F_REQUIRED) != 0;
	describe_type(k, out->type, sizeof(out->type));
	util_strlcpy(out->def,
		     k->def_doc != NULL ? k->def_doc
		     : k->def != NULL	? k->def
					: "",
		     sizeof(out->def));
	lo[0] = hi[0] = '\0';
	switch (k->type) {
	case T_PORT:
	case T_UINT:
		if (k->max > 0) {
			snprintf(lo, sizeof(lo), "%llu",
				 (unsigned long long)k->min);
			snprintf(hi, sizeof(hi), "%llu",
				 (unsigned long long)k->max);
		}
		break;
	case T_SIZE:
		fmt_size(k->min, lo, sizeof(lo));
		fmt_size(k->max, hi, sizeof(hi));
		break;
	case T_DURATION:
		fmt_duration(k->min, lo, sizeof(lo));
		fmt_duration(k->max, hi, sizeof(hi));
		break;
	default:
		break;
	}
	if (hi[0] != '\0')
		snprintf(out->bounds, sizeof(out->bounds), "%s..%s", lo, hi);
	return true;
}
