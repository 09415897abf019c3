/*
 * search: FHIR R4 search as the PZP Provider offers it (the IG's
 * ACP-CapabilityStatementProvider): the parameters of each resource type,
 * their parsing from a query string or a POSTed form, and the match of
 * one resource against a parsed query. It knows no store and no HTTP:
 * the pull API narrows with search_scope_of, reads candidates from the
 * store and keeps those search_match accepts.
 */
#ifndef GW_SEARCH_H
#define GW_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "fjson.h"

/* Default and largest _count. */
#define SEARCH_COUNT_DEFAULT 50
#define SEARCH_COUNT_MAX     250

/* search_parse flags. SEARCH_LENIENT (Prefer: handling=lenient): an
 * unknown or unsupported parameter is ignored with a warning issue. */
#define SEARCH_LENIENT 0x1u
/* SEARCH_HISTORY: the query of a type or instance _history (_since and
 * _count are its parameters, as for the system-level one). */
#define SEARCH_HISTORY 0x2u

struct search_query;

/*
 * Parse the application/x-www-form-urlencoded text (a GET query without
 * '?', or a POST _search body) of a search on type ("Encounter", ...;
 * NULL for a system-level _history). Every problem is an issue in oo
 * naming the parameter (expression "parameter <name>"); returns GW_OK
 * and *out (caller frees with search_free), or GW_INVALID (strict mode:
 * unknown parameter, bad value, unsupported modifier or prefix: 400),
 * GW_NOTFOUND for a type that cannot be searched (an issue says so;
 * err.h has no "not supported"), GW_NOMEM. oo may be NULL. A parameter
 * with an empty value is no criterion; a form longer than 8 KiB (also
 * once re-encoded by search_canonical), more than 128 pairs, 63 kept
 * parameters or 32 comma-separated values is GW_INVALID.
 */
enum gw_err search_parse(const char *type, const char *form, size_t len,
			 unsigned flags, struct search_query **out, json_t *oo);
void search_free(struct search_query *q);

/* What narrows the store read before search_match; strings are owned by
 * the query. */
struct search_scope {
	const char *type;	 /* resource type searched, NULL: any */
	const char *patient_id;	 /* patient=[Patient/]ID, NULL: none */
	const char *patient_bsn; /* patient.identifier=<bsn system>|N, or
				    Patient?identifier=<bsn system>|N */
	const char *id;		 /* _id with one value, NULL: none */
	int64_t since;		 /* ms: _lastUpdated ge/gt, _since; 0 */
	size_t count;		 /* _count (default, at most the max) */
	bool sort_desc;		 /* _sort=-_lastUpdated */
};
void search_scope_of(const struct search_query *q, struct search_scope *out);

/* Lookups search_match and search_includes may need. */
struct search_env {
	/* The stored resource "type/id" of the caller's scope, or NULL
	 * (chained parameters such as DeviceUseStatement device.type).
	 * A chain that cannot be resolved does not match, except
	 * patient.identifier=<bsn system>|N, the scope's patient_bsn:
	 * the store read was narrowed to that patient already. */
	const struct fj_node *(*resolve)(void *arg, const char *type,
					 const char *id);
	/* Whether system|code is in the value set url (the :in modifier);
	 * GW_NOTFOUND when the value set is unknown. */
	enum gw_err (*in_valueset)(void *arg, const char *url,
				   const char *system, const char *code,
				   bool *in);
	void *arg;
};

/* True when res (a resource of the searched type, stored with
 * meta.lastUpdated updated_ms) matches every parameter of q. */
bool search_match(const struct search_query *q, const struct fj_node *res,
		  int64_t updated_ms, const struct search_env *env);

/* For each reference of res that q's _include asks for, call emit with
 * the target's type and logical id ("Type/id" references only). */
void search_includes(const struct search_query *q, const struct fj_node *res,
		     void (*emit)(void *arg, const char *type, const char *id),
		     void *arg);

/* The query in a canonical form for Bundle.link self/next/previous:
 * parameters sorted, values re-encoded, _count included, paging state
 * left to the caller. */
enum gw_err search_canonical(const struct search_query *q, struct buf *out);

/* The CapabilityStatement rest.resource array: each searchable type with
 * its interactions, search parameters (name, definition, type),
 * searchInclude and the profiles given (may be NULL). New reference. */
json_t *search_capability(void);

#endif
