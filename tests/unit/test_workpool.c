/* Unit tests for workpool: real threads, a real pipe and a real libevent
 * loop on the test's thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <pthread.h>

#include <event2/event.h>

#include "workpool.h"

#define NJOBS 64
#define NCTX  8

struct wctx {
	unsigned id;
	pthread_t thread; /* the worker that ran with this context */
	atomic_bool seen;
	atomic_int running; /* runs in progress with this context */
	atomic_bool exited; /* its worker's thread has ended */
	bool cleaned;
};

struct job {
	unsigned n;
	struct workpool_job link;
	struct wctx *ctx; /* the context run got */
	pthread_t ran_on;
	bool thread_ok; /* ran on its context's worker */
	atomic_int runs;
	int finishes;
	bool finished_on_loop;
	bool gate; /* run waits for the fixture's gate */
};

struct fixture {
	struct event_base *base;
	pthread_t loop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open;	  /* the gate */
	atomic_int gated; /* gated runs started */
	struct wctx ctx[NCTX];
	unsigned ninit;
	unsigned ncleanup;
	unsigned fail_at; /* worker_init fails for this worker (1-based) */
	int nfinished;
	struct job jobs[NJOBS];
	/* Left running by a failed test: teardown stops it. */
	struct workpool *wp;
	pthread_t opener;
	bool has_opener;
};

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static enum gw_err
t_init(void *arg, void **wctx)
{
	struct fixture *fx = arg;

	if (fx->ninit + 1 == fx->fail_at)
		return GW_NOMEM;
	assert_true(pthread_equal(pthread_self(), fx->loop));
	*wctx = &fx->ctx[fx->ninit];
	fx->ctx[fx->ninit].id = fx->ninit;
	fx->ninit++;
	return GW_OK;
}

static void
t_cleanup(void *arg, void *wctx)
{
	struct fixture *fx = arg;
	struct wctx *c = wctx;

	assert_true(pthread_equal(pthread_self(), fx->loop));
	/* Joined first: nothing runs with the context any more, and the
	 * thread that used it has ended. */
	assert_int_equal(atomic_load(&c->running), 0);
	if (atomic_load(&c->seen))
		assert_true(atomic_load(&c->exited));
	assert_false(c->cleaned);
	c->cleaned = true;
	fx->ncleanup++;
}

static struct fixture *the_fx;
/* Set in a worker to its context: its destructor marks the thread's end. */
static pthread_key_t exit_key;

static void
on_thread_exit(void *wctx)
{
	struct wctx *c = wctx;

	atomic_store(&c->exited, true);
}

static void
t_run(struct workpool_job *link, void *wctx)
{
	struct job *j = WORKPOOL_JOB(link, struct job, link);
	struct wctx *c = wctx;
	bool expected = false;

	atomic_fetch_add(&c->running, 1);
	pthread_setspecific(exit_key, c);
	j->ctx = c;
	j->ran_on = pthread_self();
	/* A context belongs to one worker: the first run names it. */
	if (atomic_compare_exchange_strong(&c->seen, &expected, true))
		c->thread = pthread_self();
	j->thread_ok = pthread_equal(c->thread, pthread_self());
	if (j->gate) {
		pthread_mutex_lock(&the_fx->mu);
		atomic_fetch_add(&the_fx->gated, 1);
		while (!the_fx->open)
			pthread_cond_wait(&the_fx->cv, &the_fx->mu);
		pthread_mutex_unlock(&the_fx->mu);
	} else {
		sleep_ms(j->n % 3);
	}
	atomic_fetch_add(&j->runs, 1);
	atomic_fetch_sub(&c->running, 1);
}

static void
t_finish(struct workpool_job *link, void *arg)
{
	struct fixture *fx = arg;
	struct job *j = WORKPOOL_JOB(link, struct job, link);

	j->finishes++;
	j->finished_on_loop = pthread_equal(pthread_self(), fx->loop);
	/* run is over before finish starts. */
	assert_int_equal(atomic_load(&j->runs), 1);
	fx->nfinished++;
}

static const struct workpool_ops ops = {
    .worker_init = t_init,
    .worker_cleanup = t_cleanup,
    .run = t_run,
    .finish = t_finish,
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->loop = pthread_self();
	pthread_mutex_init(&fx->mu, NULL);
	pthread_cond_init(&fx->cv, NULL);
	for (unsigned i = 0; i < NJOBS; i++)
		fx->jobs[i].n = i;
	the_fx = fx;
	*state = fx;
	return 0;
}

static void open_gate(struct fixture *fx);

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	/* After a failed assertion: let the workers end before the gate's
	 * mutex and the fixture go away. */
	open_gate(fx);
	if (fx->has_opener)
		pthread_join(fx->opener, NULL);
	workpool_stop(fx->wp);
	event_base_free(fx->base);
	pthread_cond_destroy(&fx->cv);
	pthread_mutex_destroy(&fx->mu);
	free(fx);
	the_fx = NULL;
	return 0;
}

static void
open_gate(struct fixture *fx)
{
	pthread_mutex_lock(&fx->mu);
	fx->open = true;
	pthread_cond_broadcast(&fx->cv);
	pthread_mutex_unlock(&fx->mu);
}

static void *
opener_main(void *arg)
{
	sleep_ms(100);
	open_gate(arg);
	return NULL;
}

/* Every job ran once in a worker with that worker's context, and the
 * event loop (woken by the pipe) finished each once on this thread. */
static void
test_run_in_workers_finish_on_loop(void **state)
{
	struct fixture *fx = *state;
	struct workpool **wpp = &fx->wp, *wp;
	bool used[NCTX] = {false};

	assert_int_equal(workpool_start(wpp, fx->base, 4, &ops, fx), GW_OK);
	wp = *wpp;
	assert_non_null(wp);
	assert_int_equal(fx->ninit, 4);
	for (unsigned i = 0; i < NJOBS; i++)
		assert_int_equal(workpool_submit(wp, &fx->jobs[i].link, 0),
				 GW_OK);
	/* Nothing is finished before the loop runs. */
	assert_int_equal(fx->nfinished, 0);
	for (int spins = 0; fx->nfinished < NJOBS && spins < 10000; spins++)
		event_base_loop(fx->base, EVLOOP_ONCE);
	assert_int_equal(fx->nfinished, NJOBS);
	for (unsigned i = 0; i < NJOBS; i++) {
		struct job *j = &fx->jobs[i];

		assert_int_equal(atomic_load(&j->runs), 1);
		assert_int_equal(j->finishes, 1);
		assert_true(j->finished_on_loop);
		assert_false(pthread_equal(j->ran_on, fx->loop));
		assert_true(j->ctx >= &fx->ctx[0] && j->ctx < &fx->ctx[4]);
		assert_true(j->thread_ok);
		used[j->ctx->id] = true;
	}
	/* Four workers, four threads. */
	for (unsigned a = 0; a < 4; a++)
		for (unsigned b = a + 1; b < 4; b++)
			if (used[a] && used[b])
				assert_false(pthread_equal(fx->ctx[a].thread,
							   fx->ctx[b].thread));
	workpool_stop(wp);
	fx->wp = NULL;
	assert_int_equal(fx->ncleanup, 4);
	assert_int_equal(fx->nfinished, NJOBS);
}

/* drain returns only when every job ran, and finishes them itself
 * (the event loop never runs here). */
static void
test_drain_waits(void **state)
{
	struct fixture *fx = *state;
	struct workpool **wpp = &fx->wp, *wp;
	bool opened;

	assert_int_equal(workpool_start(wpp, fx->base, 2, &ops, fx), GW_OK);
	wp = *wpp;
	fx->jobs[0].gate = true;
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(workpool_submit(wp, &fx->jobs[i].link, 0),
				 GW_OK);
	while (atomic_load(&fx->gated) == 0)
		sleep_ms(1);
	/* Another thread opens the gate later: drain must wait for it. */
	assert_int_equal(pthread_create(&fx->opener, NULL, opener_main, fx), 0);
	fx->has_opener = true;
	workpool_drain(wp);
	pthread_mutex_lock(&fx->mu);
	opened = fx->open;
	pthread_mutex_unlock(&fx->mu);
	assert_true(opened);
	assert_int_equal(fx->nfinished, 16);
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(fx->jobs[i].finishes, 1);
		assert_true(fx->jobs[i].finished_on_loop);
	}
	pthread_join(fx->opener, NULL);
	fx->has_opener = false;
	/* A second drain has nothing to do. */
	workpool_drain(wp);
	assert_int_equal(fx->nfinished, 16);
	workpool_stop(wp);
	fx->wp = NULL;
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(fx->jobs[i].finishes, 1);
}

/* stop waits for queued and running jobs, finishes each once, joins the
 * workers and only then cleans their contexts (t_cleanup checks). */
static void
test_stop_joins(void **state)
{
	struct fixture *fx = *state;
	struct workpool **wpp = &fx->wp, *wp;

	assert_int_equal(workpool_start(wpp, fx->base, 3, &ops, fx), GW_OK);
	wp = *wpp;
	fx->jobs[5].gate = true;
	for (unsigned i = 0; i < 32; i++)
		assert_int_equal(workpool_submit(wp, &fx->jobs[i].link, 0),
				 GW_OK);
	assert_int_equal(pthread_create(&fx->opener, NULL, opener_main, fx), 0);
	fx->has_opener = true;
	workpool_stop(wp);
	fx->wp = NULL;
	pthread_join(fx->opener, NULL);
	fx->has_opener = false;
	assert_int_equal(fx->ncleanup, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_true(fx->ctx[i].cleaned);
	assert_int_equal(fx->nfinished, 32);
	for (unsigned i = 0; i < 32; i++) {
		assert_int_equal(atomic_load(&fx->jobs[i].runs), 1);
		assert_int_equal(fx->jobs[i].finishes, 1);
		assert_true(fx->jobs[i].finished_on_loop);
	}
	workpool_stop(NULL);
}

/* A bound counts the jobs waiting for a worker, not the running ones;
 * a refused job is never run nor finished. */
static void
test_bound_refuses(void **state)
{
	struct fixture *fx = *state;
	struct workpool **wpp = &fx->wp, *wp;

	assert_int_equal(workpool_start(wpp, fx->base, 1, &ops, fx), GW_OK);
	wp = *wpp;
	fx->jobs[0].gate = true;
	assert_int_equal(workpool_submit(wp, &fx->jobs[0].link, 2), GW_OK);
	while (atomic_load(&fx->gated) == 0)
		sleep_ms(1);
	assert_int_equal(workpool_queued(wp), 0);
	assert_int_equal(workpool_submit(wp, &fx->jobs[1].link, 2), GW_OK);
	assert_int_equal(workpool_submit(wp, &fx->jobs[2].link, 2), GW_OK);
	assert_int_equal(workpool_queued(wp), 2);
	assert_int_equal(workpool_submit(wp, &fx->jobs[3].link, 2), GW_TEMP);
	assert_int_equal(workpool_queued(wp), 2);
	/* A larger bound, or none, still takes it. */
	assert_int_equal(workpool_submit(wp, &fx->jobs[4].link, 3), GW_OK);
	assert_int_equal(workpool_submit(wp, &fx->jobs[5].link, 0), GW_OK);
	assert_int_equal(workpool_queued(wp), 4);
	open_gate(fx);
	workpool_drain(wp);
	assert_int_equal(workpool_queued(wp), 0);
	assert_int_equal(fx->nfinished, 5);
	assert_int_equal(atomic_load(&fx->jobs[3].runs), 0);
	assert_int_equal(fx->jobs[3].finishes, 0);
	/* Room again once the queue emptied. */
	assert_int_equal(workpool_submit(wp, &fx->jobs[3].link, 1), GW_OK);
	workpool_stop(wp);
	fx->wp = NULL;
	assert_int_equal(fx->jobs[3].finishes, 1);
	assert_int_equal(fx->nfinished, 6);
}

/* A worker whose context cannot be made: the error, no pool, and the
 * contexts already made cleaned up. */
static void
test_init_failure(void **state)
{
	struct fixture *fx = *state;
	struct workpool *wp = (struct workpool *)fx; /* must be reset */

	fx->fail_at = 3;
	assert_int_equal(workpool_start(&wp, fx->base, 4, &ops, fx), GW_NOMEM);
	assert_null(wp);
	assert_int_equal(fx->ninit, 2);
	assert_int_equal(fx->ncleanup, 2);
	assert_true(fx->ctx[0].cleaned && fx->ctx[1].cleaned);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_run_in_workers_finish_on_loop,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain_waits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_joins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bound_refuses, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_init_failure, setup, teardown),
	};

	if (pthread_key_create(&exit_key, on_thread_exit) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
