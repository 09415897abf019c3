/*
 * The console's HTML pieces: escaping (with BSN-like numbers masked where
 * a receiver's words are shown), the page frame, and bar and line charts
 * drawn as inline SVG by the server (no charting library).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "console_impl.h"

void
console_escn(FILE *fp, const char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i] != '\0'; i++) {
		switch (s[i]) {
		case '&':
			fputs("&amp;", fp);
			break;
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '"':
			fputs("&quot;", fp);
			break;
		case '\'':
			fputs("&#39;", fp);
			break;
		default:
			fputc(s[i], fp);
		}
	}
}

void
console_esc(FILE *fp, const char *s)
{
	if (s != NULL)
		console_escn(fp, s, strlen(s));
}

void
console_esc_masked(FILE *fp, const char *s)
{
	size_t i = 0;

	if (s == NULL)
		return;
	while (s[i] != '\0') {
		size_t d = strspn(s + i, "0123456789");

		if (d >= 9) {
			fputs("[number]", fp);
			i += d;
		} else if (d > 0) {
			console_escn(fp, s + i, d);
			i += d;
		} else {
			size_t o = strcspn(s + i, "0123456789");

			console_escn(fp, s + i, o);
			i += o;
		}
	}
}

void
console_head(FILE *fp, const char *title, const char *active, const char *csrf)
{
	static const char *const nav[][2] = {
	    {"/", "Overview"},
	    {"/queue", "Queue"},
	    {"/usage", "Usage"},
	    {"/playground", "Playground"},
	};

	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
	      "charset=\"utf-8\"><title>",
	      fp);
	console_esc(fp, title);
	fputs(" - pzpgw</title><link rel=\"icon\" href=\"data:,\"><link "
	      "rel=\"stylesheet\" "
	      "href=\"/assets/console.css\"><script src=\"/assets/console.js\" "
	      "defer></script></head>\n<body><header><span "
	      "class=\"brand\">pzpgw console</span><nav>",
	      fp);
	for (size_t i = 0; i < sizeof(nav) / sizeof(nav[0]); i++)
		fprintf(fp, "<a href=\"%s\"%s>%s</a>", nav[i][0],
			active != NULL && strcmp(active, nav[i][0]) == 0
			    ? " class=\"active\""
			    : "",
			nav[i][1]);
	fputs("</nav>", fp);
	if (csrf != NULL) {
		fputs("<form method=\"post\" action=\"/logout\" "
		      "class=\"logout\"><input type=\"hidden\" name=\"csrf\" "
		      "value=\"",
		      fp);
		console_esc(fp, csrf);
		fputs("\"><button>Log out</button></form>", fp);
	}
	fputs("</header>\n<main>\n<h1>", fp);
	console_esc(fp, title);
	fputs("</h1>\n", fp);
}

void
console_foot(FILE *fp)
{
	fputs("</main>\n<footer>Times are UTC. Counts from 1 to 4 are shown "
	      "as &lt;5.</footer></body></html>\n",
	      fp);
}

void
console_time(char *out, size_t n, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, n, "-");
}

/* Chart geometry (SVG user units). */
#define W   720.0
#define H   220.0
#define PAD 36.0

static double
chart_max(const struct console_point *p, size_t n)
{
	double max = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i].value > max)
			max = p[i].value;
	return max > 0 ? max : 1;
}

/* The frame: svg element, title, axis and the top value. */
static void
chart_open(FILE *fp, const char *id, const char *title, double max)
{
	fputs("<figure><svg class=\"chart\" id=\"", fp);
	console_esc(fp, id);
	fprintf(fp,
		"\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
		"xmlns=\"http://www.w3.org/2000/svg\"><title>",
		W, H);
	console_esc(fp, title);
	fprintf(fp,
		"</title><line class=\"axis\" x1=\"%.0f\" y1=\"%.0f\" "
		"x2=\"%.0f\" y2=\"%.0f\"/><text class=\"tick\" x=\"2\" "
		"y=\"%.0f\">%.0f</text>",
		PAD, H - PAD, W - 4, H - PAD, PAD / 2 + 4, max);
}

/* Labels under the axis: at most about 12, so they stay readable. */
static void
chart_labels(FILE *fp, const struct console_point *p, size_t n, double step)
{
	size_t every = n > 12 ? (n + 11) / 12 : 1;

	for (size_t i = 0; i < n; i += every) {
		fprintf(fp,
			"<text class=\"tick\" x=\"%.1f\" y=\"%.0f\" "
			"text-anchor=\"middle\">",
			PAD + step * ((double)i + 0.5), H - PAD + 16);
		console_esc(fp, p[i].label);
		fputs("</text>", fp);
	}
}

static void
chart_close(FILE *fp, const char *title)
{
	fputs("</svg><figcaption>", fp);
	console_esc(fp, title);
	fputs("</figcaption></figure>\n", fp);
}

/* The height of a value: a "<5" count is drawn as 2.5 so that it shows
 * without giving its size away. */
static double
bar_value(const struct console_point *p)
{
	return p->small ? 2.5 : p->value;
}

void
console_svg_bars(FILE *fp, const char *id, const char *title,
		 const struct console_point *p, size_t n)
{
	double max = chart_max(p, n);
	double step = n > 0 ? (W - PAD - 8) / (double)n : 1;
	double plot = H - 2 * PAD;

	chart_open(fp, id, title, max);
	for (size_t i = 0; i < n; i++) {
		double h = plot * bar_value(&p[i]) / max;

		fprintf(fp,
			"<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" "
			"width=\"%.1f\" height=\"%.1f\"><title>",
			PAD + step * (double)i + step * 0.1, H - PAD - h,
			step * 0.8, h);
		console_esc(fp, p[i].label);
		if (p[i].small)
			fputs(": &lt;5", fp);
		else
			fprintf(fp, ": %.0f", p[i].value);
		fputs("</title></rect>", fp);
	}
	chart_labels(fp, p, n, step);
	chart_close(fp, title);
}

void
console_svg_line(FILE *fp, const char *id, const char *title,
		 const struct console_point *p, size_t n)
{
	double max = chart_max(p, n);
	double step = n > 0 ? (W - PAD - 8) / (double)n : 1;
	double plot = H - 2 * PAD;

	chart_open(fp, id, title, max);
	fputs("<polyline class=\"line\" points=\"", fp);
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "%s%.1f,%.1f", i > 0 ? " " : "",
			PAD + step * ((double)i + 0.5),
			H - PAD - plot * bar_value(&p[i]) / max);
	fputs("\"/>", fp);
	for (size_t i = 0; i < n; i++) {
		fprintf(fp,
			"<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" "
			"r=\"3\"><title>",
			PAD + step * ((double)i + 0.5),
			H - PAD - plot * bar_value(&p[i]) / max);
		console_esc(fp, p[i].label);
		if (p[i].small)
			fputs(": &lt;5", fp);
		else
			fprintf(fp, ": %.0f", p[i].value);
		fputs("</title></circle>", fp);
	}
	chart_labels(fp, p, n, step);
	chart_close(fp, title);
}
