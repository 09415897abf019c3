/*
 * The operator console on the admin listener: server-rendered pages
 * (overview, queue, usage, validation playground) with inline SVG charts,
 * a token login when [admin] token_file is set, CSRF tokens on every
 * POST, and the store read on worker threads of its own, never on the
 * event loop.
 */
#ifndef GW_CONSOLE_H
#define GW_CONSOLE_H

#include <stddef.h>

#include "err.h"
#include "http.h"

struct event_base;
struct rules_set;
struct store;
struct workpool;

/* Most console worker threads (pages are few; they must not take the
 * cores intake needs). */
#define CONSOLE_MAX_WORKERS 2
/* The console worker's nice value: a page over a large store yields the
 * CPU to intake, pulls and delivery, so refreshing the console adds no
 * latency there (Linux: nice is per thread). */
#define CONSOLE_NICE 10

struct console {
	/* The daemon's store: console actions go to its audit trail
	   (store_submit_audit). Set before console_workers_start;
	   borrowed. Pages read through connections of their own. */
	struct store *store;
	/* The playground's rules (R4, STU3); borrowed from intake. */
	const struct rules_set *rules[2];
	/* Called on the loop thread after an action made rows due (the
	   deliverer's kick); may be NULL. */
	void (*kick)(void *arg);
	void *kick_arg;
	struct workpool *pool;
	/* Key of the CSRF tokens, random per start. */
	unsigned char secret[32];
	/* The token of [admin] token_file, read again when the file
	   changes (SIGHUP, or a new token written in place). */
	char token_path[4096];
	long long token_mtime_ns;
	char token[256];
	size_t token_len;
};

/* Make the CSRF key. GW_OK, or GW_IO without randomness. */
enum gw_err console_init(struct console *c);

/*
 * Start n (at most CONSOLE_MAX_WORKERS) worker threads on base. Each opens
 * its own read-only store connection at its first page (and a writable
 * one at its first action) from the request's configuration.
 */
enum gw_err console_workers_start(struct console *c, struct event_base *base,
				  unsigned n);
/* Answer what is queued and stop the workers; no-op without them. */
void console_workers_stop(struct console *c);
/* Wipe the token; safe on a zeroed struct. */
void console_cleanup(struct console *c);

/* Every console route of the admin listener; arg is a struct console. */
void console_handle(struct http_req *req, void *arg);

#endif
