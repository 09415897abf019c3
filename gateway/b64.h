/*
 * Base64 (RFC 4648 section 4, padded) and base64url (section 5, no padding,
 * as JWS uses it): encoding and strict decoding.
 */
#ifndef GW_B64_H
#define GW_B64_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

/* Append the encoding of n bytes of p to out: padded standard base64 when
 * url is false, unpadded base64url when true. GW_TOOBIG/GW_NOMEM from out
 * (out unchanged then). */
enum gw_err b64_encode(const void *p, size_t n, bool url, struct buf *out);

/*
 * Decode n characters of s (standard alphabet with padding when url is
 * false, url alphabet without padding when true; no whitespace, no other
 * characters, unused bits must be zero) and append the bytes to out.
 * GW_PARSE on any deviation (out unchanged), GW_TOOBIG/GW_NOMEM from out.
 */
enum gw_err b64_decode(const char *s, size_t n, bool url, struct buf *out);

#endif
