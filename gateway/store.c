/*
 * Backend-neutral store front: request checks, the group-commit writer
 * thread with its completion pipe, backoff policy, disk-space check and
 * queue metrics. Database work is delegated to a struct store_ops.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

#define STORE_QUEUE_MAX	   4096
#define STORE_BATCH_MAX	   256
#define STORE_BATCH_METRIC "pzpgw_store_commit_batch_size"

/* The deep copy of a request's index (store_accept.index): one
 * allocation holding the arrays and every string. */
struct store_job_index {
	struct store_index *idx;
	size_t n;
};

/* One submitted accept: a deep copy of the request and its result. */
/* The strings of a store_accept a job copies (store_job_new). */
#define STORE_JOB_STRS 11

struct store_job {
	struct store_job *next;
	struct store_accept req;    /* points into the copies below */
	char *strs[STORE_JOB_STRS]; /* id, sender, system, value, patient,
				    version, jws, sha256, answer body,
				    report, event */
	void *doc;
	char **receivers;
	size_t nreceivers;
	struct store_job_index *index; /* copy of req.index */
	struct store_audit_rec *audit; /* req.audit's copy */
	store_done_fn cb;
	void *arg;
	struct store_result res;
	size_t batch; /* size of the commit it was part of */
	bool first;   /* first job of that commit: record the batch */
	/* Copies of req.notices (store_job_copy_notices): the array, and
	   per notice its id, receiver, sha256 and document. */
	struct store_notice *notices;
	char **notice_mem;
	size_t nnotices;
};

/* One submitted audit record. */
struct store_audit_job {
	struct store_audit_job *next;
	struct store_audit_rec rec;
};

/* Audit records per audit transaction of the writer. */
#define STORE_AUDIT_BATCH 1024
/* Pause of the writer before it tries failed audit records again. */
#define STORE_AUDIT_RETRY_MS 100
/* How long the writer gathers audit records (when nothing else is
 * queued) before committing them: the pull API answers without waiting
 * for the record's commit anyway, and each commit makes every reader
 * start its next read on an empty page cache; one commit per request
 * cost about a sixth of a search's CPU time (writer plus readers). */
#define STORE_AUDIT_GATHER_MS 10

struct store {
	const struct store_ops *ops;
	void *conn; /* caller's (loop) thread */
	struct store_options opts;
	char *path;
	char *dir;
	store_free_space_fn free_fn;
	void *free_arg;

	/* Writer thread and its queues, all under mu. */
	pthread_mutex_t mu;
	pthread_cond_t work; /* jobs queued or stop */
	pthread_cond_t idle; /* a commit finished */
	pthread_t thread;
	bool started;
	bool stop;
	void *wconn;			   /* the writer thread's connection */
	struct store_job *q_head, *q_tail; /* waiting for a commit */
	struct store_job *d_head, *d_tail; /* committed, not dispatched */
	size_t outstanding;		   /* submitted, not dispatched */
	size_t uncommitted;		   /* submitted, not committed */
	bool signalled;			   /* a byte waits in the pipe */
	int pipe_r, pipe_w;
	const struct store_accept **reqs; /* writer scratch, batch_max */
	struct store_result *res;
	/* Audit records (store_submit_audit), also under mu: queued, and
	   queued plus being written (flush waits for it to reach 0). */
	struct store_audit_job *a_head, *a_tail;
	size_t audit_queued;
	size_t audit_unwritten;
	uint64_t audit_first_ms;       /* the oldest queued: util_mono_ms */
	unsigned flushing;	       /* store_flush callers waiting */
	struct store_audit_rec *arecs; /* writer scratch, STORE_AUDIT_BATCH */
	uint64_t audit_said;	       /* util_mono_ms of the last failure
					  log line */
	unsigned audit_failures;       /* failed commits since then */
	/* Validation findings (store_count_finding), under mu: nfind keys
	   in find, found through find_slots (index + 1, 0 empty); the
	   writer moves them to fwrite and writes them. find_writes counts
	   its attempts (store_flush waits for one). All allocated at the
	   first finding. */
	struct store_finding *find, *fwrite;
	uint32_t *find_slots;
	size_t nfind;
	uint64_t find_first_ms; /* util_mono_ms of the oldest waiting */
	uint64_t find_writes;
	uint64_t find_said;	 /* util_mono_ms of the last failure log line */
	uint64_t find_full_said; /* and of the last "counts dropped" line */

	/* Upkeep thread (opts.background_upkeep), stopped by stop. */
	pthread_cond_t upkeep_cv;
	pthread_t upkeep_thread;
	void *uconn;
	/* Retention asked for (store_retention, under mu): the cut-offs,
	   taken by the upkeep thread, which deletes a batch at a time. */
	int64_t ret_before, ret_in_before;
	/* Expiry asked for (store_expire_later, under mu): the cut-off, and
	   the rows the upkeep thread expired since the caller last looked. */
	int64_t exp_before, exp_now;
	size_t exp_done;
	bool ret_asked;
	bool exp_asked;
	bool upkeep_started;
	/* Whether the upkeep thread has read the queue counts (stats_v,
	   below) yet. */
	bool stats_have;
	/* The logical-id secret (store_index_secret), read at open. */
	bool has_secret;
	unsigned char secret[32];

	/* Latest file check (under mu), from whichever thread made it. */
	enum store_file_state file_state;

	/* A database server's last answer to the upkeep thread's ping
	   (store_reachable): whether it answered, and when
	   (util_mono_ms). */
	atomic_bool reach_ok;
	atomic_uint_fast64_t reach_at;

	/* store_res_generation: odd while store_prune_inbound runs. */
	atomic_uint_fast64_t res_gen;

	/* The queue counts the upkeep thread read last (store_stats_recent,
	   under mu). */
	struct store_stat *stats_v;
	size_t stats_n;

	/* Delivery results (finish) the database refused for a while
	   (connection lost): kept in order and written before the next
	   claim, so a row never stays in flight until the next start. Loop
	   thread only. */
	struct store_finish_job *fin_head, *fin_tail;
	size_t fin_n;

	/* PostgreSQL: owned copies of the connection string and the
	   password read from its file (opts points at them). */
	char *pg_url;
	char *pg_password;
};

/* One delivery result waiting to be written (store_finish). */
struct store_finish_job {
	struct store_finish_job *next;
	char id[STORE_ID_MAX + 1];
	char receiver[STORE_URA_MAX + 1];
	enum store_state to;
	int status;
	int64_t at;
	char *error;   /* heap or NULL */
	char *outcome; /* heap or NULL */
};

/* Results kept at most; past it the row waits for the next start's
 * recovery (it is retried then: at least once). */
#define STORE_FINISH_MAX 4096

static void store_finish_job_free(struct store_finish_job *j);
static void store_finish_flush(struct store *s);

/* A read connection of one thread (store_reader_open). */
struct store_reader {
	struct store *s;
	void *conn;
};

void
store_options_from_config(struct store_options *opts, const struct config *cfg)
{
	memset(opts, 0, sizeof(*opts));
	opts->path = cfg->store_path;
	opts->min_free = cfg->store_min_free;
	/* auto: a store may be made only where none was before; the marker
	   a store leaves beside itself says one was (store_marked). */
	opts->create = strcmp(cfg->store_create, "yes") == 0 ||
		       (strcmp(cfg->store_create, "auto") == 0 &&
			!store_marked(cfg->store_path));
	opts->relaxed_state = true;
	opts->background_upkeep = true;
	if (cfg->store_backend != NULL &&
	    strcmp(cfg->store_backend, "postgresql") == 0) {
		opts->pg_url = cfg->store_url;
		opts->pg_password_file = cfg->store_password_file;
		/* An attempt ends by its timeout (a claim takes only rows
		   it starts at once); the margin covers the claim-to-send
		   and finish-to-commit steps around it. */
		opts->lease_ms = (int64_t)cfg->delivery_timeout_ms + 5000;
		opts->node = cfg->node;
		opts->node_claim = true;
		opts->pg_wait_ms = STORE_PG_WAIT_MS;
		opts->pg_caller_wait_ms = STORE_PG_CALLER_WAIT_MS;
		/* No marker beside a database: an empty one is made unless
		   create = no (a wrong url is the operator's to see in the
		   log line naming the backend). */
		opts->create = strcmp(cfg->store_create, "no") != 0;
	}
}

/* Check the index of a request: one per distinct receiver, every entry
 * complete and within the store's limits. */
static enum gw_err
store_check_index(const struct store_accept *r)
{
	if (r->nindex > 0 && r->index == NULL)
		return GW_INVALID;
	for (size_t i = 0; i < r->nindex; i++) {
		const struct store_index *x = &r->index[i];

		if (x->receiver == NULL || !util_is_ura(x->receiver) ||
		    x->bsn == NULL || strlen(x->bsn) > STORE_BSN_MAX ||
		    x->sender == NULL ||
		    (x->sender[0] != '\0' && !util_is_ura(x->sender)) ||
		    (x->n > 0 && x->entries == NULL))
			return GW_INVALID;
		for (size_t j = 0; j < i; j++)
			if (strcmp(x->receiver, r->index[j].receiver) == 0)
				return GW_INVALID;
		for (size_t k = 0; k < x->n; k++) {
			const struct store_index_entry *e = &x->entries[k];

			if (e->type == NULL || e->id == NULL ||
			    e->key == NULL || e->json == NULL ||
			    e->type[0] == '\0' || e->id[0] == '\0' ||
			    strlen(e->type) > STORE_TYPE_MAX ||
			    strlen(e->id) > STORE_RID_MAX ||
			    strlen(e->key) > STORE_KEY_MAX)
				return GW_INVALID;
		}
	}
	return GW_OK;
}

/* The notices of r: inbound only, at most STORE_NOTICES_MAX, each with
 * an id, a URA (one notice per receiver) and a document. */
static enum gw_err
store_check_notices(const struct store_accept *r)
{
	size_t n;

	if (r->nnotices == 0)
		return GW_OK;
	if (r->notices == NULL || r->nnotices > STORE_NOTICES_MAX ||
	    r->direction != STORE_INBOUND)
		return GW_INVALID;
	for (size_t i = 0; i < r->nnotices; i++) {
		const struct store_notice *nt = &r->notices[i];

		if (nt->id == NULL || (n = strlen(nt->id)) == 0 ||
		    n > STORE_ID_MAX || strcmp(nt->id, r->id) == 0)
			return GW_INVALID;
		if (nt->receiver == NULL || !util_is_ura(nt->receiver))
			return GW_INVALID;
		if (nt->doc == NULL || nt->doc_len == 0 || nt->sha256 == NULL)
			return GW_INVALID;
		for (size_t j = 0; j < i; j++)
			if (strcmp(nt->receiver, r->notices[j].receiver) == 0 ||
			    strcmp(nt->id, r->notices[j].id) == 0)
				return GW_INVALID;
	}
	return GW_OK;
}

/* Whether every text field of rec is terminated within its array and
 * an interaction is named. */
static bool
store_audit_ok(const struct store_audit_rec *r)
{
	return memchr(r->ura, '\0', sizeof(r->ura)) != NULL &&
	       memchr(r->cert_serial, '\0', sizeof(r->cert_serial)) != NULL &&
	       memchr(r->cert_issuer, '\0', sizeof(r->cert_issuer)) != NULL &&
	       memchr(r->bsn, '\0', sizeof(r->bsn)) != NULL &&
	       memchr(r->interaction, '\0', sizeof(r->interaction)) != NULL &&
	       memchr(r->query, '\0', sizeof(r->query)) != NULL &&
	       memchr(r->request_id, '\0', sizeof(r->request_id)) != NULL &&
	       r->interaction[0] != '\0';
}

/* Check a request before it reaches the backend. */
static enum gw_err
store_check(const struct store_accept *r)
{
	size_t n;

	if (r->id == NULL || (n = strlen(r->id)) == 0 || n > STORE_ID_MAX)
		return GW_INVALID;
	if (r->direction != STORE_OUTBOUND && r->direction != STORE_INBOUND)
		return GW_INVALID; /* notices come with an accept, never alone */
	if (r->sender_ura == NULL || !util_is_ura(r->sender_ura))
		return GW_INVALID;
	if (r->bundle_value == NULL || r->bundle_value[0] == '\0' ||
	    strlen(r->bundle_value) > STORE_KEY_MAX)
		return GW_INVALID;
	if (r->bundle_system != NULL &&
	    strlen(r->bundle_system) > STORE_KEY_MAX)
		return GW_INVALID;
	if (r->patient_key == NULL || strlen(r->patient_key) > STORE_KEY_MAX)
		return GW_INVALID;
	if (r->fhir_version == NULL || r->sha256 == NULL)
		return GW_INVALID;
	if (r->doc == NULL || r->doc_len == 0)
		return GW_INVALID;
	if (r->direction == STORE_OUTBOUND && r->nreceivers == 0)
		return GW_INVALID;
	if (r->nreceivers > 0 && r->receivers == NULL)
		return GW_INVALID;
	for (size_t i = 0; i < r->nreceivers; i++) {
		if (r->receivers[i] == NULL || !util_is_ura(r->receivers[i]))
			return GW_INVALID;
		for (size_t j = 0; j < i; j++)
			if (strcmp(r->receivers[i], r->receivers[j]) == 0)
				return GW_INVALID;
	}
	if (r->naudit > 0 && r->audit == NULL)
		return GW_INVALID;
	for (size_t i = 0; i < r->naudit; i++)
		if (!store_audit_ok(&r->audit[i]))
			return GW_INVALID;
	/* Only the store makes notices: a document under their identifier
	   system would be read back as one. */
	if (r->bundle_system != NULL &&
	    strcmp(r->bundle_system, STORE_NOTICE_SYSTEM) == 0)
		return GW_INVALID;
	if (store_check_index(r) != GW_OK)
		return GW_INVALID;
	return store_check_notices(r);
}

/* A checked copy of r with defaults (no system, accepted now) filled. */
static enum gw_err
store_prepare(const struct store_accept *r, struct store_accept *out)
{
	enum gw_err err;

	if ((err = store_check(r)) != GW_OK)
		return err;
	*out = *r;
	if (out->bundle_system == NULL)
		out->bundle_system = "";
	if (out->accepted_at == 0)
		out->accepted_at = util_wall_ms();
	return GW_OK;
}

static void store_upkeep_start(struct store *s);
static uint64_t store_room(struct store *s);

const char *
store_file_state_name(enum store_file_state st)
{
	switch (st) {
	case STORE_FILE_MISSING:
		return "store_missing";
	case STORE_FILE_REPLACED:
		return "store_replaced";
	default:
		return "ok";
	}
}

/* Record a file check made by any thread; the change (not every
 * request or tick that sees it) is logged. */
static void
store_file_note(struct store *s, enum store_file_state st)
{
	enum store_file_state was;
	char path[256];

	pthread_mutex_lock(&s->mu);
	was = s->file_state;
	s->file_state = st;
	pthread_mutex_unlock(&s->mu);
	if (st == was)
		return;
	log_safe(path, sizeof(path), s->path);
	if (st == STORE_FILE_OK)
		log_info("event=store_files_back path=%s action=intake_resumed",
			 path);
	else
		log_warnx("event=%s level=error path=%s action=intake_refused "
			  "message=\"the store file or its -wal file was "
			  "deleted or replaced under the running gateway: "
			  "restore it and restart\"",
			  store_file_state_name(st), path);
}

enum store_file_state
store_file_state(struct store *s)
{
	enum store_file_state st;

	pthread_mutex_lock(&s->mu);
	st = s->file_state;
	pthread_mutex_unlock(&s->mu);
	return st;
}

enum store_file_state
store_file_check(struct store *s)
{
	enum store_file_state st = s->ops->check_files(s->conn);

	store_file_note(s, st);
	return st;
}

/* Most bytes of a database password file. */
#define STORE_PG_PASSWORD_MAX 1024

/*
 * Copy the connection string and read the password file's first line
 * (without its newline) into s, for every connection the store opens
 * later. The password is never logged; a file readable by others is
 * refused, as libpq refuses such a ~/.pgpass.
 */
static enum gw_err
store_pg_credentials(struct store *s, const struct store_options *opts)
{
	char buf[STORE_PG_PASSWORD_MAX + 2];
	struct stat sb;
	size_t len;
	FILE *f;

	if ((s->pg_url = strdup(opts->pg_url)) == NULL)
		return GW_NOMEM;
	s->opts.pg_url = s->pg_url;
	s->opts.pg_password = NULL;
	if (opts->pg_password_file == NULL)
		return GW_OK;
	if ((f = fopen(opts->pg_password_file, "re")) == NULL) {
		log_warn("event=store_password_file_unreadable");
		return GW_CONFIG;
	}
	if (fstat(fileno(f), &sb) != 0 || (sb.st_mode & 0077) != 0) {
		log_warnx("event=store_password_file_refused reason=mode "
			  "message=\"the database password file must not be "
			  "readable by group or others (chmod 600)\"");
		fclose(f);
		return GW_CONFIG;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	len = strcspn(buf, "\r\n");
	if (len > STORE_PG_PASSWORD_MAX || len == 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		log_warnx("event=store_password_file_refused reason=%s",
			  len == 0 ? "empty" : "too_long");
		return GW_CONFIG;
	}
	buf[len] = '\0';
	s->pg_password = strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (s->pg_password == NULL)
		return GW_NOMEM;
	s->opts.pg_password = s->pg_password;
	return GW_OK;
}

/* Wipe and free what store_pg_credentials kept. */
static void
store_pg_forget(struct store *s)
{
	if (s->pg_password != NULL) {
		OPENSSL_cleanse(s->pg_password, strlen(s->pg_password));
		free(s->pg_password);
		s->pg_password = NULL;
	}
	free(s->pg_url);
	s->pg_url = NULL;
}

enum gw_err
store_open(const struct store_options *opts, struct store **out)
{
	struct store *s = NULL;
	enum gw_err err = GW_NOMEM;
	const char *slash;
	int fds[2];

	*out = NULL;
	if (opts->path == NULL && opts->pg_url == NULL)
		return GW_CONFIG;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return GW_NOMEM;
	s->ops = &store_sqlite_ops;
	s->pipe_r = s->pipe_w = -1;
	s->opts = *opts;
	if (opts->pg_url != NULL && opts->pg_url[0] != '\0') {
		s->ops = &store_pg_ops;
		/* Free space is the database server's to watch. */
		s->opts.min_free = 0;
		if ((err = store_pg_credentials(s, opts)) != GW_OK)
			goto fail;
		if (s->opts.path == NULL)
			s->opts.path = "postgresql";
	}
	if (s->opts.queue_max == 0)
		s->opts.queue_max = STORE_QUEUE_MAX;
	if (s->opts.batch_max == 0)
		s->opts.batch_max = STORE_BATCH_MAX;
	err = GW_NOMEM;
	if ((s->path = strdup(s->opts.path)) == NULL)
		goto fail;
	s->opts.path = s->path;
	slash = strrchr(s->path, '/');
	if (slash == NULL)
		s->dir = strdup(".");
	else if (slash == s->path)
		s->dir = strdup("/");
	else
		s->dir = strndup(s->path, (size_t)(slash - s->path));
	if (s->dir == NULL)
		goto fail;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail_mu;
	{
		/* The writer's timed waits (audit gathering and retry)
		   count on the monotonic clock: a wall clock set back
		   must not hold audit records for that long. */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->work, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_cond_init(&s->idle, NULL);
	pthread_cond_init(&s->upkeep_cv, NULL);
	if (pipe(fds) != 0) {
		err = GW_IO;
		goto fail_pipe;
	}
	s->pipe_r = fds[0];
	s->pipe_w = fds[1];
	for (int i = 0; i < 2; i++) {
		(void)fcntl(fds[i], F_SETFD, FD_CLOEXEC);
		(void)fcntl(fds[i], F_SETFL,
			    fcntl(fds[i], F_GETFL) | O_NONBLOCK);
	}
	if ((err = s->ops->conn_open(&s->opts, true, &s->conn)) != GW_OK)
		goto fail_pipe;
	if (!s->opts.readonly) {
		err =
		    s->ops->index_secret(s->conn, s->secret, sizeof(s->secret));
		if (err != GW_OK) {
			s->ops->conn_close(s->conn);
			goto fail_pipe;
		}
		s->has_secret = true;
	}
	/* From the start, so a store deleted before the first accept is
	   seen too (the writer thread starts with the first submit). */
	store_upkeep_start(s);
	*out = s;
	return GW_OK;
fail_pipe:
	if (s->pipe_r >= 0)
		close(s->pipe_r);
	if (s->pipe_w >= 0)
		close(s->pipe_w);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->upkeep_cv);
	pthread_mutex_destroy(&s->mu);
fail_mu:
fail:
	store_pg_forget(s);
	free(s->dir);
	free(s->path);
	free(s);
	return err;
}

/* Bytes of the strings of one index (each with its NUL). */
static size_t
store_index_bytes(const struct store_index *x)
{
	size_t b = strlen(x->receiver) + strlen(x->bsn) + strlen(x->sender) + 3;

	for (size_t k = 0; k < x->n; k++) {
		const struct store_index_entry *e = &x->entries[k];

		b += strlen(e->type) + strlen(e->id) + strlen(e->key) +
		     e->json_len + (e->sha256 != NULL ? strlen(e->sha256) : 0) +
		     5;
	}
	return b;
}

/* Copy s (len bytes) to *p, NUL-terminate, advance *p; the copy. */
static const char *
store_put(char **p, const char *s, size_t len)
{
	char *d = *p;

	memcpy(d, s, len);
	d[len] = '\0';
	*p = d + len + 1;
	return d;
}

/* A deep copy of the n indexes at src in one allocation; NULL without
 * memory. */
static struct store_job_index *
store_index_copy(const struct store_index *src, size_t n)
{
	size_t nent = 0, bytes = 0, head;
	struct store_job_index *ji;
	struct store_index_entry *ents;
	char *p;

	for (size_t i = 0; i < n; i++) {
		nent += src[i].n;
		bytes += store_index_bytes(&src[i]);
	}
	head = sizeof(*ji) + n * sizeof(struct store_index) +
	       nent * sizeof(struct store_index_entry);
	if ((ji = malloc(head + bytes)) == NULL)
		return NULL;
	ji->idx = (struct store_index *)(ji + 1);
	ji->n = n;
	ents = (struct store_index_entry *)(ji->idx + n);
	p = (char *)(ents + nent);
	for (size_t i = 0; i < n; i++) {
		const struct store_index *x = &src[i];
		struct store_index *y = &ji->idx[i];

		y->receiver = store_put(&p, x->receiver, strlen(x->receiver));
		y->bsn = store_put(&p, x->bsn, strlen(x->bsn));
		y->sender = store_put(&p, x->sender, strlen(x->sender));
		y->entries = ents;
		y->n = x->n;
		for (size_t k = 0; k < x->n; k++, ents++) {
			const struct store_index_entry *e = &x->entries[k];

			ents->type = store_put(&p, e->type, strlen(e->type));
			ents->id = store_put(&p, e->id, strlen(e->id));
			ents->key = store_put(&p, e->key, strlen(e->key));
			ents->json = store_put(&p, e->json, e->json_len);
			ents->json_len = e->json_len;
			ents->sha256 =
			    e->sha256 != NULL
				? store_put(&p, e->sha256, strlen(e->sha256))
				: NULL;
			ents->hidden = e->hidden;
		}
	}
	return ji;
}

static void
store_job_free(struct store_job *j)
{
	if (j == NULL)
		return;
	free(j->index);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(j->strs); i++)
		free(j->strs[i]);
	for (size_t i = 0; i < j->nreceivers; i++)
		free(j->receivers[i]);
	free(j->receivers);
	free(j->audit);
	free(j->doc);
	for (size_t i = 0; i < j->nnotices * 4; i++)
		free(j->notice_mem[i]);
	free(j->notice_mem);
	free(j->notices);
	store_result_cleanup(&j->res);
	free(j);
}

/* Deep copy of r's notices into j (j->req.notices points at them).
 * False when out of memory (store_job_free releases what was made). */
static bool
store_job_copy_notices(struct store_job *j, const struct store_accept *r)
{
	if (r->nnotices == 0)
		return true;
	j->notices = calloc(r->nnotices, sizeof(*j->notices));
	j->notice_mem = calloc(r->nnotices * 4, sizeof(*j->notice_mem));
	if (j->notices == NULL || j->notice_mem == NULL)
		return false;
	for (; j->nnotices < r->nnotices; j->nnotices++) {
		const struct store_notice *src = &r->notices[j->nnotices];
		struct store_notice *dst = &j->notices[j->nnotices];
		char **mem = &j->notice_mem[j->nnotices * 4];

		if ((mem[0] = strdup(src->id)) == NULL ||
		    (mem[1] = strdup(src->receiver)) == NULL ||
		    (mem[2] = strdup(src->sha256)) == NULL ||
		    (mem[3] = malloc(src->doc_len)) == NULL) {
			j->nnotices++; /* so that what was copied is freed */
			return false;
		}
		memcpy(mem[3], src->doc, src->doc_len);
		dst->id = mem[0];
		dst->receiver = mem[1];
		dst->sha256 = mem[2];
		dst->doc = mem[3];
		dst->doc_len = src->doc_len;
	}
	j->req.notices = j->notices;
	return true;
}

/* Deep copy of a prepared request. */
static struct store_job *
store_job_new(const struct store_accept *r)
{
	const char *src[STORE_JOB_STRS] = {
	    r->id,	    r->sender_ura,   r->bundle_system, r->bundle_value,
	    r->patient_key, r->fhir_version, r->jws,	       r->sha256,
	    r->answer_body, r->report,	     r->event};
	struct store_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(src); i++)
		if (src[i] != NULL && (j->strs[i] = strdup(src[i])) == NULL)
			goto fail;
	if ((j->doc = malloc(r->doc_len)) == NULL)
		goto fail;
	memcpy(j->doc, r->doc, r->doc_len);
	if (r->nreceivers > 0) {
		j->receivers = calloc(r->nreceivers, sizeof(*j->receivers));
		if (j->receivers == NULL)
			goto fail;
		for (; j->nreceivers < r->nreceivers; j->nreceivers++) {
			j->receivers[j->nreceivers] =
			    strdup(r->receivers[j->nreceivers]);
			if (j->receivers[j->nreceivers] == NULL)
				goto fail;
		}
	}
	if (r->nindex > 0 &&
	    (j->index = store_index_copy(r->index, r->nindex)) == NULL)
		goto fail;
	if (r->naudit > 0) {
		if ((j->audit = calloc(r->naudit, sizeof(*j->audit))) == NULL)
			goto fail;
		memcpy(j->audit, r->audit, r->naudit * sizeof(*j->audit));
	}
	j->req = *r;
	j->req.index = j->index != NULL ? j->index->idx : NULL;
	j->req.audit = j->audit;
	j->req.id = j->strs[0];
	j->req.sender_ura = j->strs[1];
	j->req.bundle_system = j->strs[2];
	j->req.bundle_value = j->strs[3];
	j->req.patient_key = j->strs[4];
	j->req.fhir_version = j->strs[5];
	j->req.jws = j->strs[6];
	j->req.sha256 = j->strs[7];
	j->req.answer_body = j->strs[8];
	j->req.report = j->strs[9];
	/* the event borrowed the parsed document, which the intake job
	   frees before this batch commits */
	j->req.event = j->strs[10];
	j->req.doc = j->doc;
	j->req.receivers = (const char *const *)j->receivers;
	j->req.notices = NULL;
	if (!store_job_copy_notices(j, r))
		goto fail;
	return j;
fail:
	store_job_free(j);
	return NULL;
}

/* Fail every result of a batch with err (nothing of it is acknowledged). */
static void
store_fail_all(struct store_result *res, size_t n, enum gw_err err)
{
	for (size_t i = 0; i < n; i++) {
		store_result_cleanup(&res[i]);
		res[i].err = err;
	}
}

/*
 * Commit a batch on conn (the caller's thread's connection), checking
 * the store's files before and after: a commit into a file that was
 * deleted or replaced is lost at the next start, so it is answered as
 * failed (503) even when it succeeded, and nothing is acknowledged. One
 * stat per file per batch.
 */
static void
store_commit(struct store *s, void *conn,
	     const struct store_accept *const *reqs, struct store_result *res,
	     size_t n)
{
	enum store_file_state st = s->ops->check_files(conn);
	uint64_t room, need = 0;
	size_t fit = 0;

	store_file_note(s, st);
	if (st != STORE_FILE_OK) {
		store_fail_all(res, n, GW_IO);
		return;
	}
	/* min_free holds after this batch: the documents that would take
	   the disk below it are refused (GW_TEMP, 503), in order, so a
	   later one never overtakes an earlier one. */
	room = store_room(s);
	while (fit < n && (need += STORE_DISK_NEED(reqs[fit]->doc_len)) <= room)
		fit++;
	store_fail_all(res + fit, n - fit, GW_TEMP);
	if (fit == 0)
		return;
	(void)s->ops->accept_batch(conn, reqs, res, fit);
	st = s->ops->check_files(conn);
	store_file_note(s, st);
	if (st != STORE_FILE_OK)
		store_fail_all(res, fit, GW_IO);
}

/* Wake the loop: one byte while completions wait (mu held). */
static void
store_signal(struct store *s)
{
	ssize_t w;

	if (s->signalled)
		return;
	s->signalled = true;
	do
		w = write(s->pipe_w, "", 1);
	while (w < 0 && errno == EINTR);
}

/* A failed audit commit is said at most this often. */
#define STORE_AUDIT_LOG_MS 60000

/*
 * Writer thread, mu held: write up to STORE_AUDIT_BATCH queued audit
 * records in one transaction of their own, after the accepts of the
 * same round were handed to the loop (an accept never waits for them).
 * On failure they go back to the head of the queue, in order, and are
 * tried again after STORE_AUDIT_RETRY_MS: the queue then fills and
 * store_submit_audit refuses (the pull API answers 503) rather than let
 * reads go unrecorded. At shutdown they are given up, loudly.
 */
static void
store_write_audit(struct store *s)
{
	struct store_audit_job *batch = s->a_head, *last = NULL, *j;
	struct timespec at;
	enum gw_err err;
	uint64_t now;
	size_t n = 0;

	for (j = batch; j != NULL && n < STORE_AUDIT_BATCH; j = j->next) {
		s->arecs[n++] = j->rec;
		last = j;
	}
	if (n == 0)
		return;
	s->a_head = last->next;
	if (s->a_head == NULL)
		s->a_tail = NULL;
	last->next = NULL;
	s->audit_queued -= n;
	pthread_mutex_unlock(&s->mu);

	if (s->ops->check_files(s->wconn) != STORE_FILE_OK)
		err = GW_IO;
	else
		err = s->ops->audit_append(s->wconn, s->arecs, n);

	pthread_mutex_lock(&s->mu);
	if (err == GW_OK || s->stop) {
		if (err != GW_OK)
			log_warnx("event=audit_lost level=error records=%zu "
				  "error=\"%s\" reason=shutdown",
				  n, gw_strerror(err));
		else if (s->audit_failures > 0) {
			log_info("event=audit_written_again failures=%u",
				 s->audit_failures);
			s->audit_failures = 0;
			s->audit_said = 0;
		}
		while ((j = batch) != NULL) {
			batch = j->next;
			free(j);
		}
		s->audit_unwritten -= n;
		pthread_cond_broadcast(&s->idle);
		return;
	}
	/* Back to the head, in order. */
	last->next = s->a_head;
	s->a_head = batch;
	if (s->a_tail == NULL)
		s->a_tail = last;
	s->audit_queued += n;
	s->audit_failures++;
	now = util_mono_ms();
	if (s->audit_said == 0 || now - s->audit_said >= STORE_AUDIT_LOG_MS) {
		log_warnx("event=audit_write_failed level=error records=%zu "
			  "error=\"%s\" failures=%u action=retry",
			  n, gw_strerror(err), s->audit_failures);
		s->audit_said = now;
	}
	clock_gettime(CLOCK_MONOTONIC, &at);
	at.tv_nsec += STORE_AUDIT_RETRY_MS * 1000000L;
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&s->work, &s->mu, &at);
}

/* Writer thread, mu held, only audit records queued: wait (true) while
 * they are younger than STORE_AUDIT_GATHER_MS, unless a full batch, a
 * flush or the stop is waiting; false when they are to be written now. */
static bool
store_audit_gather(struct store *s)
{
	uint64_t now = util_mono_ms(), due;
	struct timespec at;
	long ns;

	due = s->audit_first_ms + STORE_AUDIT_GATHER_MS;
	if (s->stop || s->flushing > 0 ||
	    s->audit_queued >= STORE_AUDIT_BATCH || now >= due)
		return false;
	ns = (long)(due - now) * 1000000L;
	clock_gettime(CLOCK_MONOTONIC, &at);
	at.tv_sec += ns / 1000000000L;
	at.tv_nsec += ns % 1000000000L;
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&s->work, &s->mu, &at);
	return true;
}

/* Slots of the findings' index: a power of two, > 2 * STORE_FINDINGS_MAX. */
#define STORE_FIND_SLOTS 16384

static size_t
store_find_hash(const struct store_finding *f)
{
	const char *parts[] = {f->sender, f->severity, f->rule, f->profile};
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)f->hour;

	for (size_t i = 0; i < UTIL_ARRAY_LEN(parts); i++)
		for (const char *p = parts[i];; p++) {
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
			if (*p == '\0')
				break;
		}
	return (size_t)h & (STORE_FIND_SLOTS - 1);
}

static bool
store_find_same(const struct store_finding *a, const struct store_finding *b)
{
	return a->hour == b->hour && strcmp(a->sender, b->sender) == 0 &&
	       strcmp(a->severity, b->severity) == 0 &&
	       strcmp(a->rule, b->rule) == 0 &&
	       strcmp(a->profile, b->profile) == 0;
}

/* mu held, tables allocated: add f to its key; false when full. */
static bool
store_find_add(struct store *s, const struct store_finding *f)
{
	size_t k = store_find_hash(f);

	for (; s->find_slots[k] != 0; k = (k + 1) & (STORE_FIND_SLOTS - 1)) {
		struct store_finding *x = &s->find[s->find_slots[k] - 1];

		if (store_find_same(x, f)) {
			x->n += f->n;
			return true;
		}
	}
	if (s->nfind >= STORE_FINDINGS_MAX)
		return false;
	if (s->nfind == 0)
		s->find_first_ms = util_mono_ms();
	s->find[s->nfind++] = *f;
	s->find_slots[k] = (uint32_t)s->nfind;
	return true;
}

/* mu held: whether the findings waiting are to be written now. */
static bool
store_findings_due(const struct store *s)
{
	return s->nfind > 0 &&
	       (s->stop || s->flushing > 0 ||
		util_mono_ms() >= s->find_first_ms + STORE_FINDINGS_MS);
}

/* A failed findings write is said at most this often. */
#define STORE_FIND_LOG_MS 60000

/*
 * Writer thread, mu held: write the findings waiting in one transaction
 * of their own. On failure they are counted again (tried after
 * STORE_FINDINGS_MS), except at shutdown, when they are given up.
 */
static void
store_write_findings(struct store *s)
{
	size_t n = s->nfind;
	enum gw_err err;
	uint64_t now;

	memcpy(s->fwrite, s->find, n * sizeof(*s->find));
	memset(s->find_slots, 0, STORE_FIND_SLOTS * sizeof(*s->find_slots));
	s->nfind = 0;
	pthread_mutex_unlock(&s->mu);

	if (s->ops->check_files(s->wconn) != STORE_FILE_OK)
		err = GW_IO;
	else
		err = s->ops->findings_add(s->wconn, s->fwrite, n);

	pthread_mutex_lock(&s->mu);
	s->find_writes++;
	pthread_cond_broadcast(&s->idle);
	if (err == GW_OK)
		return;
	now = util_mono_ms();
	if (s->stop) {
		log_warnx("event=findings_lost keys=%zu error=\"%s\" "
			  "reason=shutdown",
			  n, gw_strerror(err));
		return;
	}
	for (size_t i = 0; i < n; i++)
		(void)store_find_add(s, &s->fwrite[i]);
	if (s->find_said == 0 || now - s->find_said >= STORE_FIND_LOG_MS) {
		log_warnx("event=findings_write_failed keys=%zu error=\"%s\" "
			  "action=retry",
			  n, gw_strerror(err));
		s->find_said = now;
	}
}

/* Writer thread, mu held, nothing queued: wait for work, until the
 * findings waiting are due when there are some. */
static void
store_writer_wait(struct store *s)
{
	struct timespec at;
	uint64_t now = util_mono_ms(), due;
	long ns;

	if (s->nfind == 0) {
		pthread_cond_wait(&s->work, &s->mu);
		return;
	}
	due = s->find_first_ms + STORE_FINDINGS_MS;
	ns = due > now ? (long)(due - now) * 1000000L : 0;
	clock_gettime(CLOCK_MONOTONIC, &at);
	at.tv_sec += ns / 1000000000L;
	at.tv_nsec += ns % 1000000000L;
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&s->work, &s->mu, &at);
}

/* The writer thread: take everything queued (up to batch_max), commit it
 * as one transaction, hand the results to the loop; then the audit
 * records queued meanwhile. */
static void *
store_writer(void *arg)
{
	struct store *s = arg;
	struct store_job *batch, *j, *last;
	size_t n;

	util_thread_name("pzpgw-writer");
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->q_head == NULL && s->a_head == NULL && !s->stop &&
		       !store_findings_due(s))
			store_writer_wait(s);
		if (store_findings_due(s))
			store_write_findings(s);
		if (s->q_head == NULL && s->a_head == NULL) {
			if (s->stop)
				break;
			continue;
		}
		if (s->q_head == NULL) {
			if (!store_audit_gather(s))
				store_write_audit(s);
			continue;
		}
		batch = last = s->q_head;
		s->reqs[0] = &batch->req;
		n = 1;
		for (j = batch->next; j != NULL && n < s->opts.batch_max;
		     j = j->next) {
			s->reqs[n++] = &j->req;
			last = j;
		}
		s->q_head = last->next;
		if (s->q_head == NULL)
			s->q_tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->mu);

		memset(s->res, 0, n * sizeof(*s->res));
		store_commit(s, s->wconn, s->reqs, s->res, n);
		n = 0;
		for (j = batch; j != NULL; j = j->next) {
			j->res = s->res[n++];
			j->first = j == batch;
		}
		for (j = batch; j != NULL; j = j->next)
			j->batch = n;

		pthread_mutex_lock(&s->mu);
		if (s->d_tail != NULL)
			s->d_tail->next = batch;
		else
			s->d_head = batch;
		s->d_tail = last;
		s->uncommitted -= n;
		pthread_cond_broadcast(&s->idle);
		store_signal(s);
		if (s->a_head != NULL)
			store_write_audit(s);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Age after which the upkeep thread's last successful ping no longer
 * counts (store_reachable): it pings every STORE_UPKEEP_MS. */
#define STORE_REACH_STALE_MS STORE_PG_CALLER_WAIT_MS

/* A failing checkpoint (a full disk fails every one, ten a second) is
 * said at most this often, with the number of failures since. */
#define STORE_UPKEEP_LOG_MS 60000

/* The least pause after a retention batch (store_retention): time for
 * the writer, whose busy handler sleeps in steps of a few ms, to take
 * the lock. */
#define STORE_PRUNE_PAUSE_MIN_MS 5
/* Busy batches in a row before a retention run gives up until the next
 * store_retention (about 10 s of a store locked by others). */
#define STORE_PRUNE_BUSY_MAX 100

/* Say a checkpoint result: failures once a minute, recovery once. */
static void
store_upkeep_said(enum gw_err err, const char *detail, uint64_t *said,
		  unsigned *failures, bool *failing)
{
	uint64_t now;

	if (err == GW_OK && *failing) {
		log_info("event=store_checkpoint_ok failures=%u", *failures);
		*failing = false;
		*failures = 0;
		return;
	}
	if (err == GW_OK || err == GW_TEMP)
		return;
	(*failures)++;
	now = util_mono_ms();
	if (*said != 0 && now - *said < STORE_UPKEEP_LOG_MS)
		return;
	log_warnx("event=store_checkpoint_failed error=\"%s\" detail=%s "
		  "failures=%u next_report_s=%d",
		  gw_strerror(err), detail[0] != '\0' ? detail : "-", *failures,
		  STORE_UPKEEP_LOG_MS / 1000);
	*said = now;
	*failures = 0;
	*failing = true;
}

/* Retention in progress on the upkeep thread. */
struct store_ret_run {
	bool on;
	bool inbound;		   /* outbound done, inbound messages now */
	int64_t before, in_before; /* in_before 0: no inbound retention */
	size_t out_n, in_n, batches;
	unsigned busy;	  /* batches in a row that found the store busy */
	uint64_t started; /* util_mono_ms */
};

/* Say what one retention removed (serve.c's words of before). */
static void
store_ret_said(const struct store_ret_run *r, const char *how)
{
	uint64_t ms = util_mono_ms() - r->started;

	if (r->out_n > 0)
		log_info("event=pruned messages=%zu batches=%zu took_ms=%llu%s",
			 r->out_n, r->batches, (unsigned long long)ms, how);
	if (r->in_n > 0)
		log_info("event=pruned_inbound messages=%zu took_ms=%llu%s",
			 r->in_n, (unsigned long long)ms, how);
}

/* One retention batch on the upkeep connection; false when the run is
 * over (done or failed: the next store_retention starts again). */
static bool
store_ret_batch(struct store *s, struct store_ret_run *r)
{
	size_t n = 0;
	enum gw_err err;

	if (!r->inbound) {
		err = s->ops->prune(s->uconn, r->before, STORE_PRUNE_BATCH,
				    true, &n);
		r->out_n += n;
	} else {
		/* Odd while a delete may be in flight
		   (store_res_generation). */
		atomic_fetch_add(&s->res_gen, 1);
		err = s->ops->prune_inbound(s->uconn, r->in_before,
					    STORE_PRUNE_BATCH / 4, true, &n);
		atomic_fetch_add(&s->res_gen, 1);
		r->in_n += n;
	}
	r->batches++;
	/* Busy (the upkeep connection waits only briefly for the lock):
	   the writer goes first; again after the pause. */
	if (err == GW_TEMP && ++r->busy < STORE_PRUNE_BUSY_MAX)
		return true;
	if (err != GW_OK) {
		log_warnx("event=%s error=\"%s\" removed=%zu",
			  r->inbound ? "prune_inbound_failed" : "prune_failed",
			  gw_strerror(err), r->inbound ? r->in_n : r->out_n);
		return false;
	}
	r->busy = 0;
	if (n < (r->inbound ? STORE_PRUNE_BATCH / 4 : STORE_PRUNE_BATCH)) {
		if (!r->inbound && r->in_before > 0) {
			r->inbound = true;
			return true;
		}
		store_ret_said(r, "");
		return false;
	}
	return true;
}

/* Expiry in progress on the upkeep thread (store_expire_later). */
struct store_exp_run {
	bool on;
	int64_t before, now;
	size_t n, batches;
	unsigned busy; /* batches in a row that found the store busy */
	uint64_t started;
};

/* One expiry batch on the upkeep connection; false when the run is over
 * (no lane left, or failed: the next store_expire_later starts again). */
static bool
store_exp_batch(struct store *s, struct store_exp_run *r)
{
	size_t n = 0;
	enum gw_err err;

	err =
	    s->ops->expire(s->uconn, r->before, r->now, STORE_EXPIRE_BATCH, &n);
	r->batches++;
	if (err == GW_TEMP && ++r->busy < STORE_PRUNE_BUSY_MAX)
		return true;
	if (err != GW_OK) {
		log_warnx("event=store_expire_failed error=\"%s\" expired=%zu",
			  gw_strerror(err), r->n);
		return false;
	}
	r->busy = 0;
	if (n > 0) {
		r->n += n;
		pthread_mutex_lock(&s->mu);
		s->exp_done += n;
		pthread_mutex_unlock(&s->mu);
		return true;
	}
	if (r->n > 0)
		log_info(
		    "event=store_expired rows=%zu batches=%zu took_ms=%llu",
		    r->n, r->batches,
		    (unsigned long long)(util_mono_ms() - r->started));
	return false;
}

/* Upkeep thread: the queue counts for store_stats_recent. A failed read
 * keeps the last (the ping says whether the server answers). */
static void
store_stats_read(struct store *s)
{
	struct store_stat *v = NULL, *old;
	size_t n = 0;

	if (s->ops->stats(s->uconn, &v, &n) != GW_OK)
		return;
	pthread_mutex_lock(&s->mu);
	old = s->stats_v;
	s->stats_v = v;
	s->stats_n = n;
	s->stats_have = true;
	pthread_mutex_unlock(&s->mu);
	free(old);
}

/* The upkeep thread: every STORE_UPKEEP_MS until stop, check that the
 * files are still the store's, then checkpoint. While the disk is below
 * min_free (and once more when space is back) the WAL is cut back to
 * nothing: its size outlives a checkpoint, and on a full disk that is
 * the space intake needs to resume. Between, the retention's batches
 * (store_retention), each followed by a pause at least as long as it
 * took, so the writer gets the lock in between. */
static void *
store_upkeep(void *arg)
{
	struct store *s = arg;
	struct timespec at;
	struct store_ret_run run = {0};
	struct store_exp_run exp = {0};
	bool failing = false, truncate = false, low;
	unsigned failures = 0;
	uint64_t said = 0, next = 0, stats_next = 0, t0, pause = 0;
	char detail[160];
	enum gw_err err;

	util_thread_name("pzpgw-upkeep");
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		long wait = run.on || exp.on ? (long)pause : STORE_UPKEEP_MS;

		clock_gettime(CLOCK_REALTIME, &at);
		at.tv_nsec += wait * 1000000L;
		while (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&s->upkeep_cv, &s->mu, &at);
		if (s->stop)
			break;
		if (s->ret_asked) {
			s->ret_asked = false;
			if (!run.on) {
				memset(&run, 0, sizeof(run));
				run.on = true;
				run.started = util_mono_ms();
			}
			run.before = s->ret_before;
			run.in_before = s->ret_in_before;
		}
		if (s->exp_asked) {
			s->exp_asked = false;
			if (!exp.on) {
				memset(&exp, 0, sizeof(exp));
				exp.on = true;
				exp.started = util_mono_ms();
			}
			exp.before = s->exp_before;
			exp.now = s->exp_now;
		}
		pthread_mutex_unlock(&s->mu);
		if (util_mono_ms() >= next) {
			store_file_note(s, s->ops->check_files(s->uconn));
			low = store_room(s) == 0;
			truncate = truncate || low;
			detail[0] = '\0';
			err = s->ops->upkeep(s->uconn, truncate, detail,
					     sizeof(detail));
			if (err == GW_OK && truncate && !low) {
				log_info("event=store_wal_truncated "
					 "reason=disk_space_back");
				truncate = false;
			}
			/* Commits go on regardless. */
			store_upkeep_said(err, detail, &said, &failures,
					  &failing);
			/* A database server: is it answering? (/readyz reads
			   this; a ping there could wait for libpq's connect
			   timeout, or forever on a stopped server, with the
			   event loop.) */
			if (s->ops->ping != NULL) {
				bool ok = s->ops->ping(s->uconn) == GW_OK;

				atomic_store(&s->reach_ok, ok);
				if (ok)
					atomic_store(&s->reach_at,
						     util_mono_ms());
			}
			next = util_mono_ms() + STORE_UPKEEP_MS;
		}
		if (util_mono_ms() >= stats_next) {
			store_stats_read(s);
			stats_next = util_mono_ms() + STORE_STATS_MS;
		}
		if (run.on || exp.on) {
			t0 = util_mono_ms();
			if (exp.on)
				exp.on = store_exp_batch(s, &exp);
			if (run.on)
				run.on = store_ret_batch(s, &run);
			pause = util_mono_ms() - t0;
			if (pause < STORE_PRUNE_PAUSE_MIN_MS)
				pause = STORE_PRUNE_PAUSE_MIN_MS;
			if (pause > STORE_UPKEEP_MS)
				pause = STORE_UPKEEP_MS;
		}
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	if (run.on)
		store_ret_said(&run, " unfinished=stop");
	return NULL;
}

/* Start the upkeep thread when asked for; without it the backend's own
 * inline upkeep (SQLite's auto-checkpoint) still runs. */
static void
store_upkeep_start(struct store *s)
{
	if (!s->opts.background_upkeep || s->ops->upkeep == NULL)
		return;
	if (s->ops->conn_open(&s->opts, false, &s->uconn) != GW_OK)
		return;
	/* It just connected. */
	atomic_store(&s->reach_ok, true);
	atomic_store(&s->reach_at, util_mono_ms());
	if (pthread_create(&s->upkeep_thread, NULL, store_upkeep, s) != 0) {
		s->ops->conn_close(s->uconn);
		s->uconn = NULL;
		return;
	}
	s->upkeep_started = true;
}

/* Start the writer with its own connection (first submit). mu held. */
static enum gw_err
store_writer_start(struct store *s)
{
	enum gw_err err;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	s->reqs = calloc(s->opts.batch_max, sizeof(*s->reqs));
	s->res = calloc(s->opts.batch_max, sizeof(*s->res));
	s->arecs = calloc(STORE_AUDIT_BATCH, sizeof(*s->arecs));
	s->find = calloc(STORE_FINDINGS_MAX, sizeof(*s->find));
	s->fwrite = calloc(STORE_FINDINGS_MAX, sizeof(*s->fwrite));
	s->find_slots = calloc(STORE_FIND_SLOTS, sizeof(*s->find_slots));
	if (s->reqs == NULL || s->res == NULL || s->arecs == NULL ||
	    s->find == NULL || s->fwrite == NULL || s->find_slots == NULL) {
		err = GW_NOMEM;
		goto fail;
	}
	if ((err = s->ops->conn_open(&s->opts, false, &s->wconn)) != GW_OK)
		goto fail;
	if (pthread_create(&s->thread, NULL, store_writer, s) != 0) {
		err = GW_TEMP;
		goto fail;
	}
	s->started = true;
	return GW_OK;
fail:
	s->ops->conn_close(s->wconn);
	s->wconn = NULL;
	free(s->reqs);
	free(s->res);
	free(s->arecs);
	free(s->find);
	free(s->fwrite);
	free(s->find_slots);
	s->reqs = NULL;
	s->res = NULL;
	s->arecs = NULL;
	s->find = s->fwrite = NULL;
	s->find_slots = NULL;
	return err;
}

/*
 * Whether calls should not try the database now: the upkeep thread's
 * ping says a database server does not answer. A server that hangs with
 * its connections open would otherwise cost each call a bounded wait
 * (pg_wait_ms) and a reconnect: the event loop's (claims, results, due
 * times, lease renewals) and each submitted accept or audit record,
 * whose request would wait that long for its 503. The upkeep thread
 * alone tries; these calls fail at once with GW_TEMP (results are kept:
 * store_finish) until it answers again.
 */
static bool
store_away(struct store *s)
{
	return s->ops->ping != NULL && s->upkeep_started && !store_reachable(s);
}

enum gw_err
store_submit_accept(struct store *s, const struct store_accept *req,
		    store_done_fn cb, void *arg)
{
	struct store_accept r;
	struct store_job *j;
	enum gw_err err;

	if (cb == NULL)
		return GW_INVALID;
	if ((err = store_prepare(req, &r)) != GW_OK)
		return err;
	if (store_away(s))
		return GW_TEMP;
	pthread_mutex_lock(&s->mu);
	if (s->outstanding >= s->opts.queue_max) {
		pthread_mutex_unlock(&s->mu);
		return GW_TEMP;
	}
	pthread_mutex_unlock(&s->mu);
	if ((j = store_job_new(&r)) == NULL)
		return GW_NOMEM;
	j->cb = cb;
	j->arg = arg;
	pthread_mutex_lock(&s->mu);
	if (!s->started && (err = store_writer_start(s)) != GW_OK) {
		pthread_mutex_unlock(&s->mu);
		store_job_free(j);
		return err;
	}
	if (s->q_tail != NULL)
		s->q_tail->next = j;
	else
		s->q_head = j;
	s->q_tail = j;
	s->outstanding++;
	s->uncommitted++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
	return GW_OK;
}

enum gw_err
store_submit_audit(struct store *s, const struct store_audit_rec *rec)
{
	struct store_audit_job *j;
	enum gw_err err;

	if (!store_audit_ok(rec))
		return GW_INVALID;
	if (store_away(s))
		return GW_TEMP;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return GW_NOMEM;
	j->rec = *rec;
	if (j->rec.at == 0)
		j->rec.at = util_wall_ms();
	pthread_mutex_lock(&s->mu);
	if (s->audit_queued >= s->opts.queue_max) {
		pthread_mutex_unlock(&s->mu);
		free(j);
		return GW_TEMP;
	}
	if (!s->started && (err = store_writer_start(s)) != GW_OK) {
		pthread_mutex_unlock(&s->mu);
		free(j);
		return err;
	}
	if (s->a_tail != NULL) {
		s->a_tail->next = j;
	} else {
		s->a_head = j;
		s->audit_first_ms = util_mono_ms();
	}
	s->a_tail = j;
	s->audit_queued++;
	s->audit_unwritten++;
	/* The writer gathers (store_audit_gather): woken by the first
	   record and by a full batch, not by each. */
	if (j == s->a_head || s->audit_queued >= STORE_AUDIT_BATCH)
		pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
	return GW_OK;
}

enum gw_err
store_count_finding(struct store *s, const struct store_finding *f)
{
	enum gw_err err = GW_OK;

	if (memchr(f->sender, '\0', sizeof(f->sender)) == NULL ||
	    memchr(f->severity, '\0', sizeof(f->severity)) == NULL ||
	    memchr(f->rule, '\0', sizeof(f->rule)) == NULL ||
	    memchr(f->profile, '\0', sizeof(f->profile)) == NULL || f->n <= 0)
		return GW_INVALID;
	if (s->ops->findings_add == NULL)
		return GW_OK; /* a backend without the table */
	pthread_mutex_lock(&s->mu);
	if (!s->started && (err = store_writer_start(s)) != GW_OK)
		goto out;
	if (!store_find_add(s, f)) {
		uint64_t now = util_mono_ms();

		/* Say so (once a minute): the report then counts fewer
		   findings than were answered. */
		if (s->find_full_said == 0 ||
		    now - s->find_full_said >= 60000) {
			s->find_full_said = now;
			log_warnx(
			    "event=findings_dropped keys=%zu "
			    "message=\"validation finding counts are full "
			    "until the writer's next write; the report "
			    "counts fewer\"",
			    s->nfind);
		}
		err = GW_TEMP;
		goto out;
	}
	/* the first wakes the writer into its timed wait */
	if (s->nfind == 1)
		pthread_cond_signal(&s->work);
out:
	pthread_mutex_unlock(&s->mu);
	return err;
}

enum gw_err
store_audit_list(struct store *s, const struct store_audit_filter *f,
		 struct store_audit_rec **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return s->ops->audit_list(s->conn, f, out, n);
}

enum gw_err
store_audit_verify(struct store *s, struct store_audit_check *out)
{
	memset(out, 0, sizeof(*out));
	return s->ops->audit_verify(s->conn, out);
}

int
store_notify_fd(struct store *s)
{
	return s->pipe_r;
}

size_t
store_dispatch(struct store *s)
{
	struct store_job *list, *j;
	char drain[64];
	size_t n = 0;

	while (read(s->pipe_r, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&s->mu);
	list = s->d_head;
	s->d_head = s->d_tail = NULL;
	s->signalled = false;
	pthread_mutex_unlock(&s->mu);
	if (list != NULL)
		metrics_describe(STORE_BATCH_METRIC, METRICS_HISTOGRAM,
				 "Accepted documents per store commit.");
	while ((j = list) != NULL) {
		list = j->next;
		if (j->first)
			metrics_observe(STORE_BATCH_METRIC, "",
					(double)j->batch);
		j->cb(j->arg, &j->res);
		store_job_free(j);
		n++;
	}
	pthread_mutex_lock(&s->mu);
	s->outstanding -= n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void
store_flush(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	/* Gathered audit records go now. */
	s->flushing++;
	pthread_cond_signal(&s->work);
	while (s->uncommitted > 0 || s->audit_unwritten > 0)
		pthread_cond_wait(&s->idle, &s->mu);
	/* and the findings counted so far: one attempt to write them */
	if (s->nfind > 0) {
		uint64_t w = s->find_writes;

		pthread_cond_signal(&s->work);
		while (s->find_writes == w && s->started)
			pthread_cond_wait(&s->idle, &s->mu);
	}
	s->flushing--;
	pthread_mutex_unlock(&s->mu);
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->work);
	pthread_cond_signal(&s->upkeep_cv);
	pthread_mutex_unlock(&s->mu);
	if (s->started)
		pthread_join(s->thread, NULL);
	if (s->upkeep_started)
		pthread_join(s->upkeep_thread, NULL);
	if (s->started) {
		(void)store_dispatch(s);
		s->ops->conn_close(s->wconn);
	}
	s->ops->conn_close(s->uconn);
	s->ops->conn_close(s->conn);
	close(s->pipe_r);
	close(s->pipe_w);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->upkeep_cv);
	pthread_mutex_destroy(&s->mu);
	/* Left only when the writer never started. */
	while (s->a_head != NULL) {
		struct store_audit_job *j = s->a_head;

		s->a_head = j->next;
		free(j);
	}
	free(s->reqs);
	free(s->res);
	free(s->arecs);
	free(s->find);
	free(s->fwrite);
	free(s->find_slots);
	free(s->stats_v);
	while (s->fin_head != NULL) {
		struct store_finish_job *j = s->fin_head;

		s->fin_head = j->next;
		store_finish_job_free(j);
	}
	store_pg_forget(s);
	free(s->dir);
	free(s->path);
	free(s);
}

const char *
store_backend(const struct store *s)
{
	return s->ops->name;
}

const struct store_ops *
store_raw(struct store *s, void **conn)
{
	*conn = s->conn;
	return s->ops;
}

int64_t
store_lease_ms(const struct store *s)
{
	if (strcmp(s->ops->name, "postgresql") != 0)
		return 0;
	return s->opts.lease_ms > 0 ? s->opts.lease_ms : 60000;
}

enum gw_err
store_renew(struct store *s, int64_t seq, const char *receiver, int64_t until)
{
	if (store_away(s))
		return GW_TEMP;
	return s->ops->renew(s->conn, seq, receiver, until);
}

int
store_schema_version(const struct store *s)
{
	return s->ops->schema_version(s->conn);
}

enum gw_err
store_accept(struct store *s, const struct store_accept *req,
	     struct store_result *res)
{
	const struct store_accept *one[1];
	struct store_accept r;
	enum gw_err err;

	memset(res, 0, sizeof(*res));
	if ((err = store_prepare(req, &r)) != GW_OK) {
		res->err = err;
		return err;
	}
	one[0] = &r;
	store_commit(s, s->conn, one, res, 1);
	return res->err;
}

enum gw_err
store_claim(struct store *s, const char *receiver, int64_t due_by, int64_t now,
	    size_t max, struct store_row **rows, size_t *n)
{
	*rows = NULL;
	*n = 0;
	if (store_away(s))
		return GW_TEMP;
	store_finish_flush(s);
	return s->ops->claim(s->conn, receiver, due_by, now, max, rows, n);
}

static void
store_finish_job_free(struct store_finish_job *j)
{
	free(j->error);
	free(j->outcome);
	free(j);
}

/*
 * Write the results kept by store_finish, oldest first, until one fails
 * again for a temporary reason (then the rest wait for the next call).
 * A row no longer in flight (an operator acted on it) or a permanent
 * failure drops its result.
 */
static void
store_finish_flush(struct store *s)
{
	size_t done = 0;

	while (s->fin_head != NULL && !store_away(s)) {
		struct store_finish_job *j = s->fin_head;
		enum gw_err err =
		    s->ops->finish(s->conn, j->id, j->receiver, j->to,
				   j->status, j->error, j->outcome, j->at);

		if (err != GW_OK && err != GW_NOTFOUND &&
		    gw_err_is_temporary(err))
			break;
		if (err != GW_OK && err != GW_NOTFOUND)
			log_warnx(
			    "event=store_finish_dropped id=%s receiver=%s "
			    "error=\"%s\"",
			    j->id, j->receiver, gw_strerror(err));
		s->fin_head = j->next;
		if (s->fin_head == NULL)
			s->fin_tail = NULL;
		s->fin_n--;
		store_finish_job_free(j);
		done++;
	}
	if (done > 0)
		log_info("event=store_finish_written rows=%zu left=%zu", done,
			 s->fin_n);
}

/*
 * Record a delivery result. One the database cannot take now (a network
 * database restarting) is kept and written before the next claim or
 * due-time query, in order; GW_OK then, as the row stays in flight
 * meanwhile and no other attempt starts.
 */
static enum gw_err
store_finish(struct store *s, const char *id, const char *receiver,
	     enum store_state to, int status, const char *error,
	     const char *outcome, int64_t at)
{
	struct store_finish_job *j;
	enum gw_err err;

	store_finish_flush(s);
	if (s->fin_head == NULL && !store_away(s)) {
		err = s->ops->finish(s->conn, id, receiver, to, status, error,
				     outcome, at);
		if (err == GW_OK || !gw_err_is_temporary(err))
			return err;
	}
	if (s->fin_n >= STORE_FINISH_MAX || (j = calloc(1, sizeof(*j))) == NULL)
		return GW_TEMP;
	if (util_strlcpy(j->id, id, sizeof(j->id)) >= sizeof(j->id) ||
	    util_strlcpy(j->receiver, receiver, sizeof(j->receiver)) >=
		sizeof(j->receiver) ||
	    (error != NULL && (j->error = strdup(error)) == NULL) ||
	    (outcome != NULL && (j->outcome = strdup(outcome)) == NULL)) {
		store_finish_job_free(j);
		return GW_INVALID;
	}
	j->to = to;
	j->status = status;
	j->at = at;
	if (s->fin_tail != NULL)
		s->fin_tail->next = j;
	else
		s->fin_head = j;
	s->fin_tail = j;
	s->fin_n++;
	log_warnx("event=store_finish_deferred id=%s receiver=%s queued=%zu "
		  "message=\"the store refused the result for now; it is "
		  "written when the database answers again\"",
		  j->id, j->receiver, s->fin_n);
	return GW_OK;
}

enum gw_err
store_delivered(struct store *s, const char *id, const char *receiver,
		int status, int64_t now)
{
	return store_finish(s, id, receiver, STORE_DELIVERED, status, NULL,
			    NULL, now);
}

enum gw_err
store_failed_temp(struct store *s, const char *id, const char *receiver,
		  int status, const char *error, int64_t next_attempt_at)
{
	return store_finish(s, id, receiver, STORE_DUE, status, error, NULL,
			    next_attempt_at);
}

enum gw_err
store_failed_perm(struct store *s, const char *id, const char *receiver,
		  int status, const char *error, const char *outcome_json)
{
	return store_finish(s, id, receiver, STORE_DEAD, status, error,
			    outcome_json, util_wall_ms());
}

enum gw_err
store_recover(struct store *s, size_t *count)
{
	size_t n = 0;
	enum gw_err err = s->ops->recover(s->conn, util_wall_ms(), &n);

	if (err == GW_OK && n > 0)
		log_info("event=store_recovered inflight=%zu", n);
	if (count != NULL)
		*count = n;
	return err;
}

enum gw_err
store_next_due_at(struct store *s, int64_t *at)
{
	/* The deliverer asks at least every idle poll: kept results are
	   written then even when nothing else happens. */
	if (store_away(s))
		return GW_TEMP;
	store_finish_flush(s);
	return s->ops->next_due_at(s->conn, NULL, at);
}

enum gw_err
store_next_due_at_for(struct store *s, const char *receiver, int64_t *at)
{
	if (store_away(s))
		return GW_TEMP;
	return s->ops->next_due_at(s->conn, receiver, at);
}

enum gw_err
store_get_document(struct store *s, const char *id, struct store_message **out)
{
	return s->ops->get(s->conn, id, true, false, out);
}

enum gw_err
store_show(struct store *s, const char *id, bool content,
	   struct store_message **out)
{
	return s->ops->get(s->conn, id, content, true, out);
}

enum gw_err
store_list(struct store *s, const struct store_filter *f,
	   struct store_row **rows, size_t *n)
{
	return s->ops->list(s->conn, f, rows, n);
}

enum gw_err
store_act(struct store *s, const char *id, const char *receiver,
	  enum store_action action, int64_t now, size_t *changed)
{
	if (changed != NULL)
		*changed = 0;
	return s->ops->act(s->conn, id, receiver, action, now, changed);
}

enum gw_err
store_prune(struct store *s, int64_t before, size_t *count)
{
	size_t n = 0;
	enum gw_err err = s->ops->prune(s->conn, before, 0, false, &n);

	/* serve.c says how many went (event=pruned); the CLI prints it. */
	if (count != NULL)
		*count = n;
	return err;
}

enum gw_err
store_retention(struct store *s, int64_t before, int64_t inbound_before)
{
	struct store_ret_run r = {.on = true};
	size_t n = 0;
	enum gw_err err;

	if (s->upkeep_started) {
		pthread_mutex_lock(&s->mu);
		s->ret_asked = true;
		s->ret_before = before;
		s->ret_in_before = inbound_before;
		pthread_cond_signal(&s->upkeep_cv);
		pthread_mutex_unlock(&s->mu);
		return GW_OK;
	}
	/* No upkeep thread (e.g. a PostgreSQL-less test setup without
	   background_upkeep): all of it here, on the loop's connection. */
	r.started = util_mono_ms();
	err = s->ops->prune(s->conn, before, 0, true, &n);
	r.out_n = n;
	if (err == GW_OK && inbound_before > 0) {
		r.inbound = true;
		n = 0;
		atomic_fetch_add(&s->res_gen, 1);
		err =
		    s->ops->prune_inbound(s->conn, inbound_before, 0, true, &n);
		atomic_fetch_add(&s->res_gen, 1);
		r.in_n = n;
	}
	if (err != GW_OK)
		log_warnx("event=prune_failed error=\"%s\"", gw_strerror(err));
	else
		store_ret_said(&r, "");
	return err;
}

enum gw_err
store_stats(struct store *s, struct store_stat **out, size_t *n)
{
	return s->ops->stats(s->conn, out, n);
}

enum gw_err
store_stats_recent(struct store *s, struct store_stat **out, size_t *n)
{
	struct store_stat *v = NULL;

	if (!s->upkeep_started)
		return store_stats(s, out, n);
	pthread_mutex_lock(&s->mu);
	if (!s->stats_have) {
		pthread_mutex_unlock(&s->mu);
		return store_stats(s, out, n);
	}
	if (s->stats_n > 0 && (v = malloc(s->stats_n * sizeof(*v))) == NULL) {
		pthread_mutex_unlock(&s->mu);
		return GW_NOMEM;
	}
	if (v != NULL)
		memcpy(v, s->stats_v, s->stats_n * sizeof(*v));
	*out = v;
	*n = s->stats_n;
	pthread_mutex_unlock(&s->mu);
	return GW_OK;
}

#define STORE_HOUR_MS INT64_C(3600000)
#define STORE_DAY_MS  INT64_C(86400000)

/* Split [lo, hi) into whole units [*u0, *u1) and the ms ranges at its
 * ends; a range inside one unit is all edge. */
static void
store_agg_split_unit(int64_t lo, int64_t hi, int64_t unit, int64_t *u0,
		     int64_t *u1, int64_t edge[2][2])
{
	*u0 = lo / unit + (lo % unit != 0);
	/* unbounded: every unit from u0 on is whole */
	*u1 = hi == INT64_MAX ? INT64_MAX : hi / unit;
	if (*u0 >= *u1) {
		*u0 = *u1 = 0;
		edge[0][0] = lo;
		edge[0][1] = hi;
		edge[1][0] = edge[1][1] = 0;
		return;
	}
	edge[0][0] = lo;
	edge[0][1] = *u0 * unit;
	edge[1][0] = hi == INT64_MAX ? 0 : *u1 * unit;
	edge[1][1] = hi == INT64_MAX ? 0 : hi;
}

void
store_agg_split(int64_t from, int64_t to, struct store_agg_range *out)
{
	int64_t lo = from > 0 ? from : 0, hi = to > 0 ? to : INT64_MAX;

	memset(out, 0, sizeof(*out));
	if (hi <= lo)
		return; /* nothing: every range empty */
	store_agg_split_unit(lo, hi, STORE_HOUR_MS, &out->h0, &out->h1,
			     out->hedge);
	store_agg_split_unit(lo, hi, STORE_DAY_MS, &out->d0, &out->d1,
			     out->dedge);
	out->f0 = lo / STORE_HOUR_MS;
	out->f1 = hi == INT64_MAX
		      ? INT64_MAX
		      : hi / STORE_HOUR_MS + (hi % STORE_HOUR_MS != 0);
}

int64_t
store_agg_bucket_ms(int64_t bucket, int64_t *lo, int64_t *hi)
{
	int64_t e, m, w = 1;

	if (bucket < 1000) {
		*lo = bucket;
		*hi = bucket + 1;
		return bucket;
	}
	e = (bucket - 1000) / 900 + 1;
	m = (bucket - 1000) % 900 + 100;
	for (int64_t i = 0; i < e && w < INT64_MAX / 100; i++)
		w *= 10;
	*lo = m * w;
	*hi = *lo + w;
	return *lo + w / 2;
}

enum gw_err
store_report_agg(struct store *s, int64_t from, int64_t to, store_agg_fn fn,
		 void *arg)
{
	struct store_agg_range r;

	store_agg_split(from, to, &r);
	return s->ops->report_agg(s->conn, &r, fn, arg);
}

enum gw_err
store_expire(struct store *s, int64_t before, int64_t now, size_t *count)
{
	size_t n = 0;
	enum gw_err err = s->ops->expire(s->conn, before, now, 0, &n);

	if (err == GW_OK && n > 0)
		log_info("event=store_expired rows=%zu", n);
	if (count != NULL)
		*count = n;
	return err;
}

enum gw_err
store_expire_later(struct store *s, int64_t before, int64_t now, size_t *count)
{
	if (!s->upkeep_started)
		return store_expire(s, before, now, count);
	pthread_mutex_lock(&s->mu);
	s->exp_asked = true;
	s->exp_before = before;
	s->exp_now = now;
	if (count != NULL)
		*count = s->exp_done;
	s->exp_done = 0;
	pthread_cond_signal(&s->upkeep_cv);
	pthread_mutex_unlock(&s->mu);
	return GW_OK;
}

enum gw_err
store_reschedule(struct store *s, const char *receiver, int64_t now,
		 size_t *count)
{
	size_t n = 0;
	enum gw_err err = s->ops->reschedule(s->conn, receiver, now, &n);

	if (count != NULL)
		*count = n;
	return err;
}

enum gw_err
store_holds(struct store *s, struct store_hold **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return s->ops->holds(s->conn, out, n);
}

enum gw_err
store_hold_fail(struct store *s, const char *receiver, const char *reason,
		int64_t now, const struct store_backoff *b, uint32_t rnd,
		int64_t not_before, bool *changed, struct store_hold *out)
{
	memset(out, 0, sizeof(*out));
	*changed = false;
	return s->ops->hold_fail(s->conn, receiver, reason, now, b, rnd,
				 not_before, changed, out);
}

enum gw_err
store_hold_probe(struct store *s, const char *receiver, int64_t now,
		 int64_t probe_until)
{
	return s->ops->hold_probe(s->conn, receiver, now, probe_until);
}

enum gw_err
store_hold_clear(struct store *s, const char *receiver, bool *was)
{
	bool dummy = false;

	if (was == NULL)
		was = &dummy;
	*was = false;
	return s->ops->hold_clear(s->conn, receiver, was);
}

void
store_metrics_update(struct store *s, int64_t now)
{
	struct store_stat *st = NULL;
	char labels[96];
	size_t n = 0;

	if (store_stats_recent(s, &st, &n) != GW_OK)
		return;
	metrics_describe("pzpgw_queue_depth", METRICS_GAUGE,
			 "Outbox rows per state and receiver.");
	metrics_describe("pzpgw_queue_oldest_age_seconds", METRICS_GAUGE,
			 "Age of the oldest outbox row per state and "
			 "receiver.");
	metrics_clear("pzpgw_queue_depth");
	metrics_clear("pzpgw_queue_oldest_age_seconds");
	for (size_t i = 0; i < n; i++) {
		labels[0] = '\0';
		metrics_label(labels, sizeof(labels), "receiver",
			      st[i].receiver);
		metrics_label(labels, sizeof(labels), "state",
			      store_state_name(st[i].state));
		metrics_set("pzpgw_queue_depth", labels, (double)st[i].count);
		metrics_set("pzpgw_queue_oldest_age_seconds", labels,
			    (double)(now - st[i].oldest_accepted_at) / 1000.0);
	}
	free(st);
}

static enum gw_err
store_statvfs(void *arg, const char *dir, uint64_t *bytes)
{
	struct statvfs sv;

	if (statvfs(dir, &sv) != 0)
		return GW_IO;
	*bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	return GW_OK;
}

void
store_set_free_space_fn(struct store *s, store_free_space_fn fn, void *arg)
{
	s->free_fn = fn;
	s->free_arg = arg;
}

/* Bytes that may still be written before min_free is reached;
 * UINT64_MAX without a limit or when the free space cannot be read
 * (never block intake on a failed probe). Any thread; logs nothing. */
static uint64_t
store_room(struct store *s)
{
	store_free_space_fn fn =
	    s->free_fn != NULL ? s->free_fn : store_statvfs;
	uint64_t bytes;

	if (s->opts.min_free == 0 || fn(s->free_arg, s->dir, &bytes) != GW_OK)
		return UINT64_MAX;
	return bytes > s->opts.min_free ? bytes - s->opts.min_free : 0;
}

void
store_set_deadline(struct store *s, int64_t mono_ms)
{
	if (s->ops->set_deadline != NULL)
		s->ops->set_deadline(s->conn, mono_ms);
}

bool
store_reachable(struct store *s)
{
	uint64_t at;

	if (s->ops->ping == NULL)
		return true;
	if (!s->upkeep_started)
		return s->ops->ping(s->conn) == GW_OK;
	/* The upkeep thread's answer, if recent: a ping that has not come
	   back within STORE_REACH_STALE_MS is an unreachable server. */
	at = atomic_load(&s->reach_at);
	return atomic_load(&s->reach_ok) &&
	       util_mono_ms() - at < STORE_REACH_STALE_MS;
}

bool
store_disk_ok(struct store *s)
{
	store_free_space_fn fn =
	    s->free_fn != NULL ? s->free_fn : store_statvfs;
	uint64_t bytes;

	if (s->opts.min_free == 0)
		return true;
	if (fn(s->free_arg, s->dir, &bytes) != GW_OK) {
		char dir[128];

		log_warn("event=store_statvfs_failed dir=%s",
			 log_safe(dir, sizeof(dir), s->dir));
		return true;
	}
	return bytes >= s->opts.min_free;
}

bool
store_intake_ok(struct store *s, size_t len, const char **reason)
{
	enum store_file_state st = store_file_state(s);

	if (st != STORE_FILE_OK) {
		*reason = store_file_state_name(st);
		return false;
	}
	if (store_room(s) < STORE_DISK_NEED(len)) {
		*reason = "disk_low";
		return false;
	}
	return true;
}

const unsigned char *
store_index_secret(const struct store *s)
{
	return s->has_secret ? s->secret : NULL;
}

enum gw_err
store_reader_open(struct store *s, struct store_reader **out)
{
	struct store_reader *r;
	enum gw_err err;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return GW_NOMEM;
	r->s = s;
	/* A connection of its own: in WAL mode its reads never wait for
	   the writer thread's commits, nor hold them up. */
	if ((err = s->ops->conn_open(&s->opts, false, &r->conn)) != GW_OK) {
		free(r);
		return err;
	}
	*out = r;
	return GW_OK;
}

void
store_reader_free(struct store_reader *r)
{
	if (r == NULL)
		return;
	r->s->ops->conn_close(r->conn);
	free(r);
}

enum gw_err
store_res_snapshot(struct store_reader *r, int64_t *seq)
{
	*seq = 0;
	return r->s->ops->res_snapshot(r->conn, seq);
}

uint64_t
store_res_generation(const struct store_reader *r)
{
	return atomic_load(&r->s->res_gen);
}

enum gw_err
store_reader_begin(struct store_reader *r)
{
	if (store_away(r->s))
		return GW_TEMP; /* the request's 503 at once */
	return r->s->ops->res_txn(r->conn, true);
}

void
store_reader_end(struct store_reader *r)
{
	if (r != NULL)
		(void)r->s->ops->res_txn(r->conn, false);
}

enum gw_err
store_res_find(struct store_reader *r, const struct store_res_query *q,
	       struct store_res **out, size_t *n)
{
	return r->s->ops->res_find(r->conn, q, out, n);
}

enum gw_err
store_inbox_list(struct store *s, const struct store_inbox_filter *f,
		 struct store_inbox **out, size_t *n)
{
	return s->ops->inbox_list(s->conn, f, out, n);
}

enum gw_err
store_prune_inbound(struct store *s, int64_t before, size_t *count)
{
	size_t n = 0;
	enum gw_err err;

	/* Odd from before the first delete until after the last commit
	   (store_res_generation). */
	atomic_fetch_add(&s->res_gen, 1);
	err = s->ops->prune_inbound(s->conn, before, 0, true, &n);
	atomic_fetch_add(&s->res_gen, 1);

	if (count != NULL)
		*count = n;
	return err;
}
