/* Base64 and base64url encoding and strict decoding. */
#include <string.h>

#include "b64.h"

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

enum gw_err
b64_encode(const void *p, size_t n, bool url, struct buf *out)
{
	const unsigned char *in = p;
	const char *tab = url ? b64_url : b64_std;
	size_t start = out->len, i = 0, o;
	char chunk[1024];
	enum gw_err err = GW_OK;

	/* Whole groups of three bytes, 768 input bytes per chunk. */
	while (n - i >= 3) {
		for (o = 0; n - i >= 3 && o + 4 <= sizeof(chunk); i += 3) {
			unsigned v = (unsigned)in[i] << 16 |
				     (unsigned)in[i + 1] << 8 | in[i + 2];
			chunk[o++] = tab[v >> 18];
			chunk[o++] = tab[(v >> 12) & 63];
			chunk[o++] = tab[(v >> 6) & 63];
			chunk[o++] = tab[v & 63];
		}
		if ((err = buf_add(out, chunk, o)) != GW_OK)
			goto fail;
	}
	if (n - i > 0) {
		unsigned v = (unsigned)in[i] << 16;
		if (n - i == 2)
			v |= (unsigned)in[i + 1] << 8;
		o = 0;
		chunk[o++] = tab[v >> 18];
		chunk[o++] = tab[(v >> 12) & 63];
		if (n - i == 2)
			chunk[o++] = tab[(v >> 6) & 63];
		else if (!url)
			chunk[o++] = '=';
		if (!url)
			chunk[o++] = '=';
		if ((err = buf_add(out, chunk, o)) != GW_OK)
			goto fail;
	}
	return GW_OK;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return err;
}

static int
b64_value(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

enum gw_err
b64_decode(const char *s, size_t n, bool url, struct buf *out)
{
	size_t start = out->len, i, full, rest;
	unsigned char tmp[3];
	enum gw_err err = GW_OK;
	/* Zeroed for the analyzer: a tail of rest bytes reads only the
	 * rest values it just set, which it cannot prove. */
	int v[4] = {0, 0, 0, 0};

	if (!url) {
		/* Padded: a multiple of 4, at most two '=' at the end. */
		if (n % 4 != 0)
			return GW_PARSE;
		if (n > 0 && s[n - 1] == '=')
			n--;
		if (n > 0 && s[n - 1] == '=')
			n--;
	}
	rest = n % 4;
	if (rest == 1)
		return GW_PARSE;
	full = n - rest;
	for (i = 0; i < full; i += 4) {
		for (int k = 0; k < 4; k++)
			if ((v[k] = b64_value((unsigned char)s[i + k], url)) <
			    0)
				goto bad;
		tmp[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		tmp[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		tmp[2] = (unsigned char)((v[2] & 3) << 6 | v[3]);
		if ((err = buf_add(out, tmp, 3)) != GW_OK)
			goto fail;
	}
	if (rest > 0) {
		for (size_t k = 0; k < rest; k++)
			if ((v[k] = b64_value((unsigned char)s[i + k], url)) <
			    0)
				goto bad;
		tmp[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (rest == 2) {
			if ((v[1] & 15) != 0)
				goto bad;
		} else {
			tmp[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
			if ((v[2] & 3) != 0)
				goto bad;
		}
		if ((err = buf_add(out, tmp, rest - 1)) != GW_OK)
			goto fail;
	}
	return GW_OK;
bad:
	err = GW_PARSE;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return err;
}
