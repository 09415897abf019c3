/*
 * The pull API's requests: permission, the job handed to a worker (each
 * with its own store reader), the audit record of every request and the
 * answer, sent from the loop thread. The FHIR work is in provider_run.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "provider.h"
#include "provider_impl.h"
#include "rules.h"
#include "util.h"
#include "workpool.h"

/* ---- setup ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum gw_err
provider_init(struct provider *p, const struct rules_set *r4)
{
	const struct rules_structure *st;
	size_t cap = 0, k = 0;
	char **v = NULL, **nv;

	memset(p, 0, sizeof(*p));
	p->r4 = r4;
	if (RAND_bytes(p->link_key, sizeof(p->link_key)) != 1)
		return GW_CRYPTO;
	/* The concrete R4 resources of the base definitions. */
	for (size_t i = 0; r4 != NULL && (st = rules_structure_at(r4, i));
	     i++) {
		if (st->kind == NULL || strcmp(st->kind, "resource") != 0 ||
		    st->abstract || st->constraint || st->type == NULL ||
		    st->fhir != RULES_R4)
			continue;
		if (k + 2 > cap) {
			cap = cap == 0 ? 256 : cap * 2;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
		}
		if ((v[k] = strdup(st->type)) == NULL)
			goto nomem;
		k++;
	}
	if (v == NULL && (v = calloc(1, sizeof(*v))) == NULL)
		return GW_NOMEM;
	qsort(v, k, sizeof(*v), cmp_str);
	/* Drop duplicates (a type defined twice). */
	for (size_t i = 1; i < k;) {
		if (strcmp(v[i], v[i - 1]) == 0) {
			free(v[i]);
			memmove(&v[i], &v[i + 1], (k - i - 1) * sizeof(*v));
			k--;
		} else {
			i++;
		}
	}
	v[k] = NULL;
	p->types = v;
	p->ntypes = k;
	return GW_OK;
nomem:
	for (size_t i = 0; i < k; i++)
		free(v[i]);
	free(v);
	return GW_NOMEM;
}

void
provider_cleanup(struct provider *p)
{
	provider_workers_stop(p);
	for (size_t i = 0; p->types != NULL && i < p->ntypes; i++)
		free(p->types[i]);
	free(p->types);
	OPENSSL_cleanse(p->link_key, sizeof(p->link_key));
	memset(p, 0, sizeof(*p));
}

/* ---- jobs ---- */

static void
job_free(struct provider_job *j)
{
	if (j == NULL)
		return;
	free(j->path);
	free(j->form);
	free(j->resources);
	free(j->view);
	buf_cleanup(&j->out);
	free(j);
}

/* Loop thread: record the request in the audit trail, then answer it.
 * A request that cannot be recorded is not answered with data. */
static void
job_finish(struct provider *p, struct provider_job *j)
{
	struct http_req *req = j->req;
	enum gw_err err = GW_TEMP;

	j->audit.status = j->status;
	j->audit.at = util_wall_ms();
	if (p->store != NULL)
		err = store_submit_audit(p->store, &j->audit);
	if (err != GW_OK) {
		log_warnx("event=audit_refused id=%s peer=%s error=\"%s\"",
			  j->audit.request_id, j->ura, gw_strerror(err));
		metrics_add("pzpgw_pull_audit_refused_total", "", 1);
		http_reply_error(req, POLICY_BUSY, NULL,
				 "the audit trail cannot record this request "
				 "now; nothing is answered unrecorded, retry "
				 "later");
		job_free(j);
		return;
	}
	if (j->etag[0] != '\0')
		http_req_add_header(req, "ETag", j->etag);
	if (j->last_modified[0] != '\0')
		http_req_add_header(req, "Last-Modified", j->last_modified);
	if (j->retry_after != NULL)
		http_req_add_header(req, "Retry-After", j->retry_after);
	/* On the request's own line (id, peer, status are there): one
	   write per request on this thread, not two. */
	http_req_log_note(req, "pull=%s count=%u", j->audit.interaction,
			  j->audit.count);
	{
		char labels[128] = "", st[8];

		/* Both appended to labels. */
		snprintf(st, sizeof(st), "%d", j->status);
		metrics_label(labels, sizeof(labels), "interaction",
			      j->audit.interaction);
		metrics_label(labels, sizeof(labels), "status", st);
		metrics_add("pzpgw_pull_requests_total", labels, 1);
	}
	if (j->cached > 0)
		metrics_add("pzpgw_pull_resolve_cached_total", "", j->cached);
	http_reply(req, j->status,
		   j->out_stu3 ? (j->xml ? "application/fhir+xml; "
					   "fhirVersion=3.0; charset=utf-8"
					 : "application/fhir+json; "
					   "fhirVersion=3.0; charset=utf-8")
		   : j->xml    ? "application/fhir+xml; charset=utf-8"
			       : "application/fhir+json; charset=utf-8",
		   j->out.data != NULL ? j->out.data : "", j->out.len);
	job_free(j);
}

/* ---- workers (workpool.h) ---- */

/* A worker's context: its own store reader and cache. */
struct worker {
	struct store_reader *r;
	struct provider_cache *cache;
};

static enum gw_err
worker_init(void *arg, void **wctx)
{
	const struct provider *p = arg;
	struct worker *w = calloc(1, sizeof(*w));
	enum gw_err err;

	*wctx = NULL;
	if (w == NULL)
		return GW_NOMEM;
	if ((err = store_reader_open(p->store, &w->r)) != GW_OK) {
		free(w);
		return err;
	}
	/* Without one, jobs resolve every time. */
	w->cache = provider_cache_new();
	*wctx = w;
	return GW_OK;
}

static void
worker_cleanup(void *arg, void *wctx)
{
	struct worker *w = wctx;

	(void)arg;
	if (w == NULL)
		return;
	provider_cache_free(w->cache);
	store_reader_free(w->r);
	free(w);
}

static void
worker_run(struct workpool_job *link, void *wctx)
{
	struct worker *w = wctx;

	provider_run(WORKPOOL_JOB(link, struct provider_job, link), w->r,
		     w->cache);
}

static void
worker_finish(struct workpool_job *link, void *arg)
{
	job_finish(arg, WORKPOOL_JOB(link, struct provider_job, link));
}

static const struct workpool_ops worker_ops = {
    .worker_init = worker_init,
    .worker_cleanup = worker_cleanup,
    .run = worker_run,
    .finish = worker_finish,
    .name = "pzpgw-pull",
};

enum gw_err
provider_workers_start(struct provider *p, struct event_base *base, unsigned n)
{
	enum gw_err err;

	if (p->pool != NULL || p->store == NULL)
		return p->pool != NULL ? GW_OK : GW_INVALID;
	if (n > PROVIDER_MAX_WORKERS)
		n = PROVIDER_MAX_WORKERS;
	if ((err = workpool_start(&p->pool, base, n, &worker_ops, p)) != GW_OK)
		return err;
	metrics_describe("pzpgw_pull_requests_total", METRICS_COUNTER,
			 "Pull API requests answered, by interaction and "
			 "status.");
	metrics_describe("pzpgw_pull_resolve_cached_total", METRICS_COUNTER,
			 "References of chained search parameters resolved "
			 "from a worker's cache instead of the store.");
	metrics_describe("pzpgw_pull_audit_refused_total", METRICS_COUNTER,
			 "Pull API requests answered 503 because the audit "
			 "trail could not take their record.");
	return GW_OK;
}

void
provider_workers_stop(struct provider *p)
{
	workpool_stop(p->pool);
	p->pool = NULL;
}

/* ---- requests ---- */

/* The interaction a path names, for the audit record of a refusal. */
static const char *
interaction_of(const char *path, bool post)
{
	size_t segs = 0;
	const char *s;

	if (post)
		return "search-type";
	if (strcmp(path, "/fhir/_history") == 0)
		return "history-system";
	for (s = path + 6; *s != '\0'; s++)
		if (*s == '/')
			segs++;
	if (segs == 0)
		return "search-type";
	if (segs == 1)
		return strstr(path, "/_history") != NULL ? "history-type"
							 : "read";
	return segs == 2 ? "history-instance" : "vread";
}

/* "https://host/fhir" from the Host header when it is a plain host[:port],
 * else from the listener's address. */
static void
base_url(struct http_req *req, char *out, size_t n)
{
	const char *host = http_req_header(req, "Host");
	const struct config *cfg = http_req_config(req);
	bool ok = host != NULL && *host != '\0' && strlen(host) < 256;

	for (const char *s = host; ok && *s != '\0'; s++)
		ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		     (*s >= '0' && *s <= '9') || strchr(".-:[]", *s) != NULL;
	if (ok)
		snprintf(out, n, "https://%s/fhir", host);
	else
		snprintf(out, n, "https://%s:%u/fhir", cfg->listen_address,
			 cfg->listen_port);
}

/* The audit record's who and what for req. */
static void
audit_init(struct store_audit_rec *a, struct http_req *req, const char *path,
	   const char *query, bool post)
{
	const struct tls_peer *peer = http_req_peer(req);

	memset(a, 0, sizeof(*a));
	if (peer != NULL) {
		util_strlcpy(a->ura, peer->ura, sizeof(a->ura));
		util_strlcpy(a->cert_serial, peer->serial,
			     sizeof(a->cert_serial));
		util_strlcpy(a->cert_issuer, peer->issuer,
			     sizeof(a->cert_issuer));
	}
	util_strlcpy(a->interaction, interaction_of(path, post),
		     sizeof(a->interaction));
	/* Path and parameters, never a body other than a search form. */
	snprintf(a->query, sizeof(a->query), "%s%s%s", path,
		 *query != '\0' ? "?" : "", query);
	util_strlcpy(a->request_id, http_req_id(req), sizeof(a->request_id));
}

/* Answer a refusal decided on the loop thread, recorded like any other
 * answer. */
static void
refuse(struct provider *p, struct http_req *req, enum policy_kind kind,
       const char *path, const char *query, bool post, const char *msg)
{
	const struct policy_answer *a = policy_answer(kind);
	struct store_audit_rec rec;

	audit_init(&rec, req, path, query, post);
	rec.status = a->status;
	rec.at = util_wall_ms();
	if (p->store == NULL || store_submit_audit(p->store, &rec) != GW_OK)
		kind = POLICY_BUSY;
	http_reply_error(req, kind, NULL, "%s", msg);
}

void
provider_handle(struct http_req *req, void *arg)
{
	struct provider *p = arg;
	const struct config *cfg = http_req_config(req);
	const struct tls_peer *peer = http_req_peer(req);
	const struct config_peer *cp;
	const char *path = http_req_path(req);
	const char *query = http_req_query_string(req);
	const char *prefer = http_req_header(req, "Prefer");
	const char *accept = http_req_header(req, "Accept");
	bool post = strcmp(http_req_method(req), "POST") == 0;
	struct provider_job *j = NULL;
	struct store_reader *r = NULL;
	const char *body = NULL;
	size_t body_len = 0, qlen;

	if (peer == NULL) {
		http_reply_error(req, POLICY_FORBIDDEN, NULL,
				 "no organisation");
		return;
	}
	cp = config_peer_find(cfg, peer->ura);
	if (cp == NULL || !(cp->allow & CONFIG_ALLOW_PULL)) {
		log_warnx("event=forbidden id=%s peer=%s endpoint=pull",
			  http_req_id(req), peer->ura);
		refuse(p, req, POLICY_FORBIDDEN, path, query, post,
		       "this organisation is not allowed to pull care plans "
		       "from this gateway");
		return;
	}
	if (p->store == NULL) {
		refuse(p, req, POLICY_STORE_REFUSED, path, query, post,
		       "the gateway's store is unavailable; retry later");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		goto nomem;
	j->req = req;
	j->prov = p;
	j->post = post;
	if (post)
		body = http_req_body(req, &body_len);
	qlen = strlen(query);
	if ((j->path = strdup(path)) == NULL ||
	    (j->form = malloc(qlen + body_len + 2)) == NULL)
		goto nomem;
	/* POST _search: the parameters of the URL and of the form count
	 * together (FHIR R4 3.1.1.0.3). */
	memcpy(j->form, query, qlen);
	if (body_len > 0) {
		size_t at = qlen;

		if (qlen > 0)
			j->form[at++] = '&';
		memcpy(j->form + at, body, body_len);
		j->form[at + body_len] = '\0';
	} else {
		j->form[qlen] = '\0';
	}
	if ((cp->resources != NULL &&
	     (j->resources = strdup(cp->resources)) == NULL) ||
	    (cp->view != NULL && (j->view = strdup(cp->view)) == NULL))
		goto nomem;
	util_strlcpy(j->accept, accept != NULL ? accept : "",
		     sizeof(j->accept));
	j->stu3 = config_fhir_stu3(cp, accept);
	j->lenient = prefer != NULL && strstr(prefer, "handling=lenient");
	base_url(req, j->base, sizeof(j->base));
	util_strlcpy(j->ura, peer->ura, sizeof(j->ura));
	audit_init(&j->audit, req, path, j->form, post);
	buf_init(&j->out, PROVIDER_OUT_MAX);
	if (p->pool != NULL) {
		/* A flood of searches waits in no unbounded queue. The
		 * worker never touches req, and finish runs on this thread
		 * after we return, so deferring after the submit is safe. */
		if (workpool_submit(p->pool, &j->link, cfg->max_pending) !=
		    GW_OK) {
			job_free(j);
			refuse(p, req, POLICY_BUSY, path, query, post,
			       "the gateway is busy; retry later");
			return;
		}
		http_req_defer(req);
		return;
	}
	/* No workers (they failed to start): a reader of its own for this
	 * request. */
	http_req_defer(req);
	if (store_reader_open(p->store, &r) != GW_OK)
		r = NULL;
	provider_run(j, r, NULL);
	store_reader_free(r);
	job_finish(p, j);
	return;
nomem:
	job_free(j);
	http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
}
