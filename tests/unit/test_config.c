/* Unit tests for the configuration loader: values, defaults, paths,
 * peers and every error with its file:line, on real files in a temp dir. */
/* realpath() is declared by glibc only beyond plain POSIX. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define MAX_ERRS 64

struct errs {
	int n;
	struct {
		char file[512];
		int line;
		char msg[512];
	} e[MAX_ERRS];
};

static char tmpdir[256];
static char realdir[512];

static void
collect(void *arg, const char *file, int line, const char *msg)
{
	struct errs *es = arg;

	if (es->n < MAX_ERRS) {
		snprintf(es->e[es->n].file, sizeof(es->e[0].file), "%s", file);
		es->e[es->n].line = line;
		snprintf(es->e[es->n].msg, sizeof(es->e[0].msg), "%s", msg);
	}
	es->n++;
}

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	if (fp == NULL)
		fail_msg("cannot create %s", path);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

/* Write text as NAME in the temp dir and load it. */
static enum gw_err
load_text(const char *name, const char *text, struct errs *es,
	  struct config **out)
{
	char path[512];

	memset(es, 0, sizeof(*es));
	write_file(name, text, 0644);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return config_load(path, collect, es, out);
}

static void
dump_errs(const struct errs *es)
{
	for (int i = 0; i < es->n && i < MAX_ERRS; i++)
		fprintf(stderr, "  error %d: line %d: %s\n", i, es->e[i].line,
			es->e[i].msg);
}

/* Load text that must be good; fails the test with the errors if not. */
static struct config *
load_good(const char *text)
{
	struct config *cfg = NULL;
	struct errs es;
	enum gw_err rc = load_text("good.conf", text, &es, &cfg);

	if (rc != GW_OK || es.n != 0 || cfg == NULL) {
		dump_errs(&es);
		fail_msg("load: got %s with %d errors, want ok",
			 gw_strerror(rc), es.n);
	}
	return cfg;
}

static void
path_in_dir(char *out, size_t n, const char *rel)
{
	snprintf(out, n, "%s/%s", realdir, rel);
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/pzpgw-test-config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	{
		char *real = realpath(tmpdir, NULL);

		if (real == NULL || strlen(real) >= sizeof(realdir)) {
			free(real);
			return -1;
		}
		snprintf(realdir, sizeof(realdir), "%s", real);
		free(real);
	}
	write_file("cert.pem",
		   "-----BEGIN CERTIFICATE-----\nMIIB\n"
		   "-----END CERTIFICATE-----\n",
		   0644);
	write_file("trust.pem",
		   "-----BEGIN CERTIFICATE-----\nMIIC\n"
		   "-----END CERTIFICATE-----\n",
		   0644);
	write_file("chain.pem",
		   "-----BEGIN CERTIFICATE-----\nMIID\n"
		   "-----END CERTIFICATE-----\n",
		   0644);
	write_file("crl.pem",
		   "-----BEGIN X509 CRL-----\nMIIE\n-----END X509 CRL-----\n",
		   0644);
	write_file("key.pem",
		   "-----BEGIN PRIVATE KEY-----\nMIIF\n"
		   "-----END PRIVATE KEY-----\n",
		   0600);
	write_file("sign.key",
		   "-----BEGIN PRIVATE KEY-----\nMIIG\n"
		   "-----END PRIVATE KEY-----\n",
		   0600);
	write_file("open.key",
		   "-----BEGIN PRIVATE KEY-----\nMIIH\n"
		   "-----END PRIVATE KEY-----\n",
		   0640);
	{
		char sub[512];

		snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
		if (mkdir(sub, 0700) != 0)
			return -1;
	}
	write_file("sub/cert.pem",
		   "-----BEGIN CERTIFICATE-----\nMIIJ\n"
		   "-----END CERTIFICATE-----\n",
		   0644);
	return 0;
}

static int
teardown(void **state)
{
	static const char *files[] = {"cert.pem",  "trust.pem",	   "chain.pem",
				      "crl.pem",   "key.pem",	   "sign.key",
				      "open.key",  "sub/cert.pem", "good.conf",
				      "bad.conf",  "sub/rel.conf", "many.conf",
				      "empty.conf"};
	char path[512];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/sub", tmpdir);
	rmdir(path);
	return rmdir(tmpdir);
}

/* Lines 1-3 and 4-8: a minimal good file. */
#define ORG "[organisation]\nura = 90000001\nname = Test Gateway\n"
#define LISTEN                                                                 \
	"[listen]\ncertificate = cert.pem\nkey = key.pem\n"                    \
	"trust = trust.pem\nenvironment = test\n"
#define BASE ORG LISTEN

static void
assert_str(const char *what, const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", what,
			 got ? got : "(null)", want);
}

static void
assert_u64(const char *what, uint64_t got, uint64_t want)
{
	if (got != want)
		fail_msg("%s: got %llu, want %llu", what,
			 (unsigned long long)got, (unsigned long long)want);
}

static void
assert_path(const char *what, const char *got, const char *rel)
{
	char want[1024];

	path_in_dir(want, sizeof(want), rel);
	assert_str(what, got, want);
}

static void
test_full(void **state)
{
	struct config *cfg =
	    load_good("# every key, none at its default\n"
		      "[organisation]\n"
		      "ura = 12345678\n"
		      "name = Ziekenhuis Voorbeeld\n"
		      "\n"
		      "[listen]\n"
		      "address = 0.0.0.0\n"
		      "port = 443\n"
		      "certificate = cert.pem\n"
		      "key = key.pem\n"
		      "trust = trust.pem\n"
		      "crl = crl.pem\n"
		      "environment = production\n"
		      "[admin]\n"
		      "address = ::1\n"
		      "port = 0\n"
		      "[store]\n"
		      "path = /srv/pzpgw/plans.db\n"
		      "min_free = 1G\n"
		      "retention = 90\n"
		      "inbound_retention = 3650d\n"
		      "[limits]\n"
		      "max_body = 2M\n"
		      "max_header = 8k\n"
		      "max_connections = 1000\n"
		      "read_timeout = 250ms\n"
		      "write_timeout = 1m\n"
		      "max_pending = 500\n"
		      "[signing]\n"
		      "key = sign.key\n"
		      "certificate = sub/cert.pem\n"
		      "chain = chain.pem\n"
		      "algorithm = ES256\n"
		      "[delivery]\n"
		      "backoff_min = 5s\n"
		      "backoff_max = 2h\n"
		      "max_age = 3d\n"
		      "timeout = 10s\n"
		      "concurrency = 8\n"
		      "[process]\n"
		      "user = pzpgw\n"
		      "log = stderr\n"
		      "schemas = /opt/pzpgw/schemas\n"
		      "[peer 87654321]\n"
		      "name = Huisarts\n"
		      "endpoint = https://gp.example.nl:8443/pzp\n"
		      "server_ura = 11112222\n"
		      "allow = pull validate\n"
		      "concurrency = 2\n");
	const struct config_peer *p;
	char want[1024];

	snprintf(want, sizeof(want), "%s/good.conf", tmpdir);
	assert_str("path", cfg->path, want);
	assert_str("ura", cfg->ura, "12345678");
	assert_str("name", cfg->name, "Ziekenhuis Voorbeeld");
	assert_str("listen_address", cfg->listen_address, "0.0.0.0");
	assert_u64("listen_port", cfg->listen_port, 443);
	assert_path("tls_cert", cfg->tls_cert, "cert.pem");
	assert_path("tls_key", cfg->tls_key, "key.pem");
	assert_path("tls_trust", cfg->tls_trust, "trust.pem");
	assert_path("tls_crl", cfg->tls_crl, "crl.pem");
	assert_int_equal(cfg->environment, CONFIG_ENV_PRODUCTION);
	assert_str("admin_address", cfg->admin_address, "::1");
	assert_u64("admin_port", cfg->admin_port, 0);
	assert_str("store_path", cfg->store_path, "/srv/pzpgw/plans.db");
	assert_u64("store_min_free", cfg->store_min_free, 1073741824ull);
	assert_u64("retention", cfg->store_retention_days, 90);
	assert_u64("inbound_retention", cfg->store_inbound_retention_ms,
		   3650ull * 86400000ull);
	assert_u64("max_body", cfg->max_body, 2097152);
	assert_u64("max_header", cfg->max_header, 8192);
	assert_u64("max_connections", cfg->max_connections, 1000);
	assert_u64("read_timeout", cfg->read_timeout_ms, 250);
	assert_u64("write_timeout", cfg->write_timeout_ms, 60000);
	assert_u64("max_pending", cfg->max_pending, 500);
	assert_path("sign_key", cfg->sign_key, "sign.key");
	assert_path("sign_cert", cfg->sign_cert, "sub/cert.pem");
	assert_path("sign_chain", cfg->sign_chain, "chain.pem");
	assert_str("sign_alg", cfg->sign_alg, "ES256");
	assert_u64("backoff_min", cfg->backoff_min_ms, 5000);
	assert_u64("backoff_max", cfg->backoff_max_ms, 7200000);
	assert_u64("max_age", cfg->max_age_ms, 3ull * 86400000);
	assert_u64("timeout", cfg->delivery_timeout_ms, 10000);
	assert_u64("concurrency", cfg->delivery_concurrency, 8);
	assert_str("user", cfg->user, "pzpgw");
	assert_str("log", cfg->log, "stderr");
	assert_str("schemas", cfg->schemas, "/opt/pzpgw/schemas");
	assert_u64("npeers", cfg->npeers, 1);
	p = &cfg->peers[0];
	assert_str("peer ura", p->ura, "87654321");
	assert_str("peer name", p->name, "Huisarts");
	assert_str("peer endpoint", p->endpoint,
		   "https://gp.example.nl:8443/pzp");
	assert_str("peer server_ura", p->server_ura, "11112222");
	assert_u64("peer allow", p->allow,
		   CONFIG_ALLOW_PULL | CONFIG_ALLOW_VALIDATE);
	assert_u64("peer concurrency", p->concurrency, 2);
	assert_int_equal(p->line, 44);
	config_free(cfg);
}

static void
test_defaults(void **state)
{
	struct config *cfg = load_good(BASE);

	assert_str("listen_address", cfg->listen_address, "127.0.0.1");
	assert_u64("listen_port", cfg->listen_port, 8443);
	assert_null(cfg->tls_crl);
	assert_int_equal(cfg->environment, CONFIG_ENV_TEST);
	assert_str("admin_address", cfg->admin_address, "127.0.0.1");
	assert_u64("admin_port", cfg->admin_port, 9090);
	assert_str("store_path", cfg->store_path, "/var/lib/pzpgw/pzpgw.db");
	assert_u64("store_min_free", cfg->store_min_free, 256ull << 20);
	assert_u64("retention", cfg->store_retention_days, 30);
	assert_u64("inbound_retention", cfg->store_inbound_retention_ms, 0);
	assert_u64("max_body", cfg->max_body, 10ull << 20);
	assert_u64("max_header", cfg->max_header, 16384);
	assert_u64("max_connections", cfg->max_connections, 256);
	assert_u64("read_timeout", cfg->read_timeout_ms, 30000);
	assert_u64("write_timeout", cfg->write_timeout_ms, 30000);
	assert_u64("max_pending", cfg->max_pending, 64);
	/* signing falls back to the TLS certificate and key */
	assert_path("sign_key", cfg->sign_key, "key.pem");
	assert_path("sign_cert", cfg->sign_cert, "cert.pem");
	assert_null(cfg->sign_chain);
	assert_null(cfg->sign_alg);
	assert_u64("backoff_min", cfg->backoff_min_ms, 1000);
	assert_u64("backoff_max", cfg->backoff_max_ms, 3600000);
	assert_u64("max_age", cfg->max_age_ms, 7ull * 86400000);
	assert_u64("timeout", cfg->delivery_timeout_ms, 30000);
	assert_u64("concurrency", cfg->delivery_concurrency, 4);
	assert_null(cfg->user);
	assert_str("log", cfg->log, "syslog");
	assert_str("schemas", cfg->schemas, "/usr/share/pzpgw/schemas");
	assert_u64("npeers", cfg->npeers, 0);
	assert_null(cfg->peers);
	config_free(cfg);
}

/* Comments, blanks, indentation, CRLF, a BOM, ':' and case in values. */
static void
test_syntax_accepted(void **state)
{
	struct config *cfg =
	    load_good("\xEF\xBB\xBF# comment\r\n"
		      "; another comment\r\n"
		      "\r\n"
		      "[organisation]   # trailing comment\r\n"
		      "  ura = 90000001 ; inline comment\r\n"
		      "\tname: Gateway # inline too\r\n" LISTEN "[limits]\n"
		      "max_body = 512K\n"
		      "[signing]\n"
		      "algorithm = ps256\n");

	assert_str("ura", cfg->ura, "90000001");
	assert_str("name", cfg->name, "Gateway");
	assert_u64("max_body", cfg->max_body, 524288);
	assert_str("sign_alg", cfg->sign_alg, "PS256");
	config_free(cfg);
}

static void
test_relative_paths(void **state)
{
	struct config *cfg;
	char old[4096], want[1024];
	struct errs es;
	enum gw_err rc;

	/* relative to the file's directory, not the working directory */
	write_file("sub/rel.conf",
		   ORG "[listen]\ncertificate = cert.pem\nkey = ../key.pem\n"
		       "trust = ../trust.pem\nenvironment = test\n"
		       "[store]\npath = data/pzpgw.db\n"
		       "[process]\nschemas = ../schemas\n",
		   0644);
	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(realdir), 0);
	memset(&es, 0, sizeof(es));
	rc = config_load("sub/rel.conf", collect, &es, &cfg);
	assert_int_equal(chdir("/"), 0);
	if (rc != GW_OK) {
		dump_errs(&es);
		fail_msg("load: got %s, want ok", gw_strerror(rc));
	}
	assert_str("path", cfg->path, "sub/rel.conf");
	assert_path("tls_cert", cfg->tls_cert, "sub/cert.pem");
	assert_path("tls_key", cfg->tls_key, "sub/../key.pem");
	assert_path("tls_trust", cfg->tls_trust, "sub/../trust.pem");
	assert_path("store_path", cfg->store_path, "sub/data/pzpgw.db");
	assert_path("schemas", cfg->schemas, "sub/../schemas");
	/* resolved paths are absolute: still right after a chdir */
	assert_true(cfg->tls_cert[0] == '/');
	assert_int_equal(access(cfg->tls_key, R_OK), 0);
	config_free(cfg);
	assert_int_equal(chdir(old), 0);

	/* absolute paths are kept as written */
	snprintf(want, sizeof(want),
		 ORG "[listen]\ncertificate = %s/cert.pem\nkey = key.pem\n"
		     "trust = trust.pem\nenvironment = test\n",
		 realdir);
	cfg = load_good(want);
	assert_path("tls_cert", cfg->tls_cert, "cert.pem");
	config_free(cfg);
}

static void
test_pkcs11_key(void **state)
{
	static const char uri[] =
	    "pkcs11:token=pzpgw;object=signing;type=private";
	struct config *cfg =
	    load_good(BASE "[signing]\nkey = pkcs11:token=pzpgw;object="
			   "signing;type=private\n");

	assert_str("sign_key", cfg->sign_key, uri);
	assert_path("sign_cert", cfg->sign_cert, "cert.pem");
	config_free(cfg);
}

struct error_case {
	const char *name;
	const char *text;
	int line;	  /* line of the (first) error */
	const char *want; /* substring of its message */
	int count;	  /* errors expected in all */
};

static const struct error_case error_cases[] = {
    {"unknown section", BASE "[lmits]\nmax_body = 1M\n", 9,
     "unknown section [lmits]", 1},
    {"unknown key", BASE "[limits]\nmax_bdy = 1M\n", 10,
     "[limits] max_bdy: unknown key", 1},
    {"unknown peer key", BASE "[peer 90000002]\nalow = push\n", 10,
     "[peer 90000002] alow: unknown key", 1},
    {"duplicate key", BASE "[limits]\nmax_body = 1M\nmax_body = 2M\n", 11,
     "[limits] max_body: duplicate key (first at line 10)", 1},
    {"duplicate peer key", BASE "[peer 90000002]\nallow = push\nallow = pull\n",
     11, "[peer 90000002] allow: duplicate key (first at line 10)", 1},
    {"duplicate section", BASE "[limits]\nmax_body = 1M\n[limits]\n", 11,
     "duplicate section [limits] (first at line 9)", 1},
    {"duplicate section keys skipped", BASE "[organisation]\nura = 90000009\n",
     9, "duplicate section [organisation] (first at line 1)", 1},
    {"duplicate peer", BASE "[peer 90000002]\n\n[peer 90000002]\n", 11,
     "duplicate section [peer 90000002] (first at line 9)", 1},
    {"bad peer URA", BASE "[peer 1234567]\nallow = push\n", 9,
     "[peer 1234567]: \"1234567\" is not a URA number (exactly 8 digits)", 1},
    {"peer without URA", BASE "[peer]\n", 9, "\"\" is not a URA number", 1},
    {"bad resources item", BASE "[peer 90000002]\nresources = Patient, goal\n",
     10,
     "[peer 90000002] resources: \"goal\" is not a FHIR resource type "
     "(\"Patient\") or a profile URL",
     1},
    {"resources URL with a bad character",
     BASE "[peer 90000002]\nresources = https://x.nl/\x01\n", 10,
     "[peer 90000002] resources: ", 1},
    {"bad view", BASE "[peer 90000002]\nview = medical\n", 10,
     "[peer 90000002] view: \"medical\"", 1},
    {"bad size", BASE "[limits]\nmax_body = 10Q\n", 10,
     "[limits] max_body: \"10Q\" is not a size (examples: 512k, 10M)", 1},
    {"size too big", BASE "[limits]\nmax_body = 2G\n", 10,
     "[limits] max_body: \"2G\" is out of range (1k..1G)", 1},
    {"size too small", BASE "[limits]\nmax_header = 100\n", 10,
     "[limits] max_header: \"100\" is out of range (1k..1M)", 1},
    {"bad duration", BASE "[limits]\nread_timeout = soon\n", 10,
     "[limits] read_timeout: \"soon\" is not a duration", 1},
    {"duration out of range", BASE "[limits]\nread_timeout = 10ms\n", 10,
     "[limits] read_timeout: \"10ms\" is out of range (100ms..1h)", 1},
    {"bad port", BASE "[admin]\nport = http\n", 10,
     "[admin] port: \"http\" is not a port number (0..65535)", 1},
    {"port out of range",
     ORG "[listen]\nport = 65536\ncertificate = cert.pem\nkey = key.pem\n"
	 "trust = trust.pem\nenvironment = test\n",
     5, "[listen] port: \"65536\" is not a port number (1..65535)", 1},
    {"listen port 0",
     ORG "[listen]\nport = 0\ncertificate = cert.pem\nkey = key.pem\n"
	 "trust = trust.pem\nenvironment = test\n",
     5, "[listen] port: \"0\" is not a port number (1..65535)", 1},
    {"bad number", BASE "[limits]\nmax_connections = many\n", 10,
     "[limits] max_connections: \"many\" is not a whole number", 1},
    {"number out of range", BASE "[store]\nretention = 4000\n", 10,
     "[store] retention: \"4000\" is out of range (1..3650)", 1},
    {"inbound retention too short", BASE "[store]\ninbound_retention = 5m\n",
     10, "[store] inbound_retention: \"5m\" is out of range (1h..", 1},
    {"inbound retention not a duration",
     BASE "[store]\ninbound_retention = forever\n", 10,
     "[store] inbound_retention: \"forever\" is not a duration (examples: "
     "250ms, 30s, 5m, 1h, 7d) or keep",
     1},
    {"negative number", BASE "[delivery]\nconcurrency = -1\n", 10,
     "[delivery] concurrency: \"-1\" is out of range (1..64)", 1},
    {"bad URA", "[organisation]\nura = 9000000A\nname = x\n" LISTEN, 2,
     "[organisation] ura: \"9000000A\" is not a URA number (exactly 8 "
     "digits)",
     1},
    {"bad server_ura", BASE "[peer 90000002]\nserver_ura = 123456789\n", 10,
     "[peer 90000002] server_ura: \"123456789\" is not a URA number", 1},
    {"bad algorithm", BASE "[signing]\nalgorithm = HS256\n", 10,
     "[signing] algorithm: \"HS256\" is not one of PS256, RS256, ES256", 1},
    {"bad log", BASE "[process]\nlog = file\n", 10,
     "[process] log: \"file\" is not one of syslog, stderr", 1},
    {"bad environment",
     ORG "[listen]\ncertificate = cert.pem\nkey = key.pem\n"
	 "trust = trust.pem\nenvironment = staging\n",
     8, "[listen] environment: \"staging\" is not one of test, production", 1},
    {"bad allow", BASE "[peer 90000002]\nallow = push, pul\n", 10,
     "[peer 90000002] allow: \"pul\" is not one of push, pull, validate", 1},
    {"endpoint not https", BASE "[peer 90000002]\nendpoint = http://x/\n", 10,
     "[peer 90000002] endpoint: \"http://x/\" is not an https:// URL", 1},
    {"endpoint without host", BASE "[peer 90000002]\nendpoint = https:///\n",
     10, "is not an https:// URL", 1},
#define EP(v) BASE "[peer 90000002]\nendpoint = " v "\n"
    {"endpoint port 0", EP("https://gp.example.nl:0/fhir"), 10,
     "[peer 90000002] endpoint: \"https://gp.example.nl:0/fhir\" has port "
     "\"0\", which is not a port number (1..65535)",
     1},
    {"endpoint port too big", EP("https://gp.example.nl:65536/"), 10,
     "has port \"65536\", which is not a port number (1..65535)", 1},
    {"endpoint port 6 digits", EP("https://gp.example.nl:000443/"), 10,
     "has port \"000443\"", 1},
    {"endpoint port not digits", EP("https://gp.example.nl:84a3/"), 10,
     "has port \"84a3\", which is not a port number", 1},
    {"endpoint port sign", EP("https://gp.example.nl:+443/"), 10,
     "has port \"+443\"", 1},
    {"endpoint empty port", EP("https://gp.example.nl:/fhir"), 10,
     "has ':' without a port number", 1},
    {"endpoint empty port at end", EP("https://gp.example.nl:"), 10,
     "has ':' without a port number", 1},
    {"endpoint only port", EP("https://:8443/"), 10,
     "is not an https:// URL (no host)", 1},
    {"endpoint unclosed bracket", EP("https://[::1/fhir"), 10,
     "has '[' without a closing ']'", 1},
    {"endpoint bracket not IPv6", EP("https://[gp.example.nl]/"), 10,
     "has \"[gp.example.nl]\", which is not an IPv6 address", 1},
    {"endpoint empty brackets", EP("https://[]:8443/"), 10,
     "has \"[]\", which is not an IPv6 address", 1},
    {"endpoint bracket zone", EP("https://[fe80::1%25eth0]/"), 10,
     "which is not an IPv6 address", 1},
    {"endpoint text after bracket", EP("https://[::1]8443/"), 10,
     "has text after ']' that is not \":port\"", 1},
    {"endpoint bracket inside host", EP("https://gp[::1]/"), 10,
     "has '[' or ']' that does not enclose the whole host", 1},
    {"endpoint stray bracket", EP("https://gp.example.nl]:8443/"), 10,
     "has '[' or ']' that does not enclose the whole host", 1},
    {"endpoint IPv6 without brackets", EP("https://2001:db8::1/"), 10,
     "has an IPv6 address without brackets", 1},
    {"endpoint user", EP("https://pzpgw@gp.example.nl/"), 10,
     "has user-info (\"user@\" or \"user:password@\") before the host", 1},
    {"endpoint user and password",
     EP("https://pzpgw:secret@gp.example.nl:8443/fhir"), 10, "has user-info",
     1},
    {"endpoint user, no host", EP("https://@gp.example.nl/"), 10,
     "has user-info", 1},
    {"endpoint query", EP("https://gp.example.nl/fhir?x=1"), 10,
     "has a query or fragment ('?' or '#')", 1},
    {"endpoint empty query", EP("https://gp.example.nl/fhir?"), 10,
     "has a query or fragment", 1},
    {"endpoint fragment", EP("https://gp.example.nl/fhir#top"), 10,
     "has a query or fragment", 1},
    {"endpoint bad host", EP("https://gp_1.example.nl/"), 10,
     "has host \"gp_1.example.nl\", which is not a host name or IP address", 1},
    {"endpoint empty label", EP("https://gp..example.nl/"), 10,
     "has host \"gp..example.nl\"", 1},
    {"endpoint label with dash", EP("https://-gp.example.nl/"), 10,
     "has host \"-gp.example.nl\"", 1},
    {"endpoint blank", EP("https://gp.example.nl/a b"), 10,
     "has a blank, control or non-ASCII character", 1},
    {"endpoint backslash", EP("https://gp.example.nl\\@evil.example/"), 10,
     "has user-info", 1},
    {"endpoint backslash in path", EP("https://gp.example.nl/a\\b"), 10,
     "has '\\' in its path, which a URL does not allow", 1},
    {"endpoint bad escape", EP("https://gp.example.nl/a%2"), 10,
     "has '%' not followed by two hex digits", 1},
#undef EP
    {"peer for own URA", BASE "[peer 90000001]\nallow = push\n", 9,
     "[peer 90000001]: 90000001 is this gateway's own URA ([organisation] "
     "ura); remove the section",
     1},
    {"peer for own URA before organisation",
     "[peer 90000001]\nallow = push\n" BASE, 1,
     "[peer 90000001]: 90000001 is this gateway's own URA", 1},
    {"server_ura is own URA",
     BASE "[peer 90000002]\nendpoint = https://gp.example.nl/\n"
	  "server_ura = 90000001\n",
     9,
     "[peer 90000002] server_ura: 90000001 is this gateway's own URA "
     "([organisation] ura): deliveries would come back to it",
     1},
#define NT(v) BASE "[peer 90000002]\nallow = pull\nnotify = " v "\n"
    {"notify not https", NT("http://gp.example.nl/notify"), 11,
     "[peer 90000002] notify: \"http://gp.example.nl/notify\" is not an "
     "https:// URL",
     1},
    {"notify query", NT("https://gp.example.nl/notify?token=x"), 11,
     "has a query or fragment ('?' or '#'): the Task is posted to exactly "
     "this URL",
     1},
    {"notify user", NT("https://me@gp.example.nl/notify"), 11, "has user-info",
     1},
#undef NT
    {"notify with endpoint",
     BASE "[peer 90000002]\nendpoint = https://gw.example.nl/fhir\n"
	  "allow = pull\nnotify = https://gp.example.nl/notify\n",
     12,
     "[peer 90000002] notify: only for an organisation this gateway serves "
     "(no endpoint)",
     1},
    {"notify without pull",
     BASE "[peer 90000002]\nnotify = https://gp.example.nl/notify\n"
	  "allow = push\n",
     10, "[peer 90000002] notify: needs allow = pull", 1},
    {"bad address", BASE "[admin]\naddress = 127.0.0.1 9090\n", 10,
     "[admin] address: \"127.0.0.1 9090\" is not an IP address", 1},
    {"empty value", BASE "[process]\nuser =\n", 10,
     "[process] user: empty value", 1},
    {"missing required key", "[organisation]\nura = 90000001\n" LISTEN, 1,
     "[organisation] name: required key is missing", 1},
    {"missing required keys",
     ORG "\n[listen]\ncertificate = cert.pem\nkey = key.pem\n", 5,
     "[listen] trust: required key is missing", 2},
    {"missing section", ORG, 0,
     "missing section [listen] (required keys: certificate, key, trust, "
     "environment)",
     1},
    {"empty file", "", 0, "missing section [organisation]", 2},
    {"backoff inconsistent",
     BASE "[delivery]\nbackoff_max = 10s\nbackoff_min = 1m\n", 11,
     "[delivery] backoff_min (1m) is greater than backoff_max (10s)", 1},
    {"backoff_min above default max", BASE "[delivery]\nbackoff_min = 2h\n", 10,
     "backoff_min (2h) is greater than backoff_max (1h)", 1},
    {"backoff_min too small", BASE "[delivery]\nbackoff_min = 5ms\n", 10,
     "[delivery] backoff_min: \"5ms\" is out of range (10ms..1d)", 1},
    {"max_age too small", BASE "[delivery]\nmax_age = 500ms\n", 10,
     "[delivery] max_age: \"500ms\" is out of range (1s..365d)", 1},
    {"admin port clash", BASE "[admin]\nport = 8443\n", 10,
     "[admin] port: 8443 is also the [listen] port", 1},
    {"missing certificate",
     ORG "[listen]\ncertificate = nothere.pem\nkey = key.pem\n"
	 "trust = trust.pem\nenvironment = test\n",
     5, "[listen] certificate: ", 1},
    {"missing trust",
     ORG "[listen]\ncertificate = cert.pem\nkey = key.pem\n"
	 "trust = /nonexistent/ca.pem\nenvironment = test\n",
     7, "[listen] trust: /nonexistent/ca.pem: No such file or directory", 1},
    {"missing crl",
     ORG "[listen]\ncertificate = cert.pem\nkey = key.pem\n"
	 "trust = trust.pem\nenvironment = test\ncrl = nocrl.pem\n",
     9, "/nocrl.pem: No such file or directory", 1},
    {"duplicate listen", BASE "[listen]\nport = 1\n", 9,
     "duplicate section [listen] (first at line 4)", 1},
    {"crl is a directory",
     ORG "[listen]\ncertificate = cert.pem\nkey = key.pem\n"
	 "trust = trust.pem\nenvironment = test\ncrl = sub\n",
     9, "/sub is not a regular file", 1},
    {"missing chain", BASE "[signing]\nchain = chain2.pem\n", 10,
     "[signing] chain: ", 1},
    {"missing signing key", BASE "[signing]\nkey = nokey.pem\n", 10,
     "[signing] key: ", 1},
    {"key open to group",
     ORG "[listen]\ncertificate = cert.pem\nkey = open.key\n"
	 "trust = trust.pem\nenvironment = test\n",
     6, "open.key is accessible by group or others (chmod 600 ", 1},
    {"signing key open to group", BASE "[signing]\nkey = open.key\n", 10,
     "[signing] key: ", 1},
    {"key outside section", "ura = 90000001\n" BASE, 1,
     "key \"ura\" outside any section", 1},
    {"not key = value", BASE "[limits]\nmax_body 1M\n", 10,
     "expected 'key = value' or '[section]'", 1},
    {"no key name", BASE "[limits]\n= 1M\n", 10, "missing key name", 1},
    {"section without bracket", BASE "[limits\nmax_body = 1M\n", 9,
     "section header without ']'", 1},
    {"text after section", BASE "[limits] extra\n", 9,
     "unexpected text after section header [limits]", 1},
    {"NUL byte", BASE "[limits]\nmax_\0body = 1M\n", 10, "NUL byte", 1},
};

/* Some rows need bytes past a NUL: their length is taken from here. */
static size_t
case_len(const struct error_case *c)
{
	if (strcmp(c->name, "NUL byte") == 0)
		return strlen(BASE "[limits]\nmax_") + 1 +
		       strlen("body = 1M\n");
	return strlen(c->text);
}

static void
test_errors(void **state)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]);
	     i++) {
		const struct error_case *c = &error_cases[i];
		struct config *cfg = (struct config *)1;
		struct errs es;
		enum gw_err rc;
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		assert_int_equal(fwrite(c->text, 1, case_len(c), fp),
				 case_len(c));
		fclose(fp);
		memset(&es, 0, sizeof(es));
		rc = config_load(path, collect, &es, &cfg);
		if (rc != GW_CONFIG || cfg != NULL) {
			dump_errs(&es);
			fail_msg("%s: got %s (cfg %p), want %s and NULL",
				 c->name, gw_strerror(rc), (void *)cfg,
				 gw_strerror(GW_CONFIG));
		}
		if (es.n < 1) {
			fail_msg("%s: got no error, want line %d \"%s\"",
				 c->name, c->line, c->want);
		}
		if (es.e[0].line != c->line ||
		    strstr(es.e[0].msg, c->want) == NULL ||
		    strcmp(es.e[0].file, path) != 0) {
			dump_errs(&es);
			fail_msg("%s: got %s:%d: %s, want %s:%d: ...%s...",
				 c->name, es.e[0].file, es.e[0].line,
				 es.e[0].msg, path, c->line, c->want);
		}
		if (es.n != c->count) {
			dump_errs(&es);
			fail_msg("%s: got %d errors, want %d", c->name, es.n,
				 c->count);
		}
	}
}

/* Every problem in one file is reported, in order, with its line. */
static void
test_many_errors(void **state)
{
	static const struct {
		int line;
		const char *want;
	} want[] = {
	    {2, "[organisation] ura: \"123\" is not a URA number"},
	    {8, "[listen] environment: \"acceptance\" is not one of"},
	    {10, "[limits] max_body: \"10Q\" is not a size"},
	    {11, "[limits] max_body: duplicate key (first at line 10)"},
	    {12, "[limits] nope: unknown key"},
	    {13, "unknown section [extra]"},
	    {16, "[peer 90000002] allow: \"everything\" is not one of"},
	    {17, "duplicate section [peer 90000002] (first at line 15)"},
	    {18, "expected 'key = value'"},
	    {1, "[organisation] name: required key is missing"},
	    {5, "open.key is accessible by group or others (chmod 600 "},
	};
	struct config *cfg = (struct config *)1;
	struct errs es;
	enum gw_err rc = load_text("many.conf",
				   "[organisation]\n"		/* 1 */
				   "ura = 123\n"		/* 2 */
				   "[listen]\n"			/* 3 */
				   "certificate = cert.pem\n"	/* 4 */
				   "key = open.key\n"		/* 5 */
				   "trust = trust.pem\n"	/* 6 */
				   "# a comment\n"		/* 7 */
				   "environment = acceptance\n" /* 8 */
				   "[limits]\n"			/* 9 */
				   "max_body = 10Q\n"		/* 10 */
				   "max_body = 1M\n"		/* 11 */
				   "nope = 1\n"			/* 12 */
				   "[extra]\n"			/* 13 */
				   "whatever = 1\n"		/* 14 */
				   "[peer 90000002]\n"		/* 15 */
				   "allow = everything\n"	/* 16 */
				   "[peer 90000002]\n"		/* 17 */
				   "oops\n",			/* 18 */
				   &es, &cfg);

	assert_int_equal(rc, GW_CONFIG);
	assert_null(cfg);
	if (es.n != (int)(sizeof(want) / sizeof(want[0]))) {
		dump_errs(&es);
		fail_msg("got %d errors, want %d", es.n,
			 (int)(sizeof(want) / sizeof(want[0])));
	}
	for (int i = 0; i < es.n; i++) {
		if (es.e[i].line != want[i].line ||
		    strstr(es.e[i].msg, want[i].want) == NULL) {
			dump_errs(&es);
			fail_msg("error %d: got %d: %s, want %d: %s", i,
				 es.e[i].line, es.e[i].msg, want[i].line,
				 want[i].want);
		}
	}
}

static void
test_peers(void **state)
{
	struct config *cfg =
	    load_good(BASE "[peer 90000002]\n"
			   "name = Test Ziekenhuis\n"
			   "allow = push, validate\n"
			   "[peer 90000003]\n"
			   "allow = pull\n"
			   "endpoint = https://gp1.pzpgw.test:8443/\n"
			   "[peer 90000004]\n"
			   "[peer 90000005]\n"
			   "allow = push,pull , validate\n"
			   "server_ura = 90000099\n"
			   "concurrency = 16\n"
			   "resources = Patient, https://x.nl/SD/A|1.0\n"
			   "view = social\n"
			   "[delivery]\n"
			   "concurrency = 6\n");
	const struct config_peer *p;

	assert_u64("npeers", cfg->npeers, 4);
	p = config_peer_find(cfg, "90000002");
	assert_non_null(p);
	assert_str("name", p->name, "Test Ziekenhuis");
	assert_null(p->endpoint);
	assert_u64("allow", p->allow,
		   CONFIG_ALLOW_PUSH | CONFIG_ALLOW_VALIDATE);
	assert_str("server_ura default", p->server_ura, "90000002");
	/* the [delivery] default applies even when it comes later */
	assert_u64("concurrency default", p->concurrency, 6);
	assert_int_equal(p->line, 9);

	p = config_peer_find(cfg, "90000003");
	assert_non_null(p);
	assert_null(p->name);
	assert_str("endpoint", p->endpoint, "https://gp1.pzpgw.test:8443/");
	assert_u64("allow", p->allow, CONFIG_ALLOW_PULL);

	p = config_peer_find(cfg, "90000004");
	assert_non_null(p);
	assert_u64("allow empty", p->allow, 0);
	assert_null(p->resources);
	assert_str("view default", p->view, "full");
	assert_str("server_ura", p->server_ura, "90000004");

	p = config_peer_find(cfg, "90000005");
	assert_non_null(p);
	assert_u64("allow all", p->allow,
		   CONFIG_ALLOW_PUSH | CONFIG_ALLOW_PULL |
		       CONFIG_ALLOW_VALIDATE);
	assert_str("server_ura", p->server_ura, "90000099");
	assert_u64("concurrency", p->concurrency, 16);
	assert_str("resources", p->resources, "Patient, https://x.nl/SD/A|1.0");
	assert_str("view", p->view, "social");

	assert_null(config_peer_find(cfg, "90000001"));
	assert_null(config_peer_find(cfg, "9000000"));
	assert_null(config_peer_find(cfg, ""));
	config_free(cfg);
}

/* Endpoints of every accepted shape load unchanged. */
static void
test_endpoints_accepted(void **state)
{
	static const char *const good[] = {
	    "https://gp.example.nl",
	    "https://gp.example.nl/",
	    "HTTPS://GP.Example.NL:8443/fhir/r4",
	    "https://127.0.0.1:9/fhir",
	    "https://[::1]:8443/fhir",
	    "https://[2001:db8::1]/",
	    "https://[::ffff:192.0.2.1]:1/",
	    "https://gp-1.example.nl:65535/a/b%20c/~x_y.z/@v1;p=1",
	    "https://localhost",
	};
	char text[1024];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct config *cfg;

		snprintf(text, sizeof(text),
			 BASE "[peer 90000002]\nendpoint = %s\n", good[i]);
		cfg = load_good(text);
		assert_str("endpoint", cfg->peers[0].endpoint, good[i]);
		config_free(cfg);
	}
}

/* Make tmpdir/rel a directory with exactly mode. */
static void
make_dir(const char *rel, mode_t mode)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	if (mkdir(path, 0700) != 0 || chmod(path, mode) != 0)
		fail_msg("cannot make %s", path);
}

static void
remove_path(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	if (remove(path) != 0)
		fail_msg("cannot remove %s", path);
}

/*
 * The configuration, the files it names and the directories holding them
 * must be writable by their owner only (sshd StrictModes); directories
 * further up must not be world-writable unless sticky, like /tmp.
 */
static void
test_writers(void **state)
{
	static const struct {
		const char *name;
		const char *listen_key; /* [listen] key = */
		const char *dir;	/* NULL when it must load */
		const char *where;	/* "holding it" or "above it" */
		const char *mode;
	} cases[] = {
	    {"key in a private directory", "priv/key.pem", NULL, NULL, NULL},
	    {"key directory group-writable", "gw/key.pem", "gw", "holding it",
	     "0770"},
	    {"key directory world-writable", "ww/key.pem", "ww", "holding it",
	     "0757"},
	    {"key directory sticky and world-writable", "st/key.pem", "st",
	     "holding it", "1777"},
	    {"sticky directory above the key's", "st/priv/key.pem", NULL, NULL,
	     NULL},
	    {"world-writable directory above the key's", "ww/priv/key.pem",
	     "ww", "above it", "0757"},
	    {"group-writable directory above the key's", "gw/priv/key.pem",
	     NULL, NULL, NULL},
	};
	char text[1024], want[2048], path[512];

	make_dir("priv", 0700);
	make_dir("gw", 0770);
	make_dir("gw/priv", 0700);
	make_dir("ww", 0757);
	make_dir("ww/priv", 0700);
	make_dir("st", 01777);
	make_dir("st/priv", 0700);
	write_file("priv/key.pem", "k\n", 0600);
	write_file("gw/key.pem", "k\n", 0600);
	write_file("gw/priv/key.pem", "k\n", 0600);
	write_file("ww/key.pem", "k\n", 0600);
	write_file("ww/priv/key.pem", "k\n", 0600);
	write_file("st/key.pem", "k\n", 0600);
	write_file("st/priv/key.pem", "k\n", 0600);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = NULL;
		struct errs es;
		enum gw_err rc;

		snprintf(text, sizeof(text),
			 ORG "[listen]\ncertificate = cert.pem\nkey = %s\n"
			     "trust = trust.pem\nenvironment = test\n",
			 cases[i].listen_key);
		rc = load_text("good.conf", text, &es, &cfg);
		config_free(cfg);
		if (cases[i].dir == NULL) {
			if (rc != GW_OK || es.n != 0) {
				dump_errs(&es);
				fail_msg("%s: got %s, want ok", cases[i].name,
					 gw_strerror(rc));
			}
			continue;
		}
		snprintf(want, sizeof(want),
			 "[listen] key: directory %s/%s %s is writable by "
			 "group or others (mode %s; chmod go-w %s/%s)",
			 realdir, cases[i].dir, cases[i].where, cases[i].mode,
			 realdir, cases[i].dir);
		if (rc != GW_CONFIG || es.n != 1 || es.e[0].line != 6 ||
		    strcmp(es.e[0].msg, want) != 0) {
			dump_errs(&es);
			fail_msg("%s: got %s with %d errors, want line 6 "
				 "\"%s\"",
				 cases[i].name, gw_strerror(rc), es.n, want);
		}
	}

	/* The trust anchors count as much as the key: a group-writable
	 * trust file is refused, and so is the configuration itself. */
	{
		struct config *cfg = NULL;
		struct errs es;

		write_file("priv/trust.pem", "t\n", 0664);
		load_text("good.conf",
			  ORG
			  "[listen]\ncertificate = cert.pem\nkey = key.pem\n"
			  "trust = priv/trust.pem\nenvironment = test\n",
			  &es, &cfg);
		snprintf(want, sizeof(want),
			 "[listen] trust: %s/priv/trust.pem is writable by "
			 "group or others (mode 0664; chmod go-w "
			 "%s/priv/trust.pem)",
			 realdir, realdir);
		if (cfg != NULL || es.n != 1 || es.e[0].line != 7 ||
		    strcmp(es.e[0].msg, want) != 0) {
			dump_errs(&es);
			fail_msg("trust: want line 7 \"%s\"", want);
		}
	}
	for (int mode = 0; mode < 2; mode++) {
		struct config *cfg = NULL;
		struct errs es;

		write_file("good.conf", BASE, mode == 0 ? 0666 : 0620);
		snprintf(path, sizeof(path), "%s/good.conf", tmpdir);
		memset(&es, 0, sizeof(es));
		assert_int_equal(config_load(path, collect, &es, &cfg),
				 GW_CONFIG);
		assert_null(cfg);
		snprintf(want, sizeof(want),
			 "%s/good.conf is writable by group or others (mode "
			 "%s; chmod go-w %s/good.conf)",
			 realdir, mode == 0 ? "0666" : "0620", realdir);
		if (es.n != 1 || es.e[0].line != 0 ||
		    strcmp(es.e[0].msg, want) != 0) {
			dump_errs(&es);
			fail_msg("config mode: want line 0 \"%s\"", want);
		}
	}
	/* A configuration in a group-writable directory: reported once,
	 * for the file, although the key is there too. */
	{
		struct config *cfg = NULL;
		struct errs es;

		write_file("gw/cert.pem", "c\n", 0644);
		write_file("gw/trust.pem", "t\n", 0644);
		write_file("gw/good.conf", BASE, 0644);
		snprintf(path, sizeof(path), "%s/gw/good.conf", tmpdir);
		memset(&es, 0, sizeof(es));
		assert_int_equal(config_load(path, collect, &es, &cfg),
				 GW_CONFIG);
		snprintf(want, sizeof(want),
			 "directory %s/gw holding it is writable by group or "
			 "others (mode 0770; chmod go-w %s/gw)",
			 realdir, realdir);
		if (es.n != 1 || es.e[0].line != 0 ||
		    strcmp(es.e[0].msg, want) != 0) {
			dump_errs(&es);
			fail_msg("config directory: want line 0 \"%s\"", want);
		}
	}
	static const char *const made[] = {"priv/key.pem",
					   "priv/trust.pem",
					   "gw/key.pem",
					   "gw/cert.pem",
					   "gw/trust.pem",
					   "gw/good.conf",
					   "gw/priv/key.pem",
					   "ww/key.pem",
					   "ww/priv/key.pem",
					   "ww/priv",
					   "st/key.pem",
					   "st/priv/key.pem",
					   "priv",
					   "gw/priv",
					   "gw",
					   "ww",
					   "st/priv",
					   "st"};
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		remove_path(made[i]);
}

/*
 * environment = production refuses a certificate of its own with the UZI
 * test policy, presented or signing; the dev PKI makes both kinds.
 */
static void
test_production_certificate(void **state)
{
	const char *src = getenv("PZPGW_SRCDIR");
	char cmd[1024], want[1024], text[1024];
	struct config *cfg = NULL;
	struct errs es;

	if (src == NULL)
		fail_msg("set PZPGW_SRCDIR: the test runs certs/dev-pki.sh");
	snprintf(cmd, sizeof(cmd),
		 "sh '%s/certs/dev-pki.sh' '%s/pki' --extras >/dev/null", src,
		 tmpdir);
	assert_int_equal(system(cmd), 0);

	/* production, the test-policy gateway.crt: line 5 */
	load_text("bad.conf",
		  ORG "[listen]\ncertificate = pki/gateway.crt\n"
		      "key = pki/gateway.key\ntrust = pki/uzi-server-ca.pem\n"
		      "environment = production\n",
		  &es, &cfg);
	snprintf(
	    want, sizeof(want),
	    "[listen] certificate: %s/pki/gateway.crt carries the UZI test "
	    "policy 2.16.528.1.1007.99.212, and [listen] environment = "
	    "production (line 8) refuses a test certificate",
	    realdir);
	if (cfg != NULL || es.n != 1 || es.e[0].line != 5 ||
	    strcmp(es.e[0].msg, want) != 0) {
		dump_errs(&es);
		fail_msg("listen: want line 5 \"%s\"", want);
	}

	/* the same in the test environment, and production with prod.crt */
	config_free(load_good(ORG "[listen]\ncertificate = pki/gateway.crt\n"
				  "key = pki/gateway.key\n"
				  "trust = pki/uzi-server-ca.pem\n"
				  "environment = test\n"));
#define PROD_LISTEN                                                            \
	ORG "[listen]\ncertificate = pki/prod.crt\nkey = pki/prod.key\n"       \
	    "trust = pki/uzi-server-ca.pem\nenvironment = production\n"
	config_free(load_good(PROD_LISTEN));

	/* a test-policy signing certificate in production: its own line */
	snprintf(text, sizeof(text), "%s",
		 PROD_LISTEN "[signing]\nkey = pki/hospital.key\n"
			     "certificate = pki/hospital.crt\n");
	load_text("bad.conf", text, &es, &cfg);
	snprintf(want, sizeof(want),
		 "[signing] certificate: %s/pki/hospital.crt carries the UZI "
		 "test policy 2.16.528.1.1007.99.212",
		 realdir);
	if (cfg != NULL || es.n != 1 || es.e[0].line != 11 ||
	    strstr(es.e[0].msg, want) == NULL) {
		dump_errs(&es);
		fail_msg("signing: want line 11 \"%s...\"", want);
	}
#undef PROD_LISTEN
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/pki'", tmpdir);
	assert_int_equal(system(cmd), 0);
}

/* Many peers: the array grows; the file stays under the size limit. */
/* [peer] notify: the URL kept as written, with its line; none by
 * default. */
static void
test_peer_notify(void **state)
{
	struct config *cfg =
	    load_good(BASE "[peer 90000003]\n"
			   "allow = pull\n"
			   "notify = https://gp1.pzpgw.test:9443/pzp/notify\n"
			   "[peer 90000004]\n"
			   "allow = pull\n");
	const struct config_peer *p = config_peer_find(cfg, "90000003");

	assert_non_null(p);
	assert_str("notify", p->notify,
		   "https://gp1.pzpgw.test:9443/pzp/notify");
	assert_int_equal(p->notify_line, 11);
	p = config_peer_find(cfg, "90000004");
	assert_non_null(p);
	assert_null(p->notify);
	assert_int_equal(p->notify_line, 0);
	config_free(cfg);
}

static void
test_many_peers(void **state)
{
	size_t n = 300, cap = strlen(BASE) + n * 40 + 1, used;
	char *text = malloc(cap);
	struct config *cfg;
	char ura[16];

	assert_non_null(text);
	used = (size_t)snprintf(text, cap, "%s", BASE);
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(text + used, cap - used,
					 "[peer %08zu]\nallow = pull\n",
					 10000000 + i);
	cfg = load_good(text);
	free(text);
	assert_u64("npeers", cfg->npeers, n);
	for (size_t i = 0; i < n; i += 37) {
		snprintf(ura, sizeof(ura), "%08zu", 10000000 + i);
		assert_non_null(config_peer_find(cfg, ura));
	}
	config_free(cfg);
}

static void
test_long_line(void **state)
{
	size_t len = 5000;
	char *text = malloc(len + 256);
	struct config *cfg = (struct config *)1;
	struct errs es;
	enum gw_err rc;
	size_t used =
	    (size_t)snprintf(text, len + 256, BASE "[process]\nuser = ");

	memset(text + used, 'u', len);
	snprintf(text + used + len, 256, "\nlog = nothing\n");
	rc = load_text("bad.conf", text, &es, &cfg);
	free(text);
	assert_int_equal(rc, GW_CONFIG);
	assert_null(cfg);
	/* the long line is one error, and counting goes on after it */
	if (es.n != 2 || es.e[0].line != 10 ||
	    strstr(es.e[0].msg, "line longer than") == NULL ||
	    es.e[1].line != 11 ||
	    strstr(es.e[1].msg, "[process] log") == NULL) {
		dump_errs(&es);
		fail_msg("got %d errors, want 10: line longer..., 11: log",
			 es.n);
	}

	/* a long value below the limit is fine */
	text = malloc(2048);
	used = (size_t)snprintf(text, 2048, BASE "[process]\nschemas = /");
	memset(text + used, 's', 900);
	snprintf(text + used + 900, 64, "\n");
	cfg = load_good(text);
	free(text);
	assert_u64("schemas length", strlen(cfg->schemas), 901);
	config_free(cfg);
}

static void
test_open_errors(void **state)
{
	struct config *cfg = (struct config *)1;
	struct errs es;
	char path[512];

	memset(&es, 0, sizeof(es));
	snprintf(path, sizeof(path), "%s/absent.conf", tmpdir);
	assert_int_equal(config_load(path, collect, &es, &cfg), GW_NOTFOUND);
	assert_null(cfg);
	assert_int_equal(es.n, 1);
	assert_int_equal(es.e[0].line, 0);
	assert_string_equal(es.e[0].file, path);

	cfg = (struct config *)1;
	memset(&es, 0, sizeof(es));
	assert_int_equal(config_load(tmpdir, collect, &es, &cfg), GW_IO);
	assert_null(cfg);
	assert_int_equal(es.n, 1);
	assert_int_equal(es.e[0].line, 0);

	/* no callback: still refused */
	cfg = (struct config *)1;
	write_file("bad.conf", ORG, 0644);
	snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
	assert_int_equal(config_load(path, NULL, NULL, &cfg), GW_CONFIG);
	assert_null(cfg);
}

/* A file that exists but cannot be read (only meaningful when not root). */
static void
test_unreadable_file(void **state)
{
	struct config *cfg = (struct config *)1;
	struct errs es;
	char path[1024];
	enum gw_err rc;

	if (geteuid() == 0)
		skip();
	path_in_dir(path, sizeof(path), "trust.pem");
	assert_int_equal(chmod(path, 0), 0);
	rc = load_text("bad.conf", BASE, &es, &cfg);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(rc, GW_CONFIG);
	assert_null(cfg);
	if (es.n != 1 || es.e[0].line != 7 ||
	    strstr(es.e[0].msg, "[listen] trust: ") == NULL ||
	    strstr(es.e[0].msg, "Permission denied") == NULL) {
		dump_errs(&es);
		fail_msg(
		    "got %d errors, want 7: [listen] trust: ... Permission "
		    "denied",
		    es.n);
	}
}

/* The shipped example names every key; only its files may be absent. */
static void
test_packaged_example(void **state)
{
	const char *src = getenv("PZPGW_SRCDIR");
	struct config *cfg = NULL;
	struct errs es;
	char path[4096];
	enum gw_err rc;

	if (src == NULL)
		skip();
	snprintf(path, sizeof(path), "%s/packaging/pzpgw.conf", src);
	memset(&es, 0, sizeof(es));
	rc = config_load(path, collect, &es, &cfg);
	for (int i = 0; i < es.n; i++) {
		if (es.e[i].line <= 0 ||
		    strstr(es.e[i].msg, ": /etc/pzpgw/") == NULL ||
		    strstr(es.e[i].msg, "No such file") == NULL) {
			dump_errs(&es);
			fail_msg("error %d: got %d: %s, want only absent "
				 "/etc/pzpgw files",
				 i, es.e[i].line, es.e[i].msg);
		}
	}
	if (rc == GW_OK) {
		assert_int_equal(cfg->environment, CONFIG_ENV_PRODUCTION);
		config_free(cfg);
	} else {
		assert_int_equal(rc, GW_CONFIG);
		assert_true(es.n >= 3);
	}
}

static void
test_free_and_names(void **state)
{
	config_free(NULL);
	assert_string_equal(config_env_name(CONFIG_ENV_TEST), "test");
	assert_string_equal(config_env_name(CONFIG_ENV_PRODUCTION),
			    "production");
	assert_null(config_peer_find(NULL, "90000001"));
}

/* The endpoint route warnings and check-config's route errors (issue
 * 13): which sections they name, host:port compared case-insensitively
 * with the default port made explicit. */
static void
test_route_checks(void **state)
{
	static const struct {
		const char *name, *peers;
		int warnings, errors;
		const char *want; /* in the first warning or error */
	} cases[] = {
	    {"fhir base", "[peer 90000003]\nendpoint = https://b.nl/fhir/\n", 0,
	     0, NULL},
	    {"root path", "[peer 90000003]\nendpoint = https://b.nl:8443/\n", 1,
	     0,
	     "deliveries go to https://b.nl:8443/$process-message, which a "
	     "pzpgw gateway answers 404 (write https://b.nl:8443/fhir)"},
	    {"no path", "[peer 90000003]\nendpoint = https://B.NL\n", 1, 0,
	     "(write https://b.nl:443/fhir)"},
	    {"ipv6 no port", "[peer 90000003]\nendpoint = https://[::1]/x\n", 1,
	     0, "(write https://[::1]:443/fhir)"},
	    {"shared host, default port spelled out",
	     "[peer 90000009]\nrelay = *\nendpoint = https://b.nl/fhir\n"
	     "[peer 90000003]\nendpoint = https://B.nl:443/fhir\n",
	     1, 0,
	     "[peer 90000003] (line 12) server_ura: 90000003, the section's "
	     "own URA, while [peer 90000009] (line 9) expects 90000009"},
	    {"shared host, set right",
	     "[peer 90000009]\nrelay = *\nendpoint = https://b.nl/fhir\n"
	     "[peer 90000003]\nendpoint = https://b.nl/fhir\n"
	     "server_ura = 90000009\n",
	     0, 0, NULL},
	    {"other port is another server",
	     "[peer 90000009]\nendpoint = https://b.nl/fhir\n"
	     "[peer 90000003]\nendpoint = https://b.nl:8443/fhir\n",
	     0, 0, NULL},
	    {"two practices, one host, no relay: both named",
	     "[peer 90000003]\nendpoint = https://b.nl/fhir\n"
	     "[peer 90000004]\nendpoint = https://b.nl/fhir\n",
	     2, 0, "[peer 90000003] (line 9) server_ura"},
	    {"pull and endpoint",
	     "[peer 90000003]\nallow = pull\nendpoint = https://b.nl/fhir\n", 0,
	     1, "[peer 90000003]: allow = pull and an endpoint"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[1024];
		struct errs w, e;
		struct config *cfg;
		int nw, ne;

		snprintf(text, sizeof(text), BASE "%s", cases[i].peers);
		cfg = load_good(text);
		memset(&w, 0, sizeof(w));
		memset(&e, 0, sizeof(e));
		nw = config_warnings(cfg, collect, &w);
		ne = config_check_routes(cfg, collect, &e);
		if (nw != cases[i].warnings || ne != cases[i].errors) {
			dump_errs(&w);
			dump_errs(&e);
			fail_msg("%s: got %d warnings %d errors, want %d %d",
				 cases[i].name, nw, ne, cases[i].warnings,
				 cases[i].errors);
		}
		if (cases[i].want != NULL &&
		    strstr(ne > 0 ? e.e[0].msg : w.e[0].msg, cases[i].want) ==
			NULL)
			fail_msg(
			    "%s: got \"%s\", want \"...%s...\"", cases[i].name,
			    ne > 0 ? e.e[0].msg : w.e[0].msg, cases[i].want);
		if (ne > 0)
			assert_int_equal(e.e[0].line, 9);
		config_free(cfg);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_syntax_accepted),
	    cmocka_unit_test(test_relative_paths),
	    cmocka_unit_test(test_pkcs11_key),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_many_errors),
	    cmocka_unit_test(test_peers),
	    cmocka_unit_test(test_peer_notify),
	    cmocka_unit_test(test_endpoints_accepted),
	    cmocka_unit_test(test_writers),
	    cmocka_unit_test(test_production_certificate),
	    cmocka_unit_test(test_many_peers),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_unreadable_file),
	    cmocka_unit_test(test_packaged_example),
	    cmocka_unit_test(test_free_and_names),
	    cmocka_unit_test(test_route_checks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
