/*
 * deliver: sends queued care plans to the receiving organisations'
 * gateways. libcurl's multi interface on the daemon's libevent loop,
 * mutual TLS with the gateway's own certificate, the receiver's server
 * certificate checked for the configured URA; per-receiver concurrency,
 * exponential backoff with jitter, dead letter past the maximum age.
 */
#ifndef GW_DELIVER_H
#define GW_DELIVER_H

#include <event2/event.h>

#include "config.h"
#include "err.h"
#include "store.h"

struct deliver;

/*
 * A deliverer on base over store (both borrowed until deliver_free) with
 * cfg (borrowed until the next deliver_reconfigure). Rows whose receiver
 * has a [peer] endpoint are delivered, and notices (STORE_NOTICE) to a
 * peer with a notify URL are posted there; it claims nothing until
 * deliver_kick or its own timer. On failure errbuf says why.
 */
enum gw_err deliver_new(struct event_base *base, struct store *store,
			const struct config *cfg, struct deliver **out,
			char *errbuf, size_t errlen);

/* Converts a stored R4 message (len bytes of doc) into the signed STU3
 * bytes a [peer] with fhir = stu3 receives (*out heap, caller frees;
 * *notes: issues the conversion reported); GW_INVALID with errbuf when it
 * has no STU3 form. The daemon's is intake_to_stu3. */
typedef enum gw_err (*deliver_stu3_fn)(void *arg, const void *doc, size_t len,
				       char **out, size_t *out_len,
				       size_t *notes, char *errbuf,
				       size_t errlen);
/* Set the converter for STU3 receivers (arg borrowed until deliver_free);
 * without one a message for such a receiver is dead-lettered. */
void deliver_set_stu3(struct deliver *d, deliver_stu3_fn fn, void *arg);

/* Rows may have become due (an accept was committed, an operator acted):
 * claim and start what the limits allow, soon, from the loop. */
void deliver_kick(struct deliver *d);

/* New configuration (SIGHUP): routes, limits, client certificate. */
void deliver_reconfigure(struct deliver *d, const struct config *cfg);

/* Stop claiming; transfers in flight are abandoned and their rows made
 * due again, so nothing is lost and the next start retries them. */
void deliver_stop(struct deliver *d);

/* Free the deliverer (after deliver_stop); NULL is a no-op. */
void deliver_free(struct deliver *d);

#endif
