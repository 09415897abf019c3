/*
 * The console's front: routes, the token and session cookies, CSRF
 * checks, security headers, embedded assets, and the hand-off of each page
 * to a console worker (workpool.h) and its answer back on the loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "buf.h"
#include "config.h"
#include "console_assets.h"
#include "console_impl.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "rules.h"
#include "util.h"
#include "validate.h"

/* The session cookie (a random id: CSRF tokens hang on it) and the login
 * cookie (derived from the token, so a new token logs everyone out). */
#define SID_COOKIE  "pzc_sid"
#define AUTH_COOKIE "pzc_auth"

static const char csp[] =
    "default-src 'none'; style-src 'self'; script-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'";

enum gw_err
console_init(struct console *c)
{
	if (RAND_bytes(c->secret, sizeof(c->secret)) != 1)
		return GW_IO;
	return GW_OK;
}

void
console_cleanup(struct console *c)
{
	OPENSSL_cleanse(c->token, sizeof(c->token));
	OPENSSL_cleanse(c->secret, sizeof(c->secret));
	c->token_len = 0;
}

/* ---- workers ---- */

static enum gw_err
worker_init(void *arg, void **wctx)
{
	const struct console *c = arg;
	struct console_worker *w = calloc(1, sizeof(*w));

	*wctx = NULL;
	if (w == NULL)
		return GW_NOMEM;
	for (int i = 0; i < 2; i++)
		if (c->rules[i] != NULL &&
		    validate_ctx_new(c->rules[i], &w->v[i]) != GW_OK) {
			validate_ctx_free(w->v[0]);
			free(w);
			return GW_NOMEM;
		}
	*wctx = w;
	return GW_OK;
}

static void
worker_cleanup(void *arg, void *wctx)
{
	struct console_worker *w = wctx;

	(void)arg;
	if (w == NULL)
		return;
	store_free(w->ro);
	store_free(w->rw);
	validate_ctx_free(w->v[0]);
	validate_ctx_free(w->v[1]);
	free(w);
}

static void
worker_run(struct workpool_job *link, void *wctx)
{
	struct console_worker *w = wctx;

	/* who 0 is the calling thread on Linux (nice is per thread there);
	 * once, on the worker's own thread. */
	if (!w->niced) {
		if (setpriority(PRIO_PROCESS, 0, CONSOLE_NICE) != 0)
			log_warn("event=console_nice_failed");
		w->niced = true;
	}
	console_page_run(WORKPOOL_JOB(link, struct console_job, link), w);
}

static void
job_free(struct console_job *j)
{
	if (j == NULL)
		return;
	free(j->text);
	free(j->out);
	free(j);
}

static void add_headers(struct http_req *req);

/* Loop thread: answer the job's request and free the job. */
static void
job_answer(struct console_job *j)
{
	struct http_req *req = j->req;

	add_headers(req);
	if (j->location[0] != '\0') {
		http_req_add_header(req, "Location", j->location);
		http_reply(req, 303, "text/plain; charset=utf-8", "", 0);
	} else if (j->out != NULL) {
		http_reply(req, j->status, j->ctype, j->out, j->out_len);
	} else {
		static const char oom[] = "out of memory\n";

		http_reply(req, 503, "text/plain; charset=utf-8", oom,
			   sizeof(oom) - 1);
	}
	job_free(j);
}

static void
worker_finish(struct workpool_job *link, void *arg)
{
	struct console *c = arg;
	struct console_job *j = WORKPOOL_JOB(link, struct console_job, link);

	if (j->kick && c->kick != NULL)
		c->kick(c->kick_arg);
	job_answer(j);
}

static const struct workpool_ops worker_ops = {
    .worker_init = worker_init,
    .worker_cleanup = worker_cleanup,
    .run = worker_run,
    .finish = worker_finish,
    .name = "pzpgw-console",
};

enum gw_err
console_workers_start(struct console *c, struct event_base *base, unsigned n)
{
	if (c->pool != NULL)
		return GW_OK;
	if (n > CONSOLE_MAX_WORKERS)
		n = CONSOLE_MAX_WORKERS;
	metrics_describe("pzpgw_console_requests_total", METRICS_COUNTER,
			 "Console pages handed to a worker, by page.");
	return workpool_start(&c->pool, base, n < 1 ? 1 : n, &worker_ops, c);
}

void
console_workers_stop(struct console *c)
{
	workpool_stop(c->pool);
	c->pool = NULL;
}

/* ---- token, cookies, CSRF ---- */

/*
 * Read the token from path when it changed (first line, blanks around
 * it dropped). False when it cannot be read or is empty: then nobody gets
 * in (fail closed).
 */
static bool
token_load(struct console *c, const char *path)
{
	struct stat sb;
	long long mt;
	FILE *fp;
	char line[sizeof(c->token) + 2];
	size_t n;

	if (stat(path, &sb) != 0)
		return false;
	mt = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
	if (strcmp(c->token_path, path) == 0 && mt == c->token_mtime_ns &&
	    c->token_len > 0)
		return true;
	OPENSSL_cleanse(c->token, sizeof(c->token));
	c->token_len = 0;
	c->token_path[0] = '\0';
	if ((fp = fopen(path, "r")) == NULL)
		return false;
	line[0] = '\0';
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	n = strcspn(line, "\r\n");
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(c->token)) {
		OPENSSL_cleanse(line, sizeof(line));
		log_warnx("event=console_token_unusable path=%s reason=%s",
			  path, n == 0 ? "empty" : "too_long");
		return false;
	}
	memcpy(c->token, line, n);
	c->token[n] = '\0';
	c->token_len = n;
	OPENSSL_cleanse(line, sizeof(line));
	util_strlcpy(c->token_path, path, sizeof(c->token_path));
	c->token_mtime_ns = mt;
	return true;
}

/* True when the n bytes at a equal the m bytes at b, in time that does
 * not depend on where they differ (both are hashed first, so the length
 * leaks nothing either). */
static bool
secret_equal(const void *a, size_t n, const void *b, size_t m)
{
	unsigned char ha[SHA256_DIGEST_LENGTH], hb[SHA256_DIGEST_LENGTH];

	SHA256(a, n, ha);
	SHA256(b, m, hb);
	return CRYPTO_memcmp(ha, hb, sizeof(ha)) == 0 && n == m;
}

/* Hex HMAC-SHA256 under key of msg, cut to 32 bytes (64 hex digits). */
static void
mac_hex(const void *key, size_t keylen, const char *msg, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
		 strlen(msg), md, &mdlen) == NULL ||
	    mdlen < 32) {
		/* Never a valid token: no request can match it. */
		memset(out, 'x', 64);
		out[64] = '\0';
		return;
	}
	util_hex(md, 32, out);
	OPENSSL_cleanse(md, sizeof(md));
}

/* The value of cookie name of the request into out (console_cookie). */
static bool
cookie_get(struct http_req *req, const char *name, char *out, size_t n)
{
	return console_cookie(http_req_header(req, "Cookie"), name, out, n);
}

/* True when the request carries the token (Bearer or login cookie). */
static bool
token_given(struct console *c, struct http_req *req)
{
	const char *auth = http_req_header(req, "Authorization");
	char want[65], got[80];

	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
		const char *t = auth + 7;

		while (*t == ' ')
			t++;
		return secret_equal(t, strlen(t), c->token, c->token_len);
	}
	if (!cookie_get(req, AUTH_COOKIE, got, sizeof(got)))
		return false;
	mac_hex(c->token, c->token_len, "pzpgw console login", want);
	return secret_equal(got, strlen(got), want, 64);
}

static bool
is_loopback_addr(const char *a)
{
	return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
	       strncmp(a, "::ffff:127.", 11) == 0;
}

static void
add_headers(struct http_req *req)
{
	http_req_add_header(req, "Content-Security-Policy", csp);
	http_req_add_header(req, "Referrer-Policy", "no-referrer");
	http_req_add_header(req, "X-Frame-Options", "DENY");
}

/* ---- requests ---- */

static bool
parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

static bool
is_ura(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= STORE_URA_MAX && strspn(s, "0123456789") == n;
}

/* A message id as the store makes them (UUID-like). */
static bool
is_id(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= STORE_ID_MAX &&
	       strspn(s, "0123456789abcdefABCDEF-") == n;
}

/* Answer a short page now (loop thread). */
static void
reply_message(struct console_job *j, int status, const char *title,
	      const char *text)
{
	j->status = status;
	console_page_message(j, title, text);
	job_answer(j);
}

static void
reply_asset(struct http_req *req, const char *name)
{
	for (const struct console_asset *a = console_assets; a->name != NULL;
	     a++) {
		if (strcmp(a->name, name) != 0)
			continue;
		add_headers(req);
		http_reply(req, 200, a->type, (const char *)a->data, a->len);
		return;
	}
	add_headers(req);
	http_reply(req, 404, "text/plain; charset=utf-8", "no such asset\n",
		   14);
}

/* Receivers the deliverer holds, from its gauge in the metrics text. */
static void
read_held(struct console_job *j)
{
	static const char key[] = "pzpgw_receiver_held{";
	struct buf b;
	const char *p;

	buf_init(&b, 4u << 20);
	if (metrics_render(&b) != GW_OK || buf_addc(&b, '\0') != GW_OK) {
		buf_cleanup(&b);
		return;
	}
	for (p = strstr(b.data, key); p != NULL && j->nheld < CONSOLE_HELD_MAX;
	     p = strstr(p + 1, key)) {
		const char *r = strstr(p, "receiver=\"");
		const char *eol = strchr(p, '\n');
		const char *sp = strstr(p, "} ");
		char ura[STORE_URA_MAX + 1];
		size_t n;

		if (r == NULL || eol == NULL || sp == NULL || r > eol ||
		    sp > eol)
			continue;
		r += strlen("receiver=\"");
		n = strcspn(r, "\"");
		if (n == 0 || n > STORE_URA_MAX || strtod(sp + 2, NULL) < 0.5)
			continue;
		memcpy(ura, r, n);
		ura[n] = '\0';
		util_strlcpy(j->held[j->nheld++], ura, sizeof(ura));
	}
	buf_cleanup(&b);
}

/* YYYY-MM-DD (UTC midnight) in ms. */
static bool
parse_date(const char *s, int64_t *ms)
{
	int y, m, d, n = 0;

	if (strlen(s) != 10 ||
	    sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
	    y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
		return false;
	*ms = util_days_from_civil(y, m, d) * 86400000LL;
	return true;
}

/* The period filters of the usage page: ?from=YYYY-MM-DD&to=...&by=. */
static bool
usage_args(struct console_job *j, struct http_req *req)
{
	const char *from = http_req_query(req, "from");
	const char *to = http_req_query(req, "to");
	const char *by = http_req_query(req, "by");

	j->to = 0;
	j->from = j->now - 30LL * 86400000LL;
	j->by = REPORT_BY_DAY;
	if (from != NULL && from[0] != '\0' && !parse_date(from, &j->from))
		return false;
	if (to != NULL && to[0] != '\0' && !parse_date(to, &j->to))
		return false;
	if (by == NULL || by[0] == '\0' || strcmp(by, "day") == 0)
		j->by = REPORT_BY_DAY;
	else if (strcmp(by, "hour") == 0)
		j->by = REPORT_BY_HOUR;
	else if (strcmp(by, "week") == 0)
		j->by = REPORT_BY_WEEK;
	else if (strcmp(by, "month") == 0)
		j->by = REPORT_BY_MONTH;
	else
		return false;
	return true;
}

static const char *const action_names[] = {
    [STORE_RETRY] = "retry",
    [STORE_HOLD] = "hold",
    [STORE_RELEASE] = "release",
    [STORE_REPLAY] = "replay",
};

/* The queue and row arguments; false on a malformed one. */
static bool
queue_args(struct console_job *j, struct http_req *req, const char *form)
{
	char v[STORE_ID_MAX + 1];
	unsigned long long n;
	const char *q;

	j->state = -1;
	if (form != NULL) {
		if (console_form_field(form, "id", j->id, sizeof(j->id),
				       NULL) &&
		    !is_id(j->id))
			return false;
		if (console_form_field(form, "receiver", j->receiver,
				       sizeof(j->receiver), NULL) &&
		    j->receiver[0] != '\0' && !is_ura(j->receiver))
			return false;
		if (!console_form_field(form, "action", v, sizeof(v), NULL))
			return false;
	} else {
		q = http_req_query(req, "id");
		if (q != NULL && q[0] != '\0') {
			if (!is_id(q))
				return false;
			util_strlcpy(j->id, q, sizeof(j->id));
		}
		q = http_req_query(req, "receiver");
		if (q != NULL && q[0] != '\0') {
			if (!is_ura(q))
				return false;
			util_strlcpy(j->receiver, q, sizeof(j->receiver));
		}
		q = http_req_query(req, "state");
		if (q != NULL && q[0] != '\0') {
			enum store_state st;

			if (store_state_parse(q, &st) != GW_OK)
				return false;
			j->state = (int)st;
		}
		q = http_req_query(req, "age");
		if (q != NULL && q[0] != '\0') {
			if (!parse_uint(q, 24 * 3650, &n))
				return false;
			j->age_h = (unsigned)n;
		}
		q = http_req_query(req, "after");
		if (q != NULL && q[0] != '\0') {
			if (!parse_uint(q, INT64_MAX, &n))
				return false;
			j->after_seq = (int64_t)n;
		}
		q = http_req_query(req, "action");
		util_strlcpy(v, q != NULL ? q : "", sizeof(v));
	}
	j->action = -1;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(action_names); i++)
		if (strcmp(v, action_names[i]) == 0)
			j->action = (int)i;
	return true;
}

static const char *
page_name(enum console_page p)
{
	static const char *const names[] = {
	    [CONSOLE_OVERVIEW] = "overview",
	    [CONSOLE_QUEUE] = "queue",
	    [CONSOLE_ROW] = "row",
	    [CONSOLE_CONFIRM] = "confirm",
	    [CONSOLE_ACT] = "act",
	    [CONSOLE_USAGE] = "usage",
	    [CONSOLE_USAGE_CSV] = "usage_csv",
	    [CONSOLE_PLAYGROUND] = "playground",
	};

	return names[p];
}

/* Set-Cookie for a new session id; false without randomness. */
static bool
new_session(struct http_req *req, char sid[33])
{
	unsigned char r[16];
	char hdr[128];

	if (RAND_bytes(r, sizeof(r)) != 1)
		return false;
	util_hex(r, sizeof(r), sid);
	snprintf(hdr, sizeof(hdr),
		 SID_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict", sid);
	http_req_add_header(req, "Set-Cookie", hdr);
	return true;
}

static bool
sid_ok(const char *s)
{
	return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* POST /login: the token from the form; a cookie when it is right. */
static void
do_login(struct console *c, struct console_job *j, const char *form)
{
	struct http_req *req = j->req;
	char tok[sizeof(c->token) + 1], cookie[160], mac[65];
	size_t n = 0;
	bool ok;

	ok = console_form_field(form, "token", tok, sizeof(tok), &n) &&
	     secret_equal(tok, n, c->token, c->token_len);
	OPENSSL_cleanse(tok, sizeof(tok));
	if (!ok) {
		log_warnx("event=console_login_refused id=%s from=%s", j->reqid,
			  j->who);
		j->status = 401;
		console_page_login(j, "That is not the console's token.");
		job_answer(j);
		return;
	}
	mac_hex(c->token, c->token_len, "pzpgw console login", mac);
	snprintf(cookie, sizeof(cookie),
		 AUTH_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict", mac);
	http_req_add_header(req, "Set-Cookie", cookie);
	log_info("event=console_login id=%s from=%s", j->reqid, j->who);
	util_strlcpy(j->location, "/", sizeof(j->location));
	job_answer(j);
}

void
console_handle(struct http_req *req, void *arg)
{
	struct console *c = arg;
	const struct config *cfg = http_req_config(req);
	const char *path = http_req_path(req);
	const char *method = http_req_method(req);
	bool post = strcmp(method, "POST") == 0;
	char addr[64], sid[80];
	const char *form = NULL;
	size_t form_len = 0;
	struct console_job *j;
	bool token_set = cfg->admin_token_file != NULL;

	if (strncmp(path, "/assets/", 8) == 0) {
		reply_asset(req, path + 8);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		http_reply(req, 503, "text/plain; charset=utf-8",
			   "out of memory\n", 14);
		return;
	}
	j->c = c;
	j->req = req;
	j->cfg = cfg;
	j->now = util_wall_ms();
	j->deadline =
	    (int64_t)util_mono_ms() + (int64_t)cfg->admin_time_limit_ms;
	j->status = 200;
	j->ctype = "text/html; charset=utf-8";
	util_strlcpy(j->reqid, http_req_id(req), sizeof(j->reqid));
	http_req_peer_addr(req, addr, sizeof(addr));
	if (post)
		form = http_req_body(req, &form_len);
	if (form == NULL)
		form = "";
	/* The session: CSRF tokens are bound to it. */
	if (!cookie_get(req, SID_COOKIE, sid, sizeof(sid)) || !sid_ok(sid)) {
		if (post) {
			snprintf(j->who, sizeof(j->who), "%s", addr);
			reply_message(j, 403, "Refused",
				      "This form came without the console's "
				      "session cookie. Load the page again "
				      "and resend it.");
			return;
		}
		if (!new_session(req, sid)) {
			reply_message(j, 503, "Busy", "No randomness.");
			return;
		}
	}
	mac_hex(c->secret, sizeof(c->secret), sid, j->csrf);
	if (post) {
		char got[80];

		if (!console_form_field(form, "csrf", got, sizeof(got), NULL) ||
		    !secret_equal(got, strlen(got), j->csrf, 64)) {
			log_warnx("event=console_csrf_refused id=%s from=%s "
				  "path=%s",
				  j->reqid, addr, path);
			reply_message(j, 403, "Refused",
				      "This form's CSRF token is missing or "
				      "wrong. Load the page again and resend "
				      "it.");
			return;
		}
	}
	/* Who is asking. */
	if (token_set) {
		if (!token_load(c, cfg->admin_token_file)) {
			reply_message(
			    j, 503, "Console closed",
			    "The console's token file cannot be read; "
			    "see the daemon's log.");
			return;
		}
		snprintf(j->who, sizeof(j->who), "%s token", addr);
		if (strcmp(path, "/login") == 0) {
			if (post) {
				do_login(c, j, form);
				return;
			}
			console_page_login(j, NULL);
			job_answer(j);
			return;
		}
		if (!token_given(c, req)) {
			http_req_add_header(req, "WWW-Authenticate",
					    "Bearer realm=\"pzpgw console\"");
			j->status = 401;
			console_page_login(j, NULL);
			job_answer(j);
			return;
		}
		j->authed = true;
	} else {
		snprintf(j->who, sizeof(j->who), "%s loopback", addr);
		if (!is_loopback_addr(addr)) {
			reply_message(
			    j, 403, "Refused",
			    "The console answers other addresses than "
			    "loopback only with a token: set [admin] "
			    "token_file.");
			return;
		}
		if (strcmp(path, "/login") == 0) {
			util_strlcpy(j->location, "/", sizeof(j->location));
			job_answer(j);
			return;
		}
	}
	if (strcmp(path, "/logout") == 0 && post) {
		http_req_add_header(req, "Set-Cookie",
				    AUTH_COOKIE "=; Path=/; HttpOnly; "
						"SameSite=Strict; Max-Age=0");
		util_strlcpy(j->location, token_set ? "/login" : "/",
			     sizeof(j->location));
		job_answer(j);
		return;
	}
	/* The page. */
	if (strcmp(path, "/") == 0) {
		j->page = CONSOLE_OVERVIEW;
		read_held(j);
	} else if (strcmp(path, "/queue") == 0) {
		j->page = CONSOLE_QUEUE;
	} else if (strcmp(path, "/queue/row") == 0) {
		j->page = CONSOLE_ROW;
	} else if (strcmp(path, "/queue/act") == 0) {
		j->page = post ? CONSOLE_ACT : CONSOLE_CONFIRM;
	} else if (strcmp(path, "/usage") == 0) {
		j->page = CONSOLE_USAGE;
	} else if (strcmp(path, "/usage.csv") == 0) {
		j->page = CONSOLE_USAGE_CSV;
	} else if (strcmp(path, "/playground") == 0) {
		if (!post) {
			console_page_playground_form(j);
			job_answer(j);
			return;
		}
		j->page = CONSOLE_PLAYGROUND;
	} else {
		reply_message(j, 404, "Not found", "No such console page.");
		return;
	}
	switch (j->page) {
	case CONSOLE_QUEUE:
	case CONSOLE_ROW:
	case CONSOLE_CONFIRM:
	case CONSOLE_ACT:
		if (!queue_args(j, req, post ? form : NULL) ||
		    ((j->page == CONSOLE_ROW || j->page == CONSOLE_CONFIRM ||
		      j->page == CONSOLE_ACT) &&
		     j->id[0] == '\0') ||
		    ((j->page == CONSOLE_CONFIRM || j->page == CONSOLE_ACT) &&
		     j->action < 0)) {
			reply_message(j, 400, "Bad request",
				      "A filter or argument of this page is "
				      "not valid.");
			return;
		}
		break;
	case CONSOLE_USAGE:
	case CONSOLE_USAGE_CSV:
		if (!usage_args(j, req)) {
			reply_message(j, 400, "Bad request",
				      "from and to are dates (YYYY-MM-DD) "
				      "and by is hour, day, week or month.");
			return;
		}
		break;
	case CONSOLE_PLAYGROUND: {
		char v[8] = "";

		if ((j->text = malloc(CONSOLE_TEXT_MAX + 1)) == NULL ||
		    !console_form_field(form, "resource", j->text,
					CONSOLE_TEXT_MAX + 1, &j->text_len)) {
			reply_message(j, 400, "Bad request",
				      "Paste a resource (at most 64 KiB) in "
				      "the form.");
			return;
		}
		(void)console_form_field(form, "version", v, sizeof(v), NULL);
		j->stu3 = strcmp(v, "stu3") == 0;
		break;
	}
	default:
		break;
	}
	if (c->pool == NULL ||
	    workpool_submit(c->pool, &j->link, cfg->max_pending) != GW_OK) {
		http_req_add_header(req, "Retry-After", "5");
		reply_message(j, 503, "Busy",
			      "The console is busy; try again in a few "
			      "seconds.");
		return;
	}
	{
		char labels[64];

		labels[0] = '\0';
		metrics_label(labels, sizeof(labels), "page",
			      page_name(j->page));
		metrics_add("pzpgw_console_requests_total", labels, 1);
	}
	http_req_defer(req);
}
