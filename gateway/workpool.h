/*
 * A pool of worker threads beside the libevent loop: the loop thread
 * submits jobs, a worker runs each with that worker's own context, and
 * the loop thread finishes it (woken through a pipe). Used by intake.c
 * (each worker owns a validate_ctx) and provider.c (each worker owns a
 * store_reader).
 */
#ifndef GW_WORKPOOL_H
#define GW_WORKPOOL_H

#include <stddef.h>

#include "err.h"

struct event_base;
struct workpool;

/* The pool's link, embedded in the caller's job; WORKPOOL_JOB gets the
 * job back from it. The caller owns the job throughout: the pool only
 * chains it between submit and finish. */
struct workpool_job {
	struct workpool_job *next;
};

#define WORKPOOL_JOB(link, type, member)                                       \
	((type *)(void *)((char *)(link)-offsetof(type, member)))

struct workpool_ops {
	/* Loop thread, in workpool_start, once per worker before it starts:
	 * make its context (*wctx, owned by the pool until worker_cleanup).
	 * NULL: every worker's context is NULL. */
	enum gw_err (*worker_init)(void *arg, void **wctx);
	/* Loop thread, in workpool_stop after the worker is joined (or
	 * when start fails): free what worker_init made. May be NULL. */
	void (*worker_cleanup)(void *arg, void *wctx);
	/* A worker: the job's work, touching only job and wctx. */
	void (*run)(struct workpool_job *job, void *wctx);
	/* Loop thread (from the event loop, workpool_drain or
	 * workpool_stop): exactly once per job, after run; the job is the
	 * caller's again (finish usually frees it). */
	void (*finish)(struct workpool_job *job, void *arg);
	/* The workers' thread name (util_thread_name), e.g. "pzpgw-pull";
	 * NULL: they keep the process's. */
	const char *name;
};

/*
 * Loop thread: start n (>= 1) workers, each with its own context, and a
 * wake-up event on base. ops (copied) and arg (borrowed, passed to
 * worker_init, worker_cleanup and finish) must outlive the pool. On
 * GW_OK, *out is the pool (the caller owns it: workpool_stop); otherwise
 * *out is NULL and nothing is left running: GW_NOMEM, GW_IO (pipe or
 * thread), or worker_init's error.
 */
enum gw_err workpool_start(struct workpool **out, struct event_base *base,
			   unsigned n, const struct workpool_ops *ops,
			   void *arg);

/* Loop thread: queue job for a worker. bound > 0: GW_TEMP (job not
 * queued, still the caller's) when bound jobs already wait for a worker
 * (running ones do not count). GW_OK otherwise. */
enum gw_err workpool_submit(struct workpool *wp, struct workpool_job *job,
			    unsigned bound);

/* Jobs waiting for a worker (not counting running ones); any thread. */
unsigned workpool_queued(struct workpool *wp);

/* Loop thread: wait until no job is queued or running, then finish the
 * done ones. Jobs that finish submits are not waited for. */
void workpool_drain(struct workpool *wp);

/* Loop thread: drain, stop and join the workers, clean up their
 * contexts and free wp. NULL: no-op. */
void workpool_stop(struct workpool *wp);

#endif
