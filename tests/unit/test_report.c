/*
 * report.c: the counts, percentiles and "<5" rule of `pzpgw report` over
 * known traffic, in JSON, CSV and text; no BSN in any output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "store.h"
#include "util.h"

#define URA_A "00000001"
#define URA_B "00000002"
#define URA_C "00000003"
#define URA_D "00000004"
#define URA_E "00000005"
#define BSN1  "999911120"
#define BSN2  "999911132"
#define T0    1764547200000LL /* 2025-12-01T00:00:00Z */
#define DAY   86400000LL

static void
row(struct report *r, int64_t seq, const char *receiver, enum store_state st,
    int64_t accepted, int64_t delivered, int status, const char *error)
{
	struct store_row w = {0};

	w.seq = seq;
	snprintf(w.id, sizeof(w.id), "m%lld", (long long)seq);
	util_strlcpy(w.sender, URA_A, sizeof(w.sender));
	util_strlcpy(w.receiver, receiver, sizeof(w.receiver));
	w.direction = STORE_OUTBOUND;
	w.state = st;
	w.attempts = status != 0 || error != NULL ? 2 : 1;
	w.accepted_at = accepted;
	w.last_attempt_at = accepted + 10;
	w.delivered_at = delivered;
	w.last_status = status;
	w.last_error = (char *)error;
	assert_int_equal(report_add_row(r, &w, "4.0.1"), GW_OK);
}

/*
 * 12 messages A -> B delivered after 100..1200 ms, 3 A -> C dead (HTTP
 * 422), 1 A -> C waiting after a 503, 1 A -> B before --from; 7 inbound
 * from D (STU3); 6 reads by E over 2 patients and a create.
 */
static void
fill(struct report *r)
{
	struct store_inbox in = {0};
	struct store_audit_rec a = {0};
	int64_t seq = 1;

	row(r, seq++, URA_B, STORE_DELIVERED, T0 - DAY, T0 - DAY + 5, 0, NULL);
	for (int i = 1; i <= 12; i++)
		row(r, seq++, URA_B, STORE_DELIVERED, T0 + i * 1000,
		    T0 + i * 1000 + i * 100, 0, NULL);
	for (int i = 0; i < 3; i++)
		row(r, seq++, URA_C, STORE_DEAD, T0 + 40 * DAY, 0, 422,
		    "rejected: patient 999911120 unknown");
	row(r, seq++, URA_C, STORE_DUE, T0 + 40 * DAY, 0, 503, "busy");
	for (int i = 0; i < 7; i++) {
		in.seq = seq++;
		util_strlcpy(in.receiver, URA_A, sizeof(in.receiver));
		util_strlcpy(in.sender, URA_D, sizeof(in.sender));
		util_strlcpy(in.bsn, BSN1, sizeof(in.bsn));
		util_strlcpy(in.fhir_version, "3.0.2", sizeof(in.fhir_version));
		in.accepted_at = T0 + 2 * DAY;
		assert_int_equal(report_add_inbox(r, &in), GW_OK);
	}
	util_strlcpy(a.ura, URA_E, sizeof(a.ura));
	a.at = T0 + 3 * DAY;
	for (int i = 0; i < 6; i++) {
		util_strlcpy(a.bsn, i % 2 != 0 ? BSN1 : BSN2, sizeof(a.bsn));
		util_strlcpy(a.interaction, i == 0 ? "search-type" : "read",
			     sizeof(a.interaction));
		assert_int_equal(report_add_audit(r, &a), GW_OK);
	}
	util_strlcpy(a.interaction, "create", sizeof(a.interaction));
	assert_int_equal(report_add_audit(r, &a), GW_OK);
}

/* The report written in fmt, as a heap string. */
static char *
written(enum report_by by, enum report_format fmt, bool exact)
{
	struct report *r = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);

	assert_non_null(fp);
	assert_int_equal(report_new(T0, 0, by, &r), GW_OK);
	fill(r);
	assert_int_equal(report_write(r, fp, fmt, exact, NULL), GW_OK);
	fclose(fp);
	report_free(r);
	assert_null(strstr(out, BSN1));
	assert_null(strstr(out, BSN2));
	assert_null(strstr(out, "rejected"));
	return out;
}

/* The count of key in section of a JSON report: a number, or -5 for
 * "<5", -1 when absent. */
static long long
count_of(json_t *root, const char *section, const char *key)
{
	json_t *arr = json_object_get(root, section), *o;
	size_t i;

	assert_non_null(arr);
	json_array_foreach(arr, i, o)
	{
		json_t *c = json_object_get(o, "count");

		if (strcmp(json_string_value(json_object_get(o, "key")), key) !=
		    0)
			continue;
		if (json_is_string(c)) {
			assert_string_equal(json_string_value(c), "<5");
			return -5;
		}
		return json_integer_value(c);
	}
	return -1;
}

static json_t *
json_report(enum report_by by, bool exact)
{
	char *out = written(by, REPORT_JSON, exact);
	json_t *root = json_loads(out, 0, NULL);

	free(out);
	assert_non_null(root);
	return root;
}

static void
test_percentile(void **state)
{
	int64_t v[100];

	(void)state;
	for (int i = 0; i < 100; i++)
		v[i] = i + 1;
	assert_int_equal(report_percentile(v, 100, 50), 50);
	assert_int_equal(report_percentile(v, 100, 90), 90);
	assert_int_equal(report_percentile(v, 100, 99), 99);
	assert_int_equal(report_percentile(v, 1, 50), 1);
	assert_int_equal(report_percentile(v, 3, 99), 3);
	assert_int_equal(report_percentile(v, 0, 50), 0);
}

static void
test_counts_below_five(void **state)
{
	json_t *root = json_report(REPORT_BY_NONE, false), *lat;

	(void)state;
	/* the message before --from is not counted */
	assert_int_equal(count_of(root, "messages_by_sender", URA_A), 16);
	assert_int_equal(count_of(root, "messages_by_sender", URA_D), 7);
	assert_int_equal(count_of(root, "messages_by_direction", "outbound"),
			 16);
	assert_int_equal(count_of(root, "messages_by_direction", "inbound"), 7);
	assert_int_equal(count_of(root, "messages_by_receiver", URA_B), 12);
	assert_int_equal(count_of(root, "messages_by_receiver", URA_C), -5);
	assert_int_equal(count_of(root, "messages_by_fhir_version", "4.0.1"),
			 16);
	assert_int_equal(count_of(root, "messages_by_fhir_version", "3.0.2"),
			 7);
	assert_int_equal(count_of(root, "dead_letters_by_cause", "HTTP 422"),
			 -5);
	assert_int_equal(count_of(root, "failing_by_cause", "HTTP 503"), -5);
	assert_int_equal(count_of(root, "pulls_by_organisation", URA_E), 6);
	assert_int_equal(count_of(root, "patients_read_by_organisation", URA_E),
			 -5);
	lat = json_object_get(root, "delivery_latency_ms");
	assert_int_equal(json_integer_value(json_object_get(lat, "count")), 12);
	/* nearest rank over 100..1200 ms */
	assert_int_equal(json_integer_value(json_object_get(lat, "p50")), 600);
	assert_int_equal(json_integer_value(json_object_get(lat, "p90")), 1100);
	assert_int_equal(json_integer_value(json_object_get(lat, "p99")), 1200);
	json_decref(root);
}

static void
test_exact(void **state)
{
	json_t *root = json_report(REPORT_BY_NONE, true);

	(void)state;
	assert_int_equal(count_of(root, "messages_by_receiver", URA_C), 4);
	assert_int_equal(count_of(root, "dead_letters_by_cause", "HTTP 422"),
			 3);
	assert_int_equal(count_of(root, "failing_by_cause", "HTTP 503"), 1);
	assert_int_equal(count_of(root, "patients_read_by_organisation", URA_E),
			 2);
	json_decref(root);
}

static void
test_by_month(void **state)
{
	json_t *root = json_report(REPORT_BY_MONTH, true);

	(void)state;
	/* 12 outbound + 7 inbound in December, 4 outbound 40 days on */
	assert_int_equal(count_of(root, "messages_by_period", "2025-12"), 19);
	assert_int_equal(count_of(root, "messages_by_period", "2026-01"), 4);
	json_decref(root);
}

/* Fewer than 5 deliveries: no percentiles unless exact. */
static void
test_latency_hidden(void **state)
{
	struct report *r = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *fp;

	(void)state;
	for (int exact = 0; exact < 2; exact++) {
		fp = open_memstream(&out, &len);
		assert_int_equal(report_new(0, 0, REPORT_BY_NONE, &r), GW_OK);
		for (int i = 1; i <= 3; i++)
			row(r, i, URA_B, STORE_DELIVERED, T0, T0 + i * 100, 0,
			    NULL);
		assert_int_equal(
		    report_write(r, fp, REPORT_CSV, exact != 0, NULL), GW_OK);
		fclose(fp);
		report_free(r);
		if (exact != 0) {
			assert_non_null(
			    strstr(out, "delivery_latency_ms,p50,,200\n"));
			assert_non_null(
			    strstr(out, "delivery_latency_ms,count,,3\n"));
		} else {
			assert_null(strstr(out, "delivery_latency_ms,p50"));
			assert_non_null(
			    strstr(out, "delivery_latency_ms,count,,<5\n"));
		}
		free(out);
		out = NULL;
	}
}

static void
test_text_and_csv(void **state)
{
	char *text = written(REPORT_BY_NONE, REPORT_TEXT, false);
	char *csv = written(REPORT_BY_NONE, REPORT_CSV, false);

	(void)state;
	assert_non_null(strstr(text, "Dead letters, by cause\n"));
	assert_non_null(strstr(text, "  HTTP 422"));
	assert_non_null(strstr(text, "      <5\n"));
	assert_non_null(strstr(text, "p50"));
	assert_non_null(strstr(csv, "section,key,name,value\n"));
	assert_non_null(strstr(csv, "messages_by_receiver," URA_B ",,12\n"));
	assert_non_null(strstr(csv, "messages_by_receiver," URA_C ",,<5\n"));
	assert_non_null(strstr(csv, "delivery_latency_ms,p90,,1100\n"));
	free(text);
	free(csv);
}

/* Latency buckets read back: exact below 1 s, else the middle of a
 * bucket whose bounds hold the value, within 0.5% of it; buckets in
 * order. The SQL that makes them is store_sqlite.c's SQ_BUCKET (checked
 * end to end by tests/e2e/test_report_agg.py). */
static void
test_agg_bucket(void **state)
{
	int64_t lo, hi, prev_hi = 0, mid;

	(void)state;
	for (int64_t b = 0; b < 1000 + 900 * 8; b++) {
		mid = store_agg_bucket_ms(b, &lo, &hi);
		if (lo != prev_hi)
			fail_msg("bucket %lld starts at %lld, want %lld",
				 (long long)b, (long long)lo,
				 (long long)prev_hi);
		assert_true(lo <= mid && mid < hi);
		if (b < 1000)
			assert_int_equal(mid, b);
		/* every value of the bucket within 0.5% of its middle */
		assert_true((mid - lo) * 200 <= lo);
		assert_true((hi - 1 - mid) * 200 <= hi - 1);
		prev_hi = hi;
	}
	/* digits: 1234 ms is bucket 1000 + 123 - 100 */
	mid = store_agg_bucket_ms(1023, &lo, &hi);
	assert_int_equal(lo, 1230);
	assert_int_equal(hi, 1240);
	assert_int_equal(mid, 1235);
}

/* A range splits into whole hours and days for the roll-ups and the
 * partial ones at its ends for the rows; an open end has no edge. */
static void
test_agg_split(void **state)
{
	struct store_agg_range r;
	const int64_t h = 3600000;

	(void)state;
	store_agg_split(T0 + 1000, T0 + 3 * h + 5, &r);
	assert_int_equal(r.h0, T0 / h + 1);
	assert_int_equal(r.h1, T0 / h + 3);
	assert_int_equal(r.hedge[0][0], T0 + 1000);
	assert_int_equal(r.hedge[0][1], T0 + h);
	assert_int_equal(r.hedge[1][0], T0 + 3 * h);
	assert_int_equal(r.hedge[1][1], T0 + 3 * h + 5);
	/* inside one day: all of it is an edge, no whole day */
	assert_int_equal(r.d0, r.d1);
	assert_int_equal(r.dedge[0][0], T0 + 1000);
	assert_int_equal(r.dedge[0][1], T0 + 3 * h + 5);
	assert_true(r.dedge[1][1] <= r.dedge[1][0]);
	/* open end, aligned start: roll-ups only */
	store_agg_split(T0, 0, &r);
	assert_int_equal(r.h0, T0 / h);
	assert_int_equal(r.h1, INT64_MAX);
	assert_int_equal(r.d0, T0 / DAY);
	assert_true(r.hedge[0][1] <= r.hedge[0][0]);
	assert_true(r.hedge[1][1] <= r.hedge[1][0]);
	/* empty */
	store_agg_split(T0 + h, T0, &r);
	assert_true(r.h1 <= r.h0 && r.d1 <= r.d0);
	assert_true(r.hedge[0][1] <= r.hedge[0][0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_percentile),
	    cmocka_unit_test(test_counts_below_five),
	    cmocka_unit_test(test_exact),
	    cmocka_unit_test(test_by_month),
	    cmocka_unit_test(test_latency_hidden),
	    cmocka_unit_test(test_text_and_csv),
	    cmocka_unit_test(test_agg_bucket),
	    cmocka_unit_test(test_agg_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
