/*
 * fdecimal: exact comparison of FHIR decimals from their text (shared by
 * FHIRPath and the validator) and the printing of computed decimals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdecimal.h"

bool
fdec_parse(const char *s, size_t n, struct fdec *o)
{
	size_t i = 0;
	bool point = false, any = false;

	memset(o, 0, sizeof(*o));
	if (i < n && (s[i] == '-' || s[i] == '+'))
		o->neg = s[i++] == '-';
	for (; i < n; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9') {
			any = true;
			if (o->nd == 0 && c == '0') {
				if (point)
					o->e--;
				continue;
			}
			if (o->nd == FDEC_DIGITS)
				return false;
			o->d[o->nd++] = c;
			if (!point)
				o->e++;
		} else if (c == '.' && !point) {
			point = true;
		} else if ((c == 'e' || c == 'E') && any) {
			long x = 0;
			bool xneg = false, xany = false;

			i++;
			if (i < n && (s[i] == '-' || s[i] == '+'))
				xneg = s[i++] == '-';
			for (; i < n; i++) {
				if (s[i] < '0' || s[i] > '9' || x > 100000)
					return false;
				x = x * 10 + (s[i] - '0');
				xany = true;
			}
			if (!xany)
				return false;
			o->e += xneg ? -x : x;
			break;
		} else {
			return false;
		}
	}
	while (o->nd > 0 && o->d[o->nd - 1] == '0')
		o->nd--;
	if (o->nd == 0) {
		o->neg = false;
		o->e = 0;
	}
	return any;
}

void
fdec_from_int(int64_t v, struct fdec *o)
{
	char b[32];

	snprintf(b, sizeof(b), "%lld", (long long)v);
	fdec_parse(b, strlen(b), o);
}

int
fdec_cmp(const struct fdec *a, const struct fdec *b)
{
	int sa = a->nd == 0 ? 0 : a->neg ? -1 : 1;
	int sb = b->nd == 0 ? 0 : b->neg ? -1 : 1;
	int k, r = 0;

	if (sa != sb)
		return sa < sb ? -1 : 1;
	if (sa == 0)
		return 0;
	if (a->e != b->e)
		r = a->e < b->e ? -1 : 1;
	else {
		for (k = 0; k < a->nd || k < b->nd; k++) {
			char x = k < a->nd ? a->d[k] : '0';
			char y = k < b->nd ? b->d[k] : '0';

			if (x != y) {
				r = x < y ? -1 : 1;
				break;
			}
		}
	}
	return sa < 0 ? -r : r;
}

bool
fdec_cmp_text(const char *a, size_t alen, const char *b, size_t blen,
	      enum fdec_mode mode, int *r)
{
	struct fdec da, db;
	double x, y;

	if (mode == FDEC_DOUBLE) {
		x = strtod(a, NULL);
		y = strtod(b, NULL);
		*r = x < y ? -1 : x > y ? 1 : 0;
		return true;
	}
	if (!fdec_parse(a, alen, &da) || !fdec_parse(b, blen, &db))
		return false;
	*r = fdec_cmp(&da, &db);
	return true;
}

bool
fdec_format_double(double v, char *out, size_t len)
{
	/* Range first: only a value below 1e15 may be converted to test
	 * whether it is whole. */
	snprintf(out, len, "%.15g%s", v,
		 v < 1e15 && v > -1e15 && v == (double)(int64_t)v ? ".0" : "");
	return strpbrk(out, "eE") == NULL;
}
