/*
 * What provider.c (requests, workers, audit, answers) and provider_run.c
 * (the FHIR work of one request in a worker) share: the job.
 */
#ifndef GW_PROVIDER_IMPL_H
#define GW_PROVIDER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "provider.h"
#include "store.h"
#include "workpool.h"

/* Largest answer of one request: 250 resources plus their includes. */
#define PROVIDER_OUT_MAX (64u << 20)

/*
 * One pull request between its arrival and its answer. The loop thread
 * fills the input (copies: the worker never touches req) and sends the
 * answer; provider_run, in a worker, fills the output.
 */
struct provider_job {
	struct workpool_job link; /* in the workers' pool */
	struct http_req *req;	  /* loop thread only */
	const struct provider *prov;

	/* Input. */
	bool post;	  /* POST _search: form is query + body */
	char *path;	  /* decoded, "/fhir/..." */
	char *form;	  /* the parameters, still URL-encoded */
	char accept[256]; /* Accept header, "" none */
	bool lenient;	  /* Prefer: handling=lenient */
	char base[320];	  /* "https://host:port/fhir", for links */
	char ura[STORE_URA_MAX + 1];
	char *resources; /* the peer's [peer] resources, or NULL */
	char *view;	 /* the peer's view, or NULL */
	bool stu3;	 /* answer in FHIR STU3 (config_fhir_stu3) */

	/* Output. */
	int status;
	bool xml;		      /* the body is FHIR XML */
	bool out_stu3;		      /* the body is FHIR STU3 */
	struct buf out;		      /* the body */
	char etag[32];		      /* ETag header, "" none */
	char last_modified[40];	      /* Last-Modified header, "" none */
	const char *retry_after;      /* Retry-After (static), NULL none */
	unsigned cached;	      /* resolved from the worker's cache */
	struct store_audit_rec audit; /* interaction, bsn, count, query */
};

/* What a worker keeps between jobs: the resources chained parameters
 * resolved, with the snapshot they hold for (provider_run.c). */
struct provider_cache;

/* A new, empty cache (NULL without memory: jobs then run without). */
struct provider_cache *provider_cache_new(void);
void provider_cache_free(struct provider_cache *c);

/* Worker: do the job's FHIR work with reader r (NULL: the store is not
 * open) and the worker's cache c (borrowed; NULL: none), filling status,
 * body, headers and the audit record's interaction, bsn and count. Never
 * fails: errors become an answer. */
void provider_run(struct provider_job *j, struct store_reader *r,
		  struct provider_cache *c);

#endif
