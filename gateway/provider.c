/*
 * The pull API's requests: permission, the job handed to a worker (each
 * with its own store reader), the audit record of every request and the
 * answer, sent from the loop thread. The FHIR work is in provider_run.c.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

struct provider_worker {
	struct provider_pool *pool;
	struct store_reader *reader;
	pthread_t thread;
	bool started;
};

struct provider_pool {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t idle; /* no job queued or running */
	struct provider_job *todo, *todo_tail;
	struct provider_job *done, *done_tail;
	unsigned queued; /* jobs in todo */
	unsigned busy;
	bool stop;
	int fds[2]; /* workers -> loop thread: jobs are done */
	struct event *ev;
	struct provider *prov;
	unsigned nworkers;
	struct provider_worker workers[PROVIDER_MAX_WORKERS];
};

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
	log_info("event=pull id=%s peer=%s interaction=%s status=%d count=%u",
		 j->audit.request_id, j->ura, j->audit.interaction, j->status,
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
	http_reply(req, j->status,
		   j->xml ? "application/fhir+xml; charset=utf-8"
			  : "application/fhir+json; charset=utf-8",
		   j->out.data != NULL ? j->out.data : "", j->out.len);
	job_free(j);
}

static void
pool_collect(struct provider_pool *pool)
{
	struct provider_job *j, *next;

	pthread_mutex_lock(&pool->mu);
	j = pool->done;
	pool->done = pool->done_tail = NULL;
	pthread_mutex_unlock(&pool->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		job_finish(pool->prov, j);
	}
}

static void
on_jobs_done(evutil_socket_t fd, short what, void *arg)
{
	char drain[64];

	/* Drain the wake-ups before taking the list: a job finished after
	 * this point writes again. */
	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pool_collect(arg);
}

static void *
worker_main(void *arg)
{
	struct provider_worker *w = arg;
	struct provider_pool *pool = w->pool;
	struct provider_job *j;
	bool wake;

	pthread_mutex_lock(&pool->mu);
	for (;;) {
		while (pool->todo == NULL && !pool->stop)
			pthread_cond_wait(&pool->work, &pool->mu);
		if (pool->todo == NULL)
			break;
		j = pool->todo;
		if ((pool->todo = j->next) == NULL)
			pool->todo_tail = NULL;
		j->next = NULL;
		pool->queued--;
		pool->busy++;
		pthread_mutex_unlock(&pool->mu);

		provider_run(j, w->reader);

		pthread_mutex_lock(&pool->mu);
		pool->busy--;
		wake = pool->done == NULL;
		if (pool->done_tail != NULL)
			pool->done_tail->next = j;
		else
			pool->done = j;
		pool->done_tail = j;
		if (pool->todo == NULL && pool->busy == 0)
			pthread_cond_broadcast(&pool->idle);
		if (wake) {
			/* Non-blocking; a full pipe already wakes the loop. */
			ssize_t n = write(pool->fds[1], "j", 1);

			(void)n;
		}
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

enum gw_err
provider_workers_start(struct provider *p, struct event_base *base, unsigned n)
{
	struct provider_pool *pool;
	enum gw_err err = GW_NOMEM;

	if (p->pool != NULL || p->store == NULL)
		return p->pool != NULL ? GW_OK : GW_INVALID;
	if (n > PROVIDER_MAX_WORKERS)
		n = PROVIDER_MAX_WORKERS;
	if (n == 0)
		n = 1;
	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return GW_NOMEM;
	pool->prov = p;
	pool->fds[0] = pool->fds[1] = -1;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->work, NULL);
	pthread_cond_init(&pool->idle, NULL);
	p->pool = pool;
	if (pipe(pool->fds) != 0 ||
	    fcntl(pool->fds[0], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(pool->fds[1], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(pool->fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(pool->fds[1], F_SETFD, FD_CLOEXEC) != 0) {
		err = GW_IO;
		goto fail;
	}
	pool->ev = event_new(base, pool->fds[0], EV_READ | EV_PERSIST,
			     on_jobs_done, pool);
	if (pool->ev == NULL || event_add(pool->ev, NULL) != 0)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		struct provider_worker *w = &pool->workers[i];

		w->pool = pool;
		pool->nworkers = i + 1;
		if ((err = store_reader_open(p->store, &w->reader)) != GW_OK)
			goto fail;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			err = GW_IO;
			goto fail;
		}
		w->started = true;
	}
	metrics_describe("pzpgw_pull_requests_total", METRICS_COUNTER,
			 "Pull API requests answered, by interaction and "
			 "status.");
	metrics_describe("pzpgw_pull_audit_refused_total", METRICS_COUNTER,
			 "Pull API requests answered 503 because the audit "
			 "trail could not take their record.");
	return GW_OK;
fail:
	provider_workers_stop(p);
	return err;
}

void
provider_workers_stop(struct provider *p)
{
	struct provider_pool *pool = p->pool;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mu);
	while (pool->todo != NULL || pool->busy > 0)
		pthread_cond_wait(&pool->idle, &pool->mu);
	pool->stop = true;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->mu);
	pool_collect(pool);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct provider_worker *w = &pool->workers[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		store_reader_free(w->reader);
	}
	if (pool->ev != NULL)
		event_free(pool->ev);
	if (pool->fds[0] >= 0)
		close(pool->fds[0]);
	if (pool->fds[1] >= 0)
		close(pool->fds[1]);
	pthread_cond_destroy(&pool->idle);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
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
	if (p->pool != NULL) {
		unsigned queued;

		pthread_mutex_lock(&p->pool->mu);
		queued = p->pool->queued;
		pthread_mutex_unlock(&p->pool->mu);
		/* A flood of searches waits in no unbounded queue. */
		if (queued >= cfg->max_pending) {
			refuse(p, req, POLICY_BUSY, path, query, post,
			       "the gateway is busy; retry later");
			return;
		}
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
	j->lenient = prefer != NULL && strstr(prefer, "handling=lenient");
	base_url(req, j->base, sizeof(j->base));
	util_strlcpy(j->ura, peer->ura, sizeof(j->ura));
	audit_init(&j->audit, req, path, j->form, post);
	buf_init(&j->out, PROVIDER_OUT_MAX);
	http_req_defer(req);
	if (p->pool == NULL) {
		/* No workers (they failed to start): a reader of its own
		   for this request. */
		struct store_reader *r = NULL;

		if (store_reader_open(p->store, &r) != GW_OK)
			r = NULL;
		provider_run(j, r);
		store_reader_free(r);
		job_finish(p, j);
		return;
	}
	pthread_mutex_lock(&p->pool->mu);
	if (p->pool->todo_tail != NULL)
		p->pool->todo_tail->next = j;
	else
		p->pool->todo = j;
	p->pool->todo_tail = j;
	p->pool->queued++;
	pthread_cond_signal(&p->pool->work);
	pthread_mutex_unlock(&p->pool->mu);
	return;
nomem:
	job_free(j);
	http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
}
