/*
 * One error enum for the whole gateway. Every failure is either temporary
 * (the caller may retry later) or permanent (reject, dead-letter).
 */
#ifndef GW_ERR_H
#define GW_ERR_H

#include <stdbool.h>

enum gw_err {
	GW_OK = 0,
	GW_NOMEM,    /* allocation failed: temporary */
	GW_IO,	     /* file or socket I/O failed: temporary */
	GW_TEMP,     /* any other temporary condition (busy, disk low) */
	GW_PARSE,    /* input is not well-formed: permanent */
	GW_INVALID,  /* well-formed but breaks a rule: permanent */
	GW_TOOBIG,   /* input exceeds a configured limit: permanent */
	GW_NOTFOUND, /* no such object: permanent */
	GW_EXISTS,   /* already present (duplicate): permanent */
	GW_DENIED,   /* identity or permission refused: permanent */
	GW_CRYPTO,   /* signature, key or certificate failure: permanent */
	GW_CONFIG,   /* configuration error: permanent */
	GW_PERM,     /* any other permanent failure */
	GW_ERR_COUNT
};

/* Short static description of err; never NULL. */
const char *gw_strerror(enum gw_err err);

/* True when the operation may succeed if retried later. policy.c turns
 * this into answers (policy_intake: 503 with Retry-After, or 500). */
bool gw_err_is_temporary(enum gw_err err);

#endif
