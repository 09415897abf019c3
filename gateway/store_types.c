/*
 * The store's record types: state names and the free functions of what a
 * store returns, and the pure backoff functions (store_next_attempt,
 * store_hold_until), shared by the store front (store.c) and every
 * backend.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"

static const char *const store_state_names[STORE_STATE_COUNT] = {
    [STORE_DUE] = "due",
    [STORE_INFLIGHT] = "inflight",
    [STORE_DELIVERED] = "delivered",
    [STORE_DEAD] = "dead",
    [STORE_HELD] = "held",
};

const char *
store_state_name(enum store_state st)
{
	if ((unsigned)st >= STORE_STATE_COUNT)
		return NULL;
	return store_state_names[st];
}

const char *
store_direction_name(enum store_direction d)
{
	switch (d) {
	case STORE_OUTBOUND:
		return "outbound";
	case STORE_INBOUND:
		return "inbound";
	case STORE_NOTICE:
		return "notice";
	}
	return NULL;
}

enum gw_err
store_state_parse(const char *s, enum store_state *out)
{
	for (int i = 0; i < STORE_STATE_COUNT; i++) {
		if (strcmp(s, store_state_names[i]) == 0) {
			*out = (enum store_state)i;
			return GW_OK;
		}
	}
	return GW_PARSE;
}

void
store_result_cleanup(struct store_result *res)
{
	if (res == NULL)
		return;
	free(res->answer_body);
	res->answer_body = NULL;
}

void
store_rows_free(struct store_row *rows, size_t n)
{
	if (rows == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(rows[i].last_error);
		free(rows[i].outcome);
	}
	free(rows);
}

void
store_message_free(struct store_message *m)
{
	if (m == NULL)
		return;
	free(m->bundle_system);
	free(m->bundle_value);
	free(m->patient_key);
	free(m->fhir_version);
	free(m->sha256);
	free(m->answer_body);
	free(m->report);
	free(m->doc);
	free(m->jws);
	store_rows_free(m->rows, m->nrows);
	free(m);
}

void
store_res_free(struct store_res *v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i].json);
	free(v);
}

void
store_raw_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

bool
store_next_attempt(const struct store_backoff *b, unsigned attempts,
		   int64_t since, int64_t now, uint32_t rnd, int64_t *next)
{
	int64_t min = b->min_ms > 0 ? b->min_ms : 1;
	int64_t max = b->max_ms >= min ? b->max_ms : min;
	int64_t deadline = since + b->max_age_ms;
	int64_t d = min, jitter;

	if (b->max_age_ms > 0 && now >= deadline)
		return false;
	/* Double per failed attempt; stop before overflowing past max. */
	for (unsigned i = 1; i < attempts && d < max; i++)
		d = d > max / 2 ? max : d * 2;
	if (d > max)
		d = max;
	/* Up to a quarter earlier, so retries of many rows spread out. */
	jitter = (int64_t)((double)d / 4.0 * (double)(rnd % 1001) / 1000.0);
	d -= jitter;
	if (d < min)
		d = min;
	*next = now + d;
	if (b->max_age_ms > 0 && *next > deadline)
		*next = deadline;
	return true;
}

/* The hold of a receiver after fails failed probes: as a row's backoff
 * from now, max_age ignored, never before not_before. */
int64_t
store_hold_until(const struct store_backoff *b, unsigned fails, int64_t now,
		 uint32_t rnd, int64_t not_before)
{
	struct store_backoff h = *b;
	int64_t until = now;

	h.max_age_ms = 0;
	if (!store_next_attempt(&h, fails, now, now, rnd, &until))
		until = now + h.min_ms;
	return until > not_before ? until : not_before;
}
