/*
 * `pzpgw store copy` (issue 16): the table list of the store's schema and
 * the copy driven by it, through the backends' raw table access (store.h
 * raw_*), so either backend copies to either.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "store_copy.h"
#include "util.h"

#define I STORE_VAL_INT
#define T STORE_VAL_TEXT
#define B STORE_VAL_BLOB

/* Schema 8's columns, the key first (the ORDER BY of both sides). */
static const struct store_col copy_messages[] = {
    {"seq", I},
    {"id", T},
    {"direction", T},
    {"sender_ura", T},
    {"bundle_system", T},
    {"bundle_value", T},
    {"patient_key", T},
    {"fhir_version", T},
    {"document", B},
    {"jws", T},
    {"sha256", T},
    {"accepted_at", I},
    {"answer_status", I},
    {"answer_body", T},
    {"transform_report", T},
    {"event", T},
};
static const struct store_col copy_outbox[] = {
    {"message_seq", I},	     {"receiver_ura", T},
    {"patient_key", T},	     {"state", T},
    {"attempts", I},	     {"next_attempt_at", I},
    {"first_attempt_at", I}, {"last_attempt_at", I},
    {"last_status", I},	     {"last_error", T},
    {"outcome", T},	     {"delivered_at", I},
    {"replays", I},	     {"waiting", I},
    {"age_from", I},	     {"lease_owner", T},
    {"lease_until", I},
};
static const struct store_col copy_inbox[] = {
    {"message_seq", I}, {"receiver_ura", T}, {"bsn", T},
    {"sender_ura", T},	{"resources", I},
};
static const struct store_col copy_res[] = {
    {"seq", I},
    {"receiver_ura", T},
    {"bsn", T},
    {"type", T},
    {"id", T},
    {"vid", I},
    {"res_key", T},
    {"message_seq", I},
    {"updated", I},
    {"hidden", I},
    {"superseded_seq", I},
    {"sha256", T},
    {"json", T},
};
static const struct store_col copy_secret[] = {
    {"k", I},
    {"secret", B},
};
static const struct store_col copy_audit[] = {
    {"seq", I},		{"at", I},     {"ura", T},	   {"cert_serial", T},
    {"cert_issuer", T}, {"bsn", T},    {"interaction", T}, {"query", T},
    {"count", I},	{"status", I}, {"request_id", T},  {"prev_hash", T},
    {"hash", T},
};
static const struct store_col copy_find[] = {
    {"hour", I}, {"sender_ura", T}, {"severity", T},
    {"rule", T}, {"profile", T},    {"n", I},
};

/* Outbox columns the copy changes (copy_fix). */
#define COPY_OUTBOX_STATE	3
#define COPY_OUTBOX_LEASE_OWNER 15
#define COPY_OUTBOX_LEASE_UNTIL 16

#define ROWS(n, c, k, ...)                                                     \
	{                                                                      \
		.name = (n), .cols = (c), .ncols = UTIL_ARRAY_LEN(c),          \
		.nkeys = (k), .kind = STORE_COPY_ROWS, __VA_ARGS__             \
	}
#define REBUILT(n, w)                                                          \
	{                                                                      \
		.name = (n), .why = (w), .kind = STORE_COPY_REBUILT            \
	}

const struct store_copy_table store_copy_tables[] = {
    ROWS("messages", copy_messages, 1, .counter = true),
    ROWS("outbox", copy_outbox, 2),
    ROWS("inbox", copy_inbox, 2),
    ROWS("res_versions", copy_res, 1, .counter = true),
    ROWS("index_secret", copy_secret, 1, .own_row = true),
    ROWS("audit", copy_audit, 1, .counter = true),
    REBUILT("queue_counts", "SQLite: its triggers on outbox"),
    REBUILT("audit_head", "PostgreSQL: the audit counter (seq, hash)"),
    REBUILT("sqlite_sequence", "SQLite: the key counters"),
    REBUILT("pzpgw_schema", "PostgreSQL: the schema version (migrations)"),
    REBUILT("receiver_hold", "runtime state: a hold forms again at the "
			     "next failed probe"),
    /* The report's roll-ups: the destination's triggers count the rows
       as they are copied in (copying them too would count twice). */
    REBUILT("rep_msg", "the report's roll-ups: triggers on messages"),
    REBUILT("rep_row", "the report's roll-ups: triggers on outbox"),
    REBUILT("rep_lat", "the report's roll-ups: triggers on outbox"),
    REBUILT("rep_pull", "the report's roll-ups: triggers on audit"),
    REBUILT("rep_pat", "the report's roll-ups: triggers on audit"),
    REBUILT("rep_pat_last", "the report's roll-ups: triggers on audit"),
    REBUILT("rep_pruning", "empty outside a retention prune's "
			   "transaction"),
    REBUILT("rep_writer", "SQLite: empty outside the writer's audit "
			  "transaction"),
    /* counted by the daemon, not from rows: nothing could rebuild them */
    ROWS("rep_find", copy_find, 5),
};
const size_t store_copy_ntables = UTIL_ARRAY_LEN(store_copy_tables);

#undef I
#undef T
#undef B
#undef ROWS
#undef REBUILT

_Static_assert(UTIL_ARRAY_LEN(store_copy_tables) <= STORE_COPY_SUMS_MAX,
	       "a sum per table");

static const struct store_copy_table *
copy_table(const char *name, size_t len)
{
	for (size_t i = 0; i < store_copy_ntables; i++)
		if (strlen(store_copy_tables[i].name) == len &&
		    strncmp(store_copy_tables[i].name, name, len) == 0)
			return &store_copy_tables[i];
	return NULL;
}

enum gw_err
store_copy_check(struct store *s, char *what, size_t n)
{
	const struct store_ops *ops;
	void *conn;
	char **names = NULL;
	size_t nn = 0;
	enum gw_err err;

	what[0] = '\0';
	ops = store_raw(s, &conn);
	if ((err = ops->raw_columns(conn, &names, &nn)) != GW_OK)
		return err;
	for (size_t i = 0; i < nn && err == GW_OK; i++) {
		const char *dot = strchr(names[i], '.');
		const struct store_copy_table *t;
		bool known = false;

		if (dot == NULL)
			continue;
		t = copy_table(names[i], (size_t)(dot - names[i]));
		if (t == NULL) {
			snprintf(what, n, "%.*s", (int)(dot - names[i]),
				 names[i]);
			err = GW_INVALID;
			break;
		}
		if (t->kind == STORE_COPY_REBUILT)
			continue;
		for (size_t k = 0; k < t->ncols && !known; k++)
			known = strcmp(t->cols[k].name, dot + 1) == 0;
		if (!known) {
			snprintf(what, n, "%s", names[i]);
			err = GW_INVALID;
		}
	}
	store_raw_names_free(names, nn);
	return err;
}

/* One pass over a table's rows: counted, digested and (copy) written. */
struct copy_pass {
	const struct store_copy_table *t;
	EVP_MD_CTX *md;
	int64_t rows;
	/* The destination while copying; NULL while checking. */
	const struct store_ops *to;
	void *to_conn;
	/* Stop at the first row (the emptiness check). */
	bool any;
};

/* The row as copied: a delivery in flight is due again, and no lease
 * is carried (the node that held it is not the destination's). */
static void
copy_fix(const struct store_copy_table *t, struct store_val *v)
{
	static const struct store_val null;

	if (strcmp(t->name, "outbox") != 0)
		return;
	if (v[COPY_OUTBOX_STATE].type == STORE_VAL_TEXT &&
	    v[COPY_OUTBOX_STATE].len == 8 &&
	    memcmp(v[COPY_OUTBOX_STATE].p, "inflight", 8) == 0) {
		v[COPY_OUTBOX_STATE].p = "due";
		v[COPY_OUTBOX_STATE].len = 3;
	}
	v[COPY_OUTBOX_LEASE_OWNER] = null;
	v[COPY_OUTBOX_LEASE_UNTIL] = null;
}

/* A value into the digest: its type, then 8 bytes (the integer, or the
 * length) big-endian, then the bytes. */
static void
copy_digest(EVP_MD_CTX *md, const struct store_val *v)
{
	unsigned char h[9];
	uint64_t x = v->type == STORE_VAL_INT ? (uint64_t)v->i : v->len;

	h[0] = (unsigned char)v->type;
	for (int i = 0; i < 8; i++)
		h[1 + i] = (unsigned char)(x >> (56 - 8 * i));
	EVP_DigestUpdate(md, h, sizeof(h));
	if ((v->type == STORE_VAL_TEXT || v->type == STORE_VAL_BLOB) &&
	    v->len > 0)
		EVP_DigestUpdate(md, v->p, v->len);
}

static enum gw_err
copy_row(void *arg, const struct store_val *in, size_t n)
{
	struct copy_pass *p = arg;
	struct store_val v[STORE_RAW_COLS_MAX];

	if (p->any) {
		p->rows++;
		return GW_EXISTS;
	}
	memcpy(v, in, n * sizeof(*v));
	if (p->to != NULL)
		copy_fix(p->t, v);
	for (size_t i = 0; i < n; i++)
		copy_digest(p->md, &v[i]);
	p->rows++;
	if (p->to != NULL)
		return p->to->raw_put(p->to_conn, p->t->name, p->t->cols, n, v);
	return GW_OK;
}

/* Read t on (ops, conn): count and digest into *rows and hex; with to,
 * every row also written there. */
static enum gw_err
copy_pass(const struct store_copy_table *t, const struct store_ops *ops,
	  void *conn, const struct store_ops *to, void *to_conn, int64_t *rows,
	  char hex[65])
{
	struct copy_pass p = {.t = t, .to = to, .to_conn = to_conn};
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	enum gw_err err;

	if ((p.md = EVP_MD_CTX_new()) == NULL)
		return GW_NOMEM;
	if (EVP_DigestInit_ex(p.md, EVP_sha256(), NULL) != 1) {
		err = GW_NOMEM;
		goto out;
	}
	err = ops->raw_select(conn, t->name, t->cols, t->ncols, t->nkeys,
			      copy_row, &p);
	if (err == GW_OK && to != NULL)
		err = to->raw_put(to_conn, t->name, t->cols, t->ncols, NULL);
	if (err != GW_OK)
		goto out;
	if (EVP_DigestFinal_ex(p.md, d, &dl) != 1 || dl != 32) {
		err = GW_NOMEM;
		goto out;
	}
	for (unsigned i = 0; i < dl; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	*rows = p.rows;
out:
	EVP_MD_CTX_free(p.md);
	return err;
}

/* The first ROWS table of (ops, conn) holding data, or NULL. */
static enum gw_err
copy_empty(const struct store_ops *ops, void *conn, const char **table)
{
	*table = NULL;
	for (size_t i = 0; i < store_copy_ntables; i++) {
		const struct store_copy_table *t = &store_copy_tables[i];
		struct copy_pass p = {.t = t, .any = true};
		enum gw_err err;

		if (t->kind != STORE_COPY_ROWS || t->own_row)
			continue;
		/* The key column alone: the first row stops the read. */
		err =
		    ops->raw_select(conn, t->name, t->cols, 1, 1, copy_row, &p);
		if (err != GW_OK && err != GW_EXISTS)
			return err;
		if (p.rows > 0) {
			*table = t->name;
			return GW_OK;
		}
	}
	return GW_OK;
}

enum gw_err
store_copy_run(struct store *from, struct store *to, bool force,
	       struct store_copy_report *rep)
{
	const struct store_ops *fo, *to_ops;
	void *fc, *tc;
	const char *busy = NULL;
	bool fbegun = false, tbegun = false;
	enum gw_err err;

	memset(rep, 0, sizeof(*rep));
	fo = store_raw(from, &fc);
	to_ops = store_raw(to, &tc);
	if (store_schema_version(from) != store_schema_version(to)) {
		snprintf(rep->what, sizeof(rep->what), "schema %d and %d",
			 store_schema_version(from), store_schema_version(to));
		return GW_CONFIG;
	}
	if ((err = store_copy_check(from, rep->what, sizeof(rep->what))) !=
		GW_OK ||
	    (err = store_copy_check(to, rep->what, sizeof(rep->what))) != GW_OK)
		return err;
	/* A gateway running on the destination would write beside the
	   copy (or lose its rows to --force): refused, force or not. */
	if (to_ops->raw_sessions != NULL) {
		int64_t others = 0;

		if ((err = to_ops->raw_sessions(tc, &others)) != GW_OK)
			return err;
		if (others > 0) {
			snprintf(rep->what, sizeof(rep->what), "%lld",
				 (long long)others);
			return GW_DENIED;
		}
	}
	if ((err = fo->raw_begin(fc, false)) != GW_OK)
		goto out;
	fbegun = true;
	if ((err = to_ops->raw_begin(tc, true)) != GW_OK)
		goto out;
	tbegun = true;
	if ((err = copy_empty(to_ops, tc, &busy)) != GW_OK)
		goto out;
	if (busy != NULL && !force) {
		snprintf(rep->what, sizeof(rep->what), "%s", busy);
		err = GW_EXISTS;
		goto out;
	}
	/* Children first (their rows reference messages). */
	for (size_t i = store_copy_ntables; i-- > 0;)
		if (store_copy_tables[i].kind == STORE_COPY_ROWS &&
		    (err = to_ops->raw_clear(tc, store_copy_tables[i].name)) !=
			GW_OK)
			goto out;
	for (size_t i = 0; i < store_copy_ntables; i++) {
		const struct store_copy_table *t = &store_copy_tables[i];
		struct store_copy_sum *sum = &rep->sums[rep->nsums];

		if (t->kind != STORE_COPY_ROWS)
			continue;
		sum->table = t->name;
		rep->nsums++;
		if ((err = copy_pass(t, fo, fc, to_ops, tc, &sum->rows,
				     sum->sha256)) != GW_OK)
			goto out;
		if (t->counter &&
		    ((err = fo->raw_counter(fc, t->name, &sum->counter,
					    false)) != GW_OK ||
		     (err = to_ops->raw_counter(tc, t->name, &sum->counter,
						true)) != GW_OK))
			goto out;
	}
	/* Read back in the same transaction: commit only what equals. */
	rep->equal = true;
	for (size_t i = 0; i < rep->nsums; i++) {
		struct store_copy_sum *sum = &rep->sums[i];
		const struct store_copy_table *t =
		    copy_table(sum->table, strlen(sum->table));

		if ((err = copy_pass(t, to_ops, tc, NULL, NULL, &sum->dest_rows,
				     sum->dest_sha256)) != GW_OK)
			goto out;
		if (t->counter &&
		    (err = to_ops->raw_counter(tc, t->name, &sum->dest_counter,
					       false)) != GW_OK)
			goto out;
		if (!t->counter)
			sum->dest_counter = sum->counter;
		if (sum->rows != sum->dest_rows ||
		    sum->counter != sum->dest_counter ||
		    strcmp(sum->sha256, sum->dest_sha256) != 0)
			rep->equal = false;
	}
	if (!rep->equal) {
		err = GW_PERM;
		goto out;
	}
	/* A failed commit keeps equal: the CLI then says the commit
	   failed, not that the tables differ. */
	err = to_ops->raw_end(tc, true);
	tbegun = false;
out:
	if (tbegun)
		(void)to_ops->raw_end(tc, false);
	if (fbegun)
		(void)fo->raw_end(fc, false);
	return err;
}
