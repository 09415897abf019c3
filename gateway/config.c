/*
 * Configuration loader: reads the INI file with libinih through a line
 * counting reader, fills struct config from one table of keys and reports
 * every problem as file:line: message.
 */
/* realpath() is declared by glibc only beyond plain POSIX. */
#define _DEFAULT_SOURCE
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

#include "config.h"
#include "util.h"

#define CONFIG_MAX_LINE	 1024	    /* characters on one line */
#define CONFIG_MAX_SIZE	 (1u << 20) /* bytes in the whole file */
#define CONFIG_MAX_PEERS 10000	    /* [peer] sections */
#define CONFIG_MSG_MAX	 512	    /* one error message */
#define CONFIG_QUOTE_MAX 64	    /* characters of a value in a message */

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

#define F_REQUIRED 0x01u /* missing is an error */
#define F_FILE	   0x02u /* must name an existing readable file */
#define F_SECRET   0x04u /* no access for group or others */
#define F_PKCS11   0x08u /* "pkcs11:" URI kept verbatim, not a file */
#define F_HTTPS	   0x10u /* an https:// URL */
#define F_HOST	   0x20u /* an address or host name */

struct key {
	const char *section; /* "organisation", ...; "peer" for peers */
	const char *name;
	enum key_type type;
	unsigned flags;
	size_t offset;	 /* in struct config or struct config_peer */
	const char *def; /* default as written in a file, or NULL */
	uint64_t min, max;
	const char *const *choices; /* NULL-terminated, T_ENUM/T_LIST */
};

/* Inline comments start with ';' or '#' after a blank. */
static char comment_prefixes[] = ";#";

static const char *const algs[] = {"PS256", "RS256", "ES256", NULL};
static const char *const logs[] = {"syslog", "stderr", NULL};
static const char *const allows[] = {"push", "pull", "validate", NULL};

#define KIB  1024ull
#define MIB  (1024ull * KIB)
#define GIB  (1024ull * MIB)
#define SEC  1000ull
#define MIN  (60ull * SEC)
#define HOUR (60ull * MIN)
#define DAY  (24ull * HOUR)

#define C(f) offsetof(struct config, f)
#define P(f) offsetof(struct config_peer, f)

/* Every key of the fixed sections. */
static const struct key cfg_keys[] = {
    {"organisation", "ura", T_URA, F_REQUIRED, C(ura), NULL, 0, 0, NULL},
    {"organisation", "name", T_STR, F_REQUIRED, C(name), NULL, 0, 0, NULL},

    {"listen", "address", T_STR, F_HOST, C(listen_address), "127.0.0.1", 0, 0,
     NULL},
    {"listen", "port", T_PORT, 0, C(listen_port), "8443", 1, 65535, NULL},
    {"listen", "certificate", T_PATH, F_REQUIRED | F_FILE, C(tls_cert), NULL, 0,
     0, NULL},
    {"listen", "key", T_PATH, F_REQUIRED | F_FILE | F_SECRET, C(tls_key), NULL,
     0, 0, NULL},
    {"listen", "trust", T_PATH, F_REQUIRED | F_FILE, C(tls_trust), NULL, 0, 0,
     NULL},
    {"listen", "crl", T_PATH, F_FILE, C(tls_crl), NULL, 0, 0, NULL},
    {"listen", "environment", T_ENV, F_REQUIRED, C(environment), NULL, 0, 0,
     NULL},

    {"admin", "address", T_STR, F_HOST, C(admin_address), "127.0.0.1", 0, 0,
     NULL},
    {"admin", "port", T_PORT, 0, C(admin_port), "9090", 0, 65535, NULL},

    {"store", "path", T_PATH, 0, C(store_path), "/var/lib/pzpgw/pzpgw.db", 0, 0,
     NULL},
    {"store", "min_free", T_SIZE, 0, C(store_min_free), "256M", 0, 1024 * GIB,
     NULL},
    {"store", "retention", T_UINT, 0, C(store_retention_days), "30", 1, 3650,
     NULL},

    {"limits", "max_body", T_SIZE, 0, C(max_body), "10M", KIB, GIB, NULL},
    {"limits", "max_header", T_SIZE, 0, C(max_header), "16k", KIB, MIB, NULL},
    {"limits", "max_connections", T_UINT, 0, C(max_connections), "256", 1,
     65535, NULL},
    {"limits", "read_timeout", T_DURATION, 0, C(read_timeout_ms), "30s", 100,
     HOUR, NULL},
    {"limits", "write_timeout", T_DURATION, 0, C(write_timeout_ms), "30s", 100,
     HOUR, NULL},
    {"limits", "max_pending", T_UINT, 0, C(max_pending), "64", 1, 100000, NULL},
    {"limits", "max_handshakes", T_UINT, 0, C(max_handshakes), "64", 1, 65535,
     NULL},
    {"limits", "handshake_timeout", T_DURATION, 0, C(handshake_timeout_ms),
     "10s", 100, 5 * MIN, NULL},
    {"limits", "max_memory", T_SIZE, 0, C(max_memory), "512M", 16 * MIB,
     256 * GIB, NULL},

    {"signing", "key", T_PATH, F_FILE | F_SECRET | F_PKCS11, C(sign_key), NULL,
     0, 0, NULL},
    {"signing", "certificate", T_PATH, F_FILE, C(sign_cert), NULL, 0, 0, NULL},
    {"signing", "chain", T_PATH, F_FILE, C(sign_chain), NULL, 0, 0, NULL},
    {"signing", "algorithm", T_ENUM, 0, C(sign_alg), NULL, 0, 0, algs},

    {"delivery", "backoff_min", T_DURATION, 0, C(backoff_min_ms), "1s", 10, DAY,
     NULL},
    {"delivery", "backoff_max", T_DURATION, 0, C(backoff_max_ms), "1h", 10,
     30 * DAY, NULL},
    {"delivery", "max_age", T_DURATION, 0, C(max_age_ms), "7d", SEC, 365 * DAY,
     NULL},
    {"delivery", "timeout", T_DURATION, 0, C(delivery_timeout_ms), "30s", 100,
     HOUR, NULL},
    {"delivery", "concurrency", T_UINT, 0, C(delivery_concurrency), "4", 1, 64,
     NULL},

    {"process", "user", T_STR, 0, C(user), NULL, 0, 0, NULL},
    {"process", "log", T_ENUM, 0, C(log), "syslog", 0, 0, logs},
    {"process", "schemas", T_PATH, 0, C(schemas), "/usr/share/pzpgw/schemas", 0,
     0, NULL},
};

/* Keys of a [peer URA] section; server_ura and concurrency get their
 * defaults when the whole file is read. */
static const struct key peer_keys[] = {
    {"peer", "name", T_STR, 0, P(name), NULL, 0, 0, NULL},
    {"peer", "endpoint", T_STR, F_HTTPS, P(endpoint), NULL, 0, 0, NULL},
    {"peer", "server_ura", T_URA, 0, P(server_ura), NULL, 0, 0, NULL},
    {"peer", "allow", T_LIST, 0, P(allow), "", 0, 0, allows},
    {"peer", "concurrency", T_UINT, 0, P(concurrency), NULL, 1, 64, NULL},
};

#define N_CFG_KEYS  UTIL_ARRAY_LEN(cfg_keys)
#define N_PEER_KEYS UTIL_ARRAY_LEN(peer_keys)

static const char *const sections[] = {
    "organisation", "listen",  "admin",	   "store",
    "limits",	    "signing", "delivery", "process",
};

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

static bool
is_https_url(const char *s)
{
	const char *host = s + 8;

	if (strncasecmp(s, "https://", 8) != 0)
		return false;
	if (*host == '\0' || *host == '/' || *host == ':' || *host == '?')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
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
		if ((k->flags & F_HTTPS) && !is_https_url(value)) {
			report(ld, line, "%s %s: \"%s\" is not an https:// URL",
			       where, k->name, q);
			return false;
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
		e = util_parse_duration(value, k->min, k->max, &u64);
		if (e == GW_OK) {
			memcpy(field, &u64, sizeof(u64));
			return true;
		}
		if (e == GW_PARSE)
			report(ld, line,
			       "%s %s: \"%s\" is not a duration (examples: "
			       "250ms, 30s, 5m, 1h, 7d)",
			       where, k->name, q);
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
		set_value(ld, k, p, value, ld->line);
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
	}
	close(fd);
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
			 "without authentication; keep them on 127.0.0.1 or "
			 "behind a firewall",
			 cfg->admin_address);
		if (warn != NULL)
			warn(arg, cfg->path, 0, msg);
		n++;
	}
	return n;
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

const char *
config_env_name(enum config_env env)
{
	return env == CONFIG_ENV_PRODUCTION ? "production" : "test";
}
