/*
 * What the console reads from its requests besides the query string: the
 * fields of x-www-form-urlencoded bodies and the values of cookies, into
 * caller-sized buffers (no allocation; every length checked).
 */
#include <string.h>

#include "console_impl.h"
#include "util.h"

/* Decode the n bytes at s into out (outlen with the NUL). */
static bool
form_decode(const char *s, size_t n, char *out, size_t outlen, size_t *len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return false;
			hi = util_hexval((unsigned char)s[i + 1]);
			lo = util_hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = hi * 16 + lo;
			i += 2;
		}
		if (o + 1 >= outlen)
			return false;
		out[o++] = (char)c;
	}
	if (outlen == 0)
		return false;
	out[o] = '\0';
	if (len != NULL)
		*len = o;
	return true;
}

bool
console_form_field(const char *body, const char *name, char *out, size_t outlen,
		   size_t *len)
{
	size_t nl = strlen(name);
	const char *p = body;

	while (p != NULL && *p != '\0') {
		size_t flen = strcspn(p, "&");

		if (flen > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
			return form_decode(p + nl + 1, flen - nl - 1, out,
					   outlen, len);
		p += flen;
		if (*p == '&')
			p++;
	}
	return false;
}

bool
console_cookie(const char *h, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);

	while (h != NULL && *h != '\0') {
		size_t len;

		while (*h == ' ' || *h == ';')
			h++;
		len = strcspn(h, ";");
		if (len > nl && strncmp(h, name, nl) == 0 && h[nl] == '=') {
			if (len - nl - 1 >= n)
				return false;
			memcpy(out, h + nl + 1, len - nl - 1);
			out[len - nl - 1] = '\0';
			return true;
		}
		h += len;
	}
	return false;
}
