/*
 * The worker-thread pool (workpool.h): a queue under one mutex, workers
 * waiting on a condition variable, and a pipe that wakes the loop thread
 * when the done list becomes non-empty.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "util.h"
#include "workpool.h"

struct workpool_worker {
	struct workpool *wp;
	void *ctx; /* worker_init's, owned */
	pthread_t thread;
	bool started;
	bool has_ctx;
};

struct workpool {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t idle; /* no job queued or running */
	struct workpool_job *todo, *todo_tail;
	struct workpool_job *done, *done_tail;
	unsigned queued; /* jobs in todo */
	unsigned busy;	 /* jobs being run */
	bool stop;
	int fds[2]; /* workers -> loop thread: jobs are done */
	struct event *ev;
	struct workpool_ops ops;
	void *arg;
	unsigned nworkers; /* entries of workers set up (maybe not started) */
	struct workpool_worker *workers;
};

/* Loop thread: finish every job the workers are done with. */
static void
pool_collect(struct workpool *wp)
{
	struct workpool_job *j, *next;

	pthread_mutex_lock(&wp->mu);
	j = wp->done;
	wp->done = wp->done_tail = NULL;
	pthread_mutex_unlock(&wp->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->next = NULL;
		wp->ops.finish(j, wp->arg);
	}
}

static void
on_jobs_done(evutil_socket_t fd, short what, void *arg)
{
	char drain[64];

	(void)what;
	/* Drain the wake-ups before taking the list: a job finished after
	 * this point writes again. */
	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pool_collect(arg);
}

static void *
worker_main(void *arg)
{
	struct workpool_worker *w = arg;
	struct workpool *wp = w->wp;
	struct workpool_job *j;
	bool wake;

	if (wp->ops.name != NULL)
		util_thread_name(wp->ops.name);
	pthread_mutex_lock(&wp->mu);
	for (;;) {
		while (wp->todo == NULL && !wp->stop)
			pthread_cond_wait(&wp->work, &wp->mu);
		if (wp->todo == NULL)
			break;
		j = wp->todo;
		if ((wp->todo = j->next) == NULL)
			wp->todo_tail = NULL;
		j->next = NULL;
		wp->queued--;
		wp->busy++;
		pthread_mutex_unlock(&wp->mu);

		wp->ops.run(j, w->ctx);

		pthread_mutex_lock(&wp->mu);
		wp->busy--;
		wake = wp->done == NULL;
		if (wp->done_tail != NULL)
			wp->done_tail->next = j;
		else
			wp->done = j;
		wp->done_tail = j;
		if (wp->todo == NULL && wp->busy == 0)
			pthread_cond_broadcast(&wp->idle);
		if (wake) {
			/* Non-blocking; a full pipe already wakes the loop. */
			ssize_t n = write(wp->fds[1], "j", 1);

			(void)n;
		}
	}
	pthread_mutex_unlock(&wp->mu);
	return NULL;
}

enum gw_err
workpool_start(struct workpool **out, struct event_base *base, unsigned n,
	       const struct workpool_ops *ops, void *arg)
{
	struct workpool *wp;
	enum gw_err err = GW_NOMEM;

	*out = NULL;
	if (n == 0)
		n = 1;
	if ((wp = calloc(1, sizeof(*wp))) == NULL)
		return GW_NOMEM;
	wp->ops = *ops;
	wp->arg = arg;
	wp->fds[0] = wp->fds[1] = -1;
	pthread_mutex_init(&wp->mu, NULL);
	pthread_cond_init(&wp->work, NULL);
	pthread_cond_init(&wp->idle, NULL);
	if ((wp->workers = calloc(n, sizeof(*wp->workers))) == NULL)
		goto fail;
	if (pipe(wp->fds) != 0 || fcntl(wp->fds[0], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(wp->fds[1], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(wp->fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
	    fcntl(wp->fds[1], F_SETFD, FD_CLOEXEC) != 0) {
		err = GW_IO;
		goto fail;
	}
	wp->ev =
	    event_new(base, wp->fds[0], EV_READ | EV_PERSIST, on_jobs_done, wp);
	if (wp->ev == NULL || event_add(wp->ev, NULL) != 0)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		struct workpool_worker *w = &wp->workers[i];

		w->wp = wp;
		wp->nworkers = i + 1;
		if (ops->worker_init != NULL) {
			if ((err = ops->worker_init(arg, &w->ctx)) != GW_OK)
				goto fail;
			w->has_ctx = true;
		}
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			err = GW_IO;
			goto fail;
		}
		w->started = true;
	}
	*out = wp;
	return GW_OK;
fail:
	workpool_stop(wp);
	return err;
}

enum gw_err
workpool_submit(struct workpool *wp, struct workpool_job *job, unsigned bound)
{
	enum gw_err err = GW_OK;

	job->next = NULL;
	pthread_mutex_lock(&wp->mu);
	if (bound > 0 && wp->queued >= bound) {
		err = GW_TEMP;
	} else {
		if (wp->todo_tail != NULL)
			wp->todo_tail->next = job;
		else
			wp->todo = job;
		wp->todo_tail = job;
		wp->queued++;
	}
	pthread_mutex_unlock(&wp->mu);
	/* After the unlock: a worker woken while the mutex is still held
	   would only wake to wait for it again. */
	if (err == GW_OK)
		pthread_cond_signal(&wp->work);
	return err;
}

unsigned
workpool_queued(struct workpool *wp)
{
	unsigned n;

	pthread_mutex_lock(&wp->mu);
	n = wp->queued;
	pthread_mutex_unlock(&wp->mu);
	return n;
}

void
workpool_drain(struct workpool *wp)
{
	pthread_mutex_lock(&wp->mu);
	while (wp->todo != NULL || wp->busy > 0)
		pthread_cond_wait(&wp->idle, &wp->mu);
	pthread_mutex_unlock(&wp->mu);
	pool_collect(wp);
}

void
workpool_stop(struct workpool *wp)
{
	if (wp == NULL)
		return;
	workpool_drain(wp);
	pthread_mutex_lock(&wp->mu);
	wp->stop = true;
	pthread_cond_broadcast(&wp->work);
	pthread_mutex_unlock(&wp->mu);
	for (unsigned i = 0; i < wp->nworkers; i++) {
		struct workpool_worker *w = &wp->workers[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		if (w->has_ctx && wp->ops.worker_cleanup != NULL)
			wp->ops.worker_cleanup(wp->arg, w->ctx);
	}
	if (wp->ev != NULL)
		event_free(wp->ev);
	if (wp->fds[0] >= 0)
		close(wp->fds[0]);
	if (wp->fds[1] >= 0)
		close(wp->fds[1]);
	pthread_cond_destroy(&wp->idle);
	pthread_cond_destroy(&wp->work);
	pthread_mutex_destroy(&wp->mu);
	free(wp->workers);
	free(wp);
}
