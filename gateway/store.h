/*
 * Durable store and delivery queue: accepted documents, their outbox rows
 * per receiver and the idempotency keys, behind a backend-neutral interface
 * (SQLite in store_sqlite.c; a PostgreSQL backend can fill the same ops).
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct config;

#define STORE_ID_MAX   64   /* longest message id (a UUID is 36) */
#define STORE_URA_MAX  8    /* a URA number is 8 digits */
#define STORE_NODE_MAX 253  /* a node's name: a host name */
#define STORE_KEY_MAX  1024 /* longest patient key / identifier part */

/* STORE_NOTICE: a notification the gateway itself sends (notified pull,
 * struct store_notice); its outbox row goes to the receiver's [peer]
 * notify URL. */
enum store_direction { STORE_OUTBOUND, STORE_INBOUND, STORE_NOTICE };

/* "outbound", "inbound", "notice"; NULL for an unknown value. */
const char *store_direction_name(enum store_direction d);

/* Outbox row states. */
enum store_state {
	STORE_DUE,	/* waiting for next_attempt_at */
	STORE_INFLIGHT, /* claimed by the deliverer */
	STORE_DELIVERED,
	STORE_DEAD, /* permanent failure or too old: operator acts */
	STORE_HELD, /* parked by an operator */
	STORE_STATE_COUNT
};

/* "due", "inflight", ...; NULL for an unknown value. */
const char *store_state_name(enum store_state st);
/* Parse a state name; GW_PARSE when unknown. */
enum gw_err store_state_parse(const char *s, enum store_state *out);

/* How to open a store. */
struct store_options {
	const char *path;   /* SQLite file (borrowed during store_open) */
	uint64_t min_free;  /* bytes free below which store_disk_ok fails */
	bool create;	    /* create the file when missing (or empty) */
	unsigned queue_max; /* submitted accepts not yet dispatched;
				   0: 4096 */
	unsigned batch_max; /* accepts per commit; 0: 256 */
	unsigned busy_timeout_ms; /* 0: 5000 */
	/* Delivery-state updates (claim, results, operator actions) on the
	   caller's connection commit without waiting for fsync (SQLite WAL
	   synchronous=NORMAL): a power loss may forget the latest of them,
	   which only means a row is delivered once more (at least once; the
	   receiver deduplicates). Accepts always commit with fsync. */
	bool relaxed_state;
	/* Upkeep (SQLite: WAL checkpoints) runs in a thread of its own with
	   its own connection, started with the writer thread, instead of
	   inside whichever commit crosses the threshold: a checkpoint then
	   never holds up a group commit or the loop thread. */
	bool background_upkeep;
	/* Read only (the queue CLI's list, show, stats): never creates or
	   migrates anything; with no -wal file beside the database (no
	   gateway has it open) it is read as an immutable file, so no -wal
	   or -shm file is made either. GW_NOTFOUND when there is no store,
	   GW_CONFIG for a schema other than this binary's. */
	bool readonly;
	/* A command-line tool: no daemon log lines (schema migrations,
	   prune counts); the tool reports in its own words. */
	bool quiet;
	/* PostgreSQL instead of SQLite (store_pg.c) when set: a libpq
	   connection string or postgresql:// URI (borrowed during
	   store_open). path then only names the lock file's place. */
	const char *pg_url;
	/* A file whose first line is the database password (read once by
	   store_open, never logged); NULL: none, or libpq's own ways
	   (~/.pgpass, PGPASSFILE, a client certificate). */
	const char *pg_password_file;
	/* Set by store_open from pg_password_file: leave NULL. */
	const char *pg_password;
	/* PostgreSQL: this node's name, the owner of the delivery leases
	   it takes (borrowed; NULL: the host name). Nodes sharing a
	   database need distinct names: a node recovers its own leases at
	   start at once, another node's only once they expired. */
	const char *node;
	/* PostgreSQL: how long a claim leases its rows (ms; 0: 60 s); a
	   longer attempt renews it (store_renew). */
	int64_t lease_ms;
	/* PostgreSQL, the daemon: hold a session lock on the node's name
	   while the store is open, so that a second live node with the
	   same name (which would take this one's rows in flight back at
	   its start) is refused: store_open fails with GW_EXISTS after
	   PG_NODE_WAIT_MS (a killed node's session may take a moment to
	   end). */
	bool node_claim;
	/* PostgreSQL, the daemon: the longest wait for one answer of the
	   server (ms; 0: no limit, the command-line tools'). A server that
	   stops answering with its connections open (frozen, or cut off by
	   the network) then holds a thread, the event loop's included, at
	   most this long: the statement fails with GW_TEMP, the connection
	   is dropped and made again at the next statement, at most once a
	   second (STORE_PG_WAIT_MS for the daemon). */
	unsigned pg_wait_ms;
	/* The same for the caller's connection, the event loop's in the
	   daemon (0: pg_wait_ms). Shorter (STORE_PG_CALLER_WAIT_MS): the
	   loop's calls are small, and while one waits no connection is
	   served, so a wait as long as a client's read timeout could cost
	   connections that arrived meanwhile. */
	unsigned pg_caller_wait_ms;
};

/* The daemon's pg_wait_ms and pg_caller_wait_ms; the latter is also how
 * long the upkeep thread's ping may go unanswered before the store
 * counts as unreachable (store_reachable): after one such wait the
 * loop's calls no longer try (store.c's store_away). */
#define STORE_PG_WAIT_MS	5000
#define STORE_PG_CALLER_WAIT_MS 2000

/* Fill opts for the daemon from the [store] section of cfg (borrowed
 * from cfg): create with [store] create = yes, or with auto (the default)
 * when no store was ever made at the path (store_marked); relaxed_state
 * and background_upkeep on. */
void store_options_from_config(struct store_options *opts,
			       const struct config *cfg);

/*
 * A store opened for writing leaves a marker beside its file (PATH.created,
 * STORE_MARKER_SUFFIX), which outlives the database being deleted,
 * replaced by an empty file or not mounted. True when the marker for path
 * exists (or cannot be checked): a new, empty store must then not be made
 * there without an operator's `pzpgw queue init`.
 */
bool store_marked(const char *path);
#define STORE_MARKER_SUFFIX ".created"

/*
 * The received-data index (what local receivers may pull, issue 11).
 * Per (receiver URA, patient BSN) the versions of each resource received,
 * keyed by a logical id that is stable per (receiver, business key).
 */
#define STORE_RID_MAX  64 /* longest logical id (FHIR id) */
#define STORE_TYPE_MAX 64 /* longest resource type name */
#define STORE_BSN_MAX  16 /* a BSN is 9 digits */

/* One resource of a message for one local receiver; borrowed. */
struct store_index_entry {
	const char *type; /* FHIR resource type */
	const char *id;	  /* logical id, stable per (receiver, key) */
	const char *key;  /* business identifier "system|value", else the
			     entry's fullUrl */
	/* The resource as served: references between the message's
	   resources rewritten to "Type/logical id", meta.versionId and
	   meta.lastUpdated left out (the store sets them). */
	const char *json;
	size_t json_len;
	/* hex SHA-256 of json, stored beside it; NULL: none. The same
	   content again makes no new version: the store compares the
	   JSON itself, so the hash is optional. */
	const char *sha256;
	bool hidden; /* entered-in-error: kept, never searched */
};

/* The index entries of one message for one local receiver; borrowed. */
struct store_index {
	const char *receiver; /* URA */
	const char *bsn;      /* the message's patient BSN, "" when none */
	/* MessageHeader.sender's URA, the organisation the data comes
	   from (store_accept.sender_ura may be a gateway relaying it); ""
	   when unknown */
	const char *sender;
	const struct store_index_entry *entries;
	size_t n;
};

struct store_audit_rec;
struct store_audit_filter;
struct store_audit_check;

/*
 * Notified pull: a FHIR Task telling a local receiver that new data for a
 * patient arrived (notify.c). Stored with the accept that caused it, in
 * the same transaction, as a message of its own (STORE_NOTICE, identifier
 * STORE_NOTICE_SYSTEM|id, the accept's sender and patient key) with one
 * outbox row to receiver, so delivery, backoff, dead letter and `pzpgw
 * queue` treat it like any message. Nothing is stored for an accept that
 * is a duplicate. Borrowed.
 */
struct store_notice {
	const char *id;	      /* its message id */
	const char *receiver; /* URA of the organisation notified */
	const void *doc;      /* the Task, JSON */
	size_t doc_len;
	const char *sha256; /* hex SHA-256 of doc */
};

/* Bundle.identifier.system of every notice: reserved, an accept of any
 * other direction may not use it (GW_INVALID). */
#define STORE_NOTICE_SYSTEM "http://pzpgw.nl/fhir/NamingSystem/notice"
/* Most notices per accept (one per local receiver). */
#define STORE_NOTICES_MAX 64

/* One document to accept; every pointer is borrowed by the call. */
struct store_accept {
	const char *id; /* message id chosen by the caller */
	enum store_direction direction;
	const char *sender_ura;	   /* the posting organisation */
	const char *bundle_system; /* Bundle.identifier.system ("" if none) */
	const char *bundle_value;  /* Bundle.identifier.value */
	const char *patient_key;   /* opaque; ordering is per (receiver, key) */
	const char *fhir_version;  /* "4.0.1", "3.0.2", ... */
	const void *doc;	   /* the document bytes exactly as signed */
	size_t doc_len;
	const char *jws; /* detached JWS, may be NULL */
	/* hex SHA-256 of the canonical form as received (before a relay
	 * entry, sign_relay_keep, was added); a second accept of the same key
	 * with another value is a conflict */
	const char *sha256;
	int64_t accepted_at;	 /* ms since the epoch; 0: now */
	int answer_status;	 /* the answer given for this accept */
	const char *answer_body; /* may be NULL */
	/* The transform report (an OperationOutcome as JSON text) of what
	   intake normalised or converted; NULL when nothing changed. */
	const char *report;
	/* The MessageHeader's event code (MESSAGE_EVENT_SHARED or
	   _UPDATED), counted by `pzpgw report`; NULL: not known. */
	const char *event;
	const char *const *receivers; /* URAs; one outbox row each */
	size_t nreceivers;
	/* The received-data index, one per local receiver (index_prepare):
	   committed in the same transaction, so a message is searchable
	   exactly when it is acknowledged. NULL/0: none. */
	const struct store_index *index;
	size_t nindex;
	/* Audit records of this accept (interaction "create", one per local
	   receiver): chained and written in the same transaction when the
	   message is stored, never for a duplicate or a failure. at 0: the
	   accept's accepted_at. NULL/0: none. */
	const struct store_audit_rec *audit;
	size_t naudit;
	/* Notices to store with it (direction STORE_INBOUND only); NULL/0:
	   none. */
	const struct store_notice *notices;
	size_t nnotices;
};

/* Outcome of one accept. */
struct store_result {
	/* GW_OK stored; GW_EXISTS the (direction, sender, identifier) was
	   stored before: id and answer are the original ones; otherwise
	   nothing was stored (temporary GW_TEMP/GW_IO/GW_NOMEM: answer
	   503; permanent ones, such as GW_PERM for a corrupt database or an
	   unknown schema: 500, see policy_intake). */
	enum gw_err err;
	/* With GW_EXISTS: the stored message has another sha256 (same
	   identifier, different content); nothing was stored. */
	bool conflict;
	char id[STORE_ID_MAX + 1];
	int answer_status;
	char *answer_body; /* NUL-terminated heap copy or NULL */
};

/* Release what res owns (not res itself). */
void store_result_cleanup(struct store_result *res);

/* Called in the loop thread from store_dispatch once the accept is
 * durable (or failed). res is borrowed for the duration of the call. */
typedef void (*store_done_fn)(void *arg, const struct store_result *res);

/* One outbox row with its message's main fields. */
struct store_row {
	int64_t seq; /* acceptance order, also the paging cursor */
	char id[STORE_ID_MAX + 1];
	char receiver[STORE_URA_MAX + 1];
	char sender[STORE_URA_MAX + 1];
	enum store_direction direction;
	enum store_state state;
	unsigned attempts;   /* attempts started */
	int64_t accepted_at; /* ms; 0 when unset for the columns below */
	int64_t next_attempt_at;
	int64_t first_attempt_at;
	int64_t last_attempt_at;
	int64_t delivered_at;
	int last_status; /* HTTP status of the last attempt, 0 none */
	unsigned replays;
	bool waiting; /* behind an earlier pending row of its lane */
	/* ms the maximum age counts from: acceptance, or the operator's
	 * latest replay or release of the row. */
	int64_t age_from;
	char *last_error; /* heap or NULL */
	char *outcome;	  /* receiver's OperationOutcome (JSON) or NULL */
};

/* Free an array of n rows returned by the store; NULL is a no-op. */
void store_rows_free(struct store_row *rows, size_t n);

/* A stored message: metadata, optionally the content and outbox rows. */
struct store_message {
	int64_t seq;
	char id[STORE_ID_MAX + 1];
	enum store_direction direction;
	char sender[STORE_URA_MAX + 1];
	char *bundle_system;
	char *bundle_value;
	char *patient_key;
	char *fhir_version;
	char *sha256;
	int64_t accepted_at;
	int answer_status;
	char *answer_body;
	char *report; /* transform report (OperationOutcome JSON) or NULL */
	void *doc;    /* NULL unless content was asked for */
	size_t doc_len;
	char *jws; /* NULL unless content was asked for, or none */
	struct store_row *rows;
	size_t nrows;
};

/* Free msg and everything in it; NULL is a no-op. */
void store_message_free(struct store_message *msg);

/* Filter for store_list. */
struct store_filter {
	int state;	      /* enum store_state or -1 for any */
	const char *receiver; /* URA or NULL */
	int64_t after_seq;    /* rows with seq > after_seq (paging) */
	size_t limit;	      /* 0: 100 */
};

/* Queue depth per (state, receiver). */
struct store_stat {
	enum store_state state;
	char receiver[STORE_URA_MAX + 1];
	uint64_t count;
	int64_t oldest_accepted_at; /* ms */
};

/*
 * The report's aggregates (store_report_agg, issue 17), one group per
 * call of a store_agg_fn. Counted by the database from roll-up tables
 * its triggers keep in the transaction that changes the rows, plus the
 * rows of the partial hours (days for patients) at the ends of the range.
 * The same key may come more than once (roll-up and edge): add them up.
 */
enum store_agg_what {
	/* messages: hour, kind, org = sender ("" for a notice), version
	   ("" for a notice), event ("" unknown) */
	STORE_AGG_MESSAGES,
	/* outbox and inbox rows: hour, kind, org = receiver, state ("" for
	   an inbox row), cause (of a dead row, or a due/held row after a
	   failed attempt; else "") */
	STORE_AGG_ROWS,
	/* outbound deliveries: hour = the DAY (days since the epoch) of
	   acceptance, bucket (store_agg_bucket_ms) */
	STORE_AGG_LATENCY,
	/* pull API interactions (audit records but "create" and the
	   console's "operator-*"): hour, org */
	STORE_AGG_PULLS,
	/* distinct patients read: org */
	STORE_AGG_PATIENTS,
	/* validation findings (rep_find): hour, org = sender, severity,
	   rule, profile */
	STORE_AGG_FINDINGS,
};

/* One aggregate; the strings are borrowed for the callback only. */
struct store_agg {
	enum store_agg_what what;
	int64_t hour;	  /* hours since the epoch (UTC) of acceptance */
	const char *kind; /* "outbound", "notice" or "inbound" */
	const char *org;
	const char *version;
	const char *event;
	const char *state;
	const char *cause;
	const char *severity, *rule, *profile; /* STORE_AGG_FINDINGS */
	int64_t bucket;
	int64_t n;
};

/* Called once per aggregate; a non-OK result stops the read. */
typedef enum gw_err (*store_agg_fn)(void *arg, const struct store_agg *a);

/* The range of store_report_agg split into whole units read from the
 * roll-ups and partial ones read from the rows (store_agg_split). */
struct store_agg_range {
	int64_t h0, h1;	     /* whole hours [h0, h1) */
	int64_t hedge[2][2]; /* ms [a, b) before h0 and after h1 */
	int64_t d0, d1;	     /* whole days [d0, d1) */
	int64_t dedge[2][2]; /* ms [a, b) before d0 and after d1 */
	int64_t f0, f1;	     /* every hour [f0, f1) the range touches:
				findings are kept per hour only */
};

/* Split [from, to) (ms, 0: unbounded) for the roll-ups. */
void store_agg_split(int64_t from, int64_t to, struct store_agg_range *out);

/*
 * Latency buckets: below 1000 ms a bucket is one ms (exact); above, a
 * bucket holds the values with the same first three digits, so a value
 * read back as its bucket's middle is within 0.5% of the truth.
 * *lo and *hi: the bucket's bounds [lo, hi); returns the middle.
 */
int64_t store_agg_bucket_ms(int64_t bucket, int64_t *lo, int64_t *hi);

/*
 * Feed fn the report's aggregates of records accepted (audit records:
 * made) in [from, to) (ms, 0: unbounded). Reads counters, not rows: a
 * month over a million messages is a few thousand groups. The caller
 * keeps s.
 */
struct store;
enum gw_err store_report_agg(struct store *s, int64_t from, int64_t to,
			     store_agg_fn fn, void *arg);

/* Operator actions on outbox rows. */
enum store_action {
	STORE_RETRY,   /* due -> due now */
	STORE_HOLD,    /* due -> held */
	STORE_RELEASE, /* held -> due now, maximum age from now */
	STORE_REPLAY,  /* dead|delivered -> due now, attempts reset, maximum
			  age from now */
};

/* Backoff policy of the deliverer (all in ms). */
struct store_backoff {
	int64_t min_ms;
	int64_t max_ms;
	int64_t max_age_ms;
};

/*
 * When to try again after attempt number `attempts` (1 = the first one
 * failed) of a row accepted at `since`: the delay doubles from
 * min_ms up to max_ms, minus up to a quarter of random jitter taken from
 * rnd (never below min_ms), and never later than since + max_age_ms.
 * Returns true with *next set, or false when the row is dead
 * (now >= since + max_age_ms). Pure function.
 */
bool store_next_attempt(const struct store_backoff *b, unsigned attempts,
			int64_t since, int64_t now, uint32_t rnd,
			int64_t *next);

struct store;

/*
 * Open (and migrate) the store described by opts. Returns GW_OK and *out
 * (caller frees with store_free); GW_NOTFOUND when the file is missing
 * and !opts->create; GW_CONFIG when its schema is newer than this binary;
 * GW_IO/GW_TEMP/GW_PERM from the database otherwise.
 */
enum gw_err store_open(const struct store_options *opts, struct store **out);

/* Commit every submitted accept, run the callbacks not yet run, stop the
 * writer thread and close. NULL is a no-op. */
void store_free(struct store *s);

/* Name of the backend ("sqlite" or "postgresql"). */
const char *store_backend(const struct store *s);

/* Schema version of the open store. */
int store_schema_version(const struct store *s);

/* Accept one document synchronously (one transaction on the caller's
 * connection). Returns res->err; res is filled either way (caller cleans
 * it up with store_result_cleanup). */
enum gw_err store_accept(struct store *s, const struct store_accept *req,
			 struct store_result *res);

/*
 * Queue req (copied) for the writer thread, which commits queued accepts
 * in groups. cb runs later in the caller's thread from store_dispatch,
 * exactly once, after the commit. Returns GW_OK, GW_TEMP when the queue is
 * full (answer 503), GW_INVALID for a malformed req (a bug: answer 500),
 * GW_NOMEM; cb is never called when this fails.
 */
enum gw_err store_submit_accept(struct store *s, const struct store_accept *req,
				store_done_fn cb, void *arg);

/* A file descriptor that becomes readable when completions wait for
 * store_dispatch. Owned by the store. */
int store_notify_fd(struct store *s);

/* Run the callbacks of every completed accept (loop thread only) and
 * record the commit batch sizes. Returns the number of callbacks run. */
size_t store_dispatch(struct store *s);

/* Wait until every accept submitted so far is committed (tests,
 * shutdown); callbacks still run from store_dispatch. */
void store_flush(struct store *s);

/*
 * Claim up to max due rows (receiver NULL: any receiver) whose
 * next_attempt_at <= due_by and that no earlier row for the same
 * (receiver, patient) precedes in state due, inflight or held; they become
 * inflight with attempts + 1 and last_attempt_at = now (due_by may lie far
 * beyond now: a held receiver's probe takes its lane head early). *rows
 * (caller frees with store_rows_free) and *n; *rows may be NULL when *n
 * is 0.
 */
enum gw_err store_claim(struct store *s, const char *receiver, int64_t due_by,
			int64_t now, size_t max, struct store_row **rows,
			size_t *n);

/* How long a claim leases its rows to this node (ms): PostgreSQL's
 * lease_ms; 0 for SQLite (one node, no leases). */
int64_t store_lease_ms(const struct store *s);

/*
 * Extend this node's lease of a row in flight (message seq, receiver) to
 * until: an attempt that runs longer than a lease keeps its row, so no
 * other node sends the same lane head meanwhile. GW_NOTFOUND: the row is
 * not this node's in flight any more (its lease ran out and another node
 * took it over): stop the attempt, its result would be dropped.
 */
enum gw_err store_renew(struct store *s, int64_t seq, const char *receiver,
			int64_t until);

/* inflight -> delivered with the receiver's HTTP status. GW_NOTFOUND when
 * the row is not inflight. */
enum gw_err store_delivered(struct store *s, const char *id,
			    const char *receiver, int status, int64_t now);

/* inflight -> due at next_attempt_at, keeping status and error. */
enum gw_err store_failed_temp(struct store *s, const char *id,
			      const char *receiver, int status,
			      const char *error, int64_t next_attempt_at);

/* inflight -> dead, keeping status, error and the receiver's
 * OperationOutcome (JSON text, may be NULL). */
enum gw_err store_failed_perm(struct store *s, const char *id,
			      const char *receiver, int status,
			      const char *error, const char *outcome_json);

/* Startup: every inflight row back to due (now). *count may be NULL. */
enum gw_err store_recover(struct store *s, size_t *count);

/* Earliest next_attempt_at of a claimable due row, or on PostgreSQL the
 * end of a row's delivery lease if sooner (any node's, this one's too: a
 * row in flight with no transfer behind it is claimed again then):
 * GW_OK and *at, or GW_NOTFOUND when nothing waits. */
enum gw_err store_next_due_at(struct store *s, int64_t *at);

/* The same for one receiver's rows (a deliverer that only serves routed
 * receivers must not wake for rows it will never claim). */
enum gw_err store_next_due_at_for(struct store *s, const char *receiver,
				  int64_t *at);

/* The message id with content (doc, jws) and no rows. *out: caller frees
 * with store_message_free. GW_NOTFOUND when unknown. */
enum gw_err store_get_document(struct store *s, const char *id,
			       struct store_message **out);

/* The message id with its outbox rows, with content only when asked. */
enum gw_err store_show(struct store *s, const char *id, bool content,
		       struct store_message **out);

/* Outbox rows matching f in acceptance order. *rows: caller frees with
 * store_rows_free. */
enum gw_err store_list(struct store *s, const struct store_filter *f,
		       struct store_row **rows, size_t *n);

/*
 * Apply an operator action to the outbox rows of message id (receiver
 * NULL: every row of it) that are in a state the action allows. *changed
 * (may be NULL) counts them. GW_NOTFOUND: no such message/row; GW_INVALID:
 * no row was in an allowed state.
 */
enum gw_err store_act(struct store *s, const char *id, const char *receiver,
		      enum store_action action, int64_t now, size_t *changed);

/* Delete outbound messages whose every outbox row was delivered before
 * `before` (ms), never dead or pending ones, then reclaim space. *count
 * (may be NULL) is the number of messages removed. An operator's purge:
 * the report's roll-ups lose what goes (retention keeps them: see
 * store_retention). Runs on the caller's thread until done. */
enum gw_err store_prune(struct store *s, int64_t before, size_t *count);

/*
 * The daemon's retention: what store_prune (before) and, when
 * inbound_before > 0, store_prune_inbound (inbound_before) delete, but
 * the report's roll-ups keep it (an exchange's usage outlives its
 * messages). With the upkeep thread (background_upkeep) this returns at
 * once: that thread deletes STORE_PRUNE_BATCH messages per transaction
 * with a pause after each, so the event loop and the writer never wait
 * on it for long, and logs event=pruned / event=pruned_inbound with the
 * count when done; asked again while it runs, it goes on with the later
 * cut-offs. Without the thread it runs here until done, logging the same.
 */
enum gw_err store_retention(struct store *s, int64_t before,
			    int64_t inbound_before);

/* Messages deleted per transaction by the retention (store_retention):
 * 200 took ~11 ms on SQLite (bench_big_store's store, synchronous =
 * FULL), 500 ~27 ms; that is how long the writer may wait for it. */
#define STORE_PRUNE_BATCH 200

/* Queue depth and oldest row (first accepted) per (state, receiver) for
 * due, inflight, held and dead rows; delivered rows are history, not
 * queue. *out: caller frees. */
enum gw_err store_stats(struct store *s, struct store_stat **out, size_t *n);

/* How often the upkeep thread reads store_stats for store_stats_recent. */
#define STORE_STATS_MS 2000

/* store_stats as the upkeep thread last read them (at most
 * STORE_STATS_MS old), without a query on the calling thread: on
 * PostgreSQL the counts are a scan of the queue, a second's work with a
 * million rows queued, which the event loop must not wait for. Without
 * background upkeep, or before its first reading, store_stats. *out:
 * caller frees. */
enum gw_err store_stats_recent(struct store *s, struct store_stat **out,
			       size_t *n);

/*
 * Maximum age: every due row of a message accepted (and, when replayed
 * or released by an operator, last so) before `before` (ms) goes to dead with "max age exceeded" added to its last error, whether
 * or not it was ever attempted (rows behind an unreachable receiver age
 * too); the rows after them in their lanes move up. Held and in-flight
 * rows are left alone. *count (may be NULL) is the number of rows.
 */
enum gw_err store_expire(struct store *s, int64_t before, int64_t now,
			 size_t *count);

/* Lanes whose expired rows go per transaction when the upkeep thread
 * expires (store_expire_later). */
#define STORE_EXPIRE_BATCH 100

/*
 * store_expire off the calling thread: with background upkeep the
 * cut-off is handed to the upkeep thread, which expires
 * STORE_EXPIRE_BATCH lanes per transaction with a pause after each (a
 * backlog of thousands of rows past their age is a long write that must
 * not stop the event loop), and this returns at once; *count (may be
 * NULL) is then the number of rows it expired since the last call. Without
 * it, store_expire. The daemon's delivery calls this every few seconds.
 */
enum gw_err store_expire_later(struct store *s, int64_t before, int64_t now,
			       size_t *count);

/* A receiver answers again: its due lane heads waiting for a later
 * attempt become due at now. *count (may be NULL) is the number. */
enum gw_err store_reschedule(struct store *s, const char *receiver, int64_t now,
			     size_t *count);

/*
 * A receiver's hold (deliver.c: no claims for it until `until`, then one
 * probe at a time), kept in the store (schema 9, receiver_hold) so that
 * the nodes sharing one database hold and probe a receiver that is down
 * together: one probe per hold between them, not one per node.
 */
struct store_hold {
	char receiver[STORE_URA_MAX + 1];
	int64_t until;	 /* no claims for it before this (ms) */
	unsigned fails;	 /* failed probes in a row, >= 1 */
	char reason[16]; /* "unreachable", "busy" or "misconfigured" */
	/* The node whose probe runs now ("" none) and when its claim of the
	   probe runs out (a node that died mid-probe leaves it to others). */
	char prober[STORE_NODE_MAX + 1];
	int64_t probe_until;
};

/* The held receivers, by URA. *out: caller frees (free()); may be NULL
 * when *n is 0. */
enum gw_err store_holds(struct store *s, struct store_hold **out, size_t *n);

/*
 * A transfer to receiver failed with reason (static string, as above) at
 * now. Unless a hold that began meanwhile still runs (a transfer already
 * under way when it began does not make it longer: *changed false), the
 * failed probes count one more and the hold runs until the backoff b
 * gives for that count (store_next_attempt with rnd, max_age ignored) or
 * not_before when later; the probe claim is released. One transaction;
 * *out is the receiver's hold after it either way.
 */
enum gw_err store_hold_fail(struct store *s, const char *receiver,
			    const char *reason, int64_t now,
			    const struct store_backoff *b, uint32_t rnd,
			    int64_t not_before, bool *changed,
			    struct store_hold *out);

/* Claim the probe of a held receiver whose hold ran out (a conditional
 * update: one node wins) until probe_until. GW_OK: this node probes;
 * GW_EXISTS: the hold runs or another node probes; GW_NOTFOUND: the
 * receiver is not held (any more). */
enum gw_err store_hold_probe(struct store *s, const char *receiver, int64_t now,
			     int64_t probe_until);

/* The receiver answered: its hold ends. *was (may be NULL): it was held
 * until this call (false: another node released it first). */
enum gw_err store_hold_clear(struct store *s, const char *receiver, bool *was);

/* The end of a hold after fails failed probes: b's backoff from now
 * (max_age_ms ignored), never before not_before. For the backends. */
int64_t store_hold_until(const struct store_backoff *b, unsigned fails,
			 int64_t now, uint32_t rnd, int64_t not_before);

/* Set the gauges pzpgw_queue_depth and pzpgw_queue_oldest_age_seconds
 * per (state, receiver) from store_stats_recent (loop thread only). */
void store_metrics_update(struct store *s, int64_t now);

/*
 * A time limit for the caller's connection (the console's reads): a
 * statement still running at mono_ms (util_mono_ms()) is interrupted
 * and its call fails (SQLite: progress handler; PostgreSQL:
 * statement_timeout set to what is left). 0 lifts the limit. The
 * caller compares the clock with mono_ms to tell a timeout from another
 * failure.
 */
void store_set_deadline(struct store *s, int64_t mono_ms);

/* Whether the files the store has open are still the ones its path
 * names: a store file deleted or replaced under a running daemon would
 * take acknowledged messages with it. */
enum store_file_state {
	STORE_FILE_OK,
	STORE_FILE_MISSING,  /* the database or its -wal file is gone */
	STORE_FILE_REPLACED, /* the path names another file now */
};

/* "ok", "store_missing", "store_replaced". */
const char *store_file_state_name(enum store_file_state st);

/* The state found by the latest check (any thread). With
 * background_upkeep the files are checked every STORE_UPKEEP_MS, and by
 * the writer before and after every group commit: a commit made while
 * they are not OK is answered as failed (GW_IO), never acknowledged. */
enum store_file_state store_file_state(struct store *s);

/* Check the files now on the caller's connection (loop thread only) and
 * record the result as store_file_state does. */
enum store_file_state store_file_check(struct store *s);

/* Free bytes available on the filesystem holding dir. */
typedef enum gw_err (*store_free_space_fn)(void *arg, const char *dir,
					   uint64_t *bytes);

/* Replace the free-space source (tests); NULL restores statvfs. */
void store_set_free_space_fn(struct store *s, store_free_space_fn fn,
			     void *arg);

/* True when the store's filesystem has at least min_free bytes free (or
 * the free space cannot be read: never block intake on a failed probe). */
bool store_disk_ok(struct store *s);

/* False when the store's database server does not answer. With
 * background upkeep, the upkeep thread's ping every STORE_UPKEEP_MS
 * (reconnecting if its connection broke) decides, and one that has not
 * answered for 2 s is unreachable: the caller never waits. Without it,
 * a round trip on the main connection (the loop thread only). Always true
 * for SQLite. /readyz asks it. */
bool store_reachable(struct store *s);

/* Bytes of disk a document of len bytes may take while it is stored:
 * its copy in the database and up to twice that in the WAL. */
#define STORE_DISK_NEED(len) ((uint64_t)(len)*3u)

/*
 * Whether intake may accept a document of len bytes now: the store's
 * files are the ones it opened, and min_free bytes stay free after
 * STORE_DISK_NEED(len). On false *reason (static) is "store_missing",
 * "store_replaced" or "disk_low". Any thread.
 */
bool store_intake_ok(struct store *s, size_t len, const char **reason);

struct store_res;
struct store_res_query;
struct store_inbox;
struct store_inbox_filter;

/* A column of a table as store copy moves it, and one value of it
 * (store_ops raw_*). Integers, text (NUL-terminated, len without it)
 * and bytes; type STORE_VAL_NULL for SQL NULL. */
enum store_val_type {
	STORE_VAL_NULL,
	STORE_VAL_INT,
	STORE_VAL_TEXT,
	STORE_VAL_BLOB
};
struct store_col {
	const char *name;
	enum store_val_type type;
};
struct store_val {
	enum store_val_type type;
	int64_t i;
	const void *p; /* TEXT or BLOB: borrowed */
	size_t len;
};
/* The most columns of one table store copy moves. */
#define STORE_RAW_COLS_MAX 32
/* Called per row with ncols values; non-OK stops the select with it. */
typedef enum gw_err (*store_raw_row_fn)(void *arg, const struct store_val *v,
					size_t n);
/* Free the names of raw_columns. */
void store_raw_names_free(char **names, size_t n);

/*
 * Backend interface. Every function gets a connection made by conn_open;
 * the store uses one connection in the caller's thread and one in the
 * writer thread. Results follow the public functions above.
 */
struct store_finding;

struct store_ops {
	const char *name;
	/* main: the caller's connection (migrates the schema, honours
	   relaxed_state); otherwise the writer thread's. */
	enum gw_err (*conn_open)(const struct store_options *opts, bool main,
				 void **conn);
	void (*conn_close)(void *conn);
	int (*schema_version)(void *conn);
	/* One transaction for all n; a failing item fails alone. Returns
	   non-OK when the transaction itself failed (then res[i].err is set
	   to that error for every i). */
	enum gw_err (*accept_batch)(void *conn,
				    const struct store_accept *const *reqs,
				    struct store_result *res, size_t n);
	/* Append audit records (seq, prev_hash, hash set here) in one
	   transaction of their own; all or none. */
	enum gw_err (*audit_append)(void *conn, struct store_audit_rec *recs,
				    size_t n);
	enum gw_err (*audit_list)(void *conn,
				  const struct store_audit_filter *f,
				  struct store_audit_rec **out, size_t *n);
	enum gw_err (*audit_verify)(void *conn, struct store_audit_check *out);
	enum gw_err (*claim)(void *conn, const char *receiver, int64_t due_by,
			     int64_t now, size_t max, struct store_row **rows,
			     size_t *n);
	enum gw_err (*finish)(void *conn, const char *id, const char *receiver,
			      enum store_state to, int status,
			      const char *error, const char *outcome,
			      int64_t at);
	enum gw_err (*recover)(void *conn, int64_t now, size_t *count);
	enum gw_err (*renew)(void *conn, int64_t seq, const char *receiver,
			     int64_t until);
	enum gw_err (*next_due_at)(void *conn, const char *receiver,
				   int64_t *at);
	enum gw_err (*get)(void *conn, const char *id, bool content, bool rows,
			   struct store_message **out);
	enum gw_err (*list)(void *conn, const struct store_filter *f,
			    struct store_row **rows, size_t *n);
	enum gw_err (*act)(void *conn, const char *id, const char *receiver,
			   enum store_action action, int64_t now,
			   size_t *changed);
	/* prune/prune_inbound: at most max messages (0: all there are), in
	   transactions of a bounded size; retention: the report's roll-ups
	   keep what goes (the daemon's retention), otherwise they lose it
	   (an operator's purge). */
	enum gw_err (*prune)(void *conn, int64_t before, size_t max,
			     bool retention, size_t *count);
	enum gw_err (*stats)(void *conn, struct store_stat **out, size_t *n);
	/* At most max lanes (0: all) per call, in one transaction. */
	enum gw_err (*expire)(void *conn, int64_t before, int64_t now,
			      size_t max, size_t *count);
	enum gw_err (*reschedule)(void *conn, const char *receiver, int64_t now,
				  size_t *count);
	/* The shared receiver holds (see store_hold_fail...). */
	enum gw_err (*holds)(void *conn, struct store_hold **out, size_t *n);
	enum gw_err (*hold_fail)(void *conn, const char *receiver,
				 const char *reason, int64_t now,
				 const struct store_backoff *b, uint32_t rnd,
				 int64_t not_before, bool *changed,
				 struct store_hold *out);
	enum gw_err (*hold_probe)(void *conn, const char *receiver, int64_t now,
				  int64_t probe_until);
	enum gw_err (*hold_clear)(void *conn, const char *receiver, bool *was);
	/* Background upkeep on a connection of its own, called about every
	   STORE_UPKEEP_MS; must not block writers for long. Logs nothing
	   (the caller limits how often a failure is said; detail gets
	   the backend's text). truncate: also cut the log file back to
	   nothing (disk low). */
	enum gw_err (*upkeep)(void *conn, bool truncate, char *detail,
			      size_t n);
	/* Compare the files conn has open with what its path names now. */
	enum store_file_state (*check_files)(void *conn);
	/* A round trip to a database server (NULL: an embedded file,
	   nothing to reach). GW_OK when it answered. */
	enum gw_err (*ping)(void *conn);
	/* The received-data index (issue 11): the id secret (n bytes), the
	   pull API's reads, the operator's inbox and inbound retention. */
	enum gw_err (*index_secret)(void *conn, unsigned char *out, size_t n);
	enum gw_err (*res_snapshot)(void *conn, int64_t *seq);
	/* Open (begin true) or close one read transaction. */
	enum gw_err (*res_txn)(void *conn, bool begin);
	enum gw_err (*res_find)(void *conn, const struct store_res_query *q,
				struct store_res **out, size_t *n);
	enum gw_err (*inbox_list)(void *conn,
				  const struct store_inbox_filter *f,
				  struct store_inbox **out, size_t *n);
	enum gw_err (*prune_inbound)(void *conn, int64_t before, size_t max,
				     bool retention, size_t *count);
	/* Raw table access of `pzpgw store copy` (store_copy.c), on the
	   connection store_raw gives. raw_begin: a read snapshot (write
	   false) or one write transaction; raw_end commits or rolls it
	   back. raw_columns: "table.column" of every column of every table
	   in the schema (sorted; caller frees with store_raw_names_free).
	   raw_select: the rows of table, ordered by its first nkeys
	   columns (byte order), fn called per row (values borrowed for
	   that call). raw_put: one row into table (cols as in raw_select;
	   v NULL ends the table's rows: whatever the backend buffered is
	   written). raw_clear: delete every row, append-only guards
	   included (in the write transaction). raw_counter: the last value
	   the table's key counter gave (set false: read into *last; true:
	   set from *last). */
	enum gw_err (*raw_begin)(void *conn, bool write);
	enum gw_err (*raw_end)(void *conn, bool commit);
	enum gw_err (*raw_columns)(void *conn, char ***names, size_t *n);
	enum gw_err (*raw_select)(void *conn, const char *table,
				  const struct store_col *cols, size_t ncols,
				  size_t nkeys, store_raw_row_fn fn, void *arg);
	enum gw_err (*raw_put)(void *conn, const char *table,
			       const struct store_col *cols, size_t ncols,
			       const struct store_val *v);
	enum gw_err (*raw_clear)(void *conn, const char *table);
	enum gw_err (*raw_counter)(void *conn, const char *table, int64_t *last,
				   bool set);
	/* Other connections of gateways to this store's database (NULL:
	   none can be seen this way; SQLite's daemon holds STORE.lock). */
	enum gw_err (*raw_sessions)(void *conn, int64_t *n);
	/* Interrupt statements still running at mono_ms (util_mono_ms();
	   0: no limit). NULL: no limit can be set. */
	void (*set_deadline)(void *conn, int64_t mono_ms);
	/* The report's aggregates (store_report_agg) over r. */
	enum gw_err (*report_agg)(void *conn, const struct store_agg_range *r,
				  store_agg_fn fn, void *arg);
	/* Add n findings' counts to rep_find, in one transaction. */
	enum gw_err (*findings_add)(void *conn, const struct store_finding *f,
				    size_t n);
};

/* One stored version of an indexed resource; store_res_free frees. */
struct store_res {
	int64_t seq; /* commit order of versions: snapshot and paging
			cursor */
	char type[STORE_TYPE_MAX + 1];
	char id[STORE_RID_MAX + 1];
	char receiver[STORE_URA_MAX + 1];
	char bsn[STORE_BSN_MAX + 1];
	char msg_id[STORE_ID_MAX + 1];	/* the latest message that carried
					  this version */
	char sender[STORE_URA_MAX + 1]; /* that message's MessageHeader
					   sender */
	int64_t vid;	 /* meta.versionId, 1, 2, ... per (type, id) */
	int64_t updated; /* meta.lastUpdated, ms since the epoch */
	bool hidden;	 /* entered-in-error */
	bool current;	 /* the newest version at the query's snapshot */
	char *json;	 /* as in store_index_entry, NUL-terminated */
	size_t json_len;
};

/* Free an array of n versions; NULL is a no-op. */
void store_res_free(struct store_res *v, size_t n);

/* What store_res_find looks for; receiver is required (the scope). */
struct store_res_query {
	const char *receiver; /* only what was sent to this URA */
	const char *bsn;      /* NULL: any patient */
	const char *type;     /* NULL: any type */
	const char *id;	      /* NULL: any logical id (needs type) */
	int64_t vid;	      /* > 0: that version only (vread) */
	/* Only versions with seq <= snapshot exist (0: no bound), so a
	   search paged later sees what it saw at its first page. */
	int64_t snapshot;
	int64_t since;	   /* updated >= since (ms); 0: no bound */
	bool history;	   /* every version, else the current ones only */
	bool hidden;	   /* include entered-in-error versions */
	int64_t after_seq; /* seq > after_seq (paging); 0: from the start */
	size_t limit;	   /* 0: no limit */
	/* msg_id and sender left "": the message rows are not read (the
	   pull API needs neither). */
	bool bare;
};

/* A read connection for one thread (the pull API's workers). */
struct store_reader;

/* Open a reader on s; caller frees with store_reader_free before
 * store_free. GW_NOMEM/GW_IO/GW_TEMP. */
enum gw_err store_reader_open(struct store *s, struct store_reader **out);
void store_reader_free(struct store_reader *r);

/* The newest seq committed now: a search's snapshot. */
enum gw_err store_res_snapshot(struct store_reader *r, int64_t *seq);

/*
 * A count that changes whenever retention removes versions
 * (store_prune_inbound): while it stays the same and even, what the index
 * holds at a given snapshot stays the same, so a reader may keep what it
 * read at that snapshot. Odd while a removal runs. Read it before
 * store_reader_begin and after store_res_snapshot: equal and even, the
 * transaction's view is the one that count names.
 */
uint64_t store_res_generation(const struct store_reader *r);

/*
 * One read transaction around the reads of a request: begin, then
 * store_res_snapshot / store_res_find, then end (always, also after a
 * failure; ending a reader with none open is a no-op). Without it each
 * read is a transaction of its own, and each may find a commit landed
 * since the last one and start again from an empty page cache.
 */
enum gw_err store_reader_begin(struct store_reader *r);
void store_reader_end(struct store_reader *r);

/* Versions matching q in seq order (ascending). *out: caller frees
 * with store_res_free; may be NULL when *n is 0. */
enum gw_err store_res_find(struct store_reader *r,
			   const struct store_res_query *q,
			   struct store_res **out, size_t *n);

/* The store's secret for logical ids (index_prepare): INDEX_SECRET_LEN
 * (32) random bytes made with the schema, fixed for the life of the
 * store; borrowed until store_free, any thread. NULL for a read-only
 * store. */
const unsigned char *store_index_secret(const struct store *s);

/* One inbound message for one local receiver (pzpgw inbox list). */
struct store_inbox {
	int64_t seq; /* the message's acceptance order */
	char id[STORE_ID_MAX + 1];
	char receiver[STORE_URA_MAX + 1]; /* "" for a message received
					     before schema 4 */
	char sender[STORE_URA_MAX + 1];	  /* MessageHeader.sender */
	char via[STORE_URA_MAX + 1];	  /* the organisation that posted it
					   (a gateway relaying, or sender) */
	char bsn[STORE_BSN_MAX + 1];	  /* "" when none */
	char fhir_version[16];
	int64_t accepted_at; /* ms */
	unsigned resources;  /* index entries written for it */
	size_t doc_len;
};

/* Filter for store_inbox_list; NULL/0 fields do not filter. */
struct store_inbox_filter {
	const char *receiver;
	const char *bsn;
	int64_t since;	   /* accepted_at >= since (ms) */
	int64_t after_seq; /* paging */
	size_t limit;	   /* 0: 100 */
};

/* Inbound messages matching f in acceptance order. *out: caller frees
 * with free(); may be NULL when *n is 0. */
enum gw_err store_inbox_list(struct store *s,
			     const struct store_inbox_filter *f,
			     struct store_inbox **out, size_t *n);

/* Retention of received data ([store] inbound_retention): delete inbound
 * messages accepted before `before` (ms) together with their inbox rows
 * and index versions, then reclaim space. A version still current that
 * a later message carried again unchanged belongs to that later message,
 * so it stays. *count (may be NULL) is the number of messages removed. */
enum gw_err store_prune_inbound(struct store *s, int64_t before, size_t *count);

/*
 * The audit trail (NEN 7513): one record per read, search, write and
 * refusal of the pull API and per message accepted for a local receiver.
 * Append-only; each record carries the SHA-256 of the previous one.
 */
struct store_audit_rec {
	int64_t seq;		     /* set by the store */
	int64_t at;		     /* ms since the epoch */
	char ura[STORE_URA_MAX + 1]; /* the organisation */
	char cert_serial[65];	     /* client certificate, hex */
	char cert_issuer[257];	     /* its issuer, one-line DN */
	char bsn[STORE_BSN_MAX + 1]; /* patient, "" when none */
	char interaction[32];	     /* read, vread, search-type,
					history-system, create, ... */
	char query[1024];	     /* path and query, never a body */
	unsigned count;		     /* resources returned */
	int status;		     /* HTTP status answered */
	char request_id[64];
	char prev_hash[65]; /* set by the store: hex SHA-256 */
	char hash[65];	    /* set by the store */
};

/* Queue rec (copied) for the writer thread, which chains and commits it
 * with its next batch. GW_TEMP when the queue is full: the caller refuses
 * the request it would have recorded (503), never answers unaudited.
 * GW_INVALID for a record with no interaction or an unterminated field.
 * at 0: now. A record the store cannot write (disk full, I/O) stays
 * queued and is tried again, so the queue fills and further requests are
 * refused until it can. */
enum gw_err store_submit_audit(struct store *s,
			       const struct store_audit_rec *rec);

/*
 * Validation findings of refused pushes (issue 17), per (hour, sender,
 * severity, rule, profile). Never an element value: rule is the issue's
 * code and the rule it broke (an invariant's key, or the element path
 * without indexes), profile the URL of a profile in the rules. Counted
 * in memory (store_count_finding) and written by the writer thread in
 * its own transaction at most STORE_FINDINGS_MS after the first count,
 * at store_flush and when the store closes: a crash (kill -9) loses the
 * counts of at most that long.
 */
#define STORE_SEVERITY_MAX 11
#define STORE_RULE_MAX	   95
#define STORE_PROFILE_MAX  191
/* Distinct keys waiting to be written, at most (past it: GW_TEMP). */
#define STORE_FINDINGS_MAX 4096
#define STORE_FINDINGS_MS  2000
struct store_finding {
	int64_t hour; /* hours since the epoch (UTC) */
	char sender[STORE_URA_MAX + 1];
	char severity[STORE_SEVERITY_MAX + 1];
	char rule[STORE_RULE_MAX + 1];
	char profile[STORE_PROFILE_MAX + 1]; /* "" none */
	int64_t n;
};

/* Add f->n to f's key (copied). Thread-safe. GW_TEMP when
 * STORE_FINDINGS_MAX keys wait (the count is lost), GW_INVALID for an
 * unterminated field. */
enum gw_err store_count_finding(struct store *s, const struct store_finding *f);

/* The prev_hash of the first record: 64 zeros. */
#define STORE_AUDIT_GENESIS                                                    \
	"0000000000000000000000000000000000000000000000000000000000000000"

/*
 * The hash of rec: hex SHA-256 of its canonical serialisation, "pzpgw-
 * audit-1\n" then, in this order, seq, at, ura, cert_serial, cert_issuer,
 * bsn, interaction, query, count, status, request_id and prev_hash, each
 * as "<decimal byte length>:<bytes>\n" (integers in decimal). rec->hash
 * is not read. Pure function (backends chain with it, verify recomputes).
 */
void store_audit_hash(const struct store_audit_rec *rec, char out[65]);

/* Whether rec counts as a pull in the report's roll-ups: not a push
 * ("create") and not an operator's action ("operator-retry", ...). The
 * backends' SQL says the same (SQ_PULLED, PG_PULLED). */
bool store_audit_is_pull(const struct store_audit_rec *rec);

/* What store_audit_list returns; NULL/0 fields do not filter. */
struct store_audit_filter {
	const char *bsn;
	const char *ura;
	int64_t since;	   /* at >= since (ms) */
	int64_t after_seq; /* paging */
	size_t limit;	   /* 0: 100 */
};

/* Records matching f in seq order. *out: caller frees (free()). */
enum gw_err store_audit_list(struct store *s,
			     const struct store_audit_filter *f,
			     struct store_audit_rec **out, size_t *n);

/* The result of store_audit_verify. */
struct store_audit_check {
	uint64_t records;  /* records read */
	int64_t first_seq; /* 0: no records */
	int64_t last_seq;
	char last_hash[65]; /* the chain's head: note it elsewhere to
				 detect a rewrite of the whole chain */
	int64_t broken_seq; /* 0: the chain holds */
	char problem[192];  /* what is wrong at broken_seq */
};

/*
 * Walk the whole audit trail in seq order recomputing every hash: GW_OK
 * when the chain holds, GW_INVALID (out->broken_seq and problem set) at
 * the first record deleted (a gap in seq, or records missing at the
 * start or end), altered (its hash no longer matches its content) or
 * reordered (its prev_hash is not its predecessor's hash); database
 * errors otherwise.
 */
enum gw_err store_audit_verify(struct store *s, struct store_audit_check *out);

/* The backend of s and its caller's connection (borrowed until
 * store_free), for store_copy.c's raw table access. */
const struct store_ops *store_raw(struct store *s, void **conn);

/* Interval of the background upkeep thread. */
#define STORE_UPKEEP_MS 100

/* The SQLite backend (store_sqlite.c). */
extern const struct store_ops store_sqlite_ops;

/* The PostgreSQL backend (store_pg.c): the same schema versions. */
extern const struct store_ops store_pg_ops;

/* Schema version the SQLite backend writes. */
/* 4: the received-data index; 5: the audit trail; 6: the transform
 * report beside a message; 7: a patient's versions indexed by type; 8: the
 * delivery lease; 9: the receivers' holds shared by nodes; 10: the report's
 * roll-ups (rep_* tables kept by triggers) and the event of a message;
 * 11: PostgreSQL: an accept's inbox rows counted by the writer; 12: pull
 * audit records counted by the writer, once per batch and key. */
#define STORE_SQLITE_SCHEMA 12

#endif
