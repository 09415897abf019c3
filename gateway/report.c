/*
 * Usage insight: the aggregation behind `pzpgw report`. report_collect
 * reads the store's aggregates (store_report_agg: counted by the
 * database, on SQLite and PostgreSQL alike); report_add_* take single
 * records (tests). Writes to a FILE.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "report.h"
#include "store.h"
#include "util.h"

enum report_section {
	RS_DIRECTION,
	RS_SENDER,
	RS_RECEIVER,
	RS_VERSION,
	RS_EVENT,
	RS_PERIOD,
	RS_STATE,
	RS_DEAD,
	RS_FAILING,
	RS_PULLS,
	RS_PATIENTS,
	RS_FIND_RULE,
	RS_FIND_PROFILE,
	RS_FIND_SENDER,
	RS_COUNT
};

/* Section names (JSON keys, CSV first column) and text headings. */
static const char *const report_names[RS_COUNT] = {
    "messages_by_direction",
    "messages_by_sender",
    "messages_by_receiver",
    "messages_by_fhir_version",
    "messages_by_event",
    "messages_by_period",
    "outbox_by_state",
    "dead_letters_by_cause",
    "failing_by_cause",
    "pulls_by_organisation",
    "patients_read_by_organisation",
    "validation_findings_by_rule",
    "validation_findings_by_profile",
    "validation_findings_by_sender",
};
static const char *const report_heads[RS_COUNT] = {
    "Messages accepted, by direction",
    "Messages accepted, by sender",
    "Messages accepted, by receiver (one per receiver)",
    "Messages accepted, by FHIR version",
    "Messages accepted, by event (the sender's MessageHeader)",
    "Messages accepted, by period",
    "Outbox rows, by state",
    "Dead letters, by cause",
    "Rows waiting after a failed attempt, by cause",
    "Pull API requests, by organisation",
    "Distinct patients read, by organisation",
    "Validation findings of refused pushes, by severity and rule",
    "Validation findings of refused pushes, by severity and profile",
    "Validation findings of refused pushes, by sender",
};

struct report_item {
	enum report_section sec;
	/* "severity rule" or "severity profile" at most (findings) */
	char key[STORE_SEVERITY_MAX + STORE_PROFILE_MAX + 4];
	uint64_t count;
};

/* One (organisation, patient key) pair of the audit: only to count
 * distinct patients; the BSN is never written. */
struct report_pair {
	char ura[STORE_URA_MAX + 1];
	char bsn[STORE_BSN_MAX + 1];
};

/* Deliveries in one latency bucket (store_agg_bucket_ms). */
struct report_bucket {
	int64_t bucket;
	uint64_t n;
};

struct report {
	int64_t from, to;
	enum report_by by;
	struct report_item *items;
	size_t nitems, capitems;
	/* open addressing over items (index + 1, 0 empty); a report over
	   hours has thousands of periods and each group adds to several */
	size_t *slots;
	size_t nslots; /* a power of two, > 2 * nitems; 0: none yet */
	int64_t *lat;  /* delivery latencies, ms (report_add_row) */
	size_t nlat, caplat;
	/* or bucketed (report_collect): nlat counts them too */
	struct report_bucket *buckets;
	size_t nbuckets, capbuckets;
	uint32_t *bucket_at; /* bucket number -> index + 1 (report_bucket) */
	struct report_pair *pairs;
	size_t npairs, cappairs;
	int64_t last_out_seq; /* rows of one message are consecutive */
	int64_t last_in_seq;
};

enum gw_err
report_new(int64_t from, int64_t to, enum report_by by, struct report **out)
{
	struct report *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return GW_NOMEM;
	r->from = from;
	r->to = to;
	r->by = by;
	r->last_out_seq = -1;
	r->last_in_seq = -1;
	*out = r;
	return GW_OK;
}

void
report_free(struct report *r)
{
	if (r == NULL)
		return;
	free(r->items);
	free(r->slots);
	free(r->lat);
	free(r->buckets);
	free(r->bucket_at);
	if (r->pairs != NULL)
		OPENSSL_cleanse(r->pairs, r->cappairs * sizeof(*r->pairs));
	free(r->pairs);
	free(r);
}

/* Grow *p (of *cap elements of size sz) to hold one more than n. */
static bool
report_grow(void **p, size_t *cap, size_t n, size_t sz)
{
	size_t ncap;
	void *np;

	if (n < *cap)
		return true;
	ncap = *cap != 0 ? *cap * 2 : 64;
	np = realloc(*p, ncap * sz);
	if (np == NULL)
		return false;
	*p = np;
	*cap = ncap;
	return true;
}

static size_t
report_hash(enum report_section sec, const char *key)
{
	size_t h = 2166136261u ^ (size_t)sec;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h;
}

/* Rebuild the slots for at least want items. */
static bool
report_reindex(struct report *r, size_t want)
{
	size_t n = r->nslots != 0 ? r->nslots : 256, *v;

	while (n <= 2 * want)
		n *= 2;
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return false;
	for (size_t i = 0; i < r->nitems; i++) {
		size_t k =
		    report_hash(r->items[i].sec, r->items[i].key) & (n - 1);

		while (v[k] != 0)
			k = (k + 1) & (n - 1);
		v[k] = i + 1;
	}
	free(r->slots);
	r->slots = v;
	r->nslots = n;
	return true;
}

/* Add inc to (sec, key). */
static enum gw_err
report_count(struct report *r, enum report_section sec, const char *key,
	     uint64_t inc)
{
	struct report_item *it;
	size_t k;

	if ((r->slots == NULL || r->nslots <= 2 * (r->nitems + 1)) &&
	    !report_reindex(r, r->nitems + 1))
		return GW_NOMEM;
	k = report_hash(sec, key) & (r->nslots - 1);
	for (; r->slots[k] != 0; k = (k + 1) & (r->nslots - 1)) {
		it = &r->items[r->slots[k] - 1];
		if (it->sec == sec && strcmp(it->key, key) == 0) {
			it->count += inc;
			return GW_OK;
		}
	}
	if (!report_grow((void **)&r->items, &r->capitems, r->nitems,
			 sizeof(*r->items)))
		return GW_NOMEM;
	it = &r->items[r->nitems++];
	it->sec = sec;
	util_strlcpy(it->key, key, sizeof(it->key));
	it->count = inc;
	r->slots[k] = r->nitems;
	return GW_OK;
}

static bool
report_in_range(const struct report *r, int64_t at)
{
	return (r->from == 0 || at >= r->from) && (r->to == 0 || at < r->to);
}

/* The period label of at (ms): 2026-12-05T13 (hour, UTC), 2026-12-05,
 * 2026-W49 (ISO week) or 2026-12. */
static void
report_period(enum report_by by, int64_t at, char *out, size_t len)
{
	time_t t = (time_t)(at / 1000);
	struct tm tm;

	out[0] = '\0';
	if (gmtime_r(&t, &tm) == NULL)
		return;
	strftime(out, len,
		 by == REPORT_BY_HOUR	? "%Y-%m-%dT%H"
		 : by == REPORT_BY_DAY	? "%Y-%m-%d"
		 : by == REPORT_BY_WEEK ? "%G-W%V"
					: "%Y-%m",
		 &tm);
}

/* inc accepted messages (not one per receiver). */
static enum gw_err
report_message(struct report *r, const char *direction, const char *sender,
	       const char *version, const char *event, int64_t at, uint64_t inc)
{
	enum gw_err err;
	char period[16];

	err = report_count(r, RS_DIRECTION, direction, inc);
	if (err == GW_OK && sender != NULL)
		err = report_count(r, RS_SENDER, sender, inc);
	if (err == GW_OK && version != NULL)
		err =
		    report_count(r, RS_VERSION,
				 version[0] != '\0' ? version : "unknown", inc);
	if (err == GW_OK && event != NULL)
		err = report_count(r, RS_EVENT,
				   event[0] != '\0' ? event : "unknown", inc);
	if (err == GW_OK && r->by != REPORT_BY_NONE) {
		report_period(r->by, at, period, sizeof(period));
		err = report_count(r, RS_PERIOD, period, inc);
	}
	return err;
}

/* Why a row failed, as a fixed label: the free text of last_error may
 * quote a receiver's answer, so it is not copied. */
static const char *
report_cause(const struct store_row *row, char *buf, size_t len)
{
	if (row->last_error != NULL &&
	    strstr(row->last_error, "max age exceeded") != NULL)
		return "max age exceeded";
	if (row->last_status != 0) {
		snprintf(buf, len, "HTTP %d", row->last_status);
		return buf;
	}
	if (row->last_error != NULL &&
	    strstr(row->last_error, "document missing") != NULL)
		return "document missing";
	return "no answer (connection, TLS or local)";
}

enum gw_err
report_add_row(struct report *r, const struct store_row *row,
	       const char *fhir_version)
{
	enum gw_err err = GW_OK;
	char buf[32];
	const char *st;

	if (!report_in_range(r, row->accepted_at))
		return GW_OK;
	if (row->seq != r->last_out_seq) {
		r->last_out_seq = row->seq;
		err = report_message(
		    r, store_direction_name(row->direction),
		    row->direction == STORE_NOTICE ? NULL : row->sender,
		    row->direction == STORE_NOTICE ? NULL : fhir_version, NULL,
		    row->accepted_at, 1);
	}
	if (err == GW_OK && row->direction != STORE_NOTICE)
		err = report_count(r, RS_RECEIVER, row->receiver, 1);
	st = store_state_name(row->state);
	if (err == GW_OK)
		err = report_count(r, RS_STATE, st != NULL ? st : "unknown", 1);
	if (err != GW_OK)
		return err;
	if (row->state == STORE_DEAD)
		return report_count(r, RS_DEAD,
				    report_cause(row, buf, sizeof(buf)), 1);
	if ((row->state == STORE_DUE || row->state == STORE_HELD) &&
	    row->attempts > 0 && row->last_attempt_at != 0)
		err = report_count(r, RS_FAILING,
				   report_cause(row, buf, sizeof(buf)), 1);
	if (err == GW_OK && row->state == STORE_DELIVERED &&
	    row->direction == STORE_OUTBOUND && row->delivered_at != 0 &&
	    row->delivered_at >= row->accepted_at) {
		if (!report_grow((void **)&r->lat, &r->caplat, r->nlat,
				 sizeof(*r->lat)))
			return GW_NOMEM;
		r->lat[r->nlat++] = row->delivered_at - row->accepted_at;
	}
	return err;
}

enum gw_err
report_add_inbox(struct report *r, const struct store_inbox *m)
{
	enum gw_err err = GW_OK;

	if (!report_in_range(r, m->accepted_at))
		return GW_OK;
	if (m->seq != r->last_in_seq) {
		r->last_in_seq = m->seq;
		err = report_message(r, "inbound", m->sender, m->fhir_version,
				     NULL, m->accepted_at, 1);
	}
	if (err == GW_OK && m->receiver[0] != '\0')
		err = report_count(r, RS_RECEIVER, m->receiver, 1);
	return err;
}

enum gw_err
report_add_audit(struct report *r, const struct store_audit_rec *rec)
{
	struct report_pair *p;
	enum gw_err err;

	/* a push ("create") and an operator's console action are no pull */
	if (!report_in_range(r, rec->at) ||
	    strcmp(rec->interaction, "create") == 0 ||
	    strncmp(rec->interaction, "operator-", 9) == 0)
		return GW_OK;
	err = report_count(r, RS_PULLS, rec->ura, 1);
	if (err != GW_OK || rec->bsn[0] == '\0')
		return err;
	if (!report_grow((void **)&r->pairs, &r->cappairs, r->npairs,
			 sizeof(*r->pairs)))
		return GW_NOMEM;
	p = &r->pairs[r->npairs++];
	util_strlcpy(p->ura, rec->ura, sizeof(p->ura));
	util_strlcpy(p->bsn, rec->bsn, sizeof(p->bsn));
	return GW_OK;
}

static int
report_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int
report_cmp_pair(const void *a, const void *b)
{
	const struct report_pair *x = a, *y = b;
	int c = strcmp(x->ura, y->ura);

	return c != 0 ? c : strcmp(x->bsn, y->bsn);
}

/* Sections in order; within one, the largest count first, then key. */
static int
report_cmp_item(const void *a, const void *b)
{
	const struct report_item *x = a, *y = b;

	if (x->sec != y->sec)
		return (int)x->sec - (int)y->sec;
	if (x->sec == RS_PERIOD)
		return strcmp(x->key, y->key);
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->key, y->key);
}

int64_t
report_percentile(const int64_t *sorted, size_t n, unsigned q)
{
	size_t rank;

	if (n == 0)
		return 0;
	/* nearest rank: the smallest value with at least q% at or below */
	rank = ((size_t)q * n + 99) / 100;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static int
report_cmp_bucket(const void *a, const void *b)
{
	const struct report_bucket *x = a, *y = b;

	return (x->bucket > y->bucket) - (x->bucket < y->bucket);
}

/* The nearest-rank percentile q of the deliveries: from the values, or
 * the middle of the bucket holding that rank (within 0.5%, exact below
 * 1000 ms). Needs report_finish. */
static int64_t
report_lat_q(const struct report *r, unsigned q)
{
	uint64_t rank, seen = 0;
	int64_t lo, hi;

	if (r->nbuckets == 0)
		return report_percentile(r->lat, r->nlat, q);
	rank = ((uint64_t)q * r->nlat + 99) / 100;
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < r->nbuckets; i++) {
		seen += r->buckets[i].n;
		if (seen >= rank)
			return store_agg_bucket_ms(r->buckets[i].bucket, &lo,
						   &hi);
	}
	return store_agg_bucket_ms(r->buckets[r->nbuckets - 1].bucket, &lo,
				   &hi);
}

/* Turn the audit pairs into distinct-patient counts and sort. */
static enum gw_err
report_finish(struct report *r)
{
	enum gw_err err = GW_OK;

	/* qsort's base may not be NULL, even for no elements */
	if (r->nbuckets == 0 && r->nlat > 0)
		qsort(r->lat, r->nlat, sizeof(*r->lat), report_cmp_i64);
	if (r->nbuckets > 0)
		qsort(r->buckets, r->nbuckets, sizeof(*r->buckets),
		      report_cmp_bucket);
	if (r->npairs > 0)
		qsort(r->pairs, r->npairs, sizeof(*r->pairs), report_cmp_pair);
	for (size_t i = 0; i < r->npairs && err == GW_OK; i++)
		if (i == 0 ||
		    report_cmp_pair(&r->pairs[i - 1], &r->pairs[i]) != 0)
			err = report_count(r, RS_PATIENTS, r->pairs[i].ura, 1);
	/* the pairs are not needed any more: forget the BSNs now */
	if (r->pairs != NULL)
		OPENSSL_cleanse(r->pairs, r->cappairs * sizeof(*r->pairs));
	free(r->pairs);
	r->pairs = NULL;
	r->npairs = r->cappairs = 0;
	/* keys whose shards add up to nothing */
	for (size_t i = 0, k = 0, n = r->nitems; i < n; i++) {
		if (r->items[i].count != 0)
			r->items[k++] = r->items[i];
		if (i + 1 == n)
			r->nitems = k;
	}
	if (r->nitems > 0)
		qsort(r->items, r->nitems, sizeof(*r->items), report_cmp_item);
	/* sorted: the slots point at other items now */
	free(r->slots);
	r->slots = NULL;
	r->nslots = 0;
	return err;
}

/* The display name of an organisation, "" when not configured. */
static const char *
report_org_name(const struct config *cfg, const char *ura)
{
	const struct config_peer *p;

	if (cfg == NULL)
		return "";
	if (strcmp(cfg->ura, ura) == 0 && cfg->name != NULL)
		return cfg->name;
	p = config_peer_find(cfg, ura);
	return p != NULL && p->name != NULL ? p->name : "";
}

static bool
report_is_org(enum report_section sec)
{
	return sec == RS_SENDER || sec == RS_RECEIVER || sec == RS_PULLS ||
	       sec == RS_PATIENTS || sec == RS_FIND_SENDER;
}

/* A count as written: "<5" for 1..4 unless exact. */
static const char *
report_shown(uint64_t count, bool exact, char *buf, size_t len)
{
	if (!exact && count > 0 && count < REPORT_MIN_COUNT)
		return "<5";
	snprintf(buf, len, "%llu", (unsigned long long)count);
	return buf;
}

/* CSV field: quoted, with doubled quotes, when it needs it. */
static void
report_csv_field(FILE *fp, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, fp);
		return;
	}
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

static const unsigned report_qs[] = {50, 90, 99};

static enum gw_err
report_write_text(const struct report *r, FILE *fp, bool exact,
		  const struct config *cfg, bool lat_shown)
{
	char buf[32];
	int last = -1;

	for (size_t i = 0; i < r->nitems; i++) {
		const struct report_item *it = &r->items[i];
		const char *name =
		    report_is_org(it->sec) ? report_org_name(cfg, it->key) : "";

		if ((int)it->sec != last) {
			fprintf(fp, "%s%s\n", last >= 0 ? "\n" : "",
				report_heads[it->sec]);
			last = (int)it->sec;
		}
		fprintf(fp, "  %-24s %8s%s%s\n", it->key,
			report_shown(it->count, exact, buf, sizeof(buf)),
			name[0] != '\0' ? "  " : "", name);
	}
	fprintf(fp,
		"%sDelivery latency (accepted to delivered), %s "
		"deliveries\n",
		last >= 0 ? "\n" : "",
		report_shown(r->nlat, exact, buf, sizeof(buf)));
	for (size_t i = 0; i < 3; i++) {
		if (lat_shown)
			fprintf(fp, "  p%-23u %8lld ms\n", report_qs[i],
				(long long)report_lat_q(r, report_qs[i]));
		else
			fprintf(fp, "  p%-23u %8s\n", report_qs[i], "-");
	}
	return GW_OK;
}

static enum gw_err
report_write_csv(const struct report *r, FILE *fp, bool exact,
		 const struct config *cfg, bool lat_shown)
{
	char buf[32];

	fputs("section,key,name,value\n", fp);
	for (size_t i = 0; i < r->nitems; i++) {
		const struct report_item *it = &r->items[i];

		fprintf(fp, "%s,", report_names[it->sec]);
		report_csv_field(fp, it->key);
		fputc(',', fp);
		report_csv_field(fp, report_is_org(it->sec)
					 ? report_org_name(cfg, it->key)
					 : "");
		fprintf(fp, ",%s\n",
			report_shown(it->count, exact, buf, sizeof(buf)));
	}
	fprintf(fp, "delivery_latency_ms,count,,%s\n",
		report_shown(r->nlat, exact, buf, sizeof(buf)));
	for (size_t i = 0; i < 3 && lat_shown; i++)
		fprintf(fp, "delivery_latency_ms,p%u,,%lld\n", report_qs[i],
			(long long)report_lat_q(r, report_qs[i]));
	return GW_OK;
}

/* A count in JSON: a number, or the string "<5". */
static json_t *
report_json_count(uint64_t count, bool exact)
{
	if (!exact && count > 0 && count < REPORT_MIN_COUNT)
		return json_string("<5");
	return json_integer((json_int_t)count);
}

static enum gw_err
report_write_json(const struct report *r, FILE *fp, bool exact,
		  const struct config *cfg, bool lat_shown)
{
	json_t *root = json_object(), *lat = json_object();
	enum gw_err err = GW_NOMEM;

	if (root == NULL || lat == NULL)
		goto out;
	for (size_t i = 0; i < RS_COUNT; i++)
		json_object_set_new(root, report_names[i], json_array());
	for (size_t i = 0; i < r->nitems; i++) {
		const struct report_item *it = &r->items[i];
		json_t *o = json_pack("{s:s, s:o}", "key", it->key, "count",
				      report_json_count(it->count, exact));

		if (o == NULL)
			goto out;
		if (report_is_org(it->sec))
			json_object_set_new(
			    o, "name",
			    json_string(report_org_name(cfg, it->key)));
		json_array_append_new(
		    json_object_get(root, report_names[it->sec]), o);
	}
	json_object_set_new(lat, "count", report_json_count(r->nlat, exact));
	if (lat_shown) {
		json_object_set_new(lat, "p50",
				    json_integer(report_lat_q(r, 50)));
		json_object_set_new(lat, "p90",
				    json_integer(report_lat_q(r, 90)));
		json_object_set_new(lat, "p99",
				    json_integer(report_lat_q(r, 99)));
	}
	json_object_set_new(root, "delivery_latency_ms", lat);
	lat = NULL;
	/* percentiles from buckets: each within this fraction of the
	   nearest-rank value (exact below 1000 ms) */
	if (r->nbuckets > 0)
		json_object_set_new(root, "delivery_latency_max_error",
				    json_real(0.005));
	json_object_set_new(root, "exact", json_boolean(exact));
	json_object_set_new(root, "from",
			    r->from != 0 ? json_integer(r->from) : json_null());
	json_object_set_new(root, "to",
			    r->to != 0 ? json_integer(r->to) : json_null());
	err = json_dumpf(root, fp,
			 JSON_INDENT(2) | JSON_SORT_KEYS |
			     JSON_REAL_PRECISION(6)) == 0
		  ? GW_OK
		  : GW_IO;
	fputc('\n', fp);
out:
	json_decref(lat);
	json_decref(root);
	return err;
}

enum gw_err
report_write(struct report *r, FILE *fp, enum report_format fmt, bool exact,
	     const struct config *cfg)
{
	enum gw_err err = report_finish(r);
	bool lat_shown = r->nlat > 0 && (exact || r->nlat >= REPORT_MIN_COUNT);

	if (err != GW_OK)
		return err;
	if (fmt == REPORT_JSON)
		err = report_write_json(r, fp, exact, cfg, lat_shown);
	else if (fmt == REPORT_CSV)
		err = report_write_csv(r, fp, exact, cfg, lat_shown);
	else
		err = report_write_text(r, fp, exact, cfg, lat_shown);
	if (err == GW_OK && (fflush(fp) != 0 || ferror(fp)))
		err = GW_IO;
	return err;
}

/* Add n deliveries to bucket b: buckets are few (about 900 per decade
 * of ms) and come once per hour of the range, so the bucket's place is
 * kept in an index (b < REPORT_BUCKETS; larger ones, past 10^16 ms,
 * are searched). */
#define REPORT_BUCKETS (1000 + 900 * 14)

static enum gw_err
report_bucket(struct report *r, int64_t b, uint64_t n)
{
	size_t i = r->nbuckets;

	if (b < 0)
		return GW_OK;
	if (b < REPORT_BUCKETS) {
		if (r->bucket_at == NULL &&
		    (r->bucket_at =
			 calloc(REPORT_BUCKETS, sizeof(*r->bucket_at))) == NULL)
			return GW_NOMEM;
		if (r->bucket_at[b] != 0)
			i = r->bucket_at[b] - 1;
	} else
		for (i = 0; i < r->nbuckets && r->buckets[i].bucket != b; i++)
			;
	if (i == r->nbuckets) {
		if (!report_grow((void **)&r->buckets, &r->capbuckets,
				 r->nbuckets, sizeof(*r->buckets)))
			return GW_NOMEM;
		r->buckets[i].bucket = b;
		r->buckets[i].n = 0;
		r->nbuckets++;
		if (b < REPORT_BUCKETS)
			r->bucket_at[b] = (uint32_t)r->nbuckets;
	}
	r->buckets[i].n += n;
	r->nlat += n;
	return GW_OK;
}

/* n findings of one (hour, sender, severity, rule, profile). */
static enum gw_err
report_finding(struct report *r, const struct store_agg *g, uint64_t n)
{
	char key[sizeof(((struct report_item *)NULL)->key)];
	enum gw_err err;

	snprintf(key, sizeof(key), "%s %s", g->severity, g->rule);
	err = report_count(r, RS_FIND_RULE, key, n);
	snprintf(key, sizeof(key), "%s %s", g->severity,
		 g->profile[0] != '\0' ? g->profile : "(no profile)");
	if (err == GW_OK)
		err = report_count(r, RS_FIND_PROFILE, key, n);
	if (err == GW_OK)
		err = report_count(r, RS_FIND_SENDER, g->org, n);
	return err;
}

/* Count one aggregate of the store (store_agg_fn). */
static enum gw_err
report_agg(void *arg, const struct store_agg *g)
{
	struct report *r = arg;
	enum gw_err err = GW_OK;
	bool notice;
	uint64_t n;

	if (g->n == 0)
		return GW_OK; /* a roll-up row whose rows all left */
	/* A PostgreSQL shard's row may be negative (a row counted in one
	   shard left through another): unsigned sums wrap back. */
	n = (uint64_t)g->n;
	switch (g->what) {
	case STORE_AGG_MESSAGES:
		notice = strcmp(g->kind, "notice") == 0;
		return report_message(r, g->kind, notice ? NULL : g->org,
				      notice ? NULL : g->version,
				      notice ? NULL : g->event,
				      g->hour * INT64_C(3600000), n);
	case STORE_AGG_ROWS:
		if (strcmp(g->kind, "notice") != 0 && g->org[0] != '\0')
			err = report_count(r, RS_RECEIVER, g->org, n);
		if (err != GW_OK || g->state[0] == '\0')
			return err; /* an inbox row has no state */
		err = report_count(r, RS_STATE, g->state, n);
		if (err != GW_OK || g->cause[0] == '\0')
			return err;
		return report_count(
		    r, strcmp(g->state, "dead") == 0 ? RS_DEAD : RS_FAILING,
		    g->cause, n);
	case STORE_AGG_LATENCY:
		return report_bucket(r, g->bucket, n);
	case STORE_AGG_PULLS:
		return report_count(r, RS_PULLS, g->org, n);
	case STORE_AGG_PATIENTS:
		return report_count(r, RS_PATIENTS, g->org, n);
	case STORE_AGG_FINDINGS:
		return report_finding(r, g, n);
	}
	return GW_OK;
}

enum gw_err
report_collect(struct report *r, struct store *s)
{
	return store_report_agg(s, r->from, r->to, report_agg, r);
}
