/*
 * libFuzzer harness for the store's queue state machine: the input is a
 * sequence of operations (accept, claim, results, operator actions,
 * recover) run against an in-memory SQLite store and a simple model; any
 * difference (a claim out of lane order, a claimable row not claimed, a
 * transition the rules forbid) aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXMSG 48
static const char *const recv_uras[2] = {"00000001", "00000002"};

struct mrow {
	bool present;
	enum store_state state;
	int64_t next;
};

struct mmsg {
	char id[16];
	int patient;
	struct mrow rows[2];
};

struct model {
	struct mmsg m[MAXMSG];
	int n;
	int64_t now;
};

struct input {
	const uint8_t *p;
	size_t left;
};

static unsigned
take(struct input *in)
{
	if (in->left == 0)
		return 0;
	in->left--;
	return *in->p++;
}

static bool
claimable(const struct model *md, int i, int r)
{
	const struct mrow *row = &md->m[i].rows[r];

	if (!row->present || row->state != STORE_DUE || row->next > md->now)
		return false;
	for (int j = 0; j < i; j++) {
		const struct mrow *e = &md->m[j].rows[r];

		if (md->m[j].patient == md->m[i].patient && e->present &&
		    (e->state == STORE_DUE || e->state == STORE_INFLIGHT ||
		     e->state == STORE_HELD))
			return false;
	}
	return true;
}

static int
find(const struct model *md, const char *id)
{
	for (int i = 0; i < md->n; i++)
		if (strcmp(md->m[i].id, id) == 0)
			return i;
	abort();
}

static void
op_accept(struct store *s, struct model *md, struct input *in)
{
	unsigned patient = take(in) % 3, mask = take(in) % 3 + 1;
	unsigned dup = take(in);
	const char *rc[2];
	struct store_accept r = {0};
	struct store_result res;
	char value[16];
	size_t n = 0;
	struct mmsg *m;

	if (md->n == MAXMSG)
		return;
	m = &md->m[md->n];
	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "m%d", md->n);
	/* Some accepts repeat an earlier identifier: a duplicate. */
	if (md->n > 0 && dup % 4 == 0)
		snprintf(value, sizeof(value), "m%u", dup / 4 % md->n);
	else
		snprintf(value, sizeof(value), "%s", m->id);
	for (int k = 0; k < 2; k++)
		if (mask & (1u << k))
			rc[n++] = recv_uras[k];
	r.id = m->id;
	r.sender_ura = "12345678";
	r.bundle_value = value;
	r.patient_key = patient == 0 ? "pa" : patient == 1 ? "pb" : "pc";
	r.fhir_version = "4.0.1";
	r.doc = "{}";
	r.doc_len = 2;
	r.sha256 = "00";
	r.accepted_at = md->now;
	r.answer_status = 202;
	r.receivers = rc;
	r.nreceivers = n;
	enum gw_err err = store_accept(s, &r, &res);
	store_result_cleanup(&res);
	if (strcmp(value, m->id) != 0) {
		if (err != GW_EXISTS)
			abort();
		return;
	}
	if (err != GW_OK)
		abort();
	m->patient = (int)patient;
	for (int k = 0; k < 2; k++) {
		if (mask & (1u << k)) {
			m->rows[k].present = true;
			m->rows[k].state = STORE_DUE;
			m->rows[k].next = md->now;
		}
	}
	md->n++;
}

static void
op_claim(struct store *s, struct model *md, struct input *in)
{
	unsigned which = take(in) % 3;
	size_t max = take(in) % 4 + 1, want = 0, n = 0;
	const char *recv = which == 2 ? NULL : recv_uras[which];
	struct store_row *rows = NULL;

	for (int i = 0; i < md->n; i++)
		for (int r = 0; r < 2; r++)
			if ((recv == NULL || (unsigned)r == which) &&
			    claimable(md, i, r))
				want++;
	if (store_claim(s, recv, md->now, md->now, max, &rows, &n) != GW_OK)
		abort();
	/* Everything claimable is offered, up to max. */
	if (n != (want < max ? want : max))
		abort();
	for (size_t k = 0; k < n; k++) {
		int i = find(md, rows[k].id);
		int r = strcmp(rows[k].receiver, recv_uras[0]) == 0 ? 0 : 1;

		if (!claimable(md, i, r))
			abort();
	}
	for (size_t k = 0; k < n; k++) {
		int i = find(md, rows[k].id);
		int r = strcmp(rows[k].receiver, recv_uras[0]) == 0 ? 0 : 1;

		md->m[i].rows[r].state = STORE_INFLIGHT;
	}
	store_rows_free(rows, n);
}

/* A result for some inflight row: kind 0 delivered, 1 temp, 2 perm. */
static void
op_result(struct store *s, struct model *md, struct input *in, int kind)
{
	unsigned pick = take(in), delay = take(in);
	int cand[MAXMSG * 2], nc = 0, i, r;
	enum gw_err err;

	for (i = 0; i < md->n; i++)
		for (r = 0; r < 2; r++)
			if (md->m[i].rows[r].present &&
			    md->m[i].rows[r].state == STORE_INFLIGHT)
				cand[nc++] = i * 2 + r;
	if (nc == 0) {
		/* Nothing in flight: every result is refused. */
		if (md->n > 0 && store_delivered(s, md->m[0].id, recv_uras[0],
						 200, md->now) != GW_NOTFOUND)
			abort();
		return;
	}
	i = cand[pick % nc] / 2;
	r = cand[pick % nc] % 2;
	if (kind == 0) {
		err =
		    store_delivered(s, md->m[i].id, recv_uras[r], 200, md->now);
		md->m[i].rows[r].state = STORE_DELIVERED;
	} else if (kind == 1) {
		err = store_failed_temp(s, md->m[i].id, recv_uras[r], 503,
					"busy", md->now + delay);
		md->m[i].rows[r].state = STORE_DUE;
		md->m[i].rows[r].next = md->now + delay;
	} else {
		err = store_failed_perm(s, md->m[i].id, recv_uras[r], 400,
					"bad", "{}");
		md->m[i].rows[r].state = STORE_DEAD;
	}
	if (err != GW_OK)
		abort();
}

static bool
allowed(enum store_action a, enum store_state st)
{
	switch (a) {
	case STORE_RETRY:
	case STORE_HOLD:
		return st == STORE_DUE;
	case STORE_RELEASE:
		return st == STORE_HELD;
	case STORE_REPLAY:
		return st == STORE_DEAD || st == STORE_DELIVERED;
	}
	return false;
}

static void
op_act(struct store *s, struct model *md, struct input *in)
{
	enum store_action a = (enum store_action)(take(in) % 4);
	unsigned pick = take(in), which = take(in) % 3;
	size_t changed = 0, want = 0;
	enum gw_err err;
	struct mmsg *m;

	if (md->n == 0)
		return;
	m = &md->m[pick % md->n];
	for (int r = 0; r < 2; r++)
		if (m->rows[r].present &&
		    (which == 2 || (unsigned)r == which) &&
		    allowed(a, m->rows[r].state))
			want++;
	bool any = which == 2 ? (m->rows[0].present || m->rows[1].present)
			      : m->rows[which].present;
	err = store_act(s, m->id, which == 2 ? NULL : recv_uras[which], a,
			md->now, &changed);
	if (!any) {
		if (err != GW_NOTFOUND)
			abort();
		return;
	}
	if (want == 0) {
		if (err != GW_INVALID)
			abort();
		return;
	}
	if (err != GW_OK || changed != want)
		abort();
	for (int r = 0; r < 2; r++) {
		struct mrow *row = &m->rows[r];

		if (!row->present || !(which == 2 || (unsigned)r == which) ||
		    !allowed(a, row->state))
			continue;
		if (a == STORE_HOLD) {
			row->state = STORE_HELD;
		} else {
			row->state = STORE_DUE;
			row->next = md->now;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_options o = {.path = ":memory:", .create = true};
	struct input in = {data, size};
	struct store *s = NULL;
	struct model *md;
	size_t count;

	if (size > 4096)
		return 0;
	if ((md = calloc(1, sizeof(*md))) == NULL)
		return 0;
	md->now = 1000;
	if (store_open(&o, &s) != GW_OK)
		abort();
	while (in.left > 0) {
		switch (take(&in) % 9) {
		case 0:
		case 1:
			op_accept(s, md, &in);
			break;
		case 2:
			op_claim(s, md, &in);
			break;
		case 3:
			op_result(s, md, &in, 0);
			break;
		case 4:
			op_result(s, md, &in, 1);
			break;
		case 5:
			op_result(s, md, &in, 2);
			break;
		case 6:
			op_act(s, md, &in);
			break;
		case 7:
			if (store_recover(s, &count) != GW_OK)
				abort();
			for (int i = 0; i < md->n; i++)
				for (int r = 0; r < 2; r++)
					if (md->m[i].rows[r].state ==
					    STORE_INFLIGHT)
						count--;
			if (count != 0)
				abort();
			for (int i = 0; i < md->n; i++)
				for (int r = 0; r < 2; r++)
					if (md->m[i].rows[r].state ==
					    STORE_INFLIGHT)
						md->m[i].rows[r].state =
						    STORE_DUE;
			break;
		default:
			md->now += take(&in);
			break;
		}
	}
	store_free(s);
	free(md);
	return 0;
}
