/*
 * Inside the console: the job a page request becomes (filled on the loop
 * thread, run by a console worker, answered on the loop thread), the
 * pages (console_page.c) and the HTML and SVG helpers (console_svg.c).
 */
#ifndef GW_CONSOLE_IMPL_H
#define GW_CONSOLE_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "console.h"
#include "store.h"
#include "workpool.h"

struct config;
struct validate_ctx;

enum console_page {
	CONSOLE_OVERVIEW,
	CONSOLE_QUEUE,
	CONSOLE_ROW,
	CONSOLE_CONFIRM,
	CONSOLE_ACT,
	CONSOLE_USAGE,
	CONSOLE_USAGE_CSV,
	CONSOLE_PLAYGROUND, /* POST: validate the text */
};

/* Largest text the playground takes (the admin listener's form limit). */
#define CONSOLE_TEXT_MAX 65536
/* Most receivers listed as held by the deliverer. */
#define CONSOLE_HELD_MAX 64

struct console_job {
	struct workpool_job link;
	struct console *c;
	struct http_req *req;
	/* The request's configuration: valid until the reply (http.h). */
	const struct config *cfg;
	enum console_page page;
	int64_t deadline; /* util_mono_ms(): the store reads end by then */
	int64_t now;	  /* wall clock ms at arrival */
	char csrf[65];	  /* this session's CSRF token */
	bool authed;	  /* a token is configured and was given */
	char who[96];	  /* peer address and "token" or "loopback" */
	char reqid[64];
	/* Filters and arguments (validated on the loop thread). */
	int state; /* enum store_state, -1: any */
	char receiver[STORE_URA_MAX + 1];
	char id[STORE_ID_MAX + 1];
	int64_t after_seq;
	unsigned age_h; /* rows accepted at least this many hours ago */
	int action;	/* enum store_action */
	int64_t from, to;
	int by; /* enum report_by */
	bool stu3;
	char *text; /* playground input, heap; NULL: none */
	size_t text_len;
	/* Receivers the deliverer holds (pzpgw_receiver_held), read from
	   the metrics on the loop thread. */
	char held[CONSOLE_HELD_MAX][STORE_URA_MAX + 1];
	size_t nheld;
	/* The answer. */
	int status;
	const char *ctype;
	char *out; /* heap (open_memstream) */
	size_t out_len;
	char location[512]; /* 303 target when set */
	bool kick;	    /* rows became due: kick the deliverer */
};

/* A console worker's own things. */
struct console_worker {
	struct store *ro; /* page reads; opened at first use */
	struct store *rw; /* actions; opened at first use */
	struct validate_ctx *v[2];
	bool niced; /* CONSOLE_NICE applied to this thread */
};

/* Run j's page on worker w: sets j->status, ctype and out. */
void console_page_run(struct console_job *j, struct console_worker *w);

/* Pages that need no store (loop thread): write into j->out. */
void console_page_login(struct console_job *j, const char *problem);
void console_page_playground_form(struct console_job *j);
/* A short page saying why (status set by the caller). */
void console_page_message(struct console_job *j, const char *title,
			  const char *text);

/* ---- forms and cookies (console_form.c) ---- */

/*
 * The value of field name in the x-www-form-urlencoded body (NUL-ended),
 * decoded ('+' a space, %XX a byte) into out (outlen bytes, with its
 * NUL); *len (may be NULL) its length, which may hold NUL bytes. False
 * when the field is absent, malformed or does not fit.
 */
bool console_form_field(const char *body, const char *name, char *out,
			size_t outlen, size_t *len);
/* The value of cookie name in a Cookie header (NULL: none) into out (n
 * bytes with its NUL); false when absent or too long. */
bool console_cookie(const char *header, const char *name, char *out, size_t n);

/* ---- HTML and SVG (console_svg.c) ---- */

/* Write s HTML-escaped (also for attribute values). */
void console_esc(FILE *fp, const char *s);
/* The same for the n bytes at s. */
void console_escn(FILE *fp, const char *s, size_t n);
/* s with every run of 9 or more digits (a BSN may be one) replaced by
 * "[number]", HTML-escaped. */
void console_esc_masked(FILE *fp, const char *s);
/* The page head (title, stylesheet, navigation with active marked) and
 * the body's start; csrf NULL: no logout button. */
void console_head(FILE *fp, const char *title, const char *active,
		  const char *csrf);
void console_foot(FILE *fp);

/* One value of a chart: label and value; shown "<5" when small is set. */
struct console_point {
	char label[24];
	double value;
	bool small; /* a count of 1-4 shown as "<5" */
};

/* A bar chart: one rect class="bar" per point, in an <svg> with the
 * given id. */
void console_svg_bars(FILE *fp, const char *id, const char *title,
		      const struct console_point *p, size_t n);
/* A line chart: one polyline of n points and a circle class="pt" per
 * point. */
void console_svg_line(FILE *fp, const char *id, const char *title,
		      const struct console_point *p, size_t n);

/* "2026-12-05 13:04:05" (UTC) of ms; "-" for 0. */
void console_time(char *out, size_t n, int64_t ms);

#endif
